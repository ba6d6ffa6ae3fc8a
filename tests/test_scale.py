"""Parameter scales (optimizer.scale) and the evaluation budget (optimizer.evaluations):
what a config resolves to, the map between the unit cube and physical values, the
one-line errors, and how run files keep both (also those made before scales existed)."""

import copy
import json

import h5py
import numpy as np
import pytest
from conftest import assert_same_results, generations, hpcopt, write_config

from hpcopt import config
from hpcopt.config import scale
from hpcopt.errors import ConfigError
from hpcopt.problem.space import Problem

PROBLEM = {
    "function": "hpcopt.testfunctions:rosenbrock",
    "parameters": {"gna": [0.001, 1.0], "gk": [0.01, 0.5], "v": [-80.0, -40.0], "gl": [1e-5, 1e-3], "celsius": 34},
    "objectives": ["f"],
}
CMAES = {"algorithm": "cmaes", "population": 6, "generations": 4, "seed": 5}


def parse(scale_given=None, problem=PROBLEM, **optimizer):
    raw = {"problem": copy.deepcopy(problem), "optimizer": {**CMAES, **optimizer}}
    if scale_given is not None:
        raw["optimizer"]["scale"] = scale_given
    return config.parse(raw, source="c.json")


def test_auto_is_log_from_two_decades_with_positive_bounds():
    assert scale.choose("auto", 1e-5, 1e-3) == "log"
    assert scale.choose("auto", 1.0, 100.0) == "log"  # exactly two decades
    assert scale.choose("auto", 1.0, 99.9) == "linear"
    assert scale.choose("auto", 0.0, 1e3) == "linear"  # a lower bound of 0: no logarithm
    assert scale.choose("auto", -1.0, 1e3) == "linear"
    assert parse("auto").scales() == {"gna": "log", "gk": "linear", "v": "linear", "gl": "log"}


def test_scales_resolve_per_parameter_and_are_stored_so():
    assert scale.DEFAULT == "auto"  # measured: benchmarks/results/scaling.md
    assert parse().scales() == parse("auto").scales()
    c = parse({"default": "auto", "gk": "log", "gl": "linear"})
    assert c.scales() == {"gna": "log", "gk": "log", "v": "linear", "gl": "linear"}
    resolved = c.resolved()
    assert resolved["optimizer"]["scale"] == {"gna": "log", "gk": "log", "v": "linear", "gl": "linear"}
    # the stored form parses back to the same scales (resume reads it)
    again = config.parse(json.loads(json.dumps(resolved)))
    assert again.resolved() == resolved
    assert parse({"gk": "log"}).scales() == {"gna": "log", "gk": "log", "v": "linear", "gl": "log"}  # auto


@pytest.mark.parametrize("given, field, message", [
    ({"g_na": "log"}, "optimizer.scale.g_na", "not a free parameter of the problem; free: gna, gk, v, gl"),
    ({"celsius": "log"}, "optimizer.scale.celsius", "not a free parameter"),  # frozen
    ({"v": "log"}, "optimizer.scale.v", "log scale for v needs a lower bound > 0, found -80"),
    ("log", "optimizer.scale", "log scale for v needs a lower bound > 0, found -80"),
    ("logarithmic", "optimizer.scale", "unknown scale \"logarithmic\"; valid: linear, log, auto"),
    ({"gk": "exp"}, "optimizer.scale.gk", "unknown scale \"exp\""),
    (["log"], "optimizer.scale", "expected one of linear, log, auto"),
])
def test_bad_scales_name_the_parameter(given, field, message):
    with pytest.raises(ConfigError) as info:
        parse(given)
    text = str(info.value)
    assert text.startswith(f"c.json: {field}:") and message in text, text


def test_unit_cube_maps_linearly_or_logarithmically():
    problem = Problem(parse({"default": "auto", "gl": "linear"}))
    assert problem.scales == ("log", "linear", "linear", "linear")
    U = np.random.default_rng(1).random((50, 4))
    X = problem.to_physical(U)
    lower, upper = problem.lower, problem.upper
    # linear columns: the formula hpcopt always used, bit for bit
    assert np.array_equal(X[:, 1:], (lower + U * (upper - lower))[:, 1:])
    # the log column: uniform in the logarithm
    assert np.allclose(np.log10(X[:, 0]), -3 + 3 * U[:, 0], rtol=0, atol=1e-12)
    assert np.allclose(problem.to_unit(X), U, rtol=0, atol=1e-12)
    ends = problem.to_physical(np.array([[0.0] * 4, [1.0] * 4, [0.5] * 4]))
    assert np.array_equal(ends[0], lower) and np.array_equal(ends[1], upper)
    assert ends[2, 0] == pytest.approx(np.sqrt(0.001 * 1.0), rel=1e-12)  # the centre: the geometric mean


