"""Cell-model problems: the config of a NEURON cell fitted to eFEL features.

Pure data and validation: no NEURON import (hpcopt/neuron builds the cell, and
hpcopt/features scores it; eFEL is asked only for its feature names). Two inputs
give the same typed ``CellModel``:

- ``problem.cell``: one JSON object in BluePyOpt's vocabulary (mechanisms per
  section list, parameters as in parameters.json, protocols as in
  protocols.json, features as in features.json), with hpcopt's extensions
  (inline geometry, ramps, waveforms, synaptic input, per-feature eFEL settings);
- ``problem.bluepyopt``: paths to BluePyOpt L5PC-style files, read with that
  example's conventions and turned into the first form (bluepyopt.py).

The resolved config stored in the run file is always the first form, with
absolute paths, so a run file says exactly what was fitted.
"""

import math
import os
from dataclasses import dataclass, field

from . import bluepyopt, fields, locations
from . import stimuli as stimuli_
from .expressions import check_distribution
from .fields import path_of
from .locations import SECTION_LISTS
from .parameter import Parameter

SOMA_THRESHOLD, DENDRITE_THRESHOLD = -20.0, -55.0  # mV, BluePyOpt's L5PC conventions


@dataclass(frozen=True)
class Section:
    """An inline cylinder: name, section list, parent name ('' for the root)."""

    name: str
    sectionlist: str
    length: float
    diameter: float
    parent: str = ""


@dataclass(frozen=True)
class Morphology:
    file: str = ""  # absolute path of an SWC or Neurolucida ASC file, or ""
    sections: tuple = ()  # inline Sections when there is no file
    replace_axon: bool = False
    nseg_length: float = 40.0  # nseg = 1 + 2 * int(L / nseg_length)


@dataclass(frozen=True)
class ModelParameter:
    """One entry of parameters.json. ``name`` is BluePyOpt's: param_name, or
    param_name.sectionlist for section and range parameters."""

    name: str
    kind: str  # global | section | range
    attribute: str  # what NEURON sets: celsius, cm, gnabar_hh, ...
    sectionlist: str = ""
    distribution: str = ""  # expression in {distance} and {value}; "" for uniform
    lower: float = math.nan
    upper: float = math.nan
    value: float = math.nan


@dataclass(frozen=True)
class Recording:
    name: str
    variable: str
    location: locations.Location


@dataclass(frozen=True)
class Protocol:
    name: str
    stimuli: tuple
    recordings: tuple  # 'soma' first
    tstop: float
    stim_start: float  # default eFEL window
    stim_end: float


@dataclass(frozen=True)
class Feature:
    """One objective: eFEL feature ``efel_name`` of a recording in a protocol.

    mean and std are NaN for a feature listed without a target yet: ``evaluate``
    and ``targets`` measure it, ``run`` refuses it.
    """

    protocol: str
    recording: str
    efel_name: str
    mean: float
    std: float
    stim_start: float
    stim_end: float
    threshold: float
    settings: tuple = ()  # ((eFEL setting, value), ...)

    @property
    def name(self):
        return f"{self.protocol}.{self.recording}.{self.efel_name}"

    @property
    def has_target(self):
        return not math.isnan(self.mean)


@dataclass(frozen=True)
class Simulation:
    cvode: bool = True
    dt: float = 0.025  # ms, fixed step when cvode is off
    atol: float = 0.0  # CVODE absolute tolerance; 0: NEURON's default
    max_steps: int = 2_000_000  # integrator steps per protocol: beyond, the evaluation times out
    wall_limit: float = 600.0  # seconds per evaluation: a safety net only


@dataclass(frozen=True)
class CellModel:
    morphology: Morphology
    mechanisms: tuple  # ((sectionlist, (suffix, ...)), ...)
    parameters: tuple  # ModelParameters
    protocols: tuple
    features: tuple
    mod_dir: str = ""
    simulation: Simulation = field(default_factory=Simulation)
    penalty: float = 250.0
    trace_check: bool = False  # as BluePyOpt: spikes outside the stimulus window are not penalised

    @property
    def objectives(self):
        return tuple(f.name for f in self.features)

    @property
    def free(self):
        return tuple(p for p in self.parameters if math.isnan(p.value))

    @property
    def untargeted(self):
        """Names of the features listed without a target (mean, std) yet."""
        return tuple(f.name for f in self.features if not f.has_target)

    def config_parameters(self):
        """The parameters as config.Parameters (free ones with bounds)."""
        return tuple(Parameter(p.name, p.lower, p.upper, p.value) for p in self.parameters)


