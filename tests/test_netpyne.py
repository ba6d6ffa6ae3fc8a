"""NetPyNE networks (problem.network.netpyne, tests/netpyne_models.py): the config's
forms, finite measures, and the same run at 1 rank (K = 1), 2 ranks (K = 2) and 4 ranks
(K = 2). Skipped where NetPyNE is not installed (pip install hpcopt[netpyne])."""

import json
import math

import pytest
from conftest import HERE, assert_same_results, generations, hpcopt, write_config

from hpcopt import config as configuration
from hpcopt.errors import ConfigError

pytest.importorskip("netpyne", reason="NetPyNE is not installed (pip install netpyne): NetPyNE networks untested")

OPTIMIZER = {"algorithm": "cmaes", "population": 4, "generations": 2, "seed": 2}
TRUTH = {"w_in": 0.003, "w_ei": 0.005, "w_ie": 0.02}


def network(make="netpyne_models:make"):
    return {"network": {
        "netpyne": make, "path": [HERE],
        "parameters": {"w_in": [0.001, 0.01], "w_ei": [0.001, 0.03], "w_ie": [0.005, 0.2], "w_ee": 0.001},
        "tstop": 200, "window": [50, 200],
        "objectives": {
            "E.rate": {"population": "E", "measure": "rate", "mean": 4.7, "std": 0.5},
            "I.rate": {"population": "I", "measure": "rate", "mean": 65, "std": 6.5},
            "E.isi_cv": {"population": "E", "measure": "isi_cv", "mean": 0.46, "std": 0.05},
            "E.synchrony": {"population": "E", "measure": "synchrony", "mean": 0.96, "std": 0.1},
            "e0.mean_frequency": {"voltage": "E[0]", "feature": "mean_frequency", "mean": 73, "std": 7}}}}


def config(tmp_path, name, k=1, make="netpyne_models:make"):
    return write_config(tmp_path, name, problem=network(make), optimizer=OPTIMIZER,
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
    hpcopt("run", path, "-o", tmp_path / "run.h5", "-q")
    first = generations(tmp_path / "run.h5", ("status", "error"))["000000"]
    assert set(first["status"]) == {1}
    assert b"not (netParams, simConfig)" in first["error"][0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("netpyne_reference")
    hpcopt("run", config(directory, "c.json"), "-o", directory / "run.h5", "-q")
    return directory / "run.h5"


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, k", [(2, 2), (4, 2)])
def test_the_same_run_at_any_k_and_rank_count(tmp_path, reference, ranks, k):
    hpcopt("run", config(tmp_path, "c.json", k), "-o", tmp_path / "run.h5", "-q", ranks=ranks)
    assert_same_results(tmp_path / "run.h5", reference)
