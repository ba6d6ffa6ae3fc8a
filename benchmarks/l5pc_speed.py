"""The real L5PC: time per evaluation in hpcopt and in BluePyOpt, the same parameter sets in one run.

The model is BluePyOpt's own L5PC example as BluePyOpt 1.14.26's source distribution
ships it (fetched from PyPI by tests/corpus.py, copied to a temporary folder, where
``nrnivmodl mechanisms`` runs as BluePyOpt's README says): 20 free parameters,
35 objectives, 4 protocols (bAP 600 ms, Step1-3 3000 ms), CVODE. This is the
representative figure for real models: on small ones (l5pc_like, hh in
evaluation_overhead.py) BluePyOpt's fixed cost per evaluation dominates and the ratio
looks better than it is for a model like this.

- hpcopt: its cell evaluator (the JSON files through ``problem.bluepyopt``), built once
  in a child process, evaluating each set in turn;
- BluePyOpt: the example's own ``l5pc_evaluator.create()`` in another child process
  (run from another folder: from the example's own, NEURON 9 loads ./x86_64 at import
  and the evaluator's second load fails), ``evaluate_with_dicts`` for each set, with its
  default protocol isolation (a forked process per protocol), CPU time including those
  children.

The sets: the release parameters (l5pc_analysis.py's), then sets with every parameter
the release value times a factor drawn uniformly from [0.8, 1.2] (seeded), within the
bounds. The two children run one after the other. Per set: wall and CPU seconds of one
evaluation in each tool, and the largest difference between their 35 scores.

    python benchmarks/l5pc_speed.py            # 6 sets
    python benchmarks/l5pc_speed.py --quick    # 1 set (the release parameters)
"""

import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import corpus  # noqa: E402  (tests/corpus.py: BluePyOpt's examples, fetched from PyPI)

NAME = "l5pc_speed"
PACKAGES = ("hpcopt", "bluepyopt", "neuron", "efel")
FILES = {"morphology": "morphology/C060114A7.asc", "mechanisms": "config/mechanisms.json",
         "parameters": "config/parameters.json", "protocols": "config/protocols.json",
         "features": "config/features.json", "mod_dir": "mechanisms"}
TARGET = 0.75  # hpcopt / BluePyOpt wall time per evaluation (median over the sets)


def example():
    """A private copy of the L5PC example with its mechanisms compiled in it."""
    folder = corpus.copy("l5pc", tempfile.mkdtemp(prefix="hpcopt-l5pc-"))
    subprocess.run([str(harness.BIN / "nrnivmodl"), "mechanisms"], cwd=folder, check=True, capture_output=True)
    return folder


def parameter_sets(folder, count, seed=1):
    """[(label, {name: value})]: the release parameters, then perturbed copies."""
    tree = ast.parse(open(os.path.join(folder, "l5pc_analysis.py")).read())
    release = next(ast.literal_eval(n.value) for n in tree.body
                   if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "release_params")
    bounds = {}
    for p in json.load(open(os.path.join(folder, "config", "parameters.json"))):
        if "bounds" in p:
            bounds[f"{p['param_name']}.{p['sectionlist']}"] = p["bounds"]
    rng = np.random.default_rng(seed)
    sets = [("release", release)]
    for i in range(1, count):
        values = {k: float(np.clip(v * rng.uniform(0.8, 1.2), *bounds[k])) for k, v in release.items()}
        sets.append((f"perturbed {i}", values))
    return sets


def child_hpcopt(spec):
    from hpcopt import config as configuration
    from hpcopt.problem.space import Problem

    files = {key: os.path.join(spec["folder"], path) for key, path in FILES.items()}
    raw = {"problem": {"bluepyopt": files}, "optimizer": {"algorithm": "ibea", "population": 2, "generations": 1}}
    problem = Problem(configuration.parse(raw, source="l5pc"))
    build = harness.timed(problem.evaluator)
    evaluator = build[0]
    rows = []
    for label, values in spec["sets"]:
        x = np.array([values[name] for name in problem.names])
        cpu = harness.cpu_seconds()
        outcome, wall = harness.timed(evaluator, x)
        rows.append({"label": label, "wall": wall, "cpu": harness.cpu_seconds() - cpu,
                     "scores": dict(zip(problem.objectives, map(float, outcome.objectives)))})
    return {"build": build[1], "rows": rows}


