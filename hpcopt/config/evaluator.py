"""``problem.bluepyopt_evaluator``: any BluePyOpt evaluator, made by a factory of the
user's (``"module:callable"`` called with ``arguments``). Its parameters, bounds and
objectives come from the evaluator itself (hpcopt/problem/bluepyopt.py builds it)."""

import json
from dataclasses import dataclass

from . import fields
from .fields import path_of

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
    factory = fields.callable_name(t, where, "factory")
    arguments = t.get("arguments", {})
    if not isinstance(arguments, dict):
        raise where.error("arguments", f"expected an object {{name: value}}, found {fields.show(arguments)}")
    mod_dir = ""
    if t.get("mod_dir"):
        mod_dir = path_of(t["mod_dir"], where, "mod_dir", base_dir)
        if not any(name.endswith(".mod") for name in _listing(mod_dir, where)):
            raise where.error("mod_dir", f"no .mod file in {mod_dir}")
    path = fields.import_path(t, where, base_dir)
    penalty = fields.number(t, where, "penalty", above=0) if "penalty" in t else 250.0
    return EvaluatorProblem(factory, json.dumps(arguments, sort_keys=True), mod_dir, path, penalty)


def _listing(directory, where):
    import os

    if not os.path.isdir(directory):
        raise where.error("mod_dir", f"no such directory: {directory}")
    return os.listdir(directory)
