"""A CellModel instantiated in NEURON, once per process: morphology (a file
through Import3d with BluePyOpt's axon replacement, or inline cylinders), the
40 um nseg rule, mechanisms per section list, and setters for every parameter."""

from ..config.expressions import distribution_function
from . import mechanisms, session
from .session import SetupError
from .simulation import SimulationError, run


class Cell:
    """A CellModel instantiated in NEURON, once per process.

    model: config.cell.CellModel. Raises SetupError for what the model's config asks
    but NEURON cannot do (missing mechanism, empty section list).
    """

    def __init__(self, model):
        h = self.h = session.neuron()
        if len(list(h.allsec())):
            raise RuntimeError("another cell is alive in this process; hpcopt builds one cell per process")
        self.model = model
        if model.mod_dir:
            mechanisms.load(model.mod_dir)
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
                if s.kind == "synapse":
                    self._check_synapse(protocol.name, s)

    def _check_synapse(self, protocol, stimulus):
        """SetupError unless NEURON has the point process and every parameter given for it."""
        h = self.h
        if not hasattr(h, stimulus.mechanism):
            raise SetupError(f"protocols.{protocol}: no point process {stimulus.mechanism!r}")
        sec, x = self.location(stimulus.location)
        probe = getattr(h, stimulus.mechanism)(sec(x))
        for key, _ in stimulus.synapse:
            if key != "mechanism" and not hasattr(probe, key):
                raise SetupError(f"protocols.{protocol}: synapse {stimulus.mechanism} has no parameter {key!r}")

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
            h.Import3d_GUI(reader, 0).instantiate(icell)
        except RuntimeError as err:  # a hoc error of NEURON's reader: the file, not a bug
            raise SetupError(f"{path}: NEURON cannot read this morphology ({err})") from None
        finally:
            h.hoc_stdout()
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

    def _insert(self, inserted):
        for listname, suffixes in inserted:
            sections = self.lists[listname]
            if not sections:
                raise SetupError(f"mechanisms: section list {listname!r} is empty in this morphology")
            for suffix in suffixes:
                if not mechanisms.known(self.h, suffix):
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
        f = distribution_function(p.distribution)
        h.distance(0, 0.5, sec=self.soma)
        distances = [h.distance(1, seg.x, sec=seg.sec) for seg in segments]

        def set_distributed(value):
            for seg, distance in zip(segments, distances):
                try:
                    setattr(seg, p.attribute, f(distance, value))
                except (ArithmeticError, ValueError) as err:  # this value: a failed evaluation, not a crash
                    raise SimulationError(f"parameters: {p.name} = {value!r}: {p.distribution!r} at distance "
                                          f"{distance:g} um: {type(err).__name__}: {err}") from err

        return set_distributed

    def set_parameters(self, values):
        """values: {parameter name: value} for every model parameter, in config order."""
        for p, setter in zip(self.model.parameters, self._setters):
            setter(values[p.name])

    # -- protocols

    def location(self, location):
        """(section, x) of a config.locations.Location (cached)."""
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
        """Simulate ``protocol`` (simulation.run)."""
        return run(self, protocol, simulation, deadline)

    def section_count(self):
        return len(list(self.h.allsec()))