def child_bluepyopt(spec):
    sys.path.insert(0, spec["folder"])
    import l5pc_evaluator

    build = harness.timed(l5pc_evaluator.create)
    evaluator = build[0]
    rows = []
    for label, values in spec["sets"]:
        cpu = harness.cpu_seconds()
        scores, wall = harness.timed(evaluator.evaluate_with_dicts, values)
        rows.append({"label": label, "wall": wall, "cpu": harness.cpu_seconds() - cpu,
                     "scores": {k: float(v) for k, v in scores.items()}})
    return {"build": build[1], "rows": rows}


def measure(folder, sets):
    """{tool: child result}, each tool in its own process, one after the other."""
    results = {}
    with tempfile.TemporaryDirectory() as work:
        spec = Path(work) / "spec.json"
        spec.write_text(json.dumps({"folder": folder, "sets": sets}))
        for tool in ("hpcopt", "bluepyopt"):
            out = Path(work) / f"{tool}.json"
            done = subprocess.run([sys.executable, __file__, "--child", tool, str(spec), str(out)], cwd=work,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{tool} child failed: {done.stderr[-harness.ERROR_TAIL:]}")
            results[tool] = json.loads(out.read_text())
    return results


def report(run, results, sets):
    ours, theirs = results["hpcopt"]["rows"], results["bluepyopt"]["rows"]
    wall = [o["wall"] / t["wall"] for o, t in zip(ours, theirs)]
    cpu = [o["cpu"] / t["cpu"] for o, t in zip(ours, theirs)]
    lines = run.header("The real L5PC: hpcopt and BluePyOpt per evaluation") + [
        f"- Model: the L5PC example of BluePyOpt {corpus.VERSION}'s source distribution (fetched by "
        "tests/corpus.py), 20 free parameters, 35 objectives, 4 protocols, CVODE",
        f"- Sets: {len(sets)} (the release parameters, then release x U(0.8, 1.2) per parameter, seed 1)",
        f"- Building the evaluator: hpcopt {results['hpcopt']['build']:.2f} s, BluePyOpt "
        f"{results['bluepyopt']['build']:.2f} s (not in the figures below)", "",
        *harness.table("set", "hpcopt wall s>", "BluePyOpt wall s>", "wall ratio>", "hpcopt CPU s>",
                       "BluePyOpt CPU s>", "CPU ratio>", "max score difference>"),
    ]
    for o, t, w, c in zip(ours, theirs, wall, cpu):
        diff = max(abs(o["scores"][k] - t["scores"][k]) for k in t["scores"])
        lines.append(harness.row(o["label"], f"{o['wall']:.2f}", f"{t['wall']:.2f}", f"{w:.3f}", f"{o['cpu']:.2f}",
                                 f"{t['cpu']:.2f}", f"{c:.3f}", f"{diff:.2g}"))
    median_wall, median_cpu = float(np.median(wall)), float(np.median(cpu))
    met = median_wall <= TARGET
    lines += ["", f"Median over the sets: wall {median_wall:.3f}, CPU {median_cpu:.3f} (hpcopt / BluePyOpt). "
              f"Target (<= {TARGET}): **{harness.verdict(met)}**.", "", run.tail()]
    target = harness.target(
        "real L5PC (BluePyOpt's example): time per evaluation hpcopt / BluePyOpt, median over "
        f"{len(sets)} sets, wall (CPU: {median_cpu:.2f})", f"<= {TARGET}", f"{median_wall:.2f}", met)
    return "\n".join(lines) + "\n", [target]


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        spec = json.loads(Path(sys.argv[3]).read_text())
        result = (child_hpcopt if sys.argv[2] == "hpcopt" else child_bluepyopt)(spec)
        Path(sys.argv[4]).write_text(json.dumps(result))
        return
    parser = harness.parser(__doc__, NAME, "1 set (the release parameters)")
    parser.add_argument("--sets", type=int, default=6, help="parameter sets (default 6)")
    args = harness.parse(parser, quick={"sets": 1})
    run = harness.Run(NAME, PACKAGES)
    folder = example()
    start = time.perf_counter()
    sets = parameter_sets(folder, args.sets)
    results = measure(folder, sets)
    harness.note(f"measured in {time.perf_counter() - start:.0f} s")
    run.stop()
    text, targets = report(run, results, sets)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
