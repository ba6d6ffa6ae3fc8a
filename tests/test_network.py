"""Networks (problem.network) evaluated by groups of ranks (execution.ranks_per_evaluation
K, NEURON subworlds): the same scores at K = 1 and 2, the same run at any rank count for
a given K, refused rank counts, failures agreed on by a group, resume after a signal."""

import json
import os

import h5py
import numpy as np
import pytest
from conftest import (
    HERE,
    assert_refused_on_group_rank_1,
    assert_same_results,
    generations,
    hpcopt,
    resume_after_a_crash,
    resume_after_a_signal,
    write_config,
)

from hpcopt import config as configuration
from hpcopt.errors import ConfigError
from hpcopt.problem.network import measure

EXAMPLE = os.path.join(HERE, "..", "examples", "network", "config.json")
OPTIMIZER = {"algorithm": "cmaes", "population": 4, "generations": 3, "seed": 2}


def network(builder="network_models:build", **frozen):
    """examples/network's problem, shorter (200 ms), through tests/network_models.py."""
    with open(EXAMPLE) as f:
        problem = json.load(f)["problem"]["network"]
    problem.update(builder=builder, path=[HERE], tstop=200, window=[50, 200])
    problem["parameters"].update(frozen)
    return {"network": problem}


def config(tmp_path, name, k=1, optimizer=OPTIMIZER, **frozen):
    return write_config(tmp_path, name, problem=network(**frozen), optimizer=optimizer,
                        execution={"ranks_per_evaluation": k})


# ---------------------------------------------------------------- without MPI


def parse(problem, **sections):
    return configuration.parse({"problem": problem, "optimizer": OPTIMIZER, **sections})


@pytest.mark.parametrize("change, where, says", [
    (lambda p: p["objectives"]["E.rate"].update(voltage="e0"), "objectives.E.rate", "either population"),
    (lambda p: p["objectives"]["E.rate"].update(measure="burstiness"), "objectives.E.rate.measure", "rate, isi_cv"),
    (lambda p: p["objectives"]["E.rate"].update(std=0), "objectives.E.rate.std", "must be > 0"),
    (lambda p: p["objectives"]["e0.mean_frequency"].update(measure="rate"), "e0.mean_frequency.measure",
     "only with population"),
    (lambda p: p.update(window=[50, 300]), "network.window", "<= tstop"),
    (lambda p: p.update(builder="model.build"), "network.builder", "'module:function'"),
    (lambda p: p["parameters"].update(w_in=[0.01, 0.001]), "parameters.w_in", "must be below"),
])
def test_a_bad_network_config_is_one_error_naming_the_field(change, where, says):
    assert_refused(change, where, says)


def assert_refused(change, where, says):
    """examples/network's problem, changed by ``change``, is refused naming ``where``."""
    problem = network()
    change(problem["network"])
    with pytest.raises(ConfigError) as err:
        parse(problem)
    assert where in str(err.value) and says in str(err.value)


def test_ranks_per_evaluation_only_where_it_can_work():
    function = {"function": "hpcopt.testfunctions:zdt1", "parameters": {"x": [0, 1]}, "objectives": ["f1", "f2"]}
    with pytest.raises(ConfigError, match="execution.ranks_per_evaluation.*only for a problem.network"):
        parse(function, execution={"ranks_per_evaluation": 2})
    with pytest.raises(ConfigError, match="cannot be combined with evaluation.timeout"):
        parse(network(), execution={"ranks_per_evaluation": 2}, evaluation={"timeout": 10})
    with pytest.raises(ConfigError, match="must be >= 1"):
        parse(network(), execution={"ranks_per_evaluation": 0})
    assert parse(network(), execution={"ranks_per_evaluation": 1}).resolved().get("execution") is None
    assert parse(network(), execution={"ranks_per_evaluation": 3}).resolved()["execution"] == {
        "ranks_per_evaluation": 3}


