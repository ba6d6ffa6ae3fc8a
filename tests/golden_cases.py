"""The cases behind tests/data/golden/golden.json, shared by its recorder
(tests/data/golden/record.py) and its check (tests/test_golden.py).

Everything here goes through the ``hpcopt`` command line and reads run files with
plain h5py, so it does not depend on hpcopt's internal modules.

A case's config is ``{"problem": ..., "optimizer": ...}``, or ``{"problem_from":
PATH, "optimizer": ...}`` where PATH (relative to the repository root) is a config
file whose ``problem`` section is used. Values are stored with ``float.hex``, so
a comparison is exact to the bit.
"""

import copy
import hashlib
import json
import os

from conftest import HERE, generations, hpcopt, write_config

ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "data", "golden", "golden.json")
DATASETS = ("parameters", "objectives", "status")
CELL = "examples/cell/config.json"


def _function_problem(function, parameters, objectives):
    return {"function": f"hpcopt.testfunctions:{function}", "parameters": parameters, "objectives": objectives}


ZDT1 = _function_problem("zdt1", {f"x{i}": [0, 1] for i in range(6)}, ["f1", "f2"])
ROSENBROCK = _function_problem("rosenbrock", {f"x{i}": [-5, 5] for i in range(4)}, ["f"])

# name: config. Each is recorded once and must come out the same at every rank count.
CASES = {
    "cell_ibea": {
        "problem_from": CELL,
        "optimizer": {"algorithm": "ibea", "population": 6, "generations": 3, "seed": 3},
    },
    "cell_cmaes": {
        "problem_from": CELL,
        "optimizer": {"algorithm": "cmaes", "population": 6, "generations": 3, "seed": 3},
    },
    "zdt1_ibea": {
        "problem": ZDT1,
        "optimizer": {"algorithm": "ibea", "population": 10, "generations": 5, "seed": 2},
    },
    "rosenbrock_cmaes": {
        "problem": ROSENBROCK,
        "optimizer": {"algorithm": "cmaes", "population": 8, "generations": 6, "seed": 2},
    },
}

# name: (case, generations of the first run, ranks of the first run, ranks of the resume).
# The first run stops early; ``hpcopt resume --generations`` (the case's own count) must
# then give exactly the case's uninterrupted golden.
RESUMES = {
    "zdt1_ibea_resumed": ("zdt1_ibea", 2, 1, 2),
    "rosenbrock_cmaes_resumed": ("rosenbrock_cmaes", 3, 1, 2),
    "cell_cmaes_resumed": ("cell_cmaes", 1, 1, 2),
}


def problem_of(config):
    """The problem section of a case's config (read from ``problem_from`` if given)."""
    if "problem_from" in config:
        with open(os.path.join(ROOT, config["problem_from"])) as f:
            return json.load(f)["problem"]
    return config["problem"]


def problem_sha256(config):
    """A hash of the problem section, to tell when an example file has changed since recording."""
    return hashlib.sha256(json.dumps(problem_of(config), sort_keys=True).encode()).hexdigest()


def full_config(config, generations=None):
    """The config file hpcopt gets: problem resolved, optionally fewer/more generations."""
    optimizer = copy.deepcopy(config["optimizer"])
    if generations is not None:
        optimizer["generations"] = generations
    return {"problem": problem_of(config), "optimizer": optimizer}


def encode(path):
    """{generation: {dataset: nested lists}} of a run file; floats as float.hex strings."""
    out = {}
    for name, data in generations(path, DATASETS).items():
        out[name] = {
            "parameters": [[float(v).hex() for v in row] for row in data["parameters"].tolist()],
            "objectives": [[float(v).hex() for v in row] for row in data["objectives"].tolist()],
            "status": [int(v) for v in data["status"].tolist()],
        }
    return out


def _ranks(ranks):
    """1 rank: plain ``hpcopt`` (no mpiexec); more: under ``mpiexec -n ranks``."""
    return None if ranks == 1 else ranks


def run_case(config, ranks, directory):
    """Run a case's config in ``directory`` at ``ranks``; returns encode() of the run file."""
    path = write_config(str(directory), "config.json", **full_config(config))
    output = os.path.join(str(directory), "run.h5")
    hpcopt("run", path, "-o", output, "--overwrite", ranks=_ranks(ranks))
    return encode(output)


def run_resume(config, first_generations, first_ranks, resume_ranks, directory):
    """Run ``first_generations``, then resume to the config's generations; returns encode()."""
    path = write_config(str(directory), "config.json", **full_config(config, first_generations))
    output = os.path.join(str(directory), "resumed.h5")
    hpcopt("run", path, "-o", output, "--overwrite", ranks=_ranks(first_ranks))
    assert len(encode(output)) == first_generations
    total = config["optimizer"]["generations"]
    hpcopt("resume", output, "--generations", total, ranks=_ranks(resume_ranks))
    return encode(output)


def differences(got, expected, limit=5):
    """Lines describing where two encode() results differ (empty when identical)."""
    lines = []
    if list(got) != list(expected):
        lines.append(f"generations {list(got)} != golden {list(expected)}")
    for name in expected:
        if name not in got:
            continue
        for dataset in DATASETS:
            a, b = got[name][dataset], expected[name][dataset]
            if a == b:
                continue
            if len(a) != len(b) or any(isinstance(r, list) and len(r) != len(s) for r, s in zip(a, b)):
                lines.append(f"{name}/{dataset}: shape differs from golden")
                continue
            for i, (r, s) in enumerate(zip(a, b)):
                if r != s:
                    if isinstance(r, list):
                        r = [float.fromhex(v) for v in r]
                        s = [float.fromhex(v) for v in s]
                    lines.append(f"{name}/{dataset}[{i}]: {r} != golden {s}")
                    break
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
