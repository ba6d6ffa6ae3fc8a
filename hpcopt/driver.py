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

from . import generators, runfile
from .problem import OK, TIMEOUT

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
    problem: problem.Problem; evaluator: has ``map(X)``; interrupted: () -> bool.
    """

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

    def run(self):
        """Run until done or interrupted; returns EXIT_DONE or EXIT_INTERRUPTED."""
        budget = self.config.optimizer.generations
        every = self.config.checkpoint
        pending, last_write = [], time.time()
        session_start, first_generation = time.perf_counter(), self.generation
        if self.stop_reason:
            log.info("run already finished (%s)", self.stop_reason)
            return EXIT_DONE
        log.info(
            "%s: generation %d of %d, %d ranks, %s, population %d",
            self.path, self.generation, budget, getattr(self.evaluator, "size", 1),
            self.config.optimizer.algorithm, self.config.optimizer.population,
        )
        status = EXIT_DONE
        while self.generation < budget:
            record = self._generation()
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
                log.warning("interrupted: stopped after generation %d; resume with 'hpcopt resume %s'",
                            self.generation - 1, self.path)
                status = EXIT_INTERRUPTED
                break
        self._summary(session_start)
        return status

    def _generation(self):
        start = time.time()
        U = self.generator.ask()
        X = self.problem.to_physical(U)
        outcomes, seconds, ranks = self.evaluator.map(X)
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
                        self.generation, failed, len(X), timeouts, first.error)
        record = runfile.Generation(
            index=self.generation, parameters=X, objectives=F, scores=self.problem.scores(F),
            eval_seconds=np.array(seconds), ranks=np.array(ranks), status=status,
            errors=[o.error for o in outcomes], start_time=start, end_time=time.time(),
            features=np.array([o.features for o in outcomes], dtype=float) if self.problem.features else None,
        )
        i = int(np.argmin(record.scores))
        if self.best is None or record.scores[i] < self.best[0]:
            self.best = (float(record.scores[i]), record.parameters[i])
        return record

    def _write(self, pending):
        state = _state(
            self.config, self.generator, next_generation=self.generation,
            evaluations=self.evaluations, failures=self.failures, stop_reason=self.stop_reason,
        )
        runfile.checkpoint(self.path, pending, state, {"config": json.dumps(self.config.resolved())})

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
            "done: %d generations, %d evaluations (%d failed) in %s; best score %s: %s; %s",
            self.generation, self.evaluations, self.failures, _duration(elapsed),
            f"{self.best[0]:.6g}" if self.best else "-", best, self._reason(),
        )


    def _reason(self):
        if self.stop_reason:
            return self.stop_reason
        budget = self.config.optimizer.generations
        return f"generation budget of {budget} met" if self.generation >= budget else "not finished"


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
