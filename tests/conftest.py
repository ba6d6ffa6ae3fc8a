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
