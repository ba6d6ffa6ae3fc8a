"""Debian's MPI families under SLURM: the repository's job scripts at 3 ranks with
mpi4py built against Debian 12's MPICH (srun --mpi=pmi2, hpcopt.sbatch as it is) or
Open MPI (its mpirun inside the allocation, hpcopt-mpirun.sbatch with LAUNCH set to
it). The ranks form one world with NEURON in it, on the family's library; a run ends
with the results of a run outside SLURM; a run stopped by SIGUSR1 exits 3, requeues
itself and continues to the same results.

``make test-slurm-mpi-FAMILY`` runs it with .venv-FAMILY's python, HPCOPT_MPI_FAMILY
and HPCOPT_MPIEXEC (the family's mpiexec, for the reference run) on a one-node cluster
(tests/slurm/cluster.sh run); without HPCOPT_MPI_FAMILY it is skipped.
"""

import os
import re
import subprocess
import time

import h5py
import pytest
from conftest import HERE, assert_same_results, write_config
from slurm_jobs import POPULATION, VENV, Job, calls, job_script, optimizer, problem

FAMILY = os.environ.get("HPCOPT_MPI_FAMILY")
if FAMILY is None:
    pytest.skip("HPCOPT_MPI_FAMILY is not set: 'make test-slurm-matrix' runs this file for each MPI family",
                allow_module_level=True)

RANKS = 3  # not a power of two
GENERATIONS = 4
SETTINGS = {
    # the job script as it is; the first interruption reaches the ranks through srun's step
    "mpich": {"script": "hpcopt.sbatch", "launch": None, "first": "USR1",
              "library": "MPICH Version:\t4.", "loads": "/usr/lib/x86_64-linux-gnu/libmpich.so.12"},
    # this venv has no mpiexec (no mpich wheel): the site's mpirun, as the job script says.
    # Its ranks are children of mpirun in the job script's own step, which scancel
    # --signal (to the job's steps) does not reach: the stop goes to the job script,
    # which passes it on, as it does the time-limit warning
    "openmpi": {"script": "hpcopt-mpirun.sbatch", "launch": 'LAUNCH=(mpirun.openmpi -n "$SLURM_NTASKS")',
                "first": "B:USR1", "library": "Open MPI v4.", "loads": "/usr/lib/x86_64-linux-gnu/libmpi.so.40"},
}[FAMILY]
# 3 ranks may be more than the node's cores (2 here): without --overcommit such a job waits
# for a second node that never comes
OPTIONS = ("--overcommit",)
# Open MPI's mpirun refuses to run as root unless told twice
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"} if os.geteuid() == 0 else {}


# the job script's launcher, and for Open MPI also srun --mpi=pmix (SLURM's PMIx plugin
# and Open MPI's PMIx client: one world, as with mpirun)
LAUNCHES = [SETTINGS["launch"]] + (["LAUNCH=(srun --mpi=pmix)"] if FAMILY == "openmpi" else [])


@pytest.mark.parametrize("launch", LAUNCHES)
def test_the_launcher_starts_one_world_with_neuron_in_it_on_the_familys_library(tmp_path, slurm, launch):
    """tests/mpi_check.py started by the job script's VENV and LAUNCH lines in a 3-task allocation."""
    lines = job_script(SETTINGS["script"], launch).splitlines()
    setup = [line for line in lines if line.startswith(("VENV=", "LAUNCH="))]
    script = ["#!/bin/bash", *setup, f'"${{LAUNCH[@]}}" "$VENV/bin/python" {os.path.join(HERE, "mpi_check.py")}']
    (tmp_path / "check.sbatch").write_text("\n".join(script) + "\n")
    done = subprocess.run(["sbatch", "--wait", f"--ntasks={RANKS}", *OPTIONS, "--time=5", "--output=check.log",
                           "check.sbatch"], cwd=tmp_path, env={**os.environ, **ENV}, capture_output=True,
                          text=True, timeout=300)
    log = (tmp_path / "check.log").read_text() if (tmp_path / "check.log").exists() else ""
    context = f"{setup}\n{done.stdout}{done.stderr}{log}"
    assert done.returncode == 0, context
    assert f"MPI library:   {SETTINGS['library']}" in log, context
    assert f"mpi4py loaded: {SETTINGS['loads']}" in log, context  # not the mpich wheel's libmpi.so.12
    worlds = re.findall(r"NEURON nhost:  rank (\d): NEURON (\d) of (\d), mpi4py (\d) of (\d): ok", log)
    assert worlds == [(str(r), str(r), str(RANKS), str(r), str(RANKS)) for r in range(RANKS)], context


