"""What ``hpcopt report`` needs to answer "is this fit good?", as data (no drawing):
which individual to show, its features beside their targets, each parameter's axis
scale, each generation's sample spread (CMA-ES) and where a run was resumed.
"""

import math

import numpy as np

from ..errors import ConfigError, HpcoptError

AUTO_RATIO = 100.0  # the 'auto' scale: log where 0 < lower and upper / lower >= this (two decades)
RESUME_GAP = 1.0  # seconds between a generation's end and the next one's start that mean a new session


def individual_ids(run):
    """(N,) each evaluation's id, in the Table's order: the id its generator gave it
    (stored by asynchronous runs), else its place in the run's order of asking."""
    ids, offset = [], 0
    for g in run.generations:
        ids.append(g.ids if g.ids is not None else np.arange(offset, offset + len(g.scores)))
        offset += len(g.scores)
    return np.concatenate(ids).astype(int) if ids else np.zeros(0, int)


def choose(run, table, spec="best"):
    """(row of ``table``, description) of the individual ``--individual`` names:
    ``best`` (lowest score), ``best-of:NAME`` (lowest value of the objective NAME, or
    lowest sum over the protocol NAME's objectives) or an individual's id. Ties go to
    the earliest, as ``hpcopt best``. ConfigError (one line) naming the choices."""
    spec = str(spec).strip()
    order = table.order()
    if spec == "best":
        return int(order[0]), "the best individual (lowest score)"
    if spec.startswith("best-of:"):
        name = spec[len("best-of:"):]
        columns = _objective_columns(run, name)
        if columns is None:
            groups = sorted({n.split(".")[0] for n in run.objective_names} - set(run.objective_names))
            raise ConfigError("--individual", f"no objective or protocol {name!r}; objectives: "
                              f"{', '.join(run.objective_names)}" + (f"; protocols: {', '.join(groups)}"
                                                                      if groups else ""))
        values = (table.F[:, columns] * run.weights[columns]).sum(axis=1)
        best = int(np.lexsort((table.row, table.generation, values))[0])
        return best, f"the individual with the lowest {name} ({values[best]:.4g})"
    ids = individual_ids(run)
    try:
        ident = int(spec)
    except ValueError:
        ident = None
    if ident is None or ident not in ids:
        raise ConfigError("--individual", f"{spec!r} is not one of: best, best-of:OBJECTIVE (an objective or "
                          f"protocol name), or an individual's id (0 to {ids.max()}, the 'id' column of the "
                          "report's table of best individuals)")
    return int(np.flatnonzero(ids == ident)[0]), f"individual {ident}"


def _objective_columns(run, name):
    """Indices of the objective ``name``, or of the objectives of protocol ``name``; None if neither."""
    names = run.objective_names
    if name in names:
        return [names.index(name)]
    columns = [i for i, n in enumerate(names) if n.split(".")[0] == name] if run.is_cell else []
    return columns or None


def feature_targets(run):
    """(list of the model's features (config.cell.Feature: name, protocol, recording,
    efel_name, mean, std), None), or (None, why the targets cannot be known). Reads the
    stored config; a BluePyOpt run's config names its files, which must still be there."""
    from .. import config as configuration

    if not run.is_cell and not run.is_network:
        return None, "a function problem has no features"
    try:
        problem = configuration.parse(run.config, source=f"{run.path} (stored config)").problem
    except (HpcoptError, OSError) as err:
        return None, f"the stored config cannot be read here ({err})"
    if run.is_network:  # each objective measures one value: the 'protocol' column names what it measures
        return [NetworkTarget(o.name, o.population or o.voltage, o.mean, o.std) for o in problem.targets], None
    return list(problem.model.features), None


class NetworkTarget:
    """A network objective as a row of the features table: name, the population or
    voltage it measures (``protocol``), target mean and std."""

    def __init__(self, name, protocol, mean, std):
        self.name, self.protocol, self.mean, self.std = name, protocol, mean, std


def feature_rows(run, table, i, features):
    """One row per feature of individual ``i`` (a Table row): (protocol, feature name,
    value, target mean, target std, deviation in std, score). value: the run file's
    stored feature value (NaN when eFEL found none); deviation: (value - mean) / std,
    signed; score: the stored objective (eFEL's distance, which averages |v - mean| / std
    over a feature's values, or the penalty)."""
    stored = stored_features(run)
    names = list(run.attrs.get("feature_names", []))
    objectives = run.objective_names
    rows = []
    for f in features:
        value = float(stored[i, names.index(f.name)]) if stored is not None and f.name in names else math.nan
        score = float(table.F[i, objectives.index(f.name)]) if f.name in objectives else math.nan
        rows.append((f.protocol, f.name, value, float(f.mean), float(f.std), (value - f.mean) / f.std, score))
    return rows


def stored_features(run):
    """(N, k) the generations' stored feature values in the Table's order, or None."""
    if not run.generations or any(g.features is None for g in run.generations):
        return None
    return np.concatenate([g.features for g in run.generations])


def scales(run, fallback="auto"):
    """{parameter: "log" or "linear"}: the scale the stored config gives each parameter
    (``optimizer.scale``: one scale or {"default": scale, parameter: scale}), else
    ``fallback``; "auto" is log where 0 < lower and upper / lower >= AUTO_RATIO. The
    report draws parameter axes on these (fallback auto); the search coordinates of a
    run whose config has no scale were linear (fallback "linear")."""
    given = run.config.get("optimizer", {}).get("scale")
    if not isinstance(given, dict):
        given = {"default": given or fallback}
    out = {}
    for name, low, high in zip(run.parameter_names, map(float, run.lower), map(float, run.upper)):
        scale = given.get(name, given.get("default", fallback))
        if scale == "auto":
            scale = "log" if low > 0 and high / low >= AUTO_RATIO else "linear"
        out[name] = "log" if scale == "log" and low > 0 else "linear"
    return out


def unit(run, X, fallback="linear"):
    """(N, d) the parameters ``X`` in [0, 1] per parameter, on its scale (``scales``)."""
    X = np.asarray(X, dtype=float)
    U = np.empty_like(X)
    for p, scale in enumerate(scales(run, fallback).values()):
        low, high = float(run.lower[p]), float(run.upper[p])
        if scale == "log":
            U[:, p] = np.log(np.maximum(X[:, p], low) / low) / math.log(high / low)
        else:
            U[:, p] = (X[:, p] - low) / (high - low if high > low else 1.0)
    return U


def sample_spread(run):
    """(N generations,) each generation's spread: the standard deviation of its sample
    in the search's unit coordinates, geometric mean over the parameters. The run file
    keeps CMA-ES's step size only for its current state (/state/generator), not per
    generation; this spread follows sigma x sqrt(diag C) of the sampling distribution
    (with bounds, points outside are folded back in, which narrows it)."""
    spread = []
    for g in run.generations:
        std = unit(run, g.parameters).std(axis=0) if len(g.scores) > 1 else np.zeros(len(run.lower))
        std = std[std > 0]
        spread.append(float(np.exp(np.mean(np.log(std)))) if len(std) else math.nan)
    return np.array(spread)


def resumes(run):
    """Indices of the generations a resumed session started: detected from the stored
    generation times, where a generation started more than RESUME_GAP seconds after
    the previous one ended. Within one session the next generation is asked as soon as
    the last one is told (milliseconds apart; an asynchronous batch starts where the
    previous one ended); a resume costs at least a new process's start-up. The run
    file keeps no other record of sessions (a finished run's journal is removed)."""
    gens = run.generations
    return [b.index for a, b in zip(gens, gens[1:]) if b.start_time - a.end_time > RESUME_GAP]