def test_measures_of_spikes():
    # cell 1: spikes every 10 ms from 0 to 90 (regular); cell 2: at 5, 6, 50 ms; cell 3 silent
    times = np.concatenate([np.arange(0, 100, 10.0), [5.0, 6.0, 50.0]])
    ids = np.concatenate([np.full(10, 1), np.full(3, 2)])
    window = (0.0, 100.0)
    assert measure("rate", times, ids, [1, 2, 3], window, 5) == pytest.approx(13 / 3 / 0.1)
    isi2 = np.array([1.0, 44.0])
    assert measure("isi_cv", times, ids, [1, 2, 3], window, 5) == pytest.approx((0 + isi2.std() / isi2.mean()) / 2)
    counts = np.histogram(times, bins=np.arange(0, 105, 5))[0]
    assert measure("synchrony", times, ids, [1, 2], window, 5) == pytest.approx(counts.var() / counts.mean())
    assert np.isnan(measure("isi_cv", times, ids, [3], window, 5))
    assert measure("rate", times, ids, [1], (50.0, 100.0), 5) == pytest.approx(5 / 0.05)


def test_evaluate_shows_each_measure_beside_its_target(tmp_path):
    params = tmp_path / "truth.json"
    params.write_text(open(os.path.join(HERE, "..", "examples", "network", "truth.json")).read())
    done = hpcopt("evaluate", EXAMPLE, "--params", params)
    assert "status: ok" in done.stdout
    assert "E.rate: 0  (value 15, target 15 +- 1.5)" in done.stdout  # the targets are the truth's own values
    result = json.loads(hpcopt("evaluate", EXAMPLE, "--params", params, "--json").stdout)
    assert result["score"] < 1e-3 and result["features"]["I.rate"] == [pytest.approx(53.5)]


@pytest.mark.parametrize("change, where, says", [
    (lambda p: p.update(bin=100), "network.bin", "fewer than 2 bins"),
    (lambda p: p.update(penalty=0), "network.penalty", "must be > 0"),
    (lambda p: p["objectives"].update({"": {"population": "E", "measure": "rate", "mean": 1, "std": 1}}),
     "network.objectives", "needs a name"),
])
def test_settings_that_could_only_score_the_penalty_are_refused(change, where, says):
    assert_refused(change, where, says)


def test_a_connection_shorter_than_the_step_fails_the_evaluation(tmp_path):
    """NEURON's spike exchange cannot deliver it between ranks: failed at K = 1 too, so
    that a run does not depend on K."""
    path = write_config(tmp_path, "c.json", problem=network("network_models:short_delays"),
                        optimizer={**OPTIMIZER, "generations": 1})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", "-q", check=False)
    assert done.returncode == 2 and "evaluations failed or timed out; the first error: " in done.stderr  # no fit
    first = generations(tmp_path / "run.h5", ("status", "error"))["000000"]
    assert set(first["status"]) == {1}
    assert b"connection delay of 0.01 ms is shorter than the time step" in first["error"][0]


def test_a_builder_that_records_nothing_fails_each_evaluation(tmp_path):
    path = write_config(tmp_path, "c.json", problem=network("network_models:nothing_recorded"),
                        optimizer={**OPTIMIZER, "generations": 1})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", "-q", check=False)
    assert done.returncode == 2 and "evaluations failed or timed out; the first error: " in done.stderr  # no fit
    first = generations(tmp_path / "run.h5", ("status", "error"))["000000"]
    assert set(first["status"]) == {1}
    assert b"no 'populations'" in first["error"][0]


