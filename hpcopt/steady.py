"""Asynchronous (steady-state) optimisation: a free rank always gets new work.

With a generation barrier, the ranks that finish early wait for the slowest
evaluation of the generation; with heavy-tailed evaluation times half of an
allocation can go that way. Here the generator (ibea.SteadyIBEA) is told results
in batches of ``optimizer.batch`` as they complete, and asked for new points at
once, so that ``outstanding`` points (asked, not yet told) are always about the
number of ranks plus a batch: a rank that finishes finds work queued.

Three threads on rank 0: the main thread evaluates (rank 0 is a rank like the
others, inside ``Evaluator.stream``), the dispatcher hands the queue out to the
other ranks, and the breeder here tells and asks the generator and writes the
checkpoints. Only the breeder touches the generator.

Which results form a batch depends on the order in which evaluations finish,
which no one controls; what hpcopt guarantees is an exact resume. Rank 0 appends
every result to the journal in the order the generator is told them (the journal
and the batch buffer are written under one lock), and everything the generator
does is a function of that order, of the ``outstanding`` target and of the
evaluation budget, which each session records in the journal. A resumed run
replays the journal after the checkpoint through the generator, arriving at the
exact state of the interrupted run, evaluates again only what was in flight, and
goes on. Every batch record
stores the generator's ask count before and after it, so a run file can be
checked: fed its batches in order, a fresh generator asks exactly the stored
points (tests/test_steady.py does this for runs interrupted by signals and kill -9).

A batch is stored as a "generation" of the run file (with the ids of its
individuals); ``generations`` keeps its meaning as a budget: the run evaluates
population + (generations - 1) x offspring points, as a generational run does.
"""

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from . import runfile
from .driver import EXIT_DONE, EXIT_INTERRUPTED, Loop, _duration, _ranks, _state
from .errors import ConfigError, RunFileError
from .journal import CRASHES_BEFORE_FAILING
from .parallel import END
from .problem import OK, Outcome

log = logging.getLogger("hpcopt")

PROGRESS_SECONDS = 10.0  # at most one progress line per this many seconds (and one per checkpoint)


@dataclass
class Result:
    """An evaluation that completed and is waiting for its batch."""

    ident: int
    x: np.ndarray
    outcome: Outcome
    seconds: float
    rank: int
    time: float


