"""The cell examples are honest and do what their docs say.

- examples/make_targets.py, rerun on a copy, reproduces every committed target
  (so the targets are the model's response at examples/*/truth.json), and
  refuses when a feature is missing at the truth;
- the HH example (Neuroptimus problem 1): the truth scores better than
  perturbed parameter sets;
- the built-in cell example (examples/cell, what `make run` fits) recovers every
  known parameter within 5 % under `mpiexec -n 2` with its committed config;
- the STDP example (examples/stdp): its model computes what BluePyOpt's own
  Graupner-Brunel evaluator computes, its committed config scores the notebook's fit
  as that evaluator does, and a short fit at 2 ranks stays in bounds and stores the
  model's own objectives, which compare.py prints beside the notebook's.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import hpcopt, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
CELL_EXAMPLES = ("hh", "cell")


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def make_targets(config, truth):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, "make_targets.py"), str(config), str(truth)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def copy_example(name, directory):
    """The example's config.json and truth.json copied into ``directory``; their paths."""
    config, truth = (os.path.join(directory, f) for f in ("config.json", "truth.json"))
    shutil.copy(os.path.join(EXAMPLES, name, "config.json"), config)
    shutil.copy(os.path.join(EXAMPLES, name, "truth.json"), truth)
    return config, truth


@pytest.mark.parametrize("name", CELL_EXAMPLES)
def test_make_targets_reproduces_the_committed_targets(name, tmp_path):
    committed = os.path.join(EXAMPLES, name, "config.json")
    config, truth = copy_example(name, tmp_path)
    done = make_targets(config, truth)
    assert done.returncode == 0, done.stderr
    expected, found = read(committed), read(config)
    assert found["problem"]["cell"]["features"] == expected["problem"]["cell"]["features"]
    assert found == expected  # everything else is kept
    with open(committed, encoding="utf-8") as a, open(config, encoding="utf-8") as b:
        assert a.read() == b.read()  # and the committed file is make_targets' own output


def test_make_targets_refuses_a_missing_feature(tmp_path):
    config, truth = copy_example("hh", tmp_path)
    with open(truth, "w") as f:  # too little sodium: no spike, so no spike feature
        json.dump({"gnabar_hh.somatic": 0.001, "gkbar_hh.somatic": 0.036, "gl_hh.somatic": 3e-4}, f)
    with open(config, "rb") as f:
        before = f.read()
    done = make_targets(config, truth)
    assert done.returncode == 1
    assert "no value at the truth for feature(s)" in done.stderr and "mean_frequency" in done.stderr
    with open(config, "rb") as f:
        assert f.read() == before  # nothing written


def test_make_targets_refuses_a_wrong_truth(tmp_path):
    config, truth = copy_example("hh", tmp_path)
    with open(truth, "w") as f:
        json.dump({"gnabar_hh.somatic": 0.12}, f)
    done = make_targets(config, truth)
    assert done.returncode == 1 and "expected exactly the free parameters" in done.stderr


def evaluate(config, params, directory, name):
    path = os.path.join(directory, f"{name}.json")
    with open(path, "w") as f:
        json.dump(params, f)
    result = json.loads(hpcopt("evaluate", config, "--params", path, "--json").stdout)
    assert result["status"] == "ok", result["error"]
    return result


def test_hh_truth_scores_better_than_perturbed_parameters(tmp_path):
    config = os.path.join(EXAMPLES, "hh", "config.json")
    truth = read(os.path.join(EXAMPLES, "hh", "truth.json"))
    assert truth == {"gnabar_hh.somatic": 0.12, "gkbar_hh.somatic": 0.036, "gl_hh.somatic": 3e-4}
    best = evaluate(config, truth, tmp_path, "truth")
    assert best["score"] < 1.0
    assert all(values for values in best["features"].values())
    perturbed = [{**truth, name: value * factor} for name, value in truth.items() for factor in (0.8, 1.25)]
    perturbed.append({name: value * 1.1 for name, value in truth.items()})
    for i, params in enumerate(perturbed):
        result = evaluate(config, params, tmp_path, f"perturbed{i}")
        assert result["score"] > best["score"] + 1.0, (params, result["score"], best["score"])


@pytest.mark.mpi
def test_cell_example_recovers_the_truth(tmp_path):
    """The built-in example, as committed, at 2 ranks: every parameter within 5 %."""
    config = os.path.join(EXAMPLES, "cell", "config.json")
    truth = read(os.path.join(EXAMPLES, "cell", "truth.json"))
    run = tmp_path / "cell.h5"
    hpcopt("run", config, "-o", run, "-q", ranks=2, timeout=900)
    best = json.loads(hpcopt("best", run, "--json").stdout)
    assert set(best["parameters"]) == set(truth)
    errors = {name: abs(best["parameters"][name] - value) / value for name, value in truth.items()}
    assert max(errors.values()) < 0.05, errors


STDP = os.path.join(EXAMPLES, "stdp")


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
