"""Networks over several ranks per evaluation: time per evaluation and throughput at K = 1 and K = 2.

The network of examples/network/config.json (50 single-compartment HH cells, 500 ms at a
fixed 0.025 ms step, unchanged) is fitted by ``hpcopt run`` with a short CMA-ES budget
(population 4, 5 generations, seed 1; the example's own budget is 400 evaluations) in
three ways, each run in a temporary copy of the config that differs only in the budget,
``execution.ranks_per_evaluation`` and ``path`` (the example's folder, for its builder):

- ``1 rank, K=1``: ``hpcopt run`` alone, every evaluation on one rank;
- ``2 ranks, K=1``: ``mpiexec -n 2``, two groups of one rank, two evaluations at a time;
- ``2 ranks, K=2``: ``mpiexec -n 2``, one group of two ranks (a NEURON subworld of 2), the
  network's cells split over them, one evaluation at a time.

Measured from each run file (h5py): every evaluation's ``eval_seconds`` (the group leader's
wall time for it: build, integration, gathering and scoring), and the throughput, evaluations
per second from the first generation's ``start_time`` to the last one's ``end_time`` (and, for
comparison, over the command's wall time, MPI start-up included). Reported: per-evaluation
median and quartiles, and their ratio K=2 / K=1 (2 ranks K=2 against 1 rank K=1: what one
evaluation gains from a second rank; against 2 ranks K=1 as well), and the throughput ratio at
2 ranks, K=2 / K=1. The runs are repeated (``--repeats``) in turn, so that a change in the
machine's load falls on all three alike. Checked: the three runs evaluate the same points and
give bit-identical objectives (they must: docs/networks.md), the one target of this benchmark.

This is a measurement on a small network and a small, shared machine: see the report's notes.

    python benchmarks/network.py            # population 4 x 5 generations, 3 repeats of each run
    python benchmarks/network.py --quick    # 4 x 2 generations, 1 repeat (CI smoke run)
"""

import copy
import json
import tempfile
from pathlib import Path

import harness
import numpy as np

NAME = "network"
PACKAGES = ("hpcopt", "neuron", "mpi4py", "numpy", "h5py")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "network" / "config.json"
RUNS = (("1 rank, K=1", 1, 1), ("2 ranks, K=1", 2, 1), ("2 ranks, K=2", 2, 2))  # (label, ranks, K)
SEED = 1


def config(k, population, generations):
    """The example's config with a CMA-ES budget of population x generations and K ranks per evaluation;
    the network (problem.network) unchanged but for ``path``, so that its builder imports from elsewhere."""
    out = copy.deepcopy(json.loads(CONFIG.read_text(encoding="utf-8")))
    out["problem"]["network"]["path"] = [str(CONFIG.parent)]
    out["optimizer"] = {"algorithm": "cmaes", "population": population, "generations": generations, "seed": SEED}
    out["execution"] = {"ranks_per_evaluation": k}
    out.pop("output", None)
    return out


def read(runfile):
    """{x, objectives, eval_seconds, rank, span} of a run file: span is the seconds from the first
    generation's start_time to the last one's end_time."""
    import h5py

    x, objectives, seconds, rank = harness.generations(runfile, "parameters", "objectives", "eval_seconds", "rank")
    with h5py.File(runfile, "r") as f:
        groups = [f["generations"][name] for name in sorted(f["generations"])]
        span = float(groups[-1].attrs["end_time"] - groups[0].attrs["start_time"])
    return {"x": x, "objectives": objectives, "eval_seconds": seconds, "rank": rank, "span": span}


def run_all(args, workdir):
    """{label: [one read() per repeat, with its command's wall seconds]}, the runs in turn."""
    out = {label: [] for label, _, _ in RUNS}
    for repeat in range(args.repeats):
        for label, ranks, k in RUNS:
            stem = f"r{repeat}_n{ranks}_k{k}"
            runfile, wall = harness.hpcopt_run(config(k, args.population, args.generations), workdir, stem,
                                               ranks=None if ranks == 1 else ranks)
            result = read(runfile)
            result["wall"] = wall
            out[label].append(result)
            harness.note(f"repeat {repeat + 1}, {label}: {len(result['eval_seconds'])} evaluations, median "
                         f"{harness.ms(np.median(result['eval_seconds']))} ms each, {result['span']:.2f} s "
                         f"of generations, {wall:.2f} s wall")
    return out


