"""CMA-ES on Rosenbrock: hpcopt against BluePyOpt's CMA-ES at the same evaluation budget.

Target (from the project's issues): hpcopt's CMA-ES on the 8-dimensional Rosenbrock
function (every x_i in [-5, 5], minimum 0 at x_i = 1) reaches a best score at least as
low as BluePyOpt's single-objective CMA-ES (``DEAPOptimisationCMA``) at the same number
of evaluations, as the median over 5 seeds. A run's best score is the lowest function
value among the first BUDGET points it evaluated.

hpcopt runs through its command line (``hpcopt run CONFIG -o RUN.h5 -q``) with
``hpcopt.testfunctions:rosenbrock``, CMA-ES, population = cma's default for the dimension
(10 for 8), BUDGET / population generations, its defaults otherwise (start at the centre
of the box, sigma0 0.25 of the box); its points are read back from the run file. BluePyOpt
runs ``DEAPOptimisationCMA(evaluator, seed=SEED, selector_name="single_objective")`` in
this process with its defaults (a random starting point, sigma 0.4 in its [-1, 1]
normalisation, i.e. 0.2 of the box, its own population default, the same number here) and
``max_ngen`` = BUDGET / population - 1: its loop runs max_ngen + 1 generations (counted
below). Both stop early if their own termination criteria say so; the report gives every
run's evaluation count.

This is a measurement: it prints (and writes to benchmarks/results/cmaes_rosenbrock.md and
cmaes_rosenbrock.json) the best scores and whether the target is met, and exits 0 either way.

    python benchmarks/cmaes_vs_bluepyopt.py            # 5 seeds, 5,000 evaluations
    python benchmarks/cmaes_vs_bluepyopt.py --quick    # 2 seeds, 1,000 evaluations (CI smoke run)
"""

import math
import statistics
import tempfile

import h5py
import harness
import numpy as np

from hpcopt.testfunctions import rosenbrock

NAME = "cmaes_rosenbrock"
PACKAGES = ("hpcopt", "cma", "bluepyopt", "deap", "numpy")
BOUNDS = (-5.0, 5.0)


def names(dimension):
    return [f"x{i}" for i in range(dimension)]


def default_population(dimension):
    """cma's (and BluePyOpt's) default lambda: 4 + int(3 ln d)."""
    return 4 + int(3 * math.log(dimension))


def run_hpcopt(seed, dimension, population, generations, workdir):
    """One hpcopt CMA-ES run; (function values of every evaluated point in order, wall seconds, stop reason)."""
    config = {
        "problem": {"function": "hpcopt.testfunctions:rosenbrock",
                    "parameters": {name: list(BOUNDS) for name in names(dimension)}, "objectives": ["f"]},
        "optimizer": {"algorithm": "cmaes", "population": population, "generations": generations, "seed": seed},
    }
    runfile, seconds = harness.hpcopt_run(config, workdir, f"rosenbrock_seed{seed}")
    values, = harness.generations(runfile, "score")
    with h5py.File(runfile, "r") as f:
        stop = f["state"].attrs["stop_reason"]
    return values, seconds, stop.decode() if isinstance(stop, bytes) else str(stop)


def run_bluepyopt(seed, dimension, max_ngen):
    """One BluePyOpt CMA-ES run; (values of every evaluated point in order, wall seconds, generations run)."""
    import warnings

    from bluepyopt.deapext.optimisationsCMA import DEAPOptimisationCMA

    parameter_names = names(dimension)
    evaluated = []

    def evaluate(param_list):
        evaluated.append(rosenbrock(dict(zip(parameter_names, param_list)))["f"])
        return [evaluated[-1]]

    evaluator = harness.bluepyopt_evaluator(["f"], [(name, *BOUNDS) for name in parameter_names], evaluate)
    with harness.Timer() as timer:
        optimisation = DEAPOptimisationCMA(evaluator=evaluator, seed=seed, selector_name="single_objective")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy "Mean of empty slice" in its stopping criteria
            _, _, log, _ = optimisation.run(max_ngen=max_ngen)
    return np.array(evaluated), timer.seconds, len(log)


def best_after(values, k):
    """Lowest of the first k values."""
    return float(np.min(values[:k]))


def checkpoints(budget):
    """Evaluation counts shown along the way: 2 %, 5 %, 10 %, 20 %, 40 %, 60 %, 80 % and 100 % of the budget."""
    return sorted({max(1, round(budget * f)) for f in (0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)})


