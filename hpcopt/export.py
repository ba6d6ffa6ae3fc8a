"""``hpcopt export``: one individual of a run as parameters, or as a standalone
NEURON model (hoc or Python) that needs no hpcopt.

The model is described from the cell as hpcopt builds it (nrn.Cell, in this
process): the same morphology (inline sections, or the file through Import3d
with BluePyOpt's axon replacement), nseg, mechanisms, and every parameter in
config order, a distance-dependent one as one concrete value per segment
(computed with the distances NEURON gives this cell, by the run's own
expression). The Python file also runs the fit's protocols exactly as hpcopt
runs them (same stimuli, the same integrator steps), so its traces score what
the run file stores for that individual.
"""

import json
import os
import pprint
import textwrap

from . import __version__
from . import status as runstatus
from .errors import ConfigError, RunFileError

LISTS = ("all", "somatic", "axonal", "basal", "apical")
AXON_STUB = 60.0  # um, BluePyOpt's replacement axon: two sections of half this length


def write(path, target, kind, rank=1):
    """Write individual ``rank`` (1: the best) of the run file ``path`` to ``target``
    as kind 'json', 'hoc' or 'python'; returns a one-line summary."""
    run = runstatus.read(path)
    run.require_generations()
    chosen = individual(run, rank)
    if kind == "json":
        text = json.dumps(chosen["parameters"], indent=2) + "\n"
    else:
        if not run.is_cell:
            raise RunFileError(f"{path}: a function problem has no cell to export as {kind}; use --json")
        model = describe(run, chosen)
        text = hoc(model) if kind == "hoc" else python(model, os.path.basename(target))
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise ConfigError(target, f"cannot write: {err.strerror}") from err
    return (f"{target}: individual {rank} of {chosen['of']} by score (generation {chosen['generation']}, "
            f"individual {chosen['index']}, score {chosen['score']:.6g}, {chosen['status']})")


def individual(run, rank):
    """The ``rank``-th best evaluation (1-based; ties: earlier generation, then row):
    {generation, index, score, status, parameters: {name: value}, objectives: {name: value}, rank, of}."""
    table = run.table()
    if not 1 <= rank <= len(table):
        raise RunFileError(f"{run.path}: no individual {rank}: the run has {len(table)} evaluations "
                           f"(--rank 1 to {len(table)})")
    i = table.order()[rank - 1]
    return {
        "generation": int(table.generation[i]),
        "index": int(table.row[i]),
        "score": float(table.scores[i]),
        "status": runstatus.STATUS_NAMES[int(table.status[i])],
        "parameters": dict(zip(run.parameter_names, map(float, table.X[i]))),
        "objectives": dict(zip(run.objective_names, map(float, table.F[i]))),
        "rank": rank,
        "of": len(table),
    }


# ---------------------------------------------------------------- the model, as data


def describe(run, chosen):
    """Everything the exported files need, as plain Python data (numbers are the
    exact doubles hpcopt uses)."""
    from .cell import distribution_function

    model, evaluator = rebuild(run)
    cell = evaluator.cell
    h = cell.h
    values = dict(evaluator.frozen)
    values.update(chosen["parameters"])

    morphology = {"nseg_length": model.morphology.nseg_length, "replace_axon": model.morphology.replace_axon}
    if model.morphology.file:
        morphology["file"] = model.morphology.file
        if model.morphology.replace_axon:
            morphology["axon_diameters"] = [float(sec.diam) for sec in cell.lists["axonal"]]
    else:
        morphology["sections"] = [
            (s.name, s.sectionlist, s.length, s.diameter, s.parent) for s in model.morphology.sections]

    parameters = []
    for p in model.parameters:
        value = float(values[p.name])
        if p.kind == "global":
            parameters.append(("global", p.attribute, "", value, p.name))
        elif p.kind == "section" or not p.distribution:
            parameters.append((p.kind, p.attribute, p.sectionlist, value, p.name))
        else:
            f = distribution_function(p.distribution)
            h.distance(0, 0.5, sec=cell.soma)
            segments = [(section_name(seg.sec), float(seg.x), f(h.distance(1, seg.x, sec=seg.sec), value))
                        for sec in cell.lists[p.sectionlist] for seg in sec]
            parameters.append(("segments", p.attribute, p.sectionlist, segments,
                               f"{p.name} = {value!r}, {p.distribution}"))

    protocols = []
    for protocol in model.protocols:
        stimuli = []
        for s in protocol.stimuli:
            sec, x = cell.location(s.location)
            where = {"section": section_name(sec), "x": float(x)}
            if s.kind == "step":
                stimuli.append({"type": "step", **where, "delay": s.delay, "dur": s.duration, "amp": s.amplitude})
            elif s.kind == "ramp":
                end = s.delay + s.duration
                stimuli.append({"type": "play", **where, "delay": 0.0, "dur": 1e9,
                                "times": [0.0, s.delay, s.delay, end, end, max(protocol.tstop, end)],
                                "amps": [0.0, 0.0, s.amplitude, s.amplitude_end, 0.0, 0.0]})
            elif s.kind == "waveform":
                stimuli.append({"type": "play", **where, "delay": s.times[0], "dur": s.times[-1] - s.times[0],
                                "times": list(s.times), "amps": list(s.currents)})
            else:
                stimuli.append({"type": "synapse", **where, "synapse": dict(s.synapse), "start": s.start,
                                "interval": s.interval, "number": s.number, "weight": s.weight})
        recordings = []
        for r in protocol.recordings:
            sec, x = cell.location(r.location)
            recordings.append({"name": r.name, "var": r.variable, "section": section_name(sec), "x": float(x)})
        protocols.append({"name": protocol.name, "tstop": protocol.tstop, "stimuli": stimuli,
                          "recordings": recordings})

    simulation = model.simulation
    return {
        "source": os.path.abspath(run.path),
        "chosen": chosen,
        "versions": {k: v for k, v in run.attrs.items() if k in ("hpcopt_version", "neuron_version",
                                                                  "efel_version")},
        "morphology": morphology,
        "mechanisms": [(name, list(suffixes)) for name, suffixes in model.mechanisms],
        "mod_dir": model.mod_dir,
        "library": _library(model.mod_dir),
        "parameters": parameters,
        "protocols": protocols,
        "simulation": {"cvode": simulation.cvode, "dt": simulation.dt, "atol": simulation.atol},
    }


