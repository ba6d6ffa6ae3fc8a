"""The run's configuration: one JSON file validated once into frozen, typed objects.

Nothing downstream reads raw dicts. Every error names the field's path
(``optimizer.population``), what was expected and what was found; an unknown
key lists the valid ones. ``Config.resolved()`` gives the complete config,
defaults filled in, which is what the run file stores and ``resume`` reads back.
"""

import math
import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from . import cell, evaluator, fields, network
from . import scale as scale_spec
from .fields import read_json
from .parameter import parse_table

ALGORITHMS = ("cmaes", "ibea")
RESTARTS = ("none", "ipop", "bipop")  # CMA-ES restart strategies


@dataclass(frozen=True)
class FunctionProblem:
    """A problem defined by a Python callable ``module:name``.

    The callable takes {parameter name: value} (free and frozen parameters) and
    returns {objective: value} or a sequence in ``objectives`` order.
    """

    function: str
    parameters: tuple
    objectives: tuple
    penalty: float = 250.0
    path: tuple = ()  # directories put in front of sys.path before importing

    features = ()  # a function gives objectives only

    def resolved(self):
        return {
            "function": self.function,
            "parameters": {
                p.name: [p.lower, p.upper] if p.free else p.value for p in self.parameters
            },
            "objectives": list(self.objectives),
            "penalty": self.penalty,
            "path": list(self.path),
        }


