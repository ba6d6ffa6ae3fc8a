"""Whole runs under a real mpiexec: the same answer at every size, dynamic
distribution, no busy waiting, exact resume, failed evaluations, crashes."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import HERE, assert_same_results, generations, hpcopt, mpi_sizes, mpiexec, write_config, zdt1_problem

from hpcopt import config as configuration
from hpcopt.optimize import generators

pytestmark = pytest.mark.mpi

IBEA = {"algorithm": "ibea", "population": 12, "generations": 6, "seed": 7}
CMAES = {"algorithm": "cmaes", "population": 8, "generations": 6, "seed": 7}


@pytest.fixture(scope="module", params=[IBEA, CMAES], ids=["ibea", "cmaes"])
def reference(request, tmp_path_factory):
    """A run on one process: the answer every other launch must reproduce."""
    directory = tmp_path_factory.mktemp(request.param["algorithm"])
    path = write_config(directory, problem=zdt1_problem(), optimizer=request.param)
    hpcopt("run", path, "-o", directory / "reference.h5")
    return request.param, directory / "reference.h5"


@pytest.mark.parametrize("ranks", mpi_sizes())
def test_same_result_at_every_size(reference, ranks, tmp_path):
    optimizer, expected = reference
    path = write_config(tmp_path, problem=zdt1_problem(), optimizer=optimizer)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks)
    assert_same_results(tmp_path / "run.h5", expected)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        ranks_used = np.concatenate([g["rank"][()] for g in f["generations"].values()])
    assert set(ranks_used) == set(range(ranks))  # every rank evaluated, rank 0 included


def test_rank0_dispatch_only_gives_the_same_result(reference, tmp_path):
    """--rank0 dispatch: rank 0 evaluates nothing, and the answer does not change."""
    optimizer, expected = reference
    path = write_config(tmp_path, problem=zdt1_problem(), optimizer=optimizer)
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", "--rank0", "dispatch", ranks=3)
    assert "3 ranks (rank 0 only dispatches)" in done.stderr
    assert_same_results(tmp_path / "run.h5", expected)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        ranks_used = np.concatenate([g["rank"][()] for g in f["generations"].values()])
    assert set(ranks_used) == {1, 2}


def test_rank0_evaluates_in_a_child_process_with_the_same_result(tmp_path):
    """Beside other ranks, rank 0's evaluations run in its child process (which holds its own
    GIL); --rank0 evaluate-in-process keeps them in rank 0. The same run file either way."""
    problem = {"function": "models:whoami", "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]}
    runs = {}
    for choice in ("evaluate", "evaluate-in-process"):
        directory = tmp_path / choice
        directory.mkdir()
        path = write_config(directory, problem=problem, optimizer=IBEA)
        log = directory / "calls.log"
        done = hpcopt("run", path, "-o", directory / "run.h5", "--rank0", choice, ranks=2,
                      env={"HPCOPT_TEST_LOG": str(log)})
        callers = log.read_text().splitlines()
        with h5py.File(directory / "run.h5", "r") as f:
            by_rank0 = sum(int((g["rank"][()] == 0).sum()) for g in f["generations"].values())
        assert 0 < by_rank0 < len(callers), done.stderr
        runs[choice] = (done.stderr, callers, by_rank0)
    stderr, callers, by_rank0 = runs["evaluate"]
    assert "rank 0 evaluates in a child process" in stderr
    assert callers.count("- 0") == by_rank0 and callers.count("1 -") == len(callers) - by_rank0, callers
    stderr, callers, by_rank0 = runs["evaluate-in-process"]
    assert "child process" not in stderr
    assert callers.count("0 -") == by_rank0 and callers.count("1 -") == len(callers) - by_rank0, callers
    assert_same_results(tmp_path / "evaluate" / "run.h5", tmp_path / "evaluate-in-process" / "run.h5")


def test_a_crash_in_rank0s_child_ends_the_job_as_a_crash_of_rank_0(tmp_path):
    """Where rank 0's evaluations run in its child, a segfault there ends the job as it
    would in rank 0 itself (and on any other rank): the job fails, the resumed run
    evaluates the individual again and ends as an uninterrupted run."""
    problem = {"function": "models:crashes_rank0_once", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer=IBEA)
    env = {"HPCOPT_TEST_LOG": str(tmp_path / "crashes.log")}
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, env=env, check=False)
    assert done.returncode != 0 and "rank 0's evaluation process ended" in done.stderr, done.stderr
    hpcopt("resume", tmp_path / "run.h5", ranks=2, env=env)
    (tmp_path / "reference").mkdir()
    hpcopt("run", path, "-o", tmp_path / "reference" / "run.h5", env=env)
    assert_same_results(tmp_path / "run.h5", tmp_path / "reference" / "run.h5")


@pytest.mark.parametrize("first, second", [(2, 3), (3, 1)])
def test_resume_equals_uninterrupted(reference, first, second, tmp_path):
    """5 generations, then resume to 10 on another number of ranks == 10 in one go."""
    optimizer, _ = reference
    full = write_config(tmp_path, "full.json", problem=zdt1_problem(), optimizer={**optimizer, "generations": 10})
    hpcopt("run", full, "-o", tmp_path / "full.h5", ranks=first)
    half = write_config(tmp_path, "half.json", problem=zdt1_problem(), optimizer={**optimizer, "generations": 5})
    hpcopt("run", half, "-o", tmp_path / "resumed.h5", ranks=first)
    assert len(generations(tmp_path / "resumed.h5")) == 5
    done = hpcopt("resume", tmp_path / "resumed.h5", "--generations", 10, ranks=second)
    assert "gen 6/10" in done.stderr
    assert_same_results(tmp_path / "resumed.h5", tmp_path / "full.h5")
    with h5py.File(tmp_path / "resumed.h5", "r") as f:
        assert f["state"].attrs["evaluations"] == 10 * len(f["generations/000000/score"])
        assert json.loads(f.attrs["config"])["optimizer"]["generations"] == 10
    # a finished run is left alone; extending it past its end works and matches too
    again = hpcopt("resume", tmp_path / "resumed.h5")
    assert "gen " not in again.stderr
    hpcopt("resume", tmp_path / "resumed.h5", "--generations", 12, ranks=second)
    hpcopt("resume", tmp_path / "full.h5", "--generations", 12, ranks=first)
    assert_same_results(tmp_path / "resumed.h5", tmp_path / "full.h5")


def _slow_one_config(tmp_path, ranks, slow=2.0, fast=0.02):
    """IBEA's first generation in which the first individual asked is slow, the others fast."""
    optimizer = {"algorithm": "ibea", "population": 6 * ranks, "generations": 1, "seed": 5}
    problem = {
        "function": "models:sleepy",
        "parameters": {"x0": [0, 1], "x1": [0, 1], "slow": slow, "fast": fast, "slow_x0": -1.0},
        "objectives": ["f1", "f2"],
    }
    c = configuration.parse({"problem": problem, "optimizer": optimizer})
    problem["parameters"]["slow_x0"] = float(generators.create(c.optimizer, 2, 2).ask()[1][0, 0])
    return write_config(tmp_path, problem=problem, optimizer=optimizer)


