"""The run file: required layout, checkpoint cadence, atomic writes, best."""

import json

import h5py
import numpy as np
import pytest
from conftest import hpcopt, write_config, zdt1_problem

from hpcopt import runfile
from hpcopt.errors import RunFileError

OPTIMIZER = {"algorithm": "ibea", "population": 6, "generations": 4, "seed": 2}


def serial(problem):
    """The real evaluator on one process (COMM_SELF)."""
    from mpi4py import MPI

    from hpcopt.parallel import Evaluator

    return Evaluator(MPI.COMM_SELF, problem.evaluator())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("layout")
    path = write_config(directory, problem=zdt1_problem(3), optimizer=OPTIMIZER)
    hpcopt("run", path, "-o", directory / "run.h5")
    return directory / "run.h5"


def test_required_layout(run):
    with h5py.File(run, "r") as f:
        attrs = f.attrs
        assert list(attrs["parameter_names"]) == ["x0", "x1", "x2"]
        assert list(attrs["objective_names"]) == ["f1", "f2"]
        assert json.loads(attrs["config"])["optimizer"]["population"] == 6
        assert attrs["layout_version"] == runfile.LAYOUT_VERSION and attrs["format"] == "hpcopt-run"
        for package in ("hpcopt", "numpy", "cma", "mpi4py", "h5py"):
            assert attrs[f"{package}_version"]
        assert list(f["generations"]) == ["000000", "000001", "000002", "000003"]
        start = 0.0
        for g in f["generations"].values():
            assert g["parameters"].shape == (6, 3) and g["objectives"].shape == (6, 2)
            assert g["eval_seconds"].shape == g["rank"].shape == g["status"].shape == (6,)
            assert np.all(g["parameters"][()] >= 0) and np.all(g["parameters"][()] <= 1)
            assert start <= g.attrs["start_time"] <= g.attrs["end_time"]
            start = g.attrs["end_time"]
        assert f["state"].attrs["next_generation"] == 4
        assert "generator" in f["state"]


def test_physical_values_are_stored(tmp_path):
    problem = {**zdt1_problem(2), "function": "hpcopt.testfunctions:sphere", "objectives": ["f_x0", "f_x1"],
               "parameters": {"x0": [-3, -1], "x1": [10, 20]}}
    path = write_config(tmp_path, problem=problem, optimizer={**OPTIMIZER, "generations": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        X, F = f["generations/000000/parameters"][()], f["generations/000000/objectives"][()]
    assert np.all((X[:, 0] >= -3) & (X[:, 0] <= -1) & (X[:, 1] >= 10) & (X[:, 1] <= 20))
    assert np.array_equal(F, X ** 2)


@pytest.mark.parametrize("every, generations, writes", [
    ({"every_generations": 3}, 7, [3, 6, 7]),
    ({"every_generations": 1}, 3, [1, 2, 3]),
    ({"every_generations": 1000, "every_seconds": 1e-9}, 3, [1, 2, 3]),
    ({"every_generations": 1000, "every_seconds": 3600}, 3, [3]),
])
def test_checkpoint_cadence(tmp_path, monkeypatch, every, generations, writes):
    """The file is written after every k-th generation, when s seconds have passed
    since the last write, and after the last generation."""
    seen = []
    real = runfile.checkpoint

    def spy(path, records, state, attrs=None):
        seen.append(state["next_generation"])
        real(path, records, state, attrs)

    monkeypatch.setattr(runfile, "checkpoint", spy)
    from hpcopt import config as configuration
    from hpcopt import driver
    from hpcopt.problem import Problem

    raw = {"problem": zdt1_problem(3), "optimizer": {**OPTIMIZER, "generations": generations},
           "checkpoint": every}
    c = configuration.parse(raw)
    problem = Problem(c)
    path = str(tmp_path / "run.h5")
    driver.start(path, c, problem, {})
    assert driver.Loop(path, c, problem, serial(problem)).run() == driver.EXIT_DONE
    assert seen == writes
    with runfile.RunFile(path) as r:
        assert len(r) == generations


def test_interrupt_writes_a_complete_checkpoint(tmp_path):
    """With checkpoints every 100 generations, an interrupt still saves all done."""
    from hpcopt import config as configuration
    from hpcopt import driver
    from hpcopt.problem import Problem

    raw = {"problem": zdt1_problem(3), "optimizer": {**OPTIMIZER, "generations": 50},
           "checkpoint": {"every_generations": 100}}
    c = configuration.parse(raw)
    problem = Problem(c)
    path = str(tmp_path / "run.h5")
    driver.start(path, c, problem, {})
    evaluator = serial(problem)
    calls = []
    evaluate = evaluator.evaluate
    evaluator.evaluate = lambda x: calls.append(1) or evaluate(x)
    loop = driver.Loop(path, c, problem, evaluator, interrupted=lambda: len(calls) >= 3 * 6)
    assert loop.run() == driver.EXIT_INTERRUPTED
    with runfile.RunFile(path) as r:
        assert len(r) == 3 and r.state()["next_generation"] == 3


def test_best_matches_the_minimum_score(run):
    done = hpcopt("best", run, "--json")
    best = json.loads(done.stdout)
    with h5py.File(run, "r") as f:
        scores = np.concatenate([g["score"][()] for g in f["generations"].values()])
        g = f["generations"][f"{best['generation']:06d}"]
        assert best["score"] == scores.min() == g["score"][best["index"]]
        assert list(best["parameters"].values()) == list(g["parameters"][best["index"]])
        assert list(best["objectives"]) == ["f1", "f2"]


def test_best_of_an_empty_run_is_an_error(tmp_path):
    path = tmp_path / "empty.h5"
    runfile.create(path, {}, np.zeros(1), np.ones(1), {"algorithm": "ibea", "generator": {}})
    done = hpcopt("best", path, check=False)
    assert done.returncode == 2 and "no complete generation yet" in done.stderr


def test_atomic_write_leaves_the_old_file_when_building_fails(tmp_path):
    path = tmp_path / "run.h5"
    runfile.create(path, {"marker": 1}, np.zeros(1), np.ones(1), {"algorithm": "ibea", "generator": {}})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        runfile.checkpoint(path, [], {"algorithm": "ibea", "generator": {"bad": object()}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]  # no temporary left


def test_generation_index_past_the_end(run):
    with runfile.RunFile(run) as r:
        assert r.generation(-1).index == 3
        with pytest.raises(RunFileError, match="generation 4 does not exist"):
            r.generation(4)
