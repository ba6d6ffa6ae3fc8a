"""Scheduler efficiency at scale: hpcopt's dynamic distribution against a perfect one.

Targets (from the project's issues), judged on the median over generations:
- scheduler efficiency >= 0.95 at 16 ranks;
- scheduler efficiency >= 0.90 at 64 ranks.

The problem (benchmarks/scheduler_problem.py) only sleeps: a lognormal time with median
0.2 s and sigma 1 (a tenfold spread within a generation, as cell models have), derived
from a hash of the parameter values, so an individual takes the same time wherever it
runs. Sleeping ranks use no CPU, so ``mpiexec -n N hpcopt run`` with N = 4, 16 and 64
ranks oversubscribed on a 2-core machine measures the scheduler, not the machine (the
report gives the machine's CPU use during the generations: idle ranks poll with short
sleeps, and 64 of them on 2 cores are not free).

Population: 4 x ranks (IBEA, offspring = population), so every rank evaluates about four
individuals per generation at every size (weak scaling, as users size their jobs) and a
generation lasts about as long at 4 as at 64 ranks; what changes with N is only the work
of the one dispatcher on rank 0. (A fixed population of 256 would give 64 evaluations per
rank at 4 ranks and 4 at 64, mixing the scheduler's cost with how well long queues even
out.)

Per generation, from the run file (``/generations/NNNNNN/eval_seconds``, ``rank``, attrs
``start_time`` / ``end_time``):
- efficiency = makespan of a perfect, zero-overhead greedy list scheduler (each
  individual, in row order = hpcopt's dispatch order, goes to the rank that becomes free
  first) given the same measured evaluation times on the same number of ranks, divided by
  the measured generation time (end_time - start_time: ask, evaluations, tell);
- utilisation = sum of evaluation times / ranks / generation time (with a generation
  barrier and a heavy tail this stays well below 1 whatever the scheduler: the last,
  longest evaluations leave ranks idle);
- the efficiency a static equal-block scatter (rows split into N contiguous blocks of
  equal size, no overhead) would get on the same times, for comparison;
- the gap between generations (checkpoint, journal, log), which the generation time
  does not include, and the whole run's efficiency counting it.

This is a measurement: it prints (and writes to benchmarks/results/scheduler.md and
scheduler.json) the efficiencies and whether the targets are met, and exits 0 either way.

    python benchmarks/scheduler.py            # 4, 16, 64 ranks, 6 generations each
    python benchmarks/scheduler.py --quick    # 4 and 16 ranks, 3 generations (CI smoke run)
"""

import heapq
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import h5py
import harness
import numpy as np
import scheduler_problem

from hpcopt.cli import DISPATCH_ONLY_FROM, DISPATCH_ONLY_FROM_ASYNCHRONOUS, rank0_evaluates

NAME = "scheduler"
PACKAGES = ("hpcopt", "mpi4py", "mpich", "numpy")
HERE = Path(__file__).resolve().parent
DIMENSION = 4
TARGETS = {16: 0.95, 64: 0.90}  # ranks: median efficiency at least
ASYNC_TARGET = 0.90  # asynchronous mode: utilisation while work remains, at least


# ---------------------------------------------------------------- ideal schedules


def greedy_makespan(seconds, ranks):
    """Makespan of a zero-overhead list scheduler: each job, in order, to the first free rank."""
    free = [0.0] * ranks
    for t in seconds:
        heapq.heapreplace(free, free[0] + t)
    return max(free)


def block_makespan(seconds, ranks):
    """Makespan of a static scatter: the jobs split, in order, into ``ranks`` contiguous
    blocks of (nearly) equal size, one per rank, no overhead."""
    return max((float(np.sum(block)) for block in np.array_split(np.asarray(seconds), ranks)), default=0.0)


