"""Standard test problems, importable as ``hpcopt.testfunctions:NAME``.

Each takes {parameter name: value} and returns {objective: value}.
"""

import math


def zdt1(params):
    """ZDT1 (Zitzler, Deb & Thiele 2000): two objectives, x_i in [0, 1].

    The Pareto front is f2 = 1 - sqrt(f1), reached when x_1.. x_{d-1} are 0.
    """
    x = list(params.values())
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return {"f1": f1, "f2": g * (1 - math.sqrt(f1 / g))}


def rosenbrock(params):
    """Rosenbrock's function; minimum 0 at x_i = 1."""
    x = list(params.values())
    return {"f": sum(100 * (b - a * a) ** 2 + (1 - a) ** 2 for a, b in zip(x, x[1:]))}


def sphere(params):
    """Sum of squares, one objective per parameter (for weighting tests)."""
    return {f"f_{name}": value * value for name, value in params.items()}


def rastrigin(params):
    """Rastrigin's function, usually on [-5.12, 5.12]^d: a local minimum at every integer
    point, the global one 0 at x_i = 0 (CMA-ES with a small population stops in a local
    one: a problem for restarts)."""
    x = list(params.values())
    return {"f": 10 * len(x) + sum(v * v - 10 * math.cos(2 * math.pi * v) for v in x)}
