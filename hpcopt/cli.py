"""The ``hpcopt`` command line.

    hpcopt run CONFIG [-o RUN.h5]          start a run (under mpiexec/srun, or alone)
    hpcopt resume RUN.h5 [--generations N | --evaluations N]   continue a run, also past its original end
    hpcopt best RUN.h5 [--json]            the best individual so far
    hpcopt status RUN.h5                   progress (safe while a job writes the file)
    hpcopt report RUN.h5 -o DIR            figures and DIR/index.html (--individual best|best-of:NAME|ID)
    hpcopt export RUN.h5 --json|--hoc|--python FILE   the best individual, standalone
    hpcopt validate CONFIG                 check a config without running anything
    hpcopt evaluate CONFIG --params P.json evaluate one parameter set (scores, features)
    hpcopt targets CONFIG --params P.json|--recordings DIR -o FEATURES.json
                                           feature targets from a parameter set or recordings

Exit status: 0 done, 2 bad input (one line on stderr, nothing written),
3 interrupted by a signal (the run file is complete: resume it).
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import stat
import sys
import time
import traceback
from importlib import metadata

from . import __version__
from . import config as configuration
from .errors import ConfigError, HpcoptError, RunFileError
from .execute.loop import EXIT_USAGE
from .problem.space import Problem

log = logging.getLogger("hpcopt")

DISPATCH_ONLY_FROM = 32  # ranks; from here rank 0 only dispatches by default (--rank0 auto)
DISPATCH_ONLY_FROM_ASYNCHRONOUS = 8  # the same in asynchronous runs
RANK0_CHOICES = ("auto", "evaluate", "evaluate-in-process", "dispatch")
RANK0_HELP = ("what rank 0 does besides running the optimiser: 'evaluate' (as every rank does, in a child process "
              "of its own, so that rank 0 answers the other ranks at once while it simulates), "
              "'evaluate-in-process' (the same in rank 0's own process: the other ranks may wait for a simulation "
              "step to end), 'dispatch' (only hand work out and take results), 'auto' (default: evaluate "
              f"below {DISPATCH_ONLY_FROM} ranks ({DISPATCH_ONLY_FROM_ASYNCHRONOUS} in asynchronous runs), dispatch "
              "from there)")


def rank0_evaluates(choice, size, asynchronous):
    """Whether rank 0 evaluates too, for --rank0 ``choice`` on ``size`` ranks. auto: on small
    jobs only; in an asynchronous run rank 0 also tells, asks and checkpoints all along."""
    if choice != "auto":
        return choice in ("evaluate", "evaluate-in-process")
    return size < (DISPATCH_ONLY_FROM_ASYNCHRONOUS if asynchronous else DISPATCH_ONLY_FROM)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except HpcoptError as err:
        print(f"hpcopt: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `hpcopt best run.h5 | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser():
    parser = argparse.ArgumentParser(prog="hpcopt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"hpcopt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="start a run from a config file")
    run.add_argument("config", help="JSON config file")
    run.add_argument("-o", "--output", help="run file to write (default: the config's 'output', else run.h5)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    run.add_argument("--continue", dest="continue_run", action="store_true",
                     help="if the run file exists, continue it (its config must match, the generation budget "
                          "may grow); a finished run exits 0 (for job scripts)")
    run.add_argument("--rank0", choices=RANK0_CHOICES, default="auto",
                     help=RANK0_HELP)
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    run.set_defaults(handler=_run)

    resume = commands.add_parser("resume", help="continue a run from its run file")
    resume.add_argument("runfile")
    budget = resume.add_mutually_exclusive_group()
    budget.add_argument("--generations", type=int, help="new total number of generations")
    budget.add_argument("--evaluations", type=int,
                        help="new total number of evaluations (the run stops after the generation in which it is "
                             "reached; asynchronous runs: once that many are told)")
    resume.add_argument("--rank0", choices=RANK0_CHOICES, default="auto",
                        help=RANK0_HELP)
    resume.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    resume.set_defaults(handler=_run)

    best = commands.add_parser("best", help="print the best individual of a run")
    best.add_argument("runfile")
    best.add_argument("--json", action="store_true", help="print JSON")
    best.set_defaults(handler=_best)

    status = commands.add_parser("status", help="progress of a run (safe while a job is writing it)")
    status.add_argument("runfile")
    status.add_argument("--rows", type=int, default=10, help="rows of the score table (default 10)")
    status.set_defaults(handler=_status)

    report = commands.add_parser("report", help="figures and an HTML page of a run (also of one in progress)")
    report.add_argument("runfile")
    report.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for index.html and figures")
    report.add_argument("--no-traces", action="store_true", help="do not re-simulate the chosen cell model")
    report.add_argument("--individual", default="best", metavar="best|best-of:OBJECTIVE|ID",
                        help="the individual the objectives, features and traces show: best (lowest score, the "
                             "default), best-of:NAME (lowest value of an objective, or of a protocol's sum), or "
                             "an id (the report's table of best individuals lists them)")
    report.add_argument("--dpi", type=int, default=100, help="resolution of the figures (default 100)")
    report.set_defaults(handler=_report)

    export = commands.add_parser("export", help="the best (or K-th best) individual as JSON, hoc or Python")
    export.add_argument("runfile")
    export.add_argument("--rank", type=int, default=1, metavar="K", help="the K-th best individual (default 1)")
    formats = export.add_mutually_exclusive_group(required=True)
    formats.add_argument("--json", metavar="P.json", help="free parameters, as 'hpcopt evaluate --params' reads")
    formats.add_argument("--hoc", metavar="CELL.hoc", help="a standalone NEURON hoc file of the fitted cell")
    formats.add_argument("--python", metavar="CELL.py", help="a standalone NEURON Python file of the fitted "
                                                             "cell, with its protocols")
    export.set_defaults(handler=_export)

    evaluate = commands.add_parser("evaluate", help="evaluate one parameter set of a config")
    evaluate.add_argument("config")
    evaluate.add_argument("--params", required=True, metavar="P.json",
                          help="JSON object {free parameter name: value}")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--plot", metavar="FILE.png", help="cell problems: draw every protocol's recordings, "
                                                             "injected current, windows and features vs targets")
    evaluate.add_argument("--traces", metavar="FILE", help="cell problems: write the traces (.h5: HDF5, else CSV)")
    evaluate.set_defaults(handler=_evaluate)

    _targets_parser(commands)

    validate = commands.add_parser("validate", help="check a config file")
    validate.add_argument("config")
    validate.set_defaults(handler=_validate)
    return parser


def _targets_parser(commands):
    """The arguments of ``hpcopt targets`` (apart, so that _parser stays short)."""
    targets = commands.add_parser("targets", help="feature targets (mean, std) of a cell config, from a parameter "
                                                  "set or from recordings")
    targets.add_argument("config")
    source = targets.add_mutually_exclusive_group(required=True)
    source.add_argument("--params", metavar="P.json", help="the model's own values at these parameters "
                                                           "(a synthetic check)")
    source.add_argument("--recordings", metavar="DIR", help="recordings: DIR/PROTOCOL/REPETITION.csv with columns t "
                                                            "(ms), v (mV) (docs/cells.md)")
    targets.add_argument("-o", "--output", required=True, metavar="FEATURES.json",
                         help="features file to write, in the config's form")
    targets.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    targets.add_argument("--std-relative", type=float, metavar="R",
                         help="std at least R x |mean| (default 0.05; not for absolute potentials)")
    targets.add_argument("--std-floor", type=float, metavar="F",
                         help="std at least F, in each feature's units (default: per feature, docs/cells.md)")
    targets.set_defaults(handler=_targets)


# ---------------------------------------------------------------- run / resume


class _Interrupt:
    """A flag that signal handlers set; the loop acts on it at a safe point (no MPI or
    file I/O in a handler).

    Calling it tells whether a signal came; ``time`` says when.
    """

    def __init__(self):
        self.signal, self.time = None, None

    def handle(self, signum, frame):
        if self.signal is None:
            self.signal, self.time = signum, time.time()
            if signum == signal.SIGINT:  # a second Ctrl-C ends the process at once
                signal.signal(signal.SIGINT, self.again)

    @staticmethod
    def again(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def __call__(self):
        return self.signal is not None


def _run(args):
    interrupt = _Interrupt()  # first: a signal during start-up must not kill the rank
    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):  # Ctrl-C: a clean stop too
        signal.signal(signum, interrupt.handle)
    from .execute import mpi  # initialises MPI: only the commands that need it

    comm = mpi.world()
    rank = comm.Get_rank()
    _logging(rank, args.quiet)
    try:
        launch = _wrong_launch(comm)
        if launch:
            if os.environ.get("SLURM_PROCID", "0") == "0":
                print(f"hpcopt: error: {launch}", file=sys.stderr)
            return EXIT_USAGE
        prepared = _prepare(args, comm)
        if prepared is None:
            return EXIT_USAGE
        path, config, problem, evaluate, resume, spec = prepared
        if getattr(config.problem, "ignored", ""):
            log.info("ignored (kept by BluePyOpt for Arbor, not used with NEURON): %s", config.problem.ignored)
        group, leaders = mpi.split(comm, config.execution.ranks_per_evaluation)
        if rank != 0:
            if leaders is None:
                mpi.follow(group, evaluate)
            else:
                mpi.work(leaders, mpi.lead(group, evaluate))
                mpi.release(group)
            return 0
        from .execute import loop

        executor = _executor(args, config, problem, spec, evaluate, group, leaders)
        if not resume:
            loop.start(path, config, problem, _versions(mpi, problem))
        running = loop.Loop(path, config, problem, executor, interrupted=interrupt)
        status = running.run()
        _release(path)  # the run file is complete (an exception skips this): nobody holds it now
        if running.hopeless:
            print(f"hpcopt: error: {path}: {_hopeless_text(running.hopeless, path, status)}", file=sys.stderr)
            status = EXIT_USAGE
        if executor.abandoned:  # ranks still busy with evaluations nobody waits for: end them now
            sys.stderr.flush()
            mpi.abort(comm, status)
        executor.close()
        mpi.release(group)
        return status
    except BaseException as err:
        # End every rank now rather than leave one waiting: one line for what the user can
        # fix (a full disk), a traceback for a bug.
        if comm.Get_size() > 1:
            if isinstance(err, HpcoptError):
                print(f"hpcopt: error: {err}", file=sys.stderr)
            else:
                traceback.print_exc()
            sys.stderr.flush()
            mpi.abort(comm, EXIT_USAGE if isinstance(err, HpcoptError) else 1)
        raise


def _hopeless_text(why, path, status):
    """What a run whose every evaluation failed tells its user (loop.Loop.hopeless)."""
    stopped = status != 0
    return (f"{why}. {'The run stops: the rest of its budget would score only the penalty. ' if stopped else ''}"
            f"The run file keeps the evaluations with their errors. Fix the model (check one parameter set with "
            f"'hpcopt evaluate CONFIG --params P.json'), then "
            + (f"'hpcopt resume {path}' continues the run, or 'hpcopt run --overwrite' starts it again" if stopped
               else "start it again with 'hpcopt run --overwrite'"))


def _executor(args, config, problem, spec, evaluate, group, leaders):
    """Rank 0's executor: hands points out to the groups' leaders (every rank when a
    group is one rank), rank 0 evaluating too (its own group with it) or not."""
    from .execute import mpi
    from .execute.executor import SerialExecutor

    k = group.Get_size()
    if leaders.Get_size() == 1 and k == 1:
        return SerialExecutor(evaluate)
    evaluates = rank0_evaluates(args.rank0, leaders.Get_size(), config.optimizer.asynchronous)
    if evaluates and k > 1 and leaders.Get_size() > 1 and not mpi.threads_at_once():
        log.warning("the MPI library gives no MPI_THREAD_MULTIPLE: rank 0 only dispatches, and ranks 1-%d of "
                    "its group wait", k - 1)
        evaluates = False
    if evaluates and k == 1 and args.rank0 != "evaluate-in-process" and config.evaluation.timeout is None:
        evaluate = _in_a_child(problem, spec, evaluate)
    return mpi.MPIExecutor(leaders, mpi.lead(group, evaluate), rank0_evaluates=evaluates, group=k)


def _wrong_launch(comm):
    """Why this launch must not run (srun started N copies that do not see each
    other), or ""."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or ""
    if tasks.isdigit() and int(tasks) > 1 and comm.Get_size() == 1:
        return (f"SLURM started {tasks} tasks but MPI sees 1 rank: each would run the whole optimisation. "
                "The MPI library does not speak to srun: use 'srun --mpi=pmi2' with MPICH, or mpirun inside "
                "the allocation (docs/cluster.md)")
    return ""


