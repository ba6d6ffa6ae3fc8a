"""The package's shape: folders follow the data flow, imports only go down the layers
(imports inside functions included), no import cycle, no function longer than 80 lines.

Layers, lowest first; a module may import its own folder's modules and lower layers:
errors, testfunctions < config < optimize, features, neuron, store < problem <
execute < results < cli < __main__.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hpcopt")
LAYERS = [("errors", "testfunctions", "__init__"), ("config",), ("optimize", "features", "neuron", "store"),
          ("problem",), ("execute",), ("results",), ("cli",), ("__main__",)]
LONGEST_FUNCTION = 80


def modules():
    """{dotted module name: path} of every module of the package."""
    found = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = ["hpcopt"] + os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__" and len(parts) > 2:
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def imports(name, path, known):
    """The package's modules that module ``name`` imports, anywhere in it."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a module's own packages are imported with it: not an edge of the graph
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(module):
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def cycle(edges):
    """One import cycle in ``edges`` ({node: {node}}), or []."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if state.get(other) == "open":
                return stack[stack.index(other):] + [other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_every_module_is_in_a_layer():
    for name in modules():
        layer(name)


def test_imports_only_go_down_the_layers():
    wrong = [f"{a} imports {b}" for a, targets in graph().items() for b in targets
             if layer(b) > layer(a) or (layer(b) == layer(a) and b.split(".")[:2] != a.split(".")[:2]
                                        and layer(a) != 0)]
    assert not wrong, wrong


def test_no_import_cycle_between_modules():
    assert cycle(graph()) == []


def test_no_import_cycle_between_folders():
    folders = {}
    for a, targets in graph().items():
        top = a.split(".")[1] if "." in a else "__init__"
        folders.setdefault(top, set()).update(b.split(".")[1] for b in targets if b.split(".")[1] != top)
    assert cycle(folders) == []


def test_the_config_imports_nothing_of_the_runtime():
    for a, targets in graph().items():
        if a.startswith("hpcopt.config"):
            assert all(b.startswith("hpcopt.config") or b == "hpcopt.errors" for b in targets), (a, targets)


@pytest.mark.parametrize("folder", ["hpcopt", "benchmarks", "tests", "examples"])
def test_no_function_is_longer_than_80_lines(folder):
    top = os.path.join(os.path.dirname(ROOT), folder)
    long = []
    for directory, _, files in os.walk(top):
        for name in (f for f in files if f.endswith(".py")):
            path = os.path.join(directory, name)
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > LONGEST_FUNCTION:
                        long.append(f"{os.path.relpath(path, top)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long


def test_the_checker_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []
