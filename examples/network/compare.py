"""How the fitted network of examples/network fires, against its targets.

    python examples/network/compare.py RUN.h5

Prints every objective's measured value beside its target (mean +- std) for the run's
best individual, and the fitted weights beside those in truth.json. Exits 1 unless
every objective is within one std of its target (a score below 1): the truth is not
the only set of weights that fires as the targets say (a 20 % weaker E-to-I weight
changes the inhibitory rate by less than its std), so the example is judged by how the
network fires, and the weights are shown for information.
"""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent


def main():
    path = sys.argv[1]
    hpcopt = Path(sys.executable).with_name("hpcopt")
    best = json.loads(subprocess.run([str(hpcopt), "best", path, "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    config = json.loads((HERE / "config.json").read_text())["problem"]["network"]["objectives"]
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["feature_names"]]
        generation = f["generations"][f"{best['generation']:06d}"]
        values = generation["features"][best["index"]]
    print(f"best of {path}: generation {best['generation']}, score {best['score']:.4g}")
    print(f"{'objective':<20}{'value':>10}{'target':>18}{'score':>8}")
    worst = 0.0
    for name, value in zip(names, values):
        target = config[name]
        score = abs(value - target["mean"]) / target["std"] if np.isfinite(value) else float("inf")
        worst = max(worst, score)
        print(f"{name:<20}{value:>10.4g}{target['mean']:>10.4g} +- {target['std']:<5.3g}{score:>8.2f}")
    truth = json.loads((HERE / "truth.json").read_text())
    print(f"{'weight':<20}{'truth':>10}{'fitted':>12}{'error':>9}")
    for name, value in truth.items():
        fitted = best["parameters"][name]
        print(f"{name:<20}{value:>10.4g}{fitted:>12.4g}{abs(fitted - value) / value:>9.1%}")
    verdict = "within" if worst < 1 else "NOT within"
    print(f"largest objective score {worst:.2f}: every objective {verdict} one std of its target")
    sys.exit(0 if worst < 1 else 1)


if __name__ == "__main__":
    main()
