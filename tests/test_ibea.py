"""Contracts of hpcopt.ibea: the published fitness and selection, the operators, exact resume."""

import json
import math
import os
import random
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from hpcopt.optimize import generators, ibea
from hpcopt.optimize.ibea import (
    IBEA,
    environmental_selection,
    fitness,
    indicator_matrix,
    polynomial_mutation,
    sbx_crossover,
)


def zdt1(U):
    """ZDT1 on the unit cube: (n, d) -> (n, 2)."""
    f1 = U[:, 0]
    g = 1.0 + 9.0 * U[:, 1:].mean(axis=1)
    return np.column_stack([f1, g * (1.0 - np.sqrt(f1 / g))])


def hypervolume_2d(F, reference=(1.1, 1.1)):
    """Area dominated by the rows of F (n, 2) and bounded by ``reference``."""
    F = F[(F[:, 0] < reference[0]) & (F[:, 1] < reference[1])]
    area, level = 0.0, reference[1]
    for f1, f2 in F[np.lexsort((F[:, 1], F[:, 0]))]:
        if f2 < level:
            area += (reference[0] - f1) * (level - f2)
            level = f2
    return area


def run(generator, generations, problem=zdt1):
    for _ in range(generations):
        U_ids, U = generator.ask()
        generator.tell(U_ids, problem(U))
    return generator


# Four points: a, b, c on a front, d dominated by b. The objectives have different scales;
# normalised over the set they are a (0, 1), b (.5, .5), c (1, 0), d (.75, .75).
HAND_F = np.array([[0.0, 45.0], [2.0, 25.0], [4.0, 5.0], [3.0, 35.0]])
# I[y, x] = max_i (f_i(y) - f_i(x)) on the normalised objectives, worked out by hand.
HAND_I = np.array([
    [0.0, 0.5, 1.0, 0.25],
    [0.5, 0.0, 0.5, -0.25],
    [1.0, 0.5, 0.0, 0.25],
    [0.75, 0.25, 0.75, 0.0],
])


# The indicator is built in single precision (ibea.indicator_matrix): an error in I of
# 2**-23 becomes a relative error of 2**-23 / kappa in exp(-I / kappa).
SINGLE = 2.0 ** -23 / 0.05


def test_single_precision_indicator_is_within_one_rounding():
    rng = np.random.default_rng(3)
    F = rng.random((300, 7)) * rng.random(7) * 100
    F[::13] = 250.0
    low, span = F.min(axis=0), F.max(axis=0) - F.min(axis=0)
    Fn = (F - low) / span
    exact = (Fn[:, None, :] - Fn[None, :, :]).max(axis=2)
    error = np.abs(indicator_matrix(F) - exact).max()
    assert 0 < error <= 2.0 ** -23


@pytest.mark.parametrize("n", [5, 64, 65, 300])  # one block, exactly one, two, several threads
def test_indicator_blocks_give_the_whole_matrix_bit_for_bit(n):
    # Only the blocks on and right of the diagonal are computed; the rest is their
    # negated minimum. Same bits (zeros not negative) as every pair computed on its own.
    rng = np.random.default_rng(n)
    F = rng.random((n, 6))
    F[::3] = F[0]  # equal rows: differences exactly 0
    low, span = F.min(axis=0), F.max(axis=0) - F.min(axis=0)
    Fn = ((F - low) / span).astype(np.float32)
    exact = (Fn[:, None, :] - Fn[None, :, :]).max(axis=2)
    I = indicator_matrix(F)
    assert I.tobytes() == exact.astype(np.float64).tobytes()
    assert not np.signbit(I[I == 0]).any()
    losses = np.exp(exact * np.float32(-1 / 0.05))
    np.fill_diagonal(losses, 0)
    assert ibea._losses(F, 0.05).tobytes() == losses.tobytes()


def test_indicator_matrix_by_hand():
    assert np.allclose(indicator_matrix(HAND_F), HAND_I, rtol=0, atol=1e-15)


