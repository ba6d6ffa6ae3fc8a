"""The generator contract, and how a run gets its generator.

A generator is a pure ask/tell object (pycma's shape):

``ask(n=None) -> (ids, U)``
    n new points: ``ids`` (n,) int64, consecutive over the run (0, 1, ...), and U the
    (n, d) float64 array of their coordinates in the unit cube [0, 1]^d. ``n=None``
    asks for the generator's next generation.
``tell(ids, F)``
    F (n, m) float64, row i the objectives of point ids[i], for asked points not yet
    told. Every objective is minimised; F is finite (failed evaluations arrive with
    their penalty values). A generational run asks a whole generation and tells it
    all, in the order asked; an asynchronous one (IBEA only) asks and tells any
    number, in the order results complete.
``asked``, ``told``, ``outstanding``, ``pending() -> (ids, U)``
    counts, and the points asked and not yet told.
``stop() -> dict``
    reasons the generator wants to stop ({} to go on). The run's budget is not the
    generator's business.
``state() -> dict``
    everything needed to continue bit-identically, pending points included: str keys;
    values are numpy arrays, str, bytes, int, float or bool. ``from_state(state)``
    rebuilds it.

No MPI, files, clocks or global random state inside: randomness comes from a
``numpy.random.Generator`` owned by the generator and saved in its state.
"""

import numpy as np

from ..config import ALGORITHMS


def create(optimizer, dimension, n_objectives, start=None):
    """A new generator for ``optimizer`` (a config.Optimizer), seeded from its seed;
    start: (d,) unit-cube point where CMA-ES starts (None: the centre)."""
    rng = np.random.default_rng(optimizer.seed)
    if optimizer.algorithm == "ibea":
        from .ibea import IBEA

        return IBEA(
            dimension,
            optimizer.population,
            rng,
            offspring=optimizer.offspring or None,
            kappa=optimizer.kappa,
            eta_crossover=optimizer.eta_crossover,
            eta_mutation=optimizer.eta_mutation,
            crossover_probability=optimizer.crossover_probability,
            mutation_probability=optimizer.mutation_probability,
        )
    if optimizer.algorithm == "cmaes":
        from .cmaes import CMAES

        return CMAES(
            dimension,
            optimizer.population,
            rng,
            weights=optimizer.weights or (1.0,) * n_objectives,
            sigma0=optimizer.sigma0,
            restarts=optimizer.restarts,
            max_restarts=optimizer.max_restarts,
            start=start,
        )
    raise ValueError(f"unknown algorithm {optimizer.algorithm!r}; known: {', '.join(ALGORITHMS)}")


def restore(algorithm, state):
    """The generator ``algorithm`` rebuilt from ``state`` (a dict from ``state()``)."""
    if algorithm == "ibea":
        from .ibea import IBEA

        return IBEA.from_state(state)
    if algorithm == "cmaes":
        from .cmaes import CMAES

        return CMAES.from_state(state)
    raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
