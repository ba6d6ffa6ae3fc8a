"""Rank 0's cost per generation: the optimiser and the checkpoint, against the evaluations.

Targets (from the project's issues): rank 0's own work per generation (everything it does
between two generations' evaluations: ask, tell, building the generation's record, writing
the checkpoint, rewriting the journal) is under 1 % of a generation whose evaluations take
8 s on 1,000 ranks, i.e. share = rank-0 seconds / (8 + rank-0 seconds) < 1 %, early in a
run (median over generations 1-5) and late (median over its last 5 generations), for
- IBEA, population 1,000, offspring 1,000, 20 parameters, 35 objectives (an L5PC-sized
  fit on 1,000 ranks), at generation 1 and after many generations (default 100: the run
  file grows);
- CMA-ES, 20 parameters, 35 objectives (their sum is minimised), population 1,000 (one
  evaluation per rank, as on 1,000 ranks), likewise. cma's default population for 20
  parameters (12) is reported too, without a target (it would leave 988 of 1,000 ranks idle);
- both again with HDF5 file locking off (``HDF5_USE_FILE_LOCKING=FALSE``, as where readers'
  locks cannot be seen: GPFS, BeeGFS, Lustre with localflock), where the run file is written
  in its split layout; there also the checkpoint's cost late in the run over its cost early
  (<= 1.5: it does not grow with the history) and no whole-file copy.

How: hpcopt's real optimisation loop (``driver.Loop``) runs on a real run file in a
temporary directory, made with ``driver.start`` from a config read by ``config.parse``
and the generator from ``generators.create``, with a synthetic evaluator in place of the
MPI one: it returns at once objectives of a smooth 35-objective function of the
parameters plus noise, 5 % failed evaluations (penalty 250, an error text), 35 feature
values per individual (as a cell model stores), and evaluation seconds around 8 s; it
calls the journal callbacks as the MPI evaluator does. Wrapped in this process (hpcopt
is not edited): the generator's ``ask``, ``tell`` (IBEA: of it ``ibea._losses``)
and ``state``, the run's ``runfile.Writer.checkpoint``, the journal's ``clear``. Rank-0 seconds of a
generation = how long the ranks wait for rank 0: from the generation's last result to the
next generation's first task handed out (the loop tells, asks and queues the next
generation first; it writes the checkpoint and rewrites the journal in its breeder thread
while that generation runs). Rank 0's work per generation (from one ask to the next,
minus the time in the evaluator, whose journal lines are reported separately) is
reported beside it.

This is a measurement: it prints (and writes to benchmarks/results/rank0_cost.md and
rank0_cost.json) the shares and whether the targets are met, and exits 0 either way.

    python benchmarks/rank0_cost.py            # 100 generations of each
    python benchmarks/rank0_cost.py --quick    # 5 generations (CI smoke run)
"""

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from hpcopt import config as configuration
from hpcopt.execute import loop as driver
from hpcopt.execute.executor import END, MAX_SLEEP, Executor
from hpcopt.optimize import ibea
from hpcopt.problem.outcome import FAILED, OK, Outcome
from hpcopt.problem.space import Problem
from hpcopt.store import runfile

NAME = "rank0_cost"
PACKAGES = ("hpcopt", "numpy", "cma", "h5py")
DIMENSION, OBJECTIVES = 20, 35
EVALUATION_SECONDS, RANKS = 8.0, 1000
SHARE_TARGET = 0.01
WINDOW = 5  # generations in the early and the late window of the targets
FAILED_FRACTION = 0.05
PENALTY = 250.0
PARTS = ("snapshot", "ask", "tell", "indicator", "write", "checkpoint", "journal_clear")  # timed per generation


