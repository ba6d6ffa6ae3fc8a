"""Evaluate one parameter set N times with one cell; print NEURON's object counts
after the first and after the last evaluation, as JSON.

    python tests/cell_objects.py CONFIG P.json N
"""

import json
import sys

import numpy as np

from hpcopt import config as configuration
from hpcopt.problem.space import Problem

KINDS = ("Vector", "IClamp", "NetStim", "NetCon", "ExpSyn")


def counts(h):
    return {"sections": len(list(h.allsec())), **{k: int(h.List(k).count()) for k in KINDS}}


def main():
    problem = Problem(configuration.load(sys.argv[1]))
    evaluate = problem.evaluator()
    with open(sys.argv[2]) as f:
        given = json.load(f)
    x = np.array([given[name] for name in problem.names])
    from neuron import h

    scores = [evaluate(x).objectives.tolist()]
    first = counts(h)
    for _ in range(int(sys.argv[3]) - 1):
        scores.append(evaluate(x).objectives.tolist())
    print(json.dumps({"first": first, "last": counts(h), "same_scores": all(s == scores[0] for s in scores)}))


if __name__ == "__main__":
    main()