def rebuild(run):
    """(cell.CellModel, evaluator) of a cell run's stored config, built in this
    process as a rank of the run built it (NEURON's prints go to stderr). One cell
    per process: nrn.Cell refuses a second one."""
    from . import config as configuration
    from .nrn import stdout_redirected
    from .problem import Problem

    config = configuration.parse(run.config, source=f"{run.path} (stored config)")
    problem = Problem(config)
    with stdout_redirected(2):
        problem.prepare()
        evaluator = problem.evaluator()
    return config.problem.model, evaluator


def section_name(sec):
    """A section's name without its cell's template prefix: 'soma', 'apic[12]'."""
    return sec.name().split(".", 1)[-1]


def _library(mod_dir):
    """hpcopt's compiled library of ``mod_dir`` ('' without one)."""
    if not mod_dir:
        return ""
    import glob

    from . import nrn

    directory = nrn.compiled_mechanisms(mod_dir)
    found = sorted(glob.glob(os.path.join(directory, "*", ".libs", "libnrnmech.so")) +
                   glob.glob(os.path.join(directory, "*", "libnrnmech.so")))
    return found[0] if found else ""


def _about(model, comment):
    """The header lines shared by both files."""
    c = model["chosen"]
    lines = [
        f"The fitted cell of {model['source']}:",
        f"individual {c['index']} of generation {c['generation']}, score {c['score']:.10g} ({c['status']}),",
        f"number {c['rank']} of {c['of']} evaluations by score; exported by hpcopt {__version__}"
        + (f" from a run made with NEURON {model['versions']['neuron_version']}, eFEL "
           f"{model['versions'].get('efel_version', '?')}." if "neuron_version" in model["versions"] else "."),
        "Plain NEURON: no hpcopt needed.",
    ]
    if model["mod_dir"]:
        lines += [
            "",
            f"The model's own mechanisms are the .mod files in {model['mod_dir']}:",
            "compile them with `nrnivmodl <that directory>` (NEURON then loads the result from the",
            "directory it starts in), or load hpcopt's build of them:",
            f"  {model['library']}",
        ]
    return "\n".join(comment + line if line else comment.rstrip() for line in lines)


# ---------------------------------------------------------------- hoc

_HOC_TEMPLATE = """\
begintemplate FittedCell
  public soma, dend, apic, axon, myelin, all, somatic, axonal, basal, apical, myelinated
  objref all, somatic, axonal, basal, apical, myelinated
  proc init() {
    all = new SectionList()
    somatic = new SectionList()
    axonal = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    myelinated = new SectionList()
    forall delete_section()
  }
  create soma[1], dend[1], apic[1], axon[1], myelin[1]
endtemplate FittedCell
"""


