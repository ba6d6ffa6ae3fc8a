"""Cell-model problems: the config of a NEURON cell fitted to eFEL features.

Pure data and validation, no NEURON or eFEL import (those live in nrn.py and
features.py). Two inputs give the same typed ``CellModel``:

- ``problem.cell``: one JSON object in BluePyOpt's vocabulary (mechanisms per
  section list, parameters as in parameters.json, protocols as in
  protocols.json, features as in features.json), with hpcopt's extensions
  (inline geometry, ramps, waveforms, synaptic input, per-feature eFEL settings);
- ``problem.bluepyopt``: paths to BluePyOpt L5PC-style files, read with that
  example's conventions and turned into the first form.

The resolved config stored in the run file is always the first form, with
absolute paths, so a run file says exactly what was fitted.
"""

import math
import os
from dataclasses import dataclass, field

from .config import Parameter, _number, _show, _table, _Where, read_json

SECTION_LISTS = ("all", "somatic", "axonal", "basal", "apical")
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
class Location:
    """'soma' (soma(0.5)), or the point at ``distance`` um from the soma along ``sectionlist``."""

    kind: str = "soma"  # soma | somadistance
    sectionlist: str = ""
    distance: float = 0.0


@dataclass(frozen=True)
class Stimulus:
    kind: str  # step | ramp | waveform | synapse
    location: Location
    delay: float = 0.0
    duration: float = 0.0
    amplitude: float = 0.0
    amplitude_end: float = 0.0  # ramp
    times: tuple = ()  # waveform (ms)
    currents: tuple = ()  # waveform (nA)
    synapse: tuple = ()  # (("mechanism", "ExpSyn"), ("tau", 2.0), ...) point process and its parameters
    start: float = 0.0  # NetStim
    interval: float = 10.0
    number: int = 0
    weight: float = 0.0


@dataclass(frozen=True)
class Recording:
    name: str
    variable: str
    location: Location


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
    """One objective: eFEL feature ``efel_name`` of a recording in a protocol."""

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

    def config_parameters(self):
        """The parameters as config.Parameters (free ones with bounds)."""
        return tuple(Parameter(p.name, p.lower, p.upper, p.value) for p in self.parameters)


# ---------------------------------------------------------------- parsing


