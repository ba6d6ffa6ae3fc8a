"""The job scripts in jobscripts/: on a real SLURM cluster, jobs stopped by scancel or
a crashed rank, then by their own time limit, requeue themselves, resume, and end with
the run file of an uninterrupted run, evaluating every individual once; on a
workstation, Ctrl-C stops a run cleanly and the same command continues it.

The SLURM test needs a cluster: ``make test-slurm`` installs SLURM and runs this file
against a one-node cluster on this machine (tests/slurm/cluster.sh); without one it
is skipped, unless HPCOPT_TEST_SLURM=1 (set by cluster.sh run) demands it.
"""

import fcntl
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import HERE, assert_same_results, write_config
from slurm_jobs import JOBSCRIPTS, POPULATION, RANKS, ROOT, VENV, Job, calls, job_script, optimizer, problem, wait_until

# ---------------------------------------------------------------- no SLURM needed


def test_the_two_job_scripts_differ_only_in_the_launcher():
    """hpcopt-mpirun.sbatch is hpcopt.sbatch with another LAUNCH (and its own comments)."""
    lines = [open(os.path.join(JOBSCRIPTS, name)).read().splitlines()
             for name in ("hpcopt.sbatch", "hpcopt-mpirun.sbatch")]

    def code(text):
        return [line for line in text if not line.startswith("# ") and not line.startswith("LAUNCH=")]

    assert code(lines[0]) == code(lines[1])
    launches = [[line for line in text if line.startswith("LAUNCH=")] for text in lines]
    assert launches[0][0].startswith("LAUNCH=(srun --mpi=pmi2")
    assert launches[1][0].startswith('LAUNCH=("$VENV/bin/mpiexec"')


def test_docs_explain_every_line_of_the_block_to_edit():
    text = open(os.path.join(JOBSCRIPTS, "hpcopt.sbatch")).read()
    block = text.split("edit this block")[1].split("# =====")[0]
    options = re.findall(r"^#+SBATCH (--[a-z-]+)", block, flags=re.M)
    variables = re.findall(r"^([A-Z_]+)=", block, flags=re.M)
    assert len(options) >= 8 and variables == ["VENV", "CONFIG", "RUN", "LAUNCH", "MAX_CRASHES"]
    doc = open(os.path.join(ROOT, "docs", "cluster.md")).read()
    for name in options + variables:
        assert f"`{name}" in doc, name


def test_job_scripts_are_valid_bash():
    for name in ("hpcopt.sbatch", "hpcopt-mpirun.sbatch", "workstation.sh"):
        subprocess.run(["bash", "-n", os.path.join(JOBSCRIPTS, name)], check=True)


