"""The generator contract (hpcopt/optimize/generators.py), for every generator, and CMA-ES."""

import numpy as np
import pytest

from hpcopt import config as configuration
from hpcopt.optimize import generators
from hpcopt.optimize.cmaes import CMAES
from hpcopt.store import runfile

D, M = 5, 2


def make(algorithm, seed=3, population=10):
    raw = {
        "problem": {"function": "m:f", "parameters": {f"x{i}": [0, 1] for i in range(D)}, "objectives": ["a", "b"]},
        "optimizer": {"algorithm": algorithm, "population": population, "generations": 1, "seed": seed},
    }
    return generators.create(configuration.parse(raw).optimizer, D, M)


def objectives(U):
    """A smooth 2-objective problem on the unit cube."""
    return np.stack([np.sum((U - 0.2) ** 2, axis=1), np.sum((U - 0.7) ** 2, axis=1)], axis=1)


def step(generator, n=1):
    for _ in range(n):
        U_ids, U = generator.ask()
        generator.tell(U_ids, objectives(U))
    return U


@pytest.fixture(params=generators.ALGORITHMS)
def algorithm(request):
    return request.param


def test_ask_is_in_the_unit_cube(algorithm):
    g = make(algorithm)
    for _ in range(5):
        U_ids, U = g.ask()
        assert U.shape == (10, D) and U.dtype == np.float64
        assert np.all((U >= 0) & (U <= 1))
        g.tell(U_ids, objectives(U))
    assert g.stop() == {}


def test_same_seed_same_trajectory_other_seed_other(algorithm):
    a, b, c = make(algorithm, seed=1), make(algorithm, seed=1), make(algorithm, seed=2)
    assert np.array_equal(step(a, 4), step(b, 4))
    assert not np.array_equal(step(a), step(c, 5))


def test_global_numpy_random_state_is_neither_used_nor_needed(algorithm):
    np.random.seed(0)
    g = make(algorithm)
    U1 = step(g, 3)
    assert np.random.random() == np.random.RandomState(0).random_sample()  # untouched
    np.random.seed(12345)  # and drawing from it elsewhere changes nothing
    np.random.random(100)
    U2 = step(make(algorithm), 3)
    assert np.array_equal(U1, U2)


def test_state_round_trip_through_the_run_file_is_exact(algorithm, tmp_path):
    """Continue a generator and its copy restored from an HDF5 state: identical."""
    g = make(algorithm)
    step(g, 3)
    path = tmp_path / "state.h5"
    runfile.create(path, {}, np.zeros(D), np.ones(D), {"algorithm": algorithm, "generator": g.state()})
    with runfile.RunFile(path) as run:
        copy = generators.restore(algorithm, run.state()["generator"])
    for _ in range(4):
        (U_ids, U), (V_ids, V) = g.ask(), copy.ask()
        assert np.array_equal(U, V)
        g.tell(U_ids, objectives(U))
        copy.tell(V_ids, objectives(V))


def test_state_round_trip_between_ask_and_tell(algorithm):
    g = make(algorithm)
    step(g, 2)
    U_ids, U = g.ask()
    copy = generators.restore(algorithm, g.state())
    g.tell(U_ids, objectives(U))
    copy.tell(U_ids, objectives(U))
    assert np.array_equal(g.ask()[1], copy.ask()[1])


CONTINUE_ELSEWHERE = """
import sys
import numpy as np
from hpcopt.optimize import generators
from hpcopt.store import runfile
sys.path.insert(0, sys.argv[3])
from test_generators import objectives
with runfile.RunFile(sys.argv[2]) as run:
    g = generators.restore(sys.argv[1], run.state()["generator"])
ids, U = g.pending()
g.tell(ids, objectives(U))
np.save(sys.argv[2] + ".next.npy", g.ask()[1])
"""


@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_state_between_ask_and_tell_continues_exactly_in_another_process(algorithm, tmp_path, hash_seed):
    """A checkpoint holds a generation asked and not told; a resumed job tells it in a
    new process, where Python salts hashes otherwise (cma filed the asked points by
    hash): the same next generation as here."""
    import os
    import subprocess
    import sys

    g = make(algorithm)
    step(g, 2)
    U_ids, U = g.ask()
    path = tmp_path / "state.h5"
    runfile.create(path, {}, np.zeros(D), np.ones(D), {"algorithm": algorithm, "generator": g.state()})
    g.tell(U_ids, objectives(U))
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, "-c", CONTINUE_ELSEWHERE, algorithm, str(path), os.path.dirname(__file__)],
                   env=env, check=True)
    assert np.array_equal(np.load(f"{path}.next.npy"), g.ask()[1])


