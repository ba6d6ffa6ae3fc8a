"""Asynchronous (steady-state) runs: every point evaluated and told once, batches that
a fresh generator reproduces exactly, and an exact resume after a signal or kill -9."""

import os
import re
import signal

import h5py
import numpy as np
import pytest
from conftest import HERE, hpcopt, write_config
from test_interrupts import calls, counted_problem, crash_twice_then_finish, poisonous_problem, start, wait_for_lines

from hpcopt import config as configuration
from hpcopt.optimize import generators
from hpcopt.optimize.ibea import IBEA
from hpcopt.problem.space import Problem
from hpcopt.store import runfile

pytestmark = pytest.mark.mpi

OPTIMIZER = {"algorithm": "ibea", "population": 12, "generations": 6, "seed": 3, "asynchronous": True, "batch": 4}
TOTAL = 12 + 5 * 12


def replay(path):
    """Feed a fresh generator the run file's batches in order, asking as the run's
    records say; check that it asked exactly the stored points and ends in the stored
    state. Returns the ids told, in order."""
    with runfile.RunFile(path) as run:
        config = configuration.parse(run.config)
        problem = Problem(config)
        batches = [run.generation(i) for i in range(len(run))]
        stored = run.state()["generator"]
    g = generators.create(config.optimizer, problem.dimension, len(problem.objectives))
    assert isinstance(g, IBEA)
    asked = {}

    def ask(n):
        ids, U = g.ask(n)
        asked.update(zip(ids.tolist(), problem.to_physical(U)))

    told = []
    for batch in batches:
        before, after = batch.asked
        assert before >= g.asked
        ask(before - g.asked)
        for ident, x in zip(batch.ids.tolist(), batch.parameters):
            assert np.array_equal(asked[ident], x), f"batch {batch.index}: individual {ident} is not what was asked"
        g.tell(batch.ids, batch.objectives)
        ask(after - g.asked)
        told += batch.ids.tolist()
    ask(stored["asked_count"] - g.asked)
    state = g.state()
    for key in ("rng_state", "asked_count", "told_count", "pending_ids", "pending_U", "U", "F", "fitness"):
        assert np.array_equal(state[key], stored[key]) if isinstance(state[key], np.ndarray) \
            else state[key] == stored[key], key
    return told


def contents(path):
    with runfile.RunFile(path) as run:
        return [(g.ids.tolist(), g.parameters.tolist(), g.objectives.tolist(), g.asked)
                for g in (run.generation(i) for i in range(len(run)))]


def test_generator_asks_random_points_until_the_population_is_told():
    g = IBEA(2, 4, np.random.default_rng(0))
    ids, U = g.ask(6)
    assert ids.tolist() == list(range(6))
    g.tell(ids[[5, 0, 2]], U[[5, 0, 2]])
    random_state = g.state()["rng_state"]
    g.ask(1)  # still random: three of four told
    g.tell(ids[[1]], U[[1]])
    assert g.state()["rng_state"] != random_state
    children = IBEA.from_state(g.state())
    assert np.array_equal(children.ask(3)[1], g.ask(3)[1])  # the state holds everything
    with pytest.raises(ValueError, match="asked and not yet told"):
        g.tell([1], [[0.0, 0.0]])
    assert g.pending()[0].tolist() == [3, 4, 6, 7, 8, 9]


