"""What a run file says: a consistent snapshot of it, and ``hpcopt status``.

A job replaces its run file atomically (runfile.py: a copy beside it, fsync,
``os.replace``), so every version of the file at its path is complete. A reader
must still not hold it open for long or take HDF5 file locks on it: on network
filesystems where locking misbehaves, a lock taken by a reader can make the
reader (or a job started next to it) fail. ``read`` therefore copies the file
with plain reads (one open, read to the end, close: a complete version, since a
renamed-over file is never modified), reads that private copy through
runfile.RunFile and deletes it. The job never sees the reader.

Nothing here imports h5py (runfile.py does); the journal is plain JSON lines.
"""

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .config import Optimizer
from .errors import RunFileError
from .runfile import RunFile

STATUS_NAMES = ("ok", "failed", "timeout")
RECENT_GENERATIONS = 10  # speed and utilisation are measured over this many last generations


@dataclass
class Run:
    """Everything a run file holds except the generator's state, in memory.

    path: the run file; attrs: root attributes except config; config: the stored
    (resolved) config as a dict; state: /state attributes (next_generation,
    evaluations, failures, stop_reason, algorithm); generations: runfile.Generation
    list in order; lower, upper: (d,) bounds; journal: entries of RUN.h5.journal
    newer than the snapshot (read just before it); read_at: UNIX time of the read.
    """

    path: str
    attrs: dict
    config: dict
    state: dict
    generations: list
    lower: np.ndarray
    upper: np.ndarray
    journal: list = field(default_factory=list)
    read_at: float = 0.0

    @property
    def parameter_names(self):
        return list(self.attrs["parameter_names"])

    @property
    def objective_names(self):
        return list(self.attrs["objective_names"])

    @property
    def is_cell(self):
        return "function" not in self.config["problem"]

    @property
    def algorithm(self):
        return self.config["optimizer"]["algorithm"]

    @property
    def asynchronous(self):
        return bool(self.config["optimizer"].get("asynchronous"))

    @property
    def unit(self):
        """What the run file's records are: generations, or batches (asynchronous runs)."""
        return "batches" if self.asynchronous else "generations"

    @property
    def optimizer(self):
        """The stored (resolved) optimizer section as a config.Optimizer."""
        known = {f.name for f in dataclasses.fields(Optimizer)}
        return Optimizer(**{k: v for k, v in self.config["optimizer"].items() if k in known})

    @property
    def evaluations_budget(self):
        return self.optimizer.evaluations

    @property
    def budget(self):
        """Records of the finished run: generations, or batches (asynchronous runs)."""
        return self.optimizer.records

    @property
    def weights(self):
        weights = self.config["optimizer"].get("weights") or [1.0] * len(self.objective_names)
        return np.asarray(weights, dtype=float)

    @property
    def penalty(self):
        problem = self.config["problem"]
        spec = next(iter(problem.values())) if self.is_cell else problem
        return float(spec.get("penalty", 250.0))

    @property
    def finished(self):
        if self.asynchronous:
            return bool(self.state.get("stop_reason")) or self.state.get("evaluations", 0) >= self.evaluations_budget
        return bool(self.state.get("stop_reason")) or self.state.get("next_generation", 0) >= self.budget

    def generation_size(self, index):
        """How many individuals generation ``index`` evaluates (IBEA: population, then offspring)."""
        optimizer = self.config["optimizer"]
        if optimizer["algorithm"] == "ibea" and index > 0:
            return int(optimizer.get("offspring") or optimizer["population"])
        return int(optimizer["population"])

    def table(self):
        """All evaluations as one Table, in generation and row order."""
        return Table.of(self.generations)

    def require_generations(self):
        if not self.generations:
            raise RunFileError(f"{self.path}: no complete generation yet")