def report(run, rows, args, population):
    med_h = harness.median(rows, "best_hpcopt")
    med_b = harness.median(rows, "best_bluepyopt")
    met = med_h <= med_b
    lines = [
        *run.header("CMA-ES on Rosenbrock: best score, hpcopt vs BluePyOpt"),
        f"- Problem: Rosenbrock, {args.dimension} variables in [{BOUNDS[0]:g}, {BOUNDS[1]:g}], minimum 0 at x_i = 1; "
        f"budget {args.budget} evaluations; seeds {', '.join(str(r['seed']) for r in rows)}",
        f"- hpcopt: `hpcopt run CONFIG -o RUN.h5 -q`, cmaes, population {population}, "
        f"{args.budget // population} generations, defaults otherwise (sigma0 0.25, start at the centre)",
        "- BluePyOpt: `DEAPOptimisationCMA(evaluator, seed=SEED, selector_name='single_objective')"
        f".run(max_ngen={args.budget // population - 1})`, defaults otherwise (population {population}, "
        "sigma 0.4 of its [-1, 1] normalisation, a random start)",
        "- Best score: the lowest value among the first "
        f"{args.budget} evaluations of a run (all of them if it stopped earlier)",
        "",
        *harness.table("seed>", "hpcopt best>", "BluePyOpt best>", "hpcopt evaluations>",
                       "BluePyOpt evaluations (generations)>", "hpcopt stop", "hpcopt wall s>", "BluePyOpt wall s>"),
    ]
    for r in rows:
        lines.append(harness.row(r["seed"], f"{r['best_hpcopt']:.4g}", f"{r['best_bluepyopt']:.4g}", r["n_hpcopt"],
                                 f"{r['n_bluepyopt']} ({r['gens_bluepyopt']})", r["stop"] or "budget",
                                 f"{r['s_hpcopt']:.2f}", f"{r['s_bluepyopt']:.2f}"))
    lines += [
        harness.row("**median**", f"**{med_h:.4g}**", f"**{med_b:.4g}**", "", "", "",
                    f"{harness.median(rows, 's_hpcopt'):.2f}", f"{harness.median(rows, 's_bluepyopt'):.2f}"),
        "",
        f"Target (hpcopt's median best <= BluePyOpt's): {med_h:.4g} vs {med_b:.4g}: **{harness.verdict(met)}**.",
        "",
        "Along the way (information): median over the seeds of the best score after k evaluations "
        "(a run that stopped earlier keeps its last best).",
        "",
        *harness.table("evaluations k>", "hpcopt median best>", "BluePyOpt median best>"),
    ]
    for k in checkpoints(args.budget):
        lines.append(harness.row(k, f"{statistics.median(best_after(r['values_hpcopt'], k) for r in rows):.4g}",
                                 f"{statistics.median(best_after(r['values_bluepyopt'], k) for r in rows):.4g}"))
    lines += [
        "",
        "Wall times are information only: hpcopt's include starting the `hpcopt` process and writing the run "
        "file every generation; BluePyOpt runs in this process. " + run.tail(),
    ]
    row = harness.target(
        f"CMA-ES on Rosenbrock {args.dimension}-D, median best score over {len(rows)} seeds at {args.budget} "
        "evaluations, hpcopt vs BluePyOpt (lower is better)",
        "hpcopt <= BluePyOpt", f"{med_h:.3g} vs {med_b:.3g}", met)
    return "\n".join(lines) + "\n", [row]


def arguments():
    parser = harness.parser(__doc__, NAME, "2 seeds, 1,000 evaluations (CI smoke run)", seeds=5)
    parser.add_argument("--budget", type=int, default=5000, help="evaluations per run (default 5000)")
    parser.add_argument("--dimension", type=int, default=8, help="Rosenbrock's dimension (default 8)")
    args = harness.parse(parser, quick={"seeds": 2, "budget": 1000})
    if args.dimension < 2 or args.seeds < 1:
        parser.error("--dimension must be >= 2 and --seeds >= 1")
    population = default_population(args.dimension)
    if args.budget % population or args.budget // population < 2:
        parser.error(f"--budget must be a multiple of the population {population}, at least twice it")
    return args, population


def main():
    args, population = arguments()
    run = harness.Run(NAME, PACKAGES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cmaes_bench_") as workdir:
        for seed in range(1, args.seeds + 1):
            values_h, s_h, stop = run_hpcopt(seed, args.dimension, population, args.budget // population, workdir)
            values_b, s_b, gens_b = run_bluepyopt(seed, args.dimension, args.budget // population - 1)
            rows.append({"seed": seed, "best_hpcopt": float(values_h[:args.budget].min()),
                         "best_bluepyopt": float(values_b[:args.budget].min()),
                         "n_hpcopt": len(values_h), "n_bluepyopt": len(values_b), "gens_bluepyopt": gens_b,
                         "stop": stop, "s_hpcopt": s_h, "s_bluepyopt": s_b,
                         "values_hpcopt": values_h, "values_bluepyopt": values_b})
            harness.note(f"seed {seed}: hpcopt {rows[-1]['best_hpcopt']:.4g} ({len(values_h)} evaluations, "
                         f"{s_h:.1f} s), BluePyOpt {rows[-1]['best_bluepyopt']:.4g} ({len(values_b)}, {s_b:.1f} s)")
    run.stop()
    text, targets = report(run, rows, args, population)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
