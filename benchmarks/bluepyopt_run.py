"""A whole optimisation, hpcopt against BluePyOpt: same model, same cores, same evaluations.

Targets (from the project's issues):
- wall time of the whole optimisation, hpcopt / BluePyOpt <= 0.75, with N = 2 processes
  on the 2-core machine, the same number of evaluations;
- the two score parameter sets the same: the largest absolute difference of any objective,
  over parameter sets that BluePyOpt's run evaluated and hpcopt re-evaluates, <= 1e-3
  (the tolerance of tests/test_bluepyopt.py).

The model: tests/data/l5pc_like (BluePyOpt L5PC file formats, multi-compartment, axon
replacement, an own .mod mechanism, 8 free parameters, 29 objectives).

- hpcopt: ``mpiexec -n N hpcopt run CONFIG -o RUN.h5 -q`` with
  ``{"problem": {"bluepyopt": {the model's files, "replace_axon": true}},
  "optimizer": {"algorithm": "ibea", "population": P, "offspring": P, "generations": G}}``:
  P x G evaluations (generation 0 is the initial population). Timed: the whole command
  (MPI start, imports, building the cell on every rank, the run file).
- BluePyOpt: ``IBEADEAPOptimisation(evaluator, offspring_size=P, map_function=pool.map,
  seed=1).run(max_ngen=G)``, the evaluator from tests/bluepyopt_reference.py
  ``build_evaluator(model_dir)`` (its L5PC example's code), ``pool`` a
  ``multiprocessing.Pool(N)``, as its users run it: P x G evaluations (the initial
  population, then G - 1 generations of P offspring). Timed: creating the pool and the run.
  A plain Pool's workers are daemonic and may not fork, and BluePyOpt's default evaluator
  runs every protocol in a forked process, so with a plain Pool it must be built with
  ``isolate_protocols=False`` (its faster setting, see evaluation_overhead.md): the target
  is judged against that. BluePyOpt's default (forked protocols) runs too, in a
  non-daemonic pool (what BluePyEModel's ``NestedPool`` does), for comparison.

Evaluations are counted on both sides (the run file's rows; every parameter set passed to
BluePyOpt's map function). Both runs use the same model and cores but each optimiser picks
its own parameter sets, whose simulation times differ (a silent cell integrates faster
than a spiking one): the report gives the mean seconds per evaluation on each side. The
same parameter sets are checked by ``hpcopt evaluate CONFIG --params P.json --json`` on
some that BluePyOpt evaluated (its scores as its map function returned them). The report
also gives hpcopt's scheduler efficiency in this run (benchmarks/scheduler.py's measure).

Mechanisms are compiled before anything is timed (hpcopt's cache and BluePyOpt's).
This is a measurement: it prints (and writes to benchmarks/results/bluepyopt_run.md and
bluepyopt_run.json) the ratio and whether the targets are met, and exits 0 either way.

    python benchmarks/bluepyopt_run.py            # P = 20, G = 10: 200 evaluations per tool
    python benchmarks/bluepyopt_run.py --quick    # P = 8, G = 3: 24 evaluations (CI smoke run)
"""

import functools
import json
import multiprocessing
import multiprocessing.pool
import sys
import tempfile
from pathlib import Path

import harness
import numpy as np
from scheduler import generation_table

NAME = "bluepyopt_run"
PACKAGES = ("hpcopt", "bluepyopt", "deap", "neuron", "efel", "mpi4py", "mpich")
TESTS = Path(__file__).resolve().parents[1] / "tests"
MODEL = TESTS / "data" / "l5pc_like"
RATIO_TARGET, SCORE_TOLERANCE = 0.75, 1e-3


def model_files():
    """``problem.bluepyopt`` of tests/data/l5pc_like (absolute paths), as tests/test_bluepyopt.py."""
    files = {key: str(MODEL / "config" / f"{key}.json") for key in ("mechanisms", "parameters", "protocols",
                                                                      "features")}
    return {"morphology": str(MODEL / "morphology" / "cell.swc"), **files,
            "mod_dir": str(MODEL / "mechanisms"), "replace_axon": True}


def hpcopt_config(workdir, population, generations):
    config = {"problem": {"bluepyopt": model_files()},
              "optimizer": {"algorithm": "ibea", "population": population, "offspring": population,
                            "generations": generations, "seed": 1}}
    return harness.write_json(Path(workdir) / "config.json", config)


