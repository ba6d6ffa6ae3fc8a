"""Where CMA-ES starts (optimizer.start): BluePyOpt's ``centroids``. A refinement run
starts at an earlier fit (a {parameter: value} object, or the file ``hpcopt export
--json`` writes) with a small sigma0; the run file keeps the values, so a resume needs
no other file; every bad start is one error naming the field."""

import copy
import json

import h5py
import numpy as np
import pytest
from conftest import assert_same_results, generations, hpcopt, write_config

from hpcopt import config
from hpcopt.errors import ConfigError
from hpcopt.problem.outcome import OK, TIMEOUT
from hpcopt.problem.space import Problem

PROBLEM = {
    "function": "hpcopt.testfunctions:rosenbrock",
    "parameters": {"gna": [0.001, 1.0], "gk": [0.01, 0.5], "v": [-80.0, -40.0], "celsius": 34},
    "objectives": ["f"],
}
START = {"gna": 0.002, "gk": 0.3, "v": -45.0}  # gna on a log scale (auto), the others linear
CMAES = {"algorithm": "cmaes", "population": 6, "generations": 3, "seed": 5}


def parse(start, **optimizer):
    raw = {"problem": copy.deepcopy(PROBLEM), "optimizer": {**CMAES, "start": start, **optimizer}}
    return config.parse(raw, source="c.json")


def test_the_first_generation_is_sampled_around_the_start_on_each_parameters_scale(tmp_path):
    problem = Problem(parse(START))
    assert problem.scales == ("log", "linear", "linear")
    assert problem.start.tolist() == [0.002, 0.3, -45.0]
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**CMAES, "start": START, "sigma0": 1e-6})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    first = generations(tmp_path / "run.h5", ("parameters",))["000000"]["parameters"]
    assert first.shape == (6, 3)
    np.testing.assert_allclose(first, np.tile([0.002, 0.3, -45.0], (6, 1)), rtol=1e-4)
    assert not np.array_equal(first[0], first[1])  # sampled, not copied
    centre = write_config(tmp_path, "centre.json", problem=PROBLEM, optimizer={**CMAES, "sigma0": 1e-6})
    hpcopt("run", centre, "-o", tmp_path / "centre.h5")
    middle = generations(tmp_path / "centre.h5", ("parameters",))["000000"]["parameters"]
    np.testing.assert_allclose(middle[0], [np.sqrt(0.001 * 1.0), 0.255, -60.0], rtol=1e-4)


def test_a_start_file_from_export_is_stored_by_value_and_resumes_exactly(tmp_path):
    first = write_config(tmp_path, "first.json", problem=PROBLEM, optimizer=CMAES)
    hpcopt("run", first, "-o", tmp_path / "first.h5")
    (tmp_path / "fits").mkdir()
    hpcopt("export", tmp_path / "first.h5", "--json", tmp_path / "fits" / "best.json")
    best = json.loads((tmp_path / "fits" / "best.json").read_text())
    refine = {**CMAES, "start": "fits/best.json", "sigma0": 0.01}  # relative to the config's folder
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**refine, "generations": 2})
    shown = hpcopt("validate", path).stdout.splitlines()
    assert shown[1].endswith("starting at optimizer.start")
    assert shown[2] == "scale of each free parameter (optimizer.scale) and where CMA-ES starts (optimizer.start):"
    assert [line.split()[-1] for line in shown[3:]] == [f"{best[n]:g}" for n in ("gna", "gk", "v")]
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert json.loads(f.attrs["config"])["optimizer"]["start"] == best
    (tmp_path / "fits" / "best.json").unlink()  # the run file holds the values
    hpcopt("resume", tmp_path / "run.h5", "--generations", 4)
    whole = write_config(tmp_path, "whole.json", problem=PROBLEM, optimizer={**refine, "start": best,
                                                                             "generations": 4})
    hpcopt("run", whole, "-o", tmp_path / "whole.h5")
    assert_same_results(tmp_path / "run.h5", tmp_path / "whole.h5")
    hpcopt("resume", tmp_path / "run.h5", "--generations", 5, ranks=3)  # and at another rank count
    hpcopt("resume", tmp_path / "whole.h5", "--generations", 5)
    assert_same_results(tmp_path / "run.h5", tmp_path / "whole.h5")


