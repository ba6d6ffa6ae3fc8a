"""The optimisation loop on rank 0: ask, evaluate, tell, checkpoint, log.

No MPI here: evaluation goes through an object with ``map(X)`` (parallel.Evaluator),
and files through runfile. Termination is data decided here (STYLE.md 6):
the generation budget, the generator's own reasons, or ``interrupted()`` (set by
a signal handler) checked at the end of every generation.
"""

import json
import logging
import time

import numpy as np

from . import generators, journal, runfile
from .journal import CRASHES_BEFORE_FAILING, Journal
from .problem import OK, TIMEOUT, Outcome

log = logging.getLogger("hpcopt")

# Exit statuses of `hpcopt run` / `hpcopt resume`
EXIT_DONE = 0  # the run is finished (budget met or the generator stopped)
EXIT_USAGE = 2  # bad input: nothing was written
EXIT_INTERRUPTED = 3  # stopped early by a signal; the run file is complete, resume it


def start(path, config, problem, versions):
    """Create the run file for a new run; returns the generator."""
    generator = generators.create(config.optimizer, problem.dimension, len(problem.objectives))
    attrs = {
        "parameter_names": list(problem.names),
        "objective_names": list(problem.objectives),
        "feature_names": list(problem.features),
        "config": json.dumps(config.resolved()),
        **versions,
    }
    state = _state(config, generator, next_generation=0, evaluations=0, failures=0)
    runfile.create(path, attrs, problem.lower, problem.upper, state)
    journal.remove(path)  # a new run: nothing of an old one may be reused
    return generator


def _state(config, generator, *, next_generation, evaluations, failures, stop_reason=""):
    return {
        "algorithm": config.optimizer.algorithm,
        "next_generation": next_generation,
        "evaluations": evaluations,
        "failures": failures,
        "stop_reason": stop_reason,
        "generator": generator.state(),
    }


