"""Evaluation of one parameter set of a cell model: set parameters, run every
protocol, score every feature. Built once per rank (the cell is built once).

A failed simulation (CVODE or hoc error, non-finite values) or a timeout is data:
every objective scores the penalty and the status says which.
"""

import time

from ..features.scoring import Scorer
from ..neuron import session
from ..neuron.cell import Cell
from ..neuron.simulation import SimulationError, SimulationTimeout
from .outcome import FAILED, TIMEOUT, Outcome


class CellEvaluator:
    """(d,) physical values of the free parameters -> Outcome.

    problem: space.Problem; model: config.cell.CellModel; comm: the MPI communicator
    of the run (NEURON joins it and must agree with it), or None.
    """

    def __init__(self, problem, model, comm=None):
        session.neuron(comm)
        self.problem = problem
        self.model = model
        self.cell = Cell(model)
        self.scorer = Scorer(model.features, model.penalty, model.trace_check)
        self.frozen = {p.name: p.value for p in model.parameters if p.name not in problem.names}

    def __call__(self, x):
        return self.evaluate(x)[0]

    def evaluate(self, x):
        """(Outcome, the traces it was scored on); the traces are None when the
        simulation failed or timed out (``hpcopt evaluate --plot`` draws them)."""
        values = dict(self.frozen)
        values.update(zip(self.problem.names, map(float, x)))
        try:
            traces = self.simulate(values)
        except SimulationTimeout as err:
            return self.problem.penalised(str(err), TIMEOUT), None
        except SimulationError as err:
            return self.problem.penalised(str(err), FAILED), None
        scores, means, raw = self.scorer(traces)
        return Outcome(scores, features=means, raw=raw), traces

    def simulate(self, values):
        """{(protocol, recording): (t, v)} of every protocol for parameter ``values``."""
        deadline = time.perf_counter() + self.model.simulation.wall_limit
        self.cell.set_parameters(values)
        traces = {}
        for protocol in self.model.protocols:
            for recording, trace in self.cell.run(protocol, self.model.simulation, deadline).items():
                traces[(protocol.name, recording)] = trace
        return traces

