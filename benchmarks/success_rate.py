"""Success rate: how often a run finds the answer, hpcopt's optimisers beside BluePyOpt's.

Question (issue 12): does a run with default settings find every parameter, on every seed?
Modellers run one to three seeds per allocation, so the median best score is not enough.

Problems with a known truth (each a config that hpcopt runs as it ships):
- ``conductances``: benchmarks/scaling_problem.py, three conductances with bounds over 2-3
  decades and the truth near their low end (a Python function, milliseconds an evaluation);
- ``hh``: examples/hh (Neuroptimus' problem 1: gnabar, gkbar, gl of a Hodgkin-Huxley soma,
  NEURON and eFEL; about 0.05 s an evaluation);
- ``cell``: examples/cell (five conductances, 12 eFEL objectives; about 0.1 s an evaluation).
- ``l5pc_like``: tests/data/l5pc_like in BluePyOpt's file format as it is (8 free parameters,
  29 objectives over 3 protocols, SWC morphology with axon replacement, its own .mod; about
  0.17 s an evaluation). Its shipped features.json holds hand-written targets that no
  parameter set meets exactly, so the benchmark first replaces them by the features of
  params_release.json (``hpcopt targets --params``, std 10 % of the value and at least 0.2,
  as tests/test_targets.py); params_release.json is then the truth.

Optimisers, each at the same budget of evaluations and population:
- hpcopt CMA-ES with its defaults (``optimizer.scale`` auto, no restarts), and with
  ``"restarts": "ipop"`` and ``"bipop"``; hpcopt IBEA with its
  defaults; all through the command line (``mpiexec -n 2 hpcopt run``);
- BluePyOpt's ``DEAPOptimisationCMA`` (``selector_name="single_objective"``) and
  ``IBEADEAPOptimisation`` with their defaults and ``offspring_size`` = the population,
  calling hpcopt's own evaluation of the same config, so that only the optimisers differ.

A run succeeds when its best-scoring individual (lowest sum of objectives over everything
it evaluated within the budget) has every parameter within 1 % of the truth. Per problem
and optimiser: the success rate, the median evaluations to success over the successful
runs (the first count from which the best so far stays within 1 %), the best-score
quartiles. This is a measurement: it exits 0 whatever it finds.

l5pc_like is the exception: its truth does not score 0 against targets made from it. A
feature with several values in a trace (the AP heights of a train) is scored as the mean
distance of each value from the target mean, so the truth keeps the spread of its own
values (a score above 0), and other parameters, with more even spikes, can score lower.
Its truth is not the best fit, and a run succeeds when its best score is at or below the
truth's own score (the benchmark evaluates it first), the threshold the issue allows
"where the truth is not unique".

    python benchmarks/success_rate.py                          # conductances, hh, cell: 10 seeds, 1,000 evaluations
    python benchmarks/success_rate.py --problems l5pc_like --optimisers "hpcopt CMA-ES,BluePyOpt CMA-ES" \
        --name success_rate_l5pc_like                          # l5pc_like (only when named: hours for all optimisers)
    python benchmarks/success_rate.py --problems l5pc_like --optimisers "hpcopt IBEA,BluePyOpt IBEA" \
        --name success_rate_l5pc_like_ibea                     # l5pc_like, the IBEAs (about 45 min)
    python benchmarks/success_rate.py --problems conductances,hh --cell-seeds 3   # hh on 3 seeds only
    python benchmarks/success_rate.py --quick                  # conductances, 2 seeds, 96 evaluations
    python benchmarks/success_rate.py --problems cell --optimisers "hpcopt CMA-ES" --name success_rate_cell
                                               # examples/cell, hpcopt CMA-ES only, 10 seeds

``--optimisers`` takes labels of OPTIMISERS or SETTINGS, comma-separated (a comma followed by a space is
part of a label: "hpcopt CMA-ES,hpcopt CMA-ES, IPOP" is two). A run of only some of them must
give ``--name``, the name of its results files (default success_rate), so that it does not
overwrite the results of all of them.
"""

import json
import re
import statistics
import tempfile
import warnings
from pathlib import Path

import harness
import numpy as np
import scaling_problem

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "success_rate"
PACKAGES = ("hpcopt", "bluepyopt", "deap", "cma", "numpy", "neuron", "efel")
TOLERANCE = 0.01  # relative distance to the truth of every parameter for a success
RANKS = 2
L5PC_LIKE = ROOT / "tests" / "data" / "l5pc_like"


