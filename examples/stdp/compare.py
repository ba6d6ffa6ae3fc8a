"""Compare a run of the STDP example with BluePyOpt's fit of the same model.

    python examples/stdp/compare.py RUN.h5

Prints the run's best parameters beside those BluePyOpt's notebook reports
(reference.json), the model's synaptic change at both beside the data, and the fit
quality of both: the sum of the objectives (|model - mean| / sem, what the run's score
is) and chi-square (the sum of their squares). Every number but the notebook's
parameters is computed here, by stdp.py. Exits 1 if the run's stored objectives are
not the model's at its best parameters, or a parameter is outside its bounds.
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import stdp

CONFIG = os.path.join(stdp.HERE, "config.json")


def best_of(run):
    """``hpcopt best RUN --json`` of the hpcopt beside this Python."""
    hpcopt = Path(sys.executable).with_name("hpcopt")
    done = subprocess.run([str(hpcopt), "best", str(run), "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def quality(params):
    """(changes, sum of |z|, chi-square) of the model at ``params`` over the data points."""
    changes = [stdp.synaptic_change(params, p["dt_ms"] / 1000.0) for p in stdp.DATA["points"]]
    z = [(c - p["mean"]) / p["sem"] for c, p in zip(changes, stdp.DATA["points"])]
    return changes, sum(abs(v) for v in z), sum(v * v for v in z)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    args = parser.parse_args()
    with open(CONFIG, encoding="utf-8") as f:
        space = json.load(f)["problem"]["parameters"]
    bounds = {name: value for name, value in space.items() if isinstance(value, list)}
    frozen = {name: value for name, value in space.items() if not isinstance(value, list)}
    best = best_of(args.run)
    ours = {**best["parameters"], **frozen}
    theirs = stdp.read("reference.json")["parameters"]

    print(f"best of {args.run}: generation {best['generation']}, score {best['score']:.6g}")
    print(f"{'parameter':<10}{'bounds':>20}{'hpcopt':>14}{'BluePyOpt notebook':>20}")
    outside = []
    for name, (low, high) in bounds.items():
        if not low <= ours[name] <= high:
            outside.append(name)
        print(f"{name:<10}{f'[{low:g}, {high:g}]':>20}{ours[name]:>14.6g}{theirs[name]:>20.6g}")
    print(f"frozen: {', '.join(f'{k} = {v:g}' for k, v in frozen.items())}")

    (ours_change, ours_sum, ours_chi2), (their_change, their_sum, their_chi2) = quality(ours), quality(theirs)
    print(f"\n{'dt (ms)':>8}{'data mean +- sem':>20}{'hpcopt':>10}{'notebook':>10}   (synaptic change)")
    for p, a, b in zip(stdp.DATA["points"], ours_change, their_change):
        print(f"{p['dt_ms']:>+8g}{p['mean']:>13.2f} +- {p['sem']:.2f}{a:>10.3f}{b:>10.3f}")
    print(f"{'sum of objectives':<20}{ours_sum:>18.4f}{their_sum:>10.4f}")
    print(f"{'chi-square':<20}{ours_chi2:>18.4f}{their_chi2:>10.4f}")
    verdict = "better than" if ours_sum < their_sum else "worse than" if ours_sum > their_sum else "equal to"
    print(f"hpcopt's fit is {verdict} the notebook's: sum of objectives {ours_sum:.4f} vs {their_sum:.4f}")

    stored = best["objectives"]
    recomputed = stdp.evaluate(ours)
    wrong = [k for k in stdp.OBJECTIVES if not math.isclose(stored[k], recomputed[k], rel_tol=1e-9, abs_tol=1e-12)]
    if wrong or outside:
        print(f"ERROR: stored objectives differ from the model's: {wrong}; outside the bounds: {outside}")
        sys.exit(1)


if __name__ == "__main__":
    main()
