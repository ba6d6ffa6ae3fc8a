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

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import targets

from hpcopt.testfunctions import zdt1

DIMENSION = 10
NAMES = tuple(f"x{i}" for i in range(DIMENSION))
OBJECTIVES = ("f1", "f2")
REFERENCE = (1.1, 1.1)
# Hypervolume of ZDT1's true Pareto front f2 = 1 - sqrt(f1), f1 in [0, 1], for REFERENCE:
# the box 1.1 x 1.1 minus the area 1/3 under the front.
FRONT_HYPERVOLUME = REFERENCE[0] * REFERENCE[1] - 1 / 3
RESULTS = Path(__file__).resolve().parent / "results" / "zdt1_hypervolume.md"


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


def hpcopt_command(config, runfile, ranks):
    """The command line of one hpcopt run: the venv's hpcopt, under its mpiexec if ranks > 1."""
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "hpcopt"), "run", str(config), "-o", str(runfile), "-q"]
    if ranks > 1:
        command = [str(bin_dir / "mpiexec"), "-n", str(ranks), *command]
    return command


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
    config_path = Path(workdir) / f"zdt1_seed{seed}.json"
    runfile = Path(workdir) / f"zdt1_seed{seed}.h5"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    start = time.perf_counter()
    command = hpcopt_command(config_path, runfile, ranks)
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"hpcopt run failed (exit {done.returncode}):\n{done.stderr}")
    with h5py.File(runfile, "r") as f:
        names = [str(name) for name in f.attrs["objective_names"]]
        if names != list(OBJECTIVES):
            raise RuntimeError(f"run file objectives are {names}, expected {list(OBJECTIVES)}")
        groups = f["generations"]
        F = np.concatenate([groups[name]["objectives"][()] for name in sorted(groups)])
    return F, seconds


# ---------------------------------------------------------------- BluePyOpt


def bluepyopt_evaluator():
    """A BluePyOpt evaluator of ZDT1 that records every objective vector it computes.

    The class is built here so that BluePyOpt is imported only when it runs.
    """
    import bluepyopt.evaluators
    import bluepyopt.objectives
    import bluepyopt.parameters

    class ZDT1Evaluator(bluepyopt.evaluators.Evaluator):
        """ZDT1 on x0..x9 in [0, 1]; ``evaluated`` lists the objectives of every call."""

        def __init__(self):
            super().__init__(
                objectives=[bluepyopt.objectives.Objective(name) for name in OBJECTIVES],
                params=[bluepyopt.parameters.Parameter(name, bounds=[0.0, 1.0]) for name in NAMES],
            )
            self.evaluated = []

        def evaluate_with_dicts(self, param_dict):
            """{objective: value} of {parameter: value}; every call is recorded."""
            objectives = zdt1({name: param_dict[name] for name in NAMES})
            self.evaluated.append([objectives[name] for name in OBJECTIVES])
            return objectives

        def evaluate_with_lists(self, param_list):
            """Objective values (list, OBJECTIVES order) of the parameter values (list)."""
            objectives = self.evaluate_with_dicts(dict(zip(NAMES, param_list)))
            return [objectives[name] for name in OBJECTIVES]

        def init_simulator_and_evaluate_with_lists(self, param_list):
            """What DEAPOptimisation registers as its evaluation function."""
            return self.evaluate_with_lists(param_list)

    return ZDT1Evaluator()


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

    evaluator = bluepyopt_evaluator()
    start = time.perf_counter()
    optimisation = bluepyopt.deapext.optimisations.IBEADEAPOptimisation(
        evaluator=evaluator, offspring_size=population, seed=seed
    )
    optimisation.run(max_ngen=max_ngen)
    seconds = time.perf_counter() - start
    return np.array(evaluator.evaluated, dtype=np.float64), seconds


# ---------------------------------------------------------------- report


def versions():
    """{package: installed version} of the packages the result depends on."""
    packages = ("hpcopt", "bluepyopt", "deap", "numpy")
    return {package: metadata.version(package) for package in packages}