def generation_table(path, ranks):
    """Per-generation measures of a run file: a list of dicts (see the module docstring)."""
    rows = []
    with h5py.File(path, "r") as f:
        groups = [f["generations"][name] for name in sorted(f["generations"])]
        starts = [float(g.attrs["start_time"]) for g in groups]
        for k, g in enumerate(groups):
            seconds = g["eval_seconds"][()]
            wall = float(g.attrs["end_time"]) - float(g.attrs["start_time"])
            greedy = greedy_makespan(seconds, ranks)
            rows.append({
                "generation": k,
                "n": len(seconds),
                "ranks_used": len(set(g["rank"][()].tolist())),
                "wall": wall,
                "greedy": greedy,
                "block": block_makespan(seconds, ranks),
                "sum": float(seconds.sum()),
                "longest": float(seconds.max()),
                "efficiency": greedy / wall,
                "utilisation": float(seconds.sum()) / ranks / wall,
                "static_efficiency": greedy / block_makespan(seconds, ranks),
                "gap": (starts[k + 1] - float(g.attrs["end_time"])) if k + 1 < len(groups) else None,
                "start": starts[k],
                "end": float(g.attrs["end_time"]),
                "parameters": g["parameters"][()],
                "seconds": seconds,
            })
    return rows


def asynchronous_measures(path, ranks):
    """Measures of an asynchronous run, from each evaluation's end time and duration.

    - utilisation while work remains: busy rank-seconds / (ranks x the window) over the
      window from the first evaluation's start to the last one's start (after that the
      budget has nothing left to hand out: the end of any run drains, generational or not);
    - whole-run utilisation: sum of evaluation times / ranks / (first batch's start, when
      the session began, to the last evaluation's end);
    - efficiency: a perfect greedy list scheduler's makespan on the same times in id
      order / the measured makespan (first start to last end).
    """
    ids, seconds, ends = harness.generations(path, "id", "eval_seconds", "finished_time")
    with h5py.File(path, "r") as f:
        groups = [f["generations"][name] for name in sorted(f["generations"])]
        begin = float(groups[0].attrs["start_time"])
        batches = len(groups)
    starts = ends - seconds
    window = (starts.min(), starts.max())
    busy = np.clip(np.minimum(ends, window[1]) - np.maximum(starts, window[0]), 0, None).sum()
    order = np.argsort(ids)
    greedy = greedy_makespan(seconds[order], ranks)
    return {
        "evaluations": len(ids), "batches": batches,
        "utilisation_working": float(busy / ranks / (window[1] - window[0])),
        "run_utilisation": float(seconds.sum() / ranks / (ends.max() - begin)),
        "run_efficiency": greedy / float(ends.max() - starts.min()),
        "first": float(starts.min()), "last": float(ends.max()), "drain": float(ends.max() - window[1]),
    }


# ---------------------------------------------------------------- machine CPU use