def test_normalised_indicator_spans_exactly_one():
    # Why the paper's scale c (the largest |I|) is 1 and left out: see ibea._losses.
    F = np.random.default_rng(6).random((50, 4)) * [1.0, 1e-3, 1e3, 7.0] + [0.0, 5.0, -2.0, 1.0]
    assert np.abs(indicator_matrix(F)).max() == 1.0


def test_fitness_and_selection_by_hand():
    # c = max |I| = 1 and kappa = 0.05, so each term is -exp(-20 I(y, x)).
    e = math.exp
    expected = -np.array([
        e(-10) + e(-20) + e(-15),  # a: from b (I .5), c (1), d (.75)
        e(-10) + e(-10) + e(-5),  # b: from a (.5), c (.5), d (.25)
        e(-20) + e(-10) + e(-15),  # c: from a (1), b (.5), d (.75)
        e(-5) + e(5) + e(-5),  # d: from a (.25), b (-.25), c (.25)
    ])
    assert np.allclose(fitness(HAND_F, 0.05), expected, rtol=SINGLE, atol=0)
    # d has the smallest fitness and goes first.
    assert list(environmental_selection(HAND_F, 3, 0.05)) == [0, 1, 2]
    # Then a and c get back e(-15), b gets back e(-5): b at -2 e(-10) is now the worst.
    assert list(environmental_selection(HAND_F, 2, 0.05)) == [0, 2]
    assert list(environmental_selection(HAND_F, 4, 0.05)) == [0, 1, 2, 3]


def test_selection_updates_fitness_after_each_removal():
    # a (0, 1), c (1, 0), twin copies p = q = (.5, .5), s (.75, .3); ranges are [0, 1].
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.75, 0.3]])
    e = math.exp
    # I(y, s): a .7, c .25, p .2, q .2; I(y, p): a .5, c .5, q 0, s .25; the same for q.
    s = -(e(-14) + e(-5) + 2 * e(-4))
    p = -(2 * e(-10) + 1 + e(-5))
    assert fitness(F, 0.05)[[2, 3, 4]] == pytest.approx([p, p, s], rel=SINGLE)
    # p goes first (tie with q, lower index). Without p, q is back at -(2 e(-10) + e(-5))
    # and s at -(e(-14) + e(-5) + e(-4)): s, not q, goes next.
    assert list(environmental_selection(F, 3, 0.05)) == [0, 1, 3]


def test_kappa_scales_the_fitness():
    # kappa = 0.1: each term is -exp(-10 I(y, x)); d: from a (.25), b (-.25), c (.25).
    d = -(2 * math.exp(-2.5) + math.exp(2.5))
    assert fitness(HAND_F, 0.1)[3] == pytest.approx(d, rel=SINGLE)


def test_selection_ties_remove_the_lowest_index():
    # Two copies of (.5, .5) cost each other exp(0) = 1 and tie exactly: index 2 goes.
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    assert list(environmental_selection(F, 3, 0.05)) == [0, 1, 3]


def test_constant_objectives_are_a_tie():
    F = np.ones((5, 3))
    assert np.array_equal(indicator_matrix(F), np.zeros((5, 5)))
    assert np.array_equal(fitness(F, 0.05), np.full(5, -4.0))
    assert list(environmental_selection(F, 2, 0.05)) == [3, 4]


def front(n):
    f1 = np.linspace(0.0, 1.0, n)
    return np.column_stack([f1, 1.0 - f1])


def test_tell_drops_clearly_dominated_children():
    ibea = IBEA(2, 10, np.random.default_rng(3))
    U0_ids, U0 = ibea.ask()
    ibea.tell(U0_ids, front(10))
    children_ids, children = ibea.ask()
    ibea.tell(children_ids, front(10) + 0.2)
    U, F = ibea.population_arrays()
    assert np.array_equal(U, U0)
    assert np.array_equal(F, front(10))


def test_selection_keeps_the_front_among_dominated_points():
    rng = np.random.default_rng(4)
    F = np.concatenate([front(12), front(12) + rng.uniform(0.1, 0.5, (12, 2))])
    order = rng.permutation(len(F))
    kept = environmental_selection(F[order], 12, 0.05)
    assert sorted(order[kept]) == list(range(12))