class SyntheticEvaluator(Executor):
    """Stands in for the MPI executor: ``stream`` takes every point queued, makes their
    outcomes at once (one batch per generation: the loop asks the next one after telling).

    Objectives: 10 x the distance of the unit-cube point to one centre per objective, plus
    N(0, 1) noise (so CMA-ES does not converge and stop), all PENALTY for FAILED_FRACTION of
    the individuals (status failed, an error text). Features: one per objective, NaN where
    failed. Evaluation seconds: lognormal around EVALUATION_SECONDS; ranks i % RANKS.
    """

    size = RANKS
    abandoned = False

    def __init__(self, problem, seed=7):
        self.problem = problem
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.random((OBJECTIVES, problem.dimension))
        self.compute = []  # seconds making outcomes, per map call
        self.callbacks = []  # seconds in the journal callbacks, per generation
        self.first_take, self.last_done = [], []  # perf_counter: a generation's first task out, its last result in

    def stream(self, take, done, *, started=None, stopping=None, grace=0.0):
        delay = 1e-5
        while True:
            tasks = []
            while (task := take(0)) not in (None, END):
                if not tasks:
                    self.first_take.append(time.perf_counter())  # the ranks' wait for this generation ends
                tasks.append(task)
            if not tasks:
                if task is END:
                    return []
                time.sleep(delay)  # the loop's breeder is telling and asking: wait as the real executors do
                delay = min(2 * delay, MAX_SLEEP)
                continue
            delay = 1e-5
            self.batch([key for key, _ in tasks], np.array([x for _, x in tasks]), started, done)

    def batch(self, keys, X, started, done):
        start = time.perf_counter()
        U = (np.asarray(X) - self.problem.lower) / (self.problem.upper - self.problem.lower)
        F = 10 * np.sqrt(((U[:, None, :] - self.centres[None]) ** 2).sum(axis=-1))
        F += self.rng.standard_normal(F.shape)
        failed = self.rng.random(len(X)) < FAILED_FRACTION
        F[failed] = PENALTY
        features = 1.7 * F + 3.0
        features[failed] = np.nan
        seconds = self.rng.lognormal(np.log(EVALUATION_SECONDS), 0.5, len(X))
        outcomes = [
            Outcome(F[i], FAILED, "NEURON: variable step integrator error (CVode-0x55d1 cvode_active)",
                    features[i]) if failed[i] else Outcome(F[i], OK, "", features[i])
            for i in range(len(X))
        ]
        middle = time.perf_counter()
        for i, key in enumerate(keys):
            rank = key % RANKS
            started(key, rank)
            done(key, outcomes[i], float(seconds[i]), rank)
        end = time.perf_counter()
        self.compute.append(middle - start)
        self.callbacks.append(end - middle)
        self.last_done.append(end)  # the ranks' wait for the next generation starts


def start_loop(algorithm, population, generations, workdir):
    """hpcopt's loop on a new run file in ``workdir``, with the synthetic evaluator: (loop, evaluator, run file)."""
    raw = {
        "problem": {
            "function": "rank0_cost:not_called",  # the synthetic evaluator replaces it
            "parameters": {f"p{i:02d}": [0.0, 1.0] for i in range(DIMENSION)},
            "objectives": [f"protocol{j // 7}.soma.feature{j:02d}" for j in range(OBJECTIVES)],
        },
        "optimizer": {"algorithm": algorithm, "population": population, "generations": generations, "seed": 1},
    }
    if algorithm == "ibea":
        raw["optimizer"]["offspring"] = population
    config = configuration.parse(raw, source=f"rank0_cost {algorithm}")
    problem = Problem(config)
    problem.features = tuple(config.problem.objectives)  # a cell model stores one feature per objective
    path = str(Path(workdir) / f"{algorithm}_{population}.h5")
    driver.start(path, config, problem, {"hpcopt_version": harness.versions("hpcopt")["hpcopt"]})
    evaluator = SyntheticEvaluator(problem)
    return driver.Loop(path, config, problem, evaluator), evaluator, path


def instrument(loop, path):
    """Wrap the loop's generator, writing, journal and checkpoint in timers.

    Returns (tally, marks, sizes): seconds per (part, generation); perf_counter at the start
    of each generation (its ask; no "snapshot" is taken any more: the loop checkpoints the
    state after the ask); the run file's bytes after each
    generation's write.
    """
    tally, marks, sizes = harness.Tally(), [], {}
    generator = loop.generator
    original_write, original_ask = loop._write, generator.ask

    def at(label, offset=0):
        return lambda: (label, loop.generation + offset)

    def ask(*args):
        marks.append(time.perf_counter())  # a generation starts when it is asked
        return original_ask(*args)

    def write():
        start = time.perf_counter()
        try:
            return original_write()
        finally:
            tally.add(("write", loop.generation - 1), time.perf_counter() - start)
            pieces = Path(runfile.pieces_of(path))  # the split layout's generation files (locking off)
            split = sum(p.stat().st_size for p in pieces.iterdir()) if pieces.is_dir() else 0
            sizes[loop.generation - 1] = (os.path.getsize(path), split)

    generator.ask = tally.wrap(ask, at("ask"))
    generator.tell = tally.wrap(generator.tell, at("tell"))
    loop._write = write
    loop.journal.clear = tally.wrap(loop.journal.clear, at("journal_clear", -1))
    loop.writer.checkpoint = tally.wrap(loop.writer.checkpoint, at("checkpoint", -1))
    return tally, marks, sizes


