"""NetPyNE networks (problem.network.netpyne, tests/netpyne_models.py): the config's
forms, finite measures, the same run at 1 rank (K = 1), 2 ranks (K = 2) and 4 ranks
(K = 2), and at K = 2 a make() that fails on one rank of a group, a signal then resume, a
rank that dies. Skipped where NetPyNE is not installed (pip install hpcopt[netpyne])."""

import json
import math

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

pytest.importorskip("netpyne", reason="NetPyNE is not installed (pip install netpyne): NetPyNE networks untested")

OPTIMIZER = {"algorithm": "cmaes", "population": 4, "generations": 2, "seed": 2}
TRUTH = {"w_in": 0.003, "w_ei": 0.005, "w_ie": 0.02}


def network(make="netpyne_models:make", **frozen):
    return {"network": {
        "netpyne": make, "path": [HERE],
        "parameters": {"w_in": [0.001, 0.01], "w_ei": [0.001, 0.03], "w_ie": [0.005, 0.2], "w_ee": 0.001, **frozen},
        "tstop": 200, "window": [50, 200],
        "objectives": {
            "E.rate": {"population": "E", "measure": "rate", "mean": 4.7, "std": 0.5},
            "I.rate": {"population": "I", "measure": "rate", "mean": 65, "std": 6.5},
            "E.isi_cv": {"population": "E", "measure": "isi_cv", "mean": 0.46, "std": 0.05},
            "E.synchrony": {"population": "E", "measure": "synchrony", "mean": 0.96, "std": 0.1},
            "e0.mean_frequency": {"voltage": "E[0]", "feature": "mean_frequency", "mean": 73, "std": 7}}}}


def config(tmp_path, name, k=1, make="netpyne_models:make", optimizer=OPTIMIZER, **frozen):
    return write_config(tmp_path, name, problem=network(make, **frozen), optimizer=optimizer,
                        execution={"ranks_per_evaluation": k})


@pytest.mark.parametrize("keys, says", [({"builder": "model:build"}, "not both"), ({}, "give either builder")])
def test_a_network_is_built_by_a_builder_or_netpyne_not_both(keys, says):
    problem = network()
    problem["network"].update(keys)
    if not keys:
        del problem["network"]["netpyne"]
    with pytest.raises(ConfigError) as err:
        configuration.parse({"problem": problem, "optimizer": OPTIMIZER})
    assert "problem.network" in str(err.value) and says in str(err.value)


def test_a_netpyne_function_must_be_module_colon_function():
    problem = network("netpyne_models.make")
    with pytest.raises(ConfigError, match=r"network\.netpyne.*'module:function'"):
        configuration.parse({"problem": problem, "optimizer": OPTIMIZER})
    resolved = configuration.parse({"problem": network(), "optimizer": OPTIMIZER}).resolved()["problem"]["network"]
    assert resolved["netpyne"] == "netpyne_models:make" and "builder" not in resolved


def test_an_evaluation_measures_finite_values(tmp_path):
    path = config(tmp_path, "c.json")
    (tmp_path / "p.json").write_text(json.dumps(TRUTH))
    result = json.loads(hpcopt("evaluate", path, "--params", tmp_path / "p.json", "--json").stdout)
    assert result["status"] == "ok", result["error"]
    values = {name: value[0] for name, value in result["features"].items()}
    assert set(values) == set(network()["network"]["objectives"])
    assert all(math.isfinite(v) for v in values.values()) and values["I.rate"] > 0 and values["E.rate"] > 0


def test_a_make_that_returns_no_pair_fails_each_evaluation(tmp_path):
    path = config(tmp_path, "c.json", make="netpyne_models:not_a_pair")
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", "-q", check=False)
    assert done.returncode == 2 and "evaluations failed or timed out; the first error: " in done.stderr  # no fit
    first = generations(tmp_path / "run.h5", ("status", "error"))["000000"]
    assert set(first["status"]) == {1}
    assert b"not (netParams, simConfig)" in first["error"][0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run of each test config at 1 rank (K = 1): {name: run file}."""
    directory = tmp_path_factory.mktemp("netpyne_reference")
    runs = {}
    for name, make, frozen in (("plain", "netpyne_models:make", {}),
                               ("refusing", "netpyne_models:refusing", {"refuse_on": 0})):  # 1 rank: the leader
        runs[name] = directory / f"{name}.h5"
        hpcopt("run", config(directory, f"{name}.json", make=make, **frozen), "-o", runs[name], "-q")
    return runs


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, k", [(2, 2), (4, 2)])
def test_the_same_run_at_any_k_and_rank_count(tmp_path, reference, ranks, k):
    hpcopt("run", config(tmp_path, "c.json", k), "-o", tmp_path / "run.h5", "-q", ranks=ranks)
    assert_same_results(tmp_path / "run.h5", reference["plain"])


@pytest.mark.mpi
def test_a_group_agrees_that_make_failed(tmp_path, reference):
    """make() raises on group rank 1 only; its leader made the network fine: the group fails
    the evaluation together (no rank left waiting in NetPyNE or the integration), the same
    evaluations as where the only rank refuses."""
    path = config(tmp_path, "c.json", 2, make="netpyne_models:refusing", refuse_on=1)
    hpcopt("run", path, "-o", tmp_path / "run.h5", "-q", ranks=4, timeout=300)
    assert_refused_on_group_rank_1(tmp_path / "run.h5", reference["refusing"], 0.0055)


@pytest.mark.mpi
def test_resume_after_a_signal_at_k_2(tmp_path):
    """SIGUSR1 to a 4-rank job (two groups of 2) in generation 3, then resume at 4 ranks:
    the run of an uninterrupted job at 2 ranks (one group of 2)."""
    optimizer = {**OPTIMIZER, "generations": 6}
    full = tmp_path / "full.h5"
    hpcopt("run", config(tmp_path, "full.json", 2, optimizer=optimizer), "-o", full, "-q", ranks=2)
    resume_after_a_signal(tmp_path, config(tmp_path, "c.json", 2, "netpyne_models:refusing", optimizer), full)


@pytest.mark.mpi
def test_a_dead_rank_in_a_group_ends_the_job_and_resume_finishes_the_run(tmp_path):
    """Group rank 1 segfaults in generation 2 or later: the job ends (no hang), the run file
    holds generation 0 at least, and resume finishes the run of a job that did not crash."""
    optimizer = {**OPTIMIZER, "generations": 4}
    hpcopt("run", config(tmp_path, "full.json", optimizer=optimizer), "-o", tmp_path / "full.h5", "-q")
    path = config(tmp_path, "c.json", 2, "netpyne_models:dies_once_on_group_rank_1", optimizer)
    resume_after_a_crash(tmp_path, path, tmp_path / "full.h5", optimizer["generations"])
