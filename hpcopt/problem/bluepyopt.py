"""Any BluePyOpt evaluator as a problem (config: problem.bluepyopt_evaluator).

The factory (``module:callable``, imported from the config's folder and ``path``) is
called once per process with the config's ``arguments`` and must return a
``bluepyopt.evaluators.Evaluator``: its ``params`` (names and bounds) are the free
parameters, its ``objectives`` the objectives, and an individual scores exactly what
its ``evaluate_with_lists`` returns. An exception there is a failed evaluation.
"""

import math
import os
import sys
import traceback

import numpy as np

from ..errors import ConfigError
from ..neuron import mechanisms, session
from .function import exits_raise, import_callable
from .outcome import Outcome

WHERE = "problem.bluepyopt_evaluator"
_built = {}  # one evaluator per process and spec


def built(spec):
    """The BluePyOpt evaluator of ``spec`` (config.evaluator.EvaluatorProblem), made once
    per process; ConfigError naming the factory when it cannot be made."""
    if spec in _built:
        return _built[spec]
    session.environment(mpi="mpi4py.MPI" in sys.modules)  # the factory may import NEURON
    factory = import_callable(spec.factory, spec.path, where=f"{WHERE}.factory")
    _note_autoloaded()
    try:
        evaluator = factory(**spec.kwargs)
    except Exception as err:
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise ConfigError(f"{WHERE}.factory", f"{spec.factory}(**arguments) raised {type(err).__name__}: {err} "
                                              f"({where.filename}:{where.lineno})") from err
    missing = [a for a in ("params", "objectives", "evaluate_with_lists") if not hasattr(evaluator, a)]
    if missing:
        raise ConfigError(f"{WHERE}.factory", f"{spec.factory} returned a {type(evaluator).__name__}, not a "
                                              f"BluePyOpt evaluator (no {', '.join(missing)})")
    for p in evaluator.params:
        bounds = getattr(p, "bounds", None)
        if not bounds or len(bounds) != 2 or not all(math.isfinite(float(b)) for b in bounds) \
                or not float(bounds[0]) < float(bounds[1]):
            raise ConfigError(f"{WHERE}.factory", f"parameter {p.name!r} of the evaluator has no finite bounds "
                                                  f"[low, high] (found {bounds!r})")
    _built[spec] = evaluator
    return evaluator


def _note_autoloaded():
    """NEURON loads ./x86_64 of the working directory at import without noting it for
    neuron.load_mechanisms, so BluePyOpt's NrnSimulator, run from the folder where its
    user ran nrnivmodl, loads the same library again and fails ("The user defined name
    already exists"): note every library NEURON holds as loaded from its folder."""
    if "neuron" not in sys.modules and "bluepyopt.ephys" not in sys.modules:
        return
    session.load_library()  # NEURON loads ./x86_64 as it is imported
    for library in mechanisms.mapped_libraries():
        folder = os.path.dirname(os.path.dirname(library))
        if os.path.basename(folder) != ".libs":
            session.mark_loaded(folder)
        else:
            session.mark_loaded(os.path.dirname(os.path.dirname(folder)))


def space(spec):
    """(names, lower, upper, objective names) of the evaluator of ``spec``."""
    evaluator = built(spec)
    names = tuple(p.name for p in evaluator.params)
    lower = np.array([float(p.bounds[0]) for p in evaluator.params])
    upper = np.array([float(p.bounds[1]) for p in evaluator.params])
    return names, lower, upper, tuple(o.name for o in evaluator.objectives)


class EvaluatorRoute:
    """(d,) physical values -> Outcome through the BluePyOpt evaluator; built once per rank.

    With NEURON in the process (a cell evaluator), NEURON joins ``comm`` as for cell
    problems; the evaluator's own mechanisms are loaded first, then ``mod_dir``'s
    where they are not the same ones.
    """

    def __init__(self, problem, spec, comm=None, for_a_rank=None):
        self.problem = problem
        self.evaluator = built(spec)
        if "neuron" in sys.modules or spec.mod_dir:
            session.neuron(comm)
            self._own_mechanisms()
        if for_a_rank is None:
            for_a_rank = comm is not None
        if for_a_rank and getattr(self.evaluator, "isolate_protocols", False) is not False:
            # BluePyOpt runs each protocol in a forked child by default; a forked MPI process
            # that makes an MPI call (NEURON does, for a NetCon) takes messages meant for its
            # parent, and the job hangs. The simulations are the same in the rank itself, and
            # in the child process that evaluates for a rank, which does as the rank would.
            self.evaluator.isolate_protocols = False
        if spec.mod_dir:
            mechanisms.load(spec.mod_dir)

    def _own_mechanisms(self):
        """Let a BluePyOpt NrnSimulator load its mechanisms now (it would at the first
        simulation): a failure is a set-up error, not a failed evaluation each time."""
        sim = getattr(self.evaluator, "sim", None)
        directory = getattr(sim, "mechanisms_directory", None)
        if not directory:
            return
        _note_autoloaded()
        try:
            sim.neuron  # noqa: B018 (the property loads them)
        except RuntimeError as err:
            raise session.SetupError(f"loading the evaluator's mechanisms from {directory}: "
                                     f"{str(err).strip().splitlines()[-1]}") from err

    def __call__(self, x):
        problem = self.problem
        try:
            with exits_raise():
                values = self.evaluator.evaluate_with_lists([float(v) for v in x])
        except (Exception, SystemExit) as err:  # a bad parameter set is data (sys.exit() too)
            where = traceback.extract_tb(err.__traceback__)[-1]
            return problem.penalised(f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})")
        try:
            objectives = np.array([float(v) for v in values])
        except (TypeError, ValueError):
            return problem.penalised(f"evaluate_with_lists returned {type(values).__name__}, not numbers")
        if objectives.shape != (len(problem.objectives),):
            return problem.penalised(f"evaluate_with_lists returned {objectives.size} values for "
                                     f"{len(problem.objectives)} objectives")
        if not np.all(np.isfinite(objectives)):
            return problem.penalised("evaluate_with_lists returned non-finite values")
        return Outcome(objectives, features=np.zeros(0))
