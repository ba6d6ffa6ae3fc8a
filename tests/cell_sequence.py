"""Evaluate parameter sets in order with ONE cell in this process; print JSON.

    python tests/cell_sequence.py CONFIG P1.json [P2.json ...]

Prints [{"status": ..., "objectives": [...]}, ...] in the order given.
"""

import json
import sys

import numpy as np

from hpcopt import config as configuration
from hpcopt.problem.space import Problem


def main():
    problem = Problem(configuration.load(sys.argv[1]))
    evaluate = problem.evaluator()
    results = []
    for path in sys.argv[2:]:
        with open(path) as f:
            given = json.load(f)
        outcome = evaluate(np.array([given[name] for name in problem.names]))
        results.append({"status": int(outcome.status), "objectives": outcome.objectives.tolist(),
                        "error": outcome.error})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
