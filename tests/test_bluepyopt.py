"""BluePyOpt L5PC-style configs run unchanged and score as BluePyOpt scores them.

tests/data/l5pc_like is a model written for this project in BluePyOpt's L5PC file
formats (own SWC morphology with somatic, axonal, basal and apical lists and axon
replacement, an own .mod mechanism, an exp distance distribution, a bAP protocol
recorded in the apical dendrite at two distances, steps with holding current).
BluePyOpt (from PyPI) evaluates it through tests/bluepyopt_reference.py, a copy of
its L5PC example's model and evaluator code.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import HERE, hpcopt, write_config

pytest.importorskip("bluepyopt")

MODEL = os.path.join(HERE, "data", "l5pc_like")


def bluepyopt_config(directory):
    files = {
        "morphology": os.path.join(MODEL, "morphology", "cell.swc"),
        "mechanisms": os.path.join(MODEL, "config", "mechanisms.json"),
        "parameters": os.path.join(MODEL, "config", "parameters.json"),
        "protocols": os.path.join(MODEL, "config", "protocols.json"),
        "features": os.path.join(MODEL, "config", "features.json"),
        "mod_dir": os.path.join(MODEL, "mechanisms"),
        "replace_axon": True,
    }
    return write_config(directory, problem={"bluepyopt": files},
                        optimizer={"algorithm": "ibea", "population": 4, "generations": 1})


def bluepyopt_scores(params_path):
    script = ("import json, sys; import bluepyopt_reference as r; "
              "scores, _ = r.bluepyopt_scores(sys.argv[1], json.load(open(sys.argv[2]))); "
              "print(json.dumps(scores))")
    done = subprocess.run([sys.executable, "-c", script, MODEL, str(params_path)], cwd=HERE,
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": HERE})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("params", ["params_release.json", "params_perturbed.json"])
def test_same_scores_as_bluepyopt(tmp_path, params):
    path = os.path.join(MODEL, "config", params)
    ours = json.loads(hpcopt("evaluate", bluepyopt_config(tmp_path), "--params", path, "--json").stdout)
    theirs = bluepyopt_scores(path)
    assert ours["status"] == "ok"
    assert list(ours["objectives"]) == list(theirs)  # same names, same order
    assert len(theirs) >= 20
    for name, score in theirs.items():
        assert ours["objectives"][name] == pytest.approx(score, abs=1e-3), name
    assert 0 < sum(theirs.values()) < 250 * len(theirs)  # informative scores, not all penalties


def test_bluepyopt_config_runs_under_mpi(tmp_path):
    path = bluepyopt_config(tmp_path)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2)
    done = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    assert "gIhbar_Iht.apical" in done["parameters"]
    assert "bAP.dend1.AP_amplitude_from_voltagebase" in done["objectives"] or len(done["objectives"]) >= 20
