"""Small BluePyOpt evaluators for the ``problem.bluepyopt_evaluator`` tests (importable
from tests/): built from BluePyOpt's own Evaluator, Parameter and Objective classes."""

import bluepyopt as bpop


class Quadratic(bpop.evaluators.Evaluator):
    """Objectives (x - centre)^2 and (y + centre)^2; raises where x > fail_above."""

    def __init__(self, centre=0.25, fail_above=2.0):
        super().__init__(objectives=[bpop.objectives.Objective("fx"), bpop.objectives.Objective("fy")],
                         params=[bpop.parameters.Parameter("x", bounds=(-1.0, 1.0)),
                                 bpop.parameters.Parameter("y", bounds=(-1.0, 1.0))])
        self.centre, self.fail_above = centre, fail_above

    def evaluate_with_lists(self, param_list):
        x, y = param_list
        if x > self.fail_above:
            raise FloatingPointError("the model diverged")
        return [(x - self.centre) ** 2, (y + self.centre) ** 2]


def create(**arguments):
    return Quadratic(**arguments)


def not_an_evaluator():
    return {"params": []}
