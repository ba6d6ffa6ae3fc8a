"""``problem.bluepyopt_evaluator``: any BluePyOpt evaluator, made by a factory of the
user's (``"module:callable"`` called with ``arguments``). Its parameters, bounds and
objectives come from the evaluator itself (hpcopt/problem/bluepyopt.py builds it)."""

import json
from dataclasses import dataclass

from . import fields

KEYS = ("factory", "arguments", "mod_dir", "path", "penalty")


@dataclass(frozen=True)
class EvaluatorProblem:
    factory: str
    arguments: str = "{}"  # JSON object: the factory's keyword arguments
    mod_dir: str = ""
    path: tuple = ()  # directories put in front of sys.path before importing
    penalty: float = 250.0

    parameters = ()  # the evaluator's, once built
    objectives = ()
    features = ()

    @property
    def kwargs(self):
        return json.loads(self.arguments)

    def resolved(self):
        out = {"factory": self.factory, "arguments": self.kwargs, "path": list(self.path), "penalty": self.penalty}
        if self.mod_dir:
            out["mod_dir"] = self.mod_dir
        return {"bluepyopt_evaluator": out}


def parse(raw, where, base_dir):
    t = fields.table(raw, where, required=("factory",), optional=KEYS)
    factory = fields.callable_spec(t, where, "factory")
    arguments = t.get("arguments", {})
    if not isinstance(arguments, dict):
        raise where.error("arguments", f"expected an object {{name: value}}, found {fields.show(arguments)}")
    penalty = fields.number(t, where, "penalty", above=0) if "penalty" in t else 250.0
    return EvaluatorProblem(factory, json.dumps(arguments, sort_keys=True), fields.mod_dir(t, where, base_dir),
                            fields.import_path(t, where, base_dir), penalty)
