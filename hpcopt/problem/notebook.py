"""A BluePyOpt notebook's evaluator, as the notebook makes it: a factory for
``problem.bluepyopt_evaluator``.

    {"problem": {"bluepyopt_evaluator": {"factory": "hpcopt.problem.notebook:evaluator",
                                         "arguments": {"notebook": "simplecell.ipynb",
                                                       "name": "cell_evaluator"}}}}

The notebook's code cells run in order, statement by statement, in the notebook's
folder (as Jupyter runs it: the process stays there, so relative paths in the model
keep working), until a statement defines ``name``; that object is the evaluator.
Nothing after it runs, so the notebook's own optimisation and plots do not. IPython
lines (``%magic``, ``!shell``) are skipped, plots go to a file backend, and what the
notebook prints goes to stderr. Running a notebook runs its code: it is a config's
``factory``, code by design.
"""

import ast
import contextlib
import json
import os
import sys


class NotebookError(ValueError):
    """The notebook cannot give the evaluator (the message says why)."""


def evaluator(notebook, name="cell_evaluator"):
    """The object the notebook's code binds to ``name`` (run until it does)."""
    path = os.path.abspath(notebook)
    try:
        with open(path, encoding="utf-8") as f:
            cells = [c for c in json.load(f).get("cells", []) if c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError) as err:
        raise NotebookError(f"{notebook}: not a readable notebook ({err})") from None
    os.environ.setdefault("MPLBACKEND", "Agg")  # the notebook's plots, if it makes any before ``name``
    os.chdir(os.path.dirname(path))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the notebook imports modules beside it
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(sys.stderr):
        for number, cell in enumerate(cells, 1):
            source = "".join(cell.get("source", []))
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                statements = ast.parse(code, filename=f"{notebook} cell {number}").body
            except SyntaxError as err:
                raise NotebookError(f"{notebook}: cell {number}: {err.msg} (line {err.lineno})") from None
            for statement in statements:
                exec(compile(ast.Module([statement], []), f"{notebook} cell {number}", "exec"), namespace)
                if name in namespace:
                    return namespace[name]
    raise NotebookError(f"{notebook}: no code cell defines {name!r}")