def test_config_rejects_asynchronous_cmaes_and_batch_without_it(tmp_path):
    problem = counted_problem(0.0)
    bad = write_config(tmp_path, problem=problem, optimizer={"algorithm": "cmaes", "population": 4,
                                                               "generations": 2, "asynchronous": True})
    done = hpcopt("validate", bad, check=False, cwd=HERE)
    assert done.returncode == 2 and "optimizer.asynchronous: not an option of cmaes" in done.stderr
    bad = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 4,
                                                               "generations": 2, "batch": 2})
    done = hpcopt("validate", bad, check=False, cwd=HERE)
    assert done.returncode == 2 and "optimizer.batch: only with asynchronous: true" in done.stderr


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_every_point_is_told_once_and_replays_exactly(tmp_path, ranks):
    path = write_config(tmp_path, problem=counted_problem(0.005), optimizer=OPTIMIZER)
    env = {"HPCOPT_TEST_LOG": str(tmp_path / "calls.log")}
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks, cwd=HERE, env=env)
    assert "evaluation budget of 72 met" in done.stderr
    told = replay(tmp_path / "run.h5")
    assert sorted(told) == list(range(TOTAL))
    sizes = [len(b[0]) for b in contents(tmp_path / "run.h5")]
    assert sizes == [4] * (TOTAL // 4)
    assert len(calls(tmp_path / "calls.log")) == TOTAL
    with h5py.File(tmp_path / "run.h5", "r") as f:
        ranks_used = np.concatenate([g["rank"][()] for g in f["generations"].values()])
    assert set(ranks_used) == set(range(ranks))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_one_rank_resume_after_a_signal_equals_an_uninterrupted_run(tmp_path):
    """On one rank the completion order is the ask order, so an interrupted and resumed
    run must equal an uninterrupted one bit for bit."""
    full = write_config(tmp_path, "full.json", problem=counted_problem(0.0), optimizer=OPTIMIZER)
    hpcopt("run", full, "-o", tmp_path / "full.h5", cwd=HERE, env={"HPCOPT_TEST_LOG": str(tmp_path / "f.log")})
    path = write_config(tmp_path, problem=counted_problem(0.05), optimizer=OPTIMIZER)
    log = tmp_path / "calls.log"
    job = start(["run", path, "-o", tmp_path / "run.h5"], 1, log)
    wait_for_lines(log, 30, job)
    os.killpg(job.pid, signal.SIGUSR1)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 3, err
    assert "interrupted by a signal: run file complete up to batch" in err
    stopped = len(calls(log))
    assert stopped < TOTAL
    resumed = start(["resume", tmp_path / "run.h5"], 1, log)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert contents(tmp_path / "run.h5") == contents(tmp_path / "full.h5")
    assert len(calls(log)) == TOTAL  # the signal waited for the evaluation in flight: nothing ran twice


def test_kill_9_and_signals_at_three_ranks_resume_exactly(tmp_path):
    """Killed twice (kill -9) and stopped once by a signal, on 3 and 2 ranks: the
    finished file replays exactly, holds every point once, and only evaluations in
    flight at a kill ran twice."""
    optimizer = {**OPTIMIZER, "generations": 8}
    total = 12 + 7 * 12
    # checkpoints only at the end or on a signal: resuming after kill -9 replays many batches
    path = write_config(tmp_path, problem=counted_problem(0.03), optimizer=optimizer,
                        checkpoint={"every_generations": 1000})
    log = tmp_path / "calls.log"
    kills, replayed = 0, []
    for n, (target, how) in enumerate([(15, signal.SIGKILL), (40, signal.SIGUSR1), (65, signal.SIGKILL)]):
        job = start(["run", path, "-o", tmp_path / "run.h5"] if n == 0 else ["resume", tmp_path / "run.h5"],
                    3 if n % 2 == 0 else 2, log)
        wait_for_lines(log, target, job)
        os.killpg(job.pid, how)
        out, err = job.communicate(timeout=60)
        replayed += re.findall(r"(\d+) batches replayed", err)
        kills += how == signal.SIGKILL
        told = replay(tmp_path / "run.h5")  # every interrupted file is consistent too
        assert len(told) == len(set(told))
    job = start(["resume", tmp_path / "run.h5"], 3, log)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err
    replayed += re.findall(r"(\d+) batches replayed", err)
    assert sum(int(n) >= 2 for n in replayed) >= 2, replayed  # after each kill
    assert sorted(replay(tmp_path / "run.h5")) == list(range(total))
    assert total <= len(calls(log)) <= total + kills * 3


def test_in_flight_during_two_crashes_is_recorded_failed(tmp_path):
    optimizer = {**OPTIMIZER, "generations": 3}
    problem = poisonous_problem()
    c = configuration.parse({"problem": problem, "optimizer": optimizer})
    g = generators.create(c.optimizer, 2, 2)
    problem["parameters"]["poison"] = float(g.ask(12)[1][5, 0])  # individual 5 of the initial points
    crash_twice_then_finish(tmp_path, problem, optimizer)
    told = replay(tmp_path / "run.h5")
    assert sorted(told) == list(range(12 + 2 * 12))
    with runfile.RunFile(tmp_path / "run.h5") as run:
        for i in range(len(run)):
            batch = run.generation(i)
            if 5 in batch.ids:
                j = batch.ids.tolist().index(5)
                assert batch.status[j] == 1 and batch.errors[j] == "in flight during 2 crashes of the job"


def test_extending_a_finished_run_continues_exactly(tmp_path):
    path = write_config(tmp_path, problem=counted_problem(0.0), optimizer=OPTIMIZER)
    env = {"HPCOPT_TEST_LOG": str(tmp_path / "calls.log")}
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, cwd=HERE, env=env)
    done = hpcopt("resume", tmp_path / "run.h5", "--generations", "9", ranks=3, cwd=HERE, env=env)
    assert "evaluation budget of 108 met" in done.stderr
    assert sorted(replay(tmp_path / "run.h5")) == list(range(12 + 8 * 12))
    best = hpcopt("best", tmp_path / "run.h5", cwd=HERE)
    assert best.stdout.startswith("best: batch ") and ", id " in best.stdout


def test_replay_uses_each_session_budget(tmp_path):
    """The last ask of a run is cut to its budget (62 - 60 = 2 points, not a batch of
    4). Killed after it and resumed with a larger budget, the replay must cut it as the
    killed session did, or the points it asks differ from those evaluated."""
    optimizer = {**OPTIMIZER, "offspring": 10}  # 12 + 5 x 10 = 62 evaluations
    path = write_config(tmp_path, problem=counted_problem(0.02), optimizer=optimizer,
                        checkpoint={"every_generations": 1000})
    log = tmp_path / "calls.log"
    job = start(["run", path, "-o", tmp_path / "run.h5"], 1, log)
    wait_for_lines(log, 58, job)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    resumed = start(["resume", tmp_path / "run.h5", "--generations", "9"], 1, log)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert re.search(r"journal: \d+ evaluations since the checkpoint reused, \d+ batches replayed", err)
    assert sorted(replay(tmp_path / "run.h5")) == list(range(12 + 8 * 10))


def test_a_budget_below_what_was_asked_is_refused(tmp_path):
    path = write_config(tmp_path, problem=counted_problem(0.02), optimizer=OPTIMIZER)
    log = tmp_path / "calls.log"
    job = start(["run", path, "-o", tmp_path / "run.h5"], 1, log)
    wait_for_lines(log, 30, job)
    os.killpg(job.pid, signal.SIGTERM)
    assert job.wait(timeout=60) == 3
    before = (tmp_path / "run.h5").read_bytes()
    # 3 generations: 36 evaluations, more than the ~30 told, fewer than the ~42 asked
    done = hpcopt("resume", tmp_path / "run.h5", "--generations", "3", cwd=HERE, check=False,
                  env={"HPCOPT_TEST_LOG": str(log)})
    assert done.returncode == 2 and "--generations" in done.stderr and "cannot be lower" in done.stderr
    assert (tmp_path / "run.h5").read_bytes() == before