@pytest.mark.parametrize("ranks", [r for r in mpi_sizes() if r > 1] or [2])
def test_distribution_is_dynamic(tmp_path, ranks):
    """The first individual takes 2 s, the other 6N-1 take 0.02 s: the rank that takes
    the slow one does nothing else, the free ranks do all the rest, and the generation
    lasts about as long as the slow evaluation (a static split gives that rank 6)."""
    path = _slow_one_config(tmp_path, ranks)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks, cwd=HERE)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        g = f["generations/000000"]
        seconds, rank = g["eval_seconds"][()], g["rank"][()]
        wall = g.attrs["end_time"] - g.attrs["start_time"]
    assert seconds[0] > 1.9 and np.sum(seconds > 1.0) == 1
    assert np.sum(rank == rank[0]) == 1
    assert wall < seconds[0] + 1.0


def test_waiting_ranks_do_not_spin(tmp_path):
    """3 ranks wait ~4 s on one slow evaluation; a spinning rank would burn a core-second
    per second, these must use a small fraction of that."""
    path = _slow_one_config(tmp_path, 3, slow=4.0, fast=0.0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=3, cwd=HERE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert wall > 4.0
    # start-up (imports) costs about 1 CPU-second per rank; spinning would add 3 x 4 s
    assert cpu < 3 * 1.5 + 0.25 * 3 * 4.0, (cpu, wall)


def test_failed_evaluations_are_data(tmp_path):
    problem = {
        "function": "models:fails_sometimes",
        "parameters": {"x0": [0, 1], "x1": [0, 1]},
        "objectives": ["f1", "f2"],
        "penalty": 1000,
    }
    path = write_config(tmp_path, problem=problem, optimizer={**IBEA, "generations": 3})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2)
    assert "evaluations failed (0 timed out); first:" in done.stderr
    with h5py.File(tmp_path / "run.h5", "r") as f:
        g = f["generations/000000"]
        x0, F, status = g["parameters"][:, 0], g["objectives"][()], g["status"][()]
        errors = [e.decode() for e in g["error"][()]]
    raised, nonfinite, fine = x0 < 0.3, x0 > 0.9, (x0 >= 0.3) & (x0 <= 0.9)
    assert raised.any() and fine.any()
    assert np.all(status[raised | nonfinite] == 1) and np.all(status[fine] == 0)
    assert np.all(F[raised | nonfinite] == 1000) and np.all(F[fine] < 1000)
    assert all("ArithmeticError: model blew up" in e for e, r in zip(errors, raised) if r)
    assert all(e == "" for e, ok in zip(errors, fine) if ok)


