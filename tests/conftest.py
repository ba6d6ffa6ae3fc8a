"""Shared fixtures: run the real ``hpcopt`` command, alone or under mpiexec."""

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

BIN = os.path.dirname(sys.executable)
HERE = os.path.dirname(os.path.abspath(__file__))


def mpi_sizes():
    """Rank counts the MPI tests run at: HPCOPT_TEST_RANKS (make test-N), else 1, 2, 3."""
    given = os.environ.get("HPCOPT_TEST_RANKS")
    return [int(n) for n in given.split(",")] if given else [1, 2, 3]


def mpiexec(ranks):
    """The command that starts ``ranks`` ranks: HPCOPT_MPIEXEC (a launcher with its
    options, e.g. "mpiexec.openmpi --allow-run-as-root --oversubscribe"; make
    test-mpi-matrix sets it), else the venv's mpiexec (the mpich wheel's)."""
    given = os.environ.get("HPCOPT_MPIEXEC")
    launcher = shlex.split(given) if given else [os.path.join(BIN, "mpiexec")]
    return [*launcher, "-n", str(ranks)]


def hpcopt(*args, ranks=None, cwd=None, timeout=300, check=True, env=None):
    """Run ``hpcopt ARGS`` (under ``mpiexec -n ranks`` when ranks is given).

    env: extra environment variables. Returns the CompletedProcess; with check,
    fails the test on a non-zero exit.
    """
    command = [sys.executable, "-m", "hpcopt", *map(str, args)]
    if ranks is not None:
        command = [*mpiexec(ranks), *command]
    env = {**os.environ, **(env or {}), "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def evaluate(config, params, directory, name):
    """``hpcopt evaluate CONFIG --params`` of ``params`` (written to DIRECTORY/NAME.json),
    which must succeed; its JSON result."""
    path = os.path.join(directory, f"{name}.json")
    with open(path, "w") as f:
        json.dump(params, f)
    result = json.loads(hpcopt("evaluate", config, "--params", path, "--json").stdout)
    assert result["status"] == "ok", result["error"]
    return result


def write_config(directory, name="config.json", **sections):
    """Write a config made of ``sections`` (problem, optimizer, ...); returns its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(sections, f)
    return path


def zdt1_problem(d=6):
    return {
        "function": "hpcopt.testfunctions:zdt1",
        "parameters": {f"x{i}": [0, 1] for i in range(d)},
        "objectives": ["f1", "f2"],
    }


RESULT_DATASETS = ("parameters", "objectives", "score", "status")


def generations(path, datasets=RESULT_DATASETS):
    """{generation name: {dataset: array}} of a run file, via plain h5py."""
    import h5py

    with h5py.File(path, "r") as f:
        return {g: {d: f["generations"][g][d][()] for d in datasets} for g in f["generations"]}


def assert_same_results(a, b):
    """Two run files hold bit-identical results in the same generations."""
    ga, gb = generations(a), generations(b)
    assert list(ga) == list(gb)
    for name in ga:
        for dataset in RESULT_DATASETS:
            assert np.array_equal(ga[name][dataset], gb[name][dataset]), (name, dataset)


# What the network tests (test_network.py, test_netpyne.py) do at K = 2 with either form


def assert_refused_on_group_rank_1(run, reference, above):
    """``run`` (4 ranks, K = 2, refusing on group rank 1) evaluated what ``reference`` (the
    only rank refusing) did, and some individuals (w_in > ``above``) were refused, each
    saying so with the group rank it came from."""
    import h5py

    assert_same_results(run, reference)
    with h5py.File(run, "r") as f:
        errors = [e for g in f["generations"].values() for e in g["error"][()] if e]
    assert errors, f"no individual had w_in > {above}: the test proves nothing"
    assert all(b"refused on group rank 1" in e and b"(group rank 1)" in e for e in errors)


def resume_after_a_signal(tmp_path, path, full):
    """Run ``path`` (6 generations, K = 2, builds logged) on 4 ranks, SIGUSR1 once its tenth
    build (generation 3) has started, then resume on 4 ranks: the run file ``full``."""
    import signal
    import time

    import h5py

    log = tmp_path / "builds.log"
    command = [*mpiexec(4), sys.executable, "-m", "hpcopt", "run", path, "-o", tmp_path / "run.h5"]
    env = {**os.environ, "PYTHONPATH": HERE, "HPCOPT_TEST_LOG": str(log)}
    job = subprocess.Popen(list(map(str, command)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    deadline = time.monotonic() + 600  # only against a hang: the event is the tenth build
    while job.poll() is None and len(log.read_text().splitlines() if log.exists() else []) < 10:
        assert time.monotonic() < deadline, "no tenth build in 10 minutes"
        time.sleep(0.05)  # generation 3 has started
    assert job.poll() is None, job.communicate()[1]
    os.killpg(job.pid, signal.SIGUSR1)
    _, err = job.communicate(timeout=300)
    assert job.returncode == 3, err
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert 2 <= len(f["generations"]) < 6
    hpcopt("resume", tmp_path / "run.h5", "-q", ranks=4)
    assert_same_results(tmp_path / "run.h5", full)


def resume_after_a_crash(tmp_path, path, full, generations):
    """Run ``path`` (``generations`` generations, K = 2, group rank 1 crashing once after
    generation 0's checkpoint) on 2 ranks: the job ends, the run file holds a checkpoint,
    and resume finishes the run file ``full``."""
    import h5py

    env = {"HPCOPT_TEST_LOG": str(tmp_path / "crash.log")}
    first = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, check=False, env=env, timeout=300)
    assert first.returncode not in (0, 2, 3) and (tmp_path / "crash.log").exists(), first.stderr
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert 1 <= len(f["generations"]) < generations  # a resume, not a new start
    hpcopt("resume", tmp_path / "run.h5", "-q", ranks=2, env=env)
    assert_same_results(tmp_path / "run.h5", full)


# The SLURM tests' fixtures (tests/slurm_jobs.py, imported here only when used: it imports this file)


@pytest.fixture
def slurm():
    """A SLURM cluster answers (else skipped, or failed under tests/slurm/cluster.sh run)."""
    import slurm_jobs

    slurm_jobs.require_cluster()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """reference(generations): the run file of the job scripts' test problem, uninterrupted."""
    import slurm_jobs

    return slurm_jobs.references(tmp_path_factory)
