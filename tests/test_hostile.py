"""Files from elsewhere are data, not code: hostile inputs a colleague's config or run
file could carry. Each must be refused with one line (exit 2) or scored as a failed
evaluation, and must never run anything."""

import json
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import HERE, hpcopt, write_config

from hpcopt.config.expressions import ExpressionError, distribution_function
from hpcopt.store import runfile

ESCAPES = [
    "().__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()"
    "._module.__builtins__['__import__']('os').system('touch {marker}')",
    "__import__('os').system('touch {marker}')",
    "math.__dict__['exp']({value})",
    "{value}.__class__",
    "(lambda: 1)()",
    "9**9**9**9",  # a number, but not a finite one: refused for what it gives
]


def cell(tmp_path, expression, bounds=None):
    """examples/cell with its apical g_pas distributed by ``expression`` (and ``bounds``)."""
    raw = json.load(open(f"{HERE}/../examples/cell/config.json"))
    for p in raw["problem"]["cell"]["parameters"]:
        if p["param_name"] == "g_pas" and p.get("sectionlist") == "apical":
            p.update(type="range", dist_type="exp", dist=expression, **({"bounds": bounds} if bounds else {}))
    raw["optimizer"] = {"algorithm": "cmaes", "population": 2, "generations": 1}
    return write_config(tmp_path, problem=raw["problem"], optimizer=raw["optimizer"])


@pytest.mark.parametrize("payload", ESCAPES)
def test_a_distance_expression_never_runs_code(tmp_path, payload):
    marker = tmp_path / "ran"
    expression = payload.replace("{marker}", str(marker))
    with pytest.raises(ExpressionError):
        distribution_function(expression)(1.0, 1.0) if "9**9" not in payload else _finite(expression)
    done = hpcopt("validate", cell(tmp_path, expression), check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "problem.cell.parameters" in done.stderr and ".dist:" in done.stderr
    assert not marker.exists()


def _finite(expression):
    try:
        distribution_function(expression)(1.0, 1.0)
    except OverflowError as err:
        raise ExpressionError(str(err)) from err


def test_blueopts_own_expressions_still_evaluate_as_before():
    expression = "(-0.8696 + 2.087*math.exp(({distance})*0.0031))*{value}"
    f = distribution_function(expression)
    for distance in (0.0, 12.5, 660.0, 1234.567):
        reference = eval(expression.format(distance=repr(distance), value="0.0002"), {"math": __import__("math")})
        assert f(distance, 0.0002) == reference


def test_a_doctored_run_file_is_refused_before_anything_is_built(tmp_path):
    """A run file whose stored config carries an escape: export and report say so in one
    line and run nothing."""
    path = cell(tmp_path, "{value}")
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    marker = tmp_path / "ran"
    with h5py.File(tmp_path / "run.h5", "r+") as f:
        config = json.loads(f.attrs["config"])
        parameters = config["problem"]["cell"]["parameters"]
        apical = next(p for p in parameters if p["param_name"] == "g_pas" and p.get("sectionlist") == "apical")
        apical["dist"] = f"__import__('os').system('touch {marker}')"
        f.attrs["config"] = json.dumps(config)
    for command in (["export", tmp_path / "run.h5", "--hoc", tmp_path / "cell.hoc"],
                    ["resume", tmp_path / "run.h5", "--generations", 2]):
        done = hpcopt(*command, check=False)
        assert done.returncode == 2 and "not allowed" in done.stderr, (command, done.stderr)
        assert not marker.exists()
    # the report is made from the stored data and says why it re-simulates nothing
    done = hpcopt("report", tmp_path / "run.h5", "-o", tmp_path / "report")
    assert "not allowed" in done.stderr and (tmp_path / "report" / "index.html").exists()
    assert not marker.exists()
    assert not (tmp_path / "cell.hoc").exists()


def test_an_expression_that_fails_for_some_values_is_a_failed_evaluation(tmp_path):
    """math.log({value} - 0.5) evaluates at validation (value 1) and fails for value 0.1."""
    path = cell(tmp_path, "math.log({value} - 0.5) * 1e-4", bounds=[0.1, 1.0])
    params = tmp_path / "p.json"
    truth = json.load(open(f"{HERE}/../examples/cell/truth.json"))
    params.write_text(json.dumps({**truth, "g_pas.apical": 0.1}))
    done = hpcopt("evaluate", path, "--params", params, "--json", check=False)
    result = json.loads(done.stdout)
    assert result["status"] == "failed" and "ValueError: math domain error" in result["error"], done.stdout


@pytest.mark.parametrize("ranks", [None, 2, 3])
@pytest.mark.parametrize("function, error", [("exits", "SystemExit: 0"),
                                             ("hard_exits", "SystemExit: os._exit(0) called during an evaluation")])
def test_a_function_ending_the_process_is_a_failed_evaluation_not_a_finished_run(tmp_path, ranks, function, error):
    problem = {"function": f"models:{function}", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 6, "generations": 3})
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert len(f["generations"]) == 3
        g = f["generations/000000"]
        failed = g["status"][()] == 1
        assert failed.any() and (failed == (g["parameters"][()][:, 0] > 0.5)).all()
        assert all(e.decode().startswith(error) for e, bad in zip(g["error"][()], failed) if bad)


