"""The generator contract, and how a run gets its generator.

A generator is a pure ask/tell object (pycma's shape, see STYLE.md):

``ask() -> U``
    (n, d) float64 array, every row a point of the unit cube [0, 1]^d.
``tell(U, F)``
    U exactly as returned by the last ``ask()``; F the (n, m) float64 objective
    array, row i the objectives of U[i]. Every objective is minimised; F is finite
    (failed evaluations arrive with their penalty values).
``stop() -> dict``
    reasons the generator wants to stop ({} to go on). The run's generation budget
    is not the generator's business.
``state() -> dict``
    everything needed to continue bit-identically: str keys; values are numpy
    arrays, str, bytes, int, float or bool. ``from_state(state)`` rebuilds it.

No MPI, files, clocks or global random state inside: randomness comes from a
``numpy.random.Generator`` owned by the generator and saved in its state.
"""

import numpy as np

ALGORITHMS = ("cmaes", "ibea")


def create(optimizer, dimension, n_objectives):
    """A new generator for ``optimizer`` (a config.Optimizer), seeded from its seed."""
    rng = np.random.default_rng(optimizer.seed)
    if optimizer.algorithm == "ibea":
        from .ibea import IBEA, SteadyIBEA

        return (SteadyIBEA if optimizer.asynchronous else IBEA)(
            dimension,
            optimizer.population,
            rng,
            offspring=optimizer.offspring or None,
            kappa=optimizer.kappa,
            eta_crossover=optimizer.eta_crossover,
            eta_mutation=optimizer.eta_mutation,
        )
    if optimizer.algorithm == "cmaes":
        from .cmaes import CMAES

        return CMAES(
            dimension,
            optimizer.population,
            rng,
            weights=optimizer.weights or (1.0,) * n_objectives,
            sigma0=optimizer.sigma0,
        )
    raise ValueError(f"unknown algorithm {optimizer.algorithm!r}")


def restore(algorithm, state):
    """The generator ``algorithm`` rebuilt from ``state`` (a dict from ``state()``)."""
    if algorithm == "ibea":
        from .ibea import IBEA, SteadyIBEA

        return (SteadyIBEA if state.get("steady") else IBEA).from_state(state)
    if algorithm == "cmaes":
        from .cmaes import CMAES

        return CMAES.from_state(state)
    raise ValueError(f"unknown algorithm {algorithm!r}")
