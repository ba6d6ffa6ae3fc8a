"""What the SLURM tests share (tests/test_slurm.py, tests/test_slurm_mpi.py): the job
scripts' test problem, a reference run, and a real job driven through its starts."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from conftest import BIN, HERE, hpcopt, write_config

ROOT = os.path.dirname(HERE)
JOBSCRIPTS = os.path.join(ROOT, "jobscripts")
VENV = os.path.dirname(BIN)
RANKS = 2
POPULATION = 12


def problem(pause):
    return {"function": "models:counted", "parameters": {"x0": [0, 1], "x1": [0, 1], "pause": pause},
            "objectives": ["f1", "f2"]}


def optimizer(generations):
    return {"algorithm": "ibea", "population": POPULATION, "generations": generations, "seed": 3}


def references(tmp_path_factory):
    """references(generations): the run file of an uninterrupted run under mpiexec
    (conftest's fixture ``reference``)."""
    runs = {}

    def run(generations):
        if generations not in runs:
            directory = tmp_path_factory.mktemp(f"reference{generations}")
            config = write_config(directory, problem=problem(0.0), optimizer=optimizer(generations))
            hpcopt("run", config, "-o", directory / "run.h5", ranks=RANKS,
                   env={"HPCOPT_TEST_LOG": str(directory / "calls.log")})
            runs[generations] = directory / "run.h5"
        return runs[generations]

    return run


def calls(directory):
    path = os.path.join(directory, "calls.log")
    return len(open(path).read().splitlines()) if os.path.exists(path) else 0


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------- a real SLURM cluster


def slurm_missing():
    """Why the SLURM test cannot run here, or ""."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed: 'make test-slurm' installs it and runs this test on a local cluster"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster answers: 'make test-slurm' starts one"
    if answer.returncode != 0 or not answer.stdout.strip():
        return "no SLURM cluster answers: 'make test-slurm' starts one"
    return ""


def require_cluster():
    """Skip the test without a cluster, or fail it where HPCOPT_TEST_SLURM=1 (set by
    tests/slurm/cluster.sh run) demands one (conftest's fixture ``slurm``)."""
    missing = slurm_missing()
    if missing and os.environ.get("HPCOPT_TEST_SLURM") == "1":
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


def scontrol_show(job_id):
    """The job's fields {name: value} (scontrol show job -o)."""
    text = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
                          check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


def fnv1a(text):
    """MPICH's hash of a PMI job name (as in the job script)."""
    h = 2166136261
    for byte in text.encode():
        h = (h ^ byte) * 16777619 & 0xFFFFFFFF
    return f"{h:x}"


FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
            "OUT_OF_MEMORY")


def job_script(script, launch=None):
    """The text of jobscripts/SCRIPT with VENV= this venv, and LAUNCH= ``launch`` if given."""
    text = open(os.path.join(JOBSCRIPTS, script)).read()
    text, n = re.subn(r"^VENV=\S*", f"VENV={VENV}", text, count=1, flags=re.M)
    assert n == 1, f"{script}: no VENV= line"
    if launch:
        text, n = re.subn(r"^LAUNCH=.*", lambda _: launch, text, count=1, flags=re.M)
        assert n == 1, f"{script}: no LAUNCH= line"
    return text


class Job:
    """One job script, submitted with a 2-rank allocation, a time-limit warning 30 s
    ahead and a long time limit that the test cuts to 1 minute once the first
    interruption has requeued the job; so the first start always ends by that
    interruption and later ones by the time-limit warning until the run is finished.

    first: the first interruption, once generation 0 is written: "USR1" (scancel
    --signal=USR1, which goes to the ranks, not to the job script), "B:USR1" (scancel --batch
    --signal=USR1: to the job script, which passes it on, as with the time-limit warning) or
    "crash" (rank 1 killed with SIGKILL, a segfault stand-in)."""

    def __init__(self, directory, script, first, generations, ranks=RANKS, launch=None, cut=True, options=(),
                 env=None):
        """first: also None, for a job that must end at once (exit status 2) or run
        uninterrupted. launch: a LAUNCH=... line in place of the script's (a site's own
        launcher); cut: False leaves the time limit alone, so the start after the first
        interruption runs to the end; options, env: more for sbatch and the job."""
        self.directory, self.script, self.first, self.cut = directory, script, first, cut
        open(directory / script, "w").write(job_script(script, launch))
        write_config(directory, problem=problem(1.0), optimizer=optimizer(generations),
                     checkpoint={"stop_within": 10})
        env = {**os.environ, **(env or {}), "PYTHONPATH": HERE, "HPCOPT_TEST_LOG": str(directory / "calls.log")}
        command = ["sbatch", "--parsable", f"--ntasks={ranks}", "--time=10", "--signal=B:USR1@30", *options,
                   script, "config.json", "run.h5"]
        self.id = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True,
                                 check=True).stdout.strip().split(";")[0]
        self.signalled = self.limited = False
        self.stale_segment = None  # for the crash: MPICH's shared memory was left behind
        self.fields = {}

    def log(self):
        path = self.directory / f"hpcopt-{self.id}.log"
        return path.read_text() if path.exists() else ""

    def starts(self):
        """The log of each start of the job."""
        return re.split(r"^(?=.* job script: job \d+, start \d+)", self.log(), flags=re.M)[1:]

    def finished(self):
        return self.fields.get("JobState") in FINISHED

    def step(self):
        """Drive the job one step: send the first interruption, then cut the time limit."""
        self.fields = scontrol_show(self.id)
        starts = self.starts()
        if self.first and not self.signalled and self.fields["JobState"] == "RUNNING" and starts \
                and " INFO gen 1/" in starts[0]:
            if self.first == "crash":
                pids = subprocess.run(["scontrol", "listpids", f"{self.id}.1"], capture_output=True, text=True,
                                      check=True).stdout.splitlines()
                rank_1 = [line.split()[0] for line in pids[1:] if line.split()[4] == "1"]
                os.kill(int(rank_1[0]), signal.SIGKILL)
            elif self.first == "B:USR1":
                subprocess.run(["scancel", "--batch", "--signal=USR1", self.id], check=True)
            else:
                subprocess.run(["scancel", f"--signal={self.first}", self.id], check=True)
            self.signalled = True
        if self.cut and self.signalled and not self.limited and int(self.fields.get("Restarts", 0)) >= 1:
            subprocess.run(["scontrol", "update", f"JobId={self.id}", "TimeLimit=1"], check=True)
            self.limited = True
        if self.first == "crash" and self.stale_segment is None and len(starts) == 1 \
                and "job script: hpcopt exited" in starts[0]:
            self.stale_segment = os.path.exists(f"/dev/shm/mpich_shm_{fnv1a(self.id + '.1')}_0")

    def describe(self):
        return f"{self.script} ({self.first} first), job {self.id}, in {self.directory}:\n{self.log()}"
