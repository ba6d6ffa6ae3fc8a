"""Search quality on the built-in cell: hpcopt's IBEA and CMA-ES against BluePyOpt's.

Targets (from the project's issues): on the built-in cell (examples/cell: 5 sections, 5
free parameters, 3 protocols, 12 features), the best score found after the same number of
evaluations, median over 5 seeds, is at least as good (as low) for hpcopt as for BluePyOpt,
for IBEA and for CMA-ES.

Both optimisers see the same objective function: hpcopt's own evaluation of the cell
(``Problem(config).evaluator()``: NEURON, eFEL, the scores of the config's features), which
BluePyOpt calls through an ``Evaluator`` that records every point it is asked for. So the
comparison is of the optimisers alone. hpcopt runs through its command line (``mpiexec -n 2
hpcopt run``) with the example's config, only the algorithm, population, generations and
seed changed; BluePyOpt runs ``IBEADEAPOptimisation`` and ``DEAPOptimisationCMA``
(``selector_name="single_objective"``) with their defaults and ``offspring_size`` equal to
hpcopt's population. The score of a point is the sum of its objectives (hpcopt's ``score``
with weights 1); a run's result is the lowest score among all points it evaluated within
the budget. CMA-ES may stop before the budget (its own criteria): then its best so far
counts.

This is a measurement: it prints (and writes to benchmarks/results/cell_quality.md and
cell_quality.json) the best scores and whether the targets are met, and exits 0 either way.

    python benchmarks/cell_vs_bluepyopt.py            # 5 seeds, 600 evaluations per run
    python benchmarks/cell_vs_bluepyopt.py --quick    # 2 seeds, 60 evaluations (CI smoke run)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import targets as results_json

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "cell" / "config.json"
RESULTS = HERE / "results" / "cell_quality.md"
BIN = Path(sys.executable).parent
POPULATION = 12


def run_hpcopt(algorithm, seed, generations, workdir):
    """One hpcopt run of the example; the scores of every evaluated point, in order."""
    config = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    config["optimizer"] = {"algorithm": algorithm, "population": POPULATION, "generations": generations,
                           "seed": seed}
    config.pop("output", None)
    _resolve_paths(config["problem"]["cell"], EXAMPLE.parent)
    path = Path(workdir) / f"cell_{algorithm}_{seed}.json"
    runfile = Path(workdir) / f"cell_{algorithm}_{seed}.h5"
    path.write_text(json.dumps(config), encoding="utf-8")
    done = subprocess.run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "hpcopt"), "run", str(path), "-o",
                           str(runfile), "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"hpcopt run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    with h5py.File(runfile, "r") as f:
        groups = f["generations"]
        return np.concatenate([groups[name]["score"][()] for name in sorted(groups)])


def _resolve_paths(cell, base):
    """Make the example's relative file paths (mechanisms, morphology) absolute."""
    for key in ("mechanisms", "morphology"):
        value = cell.get(key)
        if isinstance(value, str) and not os.path.isabs(value):
            cell[key] = str(base / value)


class Recorder:
    """hpcopt's evaluation of the example cell, as BluePyOpt's evaluator calls it."""

    def __init__(self):
        from hpcopt import config as configuration
        from hpcopt.problem import Problem

        raw = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        config = configuration.parse(raw, source=str(EXAMPLE), base_dir=str(EXAMPLE.parent))
        self.problem = Problem(config)
        self.problem.prepare()
        self.evaluate = self.problem.evaluator()
        self.scores = []

    def __call__(self, values):
        outcome = self.evaluate(np.asarray(values, dtype=float))
        self.scores.append(float(np.sum(outcome.objectives)))
        return [float(v) for v in outcome.objectives]


def bluepyopt_evaluator(recorder):
    import bluepyopt.evaluators
    import bluepyopt.objectives
    import bluepyopt.parameters

    problem = recorder.problem

    class CellEvaluator(bluepyopt.evaluators.Evaluator):
        def __init__(self):
            super().__init__(
                objectives=[bluepyopt.objectives.Objective(name) for name in problem.objectives],
                params=[bluepyopt.parameters.Parameter(name, bounds=[float(lo), float(hi)])
                        for name, lo, hi in zip(problem.names, problem.lower, problem.upper)],
            )

        def evaluate_with_lists(self, param_list):
            return recorder(param_list)

        def init_simulator_and_evaluate_with_lists(self, param_list):
            return recorder(param_list)

    return CellEvaluator()


