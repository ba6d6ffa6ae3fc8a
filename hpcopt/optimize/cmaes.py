"""CMA-ES (Hansen's ``cma`` package) as an ask/tell generator on the unit cube
(the contract: generators.py).

The only module that imports ``cma``. The search runs in [0, 1]^d with cma's
``BoundTransform``, starting from the centre of the cube (or a given point) with
step size ``sigma0``. Randomness comes from a private ``numpy.random.Generator`` passed to
cma through its ``randn`` option; cma's ``seed`` option is set to NaN so that it
never touches numpy's global random state. CMA-ES is single-objective: it
minimises ``F @ weights``.

Restarts (``restarts="ipop"`` or ``"bipop"``): when cma's own termination criteria
fire (tolfun, tolx, stagnation, ...), tell() starts a new strategy at once, so that
the next ask() samples it: from a uniformly random point of the unit cube drawn from
the generator's own Generator. IPOP (Auger & Hansen 2005) doubles the population at
each restart, with step size sigma0. BIPOP (Hansen 2009) alternates that regime with
a small one, running whichever has used fewer evaluations (the first run counts as
small, as in pycma): population floor(base * (large / 2 / base) ** (u ** 2)), with
``large`` the population the next large run would have, and step size
sigma0 * 10 ** (-2 v), u and v uniform; a small run also ends once it has used half
the evaluations of the large runs so far.

The state is data, not a pickle: cma's strategy object graph as JSON plus its
arrays by name (datatree), rebuilt from the cma classes listed here only.
"""

import contextlib
import json
import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Could not import matplotlib": plotting is not used
    import cma
    from cma import (
        boundary_handler,
        evolution_strategy,
        logger,
        optimization_tools,
        options_parameters,
        recombination_weights,
        sampler,
        sigma_adaptation,
        transformations,
    )
    from cma.utilities import utils

from . import datatree


class _Randn:
    """cma's ``randn(lam, N)`` drawn from a private Generator (picklable)."""

    def __init__(self, rng):
        self.rng = rng

    def __call__(self, *shape):
        return self.rng.standard_normal(shape)


RESTARTS = ("none", "ipop", "bipop")
MAX_POPULATION = 100_000  # no restart past the config's largest CMA-ES population: the run ends there


