"""The MPI executor: the only module that imports mpi4py.

Rank 0 hands out individuals one at a time to whichever rank is free (dynamic
distribution: evaluation times vary tenfold within a generation) and, unless told
to only dispatch, evaluates individuals itself too, so N ranks run N evaluations
at once. Its dispatcher runs in a thread beside rank 0's own evaluations; the
main thread makes no MPI call while that thread lives, so MPI_THREAD_SERIALIZED
suffices, except where groups of ranks evaluate one individual together (a network
over NEURON subworlds, ``split``): rank 0's group then calls MPI while it integrates,
which needs MPI_THREAD_MULTIPLE (``threads_at_once``).

Nobody busy-spins: MPI's blocking calls poll the network at full speed, which on
an oversubscribed node steals a core from a simulation, so every wait here is a
non-blocking probe followed by a sleep that grows to at most ``MAX_SLEEP``.

Results come back with their index, so the answer does not depend on which rank
evaluated what or in which order evaluations finished.
"""

import sys
import threading
import time

from mpi4py import MPI

from .executor import END, MAX_SLEEP, Executor, after_grace

TASK, RESULT, STOP = 1, 2, 3
SWITCH_INTERVAL = 0.0002  # seconds; how soon rank 0's dispatcher thread gets the GIL


def world():
    return MPI.COMM_WORLD


def library_version():
    """The first line of the MPI library's version string (Open MPI's ends in a NUL,
    which an HDF5 string attribute cannot hold)."""
    return MPI.Get_library_version().split("\0")[0].strip().splitlines()[0]


def abort(comm, code=1):
    """End every rank of the job now (no rank waits forever on a dead one)."""
    comm.Abort(code)


def _wait_message(comm, source, tag):
    """Receive the next message matching (source, tag) without spinning.

    Returns (payload, source rank, tag).
    """
    status = MPI.Status()
    delay = 1e-5
    while True:
        message = comm.improbe(source=source, tag=tag, status=status)
        if message is not None:
            return message.recv(), status.Get_source(), status.Get_tag()
        time.sleep(delay)
        delay = min(2 * delay, MAX_SLEEP)


def gather_errors(comm, message):
    """Every rank's error message (None where fine), on every rank."""
    return comm.allgather(message)


def work(comm, evaluate):
    """Worker loop (ranks > 0): evaluate what rank 0 sends until it says stop.

    evaluate: (d,) physical values -> Outcome.
    """
    while True:
        payload, _, tag = _wait_message(comm, 0, MPI.ANY_TAG)
        if tag == STOP:
            return
        index, x = payload
        start = time.perf_counter()
        outcome = evaluate(x)
        comm.send((index, outcome, time.perf_counter() - start), dest=0, tag=RESULT)