def dominates(a, b):
    return bool(np.all(a <= b) and np.any(a < b))


def test_selection_keeps_dominators_of_whatever_it_keeps():
    # Dominance preserving: a point is never removed while a point it dominates stays.
    F = np.random.default_rng(5).random((60, 3))
    kept = set(environmental_selection(F, 20, 0.05).tolist())
    for x in kept:
        for y in range(len(F)):
            if dominates(F[y], F[x]):
                assert y in kept


def test_ask_shapes_and_bounds():
    ibea = IBEA(4, 6, np.random.default_rng(0), offspring=7)
    U_ids, U = ibea.ask()
    assert U.shape == (6, 4) and U.dtype == np.float64
    ibea.tell(U_ids, zdt1(U))
    for _ in range(3):
        U_ids, U = ibea.ask()
        assert U.shape == (7, 4)
        assert np.all((U >= 0.0) & (U <= 1.0))
        ibea.tell(U_ids, zdt1(U))
    assert ibea.population_arrays()[0].shape == (6, 4)
    assert ibea.stop() == {}


def test_children_stay_in_the_cube_under_wild_variation():
    ibea = IBEA(3, 8, np.random.default_rng(1), offspring=400, eta_crossover=0.0,
                eta_mutation=0.0, mutation_probability=1.0)
    corners_ids, corners = ibea.ask()
    ibea.tell(corners_ids, np.random.default_rng(2).random((8, 2)))
    ibea._U = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]] * 4)  # parents on the bounds
    U_ids, U = ibea.ask()
    assert np.all((U >= 0.0) & (U <= 1.0))
    assert len(np.unique(U)) > 100


@pytest.mark.parametrize("crossover_probability", [0.0, 1.0])
def test_pairs_of_parents_are_crossed(crossover_probability):
    ibea = IBEA(20, 30, np.random.default_rng(10), offspring=201,
                crossover_probability=crossover_probability, mutation_probability=0.0)
    U0_ids, U0 = ibea.ask()
    ibea.tell(U0_ids, np.random.default_rng(11).random((30, 2)))
    children_ids, children = ibea.ask()
    copied = (children[:, None, :] == U0[None, :, :]).all(axis=2).any(axis=1)
    assert copied[-1]  # odd count: the last parent has no partner
    if crossover_probability == 0.0:
        assert copied.all()
    else:  # both children of a pair are new, unless the tournaments drew one parent twice
        assert copied[0:200:2].mean() < 0.15 and copied[1:200:2].mean() < 0.15


def test_ask_is_deterministic_for_a_seed():
    a, b, c = (run(IBEA(5, 10, np.random.default_rng(seed)), 3) for seed in (7, 7, 8))
    assert np.array_equal(a.ask()[1], b.ask()[1])
    assert not np.array_equal(a.ask()[1], c.ask()[1])


def test_tournament_prefers_fitter_and_breaks_ties_by_index():
    ibea = IBEA(1, 4, np.random.default_rng(9))
    # Binary tournament with replacement: the k-th worst of 4 wins with (2k - 1) / 16.
    won = np.bincount(ibea._tournament(np.array([-3.0, -2.0, -1.0, 0.0]), 40000), minlength=4)
    assert np.allclose(won / 40000, np.array([1, 3, 5, 7]) / 16, atol=0.01)
    won = np.bincount(ibea._tournament(np.zeros(4), 40000), minlength=4)
    assert np.allclose(won / 40000, np.array([7, 5, 3, 1]) / 16, atol=0.01)


def ks_distance(a, b):
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return np.abs(cdf_a - cdf_b).max()


@pytest.mark.parametrize("parents", [(0.2, 0.7), (0.02, 0.9), (0.999, 0.5)])
def test_sbx_matches_deap(parents):
    tools = pytest.importorskip("deap.tools")
    n, eta = 40000, 5.0
    random.seed(1)
    theirs = []
    for _ in range(n):
        theirs += tools.cxSimulatedBinaryBounded([parents[0]], [parents[1]], eta, 0.0, 1.0)
    theirs = np.array(theirs).ravel()
    U1, U2 = np.full((n, 1), parents[0]), np.full((n, 1), parents[1])
    ours = np.concatenate(sbx_crossover(U1, U2, eta, np.random.default_rng(1))).ravel()
    assert np.all((ours >= 0.0) & (ours <= 1.0))
    assert ks_distance(ours, theirs) < 0.012


