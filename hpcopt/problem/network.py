"""Evaluation of one parameter set of a network (config.network) by the ranks of one
NEURON subworld together (``execution.ranks_per_evaluation``; one rank by default).

Every rank of the group calls the user's ``build(pc, params)``, which creates the cells
whose gids it places on this rank (``pc.set_gid2node(gid, pc.id())``), registers their
spike sources (``pc.cell``), connects them (``pc.gid_connect``) and returns

    {"populations": {name: [gids created here]},   # spikes recorded and measured
     "voltages": {name: segment},                   # e.g. cell.soma(0.5), optional
     ...}                                           # anything else: kept until the evaluation ends

The group then integrates with a fixed step (``pc.psolve``), the group leader gathers
the spikes and voltages and scores them; the other ranks return None. With a fixed step
and random streams tied to gids (Random123), the scores do not depend on how many ranks
the network is spread over.

A builder that raises on any rank fails the evaluation on all of them (they agree
before integrating; the builder itself must make no collective call, or the ranks that
did not raise would wait in it), and so does a connection delay shorter than the time
step, which NEURON's spike exchange cannot deliver; an error inside the integration of
one rank cannot be recovered by the others, which wait in NEURON's spike exchange: it
ends the job, as a rank's crash does, and the crash rule applies on resume.
"""

import gc
import math
import traceback

import numpy as np

from ..config.cell import Feature
from ..errors import ConfigError
from ..features.scoring import Scorer
from ..neuron import session
from .function import exits_raise, import_callable
from .outcome import Outcome

CHUNK = 10.0  # ms of model time per psolve call: rank 0 lets its dispatcher thread run between them
PROTOCOL = "network"  # the protocol name of the voltage features (eFEL's scoring is shared with cells)