BROKEN = {"function": "models:broken", "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]}
BROKEN_ERROR = "the first error: KeyError: \"no such section: 'somadend'\" ("


@pytest.mark.parametrize("ranks", mpi_sizes())
def test_a_run_whose_every_evaluation_fails_stops_after_the_first_ones(tmp_path, ranks):
    """A model broken for every parameter set (BluePyOpt's thalamocortical-cell example is,
    under BluePyOpt 1.14) would score penalties for the whole budget: the run stops once a
    population and at least 10 evaluations all failed, exit status 2 (no requeue), one
    line; the run file keeps them, and once the model is fixed, resume goes on."""
    path = write_config(tmp_path, problem=BROKEN, optimizer={**IBEA, "population": 4})
    run = tmp_path / "run.h5"
    done = hpcopt("run", path, "-o", run, ranks=ranks, check=False)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower() and "WARNING" not in line]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert errors[0].startswith(f"hpcopt: error: {run}: every one of the 12 evaluations failed or timed out; "
                                + BROKEN_ERROR)
    assert errors[0].endswith("The run stops: the rest of its budget would score only the penalty. The run file "
                              "keeps the evaluations with their errors. Fix the model (check one parameter set with "
                              f"'hpcopt evaluate CONFIG --params P.json'), then 'hpcopt resume {run}' continues the "
                              "run, or 'hpcopt run --overwrite' starts it again")
    assert sorted(os.listdir(tmp_path)) == ["config.json", "run.h5", "run.h5.journal"]
    with h5py.File(run, "r") as f:
        assert len(f["generations"]) == 3  # 4 evaluations each: 12 >= 10
        assert all((f[f"generations/{g}/status"][()] == 1).all() for g in f["generations"])
    hpcopt("resume", run, ranks=ranks, env={"HPCOPT_TEST_FIXED": "1"})
    with h5py.File(run, "r") as f:
        assert len(f["generations"]) == IBEA["generations"]
        assert (f["generations/000005/status"][()] == 0).all()


def test_a_finished_run_whose_every_evaluation_failed_exits_2(tmp_path):
    """CMA-ES stops by itself on a population of equal scores (tolfun): a finished run,
    still one that found nothing."""
    path = write_config(tmp_path, problem=BROKEN, optimizer={**CMAES, "population": 4})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2 and f"every one of the 4 evaluations failed or timed out; {BROKEN_ERROR}" in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("then start it again with 'hpcopt run --overwrite'")
    assert "The run stops" not in done.stderr and "generator stopped: tolfun" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["config.json", "run.h5"]


def test_the_error_it_gives_is_a_failure_rather_than_a_timeout(tmp_path):
    """A timeout may only be a slow parameter set: the line names the model's error, also
    when a timeout came first (the thalamocortical cell's run showed a timeout)."""
    problem = {**BROKEN, "function": "models:stuck_or_broken"}
    path = write_config(tmp_path, problem=problem, optimizer={**IBEA, "population": 10}, evaluation={"timeout": 1})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        status = f["generations/000000/status"][()]
    assert status[0] == 2 and set(status) == {1, 2}  # the first a timeout, then failures too
    assert done.returncode == 2 and f"every one of the 10 evaluations failed or timed out; {BROKEN_ERROR}" in \
        done.stderr, done.stderr