def test_hostile_names_in_a_run_file_are_only_ever_written_as_data(tmp_path):
    """A protocol named to break out of a hoc comment or a Python docstring: the exported
    files load and run without running it."""
    marker = tmp_path / "ran"
    path = cell(tmp_path, "{value}")
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    hostile = f'x\n{{system("touch {marker}")}}\n"""\nimport os; os.system("touch {marker}")\n'
    with h5py.File(tmp_path / "run.h5", "r+") as f:
        config = json.loads(f.attrs["config"])
        for section in ("protocols", "features"):
            table = config["problem"]["cell"][section]
            first = next(iter(table))
            table[hostile] = table.pop(first)
        f.attrs["config"] = json.dumps(config)
    hpcopt("export", tmp_path / "run.h5", "--hoc", tmp_path / "cell.hoc")
    hpcopt("export", tmp_path / "run.h5", "--python", tmp_path / "cell.py")
    load = "import sys; from neuron import h; h.load_file(sys.argv[1])"
    subprocess.run([sys.executable, "-c", load, str(tmp_path / "cell.hoc")], check=True, capture_output=True)
    subprocess.run([sys.executable, str(tmp_path / "cell.py")], check=True, capture_output=True)
    assert not marker.exists()


@pytest.mark.parametrize("entry, message", [
    ({"param_name": 'x = 1\nsystem("id")', "type": "global", "value": 1}, "param_name: expected a NEURON name"),
    ({"param_name": "gl_hh", "attribute": "gl_hh}{system(1)", "type": "section", "sectionlist": "somatic",
      "value": 1}, "attribute: expected a NEURON name"),
])
def test_names_that_become_neuron_code_must_be_names(tmp_path, entry, message):
    path = cell(tmp_path, "{value}")
    raw = json.load(open(path))
    raw["problem"]["cell"]["parameters"].append(entry)
    json.dump(raw, open(path, "w"))
    done = hpcopt("validate", path, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


def test_the_lock_file_never_follows_a_symlink(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (tmp_path / "run.h5.lock").symlink_to(precious)
    problem = {"function": "hpcopt.testfunctions:zdt1", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 4, "generations": 1})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2 and "run.h5.lock" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert precious.read_text() == "keep me\n" and not (tmp_path / "run.h5").exists()


def test_best_prints_names_escape_sequences_escaped(tmp_path):
    problem = {"function": "models:named", "parameters": {"x\x1b[2Jy": [0, 1], "z": [0, 1]},
               "objectives": ["f\x1b]0;owned\x07"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 4, "generations": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    out = hpcopt("best", tmp_path / "run.h5").stdout
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_a_huge_error_message_is_cut(tmp_path):
    problem = {"function": "models:huge_error", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 4, "generations": 3})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    assert (tmp_path / "run.h5").stat().st_size < 1_000_000
    with h5py.File(tmp_path / "run.h5", "r") as f:
        errors = [e.decode() for g in f["generations"].values() for e in g["error"][()] if e]
    assert errors and all(e.endswith(" characters, cut)") and len(e) < 1100 for e in errors)


def test_a_planted_mechanisms_build_in_a_shared_cache_is_not_loaded(tmp_path):
    """Another user's (here: world-writable) build at the predictable path is refused."""
    script = ("import sys; from hpcopt.neuron import mechanisms; "
              "print(mechanisms.compiled(sys.argv[1], cache=sys.argv[2]))")
    mod_dir = f"{HERE}/data/l5pc_like/mechanisms"
    built = subprocess.run([sys.executable, "-c", script, mod_dir, str(tmp_path)], capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
    os.chmod(built, 0o777)
    done = subprocess.run([sys.executable, "-c", script, mod_dir, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "not yours or that others can write to" in done.stderr


def test_a_damaged_journal_line_is_skipped_with_a_warning(tmp_path):
    from hpcopt.store.journal import Journal

    path = str(tmp_path / "run.h5")
    with open(path + ".journal", "w") as f:
        f.write('{"event": "session"}\n{"event": "start", "id": 3, "ra\x00\x00\n{"event": "abandoned", "id": 3}\n')
    journal = Journal(path)
    journal.close()
    assert [e["event"] for e in journal.entries] == ["session", "abandoned"]


def cmaes_run(tmp_path):
    path = write_config(tmp_path, problem={"function": "hpcopt.testfunctions:rosenbrock",
                                           "parameters": {f"x{i}": [-2, 2] for i in range(3)}, "objectives": ["f"]},
                        optimizer={"algorithm": "cmaes", "population": 6, "generations": 2, "seed": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    return tmp_path / "run.h5"


def test_a_cmaes_run_file_holds_no_pickle_and_resumes_from_its_data(tmp_path):
    run = cmaes_run(tmp_path)
    with runfile.RunFile(run) as r:
        arrays = r.state()["generator"]
        assert arrays["es.sm.C"].shape == (3, 3)  # packed with the other small arrays (docs/runfile.md)
    with h5py.File(run, "r") as f:
        state = f["state/generator"]
        assert "strategy" not in state and list(state) == ["packed_arrays", "tree"]
        tree = json.loads(state["tree"][()].tobytes())
        assert tree["$obj"] == "cma.evolution_strategy:CMAEvolutionStrategy"
    hpcopt("resume", run, "--generations", 4)
    with h5py.File(run, "r") as f:
        assert f["state"].attrs["next_generation"] == 4


@pytest.mark.parametrize("where", ["$obj", "$ref"])
def test_a_doctored_cmaes_state_naming_other_code_is_refused(tmp_path, where):
    run = cmaes_run(tmp_path)
    with h5py.File(run, "r+") as f:
        state = f["state/generator"]
        tree = json.loads(state["tree"][()].tobytes())
        if where == "$obj":
            tree["$obj"] = "os:system"
        else:
            tree["attrs"]["$dict"][0][1] = {"$ref": "os:system"}
        data = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
        del state["tree"]
        state.create_dataset("tree", data=data, maxshape=(None,))
        state["tree"].attrs["bytes"] = True
    done = hpcopt("resume", run, "--generations", 4, check=False)
    assert done.returncode == 2 and "os:system is not among the allowed" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_old_pickled_cmaes_state_is_never_unpickled(tmp_path):
    """Run files of earlier hpcopt versions stored CMA-ES as a pickle: resuming one says so
    in one line, and the pickle does not run."""
    run = cmaes_run(tmp_path)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with h5py.File(run, "r+") as f:
        state = f["state/generator"]
        state.create_dataset("strategy", data=np.frombuffer(pickle.dumps(Payload()), dtype=np.uint8))
        state["strategy"].attrs["bytes"] = True
    done = hpcopt("resume", run, "--generations", 4, check=False)
    assert done.returncode == 2 and "pickle" in done.stderr and not marker.exists(), done.stderr
    assert hpcopt("best", run).returncode == 0  # still readable


def _cell_with(tmp_path, change):
    raw = json.load(open(f"{HERE}/../examples/cell/config.json"))
    change(raw["problem"]["cell"])
    path = tmp_path / "cell.json"
    path.write_text(json.dumps(raw))
    return path


def _feature(spec):
    return lambda cell: cell["features"]["hyperpol"]["soma"].__setitem__("voltage_base", spec)


def _synapse(**parameters):
    stimulus = {"type": "synapse", "synapse": {"mechanism": "ExpSyn", **parameters}, "start": 10, "interval": 5,
                "number": 2, "weight": 0.01}
    return lambda cell: cell["protocols"]["step_low"]["stimuli"].append(stimulus)


@pytest.mark.parametrize("change, message", [
    (_feature({"mean": -65, "std": 1, "stim_start": 100, "stim_end": 50}), "feature window [100, 50] is empty"),
    (_feature({"mean": -65, "std": 1, "settings": {"interp_stp": 0.1}}), "interp_stp: not an eFEL setting"),
    (_feature({"mean": -65, "std": 1, "settings": {"interp_step": "fast"}}), "interp_step: expected float"),
    (_synapse(taux=2), "synapse ExpSyn has no parameter 'taux'"),
    (_synapse(tau="x"), "synapse.tau: expected a number"),
    (lambda cell: cell["parameters"][-1].__setitem__("bounds", [0, float("inf")]), "span must be finite"),
])
def test_cell_inputs_that_crashed_every_evaluation_fail_validation_in_one_line(tmp_path, change, message):
    done = hpcopt("validate", _cell_with(tmp_path, change), check=False)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
        done.stderr


def test_a_function_returning_nested_lists_is_a_failed_evaluation_and_huge_bounds_are_refused(tmp_path):
    problem = {"function": "models:nested", "parameters": {"x0": [0, 1]}, "objectives": ["f1"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "cmaes", "population": 4, "generations": 1})
    (tmp_path / "p.json").write_text(json.dumps({"x0": 0.5}))
    done = hpcopt("evaluate", path, "--params", tmp_path / "p.json", check=False)
    assert done.returncode == 1 and "shape (1, 1), not one number per objective" in done.stdout, done.stderr
    problem["parameters"] = {"x0": [-1e308, 1e308]}
    done = hpcopt("validate", write_config(tmp_path, name="huge.json", problem=problem,
                                           optimizer={"algorithm": "cmaes", "population": 4, "generations": 1}),
                  check=False)
    assert done.returncode == 2 and "span must be finite" in done.stderr
