"""The Tsodyks-Markram example (examples/stp) is BluePyOpt's model, fitted by hpcopt.

- its model computes, to rounding, the voltage and the nine window errors that
  BluePyOpt's own tmevaluator (and tmodeint) compute, at the notebook's fitted
  parameters, at the bounds' corners and at random points;
- trace.npz holds what convert_data.py makes of BluePyOpt's trace.pkl;
- a short fit at 2 ranks finishes, its best is within the bounds and scores what the
  model computes for it, and compare.py prints it beside the notebook's values.
"""

import json
import os
import subprocess
import sys

import corpus
import numpy as np
import pytest
from conftest import hpcopt, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STP = os.path.join(ROOT, "examples", "stp")
sys.path.insert(0, STP)
import tsodyks_markram as tm  # noqa: E402

VOLTAGE_TOLERANCE = 1e-12  # V, largest difference from BluePyOpt's trace (measured: 6e-14 at the upper bounds)
ERROR_TOLERANCE = 1e-9  # relative, for each window's error (measured: 1.4e-12)


def read(name):
    with open(os.path.join(STP, name)) as f:
        return json.load(f)


CONFIG = read("config.json")
BOUNDS = CONFIG["problem"]["parameters"]
REFERENCE = read("reference.json")["parameters"]


@pytest.fixture(scope="module")
def bluepyopt_evaluator():
    """BluePyOpt's own evaluator of the example, made as its notebook makes it, on the same trace."""
    pytest.importorskip("bluepyopt")
    sys.path.insert(0, os.path.join(corpus.examples(), "tsodyksmarkramstp"))
    try:
        import tmevaluator
    finally:
        sys.path.pop(0)
    optconf = [(name, low, high) for name, (low, high) in BOUNDS.items()]
    return tmevaluator.TsodyksMarkramEvaluator(tm.TRACE.t, tm.TRACE.v, tm.TRACE.tstim, optconf)


def parameter_sets():
    rng = np.random.default_rng(1)
    yield "notebook", REFERENCE
    yield "low", {name: low for name, (low, high) in BOUNDS.items()}
    yield "high", {name: high for name, (low, high) in BOUNDS.items()}
    for i in range(3):
        yield f"random{i}", {name: float(rng.uniform(low, high)) for name, (low, high) in BOUNDS.items()}


def test_the_config_is_bluepyopts_problem():
    assert list(BOUNDS) == list(tm.PARAMETERS) == list(REFERENCE)
    assert CONFIG["problem"]["objectives"] == tm.TRACE.objectives == [f"interval_{i}" for i in range(9)]
    assert all(low <= REFERENCE[name] <= high for name, (low, high) in BOUNDS.items())


@pytest.mark.parametrize("label, params", list(parameter_sets()), ids=[label for label, _ in parameter_sets()])
def test_model_computes_what_bluepyopt_computes(bluepyopt_evaluator, label, params):
    individual = [params[name] for name in tm.PARAMETERS]
    theirs = bluepyopt_evaluator.generate_model(individual)
    ours = tm.simulate(tm.TRACE, *individual)
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) <= VOLTAGE_TOLERANCE
    assert np.ptp(theirs) > 1000 * VOLTAGE_TOLERANCE  # a response, not a flat line
    their_errors = np.array(bluepyopt_evaluator.evaluate_with_lists(individual))
    our_errors = np.array(list(tm.evaluate(params).values()))
    np.testing.assert_allclose(our_errors, their_errors, rtol=ERROR_TOLERANCE, atol=0)


def test_trace_npz_is_what_convert_data_makes_of_bluepyopts_pickle(tmp_path):
    output = tmp_path / "trace.npz"
    subprocess.run([sys.executable, os.path.join(STP, "convert_data.py"), "-o", str(output)], check=True,
                   capture_output=True, text=True, timeout=120)
    with np.load(output, allow_pickle=False) as made, np.load(tm.DATA, allow_pickle=False) as committed:
        assert sorted(made.files) == sorted(committed.files) == ["t", "tstim", "v"]
        for name in made.files:
            assert np.array_equal(made[name], committed[name]), name


@pytest.mark.mpi
def test_short_fit_at_2_ranks(tmp_path):
    problem = {**CONFIG["problem"], "path": [STP]}
    path = write_config(tmp_path, problem=problem,
                        optimizer={"algorithm": "cmaes", "population": 8, "generations": 6, "seed": 1})
    run = tmp_path / "stp.h5"
    hpcopt("run", path, "-o", run, "-q", ranks=2, cwd=tmp_path)
    best = json.loads(hpcopt("best", run, "--json").stdout)
    assert best["status"] == "ok"
    assert list(best["parameters"]) == list(BOUNDS)
    for name, (low, high) in BOUNDS.items():
        assert low <= best["parameters"][name] <= high, (name, best["parameters"][name])
    objectives = tm.evaluate(best["parameters"])
    assert best["objectives"] == pytest.approx(objectives, rel=1e-12)
    assert best["score"] == pytest.approx(sum(objectives.values()), rel=1e-12)
    done = subprocess.run([sys.executable, os.path.join(STP, "compare.py"), str(run)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    for name in tm.PARAMETERS:
        assert float(rows[name][-2]) == pytest.approx(REFERENCE[name], rel=1e-5)
        assert float(rows[name][-1]) == pytest.approx(best["parameters"][name], rel=1e-5)
    worse = "WORSE" in done.stdout
    assert done.returncode == (1 if worse else 0)