class Loop:
    """Runs generations from the state saved in the run file at ``path``.

    config: the run's Config (its generation budget may exceed the original);
    problem: problem.Problem; evaluator: has ``map(X, todo, ...)`` (parallel.Evaluator);
    interrupted: () -> bool, true once a signal asked the job to stop (its ``time``
    attribute, if any, says when).

    Evaluations since the last checkpoint are in the journal (journal.py): a
    resumed run replays the generator and reuses them instead of evaluating again.
    """

    unit = "generations"  # what the run file's records are, for the log

    def __init__(self, path, config, problem, evaluator, interrupted=lambda: False):
        self.path, self.config, self.problem, self.evaluator = path, config, problem, evaluator
        self.interrupted = interrupted
        with runfile.RunFile(path) as run:
            state = run.state()
            self.best = _best_so_far(run)
        self.generator = generators.restore(state["algorithm"], state["generator"])
        self.generation = state["next_generation"]
        self.evaluations = state["evaluations"]
        self.failures = state["failures"]
        self.stop_reason = state["stop_reason"]
        self.journal = Journal(path, **self._session())
        self.writer = runfile.Writer(path)
        self.reused = 0
        self.signal_time = None

    def _session(self):
        """What the journal's session event records besides time and pid."""
        return {}

    def run(self):
        """Run until done or interrupted; returns EXIT_DONE or EXIT_INTERRUPTED."""
        try:
            return self._run()
        finally:
            self.journal.close()
            self.writer.close()

    def _run(self):
        budget = self.config.optimizer.generations
        every = self.config.checkpoint
        pending, last_write = [], time.time()
        session_start, first_generation = time.perf_counter(), self.generation
        if self.stop_reason or self.generation >= budget:
            log.info("run already finished (%s)", self._reason())
            return EXIT_DONE
        log.info(
            "%s: generation %d of %d, %s, %s, population %d",
            self.path, self.generation, budget, _ranks(self.evaluator),
            self.config.optimizer.algorithm, self.config.optimizer.population,
        )
        status = EXIT_DONE
        while self.generation < budget:
            told_state = self.generator.state()  # what a checkpoint holds if this generation is cut short
            record = self._generation()
            if record is None:  # a signal cut the generation short
                self._write(pending, told_state)
                self.journal.sync()
                status = EXIT_INTERRUPTED
                break
            pending.append(record)
            self.generation += 1
            reasons = self.generator.stop()
            if reasons:
                self.stop_reason = "generator stopped: " + ", ".join(f"{k}={v}" for k, v in reasons.items())
            finished = bool(self.stop_reason) or self.generation >= budget
            interrupted = self.interrupted() and not finished
            due = (
                finished
                or interrupted
                or self.generation % every.every_generations == 0
                or (every.every_seconds and time.time() - last_write >= every.every_seconds)
            )
            if due:
                self._write(pending)
                pending, last_write = [], time.time()
            self._progress(record, session_start, first_generation, budget)
            if self.stop_reason:
                break
            if interrupted:
                status = EXIT_INTERRUPTED
                break
        if status == EXIT_INTERRUPTED:
            waited = time.time() - self._noticed()
            log.warning("interrupted by a signal: run file complete up to generation %d, written %.1f s after "
                        "the signal%s; continue with 'hpcopt resume %s'", self.generation - 1, waited,
                        "; evaluations in flight were abandoned" if self.evaluator_abandoned else "", self.path)
        self._summary(session_start)
        return status

    @property
    def evaluator_abandoned(self):
        return getattr(self.evaluator, "abandoned", False)

    def _noticed(self):
        """When the signal came (UNIX seconds), as the handler recorded it, else when
        the loop first saw it."""
        if self.signal_time is None:
            self.signal_time = getattr(self.interrupted, "time", None) or time.time()
        return self.signal_time

    def _stopping(self):
        if self.interrupted():
            self._noticed()
            return True
        return False

    def _generation(self):
        """Ask, evaluate (reusing the journal's results), tell: a runfile.Generation,
        or None when a signal stopped the generation before it was complete."""
        g = self.generation
        start = time.time()
        U = self.generator.ask()
        X = self.problem.to_physical(U)
        outcomes, seconds, ranks = [None] * len(X), np.zeros(len(X)), np.zeros(len(X), dtype=np.int32)
        for i, entry in self.journal.results(g).items():
            if i < len(X) and entry["x"] == [float(v) for v in X[i]]:
                outcomes[i] = Outcome(np.array(entry["objectives"]), entry["status"], entry["error"],
                                      None if entry["features"] is None else np.array(entry["features"]))
                seconds[i], ranks[i] = entry["seconds"], entry["rank"]
                self.reused += 1
        for i, crashes in self.journal.crashes(g).items():
            if i < len(X) and outcomes[i] is None and crashes >= CRASHES_BEFORE_FAILING:
                outcomes[i] = self.problem.penalised(f"in flight during {crashes} crashes of the job")
                self.journal.done(g, i, X[i], outcomes[i], 0.0, -1)
                ranks[i] = -1
                log.warning("generation %d, individual %d: in flight during %d crashes, recorded as failed",
                            g, i, crashes)
        todo = [i for i, o in enumerate(outcomes) if o is None]
        results, abandoned = self.evaluator.map(
            X, todo,
            started=lambda i, rank: self.journal.started(g, i, rank),
            done=lambda i, outcome, secs, rank: self.journal.done(g, i, X[i], outcome, secs, rank),
            stopping=self._stopping, grace=self.config.checkpoint.stop_within,
        )
        for i in abandoned:
            self.journal.abandoned(g, i)
        for i, (outcome, secs, rank) in results.items():
            outcomes[i], seconds[i], ranks[i] = outcome, secs, rank
        if any(o is None for o in outcomes):
            return None
        F = np.array([o.objectives for o in outcomes], dtype=float)
        self.generator.tell(U, F)
        status = np.array([o.status for o in outcomes], dtype=np.uint8)
        failed = int(np.count_nonzero(status != OK))
        self.evaluations += len(X)
        self.failures += failed
        if failed:
            first = next(o for o in outcomes if o.status != OK)
            timeouts = int(np.count_nonzero(status == TIMEOUT))
            log.warning("generation %d: %d of %d evaluations failed (%d timed out); first: %s",
                        g, failed, len(X), timeouts, first.error)
        record = runfile.Generation(
            index=g, parameters=X, objectives=F, scores=self.problem.scores(F),
            eval_seconds=seconds, ranks=ranks, status=status,
            errors=[o.error for o in outcomes], start_time=start, end_time=time.time(),
            features=np.array([o.features for o in outcomes], dtype=float) if self.problem.features else None,
        )
        i = int(np.argmin(record.scores))
        if self.best is None or record.scores[i] < self.best[0]:
            self.best = (float(record.scores[i]), record.parameters[i])
        return record

    def _write(self, pending, generator_state=None):
        """Checkpoint: append the ``pending`` generations, save the generator's state
        (``generator_state`` when the generator has already asked for the next one)."""
        state = _state(
            self.config, self.generator, next_generation=self.generation,
            evaluations=self.evaluations, failures=self.failures, stop_reason=self.stop_reason,
        )
        if generator_state is not None:
            state["generator"] = generator_state
        self.writer.checkpoint(pending, state, {"config": json.dumps(self.config.resolved())})
        self.journal.clear(keep_from=self.generation)

    def _progress(self, record, session_start, first_generation, budget):
        elapsed = time.perf_counter() - session_start
        done = self.generation - first_generation
        rate = len(record.scores) / max(record.end_time - record.start_time, 1e-9)
        left = (budget - self.generation) * elapsed / done
        log.info(
            "gen %d/%d  evals %d  best %.6g  median %.6g  %.1f evals/s  left %s",
            self.generation, budget, self.evaluations, self.best[0], float(np.median(record.scores)),
            rate, _duration(left),
        )

    def _summary(self, session_start):
        elapsed = time.perf_counter() - session_start
        names = self.problem.names
        best = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, self.best[1])) if self.best else "-"
        log.info(
            "done: %d %s, %d evaluations (%d failed) in %s; best score %s: %s; %s",
            self.generation, self.unit, self.evaluations, self.failures, _duration(elapsed),
            f"{self.best[0]:.6g}" if self.best else "-", best, self._reason(),
        )


    def _reason(self):
        if self.stop_reason:
            return self.stop_reason
        budget = self.config.optimizer.generations
        return f"generation budget of {budget} met" if self.generation >= budget else "not finished"


def _ranks(evaluator):
    describe = getattr(evaluator, "describe", None)
    return describe() if describe else f"{getattr(evaluator, 'size', 1)} ranks"


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