def hoc(model):
    out = [_about(model, "// "), "", '{load_file("stdrun.hoc")}']
    own = _mod_names(model["mod_dir"])
    if own and model["library"]:
        out += ["// hpcopt's build of the model's mechanisms, unless they are loaded already",
                f'if (!name_declared("{own[0]}")) {{ nrn_load_dll({_hoc_string(model["library"])}) }}']
    m = model["morphology"]
    if "file" in m:
        reader = "Import3d_SWC_read" if m["file"].lower().endswith(".swc") else "Import3d_Neurolucida3"
        out += ['{load_file("import3d.hoc")}', "", _HOC_TEMPLATE,
                "objref cell, fitted_reader, fitted_import3d",
                "cell = new FittedCell()",
                f"fitted_reader = new {reader}()",
                "fitted_reader.quiet = 1",
                f"{{fitted_reader.input({_hoc_string(m['file'])})}}",
                "fitted_import3d = new Import3d_GUI(fitted_reader, 0)",
                "{fitted_import3d.instantiate(cell)}",
                f"forsec cell.all {{ nseg = 1 + 2 * int(L / {m['nseg_length']!r}) }}"]
        if m["replace_axon"]:
            half = AXON_STUB / 2
            nseg = 1 + 2 * int(half / m["nseg_length"])
            out += ["", f"// BluePyOpt's axon replacement: two {half:g} um sections instead of the axon",
                    "forsec cell.axonal { delete_section() }", '{execute("create axon[2]", cell)}']
            for i, diameter in enumerate(m["axon_diameters"]):
                out.append(f"cell.axon[{i}] {{ L = {half!r}  nseg = {nseg}  diam = {diameter!r}  "
                           f"cell.axonal.append()  cell.all.append() }}")
            out += ['{execute("connect axon[0](0), soma[0](1)", cell)}',
                    '{execute("connect axon[1](0), axon[0](1)", cell)}']
    else:
        sections = m["sections"]
        names = ", ".join(s[0] for s in sections)
        out += ["", "begintemplate FittedCell", f"  public {names}, {', '.join(LISTS)}", f"  create {names}",
                f"  objref {', '.join(LISTS)}", "  proc init() {"]
        out += [f"    {name} = new SectionList()" for name in LISTS]
        for name, sectionlist, length, diameter, parent in sections:
            nseg = 1 + 2 * int(length / m["nseg_length"])
            out.append(f"    {name} {{ L = {length!r}  diam = {diameter!r} }}")
            if parent:
                out.append(f"    connect {name}(0), {parent}(1)")
            out.append(f"    {name} {{ nseg = {nseg}  {sectionlist}.append()  all.append() }}")
        out += ["  }", "endtemplate FittedCell", "", "objref cell", "cell = new FittedCell()"]
    out += ["", "// mechanisms"]
    for sectionlist, suffixes in model["mechanisms"]:
        out.append(f"forsec cell.{sectionlist} {{ " + "  ".join(f"insert {s}" for s in suffixes) + " }")
    out += ["", "// parameters, in the order hpcopt applies them"]
    for kind, attribute, sectionlist, value, about in model["parameters"]:
        if kind == "global":
            out.append(f"{attribute} = {value!r}  // {about}")
        elif kind in ("section", "range"):
            out.append(f"forsec cell.{sectionlist} {{ {attribute} = {value!r} }}  // {about}")
        else:
            out.append(f"// {about}: one value per segment")
            by_section = {}
            for section, x, v in value:
                by_section.setdefault(section, []).append(f"{attribute}({x!r}) = {v!r}")
            out += [f"cell.{section} {{ {'  '.join(sets)} }}" for section, sets in by_section.items()]
    s = model["simulation"]
    out += ["", "// the integrator of the fit"]
    if s["cvode"]:
        out.append("{cvode_active(1)}" + (f"\n{{cvode.atol({s['atol']!r})}}" if s["atol"] else ""))
    else:
        out += ["{cvode_active(0)}", f"dt = {s['dt']!r}", f"steps_per_ms = {1.0 / s['dt']!r}"]
    out += ["", "// The fit's protocols (each ran from stdinit() to tstop; stimuli and recordings at):"]
    for p in model["protocols"]:
        out.append(f"//   {p['name']}: tstop {p['tstop']:g} ms")
        for st in p["stimuli"]:
            detail = {k: v for k, v in st.items() if k not in ("type", "section", "x")}
            out.append(f"//     {st['type']} at cell.{st['section']}({st['x']!r}): {json.dumps(detail)}")
        for r in p["recordings"]:
            out.append(f"//     record {r['var']} at cell.{r['section']}({r['x']!r}) as {r['name']!r}")
    return "\n".join(out) + "\n"