def run_bluepyopt(recorder, algorithm, seed, generations):
    """One BluePyOpt run on the recorder; the scores of every point it evaluated, in order."""
    import warnings

    from bluepyopt.deapext.optimisations import IBEADEAPOptimisation
    from bluepyopt.deapext.optimisationsCMA import DEAPOptimisationCMA

    recorder.scores = []
    evaluator = bluepyopt_evaluator(recorder)
    if algorithm == "ibea":
        optimisation = IBEADEAPOptimisation(evaluator=evaluator, offspring_size=POPULATION, seed=seed)
    else:
        optimisation = DEAPOptimisationCMA(evaluator=evaluator, offspring_size=POPULATION, seed=seed,
                                           selector_name="single_objective")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optimisation.run(max_ngen=generations)
    return np.array(recorder.scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=50,
                        help=f"generations of {POPULATION} (default 50: 600 evaluations per run)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 5 generations (CI smoke run)")
    parser.add_argument("--no-write", action="store_true", help="do not write results/cell_quality.{md,json}")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.generations = 2, 5
    budget = POPULATION * args.generations
    start, load = time.perf_counter(), os.getloadavg()
    recorder = Recorder()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cell_bench_") as workdir:
        for algorithm in ("ibea", "cmaes"):
            for seed in range(1, args.seeds + 1):
                t0 = time.perf_counter()
                ours = run_hpcopt(algorithm, seed, args.generations, workdir)[:budget]
                t1 = time.perf_counter()
                theirs = run_bluepyopt(recorder, algorithm, seed, args.generations)[:budget]
                t2 = time.perf_counter()
                rows.setdefault(algorithm, []).append({
                    "seed": seed, "hpcopt": float(ours.min()), "bluepyopt": float(theirs.min()),
                    "n_hpcopt": len(ours), "n_bluepyopt": len(theirs), "s_hpcopt": t1 - t0, "s_bluepyopt": t2 - t1,
                })
                print(f"{algorithm} seed {seed}: best hpcopt {ours.min():.4g} ({len(ours)} evaluations), "
                      f"BluePyOpt {theirs.min():.4g} ({len(theirs)})", file=sys.stderr)
    seconds = time.perf_counter() - start
    text, target_rows = report(rows, args, budget, seconds, load)
    print(text)
    if not args.no_write:
        path = results_json.write("cell_quality", RESULTS, text, target_rows, seconds=seconds,
                                  load=(load[0], os.getloadavg()[0]),
                                  packages=("hpcopt", "bluepyopt", "deap", "cma", "neuron", "efel"))
        print(f"written to {RESULTS} and {path}", file=sys.stderr)


def report(rows, args, budget, seconds, load):
    now = results_json.now()
    lines = [
        "# Search quality on the built-in cell: hpcopt against BluePyOpt",
        "",
        f"- Command: `{results_json.command()}`",
        f"- Date (UTC): {now:%Y-%m-%d %H:%M:%S}",
        f"- Machine: {results_json.machine()}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in results_json.versions(
            "hpcopt", "bluepyopt", "deap", "cma", "neuron", "efel").items()),
        f"- Load average (1 min) at the start and end: {load[0]:.2f}, {os.getloadavg()[0]:.2f}",
        f"- Problem: examples/cell (hpcopt's evaluation of it for both optimisers); score = sum of the "
        f"objectives; budget {budget} evaluations per run (population / offspring {POPULATION}, "
        f"{args.generations} generations); seeds 1 to {args.seeds}",
        "- hpcopt: `mpiexec -n 2 hpcopt run` of the example's config with algorithm, population, generations "
        "and seed set; BluePyOpt: IBEADEAPOptimisation / DEAPOptimisationCMA (single_objective) with their "
        f"defaults, offspring_size {POPULATION}, in this process",
        "",
    ]
    target_rows = []
    for algorithm, label in (("ibea", "IBEA"), ("cmaes", "CMA-ES")):
        lines += [f"## {label}", "", "| seed | best hpcopt | best BluePyOpt | evaluations hpcopt / BluePyOpt "
                  "| seconds hpcopt / BluePyOpt |", "|---:|---:|---:|---:|---:|"]
        for row in rows[algorithm]:
            lines.append(f"| {row['seed']} | {row['hpcopt']:.6g} | {row['bluepyopt']:.6g} "
                         f"| {row['n_hpcopt']} / {row['n_bluepyopt']} "
                         f"| {row['s_hpcopt']:.1f} / {row['s_bluepyopt']:.1f} |")
        ours = statistics.median(row["hpcopt"] for row in rows[algorithm])
        theirs = statistics.median(row["bluepyopt"] for row in rows[algorithm])
        met = ours <= theirs
        lines += ["", f"Median best score: hpcopt {ours:.6g}, BluePyOpt {theirs:.6g}: "
                  f"**{'met' if met else 'NOT met'}** (lower is better)", ""]
        target_rows.append(results_json.target(
            f"{label} on the built-in cell (examples/cell), median best score over {len(rows[algorithm])} seeds "
            f"at {budget} evaluations, hpcopt vs BluePyOpt (lower is better)",
            "hpcopt <= BluePyOpt", f"{ours:.4g} vs {theirs:.4g}", met))
    lines.append(f"Whole benchmark: {seconds:.1f} s.")
    return "\n".join(lines) + "\n", target_rows


if __name__ == "__main__":
    main()
