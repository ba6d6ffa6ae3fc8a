"""Print a run's best Tsodyks-Markram parameters beside BluePyOpt's notebook's, and the fit error of both.

    python examples/stp/compare.py RUN.h5 [--reference examples/stp/reference.json]

The fitted values come from ``hpcopt best RUN.h5 --json``; the reference values are the
ones BluePyOpt's notebook printed (reference.json, with its source). Both parameter
sets are scored here by this example's model (tsodyks_markram.py) on the same trace:
the total error is the sum of the nine windows' norms (V), which is what the run
minimised; the RMS error is over all scored samples. Exits 1 if the run's best fits the
trace worse than the notebook's parameters do.
"""

import argparse
import json
import math
import os
import subprocess
import sys

import tsodyks_markram as tm

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = {"trec": "ms", "tfac": "ms", "ase": "pA", "use": "", "rinput": "MOhm", "tmem": "ms", "tinac": "ms",
         "latency": "ms"}


def fit_error(params):
    """(sum of the window norms, RMS over the scored samples), both in V."""
    norms = list(tm.evaluate(params).values())
    samples = sum(t1 - t0 for t0, t1 in tm.TRACE.windows)
    return sum(norms), math.sqrt(sum(n * n for n in norms) / samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--reference", default=os.path.join(HERE, "reference.json"))
    args = parser.parse_args()
    hpcopt = os.path.join(os.path.dirname(sys.executable), "hpcopt")
    best = json.loads(subprocess.run([hpcopt, "best", args.run, "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    with open(args.reference) as f:
        reference = json.load(f)
    theirs, ours = reference["parameters"], best["parameters"]
    print(f"best of {args.run}: generation {best['generation']}, score {best['score']:.6g}")
    print(f"reference: {reference['source']}")
    print(f"{'parameter':<16}{'unit':<6}{'BluePyOpt notebook':>20}{'hpcopt':>14}")
    for name in tm.PARAMETERS:
        print(f"{name:<16}{UNITS[name]:<6}{theirs[name]:>20.6g}{ours[name]:>14.6g}")
    product = "rinput*ase"  # what the voltage depends on: the two are not identifiable one by one
    print(f"{product:<16}{'uV':<6}{theirs['rinput'] * theirs['ase']:>20.6g}{ours['rinput'] * ours['ase']:>14.6g}")
    (their_total, their_rms), (our_total, our_rms) = fit_error(theirs), fit_error(ours)
    print(f"{'total error':<16}{'mV':<6}{their_total * 1e3:>20.6g}{our_total * 1e3:>14.6g}")
    print(f"{'RMS error':<16}{'uV':<6}{their_rms * 1e6:>20.6g}{our_rms * 1e6:>14.6g}")
    if not math.isclose(our_total, best["score"], rel_tol=1e-9):
        sys.exit(f"the run file's score {best['score']!r} is not this model's error {our_total!r} at its best")
    change = our_total / their_total - 1
    verdict = "better" if our_total <= their_total else "WORSE"
    print(f"hpcopt's fit is {verdict} than the notebook's parameters: total error {change:+.2%}")
    sys.exit(0 if our_total <= their_total else 1)


if __name__ == "__main__":
    main()
