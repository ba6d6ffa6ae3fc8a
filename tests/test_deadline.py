"""evaluation.timeout: an evaluation past its deadline is stopped (its process
replaced), scores the penalty with status timeout, and the run goes on."""

import json

import h5py
import numpy as np
import pytest
from conftest import HERE, hpcopt, write_config

from hpcopt import config as configuration
from hpcopt.errors import ConfigError

STUCK = {"function": "models:stuck_in_c", "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]}


@pytest.mark.parametrize("ranks", [None, 2, 3])
def test_an_evaluation_stuck_in_c_is_a_timeout_and_the_run_finishes(tmp_path, ranks):
    path = write_config(tmp_path, problem=STUCK, evaluation={"timeout": 3},  # the others take microseconds
                        optimizer={"algorithm": "ibea", "population": 6, "generations": 2, "seed": 2})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=ranks)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert len(f["generations"]) == 2
        status = np.concatenate([g["status"][()] for g in f["generations"].values()])
        x0 = np.concatenate([g["parameters"][()][:, 0] for g in f["generations"].values()])
        objectives = np.concatenate([g["objectives"][()] for g in f["generations"].values()])
    assert (x0 > 0.6).any() and (x0 <= 0.6).any()
    assert np.array_equal(status == 2, x0 > 0.6)  # 2: timeout, exactly the stuck ones
    assert np.all(objectives[x0 > 0.6] == 250) and np.all(objectives[x0 <= 0.6] < 250)
    assert "past evaluation.timeout (3 s)" in done.stderr


def test_the_same_run_without_stuck_points_scores_as_in_process(tmp_path):
    """The child evaluates exactly as the rank itself would."""
    problem = {**STUCK, "function": "hpcopt.testfunctions:zdt1"}
    runs = []
    for name, extra in (("plain", {}), ("child", {"evaluation": {"timeout": 30}})):
        path = write_config(tmp_path, name=f"{name}.json", problem=problem, **extra,
                            optimizer={"algorithm": "ibea", "population": 6, "generations": 2})
        hpcopt("run", path, "-o", tmp_path / f"{name}.h5")
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            runs.append(f["generations/000001/objectives"][()])
    assert np.array_equal(*runs)


def test_a_cell_past_its_deadline_is_a_timeout(tmp_path):
    """A NEURON cell whose simulation cannot end within the deadline (10^7 ms)."""
    raw = json.load(open(f"{HERE}/../examples/hh/config.json"))
    for protocol in raw["problem"]["cell"]["protocols"].values():
        for stimulus in protocol["stimuli"]:
            stimulus["totduration"] = 1e7
    raw["optimizer"] = {"algorithm": "cmaes", "population": 2, "generations": 1}
    raw["evaluation"] = {"timeout": 2}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, check=False)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert list(f["generations/000000/status"][()]) == [2, 2]
    # a deadline no simulation meets: the run found nothing, and says so
    assert done.returncode == 2 and "every one of the 2 evaluations failed or timed out" in done.stderr


@pytest.mark.parametrize("value, message", [(0, "expected seconds > 0"), ("1", "expected a number"),
                                            (float("inf"), "expected a finite number")])
def test_a_bad_timeout_is_one_line(value, message):
    raw = {"problem": STUCK, "optimizer": {"algorithm": "ibea", "population": 4, "generations": 1},
           "evaluation": {"timeout": value}}
    with pytest.raises(ConfigError, match=message):
        configuration.parse(raw)