@dataclass
class Table:
    """Every evaluation of a run, concatenated over generations.

    X: (N, d) physical parameters; F: (N, m) objectives; scores, seconds: (N,);
    status, ranks, generation, row: (N,) ints (row: index inside its generation).
    """

    X: np.ndarray
    F: np.ndarray
    scores: np.ndarray
    seconds: np.ndarray
    status: np.ndarray
    ranks: np.ndarray
    generation: np.ndarray
    row: np.ndarray

    @classmethod
    def of(cls, generations):
        def cat(values, dtype):
            return np.concatenate(values).astype(dtype) if values else np.zeros(0, dtype)

        gens = generations
        d = gens[0].parameters.shape[1] if gens else 0
        m = gens[0].objectives.shape[1] if gens else 0
        return cls(
            X=np.concatenate([g.parameters for g in gens]) if gens else np.zeros((0, d)),
            F=np.concatenate([g.objectives for g in gens]) if gens else np.zeros((0, m)),
            scores=cat([g.scores for g in gens], float),
            seconds=cat([g.eval_seconds for g in gens], float),
            status=cat([g.status for g in gens], int),
            ranks=cat([g.ranks for g in gens], int),
            generation=cat([np.full(len(g.scores), g.index) for g in gens], int),
            row=cat([np.arange(len(g.scores)) for g in gens], int),
        )

    def __len__(self):
        return len(self.scores)

    def order(self):
        """Indices from best (lowest score) to worst; ties by generation, then row
        (the first best is the one ``hpcopt best`` prints)."""
        return np.lexsort((self.row, self.generation, self.scores))


def read(path):
    """A Run: a complete, consistent snapshot of the run file ``path`` (see the
    module docstring). RunFileError (one line) if it is not a readable run file."""
    if os.path.isdir(path):
        raise RunFileError(f"{path}: is a directory, not a run file")
    if not os.path.exists(path):
        raise RunFileError(f"{path}: no such file")
    journal = read_journal(path)  # before the snapshot: entries older than it are then dropped
    read_at = time.time()
    with tempfile.TemporaryDirectory(prefix="hpcopt-read-") as directory:
        copy = os.path.join(directory, os.path.basename(path))
        _copy(path, copy)
        try:
            with RunFile(copy) as run:
                attrs = run.attrs
                if "config" not in attrs or "parameter_names" not in attrs:
                    raise RunFileError(f"{copy}: not an hpcopt run file (no config)")
                state = run.state()
                state.pop("generator")
                generations = [run.generation(i) for i in range(len(run))]
                lower = run.file["problem"]["lower"][()]
                upper = run.file["problem"]["upper"][()]
        except RunFileError as err:
            raise RunFileError(str(err).replace(copy, path)) from None
        except (KeyError, OSError) as err:  # a damaged or foreign file with our format attribute
            raise RunFileError(f"{path}: not a complete run file ({err})".replace(copy, path)) from None
    config = json.loads(attrs.pop("config"))
    done = state.get("next_generation", len(generations))
    return Run(path, attrs, config, state, generations, lower, upper,
               [e for e in journal if e.get("g", done) >= done], read_at)