class SteadyLoop(Loop):
    """Runs an asynchronous optimisation from the state saved in the run file ``path``;
    the arguments are Loop's."""

    unit = "batches"

    def __init__(self, path, config, problem, evaluator, interrupted=lambda: False):
        optimizer = config.optimizer
        self.batch = optimizer.batch_size
        self.total = optimizer.evaluations
        # enough points outstanding that every rank has one and a batch can complete
        self.outstanding = max(optimizer.population, getattr(evaluator, "size", 1) + self.batch)
        super().__init__(path, config, problem, evaluator, interrupted)
        self.lock = threading.Condition()
        self.buffer = []  # Results not yet told, in the order they completed
        self.queue = None  # (id, physical x) not yet handed out, once the evaluations start
        self._points = {}  # id -> physical x of every outstanding point
        self.all_queued = False
        self.records = []  # batches not yet written to the run file
        self.batch_start = time.time()
        self.last_write = self.last_line = time.time()
        self.written = self.generation  # batches in the run file
        self.finishing = False
        self.failure = []

    def _session(self):
        return {"outstanding": self.outstanding, "total": self.total}

    def _run(self):
        g = self.generator
        session_start = time.perf_counter()
        self._started, self._told_at_start = time.time(), g.told
        if self.stop_reason or g.told >= self.total:
            log.info("run already finished (%s)", self._reason())
            return EXIT_DONE
        log.info(
            "%s: asynchronous IBEA, %d of %d evaluations told, %s, population %d, batches of %d, "
            "%d points outstanding", self.path, g.told, self.total, _ranks(self.evaluator),
            self.config.optimizer.population, self.batch, self.outstanding,
        )
        self._replay()
        self._fail_crash_loops()
        if self.total < g.asked:
            raise ConfigError("--generations", f"this asynchronous run has asked for {g.asked} points already: "
                              f"its budget ({self.total} evaluations now) cannot be lower")
        if self._ask(self._rules):
            self._write()  # what was asked must be in the file before anything is evaluated
        buffered = {r.ident for r in self.buffer}
        self.queue = deque((i, x) for i, x in self._points.items() if i not in buffered)
        self.all_queued = g.asked >= self.total

        breeder = threading.Thread(target=self._breed, daemon=True)
        breeder.start()
        try:
            abandoned = self.evaluator.stream(
                self._take, self._done, started=self.journal.started_id,
                stopping=lambda: self._stopping() or bool(self.failure),
                grace=self.config.checkpoint.stop_within,
            )
        finally:
            with self.lock:
                self.finishing = True
                self.lock.notify_all()
            breeder.join()
        for ident in abandoned:  # stopped, not crashed: not counted against them
            self.journal.abandoned_id(ident)
        if self.failure:
            raise self.failure[0]
        interrupted = g.told < self.total
        if self.records or self.generation == 0:  # the breeder wrote the last batch when it was due
            self._write()
        if interrupted:
            self.journal.sync()
            waited = time.time() - self._noticed()
            log.warning("interrupted by a signal: run file complete up to batch %d (%d of %d evaluations told), "
                        "written %.1f s after the signal%s; continue with 'hpcopt resume %s'",
                        self.generation - 1, g.told, self.total, waited,
                        "; evaluations in flight were abandoned" if abandoned else "", self.path)
        self._summary(session_start)
        return EXIT_INTERRUPTED if interrupted else EXIT_DONE

    # ------------------------------------------------------------ the three threads

    def _take(self, rank):
        """Evaluator.stream's source: the next queued point, None, or END."""
        with self.lock:
            if not self.queue:
                return END if self.all_queued else None
            return self.queue.popleft()

    def _done(self, ident, outcome, seconds, rank):
        """Evaluator.stream's sink: journal and buffer in one order."""
        with self.lock:
            x = self._points[ident]
            self.journal.done_id(ident, x, outcome, seconds, rank)
            self.buffer.append(Result(ident, x, outcome, seconds, rank, time.time()))
            self.lock.notify_all()

    def _breed(self):
        """The breeder thread: tell complete batches, ask, checkpoint when due."""
        try:
            every = self.config.checkpoint
            while True:
                with self.lock:
                    self.lock.wait_for(lambda: self.finishing or self._ready(self._rules))
                    if not self._ready(self._rules):
                        return
                self._tell_ready(self._rules)
                due = (self.generator.told >= self.total
                       or self.generation - self.written >= every.every_generations
                       or (every.every_seconds and time.time() - self.last_write >= every.every_seconds))
                if due and not self.finishing:
                    self._write()
                if self.generator.told >= self.total:
                    return
        except BaseException as err:  # re-raised in the main thread
            self.failure.append(err)

    # ------------------------------------------------------------ the generator's side

    @property
    def _rules(self):
        """What the generator's calls depend on besides the results: (the outstanding
        target, the evaluation budget), as this session's journal event records them."""
        return self.outstanding, self.total

    def _ask(self, rules):
        """Ask for as many points as bring the outstanding ones up to rules' target
        (within its budget); queue them once the loop runs. Returns how many."""
        g = self.generator
        outstanding, total = rules
        n = max(0, min(outstanding - g.outstanding, total - g.asked))
        if n:
            ids, U = g.ask(n)
            X = self.problem.to_physical(U)
            with self.lock:
                self._points.update((int(i), x) for i, x in zip(ids, X))
                if self.queue is not None:
                    self.queue.extend((int(i), x) for i, x in zip(ids, X))
                self.all_queued = g.asked >= self.total
        return n

    def _ready(self, rules):
        """A batch can be told: a full one, or the last one once nothing else is outstanding."""
        if len(self.buffer) >= self.batch:
            return True
        g = self.generator
        return bool(self.buffer) and g.asked >= rules[1] and len(self.buffer) == g.outstanding

    def _tell_ready(self, rules):
        while True:
            with self.lock:
                if not self._ready(rules):
                    return
                batch = self.buffer[:self.batch]
                del self.buffer[:self.batch]
            self._tell(batch, rules)

    def _tell(self, batch, rules):
        g = self.generator
        asked_before = g.asked
        ids = np.array([r.ident for r in batch], dtype=np.int64)
        F = np.array([r.outcome.objectives for r in batch], dtype=float)
        g.tell(ids, F)
        self._ask(rules)
        with self.lock:
            for ident in ids:
                self._points.pop(int(ident), None)
        status = np.array([r.outcome.status for r in batch], dtype=np.uint8)
        failed = int(np.count_nonzero(status != OK))
        self.evaluations += len(batch)
        self.failures += failed
        if failed:
            first = next(r.outcome for r in batch if r.outcome.status != OK)
            log.warning("batch %d: %d of %d evaluations failed; first: %s", self.generation, failed, len(batch),
                        first.error)
        end = batch[-1].time
        record = runfile.Generation(
            index=self.generation, parameters=np.array([r.x for r in batch]), objectives=F,
            scores=self.problem.scores(F), eval_seconds=np.array([r.seconds for r in batch]),
            ranks=np.array([r.rank for r in batch], dtype=np.int32), status=status,
            errors=[r.outcome.error for r in batch], start_time=self.batch_start, end_time=end,
            features=(np.array([r.outcome.features for r in batch], dtype=float)
                      if self.problem.features else None),
            ids=ids, finished=np.array([r.time for r in batch]), asked=(asked_before, g.asked),
        )
        self.batch_start = end
        self.generation += 1
        i = int(np.argmin(record.scores))
        if self.best is None or record.scores[i] < self.best[0]:
            self.best = (float(record.scores[i]), record.parameters[i])
        self.records.append(record)
        if time.time() - self.last_line >= PROGRESS_SECONDS or g.told >= self.total:
            self._line()

    # ------------------------------------------------------------ resume

    def _replay(self):
        """Tell the generator what the journal says happened after the checkpoint, in
        the same order and with the same batches and asks as the session that wrote it."""
        g = self.generator
        ids, U = g.pending()
        self._points = dict(zip((int(i) for i in ids), self.problem.to_physical(U) if len(U) else U))
        rules = self._rules
        for e in self.journal.entries:
            if e["event"] == "session":
                rules = (e.get("outstanding", rules[0]), e.get("total", rules[1]))
            elif e["event"] == "done" and "id" in e and e["id"] in self._points:
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
                self.buffer.append(Result(ident, self._points[ident], outcome, e["seconds"], e["rank"], e["time"]))
                self.reused += 1
                self._tell_ready(rules)
        if self.reused:
            log.info("journal: %d evaluations since the checkpoint reused, %d batches replayed",
                     self.reused, len(self.records))

    def _fail_crash_loops(self):
        """Points in flight during CRASHES_BEFORE_FAILING crashes are recorded failed."""
        buffered = {r.ident for r in self.buffer}
        for ident, crashes in sorted(self.journal.crashes_by_id().items()):
            if crashes >= CRASHES_BEFORE_FAILING and ident in self._points and ident not in buffered:
                outcome = self.problem.penalised(f"in flight during {crashes} crashes of the job")
                log.warning("individual %d: in flight during %d crashes, recorded as failed", ident, crashes)
                self._done(ident, outcome, 0.0, -1)
        self._tell_ready(self._rules)

    # ------------------------------------------------------------ files and log

    def _write(self):
        """Checkpoint: the batches not yet written and the generator's state; the
        journal keeps what the state does not hold (results not yet told, starts of
        outstanding points, sessions)."""
        state = _state(
            self.config, self.generator, next_generation=self.generation,
            evaluations=self.evaluations, failures=self.failures, stop_reason=self.stop_reason,
        )
        records, self.records = self.records, []
        self.writer.checkpoint(records, state, {"config": json.dumps(self.config.resolved())})
        outstanding = {int(i) for i in self.generator.pending()[0]}
        self.journal.clear(keep=lambda e: e["event"] == "session" or e.get("id") in outstanding)
        self.last_write, self.written = time.time(), self.generation
        if time.time() - self.last_line >= PROGRESS_SECONDS:
            self._line()

    def _line(self):
        g = self.generator
        self.last_line = time.time()
        elapsed = time.time() - self._started
        rate = (g.told - self._told_at_start) / max(elapsed, 1e-9)
        left = (self.total - g.told) / rate if rate > 0 else float("nan")
        log.info("batch %d  evals %d/%d  best %s  %.1f evals/s  left %s", self.generation, g.told, self.total,
                 f"{self.best[0]:.6g}" if self.best else "-", rate,
                 _duration(left) if np.isfinite(left) else "-")

    def _reason(self):
        if self.stop_reason:
            return self.stop_reason
        told = self.generator.told
        return f"evaluation budget of {self.total} met" if told >= self.total else "not finished"