def parse(raw, where, base_dir, wheres=None):
    """A CellModel from the ``problem.cell`` object ``raw``.

    wheres: {part: _Where} naming the file a part came from (BluePyOpt's files),
    so that messages name that file rather than the config.
    """
    table = _table(
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
        mod_dir = _path(table["mod_dir"], where, "mod_dir", base_dir)
        if not os.path.isdir(mod_dir):
            raise where.error("mod_dir", f"no such directory: {mod_dir}")
        if not any(name.endswith(".mod") for name in os.listdir(mod_dir)):
            raise where.error("mod_dir", f"no .mod file in {mod_dir}")
    parameters = _parameters(table["parameters"], part("parameters"))
    protocols = _protocols(table["protocols"], part("protocols"), base_dir)
    features = _features(table["features"], part("features"), protocols)
    simulation = _simulation(table.get("simulation", {}), where / "simulation")
    penalty = _number(table, where, "penalty", above=0) if "penalty" in table else 250.0
    trace_check = table.get("trace_check", False)
    if not isinstance(trace_check, bool):
        raise where.error("trace_check", f"expected true or false, found {_show(trace_check)}")
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
        entry = {"mean": f.mean, "std": f.std, "stim_start": f.stim_start, "stim_end": f.stim_end,
                 "threshold": f.threshold}
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


def _resolved_location(location):
    if location.kind == "soma":
        return {"type": "soma"}
    return {"type": "somadistance", "seclist_name": location.sectionlist, "somadistance": location.distance}


def _resolved_protocol(p):
    stimuli = []
    for s in p.stimuli:
        entry = {"type": s.kind, "location": _resolved_location(s.location)}
        if s.kind in ("step", "ramp"):
            entry.update(delay=s.delay, duration=s.duration, amp=s.amplitude)
            if s.kind == "ramp":
                entry["amp_end"] = s.amplitude_end
        elif s.kind == "waveform":
            entry.update(times=list(s.times), currents=list(s.currents))
        else:
            entry.update(synapse=dict(s.synapse), start=s.start, interval=s.interval, number=s.number,
                         weight=s.weight)
        stimuli.append(entry)
    recordings = [{"name": r.name, "var": r.variable, "location": _resolved_location(r.location)}
                  for r in p.recordings]
    return {"stimuli": stimuli, "recordings": recordings, "tstop": p.tstop,
            "stim_start": p.stim_start, "stim_end": p.stim_end}


def _path(value, where, key, base_dir):
    if not isinstance(value, str) or not value:
        raise where.error(key, f"expected a path, found {_show(value)}")
    return os.path.normpath(os.path.join(base_dir or ".", os.path.expanduser(value)))


def _morphology(raw, where, base_dir):
    table = _table(raw, where, optional=("file", "sections", "replace_axon", "nseg_length"))
    if ("file" in table) == ("sections" in table):
        raise where.error(None, "give either 'file' (SWC or ASC) or 'sections' (inline cylinders)")
    replace_axon = table.get("replace_axon", False)
    if not isinstance(replace_axon, bool):
        raise where.error("replace_axon", f"expected true or false, found {_show(replace_axon)}")
    nseg_length = _number(table, where, "nseg_length", above=0) if "nseg_length" in table else 40.0
    if "file" in table:
        path = _path(table["file"], where, "file", base_dir)
        if not os.path.isfile(path):
            raise where.error("file", f"morphology file not found: {path}")
        if os.path.splitext(path)[1].lower() not in (".swc", ".asc"):
            raise where.error("file", f"expected an .swc or .asc file, found {os.path.basename(path)}")
        return Morphology(file=path, replace_axon=replace_axon, nseg_length=nseg_length)
    sections = []
    names = set()
    if not isinstance(table["sections"], list) or not table["sections"]:
        raise where.error("sections", "expected a non-empty list of sections")
    for i, entry in enumerate(table["sections"]):
        w = where / "sections" / i
        t = _table(entry, w, required=("name", "sectionlist", "length", "diameter"), optional=("parent",))
        name, sectionlist, parent = t["name"], t["sectionlist"], t.get("parent", "")
        if not isinstance(name, str) or not name.isidentifier() or name in names:
            raise w.error("name", f"expected a new identifier, found {_show(name)}")
        if sectionlist not in SECTION_LISTS[1:]:
            raise w.error("sectionlist", f"expected one of {', '.join(SECTION_LISTS[1:])}, found {_show(sectionlist)}")
        if i == 0 and (parent or sectionlist != "somatic"):
            raise w.error(None, "the first section is the soma: sectionlist 'somatic', no parent")
        if i > 0 and parent not in names:
            raise w.error("parent", f"expected the name of an earlier section, found {_show(parent)}")
        sections.append(Section(name, sectionlist, _number(t, w, "length", above=0),
                                _number(t, w, "diameter", above=0), parent))
        names.add(name)
    return Morphology(sections=tuple(sections), replace_axon=replace_axon, nseg_length=nseg_length)


def _mechanisms(raw, where):
    table = _table(raw, where, optional=SECTION_LISTS)
    out = []
    for name, suffixes in table.items():
        if not isinstance(suffixes, list) or not all(isinstance(s, str) and s.isidentifier() for s in suffixes):
            raise where.error(name, f"expected a list of mechanism names, found {_show(suffixes)}")
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
        t = _table(entry, w, required=("param_name", "type"), optional=_PARAMETER_KEYS)
        kind, name = t["type"], t["param_name"]
        if kind not in ("global", "section", "range"):
            raise w.error("type", f"expected global, section or range, found {_show(kind)}")
        if not isinstance(name, str) or not name:
            raise w.error("param_name", f"expected a name, found {_show(name)}")
        attribute = t.get("attribute", name)  # BluePyOpt sets param_name; mech and mech_param are descriptive
        sectionlist, distribution = "", ""
        if kind != "global":
            sectionlist = t.get("sectionlist")
            if sectionlist not in SECTION_LISTS:
                raise w.error("sectionlist", f"expected one of {', '.join(SECTION_LISTS)}, found {_show(sectionlist)}")
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
            p = ModelParameter(name, kind, attribute, sectionlist, distribution, value=_number(t, w, "value"))
        else:
            b = t["bounds"]
            if (not isinstance(b, list) or len(b) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
                raise w.error("bounds", f"expected [low, high], found {_show(b)}")
            if not b[0] < b[1]:
                raise w.error("bounds", f"lower bound {b[0]} must be below upper bound {b[1]}")
            p = ModelParameter(name, kind, attribute, sectionlist, distribution, float(b[0]), float(b[1]))
        if name in names:
            raise w.error("param_name", f"parameter {name!r} given twice")
        names.add(name)
        out.append(p)
    if not any(math.isnan(p.value) for p in out):
        raise where.error(None, "no free parameter: give at least one with 'bounds'")
    return tuple(out)


def distribution_function(expression):
    """(distance, value) -> float for a BluePyOpt distance expression.

    BluePyOpt formats the numbers into the string and evaluates it; substituting
    variables gives the same doubles (it formats with %.17g). Only ``math`` is visible.
    """
    code = compile(expression.replace("{distance}", "(_distance)").replace("{value}", "(_value)"),
                   "<distribution>", "eval")
    namespace = {"__builtins__": {}, "math": math}

    def evaluate(distance, value):
        return float(eval(code, namespace, {"_distance": distance, "_value": value}))

    return evaluate


def check_distribution(expression, where):
    try:
        f = distribution_function(expression)
        for distance in (0.0, 100.0):
            result = f(distance, 1.0)
            if not math.isfinite(result):
                raise ValueError(f"gives {result} at distance {distance}")
    except Exception as err:  # any error of a user expression is a config error
        raise where.error("dist", f"expression {expression!r} does not evaluate: {type(err).__name__}: {err}") \
            from err


def _location(raw, where):
    if raw in (None, "soma"):
        return Location()
    t = _table(raw, where, required=("type",), optional=("seclist_name", "somadistance"))
    if t["type"] == "soma":
        return Location()
    if t["type"] != "somadistance":
        raise where.error("type", f"expected soma or somadistance, found {_show(t['type'])}")
    for key in ("seclist_name", "somadistance"):
        if key not in t:
            raise where.error(key, "missing (required for somadistance)")
    if t["seclist_name"] not in SECTION_LISTS:
        raise where.error("seclist_name", f"expected one of {', '.join(SECTION_LISTS)}")
    return Location("somadistance", t["seclist_name"], _number(t, where, "somadistance", minimum=0))


def _stimulus(raw, where, base_dir):
    kind = raw.get("type", "step") if isinstance(raw, dict) else None
    common = ("type", "location")
    if kind in ("step", "holding"):
        t = _table(raw, where, required=("delay", "amp", "duration"), optional=common + ("totduration",))
        return Stimulus("step", _location(t.get("location"), where / "location"),
                        delay=_number(t, where, "delay", minimum=0), duration=_number(t, where, "duration", minimum=0),
                        amplitude=_number(t, where, "amp")), t.get("totduration")
    if kind == "ramp":
        t = _table(raw, where, required=("delay", "amp", "amp_end", "duration"), optional=common + ("totduration",))
        return Stimulus("ramp", _location(t.get("location"), where / "location"),
                        delay=_number(t, where, "delay", minimum=0), duration=_number(t, where, "duration", above=0),
                        amplitude=_number(t, where, "amp"), amplitude_end=_number(t, where, "amp_end")), \
            t.get("totduration")
    if kind == "waveform":
        t = _table(raw, where, optional=common + ("file", "times", "currents", "totduration"))
        if "file" in t:
            path = _path(t["file"], where, "file", base_dir)
            try:
                rows = [line.split() for line in open(path) if line.strip() and not line.startswith("#")]
                times = tuple(float(r[0]) for r in rows)
                currents = tuple(float(r[1]) for r in rows)
            except (OSError, ValueError, IndexError) as err:
                raise where.error("file", f"cannot read a two-column (ms, nA) waveform from {path}: {err}") from err
        elif "times" in t and "currents" in t:
            times, currents = tuple(map(float, t["times"])), tuple(map(float, t["currents"]))
        else:
            raise where.error(None, "a waveform needs 'file' (two columns: ms, nA) or 'times' and 'currents'")
        if len(times) < 2 or len(times) != len(currents) or any(b <= a for a, b in zip(times, times[1:])):
            raise where.error(None, "waveform times must be increasing, at least 2, one current each")
        return Stimulus("waveform", _location(t.get("location"), where / "location"), delay=times[0],
                        duration=times[-1] - times[0], times=times, currents=currents), t.get("totduration")
    if kind == "synapse":
        t = _table(raw, where, required=("start", "number", "weight"),
                   optional=common + ("synapse", "interval", "totduration"))
        synapse = t.get("synapse", {"mechanism": "ExpSyn"})
        if not isinstance(synapse, dict) or not isinstance(synapse.get("mechanism"), str):
            raise where.error("synapse", "expected {\"mechanism\": point process name, parameter: value, ...}")
        number = _number(t, where, "number", minimum=1, integer=True)
        interval = _number(t, where, "interval", above=0) if "interval" in t else 10.0
        start = _number(t, where, "start", minimum=0)
        return Stimulus("synapse", _location(t.get("location"), where / "location"),
                        delay=start, duration=interval * number,
                        synapse=tuple(sorted(synapse.items(), key=lambda kv: kv[0] != "mechanism")),
                        start=start, interval=interval, number=number,
                        weight=_number(t, where, "weight", minimum=0)), t.get("totduration")
    raise where.error("type", f"expected step, ramp, waveform or synapse, found {_show(kind)}")


def _protocols(raw, where, base_dir):
    if not isinstance(raw, dict) or not raw:
        raise where.error(None, "expected an object {protocol name: {stimuli, ...}}")
    out = []
    for name, spec in raw.items():
        w = where / name
        t = _table(spec, w, required=("stimuli",),
                   optional=("extra_recordings", "recordings", "tstop", "stim_start", "stim_end"))
        if not isinstance(t["stimuli"], list) or not t["stimuli"]:
            raise w.error("stimuli", "expected a non-empty list")
        stimuli, durations = [], []
        for i, s in enumerate(t["stimuli"]):
            stimulus, totduration = _stimulus(s, w / "stimuli" / i, base_dir)
            stimuli.append(stimulus)
            if totduration is not None:
                durations.append(_number(s, w / "stimuli" / i, "totduration", above=0))
        tstop = _number(t, w, "tstop", above=0) if "tstop" in t else max(durations, default=0.0)
        if tstop <= 0:
            raise w.error("tstop", "missing: give 'tstop' or a 'totduration' in the stimuli")
        recordings = [Recording("soma", "v", Location())]
        for i, r in enumerate(t.get("extra_recordings", []) + t.get("recordings", [])):
            rw = w / "recordings" / i
            rt = _table(r, rw, required=("name",), optional=("var", "type", "somadistance", "seclist_name",
                                                              "location"))
            if rt["name"] == "soma":
                continue
            location = _location(rt.get("location") or {k: rt[k] for k in ("type", "somadistance", "seclist_name")
                                                       if k in rt}, rw)
            if any(x.name == rt["name"] for x in recordings):
                raise rw.error("name", f"recording {rt['name']!r} given twice")
            recordings.append(Recording(rt["name"], rt.get("var", "v"), location))
        first = stimuli[0]
        stim_start = _number(t, w, "stim_start", minimum=0) if "stim_start" in t else first.delay
        stim_end = _number(t, w, "stim_end", above=0) if "stim_end" in t else first.delay + first.duration
        if stim_end <= stim_start:
            raise w.error("stim_end", f"stimulus window [{stim_start}, {stim_end}] is empty")
        out.append(Protocol(name, tuple(stimuli), tuple(recordings), tstop, stim_start, stim_end))
    return tuple(out)


_FEATURE_KEYS = ("mean", "std", "stim_start", "stim_end", "threshold", "settings")


def _features(raw, where, protocols):
    by_name = {p.name: p for p in protocols}
    if not isinstance(raw, dict) or not raw:
        raise where.error(None, "expected {protocol: {recording: {eFEL feature: [mean, std]}}}")
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
            if not isinstance(features, dict) or not features:
                raise w.error(None, "expected {eFEL feature: [mean, std]}")
            for efel_name, spec in features.items():
                fw = w / efel_name
                if known is not None and efel_name not in known:
                    raise fw.error(None, "unknown eFEL feature (see efel.get_feature_names())")
                if isinstance(spec, list):
                    if len(spec) != 2:
                        raise fw.error(None, f"expected [mean, std], found {_show(spec)}")
                    spec = {"mean": spec[0], "std": spec[1]}
                t = _table(spec, fw, required=("mean", "std"), optional=_FEATURE_KEYS)
                mean = _number(t, fw, "mean")
                std = _number(t, fw, "std")
                if std <= 0:
                    raise fw.error("std", f"must be > 0, found {_show(std)}")
                default = SOMA_THRESHOLD if recording == "soma" else DENDRITE_THRESHOLD
                threshold = _number(t, fw, "threshold") if "threshold" in t else default
                start = _number(t, fw, "stim_start", minimum=0) if "stim_start" in t else protocol.stim_start
                end = _number(t, fw, "stim_end", above=0) if "stim_end" in t else protocol.stim_end
                settings = t.get("settings", {})
                if not isinstance(settings, dict):
                    raise fw.error("settings", "expected {eFEL setting: value}")
                out.append(Feature(protocol_name, recording, efel_name, mean, std, start, end, threshold,
                                   tuple(sorted(settings.items()))))
    return tuple(out)


def efel_feature_names():
    """The names eFEL knows, or None if eFEL is not installed (checked later, then)."""
    try:
        import efel
    except ImportError:
        return None
    return set(efel.get_feature_names())


def _simulation(raw, where):
    t = _table(raw, where, optional=("cvode", "dt", "atol", "max_steps", "wall_limit"))
    kwargs = {}
    if "cvode" in t:
        if not isinstance(t["cvode"], bool):
            raise where.error("cvode", f"expected true or false, found {_show(t['cvode'])}")
        kwargs["cvode"] = t["cvode"]
    if "dt" in t:
        kwargs["dt"] = _number(t, where, "dt", above=0)
    if "atol" in t:
        kwargs["atol"] = _number(t, where, "atol", minimum=0)
    if "max_steps" in t:
        kwargs["max_steps"] = _number(t, where, "max_steps", minimum=1, integer=True)
    if "wall_limit" in t:
        kwargs["wall_limit"] = _number(t, where, "wall_limit", above=0)
    return Simulation(**kwargs)


# ---------------------------------------------------------------- BluePyOpt L5PC-style files


_BLUEPYOPT_KEYS = ("morphology", "mechanisms", "parameters", "protocols", "features")


def from_bluepyopt(raw, where, base_dir):
    """``problem.bluepyopt`` (paths to L5PC-style files) as a ``problem.cell`` object.

    Conventions of BluePyOpt's L5PC example: the soma recording is 'soma', the
    stimulus window of a protocol is [delay, delay + duration] of its first
    stimulus, except for 'bAP' where it ends at totduration; spike threshold
    -20 mV at the soma, -55 mV elsewhere.
    """
    t = _table(raw, where, required=_BLUEPYOPT_KEYS, optional=("replace_axon", "mod_dir", "nseg_length",
                                                               "simulation", "penalty"))
    files, wheres = {}, {}
    for key in ("mechanisms", "parameters", "protocols", "features"):
        path = _path(t[key], where, key, base_dir)
        wheres[key] = _Where(os.path.relpath(path))
        files[key] = read_json(path, what=f"the {key} file named by {where.source}")
    protocols = {}
    if not isinstance(files["protocols"], dict):
        raise where.error("protocols", "expected an object {protocol name: {stimuli, extra_recordings}}")
    for name, spec in files["protocols"].items():
        spec = dict(spec) if isinstance(spec, dict) else spec
        if isinstance(spec, dict) and isinstance(spec.get("stimuli"), list) and spec["stimuli"]:
            first = spec["stimuli"][0]
            if name == "bAP" and isinstance(first, dict) and "totduration" in first:
                spec.setdefault("stim_end", first["totduration"])
        protocols[name] = spec
    cell = {
        "morphology": {"file": _path(t["morphology"], where, "morphology", base_dir),
                       "replace_axon": t.get("replace_axon", True)},
        "mechanisms": files["mechanisms"],
        "parameters": files["parameters"],
        "protocols": protocols,
        "features": files["features"],
    }
    if "nseg_length" in t:
        cell["morphology"]["nseg_length"] = t["nseg_length"]
    if "mod_dir" in t:
        cell["mod_dir"] = _path(t["mod_dir"], where, "mod_dir", base_dir)
    for key in ("simulation", "penalty"):
        if key in t:
            cell[key] = t[key]
    return cell, wheres


@dataclass(frozen=True)
class CellProblem:
    """``config.problem`` for a cell model (the counterpart of config.FunctionProblem)."""

    model: CellModel

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

    def resolved(self):
        return {"cell": resolved(self.model)}

    def prepare(self):
        """Compile the model's own mechanisms (rank 0, before the others load them)."""
        if self.model.mod_dir:
            from . import nrn

            nrn.compiled_mechanisms(self.model.mod_dir)

    def evaluator(self, problem, comm=None):
        from .cellevaluator import CellEvaluator

        return CellEvaluator(problem, self.model, comm)


def problem(raw, where, base_dir):
    """The CellProblem of a ``problem`` table holding 'cell' or 'bluepyopt'."""
    table = _table(raw, where, optional=("cell", "bluepyopt"))
    if len(table) != 1:
        raise where.error(None, "give one of 'function', 'cell' or 'bluepyopt'")
    if "cell" in table:
        return CellProblem(parse(table["cell"], where / "cell", base_dir))
    cell, wheres = from_bluepyopt(table["bluepyopt"], where / "bluepyopt", base_dir)
    return CellProblem(parse(cell, where / "bluepyopt", base_dir, wheres))
