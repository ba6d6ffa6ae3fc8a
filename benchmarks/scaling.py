"""Parameter scaling: CMA-ES searching linear against auto (log for bounds spanning two decades or more).

Question (issue 12): should ``optimizer.scale`` default to ``auto``? Two problems, each
fitted by hpcopt's CMA-ES through its command line (``hpcopt run CONFIG -o RUN.h5 -q``)
with the same seeds and evaluation budget (``optimizer.evaluations``), once per scale:

- ``cell``: examples/cell (five conductances of a NEURON cell, 12 eFEL objectives,
  targets made from examples/cell/truth.json), the example's population (12) and sigma0.
  Its bounds span at most 50x, so ``auto`` puts every parameter on a linear scale: the
  auto runs are the linear runs (the same resolved config), said so in the report; an
  all-``log`` run is shown for information.
- ``conductances``: benchmarks/scaling_problem.py, three conductances of a steady-state
  current-voltage curve with bounds spanning 3, 3 and 2 decades and the truth near the low
  end of each (``auto`` gives all three a log scale); population 8.

A run succeeds when its best-scoring individual (lowest weighted sum of objectives) has
every parameter within 1 % of the truth. Per problem and scale: the success rate, the
median evaluations to success over the successful runs (the first evaluation count from
which the best so far stays within 1 %), and the quartiles of the best scores.

Target: auto's success rate at least linear's on both problems, and strictly higher, or
equal with fewer median evaluations, on at least one (then auto is the better default).

    python benchmarks/scaling.py            # 10 seeds, 1,000 evaluations per run
    python benchmarks/scaling.py --cell-seeds 5   # the cell problem (0.1 s an evaluation) on 5 seeds only
    python benchmarks/scaling.py --quick    # 2 seeds, 120 evaluations (CI smoke run)
"""

import json
import statistics
import sys
import tempfile
from pathlib import Path

import h5py
import harness
import numpy as np
import scaling_problem

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "scaling"
PACKAGES = ("hpcopt", "cma", "numpy", "neuron", "efel")
TOLERANCE = 0.01  # relative distance to the truth of every parameter for a success


def problems():
    """{name: (problem section, truth {parameter: value}, optimizer settings)}."""
    with open(ROOT / "examples" / "cell" / "config.json") as f:
        cell = json.load(f)
    with open(ROOT / "examples" / "cell" / "truth.json") as f:
        cell_truth = json.load(f)
    conductances = {
        "function": "scaling_problem:evaluate",
        "path": [str(HERE)],
        "parameters": {name: list(bounds) for name, bounds in scaling_problem.BOUNDS.items()},
        "objectives": scaling_problem.OBJECTIVES,
    }
    return {
        "cell": (cell["problem"], cell_truth, {"population": cell["optimizer"]["population"],
                                               "sigma0": cell["optimizer"].get("sigma0", 0.25)}),
        "conductances": (conductances, dict(scaling_problem.TRUTH), {"population": 8}),
    }


def resolved_scales(problem, scale):
    """{parameter: linear or log} that hpcopt gives ``scale`` on ``problem``."""
    from hpcopt import config as configuration

    config = configuration.parse({"problem": problem, "optimizer": {"algorithm": "cmaes", "population": 2,
                                                                     "generations": 1, "scale": scale}})
    return config.scales()


def run_one(problem, truth, settings, scale, seed, budget, workdir, stem):
    """One CMA-ES run; a dict of its results."""
    config = {"problem": problem,
              "optimizer": {"algorithm": "cmaes", "evaluations": budget, "seed": seed, "scale": scale, **settings}}
    runfile, seconds = harness.hpcopt_run(config, workdir, stem)
    X, scores = harness.generations(runfile, "parameters", "score")
    with h5py.File(runfile, "r") as f:
        names = [str(n) for n in json.loads(f.attrs["config"])["optimizer"]["scale"]]
    return {"seed": seed, "seconds": seconds,
            **harness.truth_found(X, scores, np.array([truth[n] for n in names]), TOLERANCE)}


def summary(rows):
    done = [r["to_success"] for r in rows if r["success"]]
    return {"rate": len(done) / len(rows), "successes": len(done), "runs": len(rows),
            "median_to_success": statistics.median(done) if done else None,
            "best": [r["best"] for r in rows]}


def better(auto, linear):
    """Is auto at least as good (>= 0), better (> 0) or worse (< 0) than linear: by success rate,
    then median evaluations to success."""
    if auto["rate"] != linear["rate"]:
        return 1 if auto["rate"] > linear["rate"] else -1
    a, b = auto["median_to_success"], linear["median_to_success"]
    if a is None or b is None or a == b:
        return 0
    return 1 if a < b else -1


