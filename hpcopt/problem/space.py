"""A run's problem: the map between the unit cube and physical parameter values
(linear or logarithmic per parameter, config/scale.py), its objectives and their
weights, and the evaluator of one parameter set that each rank builds (a Python
function, or a NEURON cell scored by eFEL features)."""

import math

import numpy as np

from ..config.cell import CellProblem
from ..config.evaluator import EvaluatorProblem
from ..config.network import NetworkProblem
from ..errors import ConfigError, HpcoptError
from ..neuron import mechanisms
from .function import FunctionEvaluator
from .outcome import FAILED, Outcome

MAX_ERROR = 1000  # characters of a failed evaluation's message kept


class Problem:
    """Parameters, objectives and bounds of a run, without any evaluation code.

    names: free parameter names (d,); lower, upper: (d,) physical bounds;
    scales: (d,) "linear" or "log", how each is searched; objectives: objective names
    (m,); weights: (m,) weights of the score.
    """

    def __init__(self, config):
        free = config.free_parameters
        self.config = config
        self.names = tuple(p.name for p in free)
        self.lower = np.array([p.lower for p in free])
        self.upper = np.array([p.upper for p in free])
        self.objectives = tuple(config.problem.objectives)
        if self.is_evaluator:  # the evaluator says what they are
            from . import bluepyopt

            self.names, self.lower, self.upper, self.objectives = self._naming_the_config(
                bluepyopt.space, config.problem)
        self.scales = tuple(config.scales((self.names, self.lower, self.upper)).values())
        start = config.start((self.names, self.lower, self.upper))  # CMA-ES's first mean, or None
        self.start = None if start is None else np.array(start, dtype=float)
        self._log = np.array([s == "log" for s in self.scales], dtype=bool)
        self.weights = np.array(config.weights or (1.0,) * len(self.objectives))
        self.penalty = config.problem.penalty
        self.features = tuple(config.problem.features)  # (k,) feature names (cell models)

    @property
    def dimension(self):
        return len(self.names)

    @property
    def space(self):
        """(names, lower, upper) of the free parameters."""
        return self.names, self.lower, self.upper

    def to_physical(self, U):
        """(n, d) unit-cube points -> (n, d) physical values: lower + u (upper - lower) on a
        linear scale, lower (upper / lower)^u on a log scale (within the bounds)."""
        U = np.asarray(U)
        X = self.lower + U * (self.upper - self.lower)  # linear: as always, bit for bit
        for j in np.flatnonzero(self._log):
            # Python's math (the C library), not numpy's vectorised exp and log, which take
            # other code paths on other CPUs: a run resumed on another node computes the same;
            # the bounds themselves exactly
            low, high = float(self.lower[j]), float(self.upper[j])
            lo, hi = math.log(low), math.log(high)
            X[..., j] = np.reshape([low if u <= 0 else high if u >= 1 else min(max(math.exp(lo + u * (hi - lo)), low),
                                                                              high)
                                    for u in map(float, U[..., j].ravel())], U[..., j].shape)
        return X

    def to_unit(self, X):
        """(n, d) physical values -> (n, d) unit-cube coordinates (the inverse of to_physical)."""
        X = np.asarray(X, dtype=float)
        U = (X - self.lower) / (self.upper - self.lower)
        for j in np.flatnonzero(self._log):
            lo, hi = math.log(self.lower[j]), math.log(self.upper[j])
            U[..., j] = (np.log(X[..., j]) - lo) / (hi - lo)
        return U

    def scores(self, F):
        """(n, m) objectives -> (n,) weighted sums, the one number logs rank by."""
        return np.asarray(F) @ self.weights

    def penalised(self, error, status=FAILED):
        """The Outcome of a failed evaluation; ``error`` cut to MAX_ERROR characters (the
        run file keeps every message)."""
        if len(error) > MAX_ERROR:
            error = f"{error[:MAX_ERROR - 40]}... ({len(error):,} characters, cut)"
        return Outcome(np.full(len(self.objectives), self.penalty), status, error,
                       np.full(len(self.features), np.nan))

    @property
    def is_cell(self):
        return isinstance(self.config.problem, CellProblem)

    @property
    def is_network(self):
        return isinstance(self.config.problem, NetworkProblem)

    @property
    def is_evaluator(self):
        return isinstance(self.config.problem, EvaluatorProblem)

    def prepare(self):
        """Once per run, before any rank builds its evaluator: compile the model's own
        mechanisms (a cell's or an evaluator's ``mod_dir``); True when done."""
        problem = self.config.problem
        mod_dir = problem.model.mod_dir if self.is_cell else getattr(problem, "mod_dir", "")
        if mod_dir:
            self._naming_the_config(mechanisms.compiled, mod_dir)
        return True

    def evaluator(self, comm=None, for_a_rank=None):
        """A callable (d,) physical values -> Outcome, built once per rank.

        comm: the MPI communicator the ranks evaluate on (None: no MPI), for
        simulators that must agree with it (NEURON). for_a_rank: the evaluations are
        a rank's (default: with a comm), also in the child process that evaluates for
        one (problem/deadline.py): they then run as they would in the rank itself.
        """
        if for_a_rank is None:
            for_a_rank = comm is not None
        if self.is_cell:
            from . import cell

            return self._naming_the_config(cell.CellEvaluator, self, self.config.problem.model, comm)
        if self.is_network:
            from . import netpyne, network

            evaluator = netpyne.NetPyNEEvaluator if self.config.problem.netpyne else network.NetworkEvaluator
            return self._naming_the_config(evaluator, self, self.config.problem, comm,
                                           self.config.execution.ranks_per_evaluation if comm is not None else 1)
        if self.is_evaluator:
            from . import bluepyopt

            return self._naming_the_config(bluepyopt.EvaluatorRoute, self, self.config.problem, comm, for_a_rank)
        return self._naming_the_config(FunctionEvaluator, self)

    def _naming_the_config(self, step, *args):
        """step(*args); a set-up error (NEURON, mechanisms) becomes a ConfigError naming the config."""
        try:
            return step(*args)
        except HpcoptError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(self.config.source, str(err)) from err
