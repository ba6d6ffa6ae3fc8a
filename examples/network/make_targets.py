"""Write examples/network/config.json's targets from the known weights in truth.json.

    python examples/network/make_targets.py

The network is evaluated once at the truth with hpcopt's own code
(``hpcopt.config.load``, ``Problem(config).evaluator()``, one rank), so the targets
are what ``hpcopt run`` measures, and every objective's mean and std in the config
are rewritten in place:

    mean = the value at the truth, 6 significant digits;
    std  = max(10 % of |mean|, floor), 3 significant digits, with the floor 0.5 Hz
           for a rate, 0.05 for an ISI CV, 0.2 for a synchrony (Fano factor) and 1
           (in the feature's units) for an eFEL feature.

Everything else in the config is kept. The script refuses (exit 1, nothing written)
when the truth does not name exactly the free parameters or a value cannot be
measured at the truth.
"""

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from hpcopt import config as configuration  # noqa: E402
from hpcopt.features.targets import significant  # noqa: E402
from hpcopt.problem.space import Problem  # noqa: E402

RELATIVE = 0.1
FLOORS = {"rate": 0.5, "isi_cv": 0.05, "synchrony": 0.2}
FEATURE_FLOOR = 1.0


def main():
    path = os.path.join(HERE, "config.json")
    raw = json.load(open(path))
    truth = json.load(open(os.path.join(HERE, "truth.json")))
    problem = Problem(configuration.load(path))
    if sorted(truth) != sorted(problem.names):
        sys.exit(f"truth.json names {sorted(truth)}, the free parameters are {sorted(problem.names)}")
    outcome = problem.evaluator()([truth[n] for n in problem.names])
    objectives = raw["problem"]["network"]["objectives"]
    for (name, spec), value in zip(objectives.items(), outcome.features):
        if not math.isfinite(value):
            sys.exit(f"{name}: no value at the truth ({outcome.error or 'nothing to measure'})")
        floor = FLOORS.get(spec.get("measure"), FEATURE_FLOOR)
        spec["mean"] = significant(float(value), 6)
        spec["std"] = significant(max(RELATIVE * abs(value), floor), 3)
    with open(path, "w") as f:
        json.dump(raw, f, indent=2)
        f.write("\n")
    print(f"{path}: " + ", ".join(f"{n} {s['mean']:g} +- {s['std']:g}" for n, s in objectives.items()))


if __name__ == "__main__":
    main()