def measure(algorithm, population, generations, workdir, locking=True):
    """Run hpcopt's loop for ``generations`` generations; per-generation timings (list of dicts).
    locking False: with HDF5_USE_FILE_LOCKING=FALSE, as on a parallel filesystem whose
    locks a job cannot see (the Writer's split layout)."""
    saved = os.environ.get("HDF5_USE_FILE_LOCKING")
    if not locking:
        os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
    try:
        return _measure(algorithm, population, generations, workdir, locking)
    finally:
        if saved is None:
            os.environ.pop("HDF5_USE_FILE_LOCKING", None)
        else:
            os.environ["HDF5_USE_FILE_LOCKING"] = saved


def _measure(algorithm, population, generations, workdir, locking):
    workdir = Path(workdir) / ("locking" if locking else "no-locking")
    workdir.mkdir(exist_ok=True)
    loop, evaluator, path = start_loop(algorithm, population, generations, workdir)
    in_place = loop.writer.in_place
    state = loop.generator.state
    tally, marks, sizes = instrument(loop, path)
    original_losses = ibea._losses
    ibea._losses = tally.wrap(original_losses, lambda: ("indicator", loop.generation))
    try:
        loop.run()
    finally:
        ibea._losses = original_losses
        loop.journal.close()
    marks.append(time.perf_counter())

    rows = []
    for g in range(len(marks) - 1):
        cycle = marks[g + 1] - marks[g]
        work = cycle - evaluator.compute[g] - evaluator.callbacks[g]
        # the ranks wait from the generation's last result to the next one's first task
        following = evaluator.first_take[g + 1] if g + 1 < len(evaluator.first_take) else marks[g + 1]
        rank0 = following - evaluator.last_done[g]
        parts = {label: tally.get((label, g)) for label in PARTS}
        rows.append({
            "generation": g, **parts,
            "other": work - parts["snapshot"] - parts["ask"] - parts["tell"] - parts["write"],
            "work": work, "rank0": rank0, "callbacks": evaluator.callbacks[g],
            "file_mb": sum(sizes.get(g, (0, 0))) / 2**20, "runfile_mb": sizes.get(g, (0, 0))[0] / 2**20,
            "share": rank0 / (EVALUATION_SECONDS + rank0),
        })
    return {"algorithm": algorithm, "population": population, "rows": rows, "generations": len(rows),
            "stop_reason": loop.stop_reason, "state_bytes": state_size(state()), "locking": locking,
            "in_place": in_place, "copied": loop.writer.copied}


def state_size(state):
    """Bytes of a generator's saved state (arrays, bytes and text)."""
    total = 0
    for value in state.values():
        if isinstance(value, (bytes, str)):
            total += len(value)
        elif isinstance(value, np.ndarray):
            total += value.nbytes
    return total


# ---------------------------------------------------------------- report


def label(result):
    if result["algorithm"] == "ibea":
        name = f"IBEA, population {result['population']}, offspring {result['population']}"
    else:
        name = f"CMA-ES, population {result['population']}"
    return name if result["locking"] else f"{name}, HDF5 file locking off"


def window(rows):
    """Medians over ``rows`` of every timing (a dict)."""
    keys = ("rank0", "work", "share", "tell", "ask", "checkpoint", "journal_clear", "write", "file_mb", "runfile_mb")
    return {key: harness.median(rows, key) for key in keys}


