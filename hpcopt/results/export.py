"""``hpcopt export``: one individual of a run as parameters, or as a standalone
NEURON model (hoc or Python) that needs no hpcopt.

The model is described from the cell as hpcopt builds it (neuron.cell.Cell, in this
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
from importlib import resources

from .. import __version__
from ..config.expressions import distribution_function
from ..errors import ConfigError, RunFileError
from ..neuron import mechanisms
from ..store import snapshot


def _template(name):
    """The text of templates/``name``."""
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


LISTS = ("all", "somatic", "axonal", "basal", "apical")
AXON_STUB = 60.0  # um, BluePyOpt's replacement axon: two sections of half this length


def write(path, target, kind, rank=1):
    """Write individual ``rank`` (1: the best) of the run file ``path`` to ``target``
    as kind 'json', 'hoc' or 'python'; returns a one-line summary."""
    run = snapshot.read(path)
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
        "status": snapshot.STATUS_NAMES[int(table.status[i])],
        "parameters": dict(zip(run.parameter_names, map(float, table.X[i]))),
        "objectives": dict(zip(run.objective_names, map(float, table.F[i]))),
        "rank": rank,
        "of": len(table),
    }


# ---------------------------------------------------------------- the model, as data


def describe(run, chosen):
    """Everything the exported files need, as plain Python data (numbers are the
    exact doubles hpcopt uses)."""
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
            stimuli.append({**s.primitive(protocol.tstop), "section": section_name(sec), "x": float(x)})
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
    per process: neuron.cell.Cell refuses a second one."""
    from .. import config as configuration
    from ..neuron.session import stdout_redirected
    from ..problem.space import Problem

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
    return mechanisms.library(mechanisms.compiled(mod_dir))


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
    return "\n".join(comment + _text(line) if line else comment.rstrip() for line in lines)


def _text(text):
    """``text`` safe inside a comment or docstring of the exported files: no line breaks
    or other control characters (a name from a run file must not end the comment and
    become code), no triple quotes, backslashes doubled."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text.replace("\\", "\\\\").replace('"""', "'''")


# ---------------------------------------------------------------- hoc

_HOC_TEMPLATE = _template("cell_template.hoc")  # the cell template of a file morphology


def hoc(model):
    out = [_about(model, "// "), "", '{load_file("stdrun.hoc")}']
    own = mechanisms.defined(model["mod_dir"])
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
            out.append(f"{attribute} = {value!r}  // {_text(about)}")
        elif kind in ("section", "range"):
            out.append(f"forsec cell.{sectionlist} {{ {attribute} = {value!r} }}  // {_text(about)}")
        else:
            out.append(f"// {_text(about)}: one value per segment")
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
        out.append(f"//   {_text(p['name'])}: tstop {p['tstop']:g} ms")
        for st in p["stimuli"]:
            detail = {k: v for k, v in st.items() if k not in ("type", "section", "x")}
            out.append(f"//     {st['type']} at cell.{st['section']}({st['x']!r}): {json.dumps(detail)}")
        for r in p["recordings"]:
            out.append(f"//     record {r['var']} at cell.{r['section']}({r['x']!r}) as {_text(repr(r['name']))}")
    return "\n".join(out) + "\n"


def _hoc_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- Python

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
           f"OWN_MECHANISMS = {mechanisms.defined(model['mod_dir'])!r}  # what they define (loaded: LIBRARY is not)",
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
    return "\n".join(out) + "\n" + _template("cell.py.txt")
