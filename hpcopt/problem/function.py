"""Problems defined by a Python callable ``module:name`` (config: problem.function)."""

import contextlib
import importlib
import math
import os
import sys
import traceback

import numpy as np

from ..errors import ConfigError
from .outcome import Outcome


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


@contextlib.contextmanager
def exits_raise():
    """While a user's code evaluates: ``os._exit()`` in this process raises SystemExit
    (a failed evaluation, as ``sys.exit()`` is) instead of ending the rank with a status
    that a job script reads as "finished"; in a child process it forked, ``os._exit``
    still exits, as multiprocessing's children must."""
    real, pid = os._exit, os.getpid()

    def _exit(status):
        if os.getpid() != pid:
            real(status)
        raise SystemExit(f"os._exit({status}) called during an evaluation")

    os._exit = _exit
    try:
        yield
    finally:
        os._exit = real


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
            with exits_raise():
                result = self.function(params)
        except (Exception, SystemExit) as err:  # a bad parameter set is data (sys.exit() too)
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
        if objectives.shape != (len(names),):
            raise ValueError(f"function returned values of shape {objectives.shape}, not one number per objective")
        bad = [n for n, v in zip(names, objectives) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite value for objective(s) {', '.join(bad)}")
        return objectives