def identical(results):
    """(every run evaluated the same points with bit-identical objectives, largest absolute difference
    of objectives to the first run, number of runs compared)."""
    runs = [r for label, _, _ in RUNS for r in results[label]]
    first = runs[0]
    same, worst = True, 0.0
    for r in runs[1:]:
        if r["x"].shape != first["x"].shape or r["objectives"].shape != first["objectives"].shape:
            return False, float("nan"), len(runs)
        same = same and r["x"].tobytes() == first["x"].tobytes() \
            and r["objectives"].tobytes() == first["objectives"].tobytes()
        worst = max(worst, float(np.max(np.abs(r["objectives"] - first["objectives"]))))
    return same, worst, len(runs)


def summary(runs):
    """Per-run-kind figures over its repeats."""
    seconds = np.concatenate([r["eval_seconds"] for r in runs])
    evaluations = sum(len(r["eval_seconds"]) for r in runs)
    return {"seconds": seconds, "median": float(np.median(seconds)), "evaluations": evaluations,
            "throughput": evaluations / sum(r["span"] for r in runs),
            "throughput_wall": evaluations / sum(r["wall"] for r in runs),
            "leaders": sorted({int(v) for r in runs for v in r["rank"]}),
            "busy": float(np.sum(seconds)) / sum(r["span"] for r in runs),
            "outside": float(np.mean([r["wall"] - r["span"] for r in runs]))}


def report(run, args, results):
    s = {label: summary(results[label]) for label, _, _ in RUNS}
    one, two_k1, two_k2 = (s[label] for label, _, _ in RUNS)
    per_eval_ratio = two_k2["median"] / one["median"]
    per_eval_ratio_2 = two_k2["median"] / two_k1["median"]
    throughput_ratio = two_k2["throughput"] / two_k1["throughput"]
    throughput_ratio_wall = two_k2["throughput_wall"] / two_k1["throughput_wall"]
    same, worst, n_runs = identical(results)
    lines = [
        *run.header("Networks: time per evaluation and throughput at K = 1 and K = 2 ranks per evaluation",
                    " (a shared machine: wall times include waiting for a CPU taken by other work)"),
        f"- Network: examples/network/config.json unchanged (50 single-compartment HH cells, 40 E and 10 I, "
        f"500 ms at dt 0.025 ms, 5 objectives); budget shortened to CMA-ES population {args.population} x "
        f"{args.generations} generations, seed {SEED}; each of the three runs repeated {args.repeats} times, "
        "in turn",
        "- Per evaluation: `eval_seconds` of the run file (the leader's wall time: build, integration, "
        "gathering, scoring). Throughput: evaluations / (last generation's end_time - first one's "
        "start_time); `wall`: evaluations / the command's wall time (MPI start-up and imports included)",
        "",
        "## Time per evaluation and throughput",
        "",
        *harness.table("run", "groups of K", "evaluations>", "median ms>", "quartiles ms (25 / 50 / 75 %)>",
                       "evaluations / s>", "evaluations / s (wall)>", "outside generations s>", "leaders' ranks",
                       "leaders busy>"),
    ]
    for label, ranks, k in RUNS:
        r = s[label]
        lines.append(harness.row(
            label, f"{ranks // k} of {k}", r["evaluations"], harness.ms(r["median"]),
            " / ".join(f"{v:.0f}" for v in np.percentile(1000 * r["seconds"], [25, 50, 75])),
            f"{r['throughput']:.3f}", f"{r['throughput_wall']:.3f}",
            f"{r['outside']:.2f}", ", ".join(map(str, r["leaders"])), f"{r['busy']:.2f}"))
    lines += [
        "",
        "Outside generations: the command's wall time minus the generations' span, per run (MPI start-up, "
        "imports, the run file; at 2 ranks with K=1 also rank 0's child process, in which rank 0 evaluates "
        "by default at K=1 so that its dispatcher answers at once: it imports NEURON and builds the problem "
        "again). With this short budget it is a large part of each command's wall time, so the `wall` "
        "throughput says more about start-up than about K. Leaders busy: the sum of evaluation seconds over the "
        "generations' span (the number of groups at work on average).",
        "",
        *per_repeat(results, args),
        "## Ratios (measured in this run)",
        "",
        f"- Time per evaluation, K=2 (2 ranks) / K=1 (1 rank), medians: **{per_eval_ratio:.3f}** "
        f"({harness.ms(two_k2['median'])} / {harness.ms(one['median'])} ms; 0.5 would be a perfect split "
        "over two ranks)",
        f"- Time per evaluation, K=2 / K=1, both at 2 ranks, medians: {per_eval_ratio_2:.3f} "
        f"({harness.ms(two_k2['median'])} / {harness.ms(two_k1['median'])} ms; at K=1 both ranks evaluate "
        "at once)",
        f"- Throughput at 2 ranks, K=2 (one group of 2) / K=1 (two groups of 1): **{throughput_ratio:.3f}** "
        f"({two_k2['throughput']:.3f} / {two_k1['throughput']:.3f} evaluations per second; over the "
        f"commands' wall time, start-up included, {throughput_ratio_wall:.3f})",
        f"- Objectives of all {n_runs} runs (1 rank K=1, 2 ranks K=1, 2 ranks K=2, {args.repeats} "
        f"repeat{'s' if args.repeats > 1 else ''} each): "
        + ("the same points, bit-identical objectives" if same
           else f"**NOT identical** (largest absolute difference {worst:g})"),
        "",
        *representativeness(one),
        run.tail(),
    ]
    targets = [harness.target(
        f"network (examples/network, CMA-ES {args.population} x {args.generations}): objectives bit-identical "
        f"at 1 rank K=1, 2 ranks K=1 and 2 ranks K=2 ({n_runs} runs; per evaluation K=2 / K=1 "
        f"{per_eval_ratio:.2f}, throughput at 2 ranks K=2 / K=1 {throughput_ratio:.2f}: no target)",
        "bit-identical", "bit-identical" if same else f"differ (max {worst:g})", same)]
    return "\n".join(lines) + "\n", targets


