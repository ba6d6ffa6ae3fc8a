"""Executors: who evaluates the points a run asks for.

An executor has one method that matters, ``stream(take, done, ...)``: it evaluates
whatever ``take`` hands out until ``take`` says END, calls ``done`` with each result,
and stops starting new evaluations once ``stopping()`` is true. Two backends:

- ``SerialExecutor`` (here): one process evaluates everything, in order; no MPI. The
  loop and the generators are tested with it.
- ``mpi.MPIExecutor``: rank 0 hands points out to whichever rank is free.

Abandoning evaluations on a stop, and (later) deadlines, belong behind this interface.
"""

import threading
import time
from collections import deque

END = "end of work"  # what a ``take`` returns once nothing more will come
MAX_SLEEP = 0.002  # seconds; bounds how long a free evaluator waits for work that is not ready yet


def after_grace(stopping, grace):
    """() -> True once ``stopping()`` has been true for ``grace`` seconds, counted from
    the first call that saw it true: when a stopping job gives up on what is in flight."""
    noticed = None

    def passed():
        nonlocal noticed
        if not stopping():
            return False
        noticed = noticed or time.perf_counter()
        return time.perf_counter() - noticed >= grace

    return passed


class Executor:
    """What every backend shares. Subclasses set ``size`` and implement ``stream``."""

    size = 1
    abandoned = False  # some evaluation is still running that nobody waits for

    def stream(self, take, done, *, started=None, stopping=None, grace=0.0):
        """Evaluate whatever ``take`` hands out until it has no more.

        take(rank) -> (key, x) for ``rank`` to evaluate now, None when nothing is ready
        yet (it is asked again shortly), or END once nothing more will come; it must
        not block or write files. started(key, rank) once a key is on its way,
        done(key, outcome, seconds, rank) as each evaluation finishes. Once
        ``stopping()`` is true no new evaluation starts, and those in flight elsewhere
        are waited for at most ``grace`` seconds, then abandoned.

        Returns [keys of abandoned evaluations].
        """
        raise NotImplementedError

    def map(self, X, todo=None, *, started=None, done=None, stopping=None, grace=0.0):
        """Evaluate the rows ``todo`` (default: all) of X (n, d); the callbacks as for
        ``stream``, with row numbers as keys.

        Returns ({i: (Outcome, seconds, rank)} of the completed rows, [abandoned rows]).
        """
        queue = deque(range(len(X)) if todo is None else todo)
        done = done or (lambda i, outcome, seconds, rank: None)
        results, lock = {}, threading.Lock()

        def take(rank):
            with lock:
                if not queue:
                    return END
                i = queue.popleft()
            return i, X[i]

        def finish(i, outcome, seconds, rank):
            results[i] = (outcome, seconds, rank)
            done(i, outcome, seconds, rank)

        abandoned = self.stream(take, finish, started=started, stopping=stopping, grace=grace)
        return results, abandoned

    def evaluate_here(self, take, done, started, stopping, grace=0.0):
        """Evaluate in this thread, as rank 0, whatever ``take`` hands out, until it says END
        or ``stopping()`` is true (``self.evaluate``: (d,) -> Outcome). Returns [the key
        of the evaluation abandoned], or []: an evaluation in a child process
        (``self.evaluate.can_give_up``, problem.deadline) is given up ``grace`` seconds
        after ``stopping()`` became true, so that a stop never waits for rank 0's own."""
        give_up = after_grace(stopping, grace) if getattr(self.evaluate, "can_give_up", False) else None
        delay = 1e-5
        while not stopping():
            task = take(0)
            if task is END:
                return []
            if task is None:  # another thread of the caller is about to hand out more
                time.sleep(delay)
                delay = min(2 * delay, MAX_SLEEP)
                continue
            delay = 1e-5
            key, x = task
            started(key, 0)
            start = time.perf_counter()
            outcome = self.evaluate(x) if give_up is None else self.evaluate(x, give_up)
            if outcome is None:
                return [key]
            done(key, outcome, time.perf_counter() - start, 0)
        return []

    def describe(self):
        """How many ranks, for the log."""
        return f"{self.size} ranks"

    def close(self):
        """Release the workers (nothing to do without any)."""


class SerialExecutor(Executor):
    """Evaluates in this process, one point at a time.

    evaluate: (d,) physical values -> Outcome.
    """

    def __init__(self, evaluate):
        self.evaluate = evaluate

    def stream(self, take, done, *, started=None, stopping=None, grace=0.0):
        return self.evaluate_here(take, done, started or (lambda key, rank: None), stopping or (lambda: False), grace)

    def describe(self):
        return "1 rank"
