"""Configuration: valid configs resolve; every bad input is one clear line, exit 2,
and nothing is written."""

import copy
import json
import os

import h5py
import pytest
from conftest import hpcopt, write_config, zdt1_problem

from hpcopt import config
from hpcopt.errors import ConfigError

GOOD = {
    "problem": zdt1_problem(3),
    "optimizer": {"algorithm": "ibea", "population": 8, "generations": 2, "seed": 3},
}


def test_defaults_are_resolved():
    c = config.parse(copy.deepcopy(GOOD))
    resolved = c.resolved()
    assert resolved["optimizer"]["offspring"] == 8
    assert resolved["optimizer"]["kappa"] == 0.05
    assert resolved["optimizer"]["weights"] == [1.0, 1.0]
    assert resolved["problem"]["penalty"] == 250.0
    assert resolved["checkpoint"] == {"every_generations": 1, "every_seconds": 0.0, "stop_within": 60.0}
    # the resolved config parses back to the same config
    assert config.parse(json.loads(json.dumps(resolved))).resolved() == resolved


def test_ibea_variation_probabilities():
    """crossover_probability and mutation_probability reach IBEA; at their defaults they are
    absent from the resolved config (a run file written before them resolves the same)."""
    from hpcopt.optimize import generators

    assert "mutation_probability" not in config.parse(copy.deepcopy(GOOD)).resolved()["optimizer"]
    raw = copy.deepcopy(GOOD)
    raw["optimizer"].update(crossover_probability=0.9, mutation_probability=0.5)
    c = config.parse(raw)
    resolved = c.resolved()
    assert (resolved["optimizer"]["crossover_probability"], resolved["optimizer"]["mutation_probability"]) == (0.9, 0.5)
    assert config.parse(json.loads(json.dumps(resolved))).resolved() == resolved
    made = generators.create(c.optimizer, 3, 2)
    assert (made.crossover_probability, made.mutation_probability) == (0.9, 0.5)
    default = generators.create(config.parse(copy.deepcopy(GOOD)).optimizer, 3, 2)
    assert (default.crossover_probability, default.mutation_probability) == (1.0, 1 / 3)


def test_frozen_parameters_and_weights():
    raw = copy.deepcopy(GOOD)
    raw["problem"]["parameters"]["x2"] = 0.5
    raw["optimizer"] = {"algorithm": "cmaes", "population": 6, "generations": 2, "weights": {"f2": 3}}
    c = config.parse(raw)
    assert [p.name for p in c.free_parameters] == ["x0", "x1"]
    assert c.weights == (1.0, 3.0)


def _set(path, value):
    def edit(raw):
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
        return raw

    return edit


_DELETE = object()

BAD = [
    (_set("problem.parameters.x0", [1, 0]), "problem.parameters.x0", "lower bound 1 must be below upper bound 0"),
    (_set("problem.parameters.x0", [0.5, 0.5]), "problem.parameters.x0", "must be below"),
    (_set("problem.parameters.x0", "wide"), "problem.parameters.x0", "expected a number"),
    (_set("optimizer.population", 0), "optimizer.population", "must be >= 1"),
    (_set("optimizer.population", -4), "optimizer.population", "must be >= 1"),
    (_set("optimizer.population", 2.5), "optimizer.population", "expected an integer"),
    (_set("optimizer.generations", 0), "optimizer.generations", "must be >= 1"),
    (_set("optimizer.algorithm", "nsga9"), "optimizer.algorithm", "valid: cmaes, ibea"),
    (_set("optimizer.popsize", 5), "optimizer.popsize", "valid keys here: algorithm, population, generations"),
    (_set("optimizer.sigma0", 0.3), "optimizer.sigma0", "not an option of ibea"),
    (_set("optimizer.kappa", 0), "optimizer.kappa", "must be > 0"),
    # an integer longer than a float holds (Python's json reads any length): one error, not a traceback
    (_set("optimizer.kappa", 10 ** 400), "optimizer.kappa", "expected a finite number, found 1000000"),
    (_set("optimizer.population", 10 ** 400), "optimizer.population", "expected a finite number"),
    (_set("problem.parameters.x0", [0, 10 ** 400]), "problem.parameters.x0", "bounds and their span must be finite"),
    (_set("problem.parameters.x0", -10 ** 400), "problem.parameters.x0", "expected a finite number"),
    (_set("optimizer.mutation_probability", 1.5), "optimizer.mutation_probability", "must be <= 1"),
    (_set("optimizer.crossover_probability", -0.1), "optimizer.crossover_probability", "must be >= 0"),
    (_set("optimizer.crossover_probability", "all"), "optimizer.crossover_probability", "expected a number"),
    (_set("optimizer.weights", [1]), "optimizer.weights", "expected 2 weights"),
    (_set("problem.function", "no_colon"), "problem.function", "package.module:callable"),
    (_set("problem.objectives", []), "problem.objectives", "non-empty list"),
    (_set("problem.objectives", ["a", "a"]), "problem.objectives", "unique"),
    (_set("problem.parameters", {}), "problem.parameters", "expected an object"),
    (_set("problem.extra", 1), "problem.extra", "unknown key"),
    (_set("checkpoint", {"every_generations": 0}), "checkpoint.every_generations", "must be >= 1"),
    (_set("optimizer", _DELETE), "optimizer", "missing (required)"),
    (_set("problem.function", _DELETE), "problem.function", "missing (required)"),
]