class NetworkEvaluator:
    """(d,) physical values of the free parameters -> Outcome on the group's leader, None
    on its other ranks.

    problem: space.Problem; spec: config.network.NetworkProblem; comm: the run's MPI
    world (NEURON joins it) or None; group: ranks per evaluation.
    """

    def __init__(self, problem, spec, comm=None, group=1):
        self.h = h = session.neuron(comm, group)
        self.pc = h.ParallelContext()
        self.problem, self.spec = problem, spec
        self.builder = self._import()
        self.frozen = {p.name: p.value for p in spec.parameters if not p.free}
        voltages = [o for o in spec.targets if o.voltage]
        self.features = tuple(Feature(PROTOCOL, o.voltage, o.feature, o.mean, o.std, spec.window[0], spec.window[1],
                                      o.threshold) for o in voltages)
        self.scorer = Scorer(self.features, spec.penalty) if voltages else None
        if voltages:
            known = set(self.scorer.efel.get_feature_names())
            for o in voltages:
                if o.feature not in known:
                    raise ConfigError(f"problem.network.objectives.{o.name}.feature",
                                      f"{o.feature!r} is not an eFEL feature")

    @property
    def leads(self):
        """Whether this rank returns the group's Outcomes."""
        return int(self.pc.id()) == 0

    def _import(self):
        """The user's function that builds the network (config's ``builder``)."""
        return import_callable(self.spec.builder, self.spec.path, where="problem.network.builder")

    def __call__(self, x):
        params = dict(self.frozen)
        params.update(zip(self.problem.names, map(float, x)))
        built, recorded, failed = self._build(params)
        try:
            if failed:
                r, message = failed
                return self.problem.penalised(f"build: {message}" + (f" (group rank {r})" if r else "")) \
                    if self.leads else None
            self._integrate()
            results = self._results(*recorded)
            gathered = self.pc.py_gather(results, 0) if int(self.pc.nhost()) > 1 else [results]
        finally:
            self._clear()
            self.pc.gid_clear()
            del built
            gc.collect()  # cells in reference cycles (Section(cell=self)) must not live on into the next network
        return self._score(gathered) if self.leads else None

    def _build(self, params):
        """(what the builder returned, what _record returned, None or (group rank, error) of
        the first rank that failed): the builder on every rank of the group, which agree."""
        built, recorded, error = None, None, None
        try:
            with exits_raise():
                built = self.builder(self.pc, params)
            recorded = self._record(built)
        except (Exception, SystemExit) as err:  # a bad parameter set is data
            error = described(err)
        return built, recorded, self._agree(error or self._too_short_delay())

    def _agree(self, error):
        """None or (group rank, error) of the first rank of the group whose ``error`` is not
        None: every rank of the group learns whether all succeeded."""
        failed = [(r, e) for r, e in enumerate(self._allgather(error)) if e is not None]
        return failed[0] if failed else None

    def _clear(self):
        """Forget this evaluation's network before pc.gid_clear() (nothing to do here: the
        builder's objects are dropped with its answer)."""

    def _allgather(self, value):
        """``value`` of every rank of the group (no MPI call on a group of one: rank 0
        may evaluate in its own process while its dispatcher thread calls MPI)."""
        return self.pc.py_allgather(value) if int(self.pc.nhost()) > 1 else [value]

    def _too_short_delay(self):
        """Why the network cannot run with the fixed step (a connection between gids
        shorter than dt), or None."""
        delays = [nc.delay for nc in self.h.List("NetCon") if nc.srcgid() >= 0]
        if delays and min(delays) < self.spec.dt:
            return (f"a connection delay of {min(delays):g} ms is shorter than the time step dt = {self.spec.dt:g} "
                    "ms: NEURON's spike exchange cannot deliver it")
        return None

    def _record(self, built):
        """(t Vector, spike times, spike gids, {population: gids}, {name: Vector}) recording
        what ``built`` (the builder's answer) names."""
        if not isinstance(built, dict):
            raise TypeError(f"the builder returned {type(built).__name__}, not a dict with 'populations'")
        populations = built.get("populations")
        if not isinstance(populations, dict):
            raise TypeError("the builder's answer has no 'populations' {name: [gids]}")
        h = self.h
        populations = {str(name): [int(g) for g in gids] for name, gids in populations.items()}
        times, gids = h.Vector(), h.Vector()
        self.pc.spike_record(-1, times, gids)
        t = h.Vector()
        t.record(h._ref_t)
        voltages = {}
        for name, segment in (built.get("voltages") or {}).items():
            voltages[str(name)] = h.Vector()
            voltages[str(name)].record(segment._ref_v)
        return t, times, gids, populations, voltages

    def _integrate(self):
        """Integrate the group's network to tstop with the fixed step, in chunks of
        CHUNK ms (the same sequence on every rank of the group)."""
        h, pc, spec = self.h, self.pc, self.spec
        h.cvode_active(0)
        h.dt = spec.dt
        pc.set_maxstep(10)
        h.finitialize(spec.v_init)
        stop = 0.0
        while stop < spec.tstop:
            stop = min(stop + CHUNK, spec.tstop)
            pc.psolve(stop)

    @staticmethod
    def _results(t, times, gids, populations, voltages):
        """What this rank sends its leader: spikes, its populations' gids, voltages."""
        T = t.as_numpy().copy()
        return (times.as_numpy().copy(), gids.as_numpy().astype(np.int64), populations,
                {name: (T, v.as_numpy().copy()) for name, v in voltages.items()})

    def _score(self, gathered):
        """The Outcome of the group's gathered results (one tuple per group rank)."""
        spec = self.spec
        times = np.concatenate([g[0] for g in gathered])
        ids = np.concatenate([g[1] for g in gathered])
        populations, traces = {}, {}
        for _, _, pops, voltages in gathered:
            for name, members in pops.items():
                populations.setdefault(name, []).extend(members)
            twice = sorted(name for name in voltages if (PROTOCOL, name) in traces)
            if twice:
                return self.problem.penalised(f"voltage {twice[0]!r} recorded on two ranks: name each on one")
            traces.update({(PROTOCOL, name): trace for name, trace in voltages.items()})
        unknown = sorted({o.population for o in spec.targets if o.population and o.population not in populations} |
                         {o.voltage for o in spec.targets if o.voltage and (PROTOCOL, o.voltage) not in traces})
        if unknown:
            return self.problem.penalised(f"the builder recorded no population or voltage named "
                                          f"{', '.join(map(repr, unknown))}")
        values = np.full(len(spec.targets), np.nan)
        scores = np.full(len(spec.targets), float(spec.penalty))
        efel_scores, efel_values, _ = self.scorer(traces) if self.scorer else ((), (), None)
        voltage_index = 0
        for i, o in enumerate(spec.targets):
            if o.voltage:
                values[i], scores[i] = efel_values[voltage_index], efel_scores[voltage_index]
                voltage_index += 1
                continue
            values[i] = measure(o.measure, times, ids, populations[o.population], spec.window, spec.bin)
            if math.isfinite(values[i]):
                scores[i] = abs(values[i] - o.mean) / o.std
        raw = {o.name: [float(v)] if math.isfinite(v) else None for o, v in zip(spec.targets, values)}
        return Outcome(scores, features=values, raw=raw)


def described(err):
    """An exception as a line of the run file: type, message, where it was raised."""
    where = traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})"


def measure(name, times, ids, members, window, bin_ms):
    """``name`` (rate, isi_cv or synchrony) of the spikes (times, ids) of the cells
    ``members`` within ``window`` (ms); NaN where it cannot be measured.

    rate: spikes per cell per second; isi_cv: the mean over cells with at least 3 spikes
    of the coefficient of variation of their interspike intervals; synchrony: the Fano
    factor (variance / mean) of the population's spike counts in bins of ``bin_ms``
    (about 1 for independent Poisson firing, larger when cells fire together).
    """
    start, end = window
    members = np.unique(np.asarray(members, dtype=np.int64))
    if not len(members):
        return math.nan
    chosen = np.isin(ids, members) & (times >= start) & (times < end)
    t, who = times[chosen], ids[chosen]
    if name == "rate":
        return len(t) / len(members) / ((end - start) / 1000.0)
    if name == "isi_cv":
        cvs = []
        for gid in np.unique(who):
            isi = np.diff(np.sort(t[who == gid]))
            if len(isi) >= 2 and isi.mean() > 0:
                cvs.append(isi.std() / isi.mean())
        return float(np.mean(cvs)) if cvs else math.nan
    edges = np.arange(start, end + bin_ms / 2, bin_ms)
    if len(edges) < 3:
        return math.nan
    counts = np.histogram(t, bins=edges)[0]
    return float(counts.var() / counts.mean()) if counts.mean() > 0 else math.nan