def _prepare(args, comm):
    """Collectively read and check everything before anything is written.

    Returns (run file path, Config, Problem, evaluate callable, resume?) on every rank,
    or None on every rank after rank 0 printed the first error.
    """
    rank = comm.Get_rank()

    def read():
        return _source(args) if rank == 0 else None

    source = _together(comm, read, root_only=True)
    if source is None:
        return None
    path, raw, name, base, resume = source
    path = os.path.abspath(path)  # a factory may change the working directory (a notebook runs in its own)

    def parse():
        config = configuration.parse(raw, source=name, base_dir=base)
        _require_targets(config, name)
        k = config.execution.ranks_per_evaluation
        if comm.Get_size() % k:
            raise ConfigError(f"{name}: execution.ranks_per_evaluation",
                              f"{k} ranks evaluate one individual together, and this job's {comm.Get_size()} "
                              f"ranks are not a multiple of {k}: start " +
                              (f"{comm.Get_size() // k * k} or " if comm.Get_size() > k else "") +
                              f"{(comm.Get_size() // k + 1) * k} ranks")
        return config, Problem(config)

    parsed = _together(comm, parse)
    if parsed is None:
        return None
    config, problem = parsed
    # rank 0 compiles the model's mechanisms (once), then every rank loads them
    if _together(comm, lambda: problem.prepare() if rank == 0 else True, root_only=True) is None:
        return None
    timeout = config.evaluation.timeout
    if config.optimizer.start:  # the values read at the start: a child replaced later reads no file for them
        raw = {**raw, "optimizer": {**raw["optimizer"], "start": dict(config.optimizer.start)}}
    spec = {"config": raw, "source": name, "base_dir": base}  # what a child process builds the problem from

    def evaluator():
        if timeout is None:
            return problem.evaluator(comm)
        from .problem.deadline import Deadline

        return Deadline(problem, spec, timeout, rank=rank)

    evaluate = _together(comm, evaluator)
    if evaluate is None:
        return None
    # all is well: rank 0 takes the run file for this job (nothing was created before)
    if _together(comm, lambda: _lock(path, fresh=not resume and not args.overwrite) if rank == 0 else True,
                 root_only=True) is None:
        return None
    return path, config, problem, evaluate, resume, spec