@pytest.mark.parametrize("x", [0.05, 0.5, 0.97])
def test_polynomial_mutation_matches_deap(x):
    tools = pytest.importorskip("deap.tools")
    n, eta = 40000, 10.0
    random.seed(2)
    theirs = np.array([tools.mutPolynomialBounded([x], eta, 0.0, 1.0, 1.0)[0][0]
                       for _ in range(n)])
    ours = polynomial_mutation(np.full((n, 1), x), eta, 1.0, np.random.default_rng(2)).ravel()
    assert np.all((ours >= 0.0) & (ours <= 1.0))
    assert ks_distance(ours, theirs) < 0.012
    # Per-variable probability: about a third of the variables move.
    moved = polynomial_mutation(np.full((n, 3), x), eta, 1 / 3, np.random.default_rng(3)) != x
    assert moved.mean() == pytest.approx(1 / 3, abs=0.01)


def through_json(state):
    """The state written as JSON text and read back: fresh arrays, shapes kept."""
    def encode(value):
        if isinstance(value, np.ndarray):
            return {"shape": value.shape, "data": value.tolist()}
        return value

    def decode(value):
        if isinstance(value, dict):
            return np.array(value["data"], dtype=np.float64).reshape(value["shape"])
        return value

    text = json.dumps({key: encode(value) for key, value in state.items()})
    return {key: decode(value) for key, value in json.loads(text).items()}


def test_state_values_are_plain():
    for generations in (0, 2):
        ibea = run(IBEA(3, 4, np.random.default_rng(0)), generations)
        for key, value in ibea.state().items():
            assert key.isidentifier()
            assert type(value) in (np.ndarray, str, int, float, bool), key
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float64


@pytest.mark.parametrize("pending", [False, True])
def test_state_round_trip_is_bit_identical(pending):
    original = run(IBEA(10, 12, np.random.default_rng(11), offspring=9, kappa=0.07), 5)
    if pending:
        asked_ids, asked = original.ask()
    state = original.state()
    copies = [IBEA.from_state(state), IBEA.from_state(through_json(state))]
    for value in state.values():  # the copies must not share arrays with the state
        if isinstance(value, np.ndarray):
            value.fill(np.nan)
    if pending:
        for generator in [original] + copies:
            generator.tell(asked_ids, zdt1(asked))
    for _ in range(6):
        U_ids, U = original.ask()
        original.tell(U_ids, zdt1(U))
        for copy in copies:
            assert np.array_equal(copy.ask()[1], U)
            copy.tell(U_ids, zdt1(U))
            for ours, theirs in zip(copy.population_arrays(), original.population_arrays()):
                assert np.array_equal(ours, theirs)
    U_ids, U = original.ask()
    assert all(np.array_equal(copy.ask()[1], U) for copy in copies)


def test_state_round_trip_before_the_first_tell():
    original = IBEA(3, 5, np.random.default_rng(12))
    copy = IBEA.from_state(original.state())
    assert np.array_equal(copy.ask()[1], original.ask()[1])
    assert copy.state().keys() == original.state().keys()


def test_generators_create_and_restore():
    optimizer = SimpleNamespace(algorithm="ibea", seed=5, population=8, offspring=None,
                                kappa=0.05, eta_crossover=10.0, eta_mutation=20.0, crossover_probability=1.0,
                                mutation_probability=None, asynchronous=False)
    made = run(generators.create(optimizer, 3, 2), 2)
    assert made.offspring == 8 and made.eta_mutation == 20.0
    restored = generators.restore("ibea", made.state())
    assert np.array_equal(restored.ask()[1], made.ask()[1])


def test_zdt1_hypervolume():
    ibea = run(IBEA(10, 50, np.random.default_rng(1)), 41)  # 40 generations after the first
    assert hypervolume_2d(ibea.population_arrays()[1]) >= 0.75  # front: 1.21 - 1/3 = 0.877


