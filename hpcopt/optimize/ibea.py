"""IBEA, the indicator-based evolutionary algorithm, with the additive epsilon indicator.

Zitzler & Künzli (2004), "Indicator-based selection in multiobjective search", PPSN VIII.
Mating selection by binary tournament; variation by bounded SBX crossover and polynomial
mutation (Deb's operators, as in ``deap.tools``). Everything lives in the unit cube [0, 1]^d:
U is an (n, d) array of unit-cube points, F the (n, m) array of their objectives (minimised).
"""

import concurrent.futures
import json
import math
import os

import numpy as np

_BLOCK_ROWS = 64  # rows of the indicator matrix built at once (64 x n floats)
_THREADS_FROM = 256  # individuals; below this one thread is faster than several


def _threads():
    """Threads for the indicator matrix: the cores this process may run on (rank 0's
    workers sleep while it tells, so on a workstation they are idle), at most 8.
    numpy lets go of the GIL inside ufuncs, so the blocks run in parallel."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _normalised_columns(F):
    """Objectives normalised to [0, 1] over F, one contiguous single-precision row per
    objective (m, n)."""
    low = F.min(axis=0)
    span = F.max(axis=0) - low
    Fn = np.divide(F - low, span, out=np.zeros(F.shape), where=span > 0)
    return np.ascontiguousarray(Fn.T, dtype=np.float32)


def _by_blocks(F, finish, dtype):
    """(n, n) array of ``dtype``: each block of rows of the indicator matrix is built in
    single precision, turned in place by ``finish(block)`` (None: left as it is) and
    copied into the result.

    Only the blocks on and right of the diagonal are computed: the differences
    f_i(a) - f_i(b) of a block give I[a, b] as their maximum and, negated, I[b, a] as
    their minimum (float subtraction is exactly antisymmetric), so each pair costs one
    subtraction instead of two. Blocks go to several threads."""
    columns = _normalised_columns(F)
    n = len(F)
    out = np.empty((n, n), dtype=dtype)
    starts = range(0, n, _BLOCK_ROWS)
    threads = _threads() if n >= _THREADS_FROM else 1

    def work(first):
        buffers = np.empty((4, _BLOCK_ROWS * n), dtype=np.float32)
        for start in starts[first::threads]:
            rows = min(_BLOCK_ROWS, n - start)
            width = n - start
            # contiguous (rows, width) arrays: numpy's loops are much slower on strided views
            high, low, scratch = (b[:rows * width].reshape(rows, width) for b in buffers[:3])
            below = buffers[3][:(width - rows) * rows].reshape(width - rows, rows)
            _indicator_rows(columns, start, high, low, scratch)
            finish(high)
            out[start:start + rows, start:] = high
            np.negative(low[:, rows:].T, out=below)  # I[b, a] for a in the block, b after it
            below += np.float32(0.0)  # -0.0 to 0.0, which f_i(b) - f_i(a) gives
            finish(below)
            out[start + rows:, start:start + rows] = below

    if threads == 1:
        work(0)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
    return out


def _indicator_rows(columns, start, high, low, scratch):
    """high[a, c] = max_i d_i and low[a, c] = min_i d_i, d_i = f_i(start + a) - f_i(start + c),
    from the normalised ``columns`` (m, n)."""
    high.fill(-np.inf)
    low.fill(np.inf)
    for f in columns:
        np.subtract.outer(f[start:start + len(high)], f[start:start + high.shape[1]], out=scratch)
        np.maximum(high, scratch, out=high)
        np.minimum(low, scratch, out=low)


def indicator_matrix(F):
    """The additive epsilon indicator between all pairs of rows of F (n, m).

    Objectives are first normalised to [0, 1] over F (an objective with zero range becomes
    0). Returns the (n, n) array I with I[a, b] = max_i (f_i(a) - f_i(b)): how far a must
    be shifted to weakly dominate b. Built by blocks of rows, one objective at a time
    (never as (n, n, m)), so that each block stays in cache, by several threads, and in
    single precision: the normalised objectives are rounded to 24 significant bits (1 part
    in 10^7, far below any difference that matters to a fit) and I is exact for them up to
    one rounding. That halves the time of IBEA's dominant cost.
    """
    return _by_blocks(F, lambda block: None, np.float64)


def _losses(F, kappa):
    """(n, n) float32 array L with L[y, x] = exp(-I(y, x) / (c kappa)), zero on the diagonal.

    The paper's c, the largest |I| over all pairs, is 1 here: on normalised objectives the
    best and the worst point of a varying objective are exactly 1 apart, and no pair is
    further apart (c = 0, when nothing varies, counts as 1 too). The IBEA fitness of x is
    ``-L[:, x].sum()``; removing y adds ``L[y, x]`` back. Each block of I becomes its
    block of L while it is still in cache. L's entries are single precision (relative
    error ~1e-7, below the indicator's own); sums over them are double precision.
    """

    def finish(block):
        block *= np.float32(-1.0 / kappa)
        np.exp(block, out=block)

    L = _by_blocks(F, finish, np.float32)
    np.fill_diagonal(L, 0.0)
    return L


def fitness(F, kappa):
    """IBEA fitness of each row of F (n, m): sum over y != x of -exp(-I(y, x) / kappa).

    Returns an (n,) array; larger is better, all values are <= 0.
    """
    return -_losses(F, kappa).sum(axis=0, dtype=np.float64)


def environmental_selection(F, keep, kappa):
    """Indices (ascending) of the ``keep`` rows of F (n, m) that IBEA keeps."""
    return _select(F, keep, kappa)[0]


def _select(F, keep, kappa):
    """Environmental selection: (kept indices ascending, their updated fitness).

    Removes the individual of smallest fitness (ties: lowest index) and updates the
    fitness of the rest, until ``keep`` remain; I is normalised over the full set.
    The survivors' fitness is what the paper's mating selection then compares.
    """
    L = _losses(F, kappa)
    fit = -L.sum(axis=0, dtype=np.float64)  # the fitness; +inf once removed
    alive = np.ones(len(F), dtype=bool)
    for _ in range(len(F) - keep):
        worst = int(np.argmin(fit))
        alive[worst] = False
        fit += L[worst]
        fit[worst] = np.inf
    kept = np.flatnonzero(alive)
    return kept, fit[kept]


_LIBM_POW = np.frompyfunc(math.pow, 2, 1)


def _power(base, exponent):
    """base ** exponent element by element through the C library's pow, as float64.

    numpy's own power picks its code by CPU: on an AVX-512 machine it rounds some
    results differently from elsewhere (last bits), and the run then takes another
    path. The operators below take every power here, so that a run is the same on
    every machine (tests/test_golden.py). Bases are positive there."""
    return _LIBM_POW(base, exponent).astype(np.float64)


def sbx_crossover(U1, U2, eta, rng):
    """Bounded simulated binary crossover of the parent pairs U1[i], U2[i], both (n, d).

    deap.tools.cxSimulatedBinaryBounded on [0, 1], vectorised: each variable takes part
    with probability 0.5 (and only if the parents differ by more than 1e-14). Returns the
    two (n, d) children arrays, inside [0, 1]. Powers are taken only where they are used
    (the variables that take part, the branch each takes).
    """
    takes_part = rng.random(U1.shape) < 0.5
    rand = rng.random(U1.shape)
    flip = rng.random(U1.shape) < 0.5
    x1 = np.minimum(U1, U2)
    x2 = np.maximum(U1, U2)
    takes_part &= x2 - x1 > 1e-14
    x1, x2, rand, flip = x1[takes_part], x2[takes_part], rand[takes_part], flip[takes_part]
    spread = x2 - x1
    exponent = 1.0 / (eta + 1.0)

    def beta_q(beta):
        alpha = 2.0 - _power(beta, -(eta + 1.0))
        inner = rand <= 1.0 / alpha
        base = np.empty_like(rand)
        base[inner] = rand[inner] * alpha[inner]
        base[~inner] = 1.0 / (2.0 - rand[~inner] * alpha[~inner])
        return _power(base, exponent)

    c1 = np.clip(0.5 * (x1 + x2 - beta_q(1.0 + 2.0 * x1 / spread) * spread), 0.0, 1.0)
    c2 = np.clip(0.5 * (x1 + x2 + beta_q(1.0 + 2.0 * (1.0 - x2) / spread) * spread), 0.0, 1.0)
    first, second = np.array(U1, dtype=np.float64), np.array(U2, dtype=np.float64)
    first[takes_part] = np.where(flip, c2, c1)
    second[takes_part] = np.where(flip, c1, c2)
    return first, second


def polynomial_mutation(U, eta, probability, rng):
    """Bounded polynomial mutation of U (n, d) on [0, 1], each variable with ``probability``.

    deap.tools.mutPolynomialBounded, vectorised. Returns a new (n, d) array inside [0, 1].
    Powers are taken only for the variables mutated, in the branch each takes.
    """
    mutate = rng.random(U.shape) < probability
    rand = rng.random(U.shape)[mutate]
    out = np.array(U, dtype=np.float64)
    u = out[mutate]
    exponent = 1.0 / (eta + 1.0)
    lower = rand < 0.5
    upper = ~lower
    delta = np.empty_like(u)
    xy = _power(1.0 - u[lower], eta + 1.0)
    delta[lower] = _power(2.0 * rand[lower] + (1.0 - 2.0 * rand[lower]) * xy, exponent) - 1.0
    xy = _power(u[upper], eta + 1.0)
    delta[upper] = 1.0 - _power(2.0 * (1.0 - rand[upper]) + 2.0 * (rand[upper] - 0.5) * xy, exponent)
    out[mutate] = np.clip(u + delta, 0.0, 1.0)
    return out


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _real(name, value, low, high=math.inf, low_open=False):
    value = float(value)
    if not (math.isfinite(value) and value <= high and (value > low if low_open else value >= low)):
        bound = f"> {low}" if low_open else f">= {low}"
        limit = f" and <= {high}" if math.isfinite(high) else ""
        raise ValueError(f"{name} must be a finite number {bound}{limit}, got {value!r}")
    return value


class IBEA:
    """IBEA as an ask/tell generator on the unit cube (the contract: generators.py).

    ``ask(n) -> (ids, U)``: n new points with consecutive integer ids (0, 1, ... over
    the run); n defaults to the next generation: ``population`` (alpha) points at
    first, ``offspring`` (lambda, default alpha) afterwards. ``tell(ids, F)``:
    objectives of asked points, in any order and any number (an asynchronous run tells
    batches as they complete). The told points join the population; once it holds
    more than ``population`` individuals, environmental selection brings it back to
    ``population``: the worst is removed one at a time and the others' fitness updated
    after each removal (normalised over population and newcomers). Until ``population``
    points have been told, ``ask`` returns uniform random points (the initial
    population is the first ``population`` to come back); afterwards children of
    binary tournaments on the fitness left by selection, through SBX and polynomial
    mutation. A generational run asks a whole generation and tells it all, in the
    order asked: the published algorithm.

    ``rng`` is a ``numpy.random.Generator`` owned by the object; ``mutation_probability``
    is per variable (default 1 / dimension), ``crossover_probability`` per pair of
    parents. The points asked and not yet told are part of the state (``pending()``),
    so a resumed run knows exactly what is outstanding.
    """

    def __init__(self, dimension, population, rng, *, offspring=None, kappa=0.05,
                 eta_crossover=10.0, eta_mutation=10.0, crossover_probability=1.0,
                 mutation_probability=None):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.dimension = _count("dimension", dimension)
        self.population = _count("population", population)
        self.offspring = _count("offspring", population if offspring is None else offspring)
        self.kappa = _real("kappa", kappa, 0.0, low_open=True)
        self.eta_crossover = _real("eta_crossover", eta_crossover, 0.0)
        self.eta_mutation = _real("eta_mutation", eta_mutation, 0.0)
        self.crossover_probability = _real("crossover_probability", crossover_probability, 0.0, 1.0)
        if mutation_probability is None:
            mutation_probability = 1.0 / self.dimension
        self.mutation_probability = _real("mutation_probability", mutation_probability, 0.0, 1.0)
        self._rng = rng
        self._U = np.zeros((0, self.dimension))
        self._F = np.zeros((0, 0))
        self._fitness = np.zeros(0)  # of the population, for mating selection
        self._asked_count = 0
        self._told_count = 0
        self._pending_ids = np.zeros(0, dtype=np.int64)
        self._pending_U = np.zeros((0, self.dimension))

    @property
    def asked(self):
        """Points asked so far (the next id)."""
        return self._asked_count

    @property
    def told(self):
        """Points told so far."""
        return self._told_count

    @property
    def outstanding(self):
        """How many points are asked and not yet told."""
        return len(self._pending_ids)

    def pending(self):
        """(ids, U) of the points asked and not yet told, ids ascending (copies)."""
        return self._pending_ids.copy(), self._pending_U.copy()

    def ask(self, n=None):
        """n new points (default: the next generation): (ids (n,) int64, U (n, d) in [0, 1]^d)."""
        if n is None:
            n = self.population if self._told_count < self.population else self.offspring
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self._told_count < self.population:
            U = self._rng.random((n, self.dimension))
        else:
            U = self._vary(self._U[self._tournament(self._fitness, n)])
        ids = np.arange(self._asked_count, self._asked_count + n, dtype=np.int64)
        self._asked_count += n
        self._pending_ids = np.concatenate([self._pending_ids, ids])
        self._pending_U = np.concatenate([self._pending_U, U])
        return ids, U.copy()

    def tell(self, ids, F):
        """Objectives F (n, m) of the asked points ``ids`` (n,), row i those of ids[i]."""
        ids = np.asarray(ids, dtype=np.int64)
        F = np.asarray(F, dtype=np.float64)
        if not len(self._pending_ids):
            raise ValueError("tell() without a pending ask()")
        where = np.searchsorted(self._pending_ids, ids)  # pending ids stay ascending
        found = where < len(self._pending_ids)
        found[found] = self._pending_ids[where[found]] == ids[found]
        if ids.ndim != 1 or not found.all() or len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be distinct ids of points asked and not yet told (by the last asks)")
        m = self._F.shape[1] if len(self._F) else None
        if F.ndim != 2 or len(F) != len(ids) or F.shape[1] == 0 or m not in (None, F.shape[1]):
            raise ValueError(f"F must have shape ({len(ids)}, {'m >= 1' if m is None else m}), got {F.shape}")
        if not np.isfinite(F).all():
            raise ValueError("F must be finite (failed evaluations need penalty values)")
        U = self._pending_U[where]
        keep = np.ones(len(self._pending_ids), dtype=bool)
        keep[where] = False
        self._pending_ids, self._pending_U = self._pending_ids[keep], self._pending_U[keep]
        self._told_count += len(ids)
        U_all = np.concatenate([self._U, U]) if len(self._U) else U
        F_all = np.concatenate([self._F, F]) if len(self._F) else F
        if len(F_all) > self.population:
            kept, self._fitness = _select(F_all, self.population, self.kappa)
            self._U, self._F = U_all[kept], F_all[kept]
        else:
            self._U, self._F = U_all.copy(), F_all.copy()
            self._fitness = fitness(F_all, self.kappa)

    def stop(self):
        """IBEA has no stopping criteria of its own: always {}."""
        return {}

    def population_arrays(self):
        """Copies of the current population: U (alpha, d) in the unit cube, F (alpha, m).

        Before the first ``tell()`` they have no rows (and F no columns).
        """
        return self._U.copy(), self._F.copy()

    def state(self):
        """Everything ``from_state`` needs to continue bit-identically (copies)."""
        return {
            "dimension": self.dimension,
            "population": self.population,
            "offspring": self.offspring,
            "kappa": self.kappa,
            "eta_crossover": self.eta_crossover,
            "eta_mutation": self.eta_mutation,
            "crossover_probability": self.crossover_probability,
            "mutation_probability": self.mutation_probability,
            "U": self._U.copy(),
            "F": self._F.copy(),
            "fitness": self._fitness.copy(),
            "asked_count": self._asked_count,
            "told_count": self._told_count,
            "pending_ids": self._pending_ids.astype(np.float64),  # exact below 2**53; all arrays are float64
            "pending_U": self._pending_U.copy(),
            "rng_state": json.dumps(self._rng.bit_generator.state, default=np.ndarray.tolist),
        }

    @classmethod
    def from_state(cls, state):
        """The generator that ``state()`` described, continuing exactly where it was."""
        rng_state = json.loads(state["rng_state"])
        bit_generator = getattr(np.random, rng_state["bit_generator"])(0)
        bit_generator.state = rng_state
        self = cls(
            int(state["dimension"]),
            int(state["population"]),
            np.random.Generator(bit_generator),
            offspring=int(state["offspring"]),
            kappa=float(state["kappa"]),
            eta_crossover=float(state["eta_crossover"]),
            eta_mutation=float(state["eta_mutation"]),
            crossover_probability=float(state["crossover_probability"]),
            mutation_probability=float(state["mutation_probability"]),
        )
        self._U = np.array(state["U"], dtype=np.float64).reshape(-1, self.dimension)
        self._F = np.array(state["F"], dtype=np.float64)
        self._fitness = np.array(state["fitness"], dtype=np.float64)
        self._asked_count = int(state["asked_count"])
        self._told_count = int(state["told_count"])
        self._pending_ids = np.array(state["pending_ids"], dtype=np.int64).reshape(-1)
        self._pending_U = np.array(state["pending_U"], dtype=np.float64).reshape(-1, self.dimension)
        return self

    def _tournament(self, fit, n):
        """Indices of n parents: binary tournaments with replacement on fit.

        The fitter of two random members wins; on equal fitness the lower index.
        """
        a, b = self._rng.integers(0, len(fit), size=(2, n))
        b_wins = (fit[b] > fit[a]) | ((fit[b] == fit[a]) & (b < a))
        return np.where(b_wins, b, a)

    def _vary(self, parents):
        """Children (n, d) of the parents (n, d): SBX on consecutive pairs, then mutation.

        Each pair is crossed with ``crossover_probability``; with an odd n the last parent
        is only copied. Every child then goes through polynomial mutation.
        """
        children = parents.copy()
        pairs = len(parents) // 2
        first, second = children[0:2 * pairs:2], children[1:2 * pairs:2]
        crossed = (self._rng.random(pairs) < self.crossover_probability)[:, None]
        c1, c2 = sbx_crossover(first, second, self.eta_crossover, self._rng)
        children[0:2 * pairs:2] = np.where(crossed, c1, first)
        children[1:2 * pairs:2] = np.where(crossed, c2, second)
        return polynomial_mutation(children, self.eta_mutation, self.mutation_probability,
                                   self._rng)
