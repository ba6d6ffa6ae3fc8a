"""The evaluation journal: what happened since the last checkpoint.

Rank 0 appends one JSON line per event to ``<run file>.journal`` and flushes it
at once (the file survives a kill -9 of the process in the page cache; fsync when
a job stops on a signal). A checkpoint makes the journal obsolete; it is then
emptied (but for its session lines), and a finished run removes it. On resume the
journal tells:

- the evaluations that completed after the last checkpoint: their results are
  reused, bit for bit, when the replayed generator asks for the same point, so no
  completed evaluation is repeated (not even after kill -9);
- the individuals that were in flight when a job died: one that was in flight
  during two crashes is recorded as failed instead of being tried a third time,
  so one poisonous parameter set cannot crash-loop a campaign;
- the individuals a stopped job abandoned (still running ``stop_within`` after the
  signal): one abandoned by two jobs is recorded as timed out, so an evaluation that
  hangs cannot requeue a job forever.

Events: {"event": "session", ...} (with the schedule's rules), {"event": "start", "id",
"rank"}, {"event": "done", "id", "time", "x", "objectives", "features", "status",
"error", "seconds", "rank"}, {"event": "abandoned", "id"} (stopped on a signal: not a
crash). An individual is named by the id its generator gave it; the order of the done
events is the order in which the generator is told the results (execute/loop.py).
"""

import contextlib
import json
import logging
import os
import threading
import time
from collections import defaultdict

from ..errors import RunFileError

CRASHES_BEFORE_FAILING = 2  # sessions that died, or stopped without it finishing, with a point in flight


class Journal:
    """The journal of the run file at ``path`` (read at open, then appended to)."""

    def __init__(self, path, **session):
        self.path = path + ".journal"
        self.entries = _read(self.path)  # earlier sessions' entries, for the resume
        _cut_partial_line(self.path)  # or the next line would be glued to it
        self._lines = [(e, json.dumps(e) + "\n") for e in self.entries]  # the file, as (entry, line)
        self._lock = threading.Lock()
        self._fd = self._open()
        self.write({"event": "session", "time": time.time(), "pid": os.getpid(), **session})

    def _open(self):
        """The journal for appending: each line is one unbuffered write, so nothing is left
        over in a buffer when the disk is full."""
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, entry):
        line = json.dumps(entry) + "\n"
        with self._lock:
            data = line.encode()
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as err:  # a full disk: the run file's last checkpoint is untouched
                raise self._failed(err) from None
            self._lines.append((entry, line))

    def _failed(self, err):
        return RunFileError(f"{self.path}: cannot write the journal ({err.strerror}); the run file "
                            f"{self.path[:-len('.journal')]} still holds the last checkpoint, intact: make room, "
                            "then resume it")

    def started(self, ident, rank):
        self.write({"event": "start", "id": ident, "rank": rank})

    def done(self, ident, x, outcome, seconds, rank):
        self.write({"event": "done", "id": ident, "time": time.time(), **_result(x, outcome, seconds, rank)})

    def abandoned(self, ident):
        self.write({"event": "abandoned", "id": ident})

    def sync(self):
        with self._lock:
            os.fsync(self._fd)

    def clear(self, keep):
        """After a checkpoint: keep only the entries for which keep(entry) is true (those
        the checkpoint does not hold). The file is rewritten atomically, from what this
        object knows is in it (nothing is read back)."""
        with self._lock:
            lines = [(e, line) for e, line in self._lines if keep(e)]
            tmp = self.path + ".tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(line for _, line in lines)
            except OSError as err:  # the journal is still complete: it holds more than it needs to
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise self._failed(err) from None
            os.close(self._fd)
            os.replace(tmp, self.path)
            self._lines = lines
            self.entries = [e for e in self.entries if keep(e)]
            self._fd = self._open()

    def close(self, finished=False):
        """finished: the run is finished and its file holds everything the journal told;
        then a journal left with session lines only (nothing a resume would reuse or
        count) is removed. One that still holds an evaluation's line stays."""
        with self._lock:
            if self._fd is None:  # closed already (closing twice is harmless)
                return
            os.close(self._fd)
            self._fd = None
            if finished and all(e["event"] == "session" for e, _ in self._lines):
                remove(self.path[:-len(".journal")])

    def crashes(self):
        """{id: number of earlier sessions that died while it was in flight}."""
        counts = defaultdict(int)
        in_flight = set()
        for e in self.entries + [{"event": "session"}]:
            if e["event"] == "session":
                for k in in_flight:
                    counts[k] += 1
                in_flight = set()
            elif "id" in e:
                if e["event"] == "start":
                    in_flight.add(e["id"])
                else:  # done or abandoned
                    in_flight.discard(e["id"])
        return dict(counts)

    def abandons(self):
        """{id: number of earlier sessions that were stopped by a signal while it was still
        being evaluated after their stop_within (each abandons it once)}."""
        counts = defaultdict(int)
        for e in self.entries:
            if e["event"] == "abandoned" and "id" in e:
                counts[e["id"]] += 1
        return dict(counts)


def _result(x, outcome, seconds, rank):
    return {
        "x": [float(v) for v in x],
        "objectives": [float(v) for v in outcome.objectives],
        "features": [float(v) for v in outcome.features] if outcome.features is not None else None,
        "status": int(outcome.status), "error": outcome.error, "seconds": seconds, "rank": rank,
    }


def remove(path):
    """Delete the journal of the run file ``path`` (a new run starts)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + ".journal")


def _cut_partial_line(path):
    """Truncate the file after its last newline (a line cut short by a kill or a full disk)."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _read(path):
    """The journal's entries; a last line cut short by a kill is dropped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "event" not in entry:
                raise ValueError("not an event")
        except ValueError:  # a damaged line: what it said is evaluated again
            if number != len(lines) - 1:
                logging.getLogger("hpcopt").warning("%s: line %d is damaged and was skipped", path, number + 1)
            continue
        entries.append(entry)
    return entries
