"""The Graupner-Brunel STDP example (examples/stdp) is BluePyOpt's model, fitted by hpcopt.

- its model computes, to rounding, the synaptic changes and objectives that BluePyOpt's
  own GraupnerBrunelEvaluator computes, at the notebook's fitted parameters and at 300
  random points in the bounds; its data and bounds are BluePyOpt's;
- its committed config scores the notebook's parameters as that evaluator does;
- a short fit at 2 ranks finishes, its best is within the bounds and stores what the
  model computes for it, and compare.py prints it beside the notebook's fit.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import evaluate, hpcopt, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDP = os.path.join(ROOT, "examples", "stdp")


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)




@pytest.fixture
def stdp(monkeypatch):
    """examples/stdp/stdp.py, imported."""
    monkeypatch.syspath_prepend(STDP)
    import stdp

    return stdp


@pytest.fixture
def gb_evaluator(monkeypatch):
    """BluePyOpt 1.14.26's own GraupnerBrunelEvaluator (examples/graupnerbrunelstdp), as a
    reference only. Patched: its protocols store stimuli as bytes and compare them with
    str, which under Python 3 never matches (no calcium at all, an IndexError)."""
    pytest.importorskip("bluepyopt")
    from corpus import examples

    monkeypatch.syspath_prepend(os.path.join(examples(), "graupnerbrunelstdp"))
    import gbevaluator

    evaluator = gbevaluator.GraupnerBrunelEvaluator()
    for protocol in evaluator.protocols:
        protocol.stim_vec = protocol.stim_vec.astype(str)
    return evaluator


def stdp_config():
    return read(os.path.join(STDP, "config.json"))


@pytest.mark.filterwarnings("ignore:Data type alias:DeprecationWarning")  # in BluePyOpt's stdputil
def test_stdp_model_is_bluepyopts(stdp, gb_evaluator):
    """Synaptic changes equal BluePyOpt's at the notebook's fit and at 300 random
    parameter sets in the bounds; the data and the bounds are BluePyOpt's."""
    space = stdp_config()["problem"]["parameters"]
    names = gb_evaluator.param_names
    assert {n: [lo, hi] for n, lo, hi in gb_evaluator.graup_params} == {n: space[n] for n in names}
    frozen = {n: v for n, v in space.items() if not isinstance(v, list)}
    assert frozen == {k: v for k, v in gb_evaluator.get_param_dict([0.0] * len(names)).items() if k not in names}
    points = stdp.DATA["points"]
    assert [p["mean"] for p in points] == gb_evaluator.sg and [p["sem"] for p in points] == gb_evaluator.stderr
    assert [stdp.objective_name(p["dt_ms"]) for p in points] == [f"dt{o.name}" for o in gb_evaluator.objectives]
    notebook = stdp.read("reference.json")["parameters"]
    rng = np.random.default_rng(1)
    low, high = np.array([space[n] for n in names]).T
    sets = [[notebook[n] for n in names]] + list(low + (high - low) * rng.random((300, len(names))))
    for x in sets:
        params = gb_evaluator.get_param_dict(x)
        ours = [stdp.synaptic_change(params, p["dt_ms"] / 1000.0) for p in points]
        with np.errstate(all="ignore"):
            theirs = gb_evaluator.compute_synaptic_gain_with_lists(x)
        assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-12), (dict(zip(names, x)), ours, theirs)
        assert list(stdp.evaluate(params).values()) == pytest.approx(gb_evaluator.evaluate_with_lists(x), abs=1e-10)


@pytest.mark.filterwarnings("ignore:Data type alias:DeprecationWarning")
def test_stdp_config_scores_the_notebooks_fit_as_bluepyopt(gb_evaluator, tmp_path):
    notebook = read(os.path.join(STDP, "reference.json"))["parameters"]
    free = {n: notebook[n] for n in gb_evaluator.param_names}
    result = evaluate(os.path.join(STDP, "config.json"), free, tmp_path, "notebook")
    theirs = gb_evaluator.evaluate_with_lists(list(free.values()))
    assert list(result["objectives"].values()) == pytest.approx(theirs, abs=1e-10)
    assert result["score"] == pytest.approx(1.1829533, abs=1e-6)  # the sum, as BluePyOpt 1.14.26 computes it


@pytest.mark.mpi
def test_stdp_example_short_fit(stdp, tmp_path):
    """The committed problem, 12 x 5 at 2 ranks: in bounds, the model's own objectives
    stored, and compare.py prints the comparison from the run file."""
    problem = {**stdp_config()["problem"], "path": [STDP]}
    config = write_config(tmp_path, problem=problem,
                          optimizer={"algorithm": "ibea", "population": 12, "generations": 5, "seed": 3})
    run = tmp_path / "stdp.h5"
    hpcopt("run", config, "-o", run, "-q", ranks=2, timeout=120)
    best = json.loads(hpcopt("best", run, "--json").stdout)
    assert best["status"] == "ok"
    bounds = {n: v for n, v in problem["parameters"].items() if isinstance(v, list)}
    assert set(best["parameters"]) == set(bounds)
    assert all(low <= best["parameters"][n] <= high for n, (low, high) in bounds.items()), best["parameters"]
    frozen = {n: v for n, v in problem["parameters"].items() if not isinstance(v, list)}
    assert best["objectives"] == pytest.approx(stdp.evaluate({**best["parameters"], **frozen}), rel=1e-12)
    assert best["score"] == pytest.approx(sum(best["objectives"].values()), rel=1e-12)
    done = subprocess.run([sys.executable, os.path.join(STDP, "compare.py"), str(run)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "BluePyOpt notebook" in done.stdout and "sum of objectives" in done.stdout
    assert f"sum of objectives {best['score']:.4f} vs 1.1830" in done.stdout  # ours, computed, and the notebook's