def _in_a_child(problem, spec, evaluate):
    """Rank 0's evaluations in a child process of its own (problem.deadline, without a
    deadline): a simulation in rank 0's process holds the GIL for a whole integration
    chunk, and the thread that answers the other ranks waits for it (a rank that
    finished waits too). The child builds the same problem without MPI and gives the
    same bits; a crash in it ends the job, as a crash of rank 0 would. If it cannot be
    built, rank 0 evaluates in its own process, as before."""
    from .problem.deadline import ChildError, Deadline

    try:
        child = Deadline(problem, spec, None, rank=0, crash_with_child=True)
    except ChildError as err:
        log.warning("%s; rank 0 evaluates in its own process", err)
        return evaluate
    log.info("rank 0 evaluates in a child process (pid %d), so that it answers the other ranks at once",
             child.child.pid)
    return child


def _together(comm, step, root_only=False):
    """Run ``step`` on every rank; the result, or None on every rank if any rank
    failed with an HpcoptError (rank 0 prints the first one).

    root_only: only rank 0's result matters; it is broadcast to the others.
    """
    from .execute import mpi

    result, error = None, None
    try:
        result = step()
    except HpcoptError as err:
        error = str(err)
    if root_only:
        result, error = comm.bcast((result, error), root=0)
        errors = [error]
    else:
        errors = mpi.gather_errors(comm, error)
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        if comm.Get_rank() == 0:
            r, message = failed[0]
            print(f"hpcopt: error: {message}" + (f" (on rank {r})" if r else ""), file=sys.stderr)
        return None
    return result