def _copy(path, copy, attempts=5):
    """Copy ``path`` with plain reads. On NFS a file replaced while it is read can
    answer ESTALE instead of its old content: then read the new version."""
    for attempt in range(attempts):
        try:
            with open(path, "rb") as source, open(copy, "wb") as target:
                try:  # as h5py does: the writer then leaves this version alone
                    fcntl.flock(source, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # opened just before it became the job's shadow: the next version
                    time.sleep(0.05)
                    continue
                except OSError:  # no locks on this filesystem
                    pass
                shutil.copyfileobj(source, target, 1 << 22)
            return
        except OSError as err:
            if err.errno != errno.ESTALE or attempt == attempts - 1:
                raise RunFileError(f"{path}: cannot read: {err.strerror}") from err
            time.sleep(0.1)
    raise RunFileError(f"{path}: the job kept replacing it while it was read; try again")


def read_journal(path):
    """The entries of ``path``.journal (a line cut short by a kill, or being
    written, is skipped); [] if there is none."""
    try:
        with open(path + ".journal", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "event" in entry:
            entries.append(entry)
    return entries


# ---------------------------------------------------------------- measures


def progress(run):
    """Per generation: (index, evaluations so far, best so far, best, median, failed)."""
    rows, total, best = [], 0, np.inf
    for g in run.generations:
        total += len(g.scores)
        best = min(best, float(np.min(g.scores)))
        rows.append((g.index, total, best, float(np.min(g.scores)), float(np.median(g.scores)),
                     int(np.count_nonzero(g.status != 0))))
    return rows


def speed(run, last=RECENT_GENERATIONS):
    """Over the last ``last`` generations: (evaluations per second, rank utilisation,
    ranks seen, seconds per generation).

    Speed counts from the first generation's start to the last one's end (so the
    checkpoints' time is in it), unless a pause lies between them (a job stopped
    and resumed later), then only the generations' own wall time. Utilisation is
    the evaluations' time over ranks x the generations' wall time; the run file
    does not store the number of ranks, so it counts the ranks seen evaluating
    (rank ids 0..max) in each generation."""
    recent = run.generations[-last:]
    wall = np.array([max(g.end_time - g.start_time, 1e-9) for g in recent])
    span = recent[-1].end_time - recent[0].start_time
    elapsed = span if span <= 2 * wall.sum() else wall.sum()
    evaluations = sum(len(g.scores) for g in recent)
    ranks = np.array([int(np.max(g.ranks, initial=0)) + 1 for g in recent])
    busy = sum(float(np.sum(g.eval_seconds)) for g in recent)
    if run.asynchronous:  # a batch holds some ranks' results only: every rank works across batches
        ranks = np.full(len(recent), ranks.max())
    return (evaluations / max(elapsed, 1e-9), busy / float(np.sum(ranks * wall)), int(ranks.max()),
            elapsed / len(recent))


def in_progress(run):
    """What the journal says about generations not yet in the file:
    [(generation, done, in flight, size)]."""
    done, flight = _journal_progress(run, lambda e: (e["g"], e["i"]) if "g" in e else None)
    generations = sorted(set(done) | set(flight))
    return [(g, len(done.get(g, ())), len(flight.get(g, set()) - done.get(g, set())), run.generation_size(g))
            for g in generations]


def in_progress_asynchronous(run):
    """(evaluations done and not in the file, evaluations in flight) per the journal
    of an asynchronous run."""
    done, flight = _journal_progress(run, lambda e: (None, e["id"]) if "id" in e else None)
    return len(done.get(None, ())), len(flight.get(None, set()) - done.get(None, set()))


def _journal_progress(run, key):
    """({group: members done}, {group: members started in the latest session and not
    finished}) from the journal; key(entry) -> (group, member) or None (not counted)."""
    latest = max((i for i, e in enumerate(run.journal) if e["event"] == "session"), default=-1)
    done, flight = {}, {}
    for i, e in enumerate(run.journal):
        k = key(e)
        if k is None:
            continue
        group, member = k
        if e["event"] == "done":
            done.setdefault(group, set()).add(member)
            flight.get(group, set()).discard(member)
        elif e["event"] == "abandoned":
            flight.get(group, set()).discard(member)
        elif e["event"] == "start" and i > latest:
            flight.setdefault(group, set()).add(member)
    return done, flight


def common_errors(run, most=3):
    """[(count, message)] of the ``most`` most frequent reasons evaluations failed."""
    counts = {}
    for g in run.generations:
        for code, error in zip(g.status, g.errors):
            if code != 0:
                counts[error] = counts.get(error, 0) + 1
    return sorted(((n, e) for e, n in counts.items()), key=lambda item: -item[0])[:most]


def lock_holder(path):
    """The lock file's line ("pid N on HOST ...") and whether that process is alive
    here (True, False, or None when it ran on another host); ("", None) if none.
    The lock itself is never touched: probing it could refuse a job starting now."""
    try:
        with open(path + ".lock", encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        return "", None
    words = text.split()
    if len(words) >= 4 and words[0] == "pid" and words[1].isdigit() and words[2] == "on":
        host = words[3].rstrip(",")
        if host == os.uname().nodename:
            return text, os.path.exists(f"/proc/{words[1]}") if os.path.isdir("/proc") else None
    return text, None


# ---------------------------------------------------------------- the text


def text(run, rows=10):
    """``hpcopt status``: a few lines and a small table."""
    o = run.config["optimizer"]
    kind = "cell model" if run.is_cell else f"function {run.config['problem']['function']}"
    done = len(run.generations)
    lines = [f"{run.path}: {o['algorithm']}, population {o['population']}, "
             f"{len(run.parameter_names)} free parameters, {len(run.objective_names)} objectives ({kind})"]
    budget = (f"evaluation budget of {run.evaluations_budget} met" if run.asynchronous
              else f"generation budget of {run.budget} met")
    state = f"finished: {run.state.get('stop_reason') or budget}" if run.finished else "not finished"
    if run.asynchronous:
        told = run.state.get("evaluations", 0)
        lines.append(f"asynchronous  {told} of {run.evaluations_budget} evaluations told "
                     f"({100 * told / run.evaluations_budget:.0f} %) in {done} batches of {o['batch']}; {state}")
    else:
        lines.append(f"generations   {done} of {run.budget} done ({100 * done / run.budget:.0f} %); {state}")
    status = np.concatenate([g.status for g in run.generations]) if run.generations else np.zeros(0, int)
    counts = [int(np.count_nonzero(status == k)) for k in range(3)]
    lines.append(f"evaluations   {len(status)}: {counts[0]} ok, {counts[1]} failed, {counts[2]} timeout")
    for count, error in common_errors(run):
        lines.append(f"  {count:>5} x    {error if len(error) <= 100 else error[:97] + '...'}")
    if run.generations:
        rate, utilisation, ranks, per_generation = speed(run)
        recent = min(len(run.generations), RECENT_GENERATIONS)
        lines.append(f"speed         {rate:.3g} evaluations/s over the last {recent} {run.unit}; rank utilisation "
                     f"{100 * utilisation:.0f} % ({ranks} rank{'s' * (ranks != 1)} seen evaluating)")
        first, last = run.generations[0].start_time, run.generations[-1].end_time
        left = ""
        if not run.finished:
            remaining = run.budget - done
            left = f"; about {_duration(remaining * per_generation)} left ({remaining} {run.unit} at " \
                   f"{per_generation:.3g} s)"
        lines.append(f"time          started {_clock(first)}, last checkpoint {_clock(last)} "
                     f"({_duration(run.read_at - last)} ago){left}")
        best = min(range(done), key=lambda i: float(np.min(run.generations[i].scores)))
        g = run.generations[best]
        where = f"batch {g.index}, id {int(g.ids[np.argmin(g.scores)])}" if run.asynchronous else \
            f"generation {g.index}, individual {int(np.argmin(g.scores))}"
        lines.append(f"best          score {float(np.min(g.scores)):.6g} ({where}; 'hpcopt best {run.path}')")
    if run.asynchronous:
        finished, flight = in_progress_asynchronous(run)
        if finished or flight:
            lines.append(f"in progress   {finished} evaluations done and not yet told since the last checkpoint"
                         f"{f', {flight} in flight' if flight else ''} (journal)")
    for g, finished, flight, size in in_progress(run):
        lines.append(f"in progress   generation {g}: {finished} of {size} evaluations done since the last "
                     f"checkpoint{f', {flight} in flight' if flight else ''} (journal)")
    if not run.finished:
        holder, alive = lock_holder(run.path)
        if holder:
            lines.append(f"job           {holder}" + {True: " (running)", False: " (not running)", None: ""}[alive])
    if run.generations:
        lines += ["", _table(run, rows)]
    else:
        lines.append("no generation complete yet")
    return "\n".join(lines)


def _table(run, rows):
    table = progress(run)
    picked = sorted(set(np.linspace(0, len(table) - 1, min(rows, len(table))).round().astype(int)))
    unit = "batch" if run.asynchronous else "gen"
    header = f"{'batch' if run.asynchronous else 'generation':>10} {'evaluations':>11} {'best so far':>12} " \
             f"{unit + ' best':>12} {unit + ' median':>12} " \
             f"{'failed':>6}"
    out = [header]
    for i in picked:
        g, total, best, gbest, median, failed = table[i]
        out.append(f"{g:>10} {total:>11} {best:>12.6g} {gbest:>12.6g} {median:>12.6g} {failed:>6}")
    return "\n".join(out)


def _clock(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(seconds):
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