# ---------------------------------------------------------------- parsing


def parse(raw, where, base_dir, wheres=None):
    """A CellModel from the ``problem.cell`` object ``raw``.

    wheres: {part: fields.Where} naming the file a part came from (BluePyOpt's files),
    so that messages name that file rather than the config.
    """
    table = fields.table(
        raw, where,
        required=("morphology", "mechanisms", "parameters", "protocols", "features"),
        optional=("mod_dir", "simulation", "penalty", "trace_check"),
    )
    wheres = wheres or {}

    def part(key):
        return wheres.get(key, where / key)

    morphology = _morphology(table["morphology"], where / "morphology", base_dir)
    mechanisms = _mechanisms(table["mechanisms"], part("mechanisms"))
    mod_dir = ""
    if table.get("mod_dir"):
        mod_dir = path_of(table["mod_dir"], where, "mod_dir", base_dir)
        if not os.path.isdir(mod_dir):
            raise where.error("mod_dir", f"no such directory: {mod_dir}")
        if not any(name.endswith(".mod") for name in os.listdir(mod_dir)):
            raise where.error("mod_dir", f"no .mod file in {mod_dir}")
    parameters = _parameters(table["parameters"], part("parameters"))
    protocols = _protocols(table["protocols"], part("protocols"), base_dir)
    raw_features, features_where = features_document(table["features"], part("features"), base_dir)
    features = _features(raw_features, features_where, protocols)
    simulation = _simulation(table.get("simulation", {}), where / "simulation")
    penalty = fields.number(table, where, "penalty", above=0) if "penalty" in table else 250.0
    trace_check = table.get("trace_check", False)
    if not isinstance(trace_check, bool):
        raise where.error("trace_check", f"expected true or false, found {fields.show(trace_check)}")
    lists = {name for name, _ in mechanisms} | {p.sectionlist for p in parameters if p.sectionlist}
    if not morphology.file:
        present = {"all"} | {s.sectionlist for s in morphology.sections}
        for name in sorted(lists - present):
            raise where.error("morphology", f"no section in section list {name!r}, which mechanisms or "
                                            f"parameters use; lists present: {', '.join(sorted(present))}")
    return CellModel(morphology, mechanisms, parameters, protocols, features, mod_dir, simulation, penalty,
                     trace_check)


def resolved(model):
    """``model`` as a ``problem.cell`` object (the form the run file stores)."""
    m = model.morphology
    morphology = {"replace_axon": m.replace_axon, "nseg_length": m.nseg_length}
    if m.file:
        morphology["file"] = m.file
    else:
        morphology["sections"] = [
            {"name": s.name, "sectionlist": s.sectionlist, "length": s.length, "diameter": s.diameter,
             **({"parent": s.parent} if s.parent else {})}
            for s in m.sections
        ]
    out = {
        "morphology": morphology,
        "mechanisms": {name: list(suffixes) for name, suffixes in model.mechanisms},
        "parameters": [_resolved_parameter(p) for p in model.parameters],
        "protocols": {p.name: _resolved_protocol(p) for p in model.protocols},
        "features": {},
        "simulation": vars(model.simulation).copy(),
        "penalty": model.penalty,
        "trace_check": model.trace_check,
    }
    if model.mod_dir:
        out["mod_dir"] = model.mod_dir
    for f in model.features:
        entry = {"mean": f.mean, "std": f.std} if f.has_target else {}
        entry.update({"stim_start": f.stim_start, "stim_end": f.stim_end, "threshold": f.threshold})
        if f.settings:
            entry["settings"] = dict(f.settings)
        out["features"].setdefault(f.protocol, {}).setdefault(f.recording, {})[f.efel_name] = entry
    return out


def _resolved_parameter(p):
    entry = {"param_name": p.name.split(".")[0], "type": p.kind}
    if p.kind != "global":
        entry["sectionlist"] = p.sectionlist
        entry["dist_type"] = "uniform" if not p.distribution else "expression"
        if p.distribution:
            entry["dist"] = p.distribution
        if p.attribute != entry["param_name"]:
            entry["attribute"] = p.attribute
    if math.isnan(p.value):
        entry["bounds"] = [p.lower, p.upper]
    else:
        entry["value"] = p.value
    return entry