def test_runs_end_with_the_reference_results_also_after_a_stop_and_requeue(tmp_path, slurm, reference):
    """One job runs uninterrupted; another is stopped by SIGUSR1 in generation 1, exits 3,
    requeues itself, and its second start finishes the run."""
    jobs = {}
    for first in (None, SETTINGS["first"]):
        directory = tmp_path / f"{first or 'plain'}".replace(":", "")
        directory.mkdir()
        jobs[first] = Job(directory, SETTINGS["script"], first, GENERATIONS, ranks=RANKS, launch=SETTINGS["launch"],
                          cut=False, options=OPTIONS, env=ENV)
    started = time.time()
    try:
        while not all(job.finished() for job in jobs.values()):
            assert time.time() - started < 300, "jobs not finished after 5 minutes"
            for job in jobs.values():
                job.step()
            time.sleep(0.5)
    except BaseException:
        for job in jobs.values():
            print(job.describe())
        raise
    print(f"both jobs finished in {time.time() - started:.0f} s")
    for first, job in jobs.items():
        context = job.describe()
        print(context)  # shown with pytest -rP
        assert job.fields["JobState"] == "COMPLETED" and job.fields["ExitCode"] == "0:0", context
        starts = job.starts()
        assert int(job.fields["Restarts"]) == len(starts) - 1 == (1 if first else 0), context
        assert all(f"{RANKS} ranks (rank 0 evaluates too)" in start for start in starts), context
        assert "job script: run finished: run.h5" in starts[-1], context
        if first:
            assert "WARNING interrupted by a signal" in starts[0], context
            assert "job script: hpcopt exited with status 3" in starts[0] and "requeued job" in starts[0], context
        assert_same_results(job.directory / "run.h5", reference(GENERATIONS))
        assert calls(job.directory) == GENERATIONS * POPULATION, context  # a stop repeats nothing
        with h5py.File(job.directory / "run.h5", "r") as f:
            assert f.attrs["mpi_library"].startswith(SETTINGS["library"]), context


def test_srun_without_pmi_never_runs_the_optimisation_3_times(tmp_path, slurm):
    """srun --mpi=none (plain srun on this cluster): SLURM says 3 tasks. MPICH's processes
    start as 3 worlds of one, and hpcopt refuses; Open MPI's do not start at all (its
    MPI_Init finds no PMI and aborts)."""
    config = write_config(tmp_path, problem=problem(0.0), optimizer=optimizer(GENERATIONS))
    command = f"srun --mpi=none {VENV}/bin/hpcopt run {config} -o run.h5"
    done = subprocess.run(["sbatch", "--wait", f"--ntasks={RANKS}", *OPTIONS, "--time=5", "--output=none.log",
                           "--wrap", command], cwd=tmp_path, env={**os.environ, **ENV, "PYTHONPATH": HERE},
                          capture_output=True, text=True, timeout=300)
    log = (tmp_path / "none.log").read_text() if (tmp_path / "none.log").exists() else ""
    context = f"{command}\n{done.stdout}{done.stderr}{log}"
    assert not (tmp_path / "run.h5").exists(), context
    if FAMILY == "mpich":
        assert done.returncode == 2, context
        assert log.count(f"hpcopt: error: SLURM started {RANKS} tasks but MPI sees 1 rank") == 1, context
    else:
        assert done.returncode != 0 and "An error occurred in MPI_Init" in log, context