def test_tell_rejects_what_was_not_asked(algorithm):
    g = make(algorithm)
    U_ids, U = g.ask()
    with pytest.raises(ValueError):
        g.tell(U_ids + len(U), objectives(U))  # ids that were not asked
    with pytest.raises(ValueError):
        g.tell(U_ids, objectives(U)[:-1])
    F = objectives(U)
    F[0, 0] = np.nan
    with pytest.raises(ValueError):
        g.tell(U_ids, F)


def rosenbrock(X):
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def test_cmaes_solves_rosenbrock_8d():
    """On [-5, 5]^8 mapped to the unit cube; the minimum is x_i = 1."""
    from hpcopt.optimize.cmaes import CMAES

    g = CMAES(8, 14, np.random.default_rng(1), weights=[1.0])
    for _ in range(2000):
        U_ids, U = g.ask()
        X = -5 + 10 * U
        g.tell(U_ids, rosenbrock(X)[:, None])
        if g.stop():
            break
    assert "tolfun" in g.stop() or "tolx" in g.stop() or "tolfunhist" in g.stop()
    assert np.allclose(-5 + 10 * g.mean, 1.0, atol=1e-4)


def test_cmaes_minimises_the_weighted_sum():
    from hpcopt.optimize.cmaes import CMAES

    # objective a pulls towards 0.2, b towards 0.7; weight 3 on b moves the optimum to 0.575
    g = CMAES(D, 10, np.random.default_rng(4), weights=[1.0, 3.0])
    for _ in range(300):
        step(g)
        if g.stop():
            break
    assert np.allclose(g.mean, 0.575, atol=1e-3)


def test_cmaes_respects_bounds_at_the_edge():
    """The optimum on the boundary: asked points never leave the cube and reach it."""
    from hpcopt.optimize.cmaes import CMAES

    g = CMAES(3, 8, np.random.default_rng(5), weights=[1.0])
    for _ in range(200):
        U_ids, U = g.ask()
        assert np.all((U >= 0) & (U <= 1))
        g.tell(U_ids, np.sum((U - 1.2) ** 2, axis=1)[:, None])
    assert np.allclose(g.mean, 1.0, atol=1e-3)


def test_cmaes_with_one_parameter_survives_a_flat_landscape():
    """cma 4.5 raised 'not yet initialized' for a 1-D step above maxstd (every evaluation
    failed, so every score was the penalty)."""
    g = CMAES(1, 6, np.random.default_rng(1), weights=np.ones(1))
    for _ in range(30):
        ids, U = g.ask()
        g.tell(ids, np.full((len(ids), 1), 250.0))
        assert np.all((U >= 0) & (U <= 1))


@pytest.mark.parametrize("dimension, population", [(2, 2), (5, 7), (12, 40)])
def test_cmaes_state_restores_exactly_in_any_generation(dimension, population):
    """The stored strategy (datatree, no pickle) continues exactly as the original, also
    for the structures cma only makes for some sizes (mirrors at population 2)."""
    g = CMAES(dimension, population, np.random.default_rng(dimension), weights=np.ones(1))
    for generation in range(25):
        ids, U = g.ask()
        g.tell(ids, ((U - 0.3) ** 2).sum(1, keepdims=True) + (generation % 7 == 6))
        if generation in (0, 3, 24):
            copy = CMAES.from_state(g.state())
            assert np.array_equal(copy.ask()[1], g.ask()[1])
            for each in (g, copy):
                ids, U = each.pending()
                each.tell(ids, np.zeros((len(ids), 1)))


