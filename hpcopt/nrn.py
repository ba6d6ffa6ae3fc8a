"""NEURON: the only module that imports neuron.

A ``Cell`` is built once per rank. Each evaluation only sets parameters and runs
protocols; stimuli and recordings of a protocol are created for that run and
dropped after it, so nothing of one evaluation reaches the next. Integration
advances in chunks of at most ``CHUNK_STEPS`` steps with the same ``fadvance``
sequence as NEURON's ``run()`` (what BluePyOpt calls), so that results are
BluePyOpt's; between chunks the step budget and the wall-clock safety net are
checked.
"""

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .errors import HpcoptError

# Steps per call into NEURON. NEURON holds the GIL while it integrates: on rank 0 the
# dispatcher thread that answers the other ranks waits for the end of a chunk.
CHUNK_STEPS = 100

_TEMPLATE = """
begintemplate HpcoptCell
  public soma, dend, apic, axon, myelin, all, somatic, axonal, basal, apical, myelinated, CellRef
  objref this, CellRef, all, somatic, axonal, basal, apical, myelinated
  proc init() {
    all = new SectionList()
    somatic = new SectionList()
    axonal = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    myelinated = new SectionList()
    forall delete_section()
    CellRef = this
  }
  create soma[1], dend[1], apic[1], axon[1], myelin[1]
endtemplate HpcoptCell

func hpcopt_advance() { local n
  n = 0
  while (t < $1 && n < $2) {
    fadvance()
    n += 1
  }
  return n
}
"""


class SimulationError(Exception):
    """This parameter set failed (a CVODE or hoc error, non-finite values)."""


class SimulationTimeout(SimulationError):
    """This parameter set exceeded the step budget or the wall-clock limit."""


class SetupError(HpcoptError):
    """NEURON cannot be set up as configured (mechanisms, MPI)."""


_h = None


def neuron(comm=None):
    """NEURON's ``h``, initialised once per process.

    With a communicator, NEURON joins MPI (``h.nrnmpi_init()``), must see the same
    world as mpi4py, and every rank gets its own one-host subworld for
    independent single-cell simulations.
    """
    global _h
    if _h is not None:
        return _h
    if comm is not None and "MPI_LIB_NRN_PATH" not in os.environ:
        library = _mpi_library()
        if library:
            os.environ["MPI_LIB_NRN_PATH"] = library
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")  # no "no DISPLAY" warning on every rank
    with stdout_redirected():  # NEURON prints "numprocs=N" into the job's output
        from neuron import h

        if comm is not None:
            h.nrnmpi_init()
    if comm is not None:
        pc = h.ParallelContext()
        if int(pc.nhost_world()) != comm.Get_size() or int(pc.id_world()) != comm.Get_rank():
            raise SetupError(
                f"NEURON's MPI world ({int(pc.nhost_world())} ranks) differs from mpi4py's "
                f"({comm.Get_size()}): NEURON loaded another MPI library than mpi4py "
                f"({_mpi_library() or 'unknown'}). Put a directory holding a symlink libmpi.so -> that "
                "library first on LD_LIBRARY_PATH, or set MPI_LIB_NRN_PATH to it (docs/mpi.md)"
            )
        pc.subworlds(1)
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    h(_TEMPLATE)
    _h = h
    return h


@contextlib.contextmanager
def stdout_redirected(fd=None):
    """Send file descriptor 1 to ``fd`` (default /dev/null) for a while: NEURON's C code
    prints there, where the commands print their results."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY) if fd is None else None
    os.dup2(null if fd is None else fd, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if null is not None:
            os.close(null)


def _mpi_library():
    """Path of the libmpi that this process (mpi4py) loaded, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libmpi" in line and "/" in line}
    except OSError:
        return ""
    paths = sorted(p for p in paths if os.path.basename(p).startswith("libmpi.so"))
    return paths[0] if paths else ""


def version():
    """NEURON's version, without importing it (importing it early would miss the
    environment neuron() sets up)."""
    from importlib import metadata

    return metadata.version("neuron")


# ---------------------------------------------------------------- mechanisms