def report(run, results, scales, args):
    lines = [
        *run.header("Parameter scaling: CMA-ES on linear vs auto scales"),
        f"- Budget: `\"evaluations\": {args.budget}` per run (a run stops after the generation in which it is "
        f"reached); seeds 1 to {args.seeds} (cell: 1 to {args.cell_seeds}); CMA-ES with its defaults otherwise "
        "(start at the centre of the unit cube, sigma0 0.25 unless the example sets it)",
        f"- Success: the best-scoring individual has every parameter within {100 * TOLERANCE:g} % of the truth; "
        "evaluations to success: the first count from which the best so far stays within it (median over the "
        "successful runs)",
        "",
    ]
    for name in results:
        lines += [f"## {name}", ""]
        lines.append("Scales: " + "; ".join(
            f"`{scale}`: " + ", ".join(f"{p} {s}" for p, s in scales[name][scale].items())
            for scale in results[name]) + ".")
        if scales[name]["auto"] == scales[name]["linear"]:
            lines.append("`auto` resolves to `linear` for every parameter here: its runs are the linear runs.")
        lines += ["", *harness.table("scale", "success>", "median evaluations to success>",
                                     "best score quartiles (25 / 50 / 75 %)>", "median wall s>")]
        for scale, rows in results[name].items():
            s = summary(rows)
            lines.append(harness.row(f"`{scale}`", f"{s['successes']}/{s['runs']}",
                                     "-" if s["median_to_success"] is None else f"{s['median_to_success']:g}",
                                     harness.quartiles(s["best"]), f"{harness.median(rows, 'seconds'):.1f}"))
        lines += ["", "Per seed (information): evaluations to success (- when not reached), best score, largest "
                      "relative error of the best individual.", "",
                  *harness.table("seed>", *(f"{scale}>" for scale in results[name]))]
        for i in range(len(results[name]["linear"])):
            cells = [str(i + 1)]
            for scale in results[name]:
                r = results[name][scale][i]
                cells.append(f"{r['to_success'] if r['success'] else '-'}, {r['best']:.3g}, "
                             f"{100 * r['error']:.2g} %")
            lines.append(harness.row(*cells))
        lines.append("")
    verdicts = {name: better(summary(results[name]["auto"]), summary(results[name]["linear"])) for name in results}
    met = all(v >= 0 for v in verdicts.values()) and any(v > 0 for v in verdicts.values())
    words = {1: "auto better", 0: "the same", -1: "linear better"}
    lines += ["Target (auto at least as good as linear on both, better on one): "
              + ", ".join(f"{name}: {words[v]}" for name, v in verdicts.items()) + f": **{harness.verdict(met)}**.",
              "", run.tail()]
    def measured_on(name):
        auto, linear = summary(results[name]["auto"]), summary(results[name]["linear"])
        steps = " vs ".join("-" if s["median_to_success"] is None else f"{s['median_to_success']:g}"
                            for s in (auto, linear))
        return (f"{name}: {auto['successes']}/{auto['runs']} vs {linear['successes']}/{linear['runs']} runs, "
                f"median {steps} evaluations to success")

    measured = "; ".join(measured_on(name) for name in results)
    row = harness.target(f"CMA-ES, {args.budget} evaluations per run: runs whose best is within "
                         f"{100 * TOLERANCE:g} % of the truth and evaluations to get there, auto vs linear scale "
                         "(examples/cell: auto is linear there; a 3-conductance problem with bounds over 2-3 decades)",
                         "auto better, never worse", measured, met)
    return "\n".join(lines) + "\n", [row]


def arguments():
    parser = harness.parser(__doc__, NAME, "2 seeds, 120 evaluations (CI smoke run)", seeds=10)
    parser.add_argument("--budget", type=int, default=1000, help="evaluations per run (default 1000)")
    parser.add_argument("--cell-seeds", type=int, help="seeds of the cell problem (default: --seeds; its "
                                                         "evaluations take about 0.1 s)")
    parser.add_argument("--only", choices=sorted(problems()), help="one problem only (not written)")
    args = harness.parse(parser, quick={"seeds": 2, "budget": 120})
    if args.only:
        args.no_write = True
    if args.quick or args.cell_seeds is None:
        args.cell_seeds = args.seeds
    return args


def main():
    args = arguments()
    run = harness.Run(NAME, PACKAGES)
    results, scales = {}, {}
    with tempfile.TemporaryDirectory(prefix="scaling_bench_") as workdir:
        for name, (problem, truth, settings) in problems().items():
            if args.only and name != args.only:
                continue
            variants = ["linear", "auto"] + (["log"] if name == "cell" else [])
            scales[name] = {scale: resolved_scales(problem, scale) for scale in variants}
            results[name] = {}
            for scale in variants:
                if scale == "auto" and scales[name]["auto"] == scales[name]["linear"]:
                    results[name]["auto"] = results[name]["linear"]
                    continue
                rows = results[name][scale] = []
                for seed in range(1, (args.cell_seeds if name == "cell" else args.seeds) + 1):
                    rows.append(run_one(problem, truth, settings, scale, seed, args.budget, workdir,
                                        f"{name}_{scale}_{seed}"))
                    r = rows[-1]
                    reached = f"success at {r['to_success']}" if r["success"] else "no success"
                    harness.note(f"{name} {scale} seed {seed}: {reached}, best {r['best']:.3g}, "
                                 f"{r['evaluations']} evaluations, {r['seconds']:.1f} s")
    run.stop()
    text, targets = report(run, results, scales, args)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    sys.exit(main())
