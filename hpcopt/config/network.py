"""``problem.network``: a NEURON network built by the user's Python function, scored by
what its spikes and recorded voltages measure (docs/networks.md).

    {"problem": {"network": {
        "builder": "model:build",
        "parameters": {"w_ee": [0.0001, 0.01], "n_e": 40},
        "tstop": 1000, "dt": 0.025, "v_init": -65, "window": [200, 1000],
        "objectives": {
            "E.rate": {"population": "E", "measure": "rate", "mean": 8, "std": 1},
            "e0.AP_amplitude": {"voltage": "e0", "feature": "AP_amplitude", "mean": 80, "std": 5}}}},
     "execution": {"ranks_per_evaluation": 2}, ...}

An objective measures a population's spikes (``measure``: rate, isi_cv, synchrony) or
an eFEL feature of a recorded voltage (``feature``), inside ``window``, and scores
|value - mean| / std as eFEL's distance does; a value that cannot be measured (no
spikes) scores the penalty.
"""

import math
from dataclasses import dataclass

from . import fields
from .parameter import parse_table

MEASURES = ("rate", "isi_cv", "synchrony")


@dataclass(frozen=True)
class Objective:
    """One objective: ``measure`` of ``population``'s spikes, or eFEL ``feature`` of the
    voltage recorded as ``voltage`` (spike ``threshold``, mV), against mean and std."""

    name: str
    mean: float
    std: float
    population: str = ""
    measure: str = ""
    voltage: str = ""
    feature: str = ""
    threshold: float = -20.0

    def resolved(self):
        out = {"mean": self.mean, "std": self.std}
        if self.population:
            out.update(population=self.population, measure=self.measure)
        else:
            out.update(voltage=self.voltage, feature=self.feature, threshold=self.threshold)
        return out


@dataclass(frozen=True)
class NetworkProblem:
    """``config.problem`` for a network: ``builder(pc, params)`` (module:name, imported
    with ``path`` in front of sys.path) creates the cells of this rank and says what to
    record, or ``netpyne`` (module:name) makes NetPyNE's (netParams, simConfig) from the
    parameters, and NetPyNE creates the cells (problem/netpyne.py); hpcopt runs it to
    ``tstop`` with a fixed step ``dt`` and measures ``objectives`` (tuple of Objective) in ``window`` (ms)."""

    builder: str
    parameters: tuple
    targets: tuple
    tstop: float
    window: tuple
    dt: float = 0.025
    v_init: float = -65.0
    bin: float = 5.0  # ms, of the population rate whose variance measures synchrony
    penalty: float = 250.0
    path: tuple = ()
    netpyne: str = ""  # module:function making (netParams, simConfig); then builder is ""

    @property
    def objectives(self):
        return tuple(o.name for o in self.targets)

    @property
    def features(self):
        """What an evaluation measures, stored beside the scores: one value per objective."""
        return self.objectives

    def resolved(self):
        return {"network": {
            **({"netpyne": self.netpyne} if self.netpyne else {"builder": self.builder}),
            "parameters": {p.name: [p.lower, p.upper] if p.free else p.value for p in self.parameters},
            "objectives": {o.name: o.resolved() for o in self.targets},
            "tstop": self.tstop, "dt": self.dt, "v_init": self.v_init, "window": list(self.window),
            "bin": self.bin, "penalty": self.penalty, "path": list(self.path),
        }}


def parse(raw, where, base_dir):
    """The NetworkProblem of ``problem.network`` (``where``: that field)."""
    table = fields.table(raw, where, required=("parameters", "objectives", "tstop"),
                         optional=("builder", "netpyne", "dt", "v_init", "window", "bin", "penalty", "path"))
    if ("builder" in table) == ("netpyne" in table):
        raise where.error(None, "give either builder (build(pc, params) creating the cells) or netpyne "
                                "(make(params) returning NetPyNE's netParams and simConfig)" +
                                (", not both" if "builder" in table else ""))
    form = "builder" if "builder" in table else "netpyne"
    function = fields.callable_name(table, where, form, "'module:function'")
    tstop = fields.number(table, where, "tstop", above=0)
    window = (0.0, tstop)
    if "window" in table:
        window = fields.numbers(table, where, "window")
        if len(window) != 2 or not 0 <= window[0] < window[1] <= tstop:
            raise where.error("window", f"expected [start, end] with 0 <= start < end <= tstop ({tstop:g}), "
                                        f"found {fields.show(table['window'])}")
    kwargs = {key: fields.number(table, where, key, above=0) for key in ("dt", "bin") if key in table}
    if "v_init" in table:
        kwargs["v_init"] = fields.number(table, where, "v_init")
    if "penalty" in table:
        kwargs["penalty"] = fields.number(table, where, "penalty", above=0)
    targets = _objectives(table["objectives"], where / "objectives")
    if any(o.measure == "synchrony" for o in targets) and kwargs.get("bin", 5.0) > (window[1] - window[0]) / 2:
        raise where.error("bin", f"{kwargs.get('bin', 5.0):g} ms leaves fewer than 2 bins in the window "
                                 f"{list(window)}: synchrony cannot be measured")
    path = fields.import_path(table, where, base_dir)
    if form == "netpyne":
        kwargs["netpyne"] = function
    return NetworkProblem(function if form == "builder" else "", parse_table(table["parameters"], where / "parameters"),
                          targets, tstop, tuple(window), path=path, **kwargs)


def _objectives(raw, where):
    if not isinstance(raw, dict) or not raw:
        raise where.error(None, f"expected an object {{name: {{...}}}}, found {fields.show(raw)}")
    if "" in raw:
        raise where.error(None, "an objective needs a name (found \"\")")
    return tuple(_objective(name, spec, where / name) for name, spec in raw.items())


def _objective(name, raw, where):
    table = fields.table(raw, where, required=("mean", "std"),
                         optional=("population", "measure", "voltage", "feature", "threshold"))
    mean = fields.number(table, where, "mean")
    std = fields.number(table, where, "std", above=0)
    if ("population" in table) == ("voltage" in table):
        raise where.error(None, "give either population (with measure) or voltage (with feature)")
    if "population" in table:
        for key in ("feature", "threshold"):
            if key in table:
                raise where.error(key, "only with voltage (an eFEL feature of a recorded voltage)")
        measure = table.get("measure")
        if measure not in MEASURES:
            raise where.error("measure", f"expected one of {', '.join(MEASURES)}, found {fields.show(measure)}")
        return Objective(name, mean, std, population=_name(table, where, "population"), measure=measure)
    if "measure" in table:
        raise where.error("measure", "only with population (a measure of its spikes)")
    threshold = fields.number(table, where, "threshold") if "threshold" in table else -20.0
    if not math.isfinite(threshold):
        raise where.error("threshold", "expected a finite number")
    return Objective(name, mean, std, voltage=_name(table, where, "voltage"), feature=_name(table, where, "feature"),
                     threshold=threshold)


def _name(table, where, key):
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise where.error(key, f"expected a name, found {fields.show(value)}")
    return value
