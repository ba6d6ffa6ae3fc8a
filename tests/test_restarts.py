"""CMA-ES with restarts (optimizer.restarts) through the command line: the same run at
every number of ranks, a resume in the middle of a restart equal to the run in one go,
the restart of every generation in the run file, and the budget in evaluations only."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import HERE, assert_same_results, hpcopt, mpi_sizes, mpiexec, write_config

from hpcopt.store import snapshot

# Rastrigin in 2-D with population 6: CMA-ES stops (tolfun) in a local minimum after
# about 90 generations, so a budget of 1,000 evaluations sees two runs or more
PROBLEM = {"function": "hpcopt.testfunctions:rastrigin",
           "parameters": {"a": [-5.12, 5.12], "b": [-5.12, 5.12]}, "objectives": ["f"]}
EVERY = {"every_generations": 25}  # fewer checkpoints, same results


def optimizer(strategy, evaluations):
    return {"algorithm": "cmaes", "population": 6, "evaluations": evaluations, "seed": 3, "restarts": strategy}


def restarts(path):
    """[(restart, population)] of every generation, via plain h5py."""
    with h5py.File(path, "r") as f:
        return [(int(g.attrs["restart"]), int(g.attrs["population"])) for g in f["generations"].values()]


@pytest.fixture(scope="module", params=["ipop", "bipop"])
def reference(request, tmp_path_factory):
    """1,000 evaluations on one process, without mpiexec."""
    directory = tmp_path_factory.mktemp(request.param)
    path = write_config(directory, problem=PROBLEM, optimizer=optimizer(request.param, 1000), checkpoint=EVERY)
    hpcopt("run", path, "-o", directory / "reference.h5")
    return request.param, directory / "reference.h5"


def test_restarts_happen_and_are_recorded(reference):
    strategy, path = reference
    runs = restarts(path)
    assert [r for r, _ in runs] == sorted(r for r, _ in runs) and runs[-1][0] >= 1
    assert runs[0] == (0, 6) and dict(runs)[1] == 12  # the first restart doubles the population in either
    with h5py.File(path, "r") as f:
        sizes = [len(g["score"]) for g in f["generations"].values()]
        assert [p for _, p in runs] == sizes
        assert f["state"].attrs["evaluations"] == sum(sizes) >= 1000 > sum(sizes[:-1])  # one budget for all
        assert f["state"].attrs["restart"] >= runs[-1][0]
        assert json.loads(f.attrs["config"])["optimizer"]["restarts"] == strategy
    run = snapshot.read(str(path))  # a journal's ids map to generations by the recorded sizes
    ends = np.cumsum(sizes)
    assert [run.generation_of(int(e) - 1) for e in ends] == list(range(len(sizes)))
    assert [run.generation_of(int(e - n)) for e, n in zip(ends, sizes)] == list(range(len(sizes)))
    assert run.generation_of(int(ends[-1]) + run.state["population"]) == len(sizes) + 1
    status = hpcopt("status", path).stdout
    assert f"restarts      {strategy}: " in status and "restarted at generation" in status
    assert f"budget        {sum(sizes)} of 1000 evaluations done" in status
    hpcopt("report", path, "-o", path.parent / f"report-{strategy}", "--no-traces")
    with open(path.parent / f"report-{strategy}" / "index.html") as f:
        assert f"CMA-ES restarted ({strategy}) before generation {runs.index((1, 12))}" in f.read()


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [n for n in mpi_sizes() if n > 1] or [2])
def test_same_result_at_every_size(reference, ranks, tmp_path):
    strategy, expected = reference
    path = write_config(tmp_path, problem=PROBLEM, optimizer=optimizer(strategy, 1000), checkpoint=EVERY)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks)
    assert_same_results(tmp_path / "run.h5", expected)
    assert restarts(tmp_path / "run.h5") == restarts(expected)


@pytest.mark.mpi
def test_resume_in_the_middle_of_a_restart_equals_uninterrupted(reference, tmp_path):
    """Stopped (its budget) in the second run, resumed at another number of ranks to
    1,000 evaluations: the same run file contents as the run in one go."""
    strategy, expected = reference
    cut = next(i for i, (r, _) in enumerate(restarts(expected)) if r == 1) + 10  # ten generations into restart 1
    before = sum(p for _, p in restarts(expected)[:cut])
    path = write_config(tmp_path, problem=PROBLEM, optimizer=optimizer(strategy, before), checkpoint=EVERY)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2)
    assert len(restarts(tmp_path / "run.h5")) == cut and restarts(tmp_path / "run.h5")[-1][0] == 1
    refused = hpcopt("resume", tmp_path / "run.h5", "--generations", 500, check=False)
    assert refused.returncode == 2 and "--generations" in refused.stderr and "--evaluations" in refused.stderr
    hpcopt("resume", tmp_path / "run.h5", "--evaluations", 1000, ranks=3)
    assert_same_results(tmp_path / "run.h5", expected)
    assert restarts(tmp_path / "run.h5") == restarts(expected)


def test_generations_with_restarts_is_one_clear_error(tmp_path):
    bad = {**optimizer("ipop", 0), "generations": 50}
    del bad["evaluations"]
    path = write_config(tmp_path, problem=PROBLEM, optimizer=bad)
    done = hpcopt("validate", path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"hpcopt: error: {path}: optimizer.generations: CMA-ES with restarts changes its population at each "
        "restart, so generations vary in size: give the budget as evaluations"]
    good = write_config(tmp_path, "good.json", problem=PROBLEM,
                        optimizer={**optimizer("bipop", 900), "restarts": {"strategy": "bipop", "max": 4}})
    assert "900 evaluations, restarts bipop (at most 4, when CMA-ES's stopping criteria fire" in \
        hpcopt("validate", good).stdout


@pytest.mark.mpi
def test_kill_9_across_a_restart_repeats_at_most_what_was_in_flight(reference, tmp_path):
    """Killed twice, each time with generations of the journal (checkpoints every 25) on
    both sides of a restart, then resumed: the uninterrupted run's results."""
    strategy, expected = reference
    first = sum(p for r, p in restarts(expected) if r == 0)  # evaluations of the first run
    problem = {**PROBLEM, "function": "models:counted_rastrigin"}
    path = write_config(tmp_path, problem=problem, optimizer=optimizer(strategy, 1000), checkpoint=EVERY)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HPCOPT_TEST_LOG": str(log)}
    for kills, target in enumerate((first + 40, first + 300)):
        args = ["run", path, "-o", tmp_path / "run.h5"] if kills == 0 else ["resume", tmp_path / "run.h5"]
        job = subprocess.Popen([*mpiexec(3), sys.executable, "-m", "hpcopt", *map(str, args)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while job.poll() is None and (not log.exists() or len(log.read_text().splitlines()) < target):
            time.sleep(0.005)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert (tmp_path / "run.h5.journal").exists()
    hpcopt("resume", tmp_path / "run.h5", ranks=2, env={"HPCOPT_TEST_LOG": str(log)})
    assert_same_results(tmp_path / "run.h5", expected)
    assert restarts(tmp_path / "run.h5") == restarts(expected)
    total = sum(p for _, p in restarts(expected))
    assert total <= len(log.read_text().splitlines()) <= total + 2 * 3