def _mod_names(mod_dir):
    """The mechanism names (SUFFIX, POINT_PROCESS) that the .mod files of ``mod_dir`` define."""
    import glob
    import re

    names = []
    for path in sorted(glob.glob(os.path.join(mod_dir, "*.mod"))) if mod_dir else []:
        with open(path, encoding="utf-8", errors="replace") as f:
            names += re.findall(r"^\s*(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", f.read(), re.M)
    return names


def _hoc_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- Python

_PYTHON_CODE = '''

def build(library=LIBRARY):
    """Build the fitted cell; returns {section name: Section} ('soma', 'apic[12]')."""
    h.load_file("stdrun.hoc")
    if library and not all(h.name_declared(name) for name in OWN_MECHANISMS):
        h.nrn_load_dll(library)
    sections, lists = _morphology()
    for listname, suffixes in MECHANISMS:
        for sec in lists[listname]:
            for suffix in suffixes:
                sec.insert(suffix)
    for kind, attribute, listname, value, _ in PARAMETERS:
        if kind == "global":
            setattr(h, attribute, value)
        elif kind == "section":
            for sec in lists[listname]:
                setattr(sec, attribute, value)
        elif kind == "range":
            for sec in lists[listname]:
                for seg in sec:
                    setattr(seg, attribute, value)
        else:  # "segments": [(section, x, value), ...]
            for name, x, v in value:
                setattr(sections[name](x), attribute, v)
    return sections


_cell = []  # the template object of a file morphology: it owns the sections


def _morphology():
    lists = {name: [] for name in LISTS}
    if "file" not in MORPHOLOGY:
        sections = {}
        for name, listname, length, diameter, parent in MORPHOLOGY["sections"]:
            sec = h.Section(name=name)
            sec.L, sec.diam = length, diameter
            if parent:
                sec.connect(sections[parent](1.0), 0.0)
            sec.nseg = 1 + 2 * int(sec.L / MORPHOLOGY["nseg_length"])
            sections[name] = sec
            lists[listname].append(sec)
            lists["all"].append(sec)
        return sections, lists
    h.load_file("import3d.hoc")
    h(TEMPLATE)
    cell = h.FittedCell()
    _cell.append(cell)
    path = MORPHOLOGY["file"]
    reader = h.Import3d_SWC_read() if path.lower().endswith(".swc") else h.Import3d_Neurolucida3()
    reader.quiet = 1
    reader.input(path)
    h.Import3d_GUI(reader, 0).instantiate(cell)
    for sec in cell.all:
        sec.nseg = 1 + 2 * int(sec.L / MORPHOLOGY["nseg_length"])
    if MORPHOLOGY["replace_axon"]:  # BluePyOpt's: two sections of 30 um instead of the axon
        for sec in list(cell.axonal):
            h.delete_section(sec=sec)
        h.execute("create axon[2]", cell)
        for sec, diameter in zip(cell.axon, MORPHOLOGY["axon_diameters"]):
            sec.L = 30.0
            sec.nseg = 1 + 2 * int(sec.L / MORPHOLOGY["nseg_length"])
            sec.diam = diameter
            cell.axonal.append(sec=sec)
            cell.all.append(sec=sec)
        cell.axon[0].connect(cell.soma[0], 1.0, 0.0)
        cell.axon[1].connect(cell.axon[0], 1.0, 0.0)
    for name in LISTS:
        lists[name] = list(getattr(cell, name))
    return {sec.name().split(".", 1)[-1]: sec for sec in lists["all"]}, lists


def simulate(sections=None):
    """Run every protocol of the fit; returns {(protocol, recording): (t, values)}.

    sections: {name: Section} of the cell (build()'s, or of the exported hoc file's
    cell with the 'FittedCell[0].' prefix removed); None builds it.
    """
    if sections is None:
        sections = build()
    traces = {}
    for protocol in PROTOCOLS:
        traces.update(run(sections, protocol))
    return traces


def run(sections, protocol):
    """One protocol, as hpcopt runs it: stimuli, recordings, stdinit, fadvance to tstop."""
    keep = [_stimulus(sections, s, protocol["tstop"]) for s in protocol["stimuli"]]
    t = h.Vector()
    t.record(h._ref_t)
    vectors = []
    for r in protocol["recordings"]:
        v = h.Vector()
        v.record(getattr(sections[r["section"]](r["x"]), "_ref_" + r["var"]))
        vectors.append(v)
    _integrate(protocol["tstop"])
    del keep
    T = t.as_numpy().copy()
    return {(protocol["name"], r["name"]): (T, v.as_numpy().copy()) for r, v in zip(protocol["recordings"], vectors)}


def _integrate(tstop):
    h.tstop = tstop
    h.cvode_active(1 if SIMULATION["cvode"] else 0)
    if SIMULATION["cvode"]:
        if SIMULATION["atol"]:
            h.CVode().atol(SIMULATION["atol"])
    else:
        h.dt = SIMULATION["dt"]
        h.steps_per_ms = 1.0 / SIMULATION["dt"]
    h.stdinit()
    if SIMULATION["cvode"]:
        h.CVode().event(tstop)
        stop = tstop
    else:
        stop = tstop - h.dt / 2
    while h.t < stop:
        h.fadvance()


def _stimulus(sections, s, tstop):
    """The NEURON objects of one stimulus (alive while the protocol runs)."""
    segment = sections[s["section"]](s["x"])
    if s["type"] == "step":
        clamp = h.IClamp(segment)
        clamp.delay, clamp.dur, clamp.amp = s["delay"], s["dur"], s["amp"]
        return (clamp,)
    if s["type"] == "play":  # ramps and waveforms: the amplitude follows times/amps
        clamp = h.IClamp(segment)
        clamp.delay, clamp.dur = s["delay"], s["dur"]
        tvec, ivec = h.Vector(s["times"]), h.Vector(s["amps"])
        ivec.play(clamp._ref_amp, tvec, 1)
        return clamp, tvec, ivec
    synapse = dict(s["synapse"])
    point = getattr(h, synapse.pop("mechanism"))(segment)
    for key, value in synapse.items():
        setattr(point, key, value)
    stim = h.NetStim()
    stim.start, stim.interval, stim.number, stim.noise = s["start"], s["interval"], s["number"], 0
    con = h.NetCon(stim, point)
    con.weight[0], con.delay = s["weight"], 0.0
    return point, stim, con


def main():
    parser = argparse.ArgumentParser(description="Simulate the fitted cell's protocols.")
    parser.add_argument("--save", metavar="TRACES.npz", help="save the traces (keys 'protocol/recording/t', '.../v')")
    parser.add_argument("--library", default=LIBRARY, help="the compiled mechanisms (libnrnmech.so) to load")
    args = parser.parse_args()
    traces = simulate(build(args.library))
    for (protocol, recording), (t, v) in traces.items():
        print(f"{protocol}/{recording}: {len(t)} points, {v.min():.4g} to {v.max():.4g}")
    if args.save:
        arrays = {}
        for (protocol, recording), (t, v) in traces.items():
            arrays[f"{protocol}/{recording}/t"] = t
            arrays[f"{protocol}/{recording}/v"] = v
        np.savez(args.save, **arrays)


if __name__ == "__main__":
    main()
'''