def test_dead_rank_ends_the_job(tmp_path):
    """A worker that dies (a NEURON segfault, say) ends the whole job promptly; the
    run file keeps the generations completed before."""
    problem = {"function": "models:dies_on_rank_1", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer=IBEA)
    start = time.perf_counter()
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=3, check=False, timeout=120)
    assert done.returncode != 0
    assert time.perf_counter() - start < 60
    with h5py.File(tmp_path / "run.h5", "r") as f:  # created before generation 0, still valid
        assert f.attrs["format"] == "hpcopt-run"


def test_kill_9_at_random_moments(tmp_path):
    """kill -9 of the whole job at random instants (many land inside a checkpoint
    write): the file stays readable with every generation it held, and resuming
    ends bit-identical to an uninterrupted run."""
    optimizer = {"algorithm": "ibea", "population": 40, "generations": 40, "seed": 11}
    path = write_config(tmp_path, problem=zdt1_problem(10), optimizer=optimizer)
    hpcopt("run", path, "-o", tmp_path / "full.h5", ranks=2)
    run = tmp_path / "run.h5"
    rng = np.random.default_rng(2)
    env = {**os.environ, "PYTHONPATH": HERE}
    seen = []
    for _ in range(12):
        args = ["run", path, "-o", run] if not run.exists() else ["resume", run]
        command = [*mpiexec(2), sys.executable, "-m", "hpcopt", *map(str, args)]
        job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
        # wait until the run file exists, then kill after a random delay
        deadline = time.time() + 60
        while not run.exists() and job.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        if run.exists():
            with h5py.File(run, "r") as f:  # readable after every kill
                n = len(f["generations"])
                assert f["state"].attrs["next_generation"] == n
            assert n >= (seen[-1] if seen else 0)
            seen.append(n)
    hpcopt("resume", run, ranks=3)
    assert_same_results(run, tmp_path / "full.h5")
    assert len(seen) >= 10


LOG_SCALE = {  # every parameter on a log scale (optimizer.scale), bounds spanning 3 decades
    "ibea": ({"function": "hpcopt.testfunctions:zdt1", "parameters": {f"x{i}": [0.001, 1.0] for i in range(4)},
              "objectives": ["f1", "f2"]}, {**IBEA, "scale": "log"}),
    "cmaes": ({"function": "hpcopt.testfunctions:rosenbrock",
               "parameters": {"x0": [0.01, 10.0], "x1": [0.001, 5.0], "x2": [0.1, 20.0]}, "objectives": ["f"]},
              {**CMAES, "scale": "log"}),
}


@pytest.mark.parametrize("algorithm", list(LOG_SCALE))
def test_log_scale_is_rank_invariant_and_resumes_exactly(algorithm, tmp_path):
    """With scale log: 8 generations at 1 rank == at 2 ranks == 4 at 1 rank resumed to 8 at
    2 ranks == 4 at 2 ranks resumed to 8 at 1 rank; the points are the log map of the unit cube."""
    problem, optimizer = LOG_SCALE[algorithm]
    full = write_config(tmp_path, "full.json", problem=problem, optimizer={**optimizer, "generations": 8})
    half = write_config(tmp_path, "half.json", problem=problem, optimizer={**optimizer, "generations": 4})
    hpcopt("run", full, "-o", tmp_path / "full1.h5")
    hpcopt("run", full, "-o", tmp_path / "full2.h5", ranks=2)
    assert_same_results(tmp_path / "full2.h5", tmp_path / "full1.h5")
    for first, second in ((None, 2), (2, None)):
        resumed = tmp_path / f"resumed_{first}_{second}.h5"
        hpcopt("run", half, "-o", resumed, ranks=first)
        assert len(generations(resumed)) == 4
        hpcopt("resume", resumed, "--generations", 8, ranks=second)
        assert_same_results(resumed, tmp_path / "full1.h5")
    with h5py.File(tmp_path / "full1.h5", "r") as f:
        assert json.loads(f.attrs["config"])["optimizer"]["scale"] == dict.fromkeys(problem["parameters"], "log")
        X = np.concatenate([g["parameters"][()] for g in f["generations"].values()])
    lower = np.array([b[0] for b in problem["parameters"].values()])
    upper = np.array([b[1] for b in problem["parameters"].values()])
    assert np.all((X >= lower) & (X <= upper))
    # spread over the decades: a linear scale would put nearly all of the first generation above 10 % of the range
    first = X[:optimizer["population"]]
    assert np.mean(first < lower + 0.1 * (upper - lower)) > 0.3
