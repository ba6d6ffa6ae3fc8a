"""How jobs start: --continue for job scripts, one job per run file, wrong launches refused."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
from conftest import HERE, assert_same_results, hpcopt, mpiexec, write_config, zdt1_problem

OPTIMIZER = {"algorithm": "ibea", "population": 8, "generations": 4, "seed": 9}


def test_continue_starts_continues_and_leaves_a_finished_run_alone(tmp_path):
    full = write_config(tmp_path, "full.json", problem=zdt1_problem(4), optimizer={**OPTIMIZER, "generations": 6})
    hpcopt("run", full, "-o", tmp_path / "full.h5")
    short = write_config(tmp_path, "short.json", problem=zdt1_problem(4), optimizer=OPTIMIZER)
    hpcopt("run", short, "-o", tmp_path / "run.h5", "--continue")  # no file yet: starts
    assert len(h5py.File(tmp_path / "run.h5", "r")["generations"]) == 4
    stamp = (tmp_path / "run.h5").stat().st_mtime_ns
    done = hpcopt("run", short, "-o", tmp_path / "run.h5", "--continue")  # finished: nothing to do
    assert "run already finished (generation budget of 4 met)" in done.stderr
    assert (tmp_path / "run.h5").stat().st_mtime_ns == stamp
    hpcopt("run", full, "-o", tmp_path / "run.h5", "--continue", ranks=2)  # a larger budget: extends
    assert_same_results(tmp_path / "run.h5", tmp_path / "full.h5")


def test_continue_refuses_another_config(tmp_path):
    path = write_config(tmp_path, problem=zdt1_problem(4), optimizer=OPTIMIZER)
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    other = write_config(tmp_path, "other.json", problem=zdt1_problem(4), optimizer={**OPTIMIZER, "seed": 10})
    stamp = (tmp_path / "run.h5").read_bytes()
    done = hpcopt("run", other, "-o", tmp_path / "run.h5", "--continue", check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"hpcopt: error: {other}: optimizer.seed: differs from the config "
                                   f"{tmp_path / 'run.h5'} was started with; start a new run file (-o) or "
                                   "restore the config")
    assert (tmp_path / "run.h5").read_bytes() == stamp


def test_two_jobs_cannot_write_one_run_file(tmp_path):
    problem = {"function": "models:sleepy", "parameters": {"x0": [0, 1], "x1": [0, 1], "slow": 0.2,
                                                           "fast": 0.2, "slow_x0": -1.0},
               "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer={**OPTIMIZER, "generations": 20})
    first = subprocess.Popen([*mpiexec(2), sys.executable, "-m", "hpcopt", "run",
                              path, "-o", str(tmp_path / "run.h5")], env={**os.environ, "PYTHONPATH": HERE},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "run.h5").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = hpcopt("resume", tmp_path / "run.h5", check=False)
        assert second.returncode == 2
        assert "another job is using this run file (lock" in second.stderr and "held by pid" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        again = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)  # not advised to resume it
        assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
        holder = (tmp_path / "run.h5.lock").read_text().strip()  # "pid N on HOST": the first job's rank 0
        assert holder.startswith("pid ") and holder.endswith(f" on {os.uname().nodename}")
        assert f"run.h5: run file in use by a running job ({holder}): let it finish" in again.stderr, again.stderr
        assert "resume" not in again.stderr
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 3  # the first job was not disturbed: it stopped on our signal


def test_srun_without_mpi_is_refused(tmp_path):
    """SLURM says 4 tasks, MPI says 1 rank: every copy would run the whole optimisation."""
    path = write_config(tmp_path, problem=zdt1_problem(4), optimizer=OPTIMIZER)
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False,
                  env={"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "0"})
    assert done.returncode == 2
    assert done.stderr.startswith("hpcopt: error: SLURM started 4 tasks but MPI sees 1 rank")
    assert not (tmp_path / "run.h5").exists()
    quiet = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False,
                   env={"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"})
    assert quiet.returncode == 2 and quiet.stderr == ""  # one message per job, not one per task


def test_stale_checkpoint_temporaries_are_removed(tmp_path):
    path = write_config(tmp_path, problem=zdt1_problem(4), optimizer={**OPTIMIZER, "generations": 2})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    (tmp_path / ".run.h5.tmp12345").write_bytes(b"half a checkpoint of a killed job")
    hpcopt("resume", tmp_path / "run.h5", "--generations", 3)
    assert not (tmp_path / ".run.h5.tmp12345").exists()
    assert json.loads(h5py.File(tmp_path / "run.h5", "r").attrs["config"])["optimizer"]["generations"] == 3


def test_a_filesystem_without_locks_is_a_warning_not_a_refusal(tmp_path, monkeypatch, caplog):
    """NFS without lockd (ENOLCK) or Lustre mounted noflock (ENOSYS): flock fails, but no
    other job holds the file; refusing would make the run impossible there."""
    import errno
    import fcntl

    from hpcopt import cli

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert cli._lock(str(tmp_path / "run.h5")) is True
    assert "cannot lock" in caplog.text and "make sure no other job writes" in caplog.text


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_finished_run_leaves_no_lock_and_no_journal(tmp_path, ranks):
    """Only the run file is left; resuming it past its end, then refusing a second job
    while one holds it, work as before."""
    path = write_config(tmp_path, problem=zdt1_problem(4), optimizer={**OPTIMIZER, "generations": 2})
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "run.h5"]
    hpcopt("resume", tmp_path / "run.h5", "--generations", 3, ranks=ranks)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "run.h5"]
    assert len(h5py.File(tmp_path / "run.h5", "r")["generations"]) == 3


def test_a_job_that_locked_a_removed_lock_file_locks_the_new_one(tmp_path, monkeypatch):
    """A job ending removes its lock file while it holds it; one that opened the file
    just before takes the lock of a file nobody else can open any more, so it must lock
    the file now at that path, or a third job could lock that one too."""
    import fcntl

    from hpcopt import cli

    run = str(tmp_path / "run.h5")
    (tmp_path / "run.h5.lock").write_text("pid 1 on a job that just ended\n")
    flock, calls = fcntl.flock, []

    def ended_meanwhile(fd, operation):
        calls.append(os.fstat(fd if isinstance(fd, int) else fd.fileno()).st_ino)
        if len(calls) == 1:  # the ending job removes the file after we opened it, before we lock it
            os.unlink(run + ".lock")
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", ended_meanwhile)
    monkeypatch.setattr(cli, "_held", [])
    assert cli._lock(run) is True
    monkeypatch.setattr(fcntl, "flock", flock)
    (held,) = cli._held
    assert len(calls) == 2 and os.stat(run + ".lock").st_ino == os.fstat(held[1].fileno()).st_ino
    other = open(run + ".lock")
    with pytest.raises(BlockingIOError):  # a third job is kept off
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    other.close()
    cli._release(run)
    assert not os.path.exists(run + ".lock") and cli._held == []


def test_run_on_a_run_file_locked_on_another_host_says_both_ways(tmp_path):
    path = write_config(tmp_path, problem=zdt1_problem(4), optimizer={**OPTIMIZER, "generations": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    (tmp_path / "run.h5.lock").write_text("pid 4242 on elsewhere-node, SLURM job 7\n")  # a job there, or killed
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"hpcopt: error: {tmp_path / 'run.h5'}: run file exists and is locked by a job on another host (pid 4242 "
        "on elsewhere-node, SLURM job 7): if that job still runs, let it finish; if not, continue it with "
        f"'hpcopt resume {tmp_path / 'run.h5'}' (or 'hpcopt run --continue'), or pass --overwrite to start over")