class CMAES:
    """CMA-ES on the unit cube.

    dimension: number of parameters d. population: offspring per generation
    (cma's lambda; with restarts, that of the first run). rng: the generator's own
    ``numpy.random.Generator``. weights: (m,) objective weights; the scalar
    minimised is ``F @ weights``. sigma0: initial step size in unit-cube
    coordinates. restarts: "none", "ipop" or "bipop"; max_restarts: how many
    restarts at most (-1: no limit). start: (d,) the first mean in [0, 1]^d (None:
    the centre); restarts start from random points all the same.
    """

    def __init__(self, dimension, population, rng, *, weights, sigma0=0.25, restarts="none", max_restarts=-1,
                 start=None):
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        if population < 2:
            raise ValueError(f"CMA-ES needs a population of at least 2, got {population}")
        if not 0 < sigma0 <= 1:
            raise ValueError(f"sigma0 must be in (0, 1], got {sigma0}")
        if restarts not in RESTARTS:
            raise ValueError(f"restarts must be one of {', '.join(RESTARTS)}, got {restarts!r}")
        self.weights = np.asarray(weights, dtype=float)
        x0 = np.full(dimension, 0.5) if start is None else np.asarray(start, dtype=float)
        if x0.shape != (dimension,) or not np.all((x0 >= 0) & (x0 <= 1)):
            raise ValueError(f"start must be a point of [0, 1]^{dimension}, got {start!r}")
        self._es = _strategy(x0, int(population), sigma0, _Randn(rng))
        self.population = int(population)
        self._asked = np.zeros((0, dimension))  # the generation asked and not yet told
        self._asked_count = 0
        self.strategy, self.max_restarts = restarts, int(max_restarts)
        self.base_population, self.sigma0 = int(population), float(sigma0)
        self.restart = 0  # restarts made: the index of the run now sampled
        self.regime = "small"  # BIPOP: the first run's evaluations count as the small regime's
        self.used = {"small": 0, "large": 0}  # BIPOP: evaluations of the finished runs of each regime
        self.large_runs = 0  # restarts in the large regime (IPOP: every restart)
        self._stopped = {}  # the reasons of the last run, once no restart follows it

    @property
    def asked(self):
        """Points asked so far (the next id)."""
        return self._asked_count

    @property
    def told(self):
        """Points told so far."""
        return self._asked_count - len(self._asked)

    @property
    def outstanding(self):
        """How many points are asked and not yet told (a whole generation, or none)."""
        return len(self._asked)

    def pending(self):
        """(ids, U) of the generation asked and not yet told (copies)."""
        n = len(self._asked)
        return np.arange(self._asked_count - n, self._asked_count, dtype=np.int64), self._asked.copy()

    def ask(self, n=None):
        """The next generation: (ids (population,) int64, U (population, d) in [0, 1]^d).

        CMA-ES adapts its distribution from whole generations: n, if given, must be
        the population, and the last generation must have been told.
        """
        if n is not None and int(n) != self.population:
            raise ValueError(f"CMA-ES asks whole generations of {self.population} points, not {n}")
        if len(self._asked):
            raise ValueError("ask() before the last generation was told")
        with _batched_repair(self._es):
            self._asked = np.array(self._es.ask())
        ids = np.arange(self._asked_count, self._asked_count + len(self._asked), dtype=np.int64)
        self._asked_count += len(self._asked)
        return ids, self._asked.copy()

    def tell(self, ids, F):
        """Objectives F (n, m) of the points ``ids`` (n,): the whole generation last asked,
        in any order (row i the objectives of ids[i])."""
        ids = np.asarray(ids, dtype=np.int64)
        F = np.asarray(F, dtype=float)
        expected, _ = self.pending()
        order = np.argsort(ids, kind="stable")
        if not len(expected) or ids.ndim != 1 or not np.array_equal(ids[order], expected):
            raise ValueError("tell(ids, F): ids must be those of the whole generation returned by the last ask()")
        if F.ndim != 2 or F.shape[0] != len(ids) or F.shape[1] != self.weights.size:
            raise ValueError(f"tell(ids, F): F must have shape ({len(ids)}, {self.weights.size}), got {F.shape}")
        if not np.all(np.isfinite(F)):
            raise ValueError("tell(ids, F): F holds non-finite values")
        self._es.tell(list(self._asked), list(F[order] @ self.weights))
        self._asked = np.zeros((0, len(self._asked[0])))
        if self.strategy != "none":
            self._restart_if_stopped()

    def stop(self):
        """cma's own termination reasons ({} while it goes on); with restarts, those
        of the last run once no restart may follow it."""
        if self.strategy != "none":
            return dict(self._stopped)
        return {str(k): v for k, v in self._es.stop().items()}

    def _restart_if_stopped(self):
        """After a tell: a new run when cma's criteria fire (or a small BIPOP run has used
        its share), unless the restarts are used up (stop() then says why)."""
        reasons = {str(k): v for k, v in self._es.stop().items()}
        if not reasons and self.regime == "small" and self.large_runs and \
                self._es.countevals >= 0.5 * self.used["large"]:
            reasons = {"small_regime_budget": int(0.5 * self.used["large"])}
        if not reasons:
            return
        used = {**self.used, self.regime: self.used[self.regime] + int(self._es.countevals)}
        large = self.strategy == "ipop" or used["small"] >= used["large"]
        if large and self.base_population * 2 ** (self.large_runs + 1) > MAX_POPULATION:
            reasons["population_limit"] = MAX_POPULATION
        if 0 <= self.max_restarts <= self.restart or "population_limit" in reasons:
            self._stopped = {k: float(v) if isinstance(v, (int, float, np.number)) else str(v)
                             for k, v in reasons.items()}
            return
        rng = self._es.opts["randn"].rng
        self.used = used
        sigma0 = self.sigma0
        if large:
            self.regime, self.large_runs = "large", self.large_runs + 1
            population = self.base_population * 2 ** self.large_runs
        else:  # the population the next large run would have, halved, to the power u^2
            self.regime = "small"
            population = int(np.floor(self.base_population * 2.0 ** (self.large_runs * rng.random() ** 2)))
            sigma0 = self.sigma0 * 10.0 ** (-2 * rng.random())
        x0 = rng.random(len(self._es.mean))
        self._es = _strategy(x0, max(2, population), sigma0, self._es.opts["randn"])
        self.population = max(2, population)
        self.restart += 1

    @property
    def mean(self):
        """(d,) the distribution mean in [0, 1]^d (after cma's bound transform)."""
        return self._es.boundary_handler.transform(self._es.mean)

    def state(self):
        """The whole strategy, including its random generator: its object graph as
        JSON bytes (``tree``) and its arrays by path (``es.sm.C``, ...)."""
        tree, arrays = datatree.dump(self._es, _CLASSES, _FUNCTIONS, name="es")
        return {
            "tree": tree.encode(),
            **arrays,
            "asked": self._asked.copy(),
            "weights": self.weights.copy(),
            "cma_version": cma.__version__,
            "population": self.population,
            "asked_count": self._asked_count,
            **({} if self.strategy == "none" else {
                "restarts": self.strategy, "max_restarts": self.max_restarts, "base_population": self.base_population,
                "sigma0": self.sigma0, "restart": self.restart, "regime": self.regime,
                "used_small": self.used["small"], "used_large": self.used["large"], "large_runs": self.large_runs,
                "stopped": json.dumps(self._stopped),
            }),
        }

    @classmethod
    def from_state(cls, state):
        """The CMAES that ``state()`` described; ValueError when this hpcopt cannot
        continue it exactly (another cma version, an older pickled state, a damaged
        or doctored one)."""
        if "strategy" in state:
            raise ValueError("its CMA-ES state is a Python pickle (written by an earlier hpcopt), which hpcopt "
                             "no longer loads: loading a pickle runs whatever code it names")
        if state["cma_version"] != cma.__version__:
            raise ValueError(
                f"this run was made with cma {state['cma_version']}, but cma {cma.__version__} "
                f"is installed; install cma=={state['cma_version']} to resume it exactly"
            )
        self = cls.__new__(cls)
        arrays = {k: v for k, v in state.items() if k.startswith("es")}
        self._es = datatree.load(bytes(state["tree"]).decode(), arrays, _CLASSES, _FUNCTIONS)
        if not isinstance(self._es, cma.CMAEvolutionStrategy):
            raise ValueError("its CMA-ES state does not hold a CMA-ES strategy")
        _rehash(self._es)
        self._asked = np.array(state["asked"], dtype=float)
        self.weights = np.array(state["weights"], dtype=float)
        self.population = int(state["population"])
        self._asked_count = int(state["asked_count"])
        self.strategy = str(state.get("restarts", "none"))
        if self.strategy not in RESTARTS:
            raise ValueError(f"its CMA-ES state names an unknown restart strategy {self.strategy!r}")
        self.max_restarts = int(state.get("max_restarts", -1))
        self.base_population = int(state.get("base_population", self.population))
        self.sigma0 = float(state.get("sigma0", 0.0))
        self.restart = int(state.get("restart", 0))
        self.regime = str(state.get("regime", "small"))
        self.used = {"small": int(state.get("used_small", 0)), "large": int(state.get("used_large", 0))}
        self.large_runs = int(state.get("large_runs", 0))
        self._stopped = json.loads(state.get("stopped", "{}"))
        return self