def picks(rows):
    """Rows shown in the per-generation table: 0, 1, 2, then every tenth-ish, and the last."""
    n = len(rows)
    wanted = {0, 1, 2, n - 1} | {g for g in (5, 10, 20, 50, 75) if g < n} | set(range(0, n, max(1, n // 10)))
    return [rows[g] for g in sorted(wanted)]


def report(run, results, args):
    lines = [
        *run.header("Rank 0's cost per generation: optimiser and checkpoint"),
        f"- Problem: {DIMENSION} parameters, {OBJECTIVES} objectives and {OBJECTIVES} features per individual, "
        f"{FAILED_FRACTION:.0%} failed evaluations (penalty {PENALTY:g}, an error text); synthetic evaluator "
        "(returns at once); run file and journal in a temporary directory "
        f"({tempfile.gettempdir()}), checkpoint every generation (the default)",
        f"- Scenario of the share: evaluations take {EVALUATION_SECONDS:g} s on {RANKS:,} ranks; share = rank-0 "
        f"seconds / ({EVALUATION_SECONDS:g} + rank-0 seconds); target < {SHARE_TARGET:.0%}",
        "- Rank-0 seconds of a generation: from its start (the generator-state snapshot before ask) to the next "
        "one's, minus the time in the synthetic evaluator. Write = `Loop._write`: the state for the checkpoint, "
        "`runfile.Writer.checkpoint` (with HDF5 file locking on a local disk: bring the shadow file up to date "
        "- the generations it lacks, the new one, the state; fsync; rename; the first checkpoint copies the whole "
        "file; with `HDF5_USE_FILE_LOCKING=FALSE`, the split layout: the new generation into a generation file of "
        "its own, then a new small run file linking to every generation file, fsync, rename) and the journal's "
        "rewrite. Run file MB: with locking off, the run file and its generation files together. "
        f"Indicator matrix: `ibea._losses` (exp(-I/kappa) for all pairs, on {ibea._threads()} thread(s) here). "
        "Other: the journal scan before evaluating, building the generation record, scores, "
        "the log line.",
        "",
        "## Summary",
        "",
        f"Early: generations 1 to {WINDOW} (generation 0, IBEA's initial population, has no selection); late: "
        f"the last {WINDOW}. Medians over each window (one generation's time is noisy on a shared machine).",
        "",
    ]
    more, targets = summary(results, args)
    lines += more + ["", "Targets:", ""]
    lines += [f"- {row['what']}: {row['measured']} {row['target']}: **{harness.verdict(row['met'])}**"
              for row in targets]
    for result in results:
        if result["stop_reason"]:
            lines.append(f"- Note: {label(result)} stopped after {result['generations']} generations: "
                         f"{result['stop_reason']}")
    for result in results:
        lines += per_generation(result)
    lines += [
        "",
        "Generation 0 of IBEA is the initial population (no environmental selection in its tell); generation 1 "
        "is the first with 1,000 offspring. Journal lines during evaluations: the `started` and `done` lines "
        "(JSON, flushed) that rank 0's dispatcher thread writes while the evaluations run; on a cluster they "
        "overlap the evaluations, so they are not in rank 0's seconds, but they take the GIL from rank 0's own "
        "evaluation.",
        "",
        run.tail(),
    ]
    return "\n".join(lines) + "\n", targets


def summary(results, args):
    """The summary table (one row per run: early and late medians) and the target rows."""
    lines = harness.table(
        "run", "generations>", "rank-0 ms: early / late>", "share: early / late>", "tell ms: early / late>",
        "checkpoint ms: early / late>", "journal rewrite ms: early / late>", "run file MB: early / late>",
        "generator state KiB>", "journal lines written during evaluations, ms (median)>")
    targets = []
    for result in results:
        rows = result["rows"]
        early, late = window(rows[1:1 + WINDOW]), window(rows[-WINDOW:])
        early["label"] = f"generations {rows[1]['generation']}-{rows[min(WINDOW, len(rows) - 1)]['generation']}"
        late["label"] = f"generations {rows[-WINDOW:][0]['generation']}-{rows[-1]['generation']}"

        def pair(key, unit=harness.ms, early=early, late=late):
            return f"{unit(early[key])} / {unit(late[key])}"

        lines.append(harness.row(
            label(result), len(rows), pair("rank0"), pair("share", "{:.2%}".format), pair("tell"),
            pair("checkpoint"), pair("journal_clear"), pair("file_mb", "{:.1f}".format),
            f"{result['state_bytes'] / 1024:.0f}", harness.ms(statistics.median(r["callbacks"] for r in rows))))
        if result["population"] != args.population:
            continue  # cma's default population: reported, no target
        name = "IBEA" if result["algorithm"] == "ibea" else "CMA-ES"
        sizing = (f"population = offspring = {result['population']}" if result["algorithm"] == "ibea"
                  else f"population {result['population']}")
        files = "run file" if result["locking"] else "HDF5 file locking off: run file and generation files"
        if not result["locking"]:
            growth = late["checkpoint"] / early["checkpoint"]
            targets.append(harness.target(
                f"checkpoint cost with HDF5 file locking off (as on GPFS, BeeGFS, Lustre with localflock: the "
                f"split layout), {name} ({sizing}): {late['label']} / {early['label']} (median checkpoint "
                f"{harness.ms(late['checkpoint'])} / {harness.ms(early['checkpoint'])} ms, data on disk "
                f"{late['file_mb']:.0f} / {early['file_mb']:.0f} MB; whole-file copies {result['copied']})",
                "<= 1.5", f"{growth:.2f}", growth <= 1.5 and result["copied"] == 0))
        for w in (early, late):
            targets.append(harness.target(
                f"rank 0's share of an 8 s generation on 1,000 ranks: {name} ({sizing}, d = {DIMENSION}, "
                f"{OBJECTIVES} objectives), {w['label']} (median; {files} {w['file_mb']:.0f} MB; the ranks wait "
                f"{harness.ms(w['rank0'])} ms for rank 0; its work {harness.ms(w['work'])} ms, of it tell "
                f"{harness.ms(w['tell'])}, checkpoint {harness.ms(w['checkpoint'])} and journal rewrite "
                f"{harness.ms(w['journal_clear'])} while the next generation runs)",
                f"< {SHARE_TARGET:.0%}", f"{w['share']:.2%}", w["share"] < SHARE_TARGET))
    return lines, targets


def per_generation(result):
    """The per-generation table of one run (the rows ``picks`` chooses)."""
    ms = harness.ms
    lines = ["", f"## {label(result)}: per generation (ms)", "", *harness.table(
        "generation>", "snapshot (state)>", "ask>", "tell>", "of it indicator matrix>", "write>",
        "of it checkpoint>", "of it journal rewrite>", "other>", "**rank 0**>", "share of an 8 s generation>",
        "run file MB>", "journal lines during evaluations>")]
    for row in picks(result["rows"]):
        lines.append(harness.row(
            row["generation"], ms(row["snapshot"]), ms(row["ask"]), ms(row["tell"]),
            ms(row["indicator"]) if result["algorithm"] == "ibea" else "", ms(row["write"]), ms(row["checkpoint"]),
            ms(row["journal_clear"]), ms(row["other"]), f"**{ms(row['rank0'])}**", f"{row['share']:.2%}",
            f"{row['file_mb']:.1f}", ms(row["callbacks"])))
    return lines


def main():
    parser = harness.parser(__doc__, NAME, "5 generations (CI smoke run)")
    parser.add_argument("--generations", type=int, default=100, help="generations of each run (default 100)")
    parser.add_argument("--population", type=int, default=1000,
                        help="IBEA population (= offspring) and CMA-ES population (default 1000)")
    args = harness.parse(parser, quick={"generations": 5})
    if args.generations < 2 or args.population < 2:
        parser.error("--generations and --population must be >= 2")
    logging.getLogger("hpcopt").setLevel(logging.ERROR)  # the loop's per-generation lines

    run = harness.Run(NAME, PACKAGES)
    default_cma = 4 + int(3 * np.log(DIMENSION))  # cma's default popsize
    results = []
    with tempfile.TemporaryDirectory(prefix="rank0_cost_") as workdir:
        cases = [("ibea", args.population, True), ("cmaes", args.population, True), ("cmaes", default_cma, True),
                 ("ibea", args.population, False), ("cmaes", args.population, False)]
        for algorithm, population, locking in cases:
            result = measure(algorithm, population, args.generations, workdir, locking)
            results.append(result)
            rows = result["rows"]
            harness.note(f"{label(result)}: rank 0 {harness.ms(rows[1]['rank0'])} ms at generation 1, "
                         f"{harness.ms(rows[-1]['rank0'])} ms at generation {rows[-1]['generation']} "
                         f"({rows[-1]['share']:.2%})")
    run.stop()
    text, targets = report(run, results, args)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