def problems():
    """{name: (config with paths made absolute, truth {parameter: value}, population)}."""
    out = {
        "conductances": ({"problem": {"function": "scaling_problem:evaluate", "path": [str(HERE)],
                                      "parameters": {n: list(b) for n, b in scaling_problem.BOUNDS.items()},
                                      "objectives": scaling_problem.OBJECTIVES}},
                         dict(scaling_problem.TRUTH), 8),
    }
    for name in ("hh", "cell"):
        folder = ROOT / "examples" / name
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        harness.resolve_paths(config["problem"]["cell"], folder)
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        out[name] = ({"problem": config["problem"]}, truth, config["optimizer"]["population"])
    folder = L5PC_LIKE / "config"
    files = {key: str(folder / f"{key}.json") for key in ("mechanisms", "parameters", "protocols", "features")}
    files.update(morphology=str(L5PC_LIKE / "morphology" / "cell.swc"), mod_dir=str(L5PC_LIKE / "mechanisms"))
    out["l5pc_like"] = ({"problem": {"bluepyopt": files}},
                        json.loads((folder / "params_release.json").read_text(encoding="utf-8")), 12)
    return out


def synthetic_targets(config, workdir):
    """``config`` (of l5pc_like) with its features replaced by those of its truth,
    params_release.json: ``hpcopt targets --params`` on the feature names of the shipped file."""
    files = config["problem"]["bluepyopt"]
    shipped = json.loads(Path(files["features"]).read_text(encoding="utf-8"))
    listed = harness.write_json(Path(workdir) / "l5pc_like_features_listed.json", {
        protocol: {recording: list(found) for recording, found in recordings.items()}
        for protocol, recordings in shipped.items()})
    source = harness.write_json(Path(workdir) / "l5pc_like_listed.json",
                                {"problem": {"bluepyopt": {**files, "features": str(listed)}},
                                 "optimizer": {"algorithm": "cmaes", "population": 2, "generations": 1}})
    features = Path(workdir) / "l5pc_like_features.json"
    harness.hpcopt(["targets", source, "--params", L5PC_LIKE / "config" / "params_release.json", "-o", features,
                    "--std-relative", "0.1", "--std-floor", "0.2"])
    return {"problem": {"bluepyopt": {**files, "features": str(features)}}}


def parse(config):
    """hpcopt's Problem of a benchmark config."""
    from hpcopt import config as configuration
    from hpcopt.problem.space import Problem

    return Problem(configuration.parse({**config, "optimizer": {"algorithm": "cmaes", "population": 2,
                                                                "generations": 1}}))


def outcome(X, scores, names, truth, budget, threshold=None):
    """harness.truth_found of a run, from every point it evaluated, in order (at most ``budget``)."""
    return harness.truth_found(X[:budget], scores[:budget], np.array([truth[n] for n in names]), TOLERANCE,
                               threshold)


def run_hpcopt(config, truth, names, optimizer, seed, budget, workdir, stem, threshold=None):
    """One hpcopt run through its command line; outcome() of it."""
    runfile, seconds = harness.hpcopt_run({**config, "optimizer": {**optimizer, "evaluations": budget,
                                                                     "seed": seed}},
                                          workdir, stem, ranks=RANKS)
    X, scores = harness.generations(runfile, "parameters", "score")
    return {"seed": seed, "seconds": seconds, **outcome(X, scores, names, truth, budget, threshold)}


