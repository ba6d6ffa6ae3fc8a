"""The one optimisation loop on rank 0: ask, evaluate, tell, checkpoint, log.

Generational and asynchronous runs are the same loop with two schedules (which say
when to ask, how many, and when a batch is told):

- ``Generational``: ask a whole generation once nothing is outstanding; tell it once
  every result is in, in the order asked. The run depends only on its config and seed.
- ``Restarting`` (CMA-ES with restarts): generational, but generations change size
  at each restart, so the budget is in evaluations: no generation is asked once the
  generator has asked that many points.
- ``Steady`` (IBEA's ``asynchronous: true``): keep ``outstanding`` points asked, about
  the number of ranks plus a batch, so a free rank always finds work; tell results in
  batches of ``optimizer.batch`` in the order they complete.

Three threads on rank 0: the main thread runs the executor's ``stream`` (which may
evaluate on rank 0 too), the executor may have a dispatcher of its own, and the
breeder here tells and asks the generator and writes the checkpoints. Only the
breeder touches the generator once the stream runs.

Resume is exact for both schedules. Rank 0 appends every result to the journal in
the order the generator is told them (the journal and the batch buffer are written
under one lock); a checkpoint holds the generator's state with its pending points.
Everything the generator does is a function of the told order, of the schedule's
rules and of the budget, which each session records in the journal, so a resumed run
replays the journal after the checkpoint through the generator, arriving at the
exact state of the interrupted run, evaluates again only what was in flight, and
goes on. Every asynchronous batch record stores the generator's ask count before and
after it, so a run file can be checked: fed its batches in order, a fresh generator
asks exactly the stored points (tests/test_steady.py).

No MPI here: evaluation goes through an executor (executor.py); files through
store/. Termination is data decided here: the budget, the generator's own reasons,
or ``interrupted()`` (set by a signal handler).
"""

import json
import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, RunFileError
from ..optimize import generators
from ..problem.outcome import FAILED, OK, TIMEOUT, Outcome
from ..store import journal, runfile
from ..store.journal import CRASHES_BEFORE_FAILING, Journal
from .executor import END

log = logging.getLogger("hpcopt")

# Exit statuses of `hpcopt run` / `hpcopt resume`
EXIT_DONE = 0  # the run is finished (budget met or the generator stopped)
EXIT_USAGE = 2  # bad input: nothing was written; or every evaluation so far failed (Loop.hopeless)
EXIT_INTERRUPTED = 3  # stopped early by a signal; the run file is complete, resume it

HOPELESS_AFTER = 10  # evaluations, at least (and at least a population): all failed, the run stops
PROGRESS_SECONDS = 10.0  # asynchronous runs: at most one progress line per this many seconds


def start(path, config, problem, versions):
    """Create the run file for a new run; returns the generator."""
    start = None if problem.start is None else np.clip(problem.to_unit(problem.start[None])[0], 0.0, 1.0)
    generator = generators.create(config.optimizer, problem.dimension, len(problem.objectives), start=start)
    attrs = {
        "parameter_names": list(problem.names),
        "objective_names": list(problem.objectives),
        "feature_names": list(problem.features),
        "config": json.dumps(config.resolved(problem.space)),
        **versions,
    }
    state = _state(config, generator, next_generation=0, evaluations=0, failures=0)
    runfile.create(path, attrs, problem.lower, problem.upper, state)
    journal.remove(path)  # a new run: nothing of an old one may be reused
    return generator


def _state(config, generator, *, next_generation, evaluations, failures, stop_reason=""):
    restarts = {}
    if config.optimizer.restarts != "none":  # for status: the run sampled now
        restarts = {"restart": generator.restart, "population": generator.population}
    return {
        "algorithm": config.optimizer.algorithm,
        "next_generation": next_generation,
        "evaluations": evaluations,
        "failures": failures,
        "stop_reason": stop_reason,
        **restarts,
        "generator": generator.state(),
    }


@dataclass
class Result:
    """An evaluation that completed and is waiting for its batch."""

    ident: int
    x: np.ndarray
    outcome: Outcome
    seconds: float
    rank: int
    time: float


