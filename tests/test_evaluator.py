"""Any BluePyOpt evaluator runs on hpcopt (problem.bluepyopt_evaluator): parameters,
bounds and objectives from the evaluator, scores exactly its evaluate_with_lists, an
exception a failed evaluation; runs, resume and rank counts as for other problems.
BluePyOpt's own L5PC evaluator is tested in test_corpus.py."""

import json

import h5py
import numpy as np
import pytest
from conftest import HERE, assert_same_results, hpcopt, write_config

pytest.importorskip("bluepyopt")


def config(tmp_path, name="config.json", generations=4, **evaluator):
    spec = {"factory": "bpo_evaluators:create", "path": [HERE], **evaluator}
    return write_config(tmp_path, name, problem={"bluepyopt_evaluator": spec},
                        optimizer={"algorithm": "ibea", "population": 6, "generations": generations, "seed": 4})


def test_validate_takes_names_and_bounds_from_the_evaluator(tmp_path):
    done = hpcopt("validate", config(tmp_path))
    assert "valid: ibea, 2 free parameters, 2 objectives" in done.stdout


def test_scores_are_evaluate_with_lists(tmp_path):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"x": 0.5, "y": -0.5}))
    done = json.loads(hpcopt("evaluate", config(tmp_path, arguments={"centre": 0.1}), "--params", params,
                             "--json").stdout)
    assert done["status"] == "ok" and done["objectives"] == {"fx": (0.5 - 0.1) ** 2, "fy": (-0.5 + 0.1) ** 2}


@pytest.mark.mpi
def test_runs_fail_gracefully_and_are_the_same_at_1_and_3_ranks_and_after_resume(tmp_path):
    path = config(tmp_path, arguments={"fail_above": 0.5})
    hpcopt("run", path, "-o", tmp_path / "one.h5")
    hpcopt("run", path, "-o", tmp_path / "three.h5", ranks=3)
    assert_same_results(tmp_path / "one.h5", tmp_path / "three.h5")
    short = config(tmp_path, "short.json", generations=2, arguments={"fail_above": 0.5})
    hpcopt("run", short, "-o", tmp_path / "resumed.h5")
    hpcopt("resume", tmp_path / "resumed.h5", "--generations", 4, ranks=2)
    assert_same_results(tmp_path / "one.h5", tmp_path / "resumed.h5")
    with h5py.File(tmp_path / "one.h5", "r") as f:
        status = np.concatenate([g["status"][()] for g in f["generations"].values()])
        errors = [e.decode() for g in f["generations"].values() for e in g["error"][()]]
        X = np.concatenate([g["parameters"][()] for g in f["generations"].values()])
    assert np.array_equal(status != 0, X[:, 0] > 0.5) and status.any()
    assert any("FloatingPointError: the model diverged" in e for e in errors)


@pytest.mark.parametrize("evaluator, message", [
    ({"factory": "bpo_evaluators:nothing"}, "has no attribute 'nothing'"),
    ({"factory": "bpo_evaluators:not_an_evaluator"},
     "not a BluePyOpt evaluator (no params, objectives, evaluate_with_lists)"),
    ({"factory": "bpo_evaluators:create", "arguments": {"colour": 1}}, "unexpected keyword argument 'colour'"),
    ({"factory": "nocolon"}, "expected 'package.module:callable'"),
    ({"factory": "bpo_evaluators:create", "arguments": [1]}, "arguments: expected an object"),
])
def test_a_bad_factory_is_one_line_and_nothing_is_written(tmp_path, evaluator, message):
    spec = {"path": [HERE], **evaluator}
    path = write_config(tmp_path, problem={"bluepyopt_evaluator": spec},
                        optimizer={"algorithm": "ibea", "population": 4, "generations": 1})
    done = hpcopt("run", path, "-o", tmp_path / "run.h5", check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, \
        done.stderr
    assert not (tmp_path / "run.h5").exists()