@dataclass(frozen=True)
class Optimizer:
    """The optimiser's settings. The budget is given as ``generations`` or as
    ``evaluations`` (the other is 0 when constructed) and the other is derived: a
    generational run stops after the generation in which the evaluation budget is
    reached, an asynchronous one once that many results are told. CMA-ES with
    restarts takes ``evaluations`` only: its generations change size, so its
    ``generations`` stays 0 (not known in advance)."""

    algorithm: str
    population: int
    generations: int = 0  # the generation budget (derived from evaluations when that is given)
    seed: int = 1
    weights: tuple = ()  # (m,) objective weights of the score; () means all 1
    # IBEA
    offspring: int = 0  # 0: same as population
    kappa: float = 0.05
    eta_crossover: float = 10.0
    eta_mutation: float = 10.0
    crossover_probability: float = 1.0  # per pair of parents
    mutation_probability: object = None  # per variable; None: 1 / the number of free parameters
    # CMA-ES
    sigma0: float = 0.25
    restarts: object = "none"  # "none", "ipop" or "bipop" (or a stored {"strategy": ..., "max": ...})
    max_restarts: int = -1  # -1: as many as the budget allows
    start: tuple = ()  # ((name, value), ...): the first mean, physical values; (): the centre of the cube
    # asynchronous (steady-state) evaluation, IBEA only
    asynchronous: bool = False
    batch: int = 0  # results told at once; 0: max(1, population // 10)
    # The evaluation budget: IBEA population + (generations - 1) x offspring (either evaluation
    # mode), CMA-ES population x generations, when the generations are given.
    evaluations: int = 0
    # the scales of the parameters: (default, ((name, scale), ...)) as config.scale.parse gives it,
    # or a stored config's {name: scale}
    scale: object = (scale_spec.DEFAULT, ())
    budget: str = field(default="", init=False)  # "generations" or "evaluations": the one given

    def __post_init__(self):
        if isinstance(self.restarts, dict):  # the stored object form
            object.__setattr__(self, "max_restarts", int(self.restarts.get("max", -1)))
            object.__setattr__(self, "restarts", self.restarts["strategy"])
        if self.restarts != "none":
            if self.generations or not self.evaluations:
                raise ValueError("CMA-ES with restarts needs an evaluation budget (its generations vary in size)")
            object.__setattr__(self, "budget", "evaluations")
        elif self.generations:
            object.__setattr__(self, "budget", "generations")
            object.__setattr__(self, "evaluations", self._evaluations_in(self.generations))
        elif self.evaluations:
            object.__setattr__(self, "budget", "evaluations")
            object.__setattr__(self, "generations", self._generations_for(self.evaluations))
        else:
            raise ValueError("an Optimizer needs generations or evaluations")

    def _evaluations_in(self, generations):
        if self.algorithm == "ibea":
            return self.population + (generations - 1) * (self.offspring or self.population)
        return self.population * generations

    def _generations_for(self, evaluations):
        """The fewest generations that make at least ``evaluations`` evaluations."""
        first = self.population
        later = (self.offspring or self.population) if self.algorithm == "ibea" else self.population
        return 1 + max(0, -(-(evaluations - first) // later))

    @property
    def batch_size(self):
        return self.batch or max(1, self.population // 10)

    @property
    def records(self):
        """Records the run file holds when the run is complete: one per generation, or
        (asynchronous) one per batch of ``batch_size`` results told together."""
        if self.asynchronous:
            return -(-self.evaluations // self.batch_size)
        return self.generations  # 0 with restarts: not known in advance

    def resolved(self, scales=None):
        """The optimizer section with every default filled in; ``scales``: {name: scale} of
        every free parameter (config.scale.resolve), stored as ``scale``; None: the spec as
        given, {"default": scale, name: scale, ...} (an evaluator's parameters are known
        only once it is built)."""
        out = {
            "algorithm": self.algorithm,
            "population": self.population,
            self.budget: getattr(self, self.budget),
            "seed": self.seed,
            "weights": list(self.weights),
        }
        if self.algorithm == "ibea":
            out.update(
                offspring=self.offspring or self.population,
                kappa=self.kappa,
                eta_crossover=self.eta_crossover,
                eta_mutation=self.eta_mutation,
            )
            # absent at their defaults: the stored config of a run without them is unchanged
            if self.crossover_probability != 1.0:
                out["crossover_probability"] = self.crossover_probability
            if self.mutation_probability is not None:
                out["mutation_probability"] = self.mutation_probability
            if self.asynchronous:
                out.update(asynchronous=True, batch=self.batch_size)
        else:
            out.update(sigma0=self.sigma0)
            if self.restarts != "none":  # absent otherwise: the stored config of a run without is unchanged
                out["restarts"] = (self.restarts if self.max_restarts < 0 else
                                   {"strategy": self.restarts, "max": self.max_restarts})
            if self.start:  # the values themselves, not a file's name: a resume needs no other file
                out["start"] = dict(self.start)
        if scales is not None:
            out["scale"] = dict(scales)
        else:
            default, overrides = self.scale
            out["scale"] = {"default": default, **dict(overrides)}
        return out


@dataclass(frozen=True)
class Checkpoint:
    """Write the run file every ``every_generations`` generations, and also
    whenever ``every_seconds`` (0: never) have passed since the last write.
    The last generation is always written, and so is every complete one when a
    signal stops the job, which waits at most ``stop_within`` seconds for the
    evaluations in flight (abandoned ones run again on resume)."""

    every_generations: int = 1
    every_seconds: float = 0.0
    stop_within: float = 60.0  # on SIGTERM/SIGUSR1/SIGINT: seconds to wait for evaluations in flight

    def resolved(self):
        return {"every_generations": self.every_generations, "every_seconds": self.every_seconds,
                "stop_within": self.stop_within}


@dataclass(frozen=True)
class Evaluation:
    """``timeout``: seconds one evaluation may take (None: no limit). Past it, the
    evaluation is stopped and scores the penalty with status ``timeout``: each rank
    then evaluates in a child process of its own, which is replaced when it overruns,
    also inside C code that never returns to Python."""

    timeout: float = None

    def resolved(self):
        return {"timeout": self.timeout}


@dataclass(frozen=True)
class Execution:
    """``ranks_per_evaluation``: the ranks that evaluate one individual together (a
    network spread over NEURON subworlds of that size); the job's rank count must be a
    multiple of it."""

    ranks_per_evaluation: int = 1

    def resolved(self):
        return {"ranks_per_evaluation": self.ranks_per_evaluation}


@dataclass(frozen=True)
class Config:
    problem: FunctionProblem
    optimizer: Optimizer
    checkpoint: Checkpoint
    output: str  # run file path ("" when not given)
    source: str = ""  # the file this came from, for messages
    evaluation: Evaluation = Evaluation()
    execution: Execution = Execution()

    @property
    def weights(self):
        return self.optimizer.weights or (1.0,) * len(self.problem.objectives)

    @property
    def free_parameters(self):
        return tuple(p for p in self.problem.parameters if p.free)

    def _space(self, space):
        """(names, lower, upper) of the free parameters: ``space`` when given, else the
        config's own, or None for an evaluator (its parameters are known once it is built)."""
        if space is not None:
            return space
        if isinstance(self.problem, evaluator.EvaluatorProblem):
            return None
        free = self.free_parameters
        return [p.name for p in free], [p.lower for p in free], [p.upper for p in free]

    def scales(self, space=None):
        """{free parameter: "linear" or "log"}; ConfigError naming the field for an unknown
        parameter or log where a lower bound is <= 0. space: (names, lower, upper) of the
        free parameters, for a problem that knows them only once built (an evaluator);
        None: the config's own (None for an evaluator)."""
        space = self._space(space)
        if space is None:
            return None
        where = fields.Where(self.source) / "optimizer" / "scale"
        return scale_spec.resolve(self.optimizer.scale, *space, where)

    def start(self, space=None):
        """(d,) physical values (a tuple) where CMA-ES starts, in the order of the free parameters,
        or None (the centre); ConfigError naming the field for an unknown or missing
        parameter or a value outside its bounds. space: as for scales()."""
        space = self._space(space) if self.optimizer.start else None
        if space is None:
            return None
        names, lower, upper = space
        where = fields.Where(self.source) / "optimizer" / "start"
        given = dict(self.optimizer.start)
        unknown = [n for n in given if n not in names]
        if unknown:
            raise where.error(unknown[0], f"not a free parameter; free: {', '.join(names)}")
        missing = [n for n in names if n not in given]
        if missing:
            raise where.error(None, f"no value for {', '.join(missing)} (give every free parameter)")
        values = []
        for name, low, high in zip(names, lower, upper):
            value = given[name]
            slack = 1e-9 * (high - low)  # a fit on a bound may be exported a rounding beyond it
            if not low - slack <= value <= high + slack:
                raise where.error(name, f"{value!r} is outside its bounds [{low:g}, {high:g}]")
            values.append(min(max(value, low), high))
        return tuple(values)

    def resolved(self, space=None):
        """The complete config, defaults filled in (what the run file stores); space: as
        for scales()."""
        optimizer = {**self.optimizer.resolved(self.scales(space)), "weights": list(self.weights)}
        if not self.weights:  # an evaluator's objectives are known once it is built: its weights are all 1
            del optimizer["weights"]
        return {
            "problem": self.problem.resolved(),
            "optimizer": optimizer,
            "checkpoint": self.checkpoint.resolved(),
            "output": self.output,
            **({"evaluation": self.evaluation.resolved()} if self.evaluation.timeout is not None else {}),
            **({"execution": self.execution.resolved()} if self.execution.ranks_per_evaluation > 1 else {}),
        }


# ---------------------------------------------------------------- reading


def load(path):
    """The Config in the JSON file ``path``; ConfigError naming file and field."""
    return parse(read_json(path), source=path, base_dir=os.path.dirname(os.path.abspath(path)))


def parse(raw, source="config", base_dir=None):
    """A Config from the decoded JSON object ``raw``.

    base_dir: directory of the config file; it is put on the import path of the
    problem's function (so ``model.py`` beside ``config.json`` imports).
    """
    where = fields.Where(source)
    table = fields.table(raw, where, required=("problem", "optimizer"),
                         optional=("checkpoint", "output", "evaluation", "execution"))
    problem = _problem(table["problem"], where / "problem", base_dir)
    optimizer = _optimizer(table["optimizer"], where / "optimizer", problem, base_dir)
    checkpoint = _checkpoint(table.get("checkpoint", {}), where / "checkpoint")
    output = table.get("output", "")
    if not isinstance(output, str):
        raise where.error("output", f"expected a file path (string), found {fields.show(output)}")
    evaluation = _evaluation(table.get("evaluation", {}), where / "evaluation")
    config = Config(problem, optimizer, checkpoint, output, source, evaluation,
                    _execution(table.get("execution", {}), where / "execution", problem, evaluation))
    config.scales()  # names and bounds checked now, where the problem knows its parameters
    config.start()
    return config


def _problem(raw, where, base_dir):
    if isinstance(raw, dict) and list(raw) == ["bluepyopt_evaluator"]:
        return evaluator.parse(raw["bluepyopt_evaluator"], where / "bluepyopt_evaluator", base_dir)
    if isinstance(raw, dict) and list(raw) == ["network"]:
        return network.parse(raw["network"], where / "network", base_dir)
    if isinstance(raw, dict) and ("cell" in raw or "bluepyopt" in raw):
        return cell.problem(raw, where, base_dir)
    table = fields.table(raw, where, required=("function", "parameters", "objectives"), optional=("penalty", "path"))
    function = fields.callable_name(table, where, "function")

    parameters = parse_table(table["parameters"], where / "parameters")

    objectives = table["objectives"]
    if (
        not isinstance(objectives, list)
        or not objectives
        or not all(isinstance(o, str) and o for o in objectives)
    ):
        raise where.error("objectives", f"expected a non-empty list of names, found {fields.show(objectives)}")
    if len(set(objectives)) != len(objectives):
        raise where.error("objectives", "names must be unique")
    penalty = fields.number(table, where, "penalty") if "penalty" in table else 250.0

    path = fields.import_path(table, where, base_dir)
    return FunctionProblem(function, parameters, tuple(objectives), penalty, path)


# the largest population (and IBEA offspring): IBEA's indicator matrix is
# (population + offspring)^2 numbers, 3.2 GB at 2 x 10,000; CMA-ES keeps a few vectors per sample
MAX_POPULATION = {"ibea": 10_000, "cmaes": 100_000}
_IBEA_KEYS = ("offspring", "kappa", "eta_crossover", "eta_mutation", "crossover_probability",
              "mutation_probability", "asynchronous", "batch")
_CMAES_KEYS = ("sigma0", "restarts", "start")


def _optimizer(raw, where, problem, base_dir=None):
    common = ("seed", "weights", "scale")
    table = fields.table(
        raw, where, required=("algorithm", "population"),
        optional=("generations", "evaluations") + common + _IBEA_KEYS + _CMAES_KEYS,
    )
    algorithm = table["algorithm"]
    if algorithm not in ALGORITHMS:
        raise where.error("algorithm", f"unknown algorithm {fields.show(algorithm)}; valid: {', '.join(ALGORITHMS)}")
    other = _CMAES_KEYS if algorithm == "ibea" else _IBEA_KEYS
    for key in table:
        if key in other:
            why = (" (only IBEA has an asynchronous mode: CMA-ES adapts its distribution from complete "
                   "generations)" if key in ("asynchronous", "batch") else
                   " (IBEA starts from a uniformly random population)" if key == "start" else "")
            raise where.error(key, f"not an option of {algorithm}{why}")
    kwargs = dict(
        algorithm=algorithm,
        population=fields.number(table, where, "population", minimum=2 if algorithm == "cmaes" else 1,
                                 maximum=MAX_POPULATION[algorithm], integer=True),
    )
    budgets = [key for key in ("generations", "evaluations") if key in table]
    if len(budgets) != 1:
        raise where.error(None if budgets else "generations",
                          "give the budget as either generations or evaluations, not both" if budgets else
                          "missing (required): give the budget as generations or as evaluations")
    kwargs[budgets[0]] = fields.number(table, where, budgets[0], minimum=1, integer=True)
    if "scale" in table:
        kwargs["scale"] = scale_spec.parse(table["scale"], where / "scale")
    if "seed" in table:
        kwargs["seed"] = fields.number(table, where, "seed", minimum=0, integer=True)
    if "weights" in table:
        kwargs["weights"] = _weights(table["weights"], where / "weights", problem.objectives)
    if "offspring" in table:
        kwargs["offspring"] = fields.number(table, where, "offspring", minimum=1, maximum=MAX_POPULATION["ibea"],
                                            integer=True)
    if "kappa" in table:
        kwargs["kappa"] = fields.number(table, where, "kappa", above=0)
    for key in ("eta_crossover", "eta_mutation"):
        if key in table:
            kwargs[key] = fields.number(table, where, key, minimum=0)
    for key in ("crossover_probability", "mutation_probability"):
        if key in table:
            kwargs[key] = float(fields.number(table, where, key, minimum=0, maximum=1))
    if "asynchronous" in table:
        if not isinstance(table["asynchronous"], bool):
            raise where.error("asynchronous", f"expected true or false, found {fields.show(table['asynchronous'])}")
        kwargs["asynchronous"] = table["asynchronous"]
    if "batch" in table:
        if not kwargs.get("asynchronous"):
            raise where.error("batch", "only with asynchronous: true (a generation is told at once)")
        kwargs["batch"] = fields.number(table, where, "batch", minimum=1, integer=True)
    if "sigma0" in table:
        kwargs["sigma0"] = fields.number(table, where, "sigma0", above=0)
        if kwargs["sigma0"] > 1:
            raise where.error("sigma0", f"is in unit-cube coordinates and must be <= 1, found {kwargs['sigma0']}")
    if "restarts" in table:
        kwargs["restarts"], kwargs["max_restarts"] = _restarts(table["restarts"], where)
        if kwargs["restarts"] != "none" and "generations" in table:
            raise where.error("generations", "CMA-ES with restarts changes its population at each restart, so "
                                             "generations vary in size: give the budget as evaluations")
    if "start" in table:
        kwargs["start"] = _start(table["start"], where / "start", base_dir)
    return Optimizer(**kwargs)


def _start(raw, where, base_dir):
    """((name, value), ...) of optimizer.start: an object {parameter: value}, or the path
    of a JSON file holding one (relative to the config's folder), as ``hpcopt export
    RUN.h5 --json P.json`` writes it. Names and bounds are checked by Config.start."""
    if isinstance(raw, str):
        path = raw if os.path.isabs(raw) or base_dir is None else os.path.join(base_dir, raw)
        values = read_json(path, "optimizer.start")
        if not isinstance(values, dict) or not values:
            raise ConfigError(path, "expected an object {parameter name: value} (as 'hpcopt export --json' "
                                    f"writes), found {fields.show(values)}")
        where = fields.Where(path)
    elif isinstance(raw, dict) and raw:
        values = raw
    else:
        raise where.error(None, "expected an object {parameter name: value} or the path of a JSON file "
                                f"holding one, found {fields.show(raw)}")
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not fields.finite(value):
            raise where.error(name, f"expected a number, found {fields.show(value)}")
    return tuple((name, float(value)) for name, value in values.items())


def _restarts(raw, where):
    """(strategy, max restarts or -1) of ``restarts``: a name, or {"strategy": name, "max": n}."""
    if isinstance(raw, dict):
        table = fields.table(raw, where / "restarts", required=("strategy",), optional=("max",))
        strategy = table["strategy"]
        limit = fields.number(table, where / "restarts", "max", minimum=0, integer=True) if "max" in table else -1
        where = where / "restarts"
        key = "strategy"
    else:
        strategy, limit, key = raw, -1, "restarts"
    if strategy not in RESTARTS:
        raise where.error(key, f"expected one of {', '.join(RESTARTS)} (or {{\"strategy\": ..., \"max\": n}}), "
                               f"found {fields.show(strategy)}")
    return strategy, limit


def _weights(raw, where, objectives):
    if isinstance(raw, list):
        if len(raw) != len(objectives):
            raise where.error(None, f"expected {len(objectives)} weights (one per objective), found {len(raw)}")
        raw = dict(zip(objectives, raw))
    if not isinstance(raw, dict):
        raise where.error(None, f"expected {{objective: weight}} or a list, found {fields.show(raw)}")
    for key in raw:
        if key not in objectives:
            raise where.error(key, f"not an objective; objectives: {', '.join(objectives)}")
    weights = tuple(fields.number(raw, where, o, minimum=0) if o in raw else 1.0 for o in objectives)
    if not any(weights):
        raise where.error(None, "all weights are 0")
    return weights


def _evaluation(raw, where):
    table = fields.table(raw, where, optional=("timeout",))
    if table.get("timeout") is None:
        return Evaluation()
    timeout = fields.number(table, where, "timeout", minimum=0)
    if not 0 < timeout < math.inf:
        raise where.error("timeout", f"expected seconds > 0, found {fields.show(table['timeout'])}")
    return Evaluation(float(timeout))


def _execution(raw, where, problem, evaluation):
    table = fields.table(raw, where, optional=("ranks_per_evaluation",))
    if "ranks_per_evaluation" not in table:
        return Execution()
    k = fields.number(table, where, "ranks_per_evaluation", minimum=1, integer=True)
    if k > 1 and not isinstance(problem, network.NetworkProblem):
        raise where.error("ranks_per_evaluation", f"{k} ranks can evaluate one individual together only for a "
                                                  "problem.network (its cells spread over them); this problem "
                                                  "takes 1")
    if k > 1 and evaluation.timeout is not None:
        raise where.error("ranks_per_evaluation", "cannot be combined with evaluation.timeout: a deadline runs "
                                                  "each evaluation in a child process of one rank, and a group's "
                                                  "simulation spans several ranks")
    return Execution(k)


def _checkpoint(raw, where):
    table = fields.table(raw, where, optional=("every_generations", "every_seconds", "stop_within"))
    kwargs = {}
    if "stop_within" in table:
        kwargs["stop_within"] = fields.number(table, where, "stop_within", minimum=0)
    if "every_generations" in table:
        kwargs["every_generations"] = fields.number(table, where, "every_generations", minimum=1, integer=True)
    if "every_seconds" in table:
        kwargs["every_seconds"] = fields.number(table, where, "every_seconds", minimum=0)
    return Checkpoint(**kwargs)