class Generational:
    """A whole generation at a time. rules: (generation budget,)."""

    unit, record = "generations", "generation"
    # a generation asked at the start of a session depends only on the checkpointed state:
    # a resume after a crash asks the same points again, so no checkpoint is needed for it
    write_first_ask = False

    def __init__(self, optimizer, size):
        self.rules = (optimizer.generations,)

    def session(self, rules):
        return {"generations": rules[0]}

    def rules_of(self, event, rules):
        return (event.get("generations", rules[0]),)

    def ask(self, loop, rules):
        """(ids, U) the generator gave when asked now, or None when nothing is to be asked."""
        g = loop.generator
        if g.outstanding or loop.generation >= rules[0]:
            return None
        loop.batch_start = time.time()  # a generation's record starts when it is asked
        return g.ask()

    def check(self, loop):
        """Nothing to refuse: a smaller generation budget ends the run where it is."""

    def all_asked(self, loop, rules):
        return loop.generation + (1 if loop.generator.outstanding else 0) >= rules[0]

    def ready(self, buffer, generator, rules):
        """The batch to tell now, or []."""
        if buffer and len(buffer) == generator.outstanding:
            return sorted(buffer, key=lambda r: r.ident)
        return []

    def finished(self, loop, rules):
        return loop.generation >= rules[0]

    def reason(self, loop):
        budget, o = self.rules[0], loop.config.optimizer
        if loop.generation < budget:
            return "not finished"
        if o.budget == "evaluations":  # the generation in which the evaluation budget is reached
            return f"evaluation budget of {o.evaluations} reached in generation {budget - 1}"
        return f"generation budget of {budget} met"

    def describe(self, loop):
        o = loop.config.optimizer
        return (f"{loop.path}: generation {loop.generation} of {self.rules[0]}, {loop.executor.describe()}, "
                f"{o.algorithm}, population {o.population}")

    def extra(self, batch, generator, asked_before):
        return {}

    def progress(self, loop, record, first):
        elapsed = time.perf_counter() - loop.session_start
        done = loop.generation - first
        rate = len(record.scores) / max(record.end_time - record.start_time, 1e-9)
        left = (self.rules[0] - loop.generation) * elapsed / done
        log.info("gen %d/%d  evals %d  best %.6g  median %.6g  %.1f evals/s  left %s", loop.generation,
                 self.rules[0], loop.evaluations, loop.best[0], float(np.median(record.scores)), rate,
                 _duration(left))


class Restarting(Generational):
    """CMA-ES with restarts: a whole generation at a time, whose size changes at each
    restart. rules: (evaluation budget,): the run ends with the generation in which
    the generator has asked that many points."""

    def __init__(self, optimizer, size):
        self.rules = (optimizer.evaluations,)

    def session(self, rules):
        return {"evaluations": rules[0]}

    def rules_of(self, event, rules):
        return (event.get("evaluations", rules[0]),)

    def ask(self, loop, rules):
        g = loop.generator
        if g.outstanding or g.asked >= rules[0]:
            return None
        loop.batch_start = time.time()
        return g.ask()

    def all_asked(self, loop, rules):
        return loop.generator.asked >= rules[0]

    def finished(self, loop, rules):
        return loop.generator.told >= rules[0]

    def reason(self, loop):
        if loop.generator.told < self.rules[0]:
            return "not finished"
        return f"evaluation budget of {self.rules[0]} reached in generation {loop.generation - 1}"

    def describe(self, loop):
        o, g = loop.config.optimizer, loop.generator
        return (f"{loop.path}: generation {loop.generation}, {g.told} of {self.rules[0]} evaluations told, "
                f"{loop.executor.describe()}, {o.algorithm} with {o.restarts} restarts, restart {g.restart}, "
                f"population {g.population}")

    def progress(self, loop, record, first):
        elapsed = time.perf_counter() - loop.session_start
        g = loop.generator
        rate = len(record.scores) / max(record.end_time - record.start_time, 1e-9)
        left = max(self.rules[0] - g.told, 0) * elapsed / max(g.told - loop.told_at_start, 1)
        log.info("gen %d  evals %d/%d  restart %d  pop %d  best %.6g  median %.6g  %.1f evals/s  left %s",
                 loop.generation, g.told, self.rules[0], record.restart, len(record.scores), loop.best[0],
                 float(np.median(record.scores)), rate, _duration(left))


