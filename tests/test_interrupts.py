"""Interrupted jobs: a signal stops a job within a bounded time with a complete run
file, a resumed run repeats no completed evaluation (not even after kill -9) and
ends bit-identical to an uninterrupted one, and a poisonous individual cannot
crash-loop a campaign."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import HERE, assert_same_results, hpcopt, mpiexec, write_config

from hpcopt import config as configuration
from hpcopt.optimize import generators

pytestmark = pytest.mark.mpi

OPTIMIZER = {"algorithm": "ibea", "population": 12, "generations": 6, "seed": 3}


def counted_problem(pause):
    return {"function": "models:counted", "parameters": {"x0": [0, 1], "x1": [0, 1], "pause": pause},
            "objectives": ["f1", "f2"]}


def start(args, ranks, log, env=None):
    command = [*mpiexec(ranks), sys.executable, "-m", "hpcopt", *map(str, args)]
    env = {**os.environ, **(env or {}), "PYTHONPATH": HERE, "HPCOPT_TEST_LOG": str(log)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_lines(log, n, job, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and job.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{log} never reached {n} lines")


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def reference(tmp_path, optimizer, pause=0.0):
    path = write_config(tmp_path, "full.json", problem=counted_problem(pause), optimizer=optimizer)
    env_log = tmp_path / "full.log"
    job = start(["run", path, "-o", tmp_path / "full.h5"], 2, env_log)
    assert job.wait(timeout=300) == 0
    return tmp_path / "full.h5"


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_stops_with_a_complete_file_and_resume_repeats_nothing(tmp_path, signum):
    full = reference(tmp_path, OPTIMIZER)
    path = write_config(tmp_path, problem=counted_problem(0.1), optimizer=OPTIMIZER)
    log = tmp_path / "calls.log"
    job = start(["run", path, "-o", tmp_path / "run.h5"], 3, log)
    wait_for_lines(log, 30, job)  # in generation 2, mid-way
    os.killpg(job.pid, signum)
    signalled = time.time()
    out, err = job.communicate(timeout=60)
    assert job.returncode == 3, err
    assert time.time() - signalled < 10
    assert "interrupted by a signal: run file complete up to generation" in err
    with h5py.File(tmp_path / "run.h5", "r") as f:
        done = len(f["generations"])
        assert f["state"].attrs["next_generation"] == done
    assert 1 <= done < 6
    before = len(calls(log))
    assert before < 6 * 12  # it really stopped early
    assert (tmp_path / "run.h5.journal").exists() and not (tmp_path / "run.h5.lock").exists()
    resumed = start(["resume", tmp_path / "run.h5"], 2, log)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_same_results(tmp_path / "run.h5", full)
    assert len(calls(log)) == 6 * 12  # every individual evaluated exactly once over both jobs
    assert not (tmp_path / "run.h5.journal").exists() and not (tmp_path / "run.h5.lock").exists()


@pytest.mark.parametrize("locking", ["TRUE", "BEST_EFFORT", "FALSE"])
def test_kill_9_repeats_at_most_what_was_in_flight(tmp_path, locking):
    """Also with HDF5_USE_FILE_LOCKING set either way: locks forced on (as some sites do), where
    the variable overrides the locking=False the Writer asks for; off, with the split layout."""
    optimizer = {**OPTIMIZER, "generations": 8}
    full = reference(tmp_path, optimizer)
    path = write_config(tmp_path, problem=counted_problem(0.05), optimizer=optimizer)
    log = tmp_path / "calls.log"
    env = {"HDF5_USE_FILE_LOCKING": locking}
    kills = 0
    for target in (20, 45, 70):
        job = start(["run", path, "-o", tmp_path / "run.h5"] if kills == 0 else ["resume", tmp_path / "run.h5"],
                    3, log, env)
        wait_for_lines(log, target, job)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        kills += 1
        assert (tmp_path / "run.h5.lock").exists()  # a killed job cannot remove it: the next one locks it again
    assert (tmp_path / "run.h5.generations").is_dir() == (locking == "FALSE")
    job = start(["resume", tmp_path / "run.h5"], 3, log, env)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err
    assert not (tmp_path / "run.h5.journal").exists() and not (tmp_path / "run.h5.lock").exists()
    assert not (tmp_path / "run.h5.generations").exists()  # finished: one file again
    assert_same_results(tmp_path / "run.h5", full)
    total = 8 * 12
    assert total <= len(calls(log)) <= total + kills * 3  # only evaluations in flight at a kill ran twice


@pytest.mark.parametrize("stop_after", [12, 20])
def test_cmaes_stopped_mid_generation_resumes_to_the_same_run(tmp_path, stop_after):
    """CMA-ES checkpoints with the next generation asked; a job stopped with it pending
    tells it in the resumed job's process: the run must go on as if never stopped
    (it drifted from the generation after the pending one, in the last bits)."""
    problem = {**counted_problem(0.05), "parameters": {"x0": [0, 1], "x1": [0, 1], "x2": [0, 1], "pause": 0.05}}
    optimizer = {"algorithm": "cmaes", "population": 8, "generations": 6, "seed": 2}
    full = tmp_path / "full.h5"
    job = start(["run", write_config(tmp_path, "full.json", problem=problem, optimizer=optimizer), "-o", full], 2,
                tmp_path / "full.log")
    assert job.wait(timeout=300) == 0
    log = tmp_path / "calls.log"
    job = start(["run", write_config(tmp_path, problem=problem, optimizer=optimizer), "-o", tmp_path / "run.h5"], 2,
                log)
    wait_for_lines(log, stop_after, job)  # in generation 1 or 2
    os.killpg(job.pid, signal.SIGUSR1)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 3, err
    resumed = start(["resume", tmp_path / "run.h5"], 2, log)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_same_results(tmp_path / "run.h5", full)


def poisonous_problem():
    return {"function": "models:poisonous", "parameters": {"x0": [0, 1], "x1": [0, 1], "poison": -1.0},
            "objectives": ["f1", "f2"]}


def crash_twice_then_finish(tmp_path, problem, optimizer):
    """Run ``problem`` (models:poisonous, its poison set) at 2 ranks: the job dies, its
    resume dies, the next resume records the poisonous individual failed and finishes."""
    path = write_config(tmp_path, problem=problem, optimizer=optimizer)
    log = tmp_path / "crashes.log"
    env = {"HPCOPT_TEST_LOG": str(log)}
    first = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, cwd=HERE, check=False, env=env)
    assert first.returncode != 0 and log.read_text() == "crash\n"
    second = hpcopt("resume", tmp_path / "run.h5", ranks=2, cwd=HERE, check=False, env=env)
    assert second.returncode != 0 and log.read_text() == "crash\ncrash\n"
    third = hpcopt("resume", tmp_path / "run.h5", ranks=2, cwd=HERE, env=env)
    assert "individual 5: in flight during 2 crashes, recorded as failed" in third.stderr


def test_poisonous_individual_cannot_crash_loop(tmp_path):
    """An individual that kills its rank: the job dies twice, then the individual is
    recorded as failed and the run goes on."""
    optimizer = {**OPTIMIZER, "generations": 3}
    problem = poisonous_problem()
    c = configuration.parse({"problem": problem, "optimizer": optimizer})
    problem["parameters"]["poison"] = float(generators.create(c.optimizer, 2, 2).ask()[1][5, 0])  # individual 5
    crash_twice_then_finish(tmp_path, problem, optimizer)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert len(f["generations"]) == 3
        g0 = f["generations/000000"]
        assert g0["status"][5] == 1 and g0["error"][5].decode() == "in flight during 2 crashes of the job"
        assert np.all(g0["objectives"][5] == 250)


def test_an_evaluation_that_hangs_cannot_requeue_a_job_forever(tmp_path):
    """A worker hangs inside a C call on one individual: each signalled job gives up on it
    after stop_within and exits 3 (resumable); after two such jobs the individual is
    recorded as timed out and the run finishes."""
    optimizer = {**OPTIMIZER, "generations": 2}
    problem = {"function": "models:hangs", "parameters": {"x0": [0, 1], "x1": [0, 1], "hang": -1.0},
               "objectives": ["f1", "f2"]}
    c = configuration.parse({"problem": problem, "optimizer": optimizer})
    problem["parameters"]["hang"] = float(generators.create(c.optimizer, 2, 2).ask()[1][4, 0])  # individual 4
    path = write_config(tmp_path, problem=problem, optimizer=optimizer, checkpoint={"stop_within": 0.5})
    log = tmp_path / "hangs.log"
    for n, command in enumerate((["run", path, "-o", tmp_path / "run.h5"], ["resume", tmp_path / "run.h5"]), 1):
        job = start([*command, "--rank0", "dispatch"], 2, log)  # rank 1 evaluates, and hangs
        wait_for_lines(log, n, job)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=120)
        assert job.returncode == 3, err
    job = start(["resume", tmp_path / "run.h5", "--rank0", "dispatch"], 2, log)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert "individual 4: still running when 2 stopped jobs gave up on it" in err and "recorded as timeout" in err
    with h5py.File(tmp_path / "run.h5", "r") as f:
        g0 = f["generations/000000"]
        assert len(f["generations"]) == 2 and g0["status"][4] == 2 and np.all(g0["objectives"][4] == 250)
        assert np.count_nonzero(g0["status"][()]) == 1


@pytest.mark.parametrize("evaluation", [{}, {"evaluation": {"timeout": 600}}], ids=["child", "deadline"])
def test_a_signal_does_not_wait_for_rank_0s_own_evaluation(tmp_path, evaluation):
    """At 2 ranks rank 0 evaluates in a child process (with evaluation.timeout, in its
    deadline's child). An evaluation of its own that does not end (blocked in C here; a
    long NEURON simulation alike, as BluePyOpt's thalamocortical cell's) is given up
    stop_within after the signal (SIGUSR1, SLURM's warning before the time limit): exit 3,
    and the resumed run equals an uninterrupted one."""
    problem = {"function": "models:stuck_in_rank0s_child", "parameters": {"x0": [0, 1], "x1": [0, 1]},
               "objectives": ["f1", "f2"]}
    optimizer = {**OPTIMIZER, "generations": 2}
    full = write_config(tmp_path, "full.json", problem=problem, optimizer=optimizer, **evaluation)
    hpcopt("run", full, "-o", tmp_path / "full.h5", ranks=2)
    path = write_config(tmp_path, problem=problem, optimizer=optimizer, checkpoint={"stop_within": 0.5}, **evaluation)
    log = tmp_path / "hang.log"
    job = start(["run", path, "-o", tmp_path / "run.h5"], 2, log, env={"HPCOPT_TEST_HANG": "1"})
    wait_for_lines(log, 1, job)  # rank 0's child is stuck in its first evaluation
    job.send_signal(signal.SIGUSR1)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 3 and "evaluations in flight were abandoned" in err, err
    hpcopt("resume", tmp_path / "run.h5", ranks=2)
    assert_same_results(tmp_path / "run.h5", tmp_path / "full.h5")


@pytest.mark.parametrize("ranks", [1, 2])
def test_ctrl_c_is_a_clean_stop(tmp_path, ranks):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: exit 3, no traceback,
    and the resumed run equals an uninterrupted one."""
    full = reference(tmp_path, OPTIMIZER, pause=0.05)
    path = write_config(tmp_path, problem=counted_problem(0.05), optimizer=OPTIMIZER)
    log, gate = tmp_path / "calls.log", tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": HERE, "HPCOPT_TEST_LOG": str(log), "HPCOPT_TEST_GATE": f"14:{gate}"}
    command = [sys.executable, "-m", "hpcopt", "run", str(path), "-o", str(tmp_path / "run.h5")]
    if ranks > 1:
        command = [*mpiexec(ranks), *command]
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    wait_for_lines(log, 14, job)  # in the second generation, which cannot end before the gate opens
    os.killpg(job.pid, signal.SIGINT)
    gate.touch()
    _, err = job.communicate(timeout=120)
    assert job.returncode == 3, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "interrupted by a signal" in err, err
    hpcopt("resume", tmp_path / "run.h5", ranks=ranks, env={"HPCOPT_TEST_LOG": str(log)})
    assert_same_results(tmp_path / "run.h5", full)