def hpcopt_evaluate(config, params, workdir, label):
    """``hpcopt evaluate CONFIG --params P.json --json``: {objective: score}, status."""
    path = harness.write_json(Path(workdir) / f"params_{label}.json", params)
    result = json.loads(harness.hpcopt(["evaluate", config, "--params", path, "--json"]).stdout)
    return result["objectives"], result["status"]


def run_hpcopt(config, ranks, workdir):
    runfile, wall = harness.hpcopt_run(config, workdir, "run", ranks)
    rows = generation_table(runfile, ranks)
    seconds = np.concatenate([r["seconds"] for r in rows])
    scores, = harness.generations(runfile, "score")
    first, last = rows[0]["start"], rows[-1]["end"]
    return {"wall": wall, "evaluations": len(seconds), "eval_mean": float(seconds.mean()),
            "eval_sum": float(seconds.sum()), "best": float(scores.min()), "generations_seconds": last - first,
            "efficiency": harness.median(rows, "efficiency"),
            "efficiency_min": min(r["efficiency"] for r in rows),
            "utilisation": float(seconds.sum()) / ranks / (last - first)}


# ---------------------------------------------------------------- BluePyOpt


class _NoDaemonProcess(multiprocessing.get_context("fork").Process):
    """A pool worker that may fork (BluePyEModel's NestedPool does the same)."""

    @property
    def daemon(self):
        return False

    @daemon.setter
    def daemon(self, value):
        pass


class _NoDaemonContext(type(multiprocessing.get_context("fork"))):
    Process = _NoDaemonProcess


class NestedPool(multiprocessing.pool.Pool):
    """multiprocessing.Pool whose workers are not daemonic, so BluePyOpt can fork protocols."""

    def __init__(self, *args, **kwargs):
        kwargs["context"] = _NoDaemonContext()
        super().__init__(*args, **kwargs)


class CountingMap:
    """BluePyOpt's map_function: pool.map, recording every parameter set, its scores and seconds."""

    def __init__(self, pool):
        self.pool, self.items, self.results, self.seconds = pool, [], [], []

    def __call__(self, function, iterable):
        items = list(iterable)
        out = self.pool.map(functools.partial(harness.timed, function), items)
        self.items += [list(item) for item in items]
        self.results += [list(result) for result, _ in out]
        self.seconds += [seconds for _, seconds in out]
        return [result for result, _ in out]


def run_bluepyopt(population, generations, ranks, isolate):
    """One BluePyOpt IBEA run with a pool of ``ranks`` processes; a result dict."""
    sys.path.insert(0, str(TESTS))
    import bluepyopt.deapext.optimisations as optimisations
    import bluepyopt_reference as reference

    evaluator = reference.build_evaluator(str(MODEL), isolate_protocols=None if isolate else False)
    with harness.Timer() as timer, (NestedPool if isolate else multiprocessing.Pool)(ranks) as pool:
        counting = CountingMap(pool)
        optimisation = optimisations.IBEADEAPOptimisation(evaluator=evaluator, offspring_size=population,
                                                          map_function=counting, seed=1)
        _, _, log, _ = optimisation.run(max_ngen=generations)
    wall = timer.seconds
    objectives = [objective.name for objective in evaluator.fitness_calculator.objectives]
    return {"wall": wall, "evaluations": len(counting.items), "nevals": sum(r["nevals"] for r in log),
            "eval_mean": float(np.mean(counting.seconds)), "eval_sum": float(np.sum(counting.seconds)),
            "best": float(min(sum(r) for r in counting.results)), "param_names": list(evaluator.param_names),
            "objectives": objectives, "items": counting.items, "results": counting.results}


# ---------------------------------------------------------------- report