class Steady:
    """Asynchronous: ``outstanding`` points asked at all times, batches told as they
    complete. rules: (outstanding target, evaluation budget)."""

    unit, record = "batches", "batch"
    # how many points a session asks at its start depends on its rules (the number of ranks):
    # what was asked must be in the file before anything is evaluated
    write_first_ask = True

    def __init__(self, optimizer, size):
        self.batch = optimizer.batch_size
        # enough points outstanding that every rank has one and a batch can complete
        self.rules = (max(optimizer.population, size + self.batch), optimizer.evaluations)
        self.last_line = time.time()

    def session(self, rules):
        return {"outstanding": rules[0], "total": rules[1]}

    def rules_of(self, event, rules):
        return (event.get("outstanding", rules[0]), event.get("total", rules[1]))

    def ask(self, loop, rules):
        g = loop.generator
        n = max(0, min(rules[0] - g.outstanding, rules[1] - g.asked))
        return g.ask(n) if n else None

    def check(self, loop):
        g = loop.generator
        if self.rules[1] < g.asked:
            raise ConfigError("--generations", f"this asynchronous run has asked for {g.asked} points already: "
                              f"its budget ({self.rules[1]} evaluations now) cannot be lower")

    def all_asked(self, loop, rules):
        return loop.generator.asked >= rules[1]

    def ready(self, buffer, generator, rules):
        if len(buffer) >= self.batch:
            return buffer[:self.batch]
        if buffer and generator.asked >= rules[1] and len(buffer) == generator.outstanding:
            return list(buffer)
        return []

    def finished(self, loop, rules):
        return loop.generator.told >= rules[1]

    def reason(self, loop):
        total = self.rules[1]
        return f"evaluation budget of {total} met" if loop.generator.told >= total else "not finished"

    def describe(self, loop):
        o = loop.config.optimizer
        return (f"{loop.path}: asynchronous IBEA, {loop.generator.told} of {self.rules[1]} evaluations told, "
                f"{loop.executor.describe()}, population {o.population}, batches of {self.batch}, "
                f"{self.rules[0]} points outstanding")

    def extra(self, batch, generator, asked_before):
        return {"ids": np.array([r.ident for r in batch], dtype=np.int64),
                "finished": np.array([r.time for r in batch]), "asked": (asked_before, generator.asked)}

    def progress(self, loop, record, first):
        g = loop.generator
        if time.time() - self.last_line < PROGRESS_SECONDS and g.told < self.rules[1]:
            return
        self.last_line = time.time()
        elapsed = time.time() - loop.started_at
        rate = (g.told - loop.told_at_start) / max(elapsed, 1e-9)
        left = (self.rules[1] - g.told) / rate if rate > 0 else float("nan")
        log.info("batch %d  evals %d/%d  best %s  %.1f evals/s  left %s", loop.generation, g.told, self.rules[1],
                 f"{loop.best[0]:.6g}" if loop.best else "-", rate,
                 _duration(left) if np.isfinite(left) else "-")


