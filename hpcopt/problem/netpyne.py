"""Evaluation of a NetPyNE network (``problem.network.netpyne``: ``make(params)`` returns
NetPyNE's ``(netParams, simConfig)``) by the ranks of one NEURON subworld, as
problem/network.py evaluates a builder's network.

On every rank of the group: ``make(params)``, then NetPyNE's ``sim.initialize`` with the
subworld's ParallelContext (NetPyNE's own ``createParallelContext`` calls ``pc.done()``,
which must never run inside hpcopt: it is replaced while NetPyNE initialises),
``sim.net.createPops()``, ``createCells()``; the group agrees whether all succeeded;
then ``connectCells()`` (which begins with NetPyNE's exchange of cell tags between the
ranks), ``addStims()``; the group agrees again. NetPyNE's ``pc.barrier()`` calls (only
synchronisation of its timers and messages) do nothing, so that a rank that raises
inside a stage leaves no other waiting in one. ``sim.preRun()`` then seeds the NetStims
(NetPyNE's per-gid Random123 streams) and sets the cells' initial potentials, and hpcopt
integrates, records and scores as for a builder: NetPyNE's own recording, gathering,
saving and analysis are not used, and its printing is silenced.

simConfig's ``duration``, ``dt``, ``hParams['v_init']`` are set from the config's tstop,
dt, v_init, and CVODE, LFP and dipole recording are turned off. A voltage objective
names ``POP[i]``: ``soma(0.5)`` of the i-th cell (in gid order) of population POP.
"""

import contextlib
import re
import sys
import threading

from ..errors import ConfigError
from .function import exits_raise, import_callable
from .network import NetworkEvaluator, described

CELL = re.compile(r"^(.+)\[(\d+)\]$")  # a voltage's name: POP[i]