def report(run, args, hpcopt, bluepyopt, nested, checks):
    ratio = hpcopt["wall"] / bluepyopt["wall"]
    worst = max(c["difference"] for c in checks)
    met_ratio, met_scores = ratio <= RATIO_TARGET, worst <= SCORE_TOLERANCE
    versus_default = f"{hpcopt['wall'] / nested['wall']:.3f}" if nested else None
    lines = [
        *run.header("A whole optimisation: hpcopt vs BluePyOpt, same model, same cores"),
        "- Model: tests/data/l5pc_like (8 free parameters, 29 objectives, axon replacement, own .mod)",
        f"- hpcopt: `mpiexec -n {args.ranks} hpcopt run CONFIG -o RUN.h5 -q`, IBEA, population = offspring = "
        f"{args.population}, {args.generations} generations, seed 1",
        f"- BluePyOpt: `IBEADEAPOptimisation(evaluator, offspring_size={args.population}, "
        f"map_function=pool.map, seed=1).run(max_ngen={args.generations})`, evaluator "
        "`bluepyopt_reference.build_evaluator(model_dir, isolate_protocols=False)` with "
        f"`multiprocessing.Pool({args.ranks})`" + (
            f"; and with BluePyOpt's default (protocols in forked processes) in a non-daemonic "
            f"pool of {args.ranks}" if nested else ""),
        "",
        *runs_table(args, hpcopt, bluepyopt, nested),
        "",
        "Targets:",
        "",
        f"- wall time hpcopt / BluePyOpt (isolate_protocols=False, its faster setting): {ratio:.3f} "
        f"<= {RATIO_TARGET}: **{harness.verdict(met_ratio)}**"
        + (f" (against BluePyOpt's default: {versus_default})" if nested else ""),
        f"- largest score difference over {len(checks)} parameter sets BluePyOpt evaluated: {worst:.3g} "
        f"<= {SCORE_TOLERANCE:g}: **{harness.verdict(met_scores)}**",
        "",
        "hpcopt's run in detail: "
        f"{hpcopt['generations_seconds']:.1f} s of generations (first ask to last tell) of {hpcopt['wall']:.1f} s "
        f"(the rest: MPI start, imports, building the cell, the run file); scheduler efficiency (perfect greedy "
        f"makespan / generation time, benchmarks/scheduler.py) median {hpcopt['efficiency']:.3f}, min "
        f"{hpcopt['efficiency_min']:.3f}; utilisation during the generations {hpcopt['utilisation']:.3f}.",
        "",
        "Equal evaluation counts: BluePyOpt's count is every parameter set its map function received; "
        "hpcopt's the run file's rows. Mean seconds per evaluation differ partly because each optimiser "
        "visits its own parameter sets.",
        "",
        "### Same parameter sets, same scores",
        "",
        *harness.table("set (BluePyOpt's evaluation #)", "hpcopt status", "BluePyOpt score sum>",
                       "hpcopt score sum>", "max abs difference>", "objectives compared>"),
    ]
    for c in checks:
        lines.append(harness.row(c["label"], c["status"], f"{c['theirs']:.4f}", f"{c['ours']:.4f}",
                                 f"{c['difference']:.3g}", c["compared"]))
    lines += ["", run.tail()]
    targets = [
        harness.target(
            f"whole optimisation wall time, hpcopt / BluePyOpt (l5pc_like, IBEA, {hpcopt['evaluations']} "
            f"evaluations each, {args.ranks} processes; BluePyOpt with isolate_protocols=False"
            + (f"; vs its default {versus_default}" if nested else "") + ")",
            f"<= {RATIO_TARGET}", f"{ratio:.3f}", met_ratio),
        harness.target(
            f"same scores as BluePyOpt for {len(checks)} parameter sets its run evaluated (max abs difference)",
            f"<= {SCORE_TOLERANCE:g}", f"{worst:.3g}", met_scores),
    ]
    return "\n".join(lines) + "\n", targets


def runs_table(args, hpcopt, bluepyopt, nested):
    """The table of the runs: hpcopt's, BluePyOpt's and (if it ran) BluePyOpt's default."""
    lines = [
        *harness.table("run", "evaluations>", "wall s>", "hpcopt / this>", "mean s per evaluation (in the worker)>",
                       "sum of evaluation s / processes / wall>", "best score (sum of objectives)>"),
        harness.row(f"hpcopt, {args.ranks} ranks", hpcopt["evaluations"], f"{hpcopt['wall']:.1f}", "1.000",
                    f"{hpcopt['eval_mean']:.3f}", f"{hpcopt['eval_sum'] / args.ranks / hpcopt['wall']:.3f}",
                    f"{hpcopt['best']:.2f}"),
    ]
    for name, r in (("BluePyOpt, Pool, isolate_protocols=False", bluepyopt),
                    ("BluePyOpt default (forked protocols), non-daemonic pool", nested)):
        if r is None:
            continue
        lines.append(harness.row(name, f"{r['evaluations']} (logbook: {r['nevals']})", f"{r['wall']:.1f}",
                                 f"{hpcopt['wall'] / r['wall']:.3f}", f"{r['eval_mean']:.3f}",
                                 f"{r['eval_sum'] / args.ranks / r['wall']:.3f}", f"{r['best']:.2f}"))
    return lines