def _rehash(es):
    """File the solutions cma keeps by key (``sent_solutions``: what each point asked was
    before the bound repair, which ``tell`` looks up) under this process's keys. cma keys
    a point by ``hash(x.tobytes())``, and Python salts the hash of bytes per process
    (PYTHONHASHSEED): a state saved with a generation pending and restored in another
    process found none of its points, so ``tell`` took them for injected solutions and
    updated from their repaired values, and the resumed run went another way."""
    for store in vars(es).values():
        if not isinstance(store, utils.SolutionDict):
            continue
        new = {old: store.key(x) for old, x in store._unhashed_keys.items()}
        store.data = {new.get(k, k): v for k, v in store.data.items()}
        store.data_with_same_key = {new.get(k, k): v for k, v in store.data_with_same_key.items()}
        store._unhashed_keys = {new[k]: x for k, x in store._unhashed_keys.items()}


def _strategy(x0, population, sigma0, randn):
    """A new cma strategy on the unit cube from x0 (d,), drawing through ``randn``."""
    options = {
        "bounds": [0.0, 1.0],
        "popsize": int(population),
        "randn": randn,
        "seed": np.nan,  # leave numpy's global random state alone
        "maxiter": np.inf,  # the run's budget decides, so a run can be extended
        "verbose": -10,  # silent, and no cma_signals.in read from the working directory
        "verb_log": 0,
        "verb_disp": 0,
    }
    if len(x0) == 1:  # cma 4.5 raises "not yet initialized" putting a 1-D step into maxstd
        options["maxstd"] = np.inf
    return cma.CMAEvolutionStrategy(np.asarray(x0, dtype=float), sigma0, options)