class NetPyNEEvaluator(NetworkEvaluator):
    """NetworkEvaluator of ``spec.netpyne`` (module:function making NetPyNE's specs)."""

    def _import(self):
        try:
            with quiet():  # NetPyNE prints about the display when imported
                from netpyne import sim, specs
        except ImportError as err:
            raise ConfigError("problem.network.netpyne", f"NetPyNE cannot be imported ({err}): "
                                                         "pip install netpyne (or hpcopt[netpyne])") from err
        self.sim, self.specs = sim, specs
        for o in self.spec.targets:
            if o.voltage and not CELL.match(o.voltage):
                raise ConfigError(f"problem.network.objectives.{o.name}.voltage",
                                  f"expected POP[i] (the i-th cell of a NetPyNE population), found {o.voltage!r}")
        return import_callable(self.spec.netpyne, self.spec.path, where="problem.network.netpyne")

    def _build(self, params):
        """As NetworkEvaluator._build: NetPyNE creates the cells, then connects them."""
        failed = self._agree(self._stage(self._create, params))
        if failed:
            return None, None, failed
        built = {}
        error = self._stage(self._connect, built)
        return built, built.get("recorded"), self._agree(error or self._too_short_delay())

    def _stage(self, step, *args):
        """None, or the error ``step(*args)`` raised (silenced: NetPyNE prints)."""
        try:
            with quiet(), exits_raise():
                step(*args)
        except (Exception, SystemExit) as err:  # a bad parameter set is data
            return described(err)
        return None

    def _create(self, params):
        """make(params), NetPyNE's initialisation in this subworld, its populations and cells."""
        made = self.builder(params)
        if not isinstance(made, tuple) or len(made) != 2:
            raise TypeError(f"{self.spec.netpyne} returned {type(made).__name__}, not (netParams, simConfig)")
        net_params, sim_config = made
        sim, spec = self.sim, self.spec
        cfg = sim_config if isinstance(sim_config, self.specs.SimConfig) else self.specs.SimConfig(sim_config or {})
        cfg.duration, cfg.dt = float(spec.tstop), float(spec.dt)
        cfg.hParams = {**cfg.hParams, "v_init": float(spec.v_init)}
        cfg.cvode_active, cfg.recordLFP, cfg.recordDipole, cfg.saveIMembrane = False, [], False, False
        cfg.validateNetParams, cfg.verbose, cfg.printRunTime, cfg.timing = False, False, False, False
        cfg.coreneuron, cfg.dump_coreneuron_model = False, False
        group = Subworld(self.pc)

        def subworld():  # NetPyNE's createParallelContext, without its pc.done()
            sim.pc, sim.nhosts, sim.rank = group, int(self.pc.nhost()), int(self.pc.id())

        original, sim.createParallelContext = sim.createParallelContext, subworld
        try:
            sim.initialize(net_params, cfg)
        finally:
            sim.createParallelContext = original
        if sim.nhosts != int(self.pc.nhost()) or sim.rank != int(self.pc.id()):
            raise RuntimeError(f"NetPyNE runs on rank {sim.rank} of {sim.nhosts}, not on the subworld's "
                               f"{int(self.pc.id())} of {int(self.pc.nhost())}")
        sim.net.createPops()
        sim.net.createCells()

    def _connect(self, built):
        """NetPyNE's connections and stimuli; ``built`` gets what to record."""
        sim = self.sim
        sim.net.connectCells()
        sim.net.addStims()
        populations = {label: [c.gid for c in sim.net.cells if c.tags.get("pop") == label] for label in sim.net.pops}
        built.update(populations=populations, voltages=self._voltages())
        built["recorded"] = self._record(built)

    def _voltages(self):
        """{POP[i]: soma(0.5) of that cell} for the voltage objectives whose cell is on this rank."""
        sim, start, gid = self.sim, {}, 0
        for label, pop in sim.net.pops.items():
            start[label] = gid
            gid += int(pop.tags.get("numCells", len(pop.tags.get("cellsList", ()))))
        cells = {c.gid: c for c in sim.net.cells}
        out = {}
        for o in self.spec.targets:
            if not o.voltage:
                continue
            label, index = CELL.match(o.voltage).groups()
            if label not in start or gid != sim.net.lastGid:
                raise ValueError(f"voltage {o.voltage!r}: no NetPyNE population {label!r} whose gids hpcopt can tell")
            cell = cells.get(start[label] + int(index))
            if cell is not None:
                if "soma" not in cell.secs:
                    raise ValueError(f"voltage {o.voltage!r}: the cell has no section 'soma'")
                out[o.voltage] = cell.secs["soma"]["hObj"](0.5)
        return out

    def _integrate(self):
        """NetPyNE's preRun (NetStim seeds, cells' initial potentials), then the fixed step."""
        with quiet():
            self.sim.preRun()
        super()._integrate()

    def _clear(self):
        """Forget NetPyNE's network and handlers: the next evaluation starts from nothing."""
        for name in ("net", "fih", "simData", "allSimData", "cfg"):
            if hasattr(self.sim, name):
                delattr(self.sim, name)


class Subworld:
    """The subworld's ParallelContext as NetPyNE sees it: its ``barrier()`` does nothing
    (NetPyNE synchronises its timers and messages with it; a rank that raised would leave
    the others waiting in the next one) and ``done()`` is refused."""

    def __init__(self, pc):
        self._pc = pc

    def __getattr__(self, name):
        return getattr(self._pc, name)

    def barrier(self):
        return 0.0

    def done(self):
        raise RuntimeError("pc.done() would end NEURON's MPI inside hpcopt")


class _Silent:
    """sys.stdout / sys.stderr that drops what one thread writes (rank 0's dispatcher
    thread keeps writing through)."""

    def __init__(self, stream, thread):
        self._stream, self._thread = stream, thread

    def write(self, text):
        return len(text) if threading.get_ident() == self._thread else self._stream.write(text)

    def flush(self):
        if threading.get_ident() != self._thread:
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet():
    """This thread's printing (NetPyNE's messages and progress bars) goes nowhere."""
    saved = sys.stdout, sys.stderr
    thread = threading.get_ident()
    sys.stdout, sys.stderr = _Silent(saved[0], thread), _Silent(saved[1], thread)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