def _source(args):
    """(run file path, raw config dict, name for messages, config directory, resume?).

    Takes the run file's lock for this job first (rank 0 only).
    """
    if args.command == "resume":
        from .store.runfile import RunFile

        with RunFile(args.runfile) as run:
            raw = _stored(run)
            _continuable(run)  # one that cannot be continued says so now, on every rank
        for key in ("generations", "evaluations"):
            value = getattr(args, key)
            if value is not None and value < 1:
                raise ConfigError(f"--{key}", f"must be >= 1, found {value}")
            if value is not None and key == "generations" and raw["optimizer"].get("restarts", "none") != "none":
                raise ConfigError("--generations", "this run restarts CMA-ES, whose generations change size at each "
                                                   "restart: give the new budget as --evaluations")
            if value is not None:  # the new budget replaces the old one, in either unit
                raw["optimizer"] = {k: v for k, v in raw["optimizer"].items() if k not in BUDGETS}
                raw["optimizer"][key] = value
        return args.runfile, raw, f"{args.runfile} (stored config)", None, True
    raw = configuration.read_json(args.config)
    path = args.output or (raw.get("output") if isinstance(raw, dict) else None) or "run.h5"
    if not isinstance(path, str):
        raise ConfigError(f"{args.config}: output", f"expected a file path, found {path!r}")
    if isinstance(raw, dict):
        raw = {**raw, "output": path}
    base = os.path.dirname(os.path.abspath(args.config))
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ConfigError(path, "names a directory, not a run file: give a file path such as DIR/run.h5")
    _check_directory(path)
    if os.path.exists(path) and args.continue_run:
        return path, _continued(path, raw, args.config, base), f"{path} (stored config)", None, True
    if os.path.exists(path) and not args.overwrite:
        raise ConfigError(path, _exists(path))
    return path, raw, args.config, base, False


def _exists(path):
    """What to do about an existing run file: wait for the job using it, else resume it.

    The lock is only read, never taken: probing it could refuse a job starting now.
    """
    from .store.snapshot import lock_holder

    holder, alive = lock_holder(path)
    if alive:
        return (f"run file in use by a running job ({holder}): let it finish, follow it with 'hpcopt status "
                f"{path}', or write another run file (-o)")
    advice = (f"continue it with 'hpcopt resume {path}' (or 'hpcopt run --continue'), or pass --overwrite to "
              "start over")
    if holder and alive is None:  # on another host: cannot tell here whether it still runs
        return (f"run file exists and is locked by a job on another host ({holder}): if that job still runs, "
                f"let it finish; if not, {advice}")
    return f"run file exists: {advice}"


BUDGETS = ("generations", "evaluations")  # the optimizer keys that may change when a run continues


def _stored(run):
    """The stored (resolved) config of ``run``; one made before parameter scales existed
    has no ``scale``, and was searched on a linear scale."""
    from .config import scale

    raw = run.config
    raw["optimizer"].setdefault("scale", scale.STORED_DEFAULT)
    return raw


def _continuable(run):
    """RunFileError unless this hpcopt can continue ``run``'s optimiser exactly (its
    state is read as data: nothing stored in the file runs)."""
    from .optimize import generators

    state = run.state(resume=True)
    run.check()
    try:
        generators.restore(state["algorithm"], state["generator"])
    except (ValueError, KeyError, TypeError) as err:
        raise RunFileError(f"{run.path}: cannot continue its optimiser: {err}") from None