def test_large_selection_smoke():
    rng = np.random.default_rng(13)
    ibea = IBEA(5, 1000, np.random.default_rng(14))
    for _ in range(2):  # second tell selects 1000 of a union of 2000 with 35 objectives
        U_ids, U = ibea.ask()
        ibea.tell(U_ids, rng.random((len(U), 35)))
    U, F = ibea.population_arrays()
    assert U.shape == (1000, 5) and F.shape == (1000, 35)
    assert len(np.unique(F, axis=0)) == 1000


def test_tell_rejects_what_was_not_asked():
    ibea = IBEA(3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="without a pending ask"):
        ibea.tell(np.arange(4), np.zeros((4, 2)))
    U_ids, U = ibea.ask()
    bad = [
        (U_ids[[0, 0, 1, 2]], np.zeros((4, 2)), "last ask"),  # not distinct
        (U_ids + 4, np.zeros((4, 2)), "last ask"),  # not asked
        (U_ids, np.zeros((3, 2)), "shape"),
        (U_ids, np.zeros(4), "shape"),
        (U_ids, np.zeros((4, 0)), "shape"),
        (U_ids, np.array([[0.0, 1.0]] * 3 + [[np.nan, 1.0]]), "finite"),
        (U_ids, np.array([[0.0, 1.0]] * 3 + [[np.inf, 1.0]]), "finite"),
    ]
    for U_bad, F_bad, message in bad:
        with pytest.raises(ValueError, match=message):
            ibea.tell(U_bad, F_bad)
    ibea.tell(U_ids, np.zeros((4, 2)))
    U_ids, U = ibea.ask()
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        ibea.tell(U_ids, np.zeros((4, 3)))  # the number of objectives is fixed by the first tell


@pytest.mark.parametrize("arguments, message", [
    (dict(dimension=0), "dimension"),
    (dict(population=0), "population"),
    (dict(population=2.5), "population"),
    (dict(offspring=0), "offspring"),
    (dict(kappa=0.0), "kappa"),
    (dict(kappa=float("nan")), "kappa"),
    (dict(eta_crossover=-1.0), "eta_crossover"),
    (dict(eta_mutation=float("inf")), "eta_mutation"),
    (dict(crossover_probability=1.5), "crossover_probability"),
    (dict(mutation_probability=-0.1), "mutation_probability"),
])
def test_constructor_rejects_bad_values(arguments, message):
    values = dict(dimension=3, population=4)
    values.update(arguments)
    dimension, population = values.pop("dimension"), values.pop("population")
    with pytest.raises(ValueError, match=message):
        IBEA(dimension, population, np.random.default_rng(0), **values)


CPU_LEVELS = ("", "AVX512_SPR AVX512_ICL X86_V4", "AVX512_SPR AVX512_ICL X86_V4 X86_V3")
BITS = """
import hashlib, numpy as np
from hpcopt.optimize.ibea import environmental_selection, polynomial_mutation, sbx_crossover
rng = np.random.default_rng(7)
U1, U2 = rng.random((300, 12)), rng.random((300, 12))
F = np.concatenate([rng.random((400, 9)), rng.random((200, 9)) ** 3])
parts = [*sbx_crossover(U1, U2, 10.0, rng), polynomial_mutation(U1, 20.0, 0.5, rng),
         environmental_selection(F, 300, 0.05).astype(np.int64)]
print(hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest())
"""


def test_variation_and_selection_are_the_same_bits_whatever_code_numpy_picks_for_the_cpu():
    """numpy picks its loops by CPU (NPY_DISABLE_CPU_FEATURES turns the newer ones off,
    as on an older machine); its AVX-512 power rounds differently, which made the golden
    runs differ on an AVX-512 machine. IBEA takes its powers through the C library."""
    digests = set()
    for disabled in CPU_LEVELS:
        done = subprocess.run([sys.executable, "-c", BITS], capture_output=True, text=True, check=True,
                              env={**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled})
        digests.add(done.stdout.strip().splitlines()[-1])
    assert len(digests) == 1, digests