# ---------------------------------------------------------------- under mpiexec


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run of each test config at 1 rank (K = 1): {name: run file}."""
    directory = tmp_path_factory.mktemp("network_reference")
    runs = {}
    for name, frozen in (("plain", {}), ("refusing", {"refuse_on": 0})):  # 1 rank: the leader refuses
        path = config(directory, f"{name}.json", **frozen)
        runs[name] = directory / f"{name}.h5"
        hpcopt("run", path, "-o", runs[name], "-q")
    return runs


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, k, rank0", [(2, 1, "auto"), (2, 2, "auto"), (3, 1, "auto"), (4, 2, "auto"),
                                             (4, 2, "dispatch")])
def test_the_same_run_at_any_k_and_rank_count(tmp_path, reference, ranks, k, rank0):
    """rank0 dispatch: rank 0 only hands out work, and the other ranks of its group wait
    until the end."""
    path = config(tmp_path, "c.json", k)
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", "--rank0", rank0, ranks=ranks)
    assert_same_results(tmp_path / "run.h5", reference["plain"])
    groups = ranks // k
    assert (f"{ranks} ranks in {groups} group{'s' * (groups > 1)} of {k}" if k > 1 else f"{ranks} ranks") \
        in done.stderr
    with h5py.File(tmp_path / "run.h5", "r") as f:  # leaders' world ranks
        seen = set(np.concatenate([g["rank"][()] for g in f["generations"].values()]))
    assert seen <= set(range(k if rank0 == "dispatch" else 0, ranks, k))


@pytest.mark.mpi
def test_a_group_agrees_that_a_build_failed(tmp_path, reference):
    """The builder raises on group rank 1 only; its leader (rank 0) built fine: the group
    must still fail the evaluation together (no rank left waiting in the integration), the
    same evaluations as where the only rank refuses."""
    path = config(tmp_path, "c.json", 2, refuse_on=1)
    hpcopt("run", path, "-o", tmp_path / "run.h5", "-q", ranks=4, timeout=300)
    assert_refused_on_group_rank_1(tmp_path / "run.h5", reference["refusing"], 0.006)


@pytest.mark.mpi
def test_a_rank_count_that_is_not_a_multiple_of_k_is_refused(tmp_path):
    path = config(tmp_path, "c.json", 2)
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=3, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ranks_per_evaluation" in lines[0] and "start 2 or 4 ranks" in lines[0]
    assert not list(tmp_path.glob("run.h5*"))


@pytest.mark.mpi
def test_resume_after_a_signal_at_k_2(tmp_path, reference):
    optimizer = {**OPTIMIZER, "generations": 6}
    full = tmp_path / "full.h5"
    hpcopt("run", config(tmp_path, "full.json", 2, optimizer), "-o", full, "-q", ranks=2)
    resume_after_a_signal(tmp_path, config(tmp_path, "c.json", 2, optimizer), full)


@pytest.mark.mpi
def test_a_dead_rank_in_a_group_ends_the_job_and_resume_finishes_the_run(tmp_path, reference):
    path = write_config(tmp_path, "c.json", problem=network("network_models:dies_once_on_group_rank_1"),
                        optimizer=OPTIMIZER, execution={"ranks_per_evaluation": 2})
    resume_after_a_crash(tmp_path, path, reference["plain"], OPTIMIZER["generations"])


def test_the_config_in_docs_networks_md_is_valid():
    """docs/networks.md shows examples/network's config (targets rounded); it must parse."""
    import re

    with open(os.path.join(HERE, "..", "docs", "networks.md")) as f:
        block = re.findall(r"```json\n(.*?)```", f.read(), re.S)[0]
    shown = configuration.parse(json.loads(block), base_dir=os.path.dirname(EXAMPLE))
    example = configuration.load(EXAMPLE)
    assert shown.problem.objectives == example.problem.objectives
    assert [(p.name, p.lower, p.upper) for p in shown.problem.parameters] == [
        (p.name, p.lower, p.upper) for p in example.problem.parameters]
    for a, b in zip(shown.problem.targets, example.problem.targets):
        assert a.mean == pytest.approx(b.mean, rel=0.01) and a.std == pytest.approx(b.std, rel=0.01)


def test_the_report_shows_each_measure_against_its_target(tmp_path, reference):
    import csv

    hpcopt("report", reference["plain"], "-o", tmp_path / "report")
    with open(tmp_path / "report" / "features.csv") as f:
        rows = list(csv.DictReader(f))
    objectives = network()["network"]["objectives"]
    assert [r["feature"] for r in rows] == list(objectives)
    for r in rows:
        target = objectives[r["feature"]]
        assert float(r["target_mean"]) == target["mean"] and float(r["target_std"]) == target["std"]
        assert r["protocol"] == target.get("population", target.get("voltage"))
        assert float(r["score"]) == pytest.approx(abs(float(r["value"]) - target["mean"]) / target["std"])
    assert (tmp_path / "report" / "features.png").stat().st_size > 10_000
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Measures of the best individual (lowest score) against their targets" in page
