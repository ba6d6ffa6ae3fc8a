"""What a run file says: a consistent snapshot of it, for status, report and export.

A job replaces its run file atomically (runfile.py: a copy beside it, fsync,
``os.replace``), so every version of the file at its path is complete. A reader
must still not hold it open for long or take HDF5 file locks on it: on network
filesystems where locking misbehaves, a lock taken by a reader can make the
reader (or a job started next to it) fail. ``read`` therefore copies the file
with plain reads (one open, read to the end, close: a complete version, since a
renamed-over file is never modified), reads that private copy through
runfile.RunFile and deletes it. The job never sees the reader. A run file in the
split layout (written without file locking, runfile.Writer) links to generation
files that are never modified once written: those are read where they are,
without locks. Should the job finish (and remove them) in the instant between
the copy and the read, the read starts again on the finished file.

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

from ..config import Optimizer
from ..errors import RunFileError
from . import runfile
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
    _ends: np.ndarray = field(default=None, repr=False, compare=False)  # generation_of's cumulative sizes

    @property
    def parameter_names(self):
        return list(self.attrs["parameter_names"])

    @property
    def objective_names(self):
        return list(self.attrs["objective_names"])

    @property
    def is_cell(self):
        return "cell" in self.config["problem"]

    @property
    def is_network(self):
        return "network" in self.config["problem"]

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
        """Records of the finished run: generations, or batches (asynchronous runs); 0 with
        restarts (generations change size: the budget is ``evaluations_budget``)."""
        return self.optimizer.records

    @property
    def restarts(self):
        """CMA-ES's restart strategy: "none", "ipop" or "bipop"."""
        return self.optimizer.restarts

    @property
    def weights(self):
        weights = self.config["optimizer"].get("weights") or [1.0] * len(self.objective_names)
        return np.asarray(weights, dtype=float)

    @property
    def penalty(self):
        problem = self.config["problem"]
        spec = problem if "function" in problem else next(iter(problem.values()))
        return float(spec.get("penalty", 250.0))

    @property
    def finished(self):
        if self.asynchronous or self.restarts != "none":
            return bool(self.state.get("stop_reason")) or self.state.get("evaluations", 0) >= self.evaluations_budget
        return bool(self.state.get("stop_reason")) or self.state.get("next_generation", 0) >= self.budget

    def generation_size(self, index):
        """How many individuals generation ``index`` evaluates: as recorded, for a stored
        one; else per the config (IBEA: population, then offspring), or with restarts the
        population of the run the checkpoint was sampling."""
        if 0 <= index < len(self.generations):
            return len(self.generations[index].scores)
        optimizer = self.config["optimizer"]
        if self.restarts != "none":
            return int(self.state.get("population") or optimizer["population"])
        if optimizer["algorithm"] == "ibea" and index > 0:
            return int(optimizer.get("offspring") or optimizer["population"])
        return int(optimizer["population"])

    def generation_of(self, ident):
        """The generation of a generational run whose individuals include id ``ident``
        (ids count the points asked over the run): by the recorded sizes, then by
        generation_size past the stored generations."""
        if self._ends is None or len(self._ends) != len(self.generations):
            self._ends = np.cumsum([len(g.scores) for g in self.generations], dtype=np.int64)
        stored = int(np.searchsorted(self._ends, ident, side="right"))
        if stored < len(self.generations):
            return stored
        left = ident - (int(self._ends[-1]) if len(self._ends) else 0)
        first = self.generation_size(stored)
        if left < first:
            return stored
        return stored + 1 + (left - first) // self.generation_size(stored + 1)

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
    pieces = runfile.pieces_of(path)
    for attempt in range(3):
        split = os.path.isdir(pieces)
        try:
            return _read(path, journal, read_at)
        except RunFileError:
            if not split or os.path.isdir(pieces) or attempt == 2:
                raise  # not a split run file that finished (and lost its folder) while it was read


def _read(path, journal, read_at):
    with tempfile.TemporaryDirectory(prefix="hpcopt-read-") as directory:
        copy = os.path.join(directory, os.path.basename(path))
        _copy(path, copy)
        pieces = runfile.pieces_of(path)
        if os.path.isdir(pieces):  # the split layout: its generation files are never modified, read them there
            os.symlink(os.path.abspath(pieces), runfile.pieces_of(copy))
        try:
            with RunFile(copy, locking=False) as run:
                attrs, config = run.attrs, run.config
                attrs.pop("config")
                attrs["parameter_names"], attrs["objective_names"] = run.names("parameter"), run.names("objective")
                state = run.state()
                state.pop("generator")
                generations = [run.generation(i) for i in range(len(run))]
                lower = run.file["problem"]["lower"][()]
                upper = run.file["problem"]["upper"][()]
        except RunFileError as err:
            raise RunFileError(str(err).replace(copy, path)) from None
        except (KeyError, OSError) as err:  # a damaged or foreign file with our format attribute
            raise RunFileError(f"{path}: not a complete run file ({err})".replace(copy, path)) from None
    run = Run(path, attrs, config, state, generations, lower, upper, [], read_at)
    if run.asynchronous:
        run.journal = journal
    else:  # entries of generations already in the snapshot are older than it
        done = state.get("next_generation", len(generations))
        run.journal = [e for e in journal if "id" not in e or run.generation_of(e["id"]) >= done]
    return run


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
