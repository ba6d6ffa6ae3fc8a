"""IBEA on ZDT1: hpcopt against BluePyOpt at the same evaluation budget.

Target: hpcopt's IBEA on ZDT1 (10 variables, 2,000 evaluations) reaches a hypervolume at
least as high as BluePyOpt's IBEA at the same budget, as the median over several seeds.
The hypervolume is that of the non-dominated set of ALL points a run evaluated, with the
reference point (1.1, 1.1); points beyond the reference point add nothing.

hpcopt runs through its real command line (``hpcopt run CONFIG -o RUN.h5 -q``, optionally
under ``mpiexec -n N``) and its points are read back from the run file. BluePyOpt runs
``IBEADEAPOptimisation`` in this process with its defaults, an evaluator that records
every point it is asked for, and ``offspring_size`` equal to hpcopt's population.

This is a measurement: it prints (and writes to benchmarks/results/zdt1_hypervolume.md, and
the target as JSON to zdt1_hypervolume.json) the hypervolumes and the ratio of the medians,
and exits 0 whether or not the target is met.

    python benchmarks/zdt1_vs_bluepyopt.py            # 5 seeds, 2,000 evaluations
    python benchmarks/zdt1_vs_bluepyopt.py --quick    # 2 seeds (CI smoke test)
"""

import math
import tempfile

import h5py
import harness
import numpy as np

from hpcopt.testfunctions import zdt1

NAME = "zdt1_hypervolume"
PACKAGES = ("hpcopt", "bluepyopt", "deap", "numpy")
DIMENSION = 10
NAMES = tuple(f"x{i}" for i in range(DIMENSION))
OBJECTIVES = ("f1", "f2")
REFERENCE = (1.1, 1.1)
# Hypervolume of ZDT1's true Pareto front f2 = 1 - sqrt(f1), f1 in [0, 1], for REFERENCE:
# the box 1.1 x 1.1 minus the area 1/3 under the front.
FRONT_HYPERVOLUME = REFERENCE[0] * REFERENCE[1] - 1 / 3


def hypervolume_2d(F, reference=REFERENCE):
    """Exact hypervolume dominated by the points F (n, 2), minimised, up to ``reference``.

    Points not strictly better than the reference in both objectives are ignored. The
    points are sorted by f1 (ties: by f2), then swept: each point that lowers the best f2
    seen so far adds the rectangle [f1, r1] x [f2, best f2]. Dominated points add nothing.
    """
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    F = F[(F[:, 0] < reference[0]) & (F[:, 1] < reference[1])]
    volume, best_f2 = 0.0, reference[1]
    for f1, f2 in F[np.lexsort((F[:, 1], F[:, 0]))]:
        if f2 < best_f2:
            volume += (reference[0] - f1) * (best_f2 - f2)
            best_f2 = f2
    return volume


# ---------------------------------------------------------------- hpcopt


def run_hpcopt(seed, population, generations, ranks, workdir):
    """One hpcopt IBEA run on ZDT1 through the command line.

    Returns (F, seconds): F (n, 2) the objectives of every evaluated point, in the order of
    the run file's generations; seconds the wall time of the whole command.
    """
    config = {
        "problem": {
            "function": "hpcopt.testfunctions:zdt1",
            "parameters": {name: [0, 1] for name in NAMES},
            "objectives": list(OBJECTIVES),
        },
        "optimizer": {
            "algorithm": "ibea",
            "population": population,
            "offspring": population,
            "generations": generations,
            "seed": seed,
        },
    }
    runfile, seconds = harness.hpcopt_run(config, workdir, f"zdt1_seed{seed}", ranks if ranks > 1 else None)
    with h5py.File(runfile, "r") as f:
        names = [str(name) for name in f.attrs["objective_names"]]
    if names != list(OBJECTIVES):
        raise RuntimeError(f"run file objectives are {names}, expected {list(OBJECTIVES)}")
    F, = harness.generations(runfile, "objectives")
    return F, seconds