@pytest.mark.parametrize("edit, field, message", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_config_names_field(edit, field, message):
    raw = edit(copy.deepcopy(GOOD))
    with pytest.raises(ConfigError) as info:
        config.parse(raw, source="c.json")
    text = str(info.value)
    assert text.startswith(f"c.json: {field}:"), text
    assert message in text


def _refused(tmp_path, args, expected):
    """Run the CLI; it must exit 2 with one line naming the problem and write nothing."""
    before = set(os.listdir(tmp_path))
    done = hpcopt(*args, cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hpcopt: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert set(os.listdir(tmp_path)) == before
    return lines[0]


CLI_BAD = [
    ({**GOOD, "optimizer": {**GOOD["optimizer"], "population": 0}}, "optimizer.population: must be >= 1"),
    ({**GOOD, "optimizer": {**GOOD["optimizer"], "algorithm": "pso"}}, "unknown algorithm \"pso\""),
    ({**GOOD, "problem": {**GOOD["problem"], "function": "nosuchmodule:f"}},
     "problem.function: cannot import module 'nosuchmodule'"),
    ({**GOOD, "problem": {**GOOD["problem"], "function": "hpcopt.testfunctions:nosuch"}},
     "has no attribute 'nosuch'"),
    ({**GOOD, "typo": 1}, "typo: unknown key; valid keys here: problem, optimizer, checkpoint, output"),
]


@pytest.mark.parametrize("raw, expected", CLI_BAD, ids=[c[1][:30] for c in CLI_BAD])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_cli_refuses_bad_config(tmp_path, raw, expected, command):
    path = write_config(tmp_path, **raw)
    _refused(tmp_path, [command, path], expected)


def test_cli_refuses_missing_and_malformed_files(tmp_path):
    _refused(tmp_path, ["run", "missing.json"], "missing.json: cannot read config")
    (tmp_path / "broken.json").write_text('{"problem": ')
    _refused(tmp_path, ["run", "broken.json"], "broken.json: not valid JSON")
    _refused(tmp_path, ["validate", "broken.json"], "broken.json: not valid JSON")


def test_run_refuses_existing_output(tmp_path):
    path = write_config(tmp_path, **GOOD)
    (tmp_path / "run.h5").write_bytes(b"precious")
    _refused(tmp_path, ["run", path, "-o", "run.h5"], "run file exists")
    assert (tmp_path / "run.h5").read_bytes() == b"precious"


@pytest.mark.parametrize("content, expected", [
    (b"not hdf5 at all", "not an HDF5 file"),
    (None, "not an hpcopt run file"),
    ("version", "layout version 999"),
])
@pytest.mark.parametrize("command", ["resume", "best"])
def test_refuses_foreign_run_files(tmp_path, content, expected, command):
    path = tmp_path / "other.h5"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with h5py.File(path, "w") as f:
            f["x"] = [1, 2]
            if content == "version":
                f.attrs["format"] = "hpcopt-run"
                f.attrs["layout_version"] = 999
    stamp = path.stat().st_mtime_ns, path.read_bytes()
    _refused(tmp_path, [command, "other.h5"], expected)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp


def test_bad_config_under_mpi_prints_one_line(tmp_path):
    raw = {**GOOD, "optimizer": {**GOOD["optimizer"], "population": 0}}
    path = write_config(tmp_path, **raw)
    done = hpcopt("run", path, ranks=3, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"hpcopt: error: {path}: optimizer.population: must be >= 1, found 0"]
    assert os.listdir(tmp_path) == ["config.json"]


def test_validate_accepts_good_config(tmp_path):
    path = write_config(tmp_path, **GOOD)
    done = hpcopt("validate", path, cwd=tmp_path)
    assert "valid: ibea, 3 free parameters, 2 objectives" in done.stdout
    assert os.listdir(tmp_path) == ["config.json"]


@pytest.mark.parametrize("optimizer, settings", [
    ({"algorithm": "ibea", "population": 8, "generations": 2},
     "settings: seed 1, offspring 8, kappa 0.05, eta_crossover 10, eta_mutation 10, crossover_probability 1, "
     "mutation_probability 0.333333 (1 / 3)"),
    ({"algorithm": "ibea", "population": 20, "generations": 2, "seed": 7, "offspring": 4, "kappa": 0.01,
      "eta_crossover": 20, "mutation_probability": 0.5, "asynchronous": True},
     "settings: seed 7, offspring 4, kappa 0.01, eta_crossover 20, eta_mutation 10, crossover_probability 1, "
     "mutation_probability 0.5, asynchronous, batches of 2"),
    ({"algorithm": "cmaes", "population": 8, "generations": 2, "sigma0": 0.1},
     "settings: seed 1, sigma0 0.1 (the initial step, a fraction of each parameter's scaled range), starting at the "
     "centre of the ranges"),
])
def test_validate_prints_the_optimisers_settings(tmp_path, optimizer, settings):
    """Defaults included: what the run will use, not only what the config wrote."""
    path = write_config(tmp_path, **{**GOOD, "optimizer": optimizer})
    assert settings in hpcopt("validate", path, cwd=tmp_path).stdout.splitlines()