def compiled_mechanisms(mod_dir, cache=None):
    """The directory with ``mod_dir``'s mechanisms compiled, compiling them if needed.

    Compiled once into ``<cache>/<hash of the sources and NEURON version>``: built in
    a temporary directory beside it and renamed into place, so ranks or jobs
    starting at the same moment never build into the same directory; whoever
    loses the rename uses the winner's build.
    """
    mods = sorted(glob.glob(os.path.join(mod_dir, "*.mod")))
    digest = hashlib.sha256(version().encode())
    for path in mods:
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = cache or os.environ.get("HPCOPT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hpcopt")
    target = os.path.join(cache, "mechanisms-" + digest.hexdigest()[:16])
    if _library(target):
        return target
    os.makedirs(cache, exist_ok=True)
    build = tempfile.mkdtemp(prefix=".build-", dir=cache)
    try:
        for path in mods:
            shutil.copy(path, build)
        nrnivmodl = shutil.which("nrnivmodl") or os.path.join(os.path.dirname(sys.executable), "nrnivmodl")
        done = subprocess.run([nrnivmodl], cwd=build, capture_output=True, text=True)
        if done.returncode != 0 or not _library(build):
            errors = [line for line in (done.stdout + done.stderr).splitlines() if "rror" in line]
            raise SetupError(f"{mod_dir}: nrnivmodl failed: {' / '.join(errors[:3]) or done.stderr[-300:]}")
        try:
            os.rename(build, target)
        except OSError:
            if not _library(target):
                raise
    finally:
        if os.path.exists(build):
            shutil.rmtree(build, ignore_errors=True)
    return target


def _library(directory):
    found = glob.glob(os.path.join(directory, "*", ".libs", "libnrnmech.so")) + glob.glob(
        os.path.join(directory, "*", "libnrnmech.so"))
    return found[0] if found else ""


_loaded = set()


def load_mechanisms(directory):
    h = neuron()
    library = _library(directory)
    if library not in _loaded:
        h.nrn_load_dll(library)
        _loaded.add(library)


def _is_mechanism(h, name):
    """Whether ``name`` is a density mechanism NEURON knows (built in or loaded)."""
    table = h.MechanismType(0)
    found = h.ref("")
    for i in range(int(table.count())):
        table.select(i)
        table.selected(found)
        if found[0] == name:
            return True
    return False



# ---------------------------------------------------------------- the cell