def run_bluepyopt(problem, evaluate, truth, algorithm, population, seed, budget, threshold=None):
    """One BluePyOpt run on hpcopt's evaluation; outcome() of every point it evaluated."""
    points, scores = [], []

    def recorded(values):
        outcome_ = evaluate(np.asarray(values, dtype=float))
        points.append([float(v) for v in values])
        scores.append(float(np.sum(outcome_.objectives)))
        return [float(v) for v in outcome_.objectives]

    evaluator = harness.bluepyopt_evaluator(problem.objectives, zip(problem.names, problem.lower, problem.upper),
                                            recorded)
    optimisation = harness.bluepyopt_optimisation(evaluator, algorithm, population, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (_, seconds) = harness.timed(optimisation.run, max_ngen=-(-budget // population))
    return {"seed": seed, "seconds": seconds,
            **outcome(np.array(points), np.array(scores), problem.names, truth, budget, threshold)}


OPTIMISERS = {  # label: ("hpcopt", optimizer section) or ("bluepyopt", algorithm)
    "hpcopt CMA-ES": ("hpcopt", {"algorithm": "cmaes"}),
    "hpcopt CMA-ES, IPOP": ("hpcopt", {"algorithm": "cmaes", "restarts": "ipop"}),
    "hpcopt CMA-ES, BIPOP": ("hpcopt", {"algorithm": "cmaes", "restarts": "bipop"}),
    "BluePyOpt CMA-ES": ("bluepyopt", "cmaes"),
    "hpcopt IBEA": ("hpcopt", {"algorithm": "ibea"}),
    "BluePyOpt IBEA": ("bluepyopt", "ibea"),
}
# IBEA's settings (issue 12, item 4), run only when named in --optimisers: BluePyOpt's
# variation (each variable mutated with probability 0.5), a larger eta (smaller steps) and a
# smaller kappa (selection closer to plain dominance)
SETTINGS = {
    "hpcopt IBEA, mutation 0.5": ("hpcopt", {"algorithm": "ibea", "mutation_probability": 0.5}),
    "hpcopt IBEA, eta 20": ("hpcopt", {"algorithm": "ibea", "eta_crossover": 20, "eta_mutation": 20}),
    "hpcopt IBEA, kappa 0.01": ("hpcopt", {"algorithm": "ibea", "kappa": 0.01}),
}
KNOWN = {**OPTIMISERS, **SETTINGS}


DEFAULT = "hpcopt CMA-ES"  # the optimiser whose success rate is the target


def seeds(args, name):
    """How many seeds the problem ``name`` gets."""
    return args.seeds if name == "conductances" else args.cell_seeds


def summary(rows):
    done = [r["to_success"] for r in rows if r["success"]]
    return {"successes": len(done), "runs": len(rows),
            "median_to_success": statistics.median(done) if done else None,
            "best": [r["best"] for r in rows]}


def report(run, results, args):
    lines = [
        *run.header("Success rate: hpcopt and BluePyOpt on problems with a known answer"),
        f"- Budget: {args.budget} evaluations per run; seeds "
        + ", ".join(f"{name} 1 to {seeds(args, name)}" for name in results) + f"; hpcopt on {RANKS} ranks "
        "(`mpiexec -n 2 hpcopt run`), BluePyOpt in one process calling hpcopt's evaluation of the same config",
        f"- Success: the best-scoring individual has every parameter within {100 * TOLERANCE:g} % of the truth"
        + "".join(f"; {name}: its best score is at or below the truth's own, {value:.4g} (the truth is not the best "
                  "fit there: see the script)" for name, value in args.thresholds.items()) +
        "; evaluations to success: the first count from which the best so far stays a success (median over the "
        "successful runs)",
        "- hpcopt CMA-ES with its defaults (scale auto, no restarts)" +
        ("; with IPOP and BIPOP restarts sharing the same budget" if any("IPOP" in label for label in args.optimisers)
         else ""),
        "- Optimisers: " + ", ".join(f"`{label}`" for label in args.optimisers),
        "",
    ]
    rows = []
    for name, by_optimiser in results.items():
        lines += [f"## {name}", "", *harness.table("optimiser", "success>", "median evaluations to success>",
                                                   "best score quartiles (25 / 50 / 75 %)>", "median wall s>")]
        for label, runs in by_optimiser.items():
            s = summary(runs)
            lines.append(harness.row(label, f"{s['successes']}/{s['runs']}",
                                     "-" if s["median_to_success"] is None else f"{s['median_to_success']:g}",
                                     harness.quartiles(s["best"]), f"{harness.median(runs, 'seconds'):.1f}"))
        lines += ["", "Per seed: evaluations to success (- when not reached), best score, largest relative error "
                      "of the best individual.", "", *harness.table("seed>", *(f"{label}>" for label in by_optimiser))]
        for i in range(seeds(args, name)):
            lines.append(harness.row(str(i + 1), *(
                f"{r['to_success'] if r['success'] else '-'}, {r['best']:.3g}, {100 * r['error']:.2g} %"
                for r in (by_optimiser[label][i] for label in by_optimiser))))
        lines.append("")
        rows.append(target(name, by_optimiser, args))
    lines += [run.tail()]
    return "\n".join(lines) + "\n", rows


def target(name, by_optimiser, args):
    """The targets row of a problem: every seed a success, for hpcopt CMA-ES with its defaults,
    the others' success rates beside; a run without it compares, with no target."""
    headline = DEFAULT if DEFAULT in by_optimiser else next(iter(by_optimiser))
    described = (f"{DEFAULT} with default settings" + ("; the others beside" if len(by_optimiser) > 1 else "")
                 if headline == DEFAULT else ", ".join(by_optimiser))
    first = summary(by_optimiser[headline])
    measured = "; ".join(f"{label} {summary(runs)['successes']}/{summary(runs)['runs']}"
                         for label, runs in by_optimiser.items())
    if len(by_optimiser) == 1 and first["median_to_success"] is not None:
        measured += f", median {first['median_to_success']:g} evaluations to success"
    return harness.target(
        f"success rate on {name} ({args.budget} evaluations, {seeds(args, name)} seeds; "
        + (f"best score at or below the truth's, {args.thresholds[name]:.4g}" if name in args.thresholds else
           f"every parameter within {100 * TOLERANCE:g} % of the truth") + f"), {described}",
        "every seed" if headline == DEFAULT else f"none (a comparison; the target is {DEFAULT}'s)", measured,
        first["successes"] == first["runs"] if headline == DEFAULT else None)


def labels(text):
    """The optimiser labels of ``--optimisers``: split at commas not followed by a space."""
    return [label.strip() for label in re.split(r",(?! )", text) if label.strip()]


def arguments():
    parser = harness.parser(__doc__, NAME, "conductances only, 2 seeds, 96 evaluations (CI smoke run)", seeds=10)
    parser.add_argument("--budget", type=int, default=1000, help="evaluations per run (default 1000)")
    parser.add_argument("--problems", default="conductances,hh,cell",
                        help="comma-separated problems: conductances, hh, cell, l5pc_like "
                             "(default conductances,hh,cell)")
    parser.add_argument("--cell-seeds", type=int,
                        help="seeds of the NEURON problems hh, cell and l5pc_like (default: --seeds; "
                             "0.05-0.2 s an evaluation)")
    parser.add_argument("--optimisers", default=",".join(OPTIMISERS),
                        help="comma-separated labels of the optimisers to run (default all of: "
                             + "; ".join(OPTIMISERS) + "; IBEA's settings only when named: "
                             + "; ".join(SETTINGS) + ")")
    parser.add_argument("--name", help=f"name of the results files results/NAME.{{md,json}} (default {NAME}; "
                                       "needed when --optimisers is not all of them)")
    args = harness.parse(parser, quick={"seeds": 2, "budget": 96, "problems": "conductances"})
    known = problems()
    args.problems = [p for p in args.problems.split(",") if p]
    if args.quick or args.cell_seeds is None:
        args.cell_seeds = args.seeds
    unknown = [p for p in args.problems if p not in known]
    if unknown or not args.problems:
        parser.error(f"--problems: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    args.optimisers = labels(args.optimisers)
    unknown = [label for label in args.optimisers if label not in KNOWN]
    if unknown or not args.optimisers:
        parser.error(f"--optimisers: unknown {'; '.join(unknown) or '(none given)'}; known: {'; '.join(KNOWN)}")
    if set(args.optimisers) != set(OPTIMISERS) and args.name is None and not args.no_write:
        parser.error(f"--optimisers without all of them needs --name, so as not to overwrite results/{NAME}")
    args.name = args.name or NAME
    args.thresholds = {}  # {problem: the score at or below which a run succeeds}, where the truth is not the best
    return args


def main():
    args = arguments()
    run = harness.Run(args.name, PACKAGES)
    results = {}
    with tempfile.TemporaryDirectory(prefix="success_bench_") as workdir:
        for name in args.problems:
            config, truth, population = problems()[name]
            if name == "l5pc_like":
                config = synthetic_targets(config, workdir)
            problem = parse(config)
            problem.prepare()
            evaluate = None
            if name == "l5pc_like":  # success: a score as low as the truth's own (see success())
                evaluate = problem.evaluator()
                args.thresholds[name] = float(np.sum(evaluate(np.array([truth[n] for n in problem.names]))
                                                     .objectives))
                harness.note(f"l5pc_like: the truth scores {args.thresholds[name]:.4g}")
            threshold = args.thresholds.get(name)
            results[name] = {}
            for label in args.optimisers:
                tool, setting = KNOWN[label]
                runs = results[name][label] = []
                for seed in range(1, seeds(args, name) + 1):
                    if tool == "hpcopt":
                        r = run_hpcopt(config, truth, problem.names, {**setting, "population": population}, seed,
                                       args.budget, workdir, f"{name}_{label.replace(' ', '_')}_{seed}", threshold)
                    else:
                        evaluate = evaluate or problem.evaluator()
                        r = run_bluepyopt(problem, evaluate, truth, setting, population, seed, args.budget,
                                          threshold)
                    runs.append(r)
                    reached = f"success at {r['to_success']}" if r["success"] else "no success"
                    harness.note(f"{name}, {label}, seed {seed}: {reached}, best {r['best']:.3g}, "
                                 f"{r['evaluations']} evaluations, {r['seconds']:.1f} s")
    run.stop()
    text, rows = report(run, results, args)
    run.finish(text, rows, args.no_write)


if __name__ == "__main__":
    main()