@pytest.mark.parametrize("dimension, population, sigma0", [(20, 300, 0.6), (3, 12, 1.0), (1, 5, 0.9), (5, 50, 0.25)])
def test_cmaes_ask_transforms_the_sample_at_once_to_the_same_bits(monkeypatch, dimension, population, sigma0):
    """CMA-ES's ask maps the whole sample into the bounds at once (cmaes._batched_repair):
    the points, and the arrays of the state, are bit-identical to cma's point-by-point
    transform, over generations with many points outside the bounds; the patch leaves
    nothing on the strategy."""
    import contextlib

    from hpcopt.optimize import cmaes

    def run():
        es = cmaes.CMAES(dimension, population, np.random.default_rng(5), weights=np.ones(2), sigma0=sigma0)
        points = []
        for _ in range(5):
            ids, U = es.ask()
            es.tell(ids, np.stack([((U - 0.1) ** 2).sum(1), np.abs(U - 0.9).sum(1)], 1))
            points.append(U)
        return points, es

    batched, es = run()
    assert "ask_geno" not in vars(es._es) and "repair" not in vars(es._es.boundary_handler)
    assert b"ask_geno" not in es.state()["tree"]
    monkeypatch.setattr(cmaes, "_batched_repair", lambda es: contextlib.nullcontext())
    reference, es_reference = run()
    clipped = np.mean([(U == 0).mean() + (U == 1).mean() + ((U < 0.02) | (U > 0.98)).mean() for U in reference])
    assert clipped > 0  # the bounds really were in play
    for a, b in zip(batched, reference):
        assert np.array_equal(a, b)
    state, expected = es.state(), es_reference.state()
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(state[key], value), key


def rastrigin(U):
    """Rastrigin on [-5.12, 5.12]^d: many local minima, so CMA-ES with a small population
    stops (tolfun) in one of them and restarts."""
    X = U * 10.24 - 5.12
    return (10 * X.shape[1] + np.sum(X ** 2 - 10 * np.cos(2 * np.pi * X), axis=1))[:, None]


@pytest.mark.parametrize("strategy", ["ipop", "bipop"])
def test_cmaes_restarts_resume_exactly_in_the_middle_of_a_restart(strategy):
    """Across restarts, a state saved at any point (also between ask and tell) continues
    bit-identically: restart count, regime budgets, base population and rng included."""
    g = CMAES(2, 6, np.random.default_rng(4), weights=np.ones(1), restarts=strategy)
    populations, saved = [], None
    while g.restart < 3:
        ids, U = g.ask()
        populations.append((g.restart, len(ids)))
        if g.restart == 2 and saved is None and populations.count(populations[-1]) == 5:
            saved = CMAES.from_state(g.state())  # mid-generation, five generations into restart 2
        g.tell(ids, rastrigin(U))
    assert {r for r, _ in populations} == {0, 1, 2}
    assert dict(populations)[0] == 6 and dict(populations)[1] == 12  # the first restart is large in either
    assert g.stop() == {} and saved.restart == 2 and saved.base_population == 6
    ids, U = saved.pending()
    saved.tell(ids, rastrigin(U))
    while saved.asked < g.asked:  # replay what the original did after the save
        ids, U = saved.ask()
        saved.tell(ids, rastrigin(U))
    assert saved.asked == g.asked and saved.restart == g.restart == 3 and saved.used == g.used
    for _ in range(40):  # and on, through a restart more
        (a_ids, A), (b_ids, B) = g.ask(), saved.ask()
        assert np.array_equal(A, B) and np.array_equal(a_ids, b_ids)
        g.tell(a_ids, rastrigin(A))
        saved.tell(b_ids, rastrigin(B))
    copy = CMAES.from_state(g.state())
    for each in (g, copy):
        ids, U = each.ask()
        each.tell(ids, rastrigin(U))
    assert np.array_equal(g.ask()[1], copy.ask()[1]) and copy.restart == g.restart


def test_cmaes_restarts_stop_after_the_last_allowed_one():
    g = CMAES(2, 6, np.random.default_rng(4), weights=np.ones(1), restarts="ipop", max_restarts=1)
    while not g.stop():
        ids, U = g.ask()
        g.tell(ids, rastrigin(U))
    assert g.restart == 1 and g.population == 12 and "tolfun" in g.stop()
    assert CMAES.from_state(g.state()).stop() == g.stop()


def test_cmaes_restarts_end_at_the_largest_population(monkeypatch):
    """IPOP does not double the population past what the config allows: the run ends."""
    monkeypatch.setattr("hpcopt.optimize.cmaes.MAX_POPULATION", 30)
    g = CMAES(2, 6, np.random.default_rng(4), weights=np.ones(1), restarts="ipop")
    while not g.stop():
        ids, U = g.ask()
        g.tell(ids, rastrigin(U))
    assert g.restart == 2 and g.population == 24 and g.stop()["population_limit"] == 30