class Cell:
    """A CellModel instantiated in NEURON, once per process.

    model: cell.CellModel. Raises SetupError for what the model's config asks
    but NEURON cannot do (missing mechanism, empty section list).
    """

    def __init__(self, model):
        h = self.h = neuron()
        if len(list(h.allsec())):
            raise RuntimeError("another cell is alive in this process; hpcopt builds one cell per process")
        self.model = model
        if model.mod_dir:
            load_mechanisms(compiled_mechanisms(model.mod_dir))
        if model.morphology.file:
            self._load(model.morphology)
        else:
            self._inline(model.morphology)
        self.soma = self.lists["somatic"][0]
        self._insert(model.mechanisms)
        self._setters = [self._setter(p) for p in model.parameters]
        self._locations = {}
        for protocol in model.protocols:  # every location resolves now, or the config is wrong
            for place in [s.location for s in protocol.stimuli] + [r.location for r in protocol.recordings]:
                try:
                    self.location(place)
                except SetupError as err:
                    raise SetupError(f"protocols.{protocol.name}: {err}") from None
            for s in protocol.stimuli:
                if s.kind == "synapse" and not hasattr(h, dict(s.synapse)["mechanism"]):
                    raise SetupError(f"protocols.{protocol.name}: no point process "
                                     f"{dict(s.synapse)['mechanism']!r}")

    # -- morphology

    def _load(self, morphology):
        h = self.h
        self._icell = icell = h.HpcoptCell()
        path = morphology.file
        reader = h.Import3d_SWC_read() if path.lower().endswith(".swc") else h.Import3d_Neurolucida3()
        reader.quiet = 1
        h.hoc_stdout("/dev/null")
        try:
            reader.input(path)
        finally:
            h.hoc_stdout()
        h.Import3d_GUI(reader, 0).instantiate(icell)
        for sec in icell.all:
            sec.nseg = 1 + 2 * int(sec.L / morphology.nseg_length)
        if morphology.replace_axon:
            self._replace_axon(icell, morphology.nseg_length)
        self.lists = {name: list(getattr(icell, name)) for name in ("all", "somatic", "axonal", "basal", "apical")}
        if not self.lists["somatic"]:
            raise SetupError(f"{path}: the morphology has no soma")

    def _replace_axon(self, icell, nseg_length, stub=60.0):
        """BluePyOpt's axon replacement: two sections of stub/2 um replace the axon,
        with the diameters of the original axon's start and of its first section
        farther than ``stub`` from the soma."""
        h = self.h
        axonal = list(icell.axonal)
        diameters = [1.0, 1.0]
        if len(axonal) == 1:
            diameters = [icell.axon[0].diam] * 2
        elif axonal:
            diameters = [icell.axon[0].diam] * 2
            h.distance(0, 0.5, sec=icell.soma[0])
            for sec in axonal:
                if h.distance(1, 0.5, sec=sec) > stub:
                    diameters[1] = sec.diam
                    break
        for sec in axonal:
            h.delete_section(sec=sec)
        h.execute("create axon[2]", icell)
        for index, sec in enumerate(icell.axon):
            sec.L = stub / 2
            sec.nseg = 1 + 2 * int(sec.L / nseg_length)
            sec.diam = diameters[index]
            icell.axonal.append(sec=sec)
            icell.all.append(sec=sec)
        icell.axon[0].connect(icell.soma[0], 1.0, 0.0)
        icell.axon[1].connect(icell.axon[0], 1.0, 0.0)

    def _inline(self, morphology):
        h = self.h
        self._sections = {}
        self.lists = {name: [] for name in ("all", "somatic", "axonal", "basal", "apical")}
        for s in morphology.sections:
            sec = h.Section(name=s.name)
            sec.L, sec.diam = s.length, s.diameter
            if s.parent:
                sec.connect(self._sections[s.parent](1.0), 0.0)
            sec.nseg = 1 + 2 * int(sec.L / morphology.nseg_length)
            self._sections[s.name] = sec
            self.lists[s.sectionlist].append(sec)
            self.lists["all"].append(sec)

    def _insert(self, mechanisms):
        for listname, suffixes in mechanisms:
            sections = self.lists[listname]
            if not sections:
                raise SetupError(f"mechanisms: section list {listname!r} is empty in this morphology")
            for suffix in suffixes:
                if not _is_mechanism(self.h, suffix):
                    raise SetupError(f"mechanisms.{listname}: no mechanism {suffix!r} (not built in, "
                                     "not in mod_dir)")
                for sec in sections:
                    sec.insert(suffix)

    # -- parameters

    def _setter(self, p):
        """A function value -> None that applies ModelParameter p everywhere it applies."""
        h = self.h
        if p.kind == "global":
            if not hasattr(h, p.attribute):
                raise SetupError(f"parameters: {p.name}: NEURON has no global {p.attribute!r}")
            return lambda value: setattr(h, p.attribute, value)
        sections = self.lists[p.sectionlist]
        if not sections:
            raise SetupError(f"parameters: {p.name}: section list {p.sectionlist!r} is empty in this morphology")
        for sec in sections:
            try:
                getattr(sec if p.kind == "section" else sec(0.5), p.attribute)
            except (AttributeError, NameError, ValueError) as err:
                raise SetupError(f"parameters: {p.name}: {sec.name()} has no {p.attribute!r} "
                                 f"(is its mechanism inserted there?)") from err
        if p.kind == "section":
            return lambda value: [setattr(sec, p.attribute, value) for sec in sections]
        segments = [seg for sec in sections for seg in sec]
        if not p.distribution:
            return lambda value: [setattr(seg, p.attribute, value) for seg in segments]
        from .cell import distribution_function

        f = distribution_function(p.distribution)
        h.distance(0, 0.5, sec=self.soma)
        distances = [h.distance(1, seg.x, sec=seg.sec) for seg in segments]

        def set_distributed(value):
            for seg, distance in zip(segments, distances):
                setattr(seg, p.attribute, f(distance, value))

        return set_distributed

    def set_parameters(self, values):
        """values: {parameter name: value} for every model parameter, in config order."""
        for p, setter in zip(self.model.parameters, self._setters):
            setter(values[p.name])

    # -- protocols

    def location(self, location):
        """(section, x) of a cell.Location (cached)."""
        key = (location.kind, location.sectionlist, location.distance)
        if key not in self._locations:
            self._locations[key] = self._find(location)
        return self._locations[key]

    def _find(self, location):
        if location.kind == "soma":
            return self.soma, 0.5
        h = self.h
        h.distance(0, 0.5, sec=self.soma)
        found = None
        for sec in self.lists[location.sectionlist]:  # as BluePyOpt: the last match wins
            start, end = h.distance(1, 0.0, sec=sec), h.distance(1, 1.0, sec=sec)
            low, high = min(start, end), max(start, end)
            if low <= location.distance <= high:
                x = (location.distance - low) / (high - low)
                if sec(x).diam > 0:
                    found = sec, x
        if found is None:
            raise SetupError(f"no point of section list {location.sectionlist!r} is {location.distance} um "
                             "from the soma")
        return found

    def run(self, protocol, simulation, deadline):
        """Simulate ``protocol``; returns {recording name: (t, values)} numpy arrays.

        Raises SimulationError (failed) or SimulationTimeout (budget exceeded).
        """
        h = self.h
        keep = [self._stimulus(s, protocol.tstop) for s in protocol.stimuli]
        t = h.Vector()
        t.record(h._ref_t)
        vectors = []
        for r in protocol.recordings:
            sec, x = self.location(r.location)
            v = h.Vector()
            v.record(getattr(sec(x), f"_ref_{r.variable}"))
            vectors.append(v)
        try:
            self._integrate(protocol.tstop, simulation, deadline)
        finally:
            del keep
        T = t.as_numpy().copy()
        traces = {}
        for r, v in zip(protocol.recordings, vectors):
            values = v.as_numpy().copy()
            if not np.all(np.isfinite(values)):
                raise SimulationError(f"{protocol.name}: non-finite {r.variable} at {r.name}")
            traces[r.name] = (T, values)
        return traces

    def integrator(self, tstop, simulation):
        """Set NEURON's integrator up for a run to ``tstop`` (CVODE or fixed dt)."""
        h = self.h
        h.tstop = tstop
        h.cvode_active(1 if simulation.cvode else 0)
        if simulation.cvode:
            if simulation.atol:
                h.CVode().atol(simulation.atol)
        else:
            h.dt = simulation.dt
            h.steps_per_ms = 1.0 / simulation.dt

    def _integrate(self, tstop, simulation, deadline):
        h = self.h
        self.integrator(tstop, simulation)
        try:
            h.stdinit()
            if simulation.cvode:
                h.CVode().event(tstop)
                stop_at = tstop
            else:
                stop_at = tstop - h.dt / 2
            steps = 0
            while True:
                # hoc's loop ends at t >= stop_at with hoc's own tolerance, as run() does; it
                # took fewer steps than asked only when it got there
                asked = min(CHUNK_STEPS, simulation.max_steps + 1 - steps)
                taken = int(h.hpcopt_advance(stop_at, asked))
                steps += taken
                if taken < asked:
                    return
                if steps > simulation.max_steps:
                    raise SimulationTimeout(f"more than {simulation.max_steps} integration steps "
                                            f"(t = {h.t:.6g} of {tstop} ms)")
                if time.perf_counter() > deadline:
                    raise SimulationTimeout(f"wall-clock limit reached at t = {h.t:.6g} of {tstop} ms")
        except RuntimeError as err:  # hoc errors, CVODE failures
            raise SimulationError(f"NEURON: {str(err).strip() or type(err).__name__}") from err

    def _stimulus(self, s, tstop):
        """The NEURON objects of stimulus ``s`` (kept alive by the caller during the run)."""
        h = self.h
        sec, x = self.location(s.location)
        if s.kind == "step":
            clamp = h.IClamp(sec(x))
            clamp.delay, clamp.dur, clamp.amp = s.delay, s.duration, s.amplitude
            return (clamp,)
        if s.kind in ("ramp", "waveform"):
            clamp = h.IClamp(sec(x))
            if s.kind == "ramp":
                times = [0.0, s.delay, s.delay, s.delay + s.duration, s.delay + s.duration, max(tstop, s.delay +
                                                                                                s.duration)]
                amps = [0.0, 0.0, s.amplitude, s.amplitude_end, 0.0, 0.0]
                clamp.delay, clamp.dur = 0.0, 1e9
            else:
                times, amps = list(s.times), list(s.currents)
                clamp.delay, clamp.dur = s.times[0], s.times[-1] - s.times[0]
            tvec, ivec = h.Vector(times), h.Vector(amps)
            ivec.play(clamp._ref_amp, tvec, 1)
            return clamp, tvec, ivec
        synapse = dict(s.synapse)
        point = getattr(h, synapse.pop("mechanism"))(sec(x))
        for key, value in synapse.items():
            setattr(point, key, value)
        stim = h.NetStim()
        stim.start, stim.interval, stim.number, stim.noise = s.start, s.interval, s.number, 0
        con = h.NetCon(stim, point)
        con.weight[0], con.delay = s.weight, 0.0
        return point, stim, con

    def section_count(self):
        return len(list(self.h.allsec()))