class CpuSampler:
    """Samples the machine's busy and total CPU jiffies (/proc/stat) every ``period`` s."""

    def __init__(self, period=0.25):
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    def _loop(self):
        while not self._stop.is_set():
            self.samples.append((time.time(), *self._read()))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), *self._read()))

    def busy(self, start, end):
        """Fraction of all CPUs busy between UNIX times start and end (nearest samples inside)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return (b1 - b0) / max(t1 - t0, 1)


# ---------------------------------------------------------------- one run


def run_one(ranks, per_rank, generations, median, sigma, workdir, rank0_chunk=0.0, asynchronous=False,
            rank0="auto"):
    """``mpiexec -n ranks hpcopt run`` of the sleeping problem; returns a result dict.

    rank0_chunk > 0: rank 0 computes instead of sleeping, holding the GIL in chunks of
    that many seconds (scheduler_problem.hold_gil). asynchronous: hpcopt's asynchronous
    mode (optimizer.asynchronous, default batch), the same evaluation budget. rank0:
    hpcopt's --rank0 (cli.rank0_evaluates: auto has rank 0 evaluate on small jobs only).
    """
    population = per_rank * ranks
    frozen = {"median": median, "sigma": sigma, **({"rank0_chunk": rank0_chunk} if rank0_chunk else {})}
    config = {
        "problem": {
            "function": "scheduler_problem:evaluate",
            "path": [str(HERE)],
            "parameters": {**{f"x{i}": [0.0, 1.0] for i in range(DIMENSION)}, **frozen},
            "objectives": ["f"],
        },
        "optimizer": {"algorithm": "ibea", "population": population, "offspring": population,
                      "generations": generations, "seed": 1, **({"asynchronous": True} if asynchronous else {})},
    }
    label = f"{ranks}_{'rank0' if rank0_chunk else 'sleep'}{'_async' if asynchronous else ''}_{rank0}"
    config_path = harness.write_json(Path(workdir) / f"scheduler_{label}.json", config)
    runfile = Path(workdir) / f"scheduler_{label}.h5"
    mode = {"rank0": rank0, "rank0_evaluates": rank0_evaluates(rank0, ranks, asynchronous)}
    with harness.Timer() as timer, CpuSampler() as cpu:
        done = harness.hpcopt(["run", config_path, "-o", runfile, "-q", "--rank0", rank0], ranks, check=False)
    wall = timer.seconds
    if done.returncode != 0:
        return {"ranks": ranks, "rank0_chunk": rank0_chunk, "asynchronous": asynchronous, **mode,
                "error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    if asynchronous:
        return {"ranks": ranks, "rank0_chunk": rank0_chunk, "asynchronous": True, **mode, "population": population,
                "wall": wall, "cpu": cpu, **asynchronous_measures(runfile, ranks)}
    rows = generation_table(runfile, ranks)
    # The durations are the sleeps asked for, plus the sleep's overshoot on a busy machine.
    asked = np.array([scheduler_problem.duration({**{f"x{i}": float(v) for i, v in enumerate(x)},
                                                  "median": median, "sigma": sigma})
                      for row in rows for x in row["parameters"]])
    measured = np.concatenate([row["seconds"] for row in rows])
    first, last = rows[0]["start"], rows[-1]["end"]
    return {
        "ranks": ranks, "rank0_chunk": rank0_chunk, "asynchronous": False, **mode, "population": population,
        "rows": rows,
        "wall": wall, "run_utilisation": float(measured.sum()) / ranks / (last - first),
        "overshoot_median": float(np.median(measured - asked)), "overshoot_max": float(np.max(measured - asked)),
        "cpu_busy": cpu.busy(first, last),
        "run_efficiency": sum(row["greedy"] for row in rows) / (last - first),
        "startup": wall - (last - first),
    }


# ---------------------------------------------------------------- report


def summarise(result):
    rows = result["rows"]
    return {
        "median": harness.median(rows, "efficiency"), "min": min(row["efficiency"] for row in rows),
        "utilisation": harness.median(rows, "utilisation"),
        "static": harness.median(rows, "static_efficiency"),
        "static_min": min(row["static_efficiency"] for row in rows),
        "overhead": statistics.median(row["wall"] - row["greedy"] for row in rows),
        "per_evaluation": statistics.median((row["wall"] - row["greedy"]) / row["n"] for row in rows),
        "gap": statistics.median([row["gap"] for row in rows if row["gap"] is not None] or [float("nan")]),
    }


def role(result):
    """What rank 0 did: its evaluations slept or computed, or it only dispatched."""
    chunk = result["rank0_chunk"]
    if not result["rank0_evaluates"]:
        why = (f"asynchronous, from {DISPATCH_ONLY_FROM_ASYNCHRONOUS} ranks" if result["asynchronous"]
               else f"from {DISPATCH_ONLY_FROM} ranks")
        return f"only dispatches (--rank0 auto, {why})" + (", a cell-model run" if chunk else "")
    what = f"computes (GIL held {1000 * chunk:g} ms at a time)" if chunk else "sleeps"
    return what + ("" if result["rank0"] == "auto" else f" (--rank0 {result['rank0']})")


def outcome(result):
    """The headline figures of one run, for the progress lines."""
    if result["asynchronous"]:
        return (f"utilisation while work remains {result['utilisation_working']:.3f}, whole run "
                f"{result['run_utilisation']:.3f}")
    s = summarise(result)
    return (f"efficiency median {s['median']:.3f}, min {s['min']:.3f}, utilisation {s['utilisation']:.3f}, "
            f"static {s['static']:.3f}")


def asynchronous_section(results, generational):
    """Markdown lines and target rows for the asynchronous runs."""
    lines = ["", "## Asynchronous mode", "",
             "The same problem and evaluation budget with `optimizer.asynchronous: true` (default batch: "
             "population / 10): results are told in batches as they complete and a free rank always finds "
             "work queued. Utilisation while work remains: busy rank-seconds / (N x window), the window from "
             "the first evaluation's start to the last one's start (after that the budget has nothing left to "
             "hand out). Whole run: sum of evaluation times / N / (session start to the last evaluation's end), "
             "the end's drain included. Efficiency: a perfect greedy list scheduler's makespan on the same "
             "times in id order / the measured makespan. Generational whole-run utilisation: the runs above, "
             "same N and rank-0 role.", "",
             *harness.table("ranks>", "rank 0", "evaluations>", "batches>", "**utilisation while work remains**>",
                            "whole-run utilisation>", "whole-run efficiency>", "drain at the end s>",
                            "generational whole-run utilisation>", "CPUs busy>")]
    rows = []
    for result in results:
        if "error" in result:
            lines.append(harness.row(result["ranks"], role(result), f"failed: {result['error']}", *[""] * 7))
            continue
        twin = next((r for r in generational if r["ranks"] == result["ranks"] and "error" not in r
                     and r["rank0_chunk"] == result["rank0_chunk"]), None)
        lines.append(harness.row(
            result["ranks"], role(result), result["evaluations"], result["batches"],
            f"**{result['utilisation_working']:.3f}**", f"{result['run_utilisation']:.3f}",
            f"{result['run_efficiency']:.3f}", f"{result['drain']:.2f}",
            f"{twin['run_utilisation']:.3f}" if twin else "-",
            f"{result['cpu'].busy(result['first'], result['last']):.0%}"))
        if result["rank0_chunk"]:
            continue
        met = result["utilisation_working"] >= ASYNC_TARGET
        rows.append(harness.target(
            f"asynchronous mode: rank utilisation while work remains, {result['ranks']} ranks, evaluations "
            f"sleeping, rank 0 {role(result)} "
            f"({result['evaluations']} evaluations; whole run with the final drain "
            f"{result['run_utilisation']:.3f}; generational "
            f"{twin['run_utilisation'] if twin else float('nan'):.3f})",
            f">= {ASYNC_TARGET}", f"{result['utilisation_working']:.3f}", met))
    return lines, rows


def report(run, results, args, asynchronous=()):
    """The markdown report and its target rows. results: the generational runs; asynchronous: the others."""
    lines = [
        *run.header("Scheduler efficiency at scale"),
        f"- Problem: benchmarks/scheduler_problem.py, {DIMENSION} free parameters; every evaluation sleeps a "
        f"lognormal time, median {args.median} s, sigma {args.sigma}, fixed per individual (hash of its values)",
        f"- Runs: `mpiexec -n N hpcopt run CONFIG -o RUN.h5 -q`, IBEA, population = offspring = "
        f"{args.per_rank} x N, {args.generations} generations, seed 1, on {os.cpu_count()} cores (oversubscribed)",
        "- Efficiency: a perfect greedy list scheduler's makespan on the measured evaluation times "
        "(same order, same N) / the measured generation time (end_time - start_time). "
        "Utilisation: sum of evaluation times / N / generation time. "
        "Static: the perfect greedy makespan / the makespan of equal contiguous blocks (no overhead).",
        "",
        "## Summary (over generations)",
        "",
        *summary_table(results),
    ]
    more, rows = targets_section(results)
    lines += more + per_generation_table(results) + notes()
    if asynchronous:
        more, async_rows = asynchronous_section(asynchronous, results)
        lines += more + [""]
        rows += async_rows
    lines.append(run.tail())
    return "\n".join(lines) + "\n", rows


def summary_table(results):
    """One row per generational run: its medians over generations."""
    lines = harness.table(
        "ranks>", "rank 0", "population>", "generations>", "efficiency median>", "efficiency min>",
        "utilisation median>", "static-block efficiency median (min)>", "overhead per generation s (median)>",
        "of it per evaluation ms>", "gap between generations s>", "whole-run efficiency>",
        "CPUs busy during generations>", "sleep overshoot median / max ms>", "start-up s>")
    for result in results:
        if "error" in result:
            lines.append(harness.row(result["ranks"], role(result), f"failed: {result['error']}", *[""] * 12))
            continue
        s = summarise(result)
        lines.append(harness.row(
            result["ranks"], role(result), result["population"], len(result["rows"]), f"**{s['median']:.3f}**",
            f"{s['min']:.3f}", f"{s['utilisation']:.3f}", f"{s['static']:.3f} ({s['static_min']:.3f})",
            f"{s['overhead']:.3f}", f"{1000 * s['per_evaluation']:.2f}", f"{s['gap']:.3f}",
            f"{result['run_efficiency']:.3f}", f"{result['cpu_busy']:.0%}",
            f"{1000 * result['overshoot_median']:.2f} / {1000 * result['overshoot_max']:.1f}",
            f"{result['startup']:.1f}"))
    return lines


def scenario(result):
    """What a targeted run was: every rank sleeping, or a cell-model run (rank 0 computes or only dispatches)."""
    if not result["rank0_chunk"]:
        return ", every rank sleeping" + ("" if result["rank0_evaluates"] else " (rank 0 only dispatches)")
    if result["rank0_evaluates"]:
        return (f", a cell-model run: rank 0's evaluations compute, GIL held {1000 * result['rank0_chunk']:g} "
                "ms at a time, as NEURON does (the issue's target applied to it)")
    return (f", a cell-model run: rank 0 only dispatches (the default from {DISPATCH_ONLY_FROM} "
            "ranks; the issue's target applied to it)")


def targets_section(results):
    """Markdown lines and target rows of the generational runs with a target (sizes in TARGETS, --rank0 auto)."""
    lines = ["", "Targets (median efficiency over generations; the issue defines them on the runs where every "
             "rank sleeps; the same thresholds are applied to the rank-0-computes runs, for information):", ""]
    rows = []
    for result in sorted(results, key=lambda r: bool(r["rank0_chunk"])):
        if result["ranks"] not in TARGETS or result["rank0"] != "auto":
            continue
        goal, what = TARGETS[result["ranks"]], f"{result['ranks']} ranks{scenario(result)}"
        if "error" in result:
            rows.append(harness.target(f"scheduler efficiency, {what} (median over generations)", f">= {goal}",
                                       "run failed", False))
            continue
        s = summarise(result)
        met = s["median"] >= goal
        lines.append(f"- {what}: {s['median']:.3f} >= {goal}: **{harness.verdict(met)}** "
                     f"(min over generations {s['min']:.3f})")
        rows.append(harness.target(
            f"scheduler efficiency, {what} (median over {len(result['rows'])} "
            f"generations; min {s['min']:.3f}; {1000 * s['per_evaluation']:.1f} ms lost per evaluation)",
            f">= {goal}", f"{s['median']:.3f}", met))
    return lines, rows


def per_generation_table(results):
    lines = ["", "## Per generation", "", *harness.table(
        "ranks>", "rank 0", "generation>", "individuals>", "ranks used>", "generation s>", "greedy s>",
        "static-block s>", "sum of evaluations s>", "longest s>", "efficiency>", "utilisation>",
        "static efficiency>", "gap to next s>")]
    for result in results:
        for row in result.get("rows", []):
            lines.append(harness.row(
                result["ranks"], role(result), row["generation"], row["n"], row["ranks_used"], f"{row['wall']:.3f}",
                f"{row['greedy']:.3f}", f"{row['block']:.3f}", f"{row['sum']:.2f}", f"{row['longest']:.3f}",
                f"{row['efficiency']:.3f}", f"{row['utilisation']:.3f}", f"{row['static_efficiency']:.3f}",
                "" if row["gap"] is None else f"{row['gap']:.3f}"))
    return lines


def notes():
    """The report's explanations of rank 0's roles and of the columns."""
    return [
        "",
        "Rank 0 *sleeps*: every rank sleeps (the targets are judged on these runs). Rank 0 *computes*: "
        "rank 0's own evaluations compute for the same time while holding Python's GIL in chunks, as a "
        "NEURON integration does. hpcopt runs them in a child process of rank 0, which holds its own GIL, so "
        "that rank 0's dispatcher thread (which hands work to the other ranks and takes their results) answers "
        "at once; with `--rank0 evaluate-in-process` they run in rank 0's own process, and the dispatcher "
        "runs only between chunks (the runs so marked show that cost). "
        f"From {DISPATCH_ONLY_FROM} ranks hpcopt's default (`--rank0 auto`) has rank 0 only dispatch "
        "(the efficiency then counts the rank it gives up: the greedy makespan is for all N "
        "ranks); the run with `--rank0 evaluate` at that size shows why.",
        "",
        "Overhead per generation: generation time minus the perfect greedy makespan (dispatch latency, "
        "ask and tell); per evaluation: that divided by the generation's individuals (the dispatcher on rank 0 "
        "serves one result at a time). The gap between generations (checkpoint: file copy, fsync, rename; "
        "journal rewrite; "
        "log line) is outside the generation time; the whole-run efficiency (sum of greedy makespans / first "
        "start to last end) counts it. CPUs busy: the whole machine (all processes) between the first "
        "generation's start and the last one's end. Sleep overshoot: measured evaluation time minus the "
        "asked-for sleep. Start-up: the command's wall time minus the generations (MPI start, imports, "
        "creating the run file).",
        "",
    ]


def arguments():
    parser = harness.parser(__doc__, NAME, "4 and 16 ranks (rank 0 computing: 16; asynchronous: 16), "
                            "3 generations (CI smoke run)")
    parser.add_argument("--ranks", default="4,16,64", help="comma-separated rank counts (default 4,16,64)")
    parser.add_argument("--per-rank", type=int, default=4,
                        help="population = PER_RANK x ranks (default 4)")
    parser.add_argument("--generations", type=int, default=6, help="generations per run (default 6)")
    parser.add_argument("--median", type=float, default=0.2, help="median evaluation seconds (default 0.2)")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma (default 1)")
    parser.add_argument("--rank0-chunk", type=float, default=0.02,
                        help="also run with rank 0 computing, holding the GIL this many seconds at a time "
                        "(default 0.02, as NEURON on tests/data/l5pc_like; 0: skip)")
    parser.add_argument("--rank0-ranks", default="16,64",
                        help="rank counts of the rank-0-computes runs (default 16,64)")
    parser.add_argument("--async-ranks", default="16,64",
                        help="rank counts of the asynchronous-mode runs, every rank sleeping (default 16,64)")
    parser.add_argument("--async-rank0-ranks", default="16",
                        help="rank counts of the asynchronous-mode runs with rank 0 computing (default 16)")
    parser.add_argument("--rank0-forced-ranks", default="64",
                        help="rank counts of extra rank-0-computes runs with --rank0 evaluate, no target (default 64)")
    parser.add_argument("--rank0-in-process-ranks", default="16",
                        help="rank counts of extra rank-0-computes runs with --rank0 evaluate-in-process, no target "
                        "(default 16)")
    args = harness.parse(parser, quick={"ranks": "4,16", "rank0_ranks": "16", "generations": 3, "async_ranks": "16",
                                        "async_rank0_ranks": "", "rank0_forced_ranks": "",
                                        "rank0_in_process_ranks": ""})
    try:
        runs = runs_of(args)
    except ValueError:
        parser.error(f"--ranks, --rank0-ranks: expected comma-separated integers, found {args.ranks!r}, "
                     f"{args.rank0_ranks!r}")
    smallest = min(n for n, chunk, _, asynchronous in runs if not (chunk or asynchronous))  # of --ranks
    if smallest < 1 or args.per_rank < 1 or args.generations < 1 or args.median <= 0 or args.sigma < 0:
        parser.error("ranks, --per-rank and --generations must be >= 1, --median > 0, --sigma >= 0")
    return args, runs


def runs_of(args):
    """[(ranks, rank 0's GIL chunk, --rank0, asynchronous)] of every run the arguments ask for (the
    rank-0-computes ones only with a chunk > 0); ValueError if a list is not comma-separated integers."""
    chunk = args.rank0_chunk

    def sizes(text, strict=False, computes=False):
        if computes and chunk <= 0:
            return []
        return [int(n) for n in text.split(",") if strict or n]

    return ([(n, 0.0, "auto", False) for n in sizes(args.ranks, strict=True)]
            + [(n, chunk, "auto", False) for n in sizes(args.rank0_ranks, strict=True, computes=True)]
            + [(n, chunk, "evaluate", False) for n in sizes(args.rank0_forced_ranks, computes=True)]
            + [(n, chunk, "evaluate-in-process", False) for n in sizes(args.rank0_in_process_ranks, computes=True)]
            + [(n, 0.0, "auto", True) for n in sizes(args.async_ranks)]
            + [(n, chunk, "auto", True) for n in sizes(args.async_rank0_ranks, computes=True)])


def main():
    args, runs = arguments()
    run = harness.Run(NAME, PACKAGES)
    results, async_results = [], []
    with tempfile.TemporaryDirectory(prefix="scheduler_bench_") as workdir:
        for ranks, chunk, rank0, asynchronous in runs:
            result = run_one(ranks, args.per_rank, args.generations, args.median, args.sigma, workdir, chunk,
                             asynchronous=asynchronous, rank0=rank0)
            (async_results if asynchronous else results).append(result)
            head = f"{'asynchronous, ' if asynchronous else ''}{ranks} ranks, rank 0 {role(result)}"
            tail = result["error"] if "error" in result else f"{outcome(result)} ({result['wall']:.1f} s)"
            harness.note(f"{head}: {tail}")
    run.stop()
    text, rows = report(run, results, args, async_results)
    run.finish(text, rows, args.no_write)


if __name__ == "__main__":
    main()