def _continued(path, raw, name, base):
    """The stored config of the run at ``path``, with the budget of ``raw`` (the new
    config; generations or evaluations), which must otherwise be the same as the stored
    one (without ``scale``, it takes the stored scales)."""
    import numpy as np

    from .store.runfile import RunFile

    with RunFile(path) as run:
        stored = _stored(run)
        _continuable(run)
        space = (run.names("parameter"), np.asarray(run.file["problem"]["lower"][()]),
                 np.asarray(run.file["problem"]["upper"][()]))
    config = configuration.parse(raw, source=name, base_dir=base)
    new = config.resolved(space)
    if isinstance(stored["optimizer"]["scale"], str):  # made before scales existed: linear
        stored["optimizer"]["scale"] = {n: stored["optimizer"]["scale"] for n in space[0]}
    if isinstance(raw.get("optimizer"), dict) and "scale" not in raw["optimizer"]:
        # a config that does not say continues on the run's scales (also one made when the default was another)
        new["optimizer"]["scale"] = stored["optimizer"]["scale"]
    for resolved in (new, stored):
        resolved["optimizer"] = {k: v for k, v in resolved["optimizer"].items() if k not in BUDGETS}
        resolved.pop("output", None)
    difference = _first_difference(stored, new)
    if difference:
        raise ConfigError(f"{name}: {difference}", f"differs from the config {path} was started with; "
                                                    "start a new run file (-o) or restore the config")
    stored["optimizer"][config.optimizer.budget] = raw["optimizer"][config.optimizer.budget]
    return stored