def per_repeat(results, args):
    """The per-repeat table and how much the machine's load moved each run's median."""
    spread = {label: [float(np.median(r["eval_seconds"])) for r in results[label]] for label, _, _ in RUNS}
    return [
        "## Per repeat",
        "",
        *harness.table("repeat>", "run", "median ms>", "evaluations / s>", "wall s>"),
        *[harness.row(repeat + 1, label, harness.ms(np.median(r["eval_seconds"])),
                      f"{len(r['eval_seconds']) / r['span']:.3f}", f"{r['wall']:.2f}")
          for repeat in range(args.repeats) for label, _, _ in RUNS for r in [results[label][repeat]]],
        "",
        "Each run evaluates the same points in every repeat, so the spread of its per-repeat medians "
        "(largest / smallest) is how much the machine's other load moved the times during this run: "
        + ", ".join(f"{label} x{max(v) / min(v):.2f}" for label, v in spread.items())
        + ". Differences between the runs smaller than that are not resolved by this measurement.",
        "",
    ]


def representativeness(one):
    """What these figures stand for (``one``: the 1-rank K=1 summary)."""
    return [
        "## How representative this is",
        "",
        f"A 50-cell network ({harness.ms(one['median'])} ms per evaluation on one rank, median above) on a "
        "shared 2-CPU machine whose other work changed its load during the run (the load averages and the "
        "per-repeat spread above): other processes take CPU time from whichever rank they land on, and at "
        "K=2 the other rank then waits for it at the next spike exchange, so on this machine the load moves "
        "these figures as much as K does. With so few cells per rank, the spike exchange every 1.5 ms (the "
        "connections' minimum delay) and each evaluation's build and gather weigh relatively much; a network "
        "worth spreading over ranks has thousands of cells (often with more compartments), where the "
        "integration dominates and the exchange costs relatively less. These ratios are not a prediction "
        "for such a network: measure it. At a fixed rank count, K=1 keeps every rank busy without "
        "exchanging spikes or waiting for each other; K>1 is for a network that does not fit one "
        "rank's memory or time, or to shorten each evaluation.",
        "",
    ]


def arguments():
    parser = harness.parser(__doc__, NAME, "population 4 x 2 generations, 1 repeat (CI smoke run)")
    parser.add_argument("--population", type=int, default=4, help="CMA-ES population (default 4)")
    parser.add_argument("--generations", type=int, default=5, help="generations per run (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each run, in turn (default 3)")
    args = harness.parse(parser, quick={"generations": 2, "repeats": 1})
    if args.population < 2 or args.generations < 1 or args.repeats < 1:
        parser.error("--population must be >= 2, --generations and --repeats >= 1")
    return args


def main():
    args = arguments()
    run = harness.Run(NAME, PACKAGES)
    with tempfile.TemporaryDirectory(prefix="network_bench_") as workdir:
        results = run_all(args, workdir)
    run.stop()
    text, targets = report(run, args, results)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