class FakeJob:
    """hpcopt.sbatch run by bash outside SLURM, with tests/slurm/fake/{srun,scontrol}
    on PATH: what the job script decides (requeue or not, exit status) for each way
    hpcopt can end."""

    def __init__(self, directory):
        self.directory = directory
        open(directory / "job.sbatch", "w").write(job_script("hpcopt.sbatch"))

    def start(self, hpcopt):
        self.log_path = self.directory / "fake.log"
        self.log_path.write_text("")
        env = {**os.environ, "PATH": os.path.join(HERE, "slurm", "fake") + os.pathsep + os.environ["PATH"],
               "FAKE_HPCOPT": hpcopt, "FAKE_LOG": str(self.log_path), "SLURM_JOB_ID": "42",
               "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "node1", "SLURM_JOB_NUM_NODES": "1"}
        return subprocess.Popen(["bash", "job.sbatch", "config.json", "run.h5"], cwd=self.directory, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, hpcopt, signals=()):
        """(exit status, requeued?, output) of one job that ends as ``hpcopt`` says,
        with ``signals`` sent to the job script once hpcopt runs."""
        job = self.start(hpcopt)
        for signum in signals:
            wait_until(lambda: "launch: waiting" in self.log_path.read_text(), 30, "the fake launch")
            job.send_signal(signum)
            time.sleep(0.3)  # one at a time, in order
        output, _ = job.communicate(timeout=60)
        return job.returncode, "scontrol requeue 42" in self.log_path.read_text(), output


@pytest.mark.parametrize("hpcopt, signals, status, requeued, says", [
    ("exit 0", (), 0, False, "run finished: run.h5"),
    ("exit 2", (), 2, False, "not requeued"),
    ("exit 3", (), 3, True, "requeued job 42"),
    ("checkpoint 137", (), 137, True, "requeued job 42"),  # a crash after a checkpoint
    ("signals 1", (signal.SIGUSR1,), 3, True, "got SIGUSR1, passing it on"),  # the time-limit warning
    ("signals 1", (signal.SIGTERM,), 3, False, "SLURM is ending the job"),  # scancel
    ("signals 2", (signal.SIGUSR1, signal.SIGTERM), 3, True, "the time limit came before hpcopt had stopped"),
])
def test_job_script_requeues_unless_finished_bad_input_or_cancelled(tmp_path, hpcopt, signals, status, requeued,
                                                                    says):
    got = FakeJob(tmp_path).run(hpcopt, signals)
    assert got[:2] == (status, requeued), got[2]
    assert says in got[2]


def test_job_script_requeues_crashes_without_checkpoint_at_most_max_crashes_times_in_a_row(tmp_path):
    job = FakeJob(tmp_path)
    for n in (1, 2, 3):
        status, requeued, output = job.run("exit 137")
        assert (status, requeued) == (137, True), output
        assert f"crash {n} in a row without a checkpoint" in output
    status, requeued, output = job.run("exit 137")
    assert (status, requeued) == (137, False), output
    assert "4 crashes in a row without a checkpoint: not requeued" in output
    status, requeued, output = job.run("exit 3")  # after the fix and a resubmission: counted afresh
    assert (status, requeued) == (3, True) and not os.path.exists(tmp_path / "run.h5.crashes"), output


def workstation(directory, *args, gate=None, stderr=subprocess.PIPE):
    env = {**os.environ, "PYTHONPATH": HERE, "HPCOPT_TEST_LOG": str(directory / "calls.log"), "VENV": VENV}
    if gate:  # (after, path): evaluations from call ``after`` on wait until ``path`` exists (tests/models.py)
        env["HPCOPT_TEST_GATE"] = f"{gate[0]}:{gate[1]}"
    # its own session, as a terminal's foreground job: a "Ctrl-C" goes to its process group; with
    # the signals a terminal's shell gives a job (whatever this pytest process inherited or set)
    return subprocess.Popen([os.path.join(JOBSCRIPTS, "workstation.sh"), *map(str, args)], cwd=directory,
                            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal():
    signals = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    for signum in signals:
        signal.signal(signum, signal.SIG_DFL)


def _dispositions(pid):
    """The signal lines of /proc/PID/status (why a signal may have gone unnoticed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return " ".join(line.strip() for line in f if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "(no /proc entry)"


@pytest.mark.mpi
def test_workstation_script_stops_on_ctrl_c_and_the_same_command_continues(tmp_path, reference):
    generations = 4
    config = write_config(tmp_path, problem=problem(0.2), optimizer=optimizer(generations))
    args = ("-n", RANKS, config, "-o", tmp_path / "run.h5")
    gate = tmp_path / "gate"
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:  # generation 1 cannot end before the gate opens
        job = workstation(tmp_path, *args, gate=(POPULATION + 2, gate), stderr=stderr)
    wait_until(lambda: calls(tmp_path) >= POPULATION + 2 or job.poll() is not None, 120, "generation 1")
    script = _dispositions(job.pid)
    os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    # the gate opens once hpcopt says it is stopping: before, the run could finish first
    wait_until(lambda: "SIGTERM received: stopping" in log.read_text() or job.poll() is not None, 120,
               f"hpcopt to notice the stop; the script's signals when Ctrl-C was sent: {script}")
    gate.touch()
    out, _ = job.communicate(timeout=120)
    err = log.read_text()
    assert job.returncode == 3, f"{err}\nthe script's signals when Ctrl-C was sent: {script}"
    assert "interrupted; the run file is complete up to the last generation" in err
    assert calls(tmp_path) < generations * POPULATION
    job = workstation(tmp_path, *args)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err
    assert_same_results(tmp_path / "run.h5", reference(generations))
    assert calls(tmp_path) == generations * POPULATION  # nothing completed ran twice
    again = workstation(tmp_path, *args)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "run already finished" in err


@pytest.mark.mpi
def test_workstation_script_passes_bad_input_through(tmp_path):
    job = workstation(tmp_path, "-n", RANKS, tmp_path / "missing.json")
    out, err = job.communicate(timeout=120)
    assert job.returncode == 2
    assert "cannot read config" in err
    job = workstation(tmp_path, tmp_path / "missing.json")  # no -n
    out, err = job.communicate(timeout=120)
    assert job.returncode == 2 and err.startswith("usage:")


# ---------------------------------------------------------------- a real SLURM cluster


@pytest.mark.mpi
def test_jobs_requeue_themselves_until_the_run_is_finished(tmp_path, slurm, reference):
    generations = 10  # 120 evaluations of 1 s on 2 ranks: about a minute of work, 3 or more starts
    jobs = []
    for script, first in (("hpcopt.sbatch", "USR1"), ("hpcopt-mpirun.sbatch", "USR1"), ("hpcopt.sbatch", "crash")):
        directory = tmp_path / f"{len(jobs)}-{first}-{script}"
        directory.mkdir()
        jobs.append(Job(directory, script, first, generations))
    # and a job for a run file that another job holds: it must stop at once, not requeue
    (tmp_path / "locked").mkdir()
    lock = open(tmp_path / "locked" / "run.h5.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.write("the test\n")
    lock.flush()
    locked = Job(tmp_path / "locked", "hpcopt.sbatch", None, generations)
    started = time.time()
    try:
        while not all(job.finished() for job in jobs + [locked]):
            assert time.time() - started < 600, "jobs not finished after 10 minutes"
            for job in jobs + [locked]:
                job.step()
            time.sleep(0.5)
    except BaseException:
        for job in jobs + [locked]:
            print(job.describe())
        raise
    print(f"all jobs finished in {time.time() - started:.0f} s")
    for job in jobs + [locked]:
        print(job.describe())  # shown with pytest -rP
    context = locked.describe()
    assert locked.fields["JobState"] == "FAILED" and locked.fields["ExitCode"] == "2:0", context
    assert locked.fields["Restarts"] == "0" and "another job is using this run file" in context, context
    assert "held by the test" in context and "not requeued" in context, context
    lock.close()
    total = generations * POPULATION
    for job in jobs:
        context = job.describe()
        assert job.fields["JobState"] == "COMPLETED" and job.fields["ExitCode"] == "0:0", context
        starts = job.starts()
        assert int(job.fields["Restarts"]) == len(starts) - 1 >= 2, context
        assert all("requeued job" in start for start in starts[:-1]), context
        assert "job script: run finished: run.h5" in starts[-1], context
        # the first start: the scancel, which went to the ranks, not to the job script
        assert "got SIG" not in starts[0], context
        if job.first == "USR1":
            assert "WARNING interrupted by a signal" in starts[0], context
        else:
            assert re.search(r"hpcopt exited with status (?!0\b|3\b)\d+", starts[0]), context
            assert job.stale_segment, f"the crash left no MPICH shared memory to remove: {context}"
        # later starts: the time-limit warning, passed on by the job script
        assert any("got SIGUSR1, passing it on" in start and "requeued job" in start
                   for start in starts[1:-1]), context
        assert_same_results(job.directory / "run.h5", reference(generations))
        # only what a crash cut short ran again: at most one evaluation per rank and crash.
        # Besides the test's own kill, SLURM itself once (in CI) cancelled a requeued job's new
        # step 2 s after it started, most likely with the stop meant for the step of the start
        # before, which has the same job and step ids; the job script counted a crash and
        # requeued, as it should, and the evaluations in flight ran again
        crashes = sum(bool(re.search(r"hpcopt exited with status (?!0\b|3\b)\d+", start)) for start in starts)
        assert total <= calls(job.directory) <= total + RANKS * crashes, context
        assert not os.path.exists(job.directory / "run.h5.crashes"), context