def test_evaluations_or_generations():
    assert parse(generations=4).optimizer.evaluations == 24
    c = config.parse({"problem": PROBLEM, "optimizer": {**{k: v for k, v in CMAES.items() if k != "generations"},
                                                         "evaluations": 100}})
    # the run stops after the generation in which the budget is reached: 17 x 6 = 102 >= 100
    assert (c.optimizer.generations, c.optimizer.evaluations, c.optimizer.budget) == (17, 100, "evaluations")
    assert "generations" not in c.resolved()["optimizer"] and c.resolved()["optimizer"]["evaluations"] == 100
    ibea = {"algorithm": "ibea", "population": 10, "offspring": 4, "evaluations": 19}
    o = config.parse({"problem": PROBLEM, "optimizer": ibea}).optimizer
    assert o.generations == 4  # 10 + 3 x 4 = 22 >= 19 > 10 + 2 x 4
    o = config.parse({"problem": PROBLEM, "optimizer": {**ibea, "evaluations": 7}}).optimizer
    assert o.generations == 1  # fewer than a population: the first generation


@pytest.mark.parametrize("optimizer, field, message", [
    ({**CMAES, "evaluations": 100}, "optimizer", "give the budget as either generations or evaluations, not both"),
    ({"algorithm": "cmaes", "population": 6}, "optimizer.generations",
     "missing (required): give the budget as generations or as evaluations"),
    ({"algorithm": "cmaes", "population": 6, "evaluations": 0}, "optimizer.evaluations", "must be >= 1"),
])
def test_bad_budgets(optimizer, field, message):
    with pytest.raises(ConfigError) as info:
        config.parse({"problem": PROBLEM, "optimizer": optimizer}, source="c.json")
    text = str(info.value)
    assert text.startswith(f"c.json: {field}:") and message in text, text


def test_validate_prints_each_parameter_scale(tmp_path):
    optimizer = {k: v for k, v in CMAES.items() if k != "generations"}
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**optimizer, "evaluations": 50, "scale": "auto"})
    done = hpcopt("validate", path)
    assert "population 6, 50 evaluations (9 generations)" in done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].startswith("settings: ") and lines[2] == "scale of each free parameter (optimizer.scale):"
    assert [line.split() for line in lines[3:]] == [
        ["gna", "[0.001,", "1]", "log"], ["gk", "[0.01,", "0.5]", "linear"], ["v", "[-80,", "-40]", "linear"],
        ["gl", "[1e-05,", "0.001]", "log"]]
    bad = write_config(tmp_path, "bad.json", problem=PROBLEM, optimizer={**CMAES, "scale": {"gx": "log"}})
    done = hpcopt("validate", bad, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"hpcopt: error: {bad}: optimizer.scale.gx: not a free parameter of the "
                                   "problem; free: gna, gk, v, gl")


def test_evaluation_budget_run_and_resume(tmp_path):
    """evaluations 20 at population 6: 4 generations (24 evaluations); resume --evaluations 40
    raises it to 7 generations, the same as a run of 7 generations; resume --generations
    goes back to a generation budget."""
    optimizer = {k: v for k, v in CMAES.items() if k != "generations"}
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**optimizer, "evaluations": 20, "scale": "auto"})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5")
    assert "evaluation budget of 20 reached in generation 3" in done.stderr
    assert len(generations(tmp_path / "run.h5")) == 4
    status = hpcopt("status", tmp_path / "run.h5").stdout
    assert "generations   4 of 4 done (100 %); finished: evaluation budget of 20 reached in generation 3" in status
    done = hpcopt("resume", tmp_path / "run.h5", "--evaluations", 40)
    assert "gen 7/7" in done.stderr
    with h5py.File(tmp_path / "run.h5", "r") as f:
        stored = json.loads(f.attrs["config"])["optimizer"]
    assert stored["evaluations"] == 40 and "generations" not in stored
    full = write_config(tmp_path, "full.json", problem=PROBLEM, optimizer={**CMAES, "generations": 7, "scale": "auto"})
    hpcopt("run", full, "-o", tmp_path / "full.h5")
    assert_same_results(tmp_path / "run.h5", tmp_path / "full.h5")
    hpcopt("resume", tmp_path / "run.h5", "--generations", 8)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        stored = json.loads(f.attrs["config"])["optimizer"]
    assert stored["generations"] == 8 and "evaluations" not in stored
    refused = hpcopt("resume", tmp_path / "run.h5", "--evaluations", 10, "--generations", 3, check=False)
    assert refused.returncode == 2 and "not allowed with argument" in refused.stderr
    refused = hpcopt("resume", tmp_path / "run.h5", "--evaluations", 0, check=False)
    assert refused.returncode == 2 and "--evaluations: must be >= 1, found 0" in refused.stderr