def check_scores(config, bluepyopt, n, workdir):
    """hpcopt's scores of parameter sets BluePyOpt evaluated: the first one, its best, then evenly
    spaced ones, ``n`` in all; a list of dicts."""
    count = len(bluepyopt["items"])
    sums = [sum(r) for r in bluepyopt["results"]]
    chosen = [0, int(np.argmin(sums))] + [int(i) for i in np.linspace(0, count - 1, n + 2)[1:-1]]
    chosen = list(dict.fromkeys(chosen))[:n]
    checks = []
    for k in chosen:
        params = dict(zip(bluepyopt["param_names"], bluepyopt["items"][k]))
        ours, status = hpcopt_evaluate(config, params, workdir, f"check{k}")
        theirs = dict(zip(bluepyopt["objectives"], bluepyopt["results"][k]))
        common = [name for name in theirs if name in ours]
        difference = max(abs(ours[name] - theirs[name]) for name in common) if common else float("inf")
        if len(common) != len(theirs) or len(common) != len(ours):
            difference = float("inf")  # objective names differ: not the same scores
        checks.append({"label": f"#{k + 1}" + (" (its best)" if k == int(np.argmin(sums)) else ""),
                       "status": status, "theirs": sum(theirs.values()), "ours": sum(ours.values()),
                       "difference": difference, "compared": len(common)})
    return checks


def arguments():
    parser = harness.parser(__doc__, NAME, "P = 8, G = 3, 1 check (CI smoke run)")
    parser.add_argument("--population", type=int, default=20, help="P: population = offspring (default 20)")
    parser.add_argument("--generations", type=int, default=10, help="G (default 10): P x G evaluations")
    parser.add_argument("--ranks", type=int, default=2, help="N: MPI ranks and pool processes (default 2)")
    parser.add_argument("--checks", type=int, default=3, help="parameter sets re-evaluated by hpcopt (default 3)")
    parser.add_argument("--no-default-isolation", action="store_true",
                        help="skip BluePyOpt's default (forked protocols) in a non-daemonic pool")
    args = harness.parse(parser, quick={"population": 8, "generations": 3, "checks": 1})
    if min(args.population, args.generations, args.ranks, args.checks) < 1:
        parser.error("--population, --generations, --ranks and --checks must be >= 1")
    return args


def main():
    args = arguments()
    run = harness.Run(NAME, PACKAGES)
    with tempfile.TemporaryDirectory(prefix="bluepyopt_run_") as workdir:
        config = hpcopt_config(workdir, args.population, args.generations)
        release = json.loads((MODEL / "config" / "params_release.json").read_text())
        hpcopt_evaluate(config, release, workdir, "warmup")  # compiles hpcopt's mechanisms: not timed
        sys.path.insert(0, str(TESTS))
        import bluepyopt_reference as reference

        reference.load_mechanisms(str(MODEL))  # compiled and loaded before the pools fork: not timed

        hpcopt = run_hpcopt(config, args.ranks, workdir)
        harness.note(f"hpcopt: {hpcopt['evaluations']} evaluations in {hpcopt['wall']:.1f} s")
        bluepyopt = run_bluepyopt(args.population, args.generations, args.ranks, isolate=False)
        harness.note(f"BluePyOpt (isolate_protocols=False): {bluepyopt['evaluations']} evaluations in "
                     f"{bluepyopt['wall']:.1f} s")
        nested = None
        if not args.no_default_isolation:
            nested = run_bluepyopt(args.population, args.generations, args.ranks, isolate=True)
            harness.note(f"BluePyOpt (default, forked protocols): {nested['evaluations']} evaluations in "
                         f"{nested['wall']:.1f} s")
        checks = check_scores(config, bluepyopt, args.checks, workdir)
    run.stop()
    text, targets = report(run, args, hpcopt, bluepyopt, nested, checks)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