def _first_difference(a, b, where=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return ""
    return "" if a == b else where


_held = []  # lock files held by this process until it exits


def _lock(path, fresh=False):
    """Hold ``path``.lock for this job, or refuse: two jobs must never write one run file.

    fresh: a new run, so the run file must still not exist (another job may have
    created it since we looked).
    """
    lock = None
    while lock is None:  # None: a job that ended removed the file we locked; lock the one there now
        lock = _take(path)
    info = os.fstat(lock.fileno())
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        lock.close()
        raise ConfigError(path + ".lock", "is not a regular file of yours: remove it")
    lock.seek(0)
    lock.truncate()
    job = os.environ.get("SLURM_JOB_ID")
    lock.write(f"pid {os.getpid()} on {os.uname().nodename}" + (f", SLURM job {job}" if job else "") + "\n")
    lock.flush()
    _held.append((path, lock))
    if fresh and os.path.exists(path):
        raise ConfigError(path, "run file exists: another job created it")
    _remove_stale_temporaries(path)
    return True


def _take(path):
    """``path``.lock, opened and locked; None if it was removed or replaced before we had
    the lock (the job that held it ended: see _release)."""
    import fcntl

    try:  # never through a symlink: it could point at another file of the user's
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise ConfigError(path + ".lock", f"cannot open the lock file ({err.strerror}); if it is a symlink, "
                                          "remove it") from None
    lock = os.fdopen(fd, "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ConfigError(path, f"another job is using this run file (lock {path}.lock held by {holder})") from None
    except OSError as err:  # ENOLCK, ENOSYS: a filesystem without locks (NFS without lockd, Lustre noflock)
        log.warning("cannot lock %s.lock (%s): make sure no other job writes %s", path, err.strerror, path)
        return lock
    if not _names(path + ".lock", lock):
        lock.close()
        return None
    return lock


def _names(name, lock):
    """Whether the path ``name`` is the file ``lock`` has open (not removed or replaced)."""
    try:
        there = os.stat(name, follow_symlinks=False)
    except FileNotFoundError:
        return False
    here = os.fstat(lock.fileno())
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def _release(path):
    """Remove the lock file of a job whose run file is complete (it finished or stopped
    cleanly), still holding the lock, then let it go. A job that opened the file
    meanwhile finds it gone once it has the lock and takes a new one (_take), so two
    jobs never both hold a run file; a job killed before this leaves the file, which
    the next job simply locks again."""
    for held, lock in [entry for entry in _held if entry[0] == path]:
        if _names(held + ".lock", lock):
            os.unlink(held + ".lock")
        lock.close()
        _held.remove((held, lock))


def _remove_stale_temporaries(path):
    """Temporary and shadow files of checkpoints a killed job left (we hold the lock)."""
    from .store import runfile

    directory, name = os.path.split(os.path.abspath(path))
    for entry in os.listdir(directory):
        stale_tmp = entry.startswith(f".{name}.tmp") and entry[len(name) + 5:].isdigit()
        if stale_tmp or entry in (f".{name}.shadow", f".{name}.previous"):
            os.unlink(os.path.join(directory, entry))
    pieces = runfile.pieces_of(os.path.abspath(path))  # generation files being written (the split layout)
    for entry in os.listdir(pieces) if os.path.isdir(pieces) else ():
        if entry.startswith(".") and ".h5.tmp" in entry:
            os.unlink(os.path.join(pieces, entry))


def _check_directory(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(path, f"output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ConfigError(path, f"output directory {directory} is not writable")


def _versions(mpi, problem):
    versions = {"hpcopt_version": __version__, "python_version": sys.version.split()[0]}
    simulators = ("neuron", "efel") if problem.features else ()
    for package in ("numpy", "cma", "mpi4py", "h5py") + simulators:
        versions[f"{package}_version"] = metadata.version(package)
    versions["mpi_library"] = mpi.library_version()
    return versions


def _logging(rank, quiet):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s hpcopt %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet or rank != 0 else logging.INFO)


# ---------------------------------------------------------------- best / validate


def _best(args):
    import numpy as np

    from .store.runfile import RunFile

    with RunFile(args.runfile) as run:
        if len(run) == 0:
            raise RunFileError(f"{args.runfile}: no complete generation yet")
        run.config  # noqa: B018 (a file with a damaged config is refused here too, as everywhere)
        names = run.names("parameter"), run.names("objective")
        best = None
        for i in range(len(run)):
            g = run.generation(i)
            j = int(np.argmin(g.scores))
            if best is None or g.scores[j] < best[0].scores[best[1]]:
                best = (g, j)
        feature_names = run.names("feature") if best[0].features is not None else None
        if feature_names is not None and best[0].features.shape[1] != len(feature_names):
            raise RunFileError(f"{args.runfile}: damaged run file: generation {best[0].index} stores "
                               f"{best[0].features.shape[1]} features for {len(feature_names)} feature names")
    g, j = best
    result = {
        "generation": g.index,
        "index": j,
        "score": float(g.scores[j]),
        "status": ["ok", "failed", "timeout"][int(g.status[j])],
        "parameters": dict(zip(names[0], map(float, g.parameters[j]))),
        "objectives": dict(zip(names[1], map(float, g.objectives[j]))),
    }
    if feature_names is not None:  # what was measured (NaN, no value found: null, as JSON has no NaN)
        result["features"] = {name: float(value) if np.isfinite(value) else None
                              for name, value in zip(feature_names, g.features[j])}
    where = f"generation {g.index}, individual {j}"
    if g.ids is not None:  # an asynchronous run: the record is a batch
        result["id"] = int(g.ids[j])
        where = f"batch {g.index} (row {j}), id {result['id']}"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"best: {where}, score {result['score']:.6g}")
        for name, value in result["parameters"].items():
            print(f"  {_printable(name)} = {value:.10g}")
        for name, value in result["objectives"].items():
            print(f"  {_printable(name)}: {value:.6g}")
        if "features" in result:
            print("measured features:")
            for name, value in result["features"].items():
                print(f"  {_printable(name)}: {'none found' if value is None else f'{value:.6g}'}")
    return 0


def _printable(name):
    """A name from a file, for a terminal: control characters (escape sequences) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _evaluate(args):
    """Exit status 0 when the evaluation is ok, 1 when it failed or timed out."""
    from .neuron.session import stdout_redirected
    from .problem.outcome import OK, STATUS_NAMES

    config = configuration.load(args.config)
    given = configuration.read_json(args.params, what="parameters")  # before a factory may change directory
    # what the model prints, building (a factory, an evaluator's simulator) or simulating (NEURON's C
    # code: CVODE errors), goes to stderr: stdout is the result's alone (--json is JSON)
    with stdout_redirected(2), contextlib.redirect_stdout(sys.stderr):
        problem = Problem(config)
        if (args.plot or args.traces) and not problem.is_cell:
            raise ConfigError(args.config, "--plot and --traces need a cell model (problem.cell or "
                                           "problem.bluepyopt)")
        x = _parameter_values(args.params, given, problem)
        evaluator = problem.evaluator()
        if args.plot or args.traces:
            outcome, traces = evaluator.evaluate(x)
            _traces_out(args, evaluator, traces, outcome)
        else:
            outcome, traces = evaluator(x), None
    scored = _scored(problem)  # features without a target are measured, not scored
    result = {
        "status": STATUS_NAMES[outcome.status],
        "error": outcome.error,
        "score": float(outcome.objectives[scored] @ problem.weights[scored]) if scored.any() else None,
        "objectives": {name: float(value) for name, value, ok in zip(problem.objectives, outcome.objectives, scored)
                       if ok},
        "features": {name: (outcome.raw or {}).get(name) for name in problem.features},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        score = "none (no feature has a target)" if result["score"] is None else f"{result['score']:.6g}"
        print(f"status: {result['status']}{' (' + outcome.error + ')' if outcome.error else ''}; score {score}")
        targets = {o.name: o for o in getattr(config.problem, "targets", ())}  # a network's measures
        for name, value in result["objectives"].items():
            measured = (f"  (value {_shown(result['features'][name])}, target {targets[name].mean:g} +- "
                        f"{targets[name].std:g})" if name in targets else "")
            print(f"  {name}: {value:.6g}{measured}")
        for name in getattr(config.problem, "untargeted", ()):
            print(f"  {name}: no target; value {_shown(result['features'][name])}")
        for what, path in (("traces", args.traces), ("plot", args.plot)):
            if path and traces is not None:
                print(f"{what}: {path}")
    return 0 if outcome.status == OK else 1


def _scored(problem):
    """(m,) booleans: the objectives that are scored (a cell's features with a target)."""
    import numpy as np

    untargeted = set(getattr(problem.config.problem, "untargeted", ()))
    return np.array([name not in untargeted for name in problem.objectives], dtype=bool)


def _shown(values):
    """A feature's eFEL values in a few characters: none, the value, or their mean."""
    if not values:
        return "none (eFEL found nothing)"
    if len(values) == 1:
        return f"{values[0]:.6g}"
    return f"{sum(values) / len(values):.6g} (mean of {len(values)})"


def _require_targets(config, name, checked=False):
    """ConfigError naming the features listed without a target: ``run`` fits to targets,
    ``evaluate`` and ``targets`` only measure such features. checked: the rest of the
    config is known to be valid (``validate``)."""
    missing = getattr(config.problem, "untargeted", ())
    if not missing:
        return
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    lead = "valid for 'hpcopt evaluate' and 'hpcopt targets', but " if checked else ""
    raise ConfigError(name, f"{lead}'hpcopt run' needs a target (mean, std) for every feature; none for "
                            f"{shown} (make them with 'hpcopt targets', docs/cells.md)")


def _parameter_values(name, given, problem):
    """(d,) values of the free parameters from the --params object ``given``; a
    warning for each outside its bounds (evaluated anyway: designing a model may need it)."""
    import numpy as np

    if not isinstance(given, dict):
        raise ConfigError(name, "expected an object {parameter name: value}")
    unknown = [p for p in given if p not in problem.names]
    missing = [p for p in problem.names if p not in given]
    if unknown:
        raise ConfigError(f"{name}: {unknown[0]}", f"not a free parameter; free: {', '.join(problem.names)}")
    if missing:
        raise ConfigError(name, f"no value for {', '.join(missing)}")
    for p, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: {p}", f"expected a number, found {value!r}")
    x = np.array([float(given[p]) for p in problem.names])
    for p, value, low, high in zip(problem.names, x, problem.lower, problem.upper):
        if not low <= value <= high:
            print(f"hpcopt: warning: {name}: {p} = {value:g} is outside its bounds [{low:g}, {high:g}]",
                  file=sys.stderr)
    return x


def _traces_out(args, evaluator, traces, outcome):
    """Write the traces the outcome was scored on (--traces) and draw them (--plot);
    a warning instead when the simulation failed (traces None)."""
    import numpy as np

    from .results import traces as drawing

    if traces is None:
        print(f"hpcopt: warning: no traces: {outcome.error}", file=sys.stderr)
        return
    if args.traces:
        drawing.write(args.traces, traces)
    if args.plot:
        model, names = evaluator.model, evaluator.problem.features
        scores = dict(zip(names, map(float, outcome.objectives)))
        means = dict(zip(names, outcome.features)) if outcome.features is not None else {}
        shown = {f.name: (None if not np.isfinite(means.get(f.name, np.nan)) else float(means[f.name]),
                          scores.get(f.name)) for f in model.features}
        drawing.figure(model, traces, shown).savefig(args.plot)


def _targets(args):
    """Write a features file with a target for every feature of the config."""
    import math

    from .config import cell as cells
    from .features import recordings
    from .features import targets as making

    config = configuration.load(args.config)
    if not hasattr(config.problem, "model"):
        raise ConfigError(args.config, "hpcopt targets needs a cell model (problem.cell or problem.bluepyopt)")
    if args.std_relative is not None and not (math.isfinite(args.std_relative) and args.std_relative >= 0):
        raise ConfigError("--std-relative", f"expected a number >= 0, found {args.std_relative}")
    if args.std_floor is not None and not (math.isfinite(args.std_floor) and args.std_floor > 0):
        raise ConfigError("--std-floor", f"expected a number > 0, found {args.std_floor}")
    if os.path.isdir(args.output):
        raise ConfigError(args.output, "names a directory, not a features file")
    _check_directory(args.output)
    if os.path.exists(args.output) and not args.overwrite:
        raise ConfigError(args.output, "exists: pass --overwrite to replace it")
    model = config.problem.model
    if args.params:
        values, where, counts = _values_at(args, config), f"{args.params}: at these parameters", None
    else:
        (values, counts), where = recordings.values(model, args.recordings), f"{args.recordings}: in every repetition"
    missing = [f for f in model.features if not any(math.isfinite(v) for v in values[f.name])]
    if missing:
        shown = "; ".join(f"protocol {f.protocol!r}, feature {f.recording}.{f.efel_name}" for f in missing)
        raise ConfigError(where, f"eFEL finds no value for {shown} (no spike?): change the protocol, the "
                                 "feature" + (" or the parameters" if args.params else " or its settings"))
    made = {}
    for f in model.features:
        found = [v for v in values[f.name] if math.isfinite(v)]
        made[f.name] = making.target(f.efel_name, found, args.std_relative, args.std_floor)
        of = f" (from {len(found)} of {counts[f.protocol]} repetitions)" if counts else ""
        print(f"  {f.name}: mean {made[f.name][0]:.6g}, std {made[f.name][1]:.3g}{of}")
    raw = configuration.read_json(args.config)
    features = making.document(cells.raw_features(raw["problem"], os.path.dirname(os.path.abspath(args.config))),
                               made)
    making.write_atomically(args.output, making.text(features))
    print(f"wrote {len(made)} targets to {args.output}")
    return 0


def _values_at(args, config):
    """{feature name: [its value]} of the config's cell at the --params values (NaN
    where eFEL found none); a ConfigError when the simulation fails there."""
    from .neuron.session import stdout_redirected
    from .problem.outcome import OK, STATUS_NAMES

    given = configuration.read_json(args.params, what="parameters")
    problem = Problem(config)
    x = _parameter_values(args.params, given, problem)
    problem.prepare()
    with stdout_redirected(2):
        outcome = problem.evaluator()(x)
    if outcome.status != OK:
        raise ConfigError(args.params, f"the simulation {STATUS_NAMES[outcome.status]} at these parameters: "
                                       f"{outcome.error}")
    return {name: [float(value)] for name, value in zip(problem.features, outcome.features)}


def _validate(args):
    config = configuration.load(args.config)
    problem = Problem(config)
    problem.prepare()
    problem.evaluator()  # imports the function or builds the cell, as every rank will
    _require_targets(config, args.config, checked=True)
    o = config.optimizer
    if getattr(config.problem, "ignored", ""):
        print(f"{args.config}: ignored (kept by BluePyOpt for Arbor, not used with NEURON): {config.problem.ignored}")
    budget = (f"{o.generations} generations" if o.budget == "generations" else
              f"{o.evaluations} evaluations" + ("" if o.asynchronous or o.restarts != "none" else
                                                f" ({o.generations} generations)"))
    print(
        f"{args.config}: valid: {o.algorithm}, {problem.dimension} free parameters, "
        f"{len(problem.objectives)} objectives, population {o.population}, {budget}"
        f"{', ' + _restarts_text(o) if o.algorithm == 'cmaes' else ''}; "
        f"output {config.output or 'run.h5'}"
    )
    print(f"settings: {_settings_text(o, problem.dimension)}")
    k = config.execution.ranks_per_evaluation
    if k > 1:
        print(f"{k} ranks evaluate each individual together (execution.ranks_per_evaluation): start a multiple "
              f"of {k} ranks")
    names = [_printable(n) for n in problem.names]
    bounds = [f"[{low:g}, {high:g}]" for low, high in zip(problem.lower, problem.upper)]
    starts = [""] * len(names) if problem.start is None else [f"  start {x:g}" for x in problem.start]
    print("scale of each free parameter (optimizer.scale)" + (" and where CMA-ES starts (optimizer.start)"
                                                             if problem.start is not None else "") + ":")
    for name, bound, scale, start in zip(names, bounds, problem.scales, starts):
        print(f"  {name:<{max(map(len, names))}}  {bound:<{max(map(len, bounds))}}  {scale:<6}{start}".rstrip())
    return 0


def _settings_text(o, dimension):
    """The optimiser's settings as the run will use them, defaults included."""
    if o.algorithm == "cmaes":
        return (f"seed {o.seed}, sigma0 {o.sigma0:g} (the initial step, a fraction of each parameter's "
                f"scaled range), starting " + ("at optimizer.start" if o.start else "at the centre of the ranges"))
    mutation = o.mutation_probability
    mutation = f"{1 / dimension:g} (1 / {dimension})" if mutation is None else f"{mutation:g}"
    mode = f", asynchronous, batches of {o.batch_size}" if o.asynchronous else ""
    return (f"seed {o.seed}, offspring {o.offspring or o.population}, kappa {o.kappa:g}, "
            f"eta_crossover {o.eta_crossover:g}, eta_mutation {o.eta_mutation:g}, "
            f"crossover_probability {o.crossover_probability:g}, mutation_probability {mutation}{mode}")


def _restarts_text(o):
    """What validate says about optimizer.restarts."""
    if o.restarts == "none":
        return "restarts none (the run ends when CMA-ES's stopping criteria fire)"
    limit = "as many as the budget allows" if o.max_restarts < 0 else f"at most {o.max_restarts}"
    growth = ("each doubling the population" if o.restarts == "ipop" else
              "runs doubling the population alternating with small-population ones")
    return f"restarts {o.restarts} ({limit}, when CMA-ES's stopping criteria fire; {growth}, each from a random point)"


# ---------------------------------------------------------------- status / report / export


def _status(args):
    from .results import status
    from .store import snapshot

    print(status.text(snapshot.read(args.runfile), rows=max(args.rows, 1)))
    return 0


def _report(args):
    from .results import report

    if not 10 <= args.dpi <= 600:
        raise ConfigError("--dpi", f"expected 10 to 600, found {args.dpi}")
    index = report.write(args.runfile, args.output, traces=not args.no_traces, dpi=args.dpi,
                         individual=args.individual)
    print(index)
    return 0


def _export(args):
    from .results import export

    target = args.json or args.hoc or args.python
    kind = "json" if args.json else "hoc" if args.hoc else "python"
    print(export.write(args.runfile, target, kind, args.rank))
    return 0


if __name__ == "__main__":
    sys.exit(main())
