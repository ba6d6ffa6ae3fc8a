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

import json
import tempfile
from pathlib import Path

import harness
import numpy as np

NAME = "cell_quality"
PACKAGES = ("hpcopt", "bluepyopt", "deap", "cma", "neuron", "efel")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cell" / "config.json"
POPULATION = 12


def run_hpcopt(algorithm, seed, generations, workdir):
    """One hpcopt run of the example; the scores of every evaluated point, in order."""
    config = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    config["optimizer"] = {"algorithm": algorithm, "population": POPULATION, "generations": generations,
                           "seed": seed}
    config.pop("output", None)
    harness.resolve_paths(config["problem"]["cell"], EXAMPLE.parent)
    runfile, _ = harness.hpcopt_run(config, workdir, f"cell_{algorithm}_{seed}", ranks=2)
    scores, = harness.generations(runfile, "score")
    return scores


class Recorder:
    """hpcopt's evaluation of the example cell, as BluePyOpt's evaluator calls it."""

    def __init__(self):
        from hpcopt import config as configuration
        from hpcopt.problem.space import Problem

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


def run_bluepyopt(recorder, algorithm, seed, generations):
    """One BluePyOpt run on the recorder; the scores of every point it evaluated, in order."""
    import warnings

    recorder.scores = []
    problem = recorder.problem
    evaluator = harness.bluepyopt_evaluator(problem.objectives, zip(problem.names, problem.lower, problem.upper),
                                            recorder)
    optimisation = harness.bluepyopt_optimisation(evaluator, algorithm, POPULATION, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optimisation.run(max_ngen=generations)
    return np.array(recorder.scores)


def arguments():
    parser = harness.parser(__doc__, NAME, "2 seeds, 5 generations (CI smoke run)", seeds=5)
    parser.add_argument("--generations", type=int, default=50,
                        help=f"generations of {POPULATION} (default 50: 600 evaluations per run)")
    return harness.parse(parser, quick={"seeds": 2, "generations": 5})


def main():
    args = arguments()
    budget = POPULATION * args.generations
    run = harness.Run(NAME, PACKAGES)
    recorder = Recorder()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cell_bench_") as workdir:
        for algorithm in ("ibea", "cmaes"):
            for seed in range(1, args.seeds + 1):
                ours, s_hpcopt = harness.timed(run_hpcopt, algorithm, seed, args.generations, workdir)
                theirs, s_bluepyopt = harness.timed(run_bluepyopt, recorder, algorithm, seed, args.generations)
                ours, theirs = ours[:budget], theirs[:budget]
                rows.setdefault(algorithm, []).append({
                    "seed": seed, "hpcopt": float(ours.min()), "bluepyopt": float(theirs.min()),
                    "n_hpcopt": len(ours), "n_bluepyopt": len(theirs), "s_hpcopt": s_hpcopt,
                    "s_bluepyopt": s_bluepyopt,
                })
                harness.note(f"{algorithm} seed {seed}: best hpcopt {ours.min():.4g} ({len(ours)} evaluations), "
                             f"BluePyOpt {theirs.min():.4g} ({len(theirs)})")
    run.stop()
    text, targets = report(run, rows, args, budget)
    run.finish(text, targets, args.no_write)


def report(run, rows, args, budget):
    lines = [
        *run.header("Search quality on the built-in cell: hpcopt against BluePyOpt"),
        f"- Problem: examples/cell (hpcopt's evaluation of it for both optimisers); score = sum of the "
        f"objectives; budget {budget} evaluations per run (population / offspring {POPULATION}, "
        f"{args.generations} generations); seeds 1 to {args.seeds}",
        "- hpcopt: `mpiexec -n 2 hpcopt run` of the example's config with algorithm, population, generations "
        "and seed set; BluePyOpt: IBEADEAPOptimisation / DEAPOptimisationCMA (single_objective) with their "
        f"defaults, offspring_size {POPULATION}, in this process",
        "",
    ]
    targets = []
    for algorithm, label in (("ibea", "IBEA"), ("cmaes", "CMA-ES")):
        lines += [f"## {label}", "", *harness.table("seed>", "best hpcopt>", "best BluePyOpt>",
                                                    "evaluations hpcopt / BluePyOpt>", "seconds hpcopt / BluePyOpt>")]
        for row in rows[algorithm]:
            lines.append(harness.row(row["seed"], f"{row['hpcopt']:.6g}", f"{row['bluepyopt']:.6g}",
                                     f"{row['n_hpcopt']} / {row['n_bluepyopt']}",
                                     f"{row['s_hpcopt']:.1f} / {row['s_bluepyopt']:.1f}"))
        ours, theirs = harness.median(rows[algorithm], "hpcopt"), harness.median(rows[algorithm], "bluepyopt")
        met = ours <= theirs
        lines += ["", f"Median best score: hpcopt {ours:.6g}, BluePyOpt {theirs:.6g}: "
                  f"**{harness.verdict(met)}** (lower is better)", ""]
        targets.append(harness.target(
            f"{label} on the built-in cell (examples/cell), median best score over {len(rows[algorithm])} seeds "
            f"at {budget} evaluations, hpcopt vs BluePyOpt (lower is better)",
            "hpcopt <= BluePyOpt", f"{ours:.4g} vs {theirs:.4g}", met))
    lines.append(run.tail())
    return "\n".join(lines) + "\n", targets


if __name__ == "__main__":
    main()
