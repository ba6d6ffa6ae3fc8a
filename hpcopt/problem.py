"""Problems: the map between the unit cube and physical parameter values, and
the evaluation of one parameter set.

An evaluation never raises for a bad parameter set: an exception inside the
model, a missing or non-finite objective is a *failed* Outcome that scores the
penalty on every objective (STYLE.md 5). The run goes on.
"""

import importlib
import math
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, HpcoptError

OK, FAILED, TIMEOUT = 0, 1, 2
STATUS_NAMES = {OK: "ok", FAILED: "failed", TIMEOUT: "timeout"}


@dataclass
class Outcome:
    """What one evaluation produced.

    objectives: (m,) scores (penalty values when not OK); status: OK, FAILED or
    TIMEOUT; error: one line saying why it failed ("" when OK).
    """

    objectives: np.ndarray
    status: int = OK
    error: str = ""
    features: np.ndarray = None  # (k,) mean of each feature's values, NaN where missing
    raw: dict = None  # {feature: list of values or None}, for `hpcopt evaluate`


class Problem:
    """Parameters, objectives and bounds of a run, without any evaluation code.

    names: free parameter names (d,); lower, upper: (d,) physical bounds;
    objectives: objective names (m,); weights: (m,) weights of the score.
    """

    def __init__(self, config):
        free = config.free_parameters
        self.config = config
        self.names = tuple(p.name for p in free)
        self.lower = np.array([p.lower for p in free])
        self.upper = np.array([p.upper for p in free])
        self.objectives = tuple(config.problem.objectives)
        self.weights = np.array(config.weights)
        self.penalty = config.problem.penalty
        self.features = tuple(config.problem.features)  # (k,) feature names (cell models)

    @property
    def dimension(self):
        return len(self.names)

    def to_physical(self, U):
        """(n, d) unit-cube points -> (n, d) physical values."""
        return self.lower + np.asarray(U) * (self.upper - self.lower)

    def scores(self, F):
        """(n, m) objectives -> (n,) weighted sums, the one number logs rank by."""
        return np.asarray(F) @ self.weights

    def penalised(self, error, status=FAILED):
        return Outcome(np.full(len(self.objectives), self.penalty), status, error,
                       np.full(len(self.features), np.nan))

    def prepare(self):
        """Once per run, before any rank builds its evaluator (compiles a cell's
        mechanisms); True when done."""
        self._naming_the_config(self.config.problem.prepare)
        return True

    def evaluator(self, comm=None):
        """A callable (d,) physical values -> Outcome, built once per rank.

        comm: the MPI communicator the ranks evaluate on (None: no MPI), for
        simulators that must agree with it (NEURON).
        """
        return self._naming_the_config(self.config.problem.evaluator, self, comm)

    def _naming_the_config(self, step, *args):
        """step(*args); a set-up error (NEURON, mechanisms) becomes a ConfigError naming the config."""
        try:
            return step(*args)
        except HpcoptError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(self.config.source, str(err)) from err


def import_callable(spec, path=(), where="problem.function"):
    """The object named by 'package.module:attribute' (ConfigError if it does not resolve)."""
    module_name, _, attribute = spec.partition(":")
    for directory in reversed(path):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(where, f"cannot import module {module_name!r}: {err}") from err
    except Exception as err:
        raise ConfigError(where, f"importing {module_name!r} raised {type(err).__name__}: {err}") from err
    obj = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise ConfigError(where, f"module {module_name!r} has no attribute {attribute!r}") from err
    if not callable(obj):
        raise ConfigError(where, f"{spec!r} is not callable")
    return obj


class FunctionEvaluator:
    """Evaluates a Python function problem (see config.FunctionProblem)."""

    def __init__(self, problem):
        spec = problem.config.problem
        self.problem = problem
        self.function = import_callable(spec.function, spec.path)
        self.frozen = {p.name: p.value for p in spec.parameters if not p.free}

    def __call__(self, x):
        problem = self.problem
        params = dict(zip(problem.names, map(float, x)))
        params.update(self.frozen)
        try:
            result = self.function(params)
        except Exception as err:  # a bad parameter set is data (STYLE.md 5)
            where = traceback.extract_tb(err.__traceback__)[-1]
            return problem.penalised(f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})")
        try:
            objectives = self._objectives(result)
        except ValueError as err:
            return problem.penalised(str(err))
        return Outcome(objectives, features=np.zeros(0))

    def _objectives(self, result):
        names = self.problem.objectives
        if isinstance(result, dict):
            missing = [n for n in names if n not in result]
            if missing:
                raise ValueError(f"function returned no value for objective(s) {', '.join(missing)}")
            values = [result[n] for n in names]
        else:
            try:
                values = list(result)
            except TypeError:
                raise ValueError(f"function returned {type(result).__name__}, not a dict or sequence") from None
            if len(values) != len(names):
                raise ValueError(f"function returned {len(values)} values for {len(names)} objectives")
        try:
            objectives = np.array(values, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("function returned non-numeric objective values") from None
        bad = [n for n, v in zip(names, objectives) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite value for objective(s) {', '.join(bad)}")
        return objectives