class Loop:
    """Runs an optimisation from the state saved in the run file at ``path``.

    config: the run's Config (its budget may exceed the original); problem:
    problem.space.Problem; executor: an executor (executor.py); interrupted:
    () -> bool, true once a signal asked the job to stop (its ``time`` attribute,
    if any, says when).
    """

    def __init__(self, path, config, problem, executor, interrupted=lambda: False):
        self.path, self.config, self.problem, self.executor = path, config, problem, executor
        self.interrupted = interrupted
        with runfile.RunFile(path) as run:
            state = run.state(resume=True)
            self.best = _best_so_far(run)
        schedule = (Steady if config.optimizer.asynchronous else
                    Restarting if config.optimizer.restarts != "none" else Generational)
        self.schedule = schedule(config.optimizer, executor.size)
        self.generator = generators.restore(state["algorithm"], state["generator"])
        self.generation = state["next_generation"]  # records in the run file and in memory
        self.evaluations = state["evaluations"]
        self.failures = state["failures"]
        self.stop_reason = state["stop_reason"]
        self.journal = Journal(path, **self.schedule.session(self.schedule.rules))
        self.writer = runfile.Writer(path)
        self.reused = 0
        self.signal_time = None
        self.notice_lock = threading.Lock()
        self.lock = threading.Condition()
        self.buffer = []  # Results not yet told, in the order they completed
        self.queue = None  # (id, physical x) not yet handed out, once the evaluations start
        self._points = {}  # id -> physical x of every outstanding point
        self.all_queued = False
        self.records = []  # records not yet written to the run file
        self.batch_start = time.time()
        self.last_write = time.time()
        self.written = self.generation  # records in the run file
        self.finishing = False
        self.failure = []
        self.hopeless = ""  # why the run stopped because every evaluation failed (exit status 2)
        self.first_error = self.first_failure = ""  # of this job's evaluations: any kind, status failed
        self.handed_out = self.dispatch_target = 0  # points handed to the executor; what a checkpoint waits for

    @property
    def rules(self):
        return self.schedule.rules

    def run(self):
        """Run until done or interrupted; returns EXIT_DONE or EXIT_INTERRUPTED."""
        status = None
        try:
            status = self._run()
            return status
        finally:
            self.journal.close(finished=status == EXIT_DONE)
            self.writer.close(finished=status == EXIT_DONE)

    def _finished(self, rules=None):
        return bool(self.stop_reason) or self.schedule.finished(self, rules or self.rules)

    def _run(self):
        g = self.generator
        self.session_start, self.first = time.perf_counter(), self.generation
        self.started_at, self.told_at_start = time.time(), g.told
        if self._finished():
            log.info("run already finished (%s)", self._reason())
            return EXIT_DONE
        log.info("%s", self.schedule.describe(self))
        self._replay()
        self.schedule.check(self)
        if self._ask(self.rules) and self.schedule.write_first_ask:
            self._write()
        self._fail_crash_loops()  # after the ask: a generation a crash cut short is asked again first
        buffered = {r.ident for r in self.buffer}
        self.queue = deque((i, x) for i, x in self._points.items() if i not in buffered)
        breeder = threading.Thread(target=self._breed, daemon=True)
        breeder.start()
        try:
            abandoned = self.executor.stream(
                self._take, self._done, started=self.journal.started,
                stopping=lambda: self._stopping() or bool(self.failure),
                grace=self.config.checkpoint.stop_within,
            )
        finally:
            with self.lock:
                self.finishing = True
                self.lock.notify_all()
            breeder.join()
        for ident in abandoned:  # stopped, not crashed: not counted against them
            self.journal.abandoned(ident)
        if self.failure:
            raise self.failure[0]
        interrupted = not self._finished()
        if self.records:  # unless the breeder wrote the last record
            self._write()
        if not interrupted:
            self._give_up_if_hopeless(finished=True)
        elif self.hopeless:  # stopped early, not by a signal: the caller says why, in one line
            self.journal.sync()
            return EXIT_USAGE
        else:
            self.journal.sync()
            waited = time.time() - self._noticed()
            log.warning("interrupted by a signal: run file complete up to %s %d (%d evaluations told), written "
                        "%.1f s after the signal%s; continue with 'hpcopt resume %s'", self.schedule.record,
                        self.generation - 1, g.told, waited,
                        "; evaluations in flight were abandoned" if abandoned else "", self.path)
        self._summary()
        return EXIT_INTERRUPTED if interrupted else EXIT_DONE

    # ------------------------------------------------------------ the three threads

    def _take(self, rank):
        """The executor's source: the next queued point, None, or END."""
        with self.lock:
            if not self.queue:
                return END if self.all_queued else None
            self.handed_out += 1
            if self.handed_out == self.dispatch_target:
                self.lock.notify_all()
            return self.queue.popleft()

    def _done(self, ident, outcome, seconds, rank):
        """The executor's sink: journal and buffer in one order."""
        with self.lock:
            x = self._points[ident]
            self.journal.done(ident, x, outcome, seconds, rank)
            self.buffer.append(Result(ident, x, outcome, seconds, rank, time.time()))
            self.lock.notify_all()

    def _ready(self):
        return self.schedule.ready(self.buffer, self.generator, self.rules)

    def _breed(self):
        """The breeder thread: tell complete batches, ask, checkpoint when due."""
        try:
            every = self.config.checkpoint
            while True:
                with self.lock:
                    self.lock.wait_for(lambda: self.finishing or self._ready())
                    if not self._ready():
                        return
                self._tell_ready(self.rules, most=1)
                finished = self._finished()
                due = (finished
                       or self.generation - self.written >= every.every_generations
                       or (every.every_seconds and time.time() - self.last_write >= every.every_seconds))
                if due:
                    with self.lock:  # h5py holds the GIL while it writes: hand the ranks their work first
                        self.lock.wait_for(lambda: self.finishing or self.handed_out >= self.dispatch_target)
                    self._write()
                if finished:
                    return
        except BaseException as err:  # re-raised in the main thread
            self.failure.append(err)

    # ------------------------------------------------------------ the generator's side

    def _ask(self, rules):
        """Ask for what the schedule wants now (within the budget); queue it once the
        loop runs. Returns how many points were asked."""
        asked = None if self.stop_reason or self.hopeless else self.schedule.ask(self, rules)
        if asked is None:
            self.all_queued = bool(self.stop_reason or self.hopeless) or self.schedule.all_asked(self, rules)
            return 0
        ids, U = asked
        X = self.problem.to_physical(U)
        with self.lock:
            self._points.update((int(i), x) for i, x in zip(ids, X))
            if self.queue is not None:
                self.queue.extend((int(i), x) for i, x in zip(ids, X))
                # a checkpoint waits until every rank has one of these (or all are out)
                self.dispatch_target = self.handed_out + min(len(self.queue), self.executor.size)
            self.all_queued = self.schedule.all_asked(self, rules)
        return len(ids)

    def _tell_ready(self, rules, most=None):
        """Tell every batch that is ready (at most ``most``): the breeder tells one at a
        time, so that each gets its checkpoint when due."""
        told = 0
        while most is None or told < most:
            with self.lock:
                batch = self.schedule.ready(self.buffer, self.generator, rules)
                if not batch:
                    return
                idents = {r.ident for r in batch}
                self.buffer = [r for r in self.buffer if r.ident not in idents]
            self._tell(batch, rules)
            told += 1

    def _tell(self, batch, rules):
        g = self.generator
        asked_before = g.asked
        restart = g.restart if isinstance(self.schedule, Restarting) else None  # of this batch: tell may restart
        ids = np.array([r.ident for r in batch], dtype=np.int64)
        F = np.array([r.outcome.objectives for r in batch], dtype=float)
        g.tell(ids, F)
        reasons = g.stop()
        if reasons:
            self.stop_reason = "generator stopped: " + ", ".join(f"{k}={v}" for k, v in reasons.items())
        start = self.batch_start
        self.generation += 1
        status = np.array([r.outcome.status for r in batch], dtype=np.uint8)
        failed = int(np.count_nonzero(status != OK))
        self.evaluations += len(batch)
        self.failures += failed
        if failed:
            first = next(r.outcome for r in batch if r.outcome.status != OK)
            log.warning("%s %d: %d of %d evaluations failed (%d timed out); first: %s", self.schedule.record,
                        self.generation - 1, failed, len(batch), int(np.count_nonzero(status == TIMEOUT)),
                        first.error)
            self.first_error = self.first_error or first.error
            self.first_failure = self.first_failure or next(
                (r.outcome.error for r in batch if r.outcome.status == FAILED), "")
            self._give_up_if_hopeless()
        self._ask(rules)
        with self.lock:
            for ident in ids:
                self._points.pop(int(ident), None)
        record = runfile.Generation(
            index=self.generation - 1, parameters=np.array([r.x for r in batch]), objectives=F,
            scores=self.problem.scores(F), eval_seconds=np.array([r.seconds for r in batch]),
            ranks=np.array([r.rank for r in batch], dtype=np.int32), status=status,
            errors=[r.outcome.error for r in batch], start_time=start, end_time=max(r.time for r in batch),
            features=(np.array([r.outcome.features for r in batch], dtype=float)
                      if self.problem.features else None),
            restart=restart,
            **self.schedule.extra(batch, g, asked_before),
        )
        if isinstance(self.schedule, Steady):
            self.batch_start = record.end_time  # the next batch collects results from here
        i = int(np.argmin(record.scores))
        if self.best is None or record.scores[i] < self.best[0]:
            self.best = (float(record.scores[i]), record.parameters[i])
        self.records.append(record)
        self.schedule.progress(self, record, self.first)

    def _give_up_if_hopeless(self, finished=False):
        """Ask nothing more (the evaluations in flight still finish and are told) once
        every one of at least HOPELESS_AFTER evaluations and a population failed or timed
        out, or the run finished with all of them failed: the model or its set-up is
        broken (a BluePyOpt evaluator that raises for every parameter set, a deadline no
        simulation can meet), and the rest of the budget would score only penalties. The
        run file keeps what was evaluated, with each individual's error; the caller
        says so and exits 2."""
        enough = max(HOPELESS_AFTER, self.config.optimizer.population)
        if not self.evaluations or self.failures < self.evaluations or not (finished or self.evaluations >= enough):
            return
        # an error says more than a timeout, which may only be a slow parameter set
        error = self.first_failure or self.first_error or "(in the run file)"
        self.hopeless = (f"every one of the {self.evaluations} evaluations failed or timed out; the first error"
                         f"{' of this job' if self.first else ''}: {error}")

    # ------------------------------------------------------------ resume

    def _replay(self):
        """Tell the generator what the journal says happened after the checkpoint, in
        the same order and with the same batches and asks as the session that wrote it."""
        ids, U = self.generator.pending()
        self._points = dict(zip((int(i) for i in ids), self.problem.to_physical(U) if len(U) else U))
        rules = self.rules
        for e in self.journal.entries:
            if e["event"] == "session":
                rules = self.schedule.rules_of(e, rules)
            elif e["event"] == "done" and e.get("id") in self._points:
                ident = e["id"]
                if any(r.ident == ident for r in self.buffer):
                    continue
                if e["x"] != [float(v) for v in self._points[ident]]:
                    raise RunFileError(
                        f"{self.journal.path}: individual {ident} is not the point the run file's generator asked; "
                        f"the journal belongs to another run: move it away to resume from the checkpoint "
                        f"(evaluations since then are repeated)")
                outcome = Outcome(np.array(e["objectives"]), e["status"], e["error"],
                                  None if e["features"] is None else np.array(e["features"]))
                self.buffer.append(Result(ident, self._points[ident], outcome, e["seconds"], e["rank"],
                                          e.get("time", 0.0)))
                self.reused += 1
                self._tell_ready(rules)
        if self.reused:
            log.info("journal: %d evaluations since the checkpoint reused, %d %s replayed",
                     self.reused, len(self.records), self.schedule.unit)

    def _fail_crash_loops(self):
        """Points in flight during CRASHES_BEFORE_FAILING crashes are recorded failed, and
        points abandoned by as many stopped jobs as timed out: no job loops on them."""
        buffered = {r.ident for r in self.buffer}
        crashes, abandons = self.journal.crashes(), self.journal.abandons()
        for ident in sorted(set(crashes) | set(abandons)):
            if ident not in self._points or ident in buffered:
                continue
            if crashes.get(ident, 0) >= CRASHES_BEFORE_FAILING:
                why, status = f"in flight during {crashes[ident]} crashes", FAILED
                error = f"{why} of the job"
            elif abandons.get(ident, 0) >= CRASHES_BEFORE_FAILING:
                why, status = f"still running when {abandons[ident]} stopped jobs gave up on it", TIMEOUT
                error = f"{why} (stop_within {self.config.checkpoint.stop_within:g} s after the signal)"
            else:
                continue
            log.warning("individual %d: %s, recorded as %s", ident, why, "failed" if status == FAILED else "timeout")
            self._done(ident, self.problem.penalised(error, status), 0.0, -1)
        self._tell_ready(self.rules)

    # ------------------------------------------------------------ files and log

    def _write(self):
        """Checkpoint: the records not yet written and the generator's state; the
        journal keeps what the state does not hold (results not yet told, starts of
        outstanding points, sessions)."""
        state = _state(
            self.config, self.generator, next_generation=self.generation,
            evaluations=self.evaluations, failures=self.failures, stop_reason=self.stop_reason,
        )
        records, self.records = self.records, []
        self.writer.checkpoint(records, state, {"config": json.dumps(self.config.resolved(self.problem.space))})
        outstanding = {int(i) for i in self.generator.pending()[0]}
        self.journal.clear(keep=lambda e: e["event"] == "session" or e.get("id") in outstanding)
        self.last_write, self.written = time.time(), self.generation

    def _noticed(self):
        """When the signal came (UNIX seconds), as the handler recorded it, else when
        the loop first saw it. The first time, the log says the run is stopping."""
        with self.notice_lock:
            if self.signal_time is None:
                self.signal_time = getattr(self.interrupted, "time", None) or time.time()
                number = getattr(self.interrupted, "signal", None)
                name = signal.Signals(number).name if number else "a signal"
                log.warning("%s received: stopping; the evaluations in flight may take up to %g s "
                            "(checkpoint.stop_within), then the run file is written", name,
                            self.config.checkpoint.stop_within)
        return self.signal_time

    def _stopping(self):
        if self.interrupted():
            self._noticed()
            return True
        return False

    def _summary(self):
        elapsed = time.perf_counter() - self.session_start
        names = self.problem.names
        best = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, self.best[1])) if self.best else "-"
        log.info(
            "done: %d %s, %d evaluations (%d failed) in %s; best score %s: %s; %s",
            self.generation, self.schedule.unit, self.evaluations, self.failures, _duration(elapsed),
            f"{self.best[0]:.6g}" if self.best else "-", best, self._reason(),
        )

    def _reason(self):
        return self.stop_reason or self.schedule.reason(self)


def _best_so_far(run):
    best = None
    for i in range(len(run)):
        g = run.generation(i)
        j = int(np.argmin(g.scores))
        if best is None or g.scores[j] < best[0]:
            best = (float(g.scores[j]), g.parameters[j])
    return best


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