def _resolved_protocol(p):
    stimuli = [stimuli_.resolved(s) for s in p.stimuli]
    recordings = [{"name": r.name, "var": r.variable, "location": r.location.resolved()}
                  for r in p.recordings]
    return {"stimuli": stimuli, "recordings": recordings, "tstop": p.tstop,
            "stim_start": p.stim_start, "stim_end": p.stim_end}


def _morphology(raw, where, base_dir):
    table = fields.table(raw, where, optional=("file", "sections", "replace_axon", "nseg_length"))
    if ("file" in table) == ("sections" in table):
        raise where.error(None, "give either 'file' (SWC or ASC) or 'sections' (inline cylinders)")
    replace_axon = table.get("replace_axon", False)
    if not isinstance(replace_axon, bool):
        raise where.error("replace_axon", f"expected true or false, found {fields.show(replace_axon)}")
    nseg_length = fields.number(table, where, "nseg_length", above=0) if "nseg_length" in table else 40.0
    if "file" in table:
        path = path_of(table["file"], where, "file", base_dir)
        if not os.path.isfile(path):
            raise where.error("file", f"morphology file not found: {path}")
        if os.path.splitext(path)[1].lower() not in (".swc", ".asc"):
            raise where.error("file", f"expected an .swc or .asc file, found {os.path.basename(path)}")
        _check_morphology_file(path, where)
        return Morphology(file=path, replace_axon=replace_axon, nseg_length=nseg_length)
    sections = []
    names = set()
    if not isinstance(table["sections"], list) or not table["sections"]:
        raise where.error("sections", "expected a non-empty list of sections")
    for i, entry in enumerate(table["sections"]):
        w = where / "sections" / i
        t = fields.table(entry, w, required=("name", "sectionlist", "length", "diameter"), optional=("parent",))
        name, sectionlist, parent = t["name"], t["sectionlist"], t.get("parent", "")
        if not isinstance(name, str) or not name.isidentifier() or name in names:
            raise w.error("name", f"expected a new identifier, found {fields.show(name)}")
        if sectionlist not in SECTION_LISTS[1:]:
            raise w.error("sectionlist",
                          f"expected one of {', '.join(SECTION_LISTS[1:])}, found {fields.show(sectionlist)}")
        if i == 0 and (parent or sectionlist != "somatic"):
            raise w.error(None, "the first section is the soma: sectionlist 'somatic', no parent")
        if i > 0 and parent not in names:
            raise w.error("parent", f"expected the name of an earlier section, found {fields.show(parent)}")
        sections.append(Section(name, sectionlist, fields.number(t, w, "length", above=0),
                                fields.number(t, w, "diameter", above=0), parent))
        names.add(name)
    return Morphology(sections=tuple(sections), replace_axon=replace_axon, nseg_length=nseg_length)