def split(comm, size):
    """The groups of ``size`` consecutive ranks that evaluate one individual together
    (NEURON's subworlds are the same ranks): (this rank's group, the communicator of
    the groups' leaders or None on the other ranks)."""
    rank = comm.Get_rank()
    group = comm.Split(rank // size, rank)
    leaders = comm.Split(0 if group.Get_rank() == 0 else MPI.UNDEFINED, rank)
    return group, (None if leaders == MPI.COMM_NULL else leaders)


def lead(group, evaluate):
    """``evaluate`` for a group's leader: the group's other ranks get each point first and
    evaluate it with the leader (``follow``)."""
    if group.Get_size() == 1:
        return evaluate

    def together(x):
        for rank in range(1, group.Get_size()):
            group.send(x, dest=rank, tag=TASK)
        return evaluate(x)

    return together


def follow(group, evaluate):
    """A group's other ranks: evaluate what the leader sends, with it, until it says stop."""
    while True:
        payload, _, tag = _wait_message(group, 0, MPI.ANY_TAG)
        if tag == STOP:
            return
        evaluate(payload)


def release(group):
    """Tell the group's other ranks to return from ``follow``."""
    for rank in range(1, group.Get_size()):
        group.send(None, dest=rank, tag=STOP)


def threads_at_once():
    """Whether several threads may call MPI at once (MPI_THREAD_MULTIPLE): rank 0's
    dispatcher does while its own group integrates a network together."""
    return MPI.Query_thread() >= MPI.THREAD_MULTIPLE


def _world_ranks(callback, group):
    """``callback`` (its last argument a leader's rank among the leaders) called with the
    leader's world rank instead."""
    return lambda *args: callback(*args[:-1], args[-1] * group)


class MPIExecutor(Executor):
    """Rank 0's side: ``stream`` hands points out over all ranks of ``comm``.

    comm: the communicator (any: tests pass COMM_SELF or a split one);
    evaluate: rank 0's own (d,) -> Outcome callable; rank0_evaluates: False makes
    rank 0 only dispatch (with one rank it always evaluates). Rank 0's own
    evaluation holds the GIL (NEURON does, between integration chunks), and its
    dispatcher thread answers a worker only when it gets the GIL: with many ranks
    finishing often, dispatching only costs 1/N of the evaluations and saves more.
    """

    def __init__(self, comm, evaluate, rank0_evaluates=True, group=1):
        self.comm = comm
        self.group = group  # ranks per evaluation: ``comm`` holds the groups' leaders
        self.evaluate = evaluate
        self.size = comm.Get_size()
        self.rank0_evaluates = bool(rank0_evaluates) or self.size == 1
        self.abandoned = False  # some rank still works on an evaluation nobody waits for
        if self.size > 1 and MPI.Query_thread() < MPI.THREAD_SERIALIZED:
            raise RuntimeError(
                "the MPI library gave thread level < MPI_THREAD_SERIALIZED; "
                "hpcopt's rank 0 needs it (set MPI4PY_RC_THREAD_LEVEL=serialized)"
            )

    def stream(self, take, done, *, started=None, stopping=None, grace=0.0):
        """Evaluate whatever ``take`` hands out, on every rank, until it has no more.

        take(rank) -> (key, x) for ``rank`` to evaluate now, None when nothing is ready
        yet (it is asked again shortly), or END once nothing more will come; called from
        two threads, it must not block or write files. started(key, rank) once a key is
        on its way, done(key, outcome, seconds, rank) as each evaluation finishes (from
        two threads). Once ``stopping()`` is true no new evaluation starts, and those in
        flight on other ranks are waited for at most ``grace`` seconds, then abandoned.
        Rank 0 evaluates too, in this thread, if ``rank0_evaluates``; its own evaluation
        is given up after ``grace`` seconds as well when it runs in a child process.

        The dispatcher sends a rank its next task (after its start is journaled, so that
        a crash counts it) before it records the result that rank sent: every file write
        lets go of the GIL, which rank 0's own evaluation may then hold for a whole
        integration chunk, and the rank would wait for each of them.

        Returns [keys of abandoned evaluations].
        """
        stopping = stopping or (lambda: False)
        started = started or (lambda key, rank: None)
        if self.group > 1:  # what the run file records: the world rank of the group's leader
            started, done = _world_ranks(started, self.group), _world_ranks(done, self.group)
        failure, abandoned = [], []
        # The dispatcher thread needs the GIL to answer a worker; by default it waits up
        # to 5 ms for rank 0's own evaluation to let go of it, an idle worker meanwhile.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            return self._stream(take, done, started, stopping, grace, failure, abandoned)
        finally:
            sys.setswitchinterval(interval)

    def _stream(self, take, done, started, stopping, grace, failure, abandoned):
        dispatcher = None
        if self.size > 1:
            dispatcher = threading.Thread(
                target=self._dispatch, args=(take, started, done, stopping, grace, failure, abandoned), daemon=True
            )
            dispatcher.start()
        here = []  # rank 0's own evaluation, if it gave up on it (its child process is ended)
        if self.rank0_evaluates:
            here = self.evaluate_here(take, done, started, lambda: stopping() or bool(failure), grace)
        if dispatcher is not None:
            dispatcher.join()
            if failure:
                raise failure[0]
        self.abandoned = self.abandoned or bool(abandoned)  # other ranks still busy with them
        return abandoned + here

    def _dispatch(self, take, started, done, stopping, grace, failure, abandoned):
        try:
            busy = {}  # rank -> key it evaluates
            idle = list(range(1, self.size))
            ended = False
            given_up = after_grace(stopping, grace)
            status = MPI.Status()
            delay = 1e-5

            def send_next(rank):
                """Send ``rank`` its next task if there is one; False if not."""
                nonlocal ended
                if ended or stopping():
                    return False
                task = take(rank)
                if task is END:
                    ended = True
                if task is None or task is END:
                    return False
                started(task[0], rank)  # before the send: a crash must count what may be running
                self.comm.send(task, dest=rank, tag=TASK)
                busy[rank] = task[0]
                return True

            while True:
                while idle and send_next(idle[0]):
                    idle.pop(0)
                    delay = 1e-5
                if not busy and (ended or stopping()):
                    return
                message = self.comm.improbe(source=MPI.ANY_SOURCE, tag=RESULT, status=status)
                if message is None:
                    if given_up():
                        abandoned.extend(busy.values())
                        return
                    time.sleep(delay)
                    delay = min(2 * delay, MAX_SLEEP)
                    continue
                delay = 1e-5
                rank = status.Get_source()
                key, outcome, elapsed = message.recv()
                del busy[rank]
                if not send_next(rank):  # its next task first, the bookkeeping after
                    idle.insert(0, rank)
                done(key, outcome, elapsed, rank)
        except BaseException as err:  # re-raised in the main thread
            failure.append(err)

    def describe(self):
        """'N ranks' and rank 0's role, for the log."""
        ranks = (f"{self.size * self.group} ranks in {self.size} group{'s' if self.size > 1 else ''} of "
                 f"{self.group}" if self.group > 1 else f"{self.size} rank{'s' if self.size > 1 else ''}")
        if self.size == 1:
            return ranks
        role = ("'s group evaluates too" if self.group > 1 else " evaluates too") if self.rank0_evaluates \
            else " only dispatches"
        return f"{ranks} (rank 0{role})"

    def close(self):
        """Tell every worker to return from ``work``."""
        for rank in range(1, self.size):
            self.comm.send(None, dest=rank, tag=STOP)