# ---------------------------------------------------------------- BluePyOpt


def bluepyopt_generations(budget, population):
    """BluePyOpt's max_ngen for at least ``budget`` evaluations with offspring_size = population.

    eaAlphaMuPlusLambdaCheckpoint evaluates the initial population (generation 1), then
    generations 2..max_ngen; with cxpb = mutpb = 1 every child is new, so each generation
    evaluates ``population`` points: population * max_ngen in all. Rounded up: never fewer.
    """
    return math.ceil(budget / population)


def run_bluepyopt(seed, population, max_ngen):
    """One BluePyOpt IBEA run on ZDT1 with its default eta, cxpb and mutpb.

    Returns (F, seconds): F (n, 2) the objectives of every point it evaluated, in order;
    seconds the wall time of constructing and running the optimisation.
    """
    import bluepyopt.deapext.optimisations

    evaluated = []

    def evaluate(param_list):
        objectives = zdt1(dict(zip(NAMES, param_list)))
        evaluated.append([objectives[name] for name in OBJECTIVES])
        return list(evaluated[-1])

    evaluator = harness.bluepyopt_evaluator(OBJECTIVES, [(name, 0.0, 1.0) for name in NAMES], evaluate)
    with harness.Timer() as timer:
        optimisation = bluepyopt.deapext.optimisations.IBEADEAPOptimisation(
            evaluator=evaluator, offspring_size=population, seed=seed
        )
        optimisation.run(max_ngen=max_ngen)
    return np.array(evaluated, dtype=np.float64), timer.seconds


# ---------------------------------------------------------------- report


def report(run, rows, args, max_ngen):
    """The markdown report: settings, one table row per seed, medians, ratio and verdict; and the
    target row.

    rows: dicts with seed, hv_hpcopt, hv_bluepyopt, n_hpcopt, n_bluepyopt, s_hpcopt,
    s_bluepyopt (hypervolumes, evaluation counts, wall seconds).
    """
    generations = args.budget // args.population
    median_hpcopt = harness.median(rows, "hv_hpcopt")
    median_bluepyopt = harness.median(rows, "hv_bluepyopt")
    ratio = median_hpcopt / median_bluepyopt
    counts = sorted({row["n_bluepyopt"] for row in rows})
    if counts == [args.budget]:
        budget_note = f"Both tools evaluated exactly {args.budget} points in every run."
    else:
        budget_note = (
            f"BluePyOpt's count cannot equal the budget with offspring_size {args.population}: "
            f"it got {', '.join(map(str, counts))} evaluations "
            f"(the nearest count >= {args.budget}); hpcopt got exactly {args.budget}."
        )
    hpcopt_line = "hpcopt run CONFIG -o RUN.h5 -q"
    if args.ranks > 1:
        hpcopt_line = f"mpiexec -n {args.ranks} {hpcopt_line}"
    lines = [
        *run.header("IBEA on ZDT1: hypervolume, hpcopt vs BluePyOpt"),
        f"- Problem: ZDT1, {DIMENSION} variables in [0, 1], objectives f1, f2; "
        f"budget {args.budget} evaluations; seeds {', '.join(str(row['seed']) for row in rows)}",
        f"- hpcopt: `{hpcopt_line}`, ibea, population {args.population}, "
        f"offspring {args.population}, {generations} generations, defaults otherwise "
        f"(kappa 0.05, eta 10/10, mutation probability 1/{DIMENSION} per variable)",
        "- BluePyOpt: `IBEADEAPOptimisation(evaluator, "
        f"offspring_size={args.population}, seed=SEED).run(max_ngen={max_ngen})`, "
        "defaults otherwise (eta 10, cxpb 1.0, mutpb 1.0, indpb 0.5, "
        "selIBEA with tournament size 4)",
        "- Hypervolume: exact 2-D, of the non-dominated set of all evaluated points, "
        f"reference point {REFERENCE}; the true Pareto front has {FRONT_HYPERVOLUME:.4f}",
        "",
        *harness.table("seed>", "hpcopt HV>", "BluePyOpt HV>", "hpcopt evaluations>", "BluePyOpt evaluations>",
                       "hpcopt wall s>", "BluePyOpt wall s>"),
    ]
    for row in rows:
        lines.append(harness.row(row["seed"], f"{row['hv_hpcopt']:.4f}", f"{row['hv_bluepyopt']:.4f}",
                                 row["n_hpcopt"], row["n_bluepyopt"],
                                 f"{row['s_hpcopt']:.2f}", f"{row['s_bluepyopt']:.2f}"))
    lines += [
        harness.row("**median**", f"**{median_hpcopt:.4f}**", f"**{median_bluepyopt:.4f}**", "", "",
                    f"{harness.median(rows, 's_hpcopt'):.2f}", f"{harness.median(rows, 's_bluepyopt'):.2f}"),
        "",
        f"Ratio of medians, hpcopt / BluePyOpt: **{ratio:.4f}**. "
        f"Target (ratio >= 1.0): **{harness.verdict(ratio >= 1.0)}**.",
        "",
        budget_note,
        "",
        "Wall times are information only: hpcopt's include starting the `hpcopt` process "
        "(and MPI) and writing the HDF5 run file; BluePyOpt runs in this process. " + run.tail(),
    ]
    target = harness.target(
        f"IBEA on ZDT1 ({DIMENSION} variables, {args.budget} evaluations), median hypervolume over "
        f"{len(rows)} seeds, hpcopt / BluePyOpt", ">= 1.0", f"{ratio:.4f}", ratio >= 1.0)
    return "\n".join(lines) + "\n", [target]