def python(model, filename):
    usage = textwrap.dedent(f"""\

        build() makes the cell as hpcopt built it (same sections, nseg, mechanisms and
        every parameter value; distance-dependent ones as one value per segment) and
        simulate() runs the fit's protocols as hpcopt ran them, so eFEL features of its
        traces score what the run file stores for this individual (OBJECTIVES).

            python {filename}                      # simulate every protocol, print a summary
            python {filename} --save traces.npz    # and save the traces
        """)
    c = model["chosen"]

    def literal(value):
        return pprint.pformat(value, width=110, sort_dicts=False)

    out = ['"""' + _about(model, "") + "\n" + usage + '"""', "", "import argparse", "", "import numpy as np",
           "from neuron import h", "",
           f"MOD_DIR = {model['mod_dir']!r}  # the model's own .mod files ('' if none)",
           f"LIBRARY = {model['library']!r}  # hpcopt's build of them: replace it if you compile them elsewhere",
           f"OWN_MECHANISMS = {_mod_names(model['mod_dir'])!r}  # what they define (loaded already: LIBRARY is not)",
           f"LISTS = {LISTS!r}",
           f"MORPHOLOGY = {literal(model['morphology'])}",
           (f"TEMPLATE = '''\n{_HOC_TEMPLATE}'''" if "file" in model["morphology"] else
            "TEMPLATE = ''  # (the cell template, for a morphology file)"),
           f"MECHANISMS = {literal(model['mechanisms'])}",
           "# (kind, attribute, section list, value, what it is), applied in this order; kind 'segments':",
           "# the value is [(section, x, value), ...], one value per segment",
           f"PARAMETERS = {literal(model['parameters'])}",
           f"PROTOCOLS = {literal(model['protocols'])}",
           f"SIMULATION = {literal(model['simulation'])}",
           "# the objective scores the run file stores for this individual",
           f"OBJECTIVES = {literal(c['objectives'])}"]
    return "\n".join(out) + "\n" + _PYTHON_CODE