def report(rows, args, max_ngen, seconds_total):
    """The markdown report: settings, one table row per seed, medians, ratio and verdict.

    rows: dicts with seed, hv_hpcopt, hv_bluepyopt, n_hpcopt, n_bluepyopt, s_hpcopt,
    s_bluepyopt (hypervolumes, evaluation counts, wall seconds).
    """
    generations = args.budget // args.population
    median_hpcopt = statistics.median(row["hv_hpcopt"] for row in rows)
    median_bluepyopt = statistics.median(row["hv_bluepyopt"] for row in rows)
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
    now = datetime.datetime.now(datetime.timezone.utc)
    hpcopt_line = shlex.join(["hpcopt", "run", "CONFIG", "-o", "RUN.h5", "-q"])
    if args.ranks > 1:
        hpcopt_line = f"mpiexec -n {args.ranks} {hpcopt_line}"
    lines = [
        "# IBEA on ZDT1: hypervolume, hpcopt vs BluePyOpt",
        "",
        f"- Command: `{shlex.join([os.path.relpath(sys.executable), *sys.argv])}`",
        f"- Date (UTC): {now:%Y-%m-%d %H:%M:%S}",
        f"- Machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions().items()),
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
        "| seed | hpcopt HV | BluePyOpt HV | hpcopt evaluations | BluePyOpt evaluations "
        "| hpcopt wall s | BluePyOpt wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['seed']} | {row['hv_hpcopt']:.4f} | {row['hv_bluepyopt']:.4f} "
            f"| {row['n_hpcopt']} | {row['n_bluepyopt']} "
            f"| {row['s_hpcopt']:.2f} | {row['s_bluepyopt']:.2f} |"
        )
    lines += [
        f"| **median** | **{median_hpcopt:.4f}** | **{median_bluepyopt:.4f}** | | | "
        f"{statistics.median(row['s_hpcopt'] for row in rows):.2f} "
        f"| {statistics.median(row['s_bluepyopt'] for row in rows):.2f} |",
        "",
        f"Ratio of medians, hpcopt / BluePyOpt: **{ratio:.4f}**. "
        f"Target (ratio >= 1.0): **{'met' if ratio >= 1.0 else 'NOT met'}**.",
        "",
        budget_note,
        "",
        "Wall times are information only: hpcopt's include starting the `hpcopt` process "
        "(and MPI) and writing the HDF5 run file; BluePyOpt runs in this process. "
        f"Whole benchmark: {seconds_total:.1f} s.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=5, help="number of seeds, 1..N (default 5)")
    seeds.add_argument("--quick", action="store_true", help="2 seeds, for a smoke test")
    parser.add_argument("--budget", type=int, default=2000,
                        help="evaluations per run (default 2000)")
    parser.add_argument("--population", type=int, default=50,
                        help="hpcopt population and offspring, BluePyOpt offspring_size "
                        "(default 50)")
    parser.add_argument("--ranks", type=int, default=1,
                        help="run hpcopt under mpiexec -n N (default 1)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    if args.quick:
        args.seeds = 2
    for name in ("seeds", "budget", "population", "ranks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, found {getattr(args, name)}")
    if args.budget % args.population:
        parser.error(f"--budget {args.budget} must be a multiple of --population {args.population}")
    generations = args.budget // args.population
    max_ngen = bluepyopt_generations(args.budget, args.population)

    start, load = time.perf_counter(), os.getloadavg()
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
            print(f"seed {seed}: hpcopt {rows[-1]['hv_hpcopt']:.4f} ({s_hpcopt:.2f} s), "
                  f"BluePyOpt {rows[-1]['hv_bluepyopt']:.4f} ({s_bluepyopt:.2f} s)",
                  file=sys.stderr)
    seconds = time.perf_counter() - start
    text = report(rows, args, max_ngen, seconds)
    print(text)
    if not args.no_write:
        ratio = (statistics.median(row["hv_hpcopt"] for row in rows)
                 / statistics.median(row["hv_bluepyopt"] for row in rows))
        path = targets.write("zdt1_hypervolume", RESULTS, text, [targets.target(
            f"IBEA on ZDT1 ({DIMENSION} variables, {args.budget} evaluations), median hypervolume over "
            f"{len(rows)} seeds, hpcopt / BluePyOpt", ">= 1.0", f"{ratio:.4f}", ratio >= 1.0)],
            seconds=seconds, load=(load[0], os.getloadavg()[0]), packages=("hpcopt", "bluepyopt", "deap", "numpy"))
        print(f"written to {RESULTS} and {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