def arguments():
    parser = harness.parser(__doc__, NAME, "2 seeds, for a smoke test", seeds=5)
    parser.add_argument("--budget", type=int, default=2000,
                        help="evaluations per run (default 2000)")
    parser.add_argument("--population", type=int, default=50,
                        help="hpcopt population and offspring, BluePyOpt offspring_size "
                        "(default 50)")
    parser.add_argument("--ranks", type=int, default=1,
                        help="run hpcopt under mpiexec -n N (default 1)")
    args = harness.parse(parser, quick={"seeds": 2})
    for name in ("seeds", "budget", "population", "ranks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, found {getattr(args, name)}")
    if args.budget % args.population:
        parser.error(f"--budget {args.budget} must be a multiple of --population {args.population}")
    return args


def main():
    args = arguments()
    generations = args.budget // args.population
    max_ngen = bluepyopt_generations(args.budget, args.population)

    run = harness.Run(NAME, PACKAGES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="zdt1_bench_") as workdir:
        for seed in range(1, args.seeds + 1):
            F_hpcopt, s_hpcopt = run_hpcopt(seed, args.population, generations, args.ranks, workdir)
            assert len(F_hpcopt) == args.budget, (
                f"hpcopt evaluated {len(F_hpcopt)}, budget {args.budget}"
            )
            F_bluepyopt, s_bluepyopt = run_bluepyopt(seed, args.population, max_ngen)
            assert len(F_bluepyopt) >= args.budget, (
                f"BluePyOpt evaluated {len(F_bluepyopt)} < budget {args.budget} "
                f"with max_ngen {max_ngen}"
            )
            rows.append({
                "seed": seed,
                "hv_hpcopt": hypervolume_2d(F_hpcopt),
                "hv_bluepyopt": hypervolume_2d(F_bluepyopt),
                "n_hpcopt": len(F_hpcopt),
                "n_bluepyopt": len(F_bluepyopt),
                "s_hpcopt": s_hpcopt,
                "s_bluepyopt": s_bluepyopt,
            })
            harness.note(f"seed {seed}: hpcopt {rows[-1]['hv_hpcopt']:.4f} ({s_hpcopt:.2f} s), "
                         f"BluePyOpt {rows[-1]['hv_bluepyopt']:.4f} ({s_bluepyopt:.2f} s)")
    run.stop()
    text, targets = report(run, rows, args, max_ngen)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