@contextlib.contextmanager
def _batched_repair(es):
    """During ``es.ask()``: cma's bound transform of the whole sample at once.

    cma maps each sampled point into the bounds by itself (``BoundTransform.repair``,
    some twenty numpy calls on a d-vector): 50-80 ms for a population of 1,000, which
    rank 0's ranks wait for. Here ``ask_geno``'s sample is transformed as one array by
    the same elementwise operations in the same order (so the values are bit-identical,
    tests/test_generators.py checks it), and ``repair`` hands each point its row (found
    by the point's bytes), or the very object cma passed when nothing changed, as cma's
    own does. Both are instance
    attributes only inside the ``with``, so the saved state never holds them; anything
    else asks the original."""
    handler = getattr(es, "boundary_handler", None)
    tf = getattr(handler, "bounds_tf", None)
    if not isinstance(tf, transformations.BoxConstraintsLinQuadTransformation) or not es.gp.isidentity:
        yield
        return
    original_geno, original_repair = es.ask_geno, handler.repair
    ready = {}

    def ask_geno(*args, **kwargs):
        pop = original_geno(*args, **kwargs)
        X = np.asarray(pop)
        if X.ndim == 2 and len(X) and X.dtype == np.float64:
            if len(tf._lb) != X.shape[1]:
                tf.initialize(X.shape[1])  # what cma's transform does first, lazily
            Y, changed = _linquad(tf, X)
            ready.update({X[i].tobytes(): Y[i] if changed[i] else None for i in range(len(X))})
        return pop

    def repair(x, copy_if_changed=True):
        key = x.tobytes() if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1 else None
        if key not in ready or not copy_if_changed:
            return original_repair(x, copy_if_changed)
        y = ready[key]
        return x if y is None else y.copy()  # as cma's: the point itself when nothing changed

    es.ask_geno, handler.repair = ask_geno, repair
    try:
        yield
    finally:
        del es.ask_geno, handler.repair


def _linquad(tf, X):
    """cma's BoxConstraintsLinQuadTransformation.__call__ on every row of X (n, d) at once:
    (Y, changed) with Y's rows its results and changed[i] whether row i changed."""
    lb, ub, al, au = (np.broadcast_to(v, X.shape) for v in (tf._lb, tf._ub, tf._al, tf._au))
    y = X.copy()
    changed = np.zeros(len(X), dtype=bool)
    idx = (y < lb - 2 * al - (ub - lb) / 2.0) | (y > ub + 2 * au + (ub - lb) / 2.0)
    if idx.any():
        r = 2 * (ub[idx] - lb[idx] + al[idx] + au[idx])
        s = lb[idx] - 2 * al[idx] - (ub[idx] - lb[idx]) / 2.0
        y[idx] -= r * ((y[idx] - s) // r)
        changed |= idx.any(axis=1)
    idx = y > ub + au
    if idx.any():
        y[idx] -= 2 * (y[idx] - ub[idx] - au[idx])
        changed |= idx.any(axis=1)
    idx = y < lb - al
    if idx.any():
        y[idx] += 2 * (lb[idx] - al[idx] - y[idx])
        changed |= idx.any(axis=1)
    idx = y < lb + al
    if idx.any():
        y[idx] = lb[idx] + (y[idx] - (lb[idx] - al[idx])) ** 2 / 4 / al[idx]
        changed |= idx.any(axis=1)
    idx = y > ub - au
    if idx.any():
        y[idx] = ub[idx] - (y[idx] - (ub[idx] + au[idx])) ** 2 / 4 / au[idx]
        changed |= idx.any(axis=1)
    return y, changed


# What a strategy holds (cma 4.x): every class and function its object graph refers to.
# cma's other classes and functions are refused when a state names them.
_CLASSES = (
    evolution_strategy.CMAEvolutionStrategy, evolution_strategy._CMASolutionDict_functional,
    evolution_strategy._CMASolutionDict_empty,
    evolution_strategy._CMAStopDict, evolution_strategy._StopTolXStagnation, boundary_handler.BoundTransform,
    logger.CMADataLogger, optimization_tools.BestSolution, options_parameters.CMAOptions,
    options_parameters.CMAParameters, recombination_weights.RecombinationWeights, sampler.GaussFullSampler,
    sigma_adaptation.CMAAdaptSigmaCSA, transformations.BoxConstraintsLinQuadTransformation,
    transformations.DiagonalDecoding, transformations.GenoPheno, transformations.RoundIntegerVariables,
    utils.BlancClass, utils.DictFromTagsInString, utils.ElapsedWCTime, utils.MoreToWrite, utils.SolutionDict,
    _Randn,
)
_FUNCTIONS = (np.linalg.eigh, options_parameters.is_feasible, evolution_strategy._pass)