@pytest.mark.parametrize("start, field, message", [
    ({"gna": 0.002, "gk": 0.3}, "optimizer.start", "no value for v (give every free parameter)"),
    ({**START, "celsius": 34}, "optimizer.start.celsius", "not a free parameter; free: gna, gk, v"),
    ({**START, "gk": 0.6}, "optimizer.start.gk", "0.6 is outside its bounds [0.01, 0.5]"),
    ({**START, "gk": 0.5 + 1e-6}, "optimizer.start.gk", "0.500001 is outside its bounds [0.01, 0.5]"),
    ({**START, "v": 10 ** 400}, "optimizer.start.v", "expected a number, found 1000000000"),
    ({**START, "v": "-45"}, "optimizer.start.v", 'expected a number, found "-45"'),
    ({**START, "v": True}, "optimizer.start.v", "expected a number, found true"),
    ({}, "optimizer.start", "expected an object {parameter name: value} or the path of a JSON file"),
    ([0.002, 0.3, -45.0], "optimizer.start", "expected an object {parameter name: value}"),
])
def test_bad_starts_name_the_field(start, field, message):
    with pytest.raises(ConfigError) as info:
        parse(start)
    text = str(info.value)
    assert text.startswith(f"c.json: {field}:") and message in text, text


def test_a_start_a_rounding_beyond_a_bound_is_that_bound():
    """A fit on a bound is exported as the value it was evaluated at, lower + 1.0 x (upper
    - lower), which can be an ulp beyond the bound: it starts there, not as an error."""
    beyond = -80.0 + 1.0 * (-40.0 - -80.0 + 1e-14)
    assert Problem(parse({**START, "gk": 0.5000000000000001, "v": beyond})).start.tolist() == [0.002, 0.5, -40.0]
    assert Problem(parse({**START, "gna": 0.0009999999999999998})).start[0] == 0.001


def test_a_replaced_evaluation_process_reads_no_start_file(tmp_path):
    """With evaluation.timeout the evaluating child is replaced after a timeout: it builds
    the problem from the values read when the job started, not from the file again."""
    (tmp_path / "best.json").write_text(json.dumps({"x": 0.3, "y": 0.2}))
    problem = {"function": "models:removes_then_blocks", "parameters": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
               "objectives": ["f"]}
    path = write_config(tmp_path, problem=problem, optimizer={**CMAES, "population": 4, "start": "best.json"},
                        evaluation={"timeout": 5})
    env = {"HPCOPT_TEST_MARKER": str(tmp_path / "blocked"), "HPCOPT_TEST_REMOVE": str(tmp_path / "best.json")}
    hpcopt("run", path, "-o", tmp_path / "run.h5", env=env)
    assert not (tmp_path / "best.json").exists()
    with h5py.File(tmp_path / "run.h5", "r") as f:
        status = np.concatenate([f["generations"][g]["status"][()] for g in f["generations"]])
    assert len(status) == 12 and np.count_nonzero(status == TIMEOUT) == 1 and np.count_nonzero(status == OK) == 11


def test_bad_start_files_and_ibea_are_one_error(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "far.json").write_text(json.dumps({**START, "gna": 2.0}))
    cases = [("none.json", "none.json: cannot read optimizer.start: No such file or directory"),
             ("list.json", "list.json: expected an object {parameter name: value} (as 'hpcopt export --json' "
                           "writes), found [1, 2, 3]"),
             ("far.json", "optimizer.start.gna: 2.0 is outside its bounds [0.001, 1]")]
    for given, message in cases:
        path = write_config(tmp_path, problem=PROBLEM, optimizer={**CMAES, "start": given})
        done = hpcopt("validate", path, check=False)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    path = write_config(tmp_path, problem=PROBLEM, optimizer={**CMAES, "algorithm": "ibea", "start": START})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"hpcopt: error: {path}: optimizer.start: not an option of ibea (IBEA starts from a uniformly random "
        "population)")
    assert not (tmp_path / "run.h5").exists()


def test_an_evaluators_start_is_checked_once_it_is_built(tmp_path):
    pytest.importorskip("bluepyopt")
    from conftest import HERE

    problem = {"bluepyopt_evaluator": {"factory": "bpo_evaluators:create", "path": [HERE]}}
    path = write_config(tmp_path, problem=problem, optimizer={**CMAES, "start": {"x": 0.5, "z": 0.0}})
    done = hpcopt("validate", path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"hpcopt: error: {path}: optimizer.start.z: not a free parameter; free: x, y"
    path = write_config(tmp_path, problem=problem, optimizer={**CMAES, "start": {"x": 0.25, "y": -0.25},
                                                              "sigma0": 1e-6})
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2)
    first = generations(tmp_path / "run.h5", ("parameters",))["000000"]["parameters"]
    np.testing.assert_allclose(first, np.tile([0.25, -0.25], (6, 1)), atol=1e-4)
