"""The cell examples are honest and do what their docs say.

- examples/make_targets.py, rerun on a copy, reproduces every committed target
  (so the targets are the model's response at examples/*/truth.json), and
  refuses when a feature is missing at the truth;
- the HH example (Neuroptimus problem 1): the truth scores better than
  perturbed parameter sets;
- the built-in cell example (examples/cell, what `make run` fits) recovers every
  known parameter within 5 % under `mpiexec -n 2` with its committed config.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import evaluate, hpcopt

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