def test_run_continue_may_change_the_budget_unit(tmp_path):
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**CMAES, "scale": "auto"})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    optimizer = {k: v for k, v in CMAES.items() if k != "generations"}
    more = write_config(tmp_path, "more.json", problem=PROBLEM,
                        optimizer={**optimizer, "evaluations": 36, "scale": "auto"})
    done = hpcopt("run", more, "-o", tmp_path / "run.h5", "--continue")
    assert "gen 6/6" in done.stderr
    other = write_config(tmp_path, "other.json", problem=PROBLEM, optimizer={**CMAES, "scale": "linear"})
    refused = hpcopt("run", other, "-o", tmp_path / "run.h5", "--continue", check=False)
    assert refused.returncode == 2 and "optimizer.scale.gna: differs from the config" in refused.stderr


def _drop_stored_scale(path):
    """Make ``path`` look like a run file written before scales existed."""
    with h5py.File(path, "r+") as f:
        stored = json.loads(f.attrs["config"])
        del stored["optimizer"]["scale"]
        f.attrs["config"] = json.dumps(stored)


def test_a_run_file_without_scale_resumes_linear(tmp_path):
    """A stored config without ``scale`` (an older hpcopt's) means linear, whatever the
    default is now: resuming it equals an uninterrupted linear run."""
    full = write_config(tmp_path, "full.json", problem=PROBLEM, optimizer={**CMAES, "generations": 6,
                                                                            "scale": "linear"})
    hpcopt("run", full, "-o", tmp_path / "full.h5")
    half = write_config(tmp_path, "half.json", problem=PROBLEM, optimizer={**CMAES, "generations": 3,
                                                                            "scale": "linear"})
    hpcopt("run", half, "-o", tmp_path / "old.h5")
    _drop_stored_scale(tmp_path / "old.h5")
    hpcopt("resume", tmp_path / "old.h5", "--generations", 6)
    assert_same_results(tmp_path / "old.h5", tmp_path / "full.h5")
    with h5py.File(tmp_path / "old.h5", "r") as f:
        assert json.loads(f.attrs["config"])["optimizer"]["scale"] == dict.fromkeys(["gna", "gk", "v", "gl"],
                                                                                    "linear")
    # run --continue with the config it started from (no scale) continues on the run's scales too
    hpcopt("run", half, "-o", tmp_path / "old2.h5")
    _drop_stored_scale(tmp_path / "old2.h5")
    plain = {**CMAES, "generations": 6}
    again = write_config(tmp_path, "again.json", problem=PROBLEM, optimizer=plain)
    hpcopt("run", again, "-o", tmp_path / "old2.h5", "--continue")
    assert_same_results(tmp_path / "old2.h5", tmp_path / "full.h5")


def test_an_evaluator_s_parameters_get_scales_once_it_is_built(tmp_path):
    """problem.bluepyopt_evaluator: the names are the evaluator's, checked when it is built."""
    pytest.importorskip("bluepyopt")
    from conftest import HERE

    problem = {"bluepyopt_evaluator": {"factory": "bpo_evaluators:create", "path": [HERE]}}
    optimizer = {"algorithm": "ibea", "population": 6, "generations": 2, "seed": 4}
    path = write_config(tmp_path, problem=problem, optimizer={**optimizer, "scale": {"z": "log"}})
    done = hpcopt("validate", path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"hpcopt: error: {path}: optimizer.scale.z: not a free parameter of the " \
                                  "problem; free: x, y"
    path = write_config(tmp_path, problem=problem, optimizer={**optimizer, "scale": {"default": "auto", "x": "log"}})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2 and "optimizer.scale.x: log scale for x needs a lower bound > 0, found -1" in \
        done.stderr
    path = write_config(tmp_path, problem=problem, optimizer={**optimizer, "scale": "auto"})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert json.loads(f.attrs["config"])["optimizer"]["scale"] == {"x": "linear", "y": "linear"}
    hpcopt("resume", tmp_path / "run.h5", "--generations", 3)


def test_asynchronous_ibea_stops_at_exactly_the_evaluation_budget(tmp_path):
    problem = {"function": "hpcopt.testfunctions:zdt1", "parameters": {f"x{i}": [0.001, 1.0] for i in range(3)},
               "objectives": ["f1", "f2"]}
    optimizer = {"algorithm": "ibea", "population": 10, "evaluations": 37, "asynchronous": True, "batch": 4,
                 "scale": "log"}
    path = write_config(tmp_path, problem=problem, optimizer=optimizer)
    done = hpcopt("run", path, "-o", tmp_path / "run.h5")
    assert "done: 10 batches, 37 evaluations" in done.stderr
    hpcopt("resume", tmp_path / "run.h5", "--evaluations", 45)
    assert sum(len(g["status"]) for g in generations(tmp_path / "run.h5").values()) == 45
