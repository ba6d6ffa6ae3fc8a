"""Compare a run's best parameters with the known truth of a ground-truth example.

    python examples/compare_truth.py RUN.h5 examples/cell/truth.json [--tolerance 0.05]

Prints parameter, truth, fitted value and relative error; exits 1 if any error
exceeds the tolerance (default 5 %), so `make run` fails when the fit does.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("truth")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    hpcopt = Path(sys.executable).with_name("hpcopt")
    best = json.loads(subprocess.run([str(hpcopt), "best", args.run, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    with open(args.truth) as f:
        truth = json.load(f)
    print(f"best of {args.run}: generation {best['generation']}, score {best['score']:.4g}")
    print(f"{'parameter':<22}{'truth':>12}{'fitted':>14}{'error':>9}")
    worst = 0.0
    for name, value in truth.items():
        fitted = best["parameters"][name]
        error = abs(fitted - value) / abs(value)
        worst = max(worst, error)
        print(f"{name:<22}{value:>12.6g}{fitted:>14.6g}{error:>9.2%}")
    verdict = "within" if worst <= args.tolerance else "NOT within"
    print(f"largest error {worst:.2%}: {verdict} {args.tolerance:.0%} of the truth")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
