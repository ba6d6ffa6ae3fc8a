"""Evaluations with a deadline (``evaluation.timeout``): each rank evaluates in a
child process of its own, and replaces it when an evaluation overruns. Without a
deadline, rank 0 evaluates this way too when it also answers other ranks (cli.py).

Python cannot stop a thread stuck in C code (a NEURON integration, a C extension
blocked in a system call), so a deadline needs a process to end. The child is a new
interpreter (``python -m hpcopt.problem.deadline``), never a fork of the rank: a forked
MPI process can take messages meant for its parent. It builds the problem's evaluator
once, without MPI, and then answers one JSON line per point on its own pipes (the
model's prints still go to the job's output). A point past the deadline kills the
child (SIGKILL), scores the penalty with status ``timeout``, and the next point goes to
a new child; a child that dies (a crash in C, ``exit()`` from C) is a failed
evaluation, and a new one takes over too.

The child also bounds how long a stopping job waits for the rank's own evaluation:
``__call__(x, give_up)`` ends the child and returns None once ``give_up()`` is true
(the job was signalled ``checkpoint.stop_within`` seconds ago), deadline or not.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np

from ..errors import HpcoptError
from .outcome import TIMEOUT, Outcome

GAVE_UP = "gave up"  # what _receive returns when give_up() said so
GIVE_UP_POLL = 0.1  # seconds between two looks at give_up() while an evaluation runs


class ChildError(HpcoptError):
    """The evaluating child process could not build the problem."""


class Deadline:
    """(d,) physical values -> Outcome, each evaluation in a child process and at most
    ``timeout`` seconds long (None: no limit).

    problem: the run's Problem (penalty, objective count); spec: the JSON-able
    {"config": raw config, "source": name for messages, "base_dir": folder or None}
    the child builds the same problem from; rank: the MPI rank this child evaluates
    for, which the child finds in ``HPCOPT_RANK`` (it is not part of the MPI job);
    crash_with_child: a child that dies ends this process too, as a crash of the rank
    would (the job ends, and the crash rule of the resumed run applies, as for every
    other rank), instead of scoring the evaluation failed.
    """

    def __init__(self, problem, spec, timeout, rank=None, crash_with_child=False):
        self.problem, self.spec = problem, spec
        self.timeout = None if timeout is None else float(timeout)
        self.rank, self.crash_with_child = rank, crash_with_child
        self.child = None
        self.replaced = 0  # children ended because an evaluation overran or died
        self._start()

    def _start(self):
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        command = [sys.executable, "-m", "hpcopt.problem.deadline", str(from_parent), str(to_parent)]
        env = _without_mpi(os.environ)
        if self.rank is not None:
            env["HPCOPT_RANK"] = str(self.rank)
        self.child = subprocess.Popen(command, pass_fds=(from_parent, to_parent), stdin=subprocess.DEVNULL,
                                      env=env)
        os.close(from_parent)
        os.close(to_parent)
        self.writer = os.fdopen(to_child, "w")
        self.reader = os.fdopen(from_child, "r")
        self._send(self.spec)
        answer = self._receive(None)  # building has no deadline: a set-up that hangs is the user's to see
        if answer is None or "error" in answer:
            self.close()
            why = answer["error"] if answer else f"it ended with exit status {self.child.returncode}"
            who = "" if self.rank is None else f" for rank {self.rank}"
            raise ChildError(f"the child process that evaluates{who} could not build the problem: {why}")

    can_give_up = True  # __call__ takes give_up (executor.Executor.evaluate_here)

    def __call__(self, x, give_up=None):
        """The Outcome of x; None if ``give_up()`` became true first (the child is ended)."""
        self._send({"x": [float(v) for v in x]})
        start = time.monotonic()
        answer = self._receive(self.timeout, give_up)
        if answer is GAVE_UP:
            self.close()
            return None
        if answer is None:
            running = self.child.poll() is None
            if not running and self.crash_with_child:
                self._crash()
            self._replace()
            if running:
                return self.problem.penalised(f"past evaluation.timeout ({self.timeout:g} s): stopped after "
                                              f"{time.monotonic() - start:.1f} s", TIMEOUT)
            return self.problem.penalised(f"the evaluation ended its process (exit status {self.child.returncode})")
        features = answer["features"]
        return Outcome(np.array(answer["objectives"], dtype=float), answer["status"], answer["error"],
                       np.array(features, dtype=float) if features is not None else None)

    def _crash(self):
        """End this process as the child ended: with its signal, else its exit status."""
        code = self.child.returncode
        print(f"hpcopt: rank {self.rank}'s evaluation process ended (exit status {code}) in an evaluation: "
              "the job ends, as when a rank crashes", file=sys.stderr, flush=True)
        sys.stdout.flush()
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code or 1)

    def _send(self, message):
        try:
            self.writer.write(json.dumps(message) + "\n")
            self.writer.flush()
        except BrokenPipeError:
            pass  # the child is gone: _receive sees it

    def _receive(self, timeout, give_up=None):
        """The child's next line as a dict; None if it is gone or ``timeout`` passed,
        GAVE_UP once ``give_up()`` is true."""
        end = None if timeout is None else time.monotonic() + timeout
        while timeout is not None or give_up is not None:
            wait = None if give_up is None else GIVE_UP_POLL
            if end is not None:
                left = max(0.0, end - time.monotonic())
                wait = left if wait is None else min(wait, left)
            ready, _, _ = select.select([self.reader], [], [], wait)
            if ready:
                break
            if give_up is not None and give_up():
                return GAVE_UP
            if end is not None and time.monotonic() >= end:
                return None
        line = self.reader.readline()
        if not line:
            self.child.wait()
            return None
        return json.loads(line)

    def _replace(self):
        self.close()
        self.replaced += 1
        self._start()

    def close(self):
        """End the child now."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGKILL)
        self.child.wait()
        for f in (self.writer, self.reader):
            try:
                f.close()
            except OSError:
                pass


def _without_mpi(environ):
    """The rank's environment without what makes a process join the MPI job (the
    launcher's variables): the child is a plain process."""
    prefixes = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCALNRANKS", "MPI_LOCALRANKID")
    return {k: v for k, v in environ.items() if not k.startswith(prefixes)}


def _end_with_parent():
    """Linux: SIGKILL this process when the rank that started it dies (even by SIGKILL),
    so that no child stuck in C code outlives its job."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the rank died before prctl took effect
        os._exit(1)


def _serve(read_fd, write_fd):
    """The child's side: build the problem from the first line, then evaluate."""
    from .. import config as configuration
    from .space import Problem

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):  # the rank decides; it ends this one
        signal.signal(signum, signal.SIG_IGN)
    _end_with_parent()
    reader, writer = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")

    def answer(message):
        writer.write(json.dumps(message) + "\n")
        writer.flush()

    spec = json.loads(reader.readline())
    try:
        config = configuration.parse(spec["config"], source=spec["source"], base_dir=spec["base_dir"])
        evaluate = Problem(config).evaluator(None, for_a_rank=True)
    except HpcoptError as err:
        answer({"error": str(err)})
        return
    answer({"ready": True})
    for line in reader:
        outcome = evaluate(np.array(json.loads(line)["x"]))
        features = outcome.features
        answer({"objectives": [float(v) for v in outcome.objectives], "status": int(outcome.status),
                "error": outcome.error,
                "features": None if features is None else [float(v) for v in features]})


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