def _check_morphology_file(path, where):
    """A ConfigError unless ``path`` is readable text and, for SWC, lines of 7 numbers
    (id, type, x, y, z, radius, parent) or # comments: NEURON's readers stop at worse."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise where.error("file", f"cannot read the morphology file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise where.error("file", f"{path} is not a text morphology (byte 0x{err.object[err.start]:02x} at "
                                  f"offset {err.start})") from err
    if not path.lower().endswith(".swc"):
        return
    for number, line in enumerate(lines, 1):
        text = line.split("#")[0].split()
        if not text:
            continue
        try:
            values = [float(v) for v in text]
        except ValueError:
            values = []
        if len(values) != 7 or not all(map(math.isfinite, values)):
            raise where.error("file", f"{path} line {number}: expected 7 numbers (id, type, x, y, z, radius, "
                                      f"parent), found {fields.show(line.strip())}")


def _mechanisms(raw, where):
    table = fields.table(raw, where, optional=SECTION_LISTS)
    out = []
    for name, suffixes in table.items():
        if not isinstance(suffixes, list) or not all(isinstance(s, str) and s.isidentifier() for s in suffixes):
            raise where.error(name, f"expected a list of mechanism names, found {fields.show(suffixes)}")
        out.append((name, tuple(suffixes)))
    return tuple(out)


_PARAMETER_KEYS = ("param_name", "type", "sectionlist", "dist_type", "dist", "mech", "mech_param", "value",
                   "bounds", "attribute")


def _parameters(raw, where):
    if not isinstance(raw, list) or not raw:
        raise where.error(None, "expected a non-empty list of parameters")
    out, names = [], set()
    for i, entry in enumerate(raw):
        w = where / i
        t = fields.table(entry, w, required=("param_name", "type"), optional=_PARAMETER_KEYS)
        kind, name = t["type"], t["param_name"]
        if kind not in ("global", "section", "range"):
            raise w.error("type", f"expected global, section or range, found {fields.show(kind)}")
        if not isinstance(name, str) or not name.isidentifier():
            raise w.error("param_name", f"expected a NEURON name (letters, digits, _), found {fields.show(name)}")
        attribute = t.get("attribute", name)  # BluePyOpt sets param_name; mech and mech_param are descriptive
        if not isinstance(attribute, str) or not attribute.isidentifier():
            raise w.error("attribute", f"expected a NEURON name (letters, digits, _), found {fields.show(attribute)}")
        sectionlist, distribution = "", ""
        if kind != "global":
            sectionlist = t.get("sectionlist")
            if sectionlist not in SECTION_LISTS:
                raise w.error("sectionlist",
                              f"expected one of {', '.join(SECTION_LISTS)}, found {fields.show(sectionlist)}")
            dist_type = t.get("dist_type", "uniform")
            if dist_type != "uniform":
                distribution = t.get("dist", "")
                if not isinstance(distribution, str) or not distribution:
                    raise w.error("dist", f"dist_type {dist_type!r} needs a 'dist' expression in {{distance}} "
                                          "and {value}")
                check_distribution(distribution, w)
            name = f"{name}.{sectionlist}"
        if ("value" in t) == ("bounds" in t):
            raise w.error(None, "give either 'value' (frozen) or 'bounds' [low, high] (free)")
        if "value" in t:
            p = ModelParameter(name, kind, attribute, sectionlist, distribution, value=fields.number(t, w, "value"))
        else:
            b = t["bounds"]
            if (not isinstance(b, list) or len(b) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
                raise w.error("bounds", f"expected [low, high], found {fields.show(b)}")
            if not all(map(fields.finite, b)) or not math.isfinite(float(b[1]) - float(b[0])):
                raise w.error("bounds", f"bounds and their span must be finite, found {fields.show(b)}")
            if not b[0] < b[1]:
                raise w.error("bounds", f"lower bound {b[0]} must be below upper bound {b[1]}")
            p = ModelParameter(name, kind, attribute, sectionlist, distribution, float(b[0]), float(b[1]))
        if name in names:
            raise w.error("param_name", f"parameter {name!r} given twice")
        names.add(name)
        out.append(p)
    if not any(math.isnan(p.value) for p in out):
        raise where.error(None, "no free parameter: give at least one with 'bounds'")
    _check_overrides(out, where)
    return tuple(out)


def _check_overrides(parameters, where):
    """Refuse a free parameter that a later fixed one sets again on an overlapping section
    list: parameters are applied in order, so the fixed value would win there in every
    evaluation and the optimiser would fit nothing (BluePyOpt's own files set fixed
    values before free ones)."""
    for i, free in enumerate(parameters):
        if free.kind == "global" or not math.isnan(free.value):
            continue
        for j in range(i + 1, len(parameters)):
            fixed = parameters[j]
            if fixed.kind == "global" or math.isnan(fixed.value) or fixed.attribute != free.attribute:
                continue
            common = _overlap(free.sectionlist, fixed.sectionlist)
            if common:
                raise (where / j).error(
                    None, f"fixed parameter {fixed.name!r} overrides free parameter {free.name!r} "
                          f"(parameters.{i}) on section list {common} in every evaluation: give the fixed one "
                          "first, or on section lists the free one does not cover")


def _overlap(a, b):
    """The section list two section lists share ('all' holds every other), or ""."""
    if a == "all":
        return b
    return a if b in ("all", a) else ""


def _protocols(raw, where, base_dir):
    if not isinstance(raw, dict) or not raw:
        raise where.error(None, "expected an object {protocol name: {stimuli, ...}}")
    out = []
    for name, spec in raw.items():
        w = where / name
        t = fields.table(spec, w, required=("stimuli",),
                   optional=("extra_recordings", "recordings", "tstop", "stim_start", "stim_end"))
        if not isinstance(t["stimuli"], list) or not t["stimuli"]:
            raise w.error("stimuli", "expected a non-empty list")
        stimuli, durations = [], []
        for i, s in enumerate(t["stimuli"]):
            stimulus, totduration = stimuli_.parse(s, w / "stimuli" / i, base_dir)
            stimuli.append(stimulus)
            if totduration is not None:
                durations.append(fields.number(s, w / "stimuli" / i, "totduration", above=0))
        tstop = fields.number(t, w, "tstop", above=0) if "tstop" in t else max(durations, default=0.0)
        if tstop <= 0:
            raise w.error("tstop", "missing: give 'tstop' or a 'totduration' in the stimuli")
        recordings = [Recording("soma", "v", locations.Location())]
        for key in ("extra_recordings", "recordings"):
            if not isinstance(t.get(key, []), list):
                raise w.error(key, f"expected a list of recordings [{{name, var, type, ...}}], found "
                                   f"{fields.show(t[key])}")
        for i, r in enumerate(t.get("extra_recordings", []) + t.get("recordings", [])):
            rw = w / "recordings" / i
            rt = fields.table(r, rw, required=("name",), optional=("var", "type", "somadistance", "seclist_name",
                                                              "location"))
            if rt["name"] == "soma":
                continue
            location = locations.parse(rt.get("location") or {k: rt[k] for k in ("type", "somadistance", "seclist_name")
                                                       if k in rt}, rw)
            if any(x.name == rt["name"] for x in recordings):
                raise rw.error("name", f"recording {rt['name']!r} given twice")
            variable = rt.get("var", "v")
            if not isinstance(variable, str) or not variable.isidentifier():
                raise rw.error("var", f"expected a NEURON range variable (v, cai, ...), found {fields.show(variable)}")
            recordings.append(Recording(rt["name"], variable, location))
        first = stimuli[0]
        stim_start = fields.number(t, w, "stim_start", minimum=0) if "stim_start" in t else first.delay
        stim_end = fields.number(t, w, "stim_end", above=0) if "stim_end" in t else first.delay + first.duration
        if stim_end <= stim_start:
            raise w.error("stim_end", f"stimulus window [{stim_start}, {stim_end}] is empty")
        out.append(Protocol(name, tuple(stimuli), tuple(recordings), tstop, stim_start, stim_end))
    return tuple(out)


_FEATURE_KEYS = ("mean", "std", "stim_start", "stim_end", "threshold", "settings")
_FEATURES_FORM = "{protocol: {recording: {eFEL feature: [mean, std]}}}"


def features_document(value, where, base_dir):
    """(the features object, the Where of its fields) of ``features``: the object
    itself, or the JSON file it names (a path relative to the config's folder)."""
    if not isinstance(value, str):
        return value, where
    path = path_of(value, where, None, base_dir)
    return fields.read_json(path, what=f"the features file named by {where.source}"), fields.Where(
        os.path.relpath(path))


def raw_features(problem, base_dir):
    """The features object of an already valid ``problem`` table ('cell' or
    'bluepyopt') as written, its order and forms kept (for ``hpcopt targets``)."""
    if "cell" in problem:
        return features_document(problem["cell"]["features"], fields.Where("problem.cell.features"), base_dir)[0]
    return fields.read_json(path_of(problem["bluepyopt"]["features"], fields.Where("problem.bluepyopt"),
                                    "features", base_dir), what="the features file")


def _features(raw, where, protocols):
    """Features as in BluePyOpt's features.json; without a target yet, a feature is
    listed by name (a recording's list of names), as null, or as an object without
    mean and std."""
    by_name = {p.name: p for p in protocols}
    if not isinstance(raw, dict) or not raw:
        raise where.error(None, f"expected {_FEATURES_FORM}")
    known = efel_feature_names()
    out = []
    for protocol_name, recordings in raw.items():
        if protocol_name not in by_name:
            raise where.error(protocol_name, f"no such protocol; protocols: {', '.join(by_name)}")
        protocol = by_name[protocol_name]
        names = {r.name for r in protocol.recordings}
        if not isinstance(recordings, dict):
            raise (where / protocol_name).error(None, "expected {recording: {feature: [mean, std]}}")
        for recording, features in recordings.items():
            w = where / protocol_name / recording
            if recording not in names:
                raise w.error(None, f"no such recording in protocol {protocol_name!r}; recordings: {', '.join(names)}")
            if isinstance(features, list) and features and all(isinstance(n, str) for n in features):
                features = dict.fromkeys(features)  # names only: no targets yet
            if not isinstance(features, dict) or not features:
                raise w.error(None, "expected {eFEL feature: [mean, std]} (or a list of eFEL feature names, "
                                    "without targets yet)")
            for efel_name, spec in features.items():
                if known is not None and efel_name not in known:
                    raise (w / efel_name).error(None, "unknown eFEL feature (see efel.get_feature_names())")
                out.append(_feature(protocol, recording, efel_name, spec, w / efel_name))
    return tuple(out)


def _feature(protocol, recording, efel_name, spec, where):
    if spec is None:
        spec = {}
    if isinstance(spec, list):
        if len(spec) != 2:
            raise where.error(None, f"expected [mean, std], found {fields.show(spec)}")
        spec = {"mean": spec[0], "std": spec[1]}
    t = fields.table(spec, where, optional=_FEATURE_KEYS)
    if ("mean" in t) != ("std" in t):
        raise where.error(None, "give both 'mean' and 'std', or neither (a feature without a target yet)")
    mean = std = math.nan
    if "mean" in t:
        mean = fields.number(t, where, "mean")
        std = fields.number(t, where, "std")
        if std <= 0:
            raise where.error("std", f"must be > 0, found {fields.show(std)}")
    default = SOMA_THRESHOLD if recording == "soma" else DENDRITE_THRESHOLD
    threshold = fields.number(t, where, "threshold") if "threshold" in t else default
    start = fields.number(t, where, "stim_start", minimum=0) if "stim_start" in t else protocol.stim_start
    end = fields.number(t, where, "stim_end", above=0) if "stim_end" in t else protocol.stim_end
    if end <= start:
        raise where.error("stim_end", f"feature window [{start:g}, {end:g}] is empty (stim_end <= stim_start)")
    settings = t.get("settings", {})
    if not isinstance(settings, dict):
        raise where.error("settings", "expected {eFEL setting: value}")
    for key, value in settings.items():
        if not isinstance(value, (int, float, str)):
            raise where.error(f"settings.{key}", f"expected a number or a string, found {fields.show(value)}")
    return Feature(protocol.name, recording, efel_name, mean, std, start, end, threshold,
                   tuple(sorted(settings.items())))


def efel_feature_names():
    """The names eFEL knows, or None if eFEL is not installed (checked later, then)."""
    try:
        import efel
    except ImportError:
        return None
    return set(efel.get_feature_names())


def _simulation(raw, where):
    t = fields.table(raw, where, optional=("cvode", "dt", "atol", "max_steps", "wall_limit"))
    kwargs = {}
    if "cvode" in t:
        if not isinstance(t["cvode"], bool):
            raise where.error("cvode", f"expected true or false, found {fields.show(t['cvode'])}")
        kwargs["cvode"] = t["cvode"]
    if "dt" in t:
        kwargs["dt"] = fields.number(t, where, "dt", above=0)
    if "atol" in t:
        kwargs["atol"] = fields.number(t, where, "atol", minimum=0)
    if "max_steps" in t:
        kwargs["max_steps"] = fields.number(t, where, "max_steps", minimum=1, integer=True)
    if "wall_limit" in t:
        kwargs["wall_limit"] = fields.number(t, where, "wall_limit", above=0)
    return Simulation(**kwargs)


@dataclass(frozen=True)
class CellProblem:
    """``config.problem`` for a cell model (the counterpart of schema.FunctionProblem)."""

    model: CellModel
    ignored: str = ""  # what the files held that NEURON does not use (BluePyOpt's keys for Arbor), one line

    @property
    def parameters(self):
        return self.model.config_parameters()

    @property
    def objectives(self):
        return self.model.objectives

    @property
    def features(self):
        return self.model.objectives

    @property
    def penalty(self):
        return self.model.penalty

    @property
    def untargeted(self):
        return self.model.untargeted

    def resolved(self):
        return {"cell": resolved(self.model)}


def problem(raw, where, base_dir):
    """The CellProblem of a ``problem`` table holding 'cell' or 'bluepyopt'."""
    table = fields.table(raw, where, optional=("cell", "bluepyopt"))
    if len(table) != 1:
        raise where.error(None, "give one of 'function', 'cell', 'bluepyopt' or 'bluepyopt_evaluator'")
    if "cell" in table:
        return CellProblem(parse(table["cell"], where / "cell", base_dir))
    cell, wheres = bluepyopt.from_bluepyopt(table["bluepyopt"], where / "bluepyopt", base_dir)
    ignored = wheres.pop("ignored", "")
    return CellProblem(parse(cell, where / "bluepyopt", base_dir, wheres), ignored)
