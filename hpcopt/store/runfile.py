"""The HDF5 run file: the only module that imports h5py.

Every write is atomic: the new file is written beside the old one under another
name, fsynced, and renamed over it with ``os.replace`` (then the directory is
fsynced). A kill -9 at any instant leaves either the previous file or the new
one, both complete. Checkpoints cost what is new, not the history (Writer): where
readers' locks are seen they update a shadow file in place; elsewhere each
checkpoint's generations are written once into a file of their own under
``RUN.h5.generations/``, linked from the run file (HDF5 external links), and only
the small run file is replaced; a finished run is made one file again
(``consolidate``). Readers (``hpcopt status``, a user's h5py session) never see a
half-written file. Layout: docs/runfile.md.
"""

import contextlib
import dataclasses
import errno
import fcntl
import functools
import json
import os
import re
import shutil
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import RunFileError

FORMAT = "hpcopt-run"
LAYOUT_VERSION = 3  # 2: the generator's state holds its pending points and their ids; 3: its small arrays packed
READABLE = (1, 2, 3)  # versions read for status, report, best and export
RESUMABLE = (2, 3)  # versions whose generator state this hpcopt continues
PACKED = "packed_arrays"  # /state/generator dataset holding the state's small arrays (layout 3)
PACKED_BELOW = 4096  # bytes: arrays smaller than this are packed (cma's state holds thousands of 20-vectors)
RESUME_STATE = ("algorithm", "next_generation", "evaluations", "failures", "stop_reason")  # /state attributes
STATUS_DTYPE = h5py.enum_dtype({"ok": 0, "failed": 1, "timeout": 2}, basetype="u1")


@dataclass
class Generation:
    """One generation's record; arrays in the order the generator asked.

    parameters: (n, d) physical values; objectives: (n, m); scores: (n,)
    weighted sums; eval_seconds: (n,) wall time of each evaluation; ranks: (n,)
    which rank evaluated it; status: (n,) 0 ok, 1 failed, 2 timeout; errors: (n,)
    why it failed ("" when ok); start_time, end_time: UNIX seconds of ask and tell;
    features: (n, k) feature values for cell models (None for function problems).
    """

    index: int
    parameters: np.ndarray
    objectives: np.ndarray
    scores: np.ndarray
    eval_seconds: np.ndarray
    ranks: np.ndarray
    status: np.ndarray
    errors: list
    start_time: float
    end_time: float
    features: np.ndarray = None  # (n, k) raw feature values (mean over a feature's values), NaN where missing
    # asynchronous runs: the individuals' ids (n,), when each evaluation finished (n,) (UNIX
    # seconds, as rank 0 saw it), and how many points the generator had asked before this
    # batch was told and after it asked for more (asked_before, asked_after)
    ids: np.ndarray = None
    finished: np.ndarray = None
    asked: tuple = None
    # CMA-ES with restarts: the run (0 the first, then one per restart) that sampled this generation
    restart: int = None


def generation_name(index):
    return f"{index:06d}"


def pieces_of(path):
    """The folder of a run file's generation files (split layout): ``RUN.h5.generations``."""
    return f"{path}.generations"


def create(path, attrs, lower, upper, state):
    """Write a new run file: header ``attrs``, bounds, and the initial ``state``
    (generation files of an earlier run at ``path`` are removed after it)."""

    def fill(f):
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["format"] = FORMAT
        f.attrs["layout_version"] = LAYOUT_VERSION
        problem = f.create_group("problem")
        problem["lower"] = lower
        problem["upper"] = upper
        f.create_group("generations", track_order=True)
        _write_state(f, state)

    _atomic_write(path, lambda tmp: _write_small(tmp, fill))
    shutil.rmtree(pieces_of(path), ignore_errors=True)


def checkpoint(path, records, state, attrs=None):
    """One checkpoint with a fresh Writer (a full copy): see Writer.checkpoint."""
    writer = Writer(path)
    try:
        writer.checkpoint(records, state, attrs)
    finally:
        writer.close()


class Writer:
    """Writes the checkpoints of the run file ``path``, each an atomic switch from
    one complete file to the next, at a cost that does not grow with the history.

    Two files take turns: the run file and a shadow beside it (``.NAME.shadow``)
    that holds the checkpoint before. A checkpoint brings the shadow up to date
    in place (copies from the run file the generations it lacks, appends the new
    ones, overwrites the state), fsyncs it, and swaps the two names: the run file
    is always one complete checkpoint or the next. The shadow is trusted only by
    the Writer that wrote it: the first checkpoint of a process copies the whole
    file, and so does one that finds the shadow open in a reader (h5py holds a
    shared lock on what it reads; ``hpcopt status`` too) - a reader that opened
    the run file before the previous checkpoint keeps its snapshot unchanged.
    Where readers cannot be seen (see ``readers_are_seen``; no hard links; no
    flock), nothing a reader may hold is ever modified (the split layout,
    ``_checkpoint_split``): the new generations go into a new file under
    ``RUN.h5.generations/`` and a new, small run file linking to every generation
    file replaces the old one; neither grows with the history but for one link per
    checkpoint. ``close()`` removes the shadow; ``close(finished=True)`` also makes
    a split run file one self-contained file again.
    """

    def __init__(self, path):
        self.path = str(path)
        directory, name = os.path.split(os.path.abspath(self.path))
        self.directory = directory
        self.shadow = os.path.join(directory, f".{name}.shadow")
        self._previous = os.path.join(directory, f".{name}.previous")
        self._trusted = False  # the shadow holds the checkpoint before the run file's, written here
        self.in_place = readers_are_seen(directory)  # else every checkpoint copies the whole file
        self.copied = 0  # checkpoints that copied the whole file (tests and benchmarks read it)

    def checkpoint(self, records, state, attrs=None):
        """Append the Generation ``records`` and replace the state, atomically.

        state: {"generator": dict from the generator's state(), other keys: scalars};
        attrs: root attributes to set (e.g. an updated config).
        """
        if not self.in_place:
            return self._checkpoint_split(records, state, attrs)
        lock = self._claim_shadow()
        try:
            if lock is None:
                self._copy_whole()
            elif _hdf5_locks_forced():  # HDF5 then locks the shadow itself as it opens it, and would find ours
                os.close(lock)
                lock = None
            room = _size_of(records) + _size_of(state) + _size_of(attrs or {})
            had = _reserve(self.shadow, os.path.getsize(self.path), room)
            try:
                f = h5py.File(self.shadow, "r+", locking=False)
            except OSError:
                if not _hdf5_locks_forced():
                    raise
                os.truncate(self.shadow, had)  # give the room back: the reader keeps the file as it was
                self._copy_whole()  # a reader opened the shadow in between: write a new one
                _reserve(self.shadow, os.path.getsize(self.path), room)
                f = h5py.File(self.shadow, "r+", locking=False)
            with f:
                with h5py.File(self.path, "r", locking=False) as current:
                    _set_attrs(f, {**{k: _plain(v) for k, v in current.attrs.items()}, **(attrs or {})})
                    have, latest = f["generations"], current["generations"]
                    for name in latest:
                        if name not in have:
                            current.copy(latest[name], have, name=name)
                generations = f["generations"]
                for record in records:
                    _write_generation(generations.create_group(generation_name(record.index)), record)
                _write_state(f, state)
            _fsync(self.shadow)
        except BaseException as err:
            self._trusted = False
            _abandon(self.shadow)
            if isinstance(err, (OSError, RuntimeError)):  # a full disk or quota: HDF5 says so either way
                raise RunFileError(f"{self.path}: cannot write the checkpoint ({_reason(err)}); the run file still "
                                   "holds the last checkpoint, intact: make room, then resume it") from None
            raise
        finally:
            if lock is not None:
                os.close(lock)
        self._swap()

    def _claim_shadow(self):
        """A descriptor holding an exclusive lock on a trusted shadow nobody reads,
        else None (the shadow must be made again)."""
        if not self._trusted or not self.in_place:
            return None
        try:
            fd = os.open(self.shadow, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a reader has the previous checkpoint open, or no locks here to tell
            os.close(fd)
            return None
        return fd

    def _copy_whole(self):
        self.copied += 1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.shadow)  # a reader keeps its snapshot: only the name goes
        shutil.copyfile(self.path, self.shadow)

    def _swap(self):
        """The shadow becomes the run file; the run file's old content the shadow."""
        self._trusted = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._previous)
        try:
            os.link(self.path, self._previous)
            linked = True
        except OSError:  # no hard links here: no shadow is kept
            linked = False
        os.replace(self.shadow, self.path)
        if linked:
            os.replace(self._previous, self.shadow)
        self._trusted = linked
        _fsync(self.directory)

    def _checkpoint_split(self, records, state, attrs):
        """The split layout's checkpoint: ``records`` written once into a generation file
        of their own, then a new run file (header, bounds, a link per generation, the
        state) renamed over the old one. Generations the run file holds itself (written
        in place earlier, or a finished run resumed) move to a generation file first,
        once. A kill leaves at most a generation file no run file links to yet: the
        resumed run writes it again."""
        links = {}  # generation name -> (file name relative to the run file's folder, path in it)
        pieces = pieces_of(self.path)
        try:
            os.makedirs(pieces, exist_ok=True)
            with h5py.File(self.path, "r", locking=False) as current:
                header = {**{k: _plain(v) for k, v in current.attrs.items()}, **(attrs or {})}
                inside = []
                for name in current["generations"]:
                    link = current["generations"].get(name, getlink=True)
                    if isinstance(link, h5py.ExternalLink):
                        links[name] = (link.filename, link.path)
                    else:
                        inside.append(name)
                if inside:
                    self.copied += 1
                    links.update(self._write_piece(inside[0], lambda group: [
                        current.copy(current["generations"][name], group, name=name) for name in inside]))
                if records:
                    links.update(self._write_piece(generation_name(records[0].index), lambda group: [
                        _write_generation(group.create_group(generation_name(r.index)), r) for r in records]))

                def fill(f):
                    _set_attrs(f, header)
                    current.copy(current["problem"], f, name="problem")
                    generations = f.create_group("generations", track_order=True)
                    for name in sorted(links):
                        generations[name] = h5py.ExternalLink(*links[name])
                    _write_state(f, state)

                _fsync(pieces)
                _atomic_write(self.path, lambda tmp: _write_small(tmp, fill))
        except RunFileError as err:
            raise RunFileError(str(err).replace("; it was not changed", "; the run file still holds the last "
                                                "checkpoint, intact: make room, then resume it")) from None
        except (OSError, RuntimeError) as err:
            raise RunFileError(f"{self.path}: cannot write the checkpoint ({_reason(err)}); the run file still "
                               "holds the last checkpoint, intact: make room, then resume it") from None

    def _write_piece(self, name, fill):
        """Write the generation file ``name``.h5 (fill(its root group) adds the generations),
        atomically; returns {generation name: link target} for the generations in it."""
        folder = os.path.basename(pieces_of(self.path))
        target = os.path.join(pieces_of(self.path), f"{name}.h5")
        tmp = os.path.join(pieces_of(self.path), f".{name}.h5.tmp{os.getpid()}")
        names = []
        try:
            _write_small(tmp, lambda f: (fill(f), names.extend(f)))
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return {generation: (f"{folder}/{name}.h5", f"/{generation}") for generation in names}

    def close(self, finished=False):
        """Remove the shadow (a later process would not trust it); with ``finished``,
        make a split run file one file again (``consolidate``)."""
        self._trusted = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.shadow)
        if finished:
            consolidate(self.path)


def consolidate(path):
    """Make the run file ``path`` self-contained: every generation its generation files
    hold copied into it (one atomic replace), then ``RUN.h5.generations/`` removed.
    A file that links to nothing is left as it is (a stale folder is removed)."""
    with h5py.File(path, "r", locking=False) as current:
        linked = [name for name in current["generations"]
                  if isinstance(current["generations"].get(name, getlink=True), h5py.ExternalLink)]
        if linked:
            def build(tmp):
                with h5py.File(tmp, "w", track_order=True) as f:
                    _set_attrs(f, {k: _plain(v) for k, v in current.attrs.items()})
                    for key in ("problem", "state"):
                        current.copy(current[key], f, name=key)
                    generations = f.create_group("generations", track_order=True)
                    for name in current["generations"]:
                        current.copy(current["generations"][name], generations, name=name)

            _atomic_write(path, build)
    shutil.rmtree(pieces_of(path), ignore_errors=True)


def _hdf5_locks_forced():
    """Whether HDF5_USE_FILE_LOCKING turns HDF5's locks on: then it overrides h5py's
    ``locking=False`` (the variable wins over the file access property)."""
    return os.environ.get("HDF5_USE_FILE_LOCKING", "").strip().upper() in ("TRUE", "1", "BEST_EFFORT")


# Filesystems local to a node: a reader there is on this node, and its lock is seen here.
LOCAL_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "overlay", "jfs"})


def readers_are_seen(directory, mounts="/proc/self/mounts"):
    """Whether a reader of a file in ``directory``, on any node, holds a lock this process
    sees: HDF5 file locking is on here (a site without locks turns it off for all), and
    the filesystem is local, or shared with locks that hold across nodes (Lustre mounted
    with ``flock``, NFS with its lock service). Elsewhere (Lustre ``localflock``, NFS
    ``nolock`` or ``local_lock``, GPFS, BeeGFS, anything unknown) a reader on a login node
    would be invisible, so the Writer never updates a file in place there."""
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").strip().upper() in ("FALSE", "0"):
        return False
    mount = _mount_of(os.path.realpath(directory), mounts)
    if mount is None:
        return False
    fstype, options = mount
    if fstype in LOCAL_FILESYSTEMS:
        return True
    if fstype == "lustre":
        return "flock" in options
    if fstype in ("nfs", "nfs4"):
        return "nolock" not in options and all(o in ("local_lock=none",) or not o.startswith("local_lock=")
                                               for o in options)
    return False


def _mount_of(path, mounts):
    """(filesystem type, set of mount options) of the mount holding ``path``, or None."""
    best = None
    try:
        with open(mounts, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2], set(fields[3].split(",")))
    return None if best is None else best[1:]


# room reserved for a checkpoint beyond 1.5 times the bytes of its data: HDF5's object
# headers, B-trees and heaps take a few KiB (measured: a checkpoint grows the file by at most
# 1.2 times its data plus the generations the shadow lacks, the first one, which creates the
# state, the most)
RESERVE_EXTRA = 32 * 1024


def _reserve(shadow, final, data):
    """Make sure the disk has room for what a checkpoint writes into ``shadow`` before HDF5
    writes anything: OSError (No space left on device) now rather than inside HDF5, which
    does not recover from a failed write (it fails again as each of its objects goes, and
    can crash the process at exit). ``final``: the size of the run file the shadow catches
    up with; ``data``: the bytes of the new records and state. The room is allocated at the
    shadow's end (posix_fallocate; where a filesystem cannot allocate ahead, the C library
    writes a byte into each new block, and where even that reserves nothing, as on a
    compressing filesystem, a full disk can still fail inside HDF5). HDF5 writes into the
    room and cuts the file to what it used when it closes it. Returns the shadow's size
    before."""
    have = os.path.getsize(shadow)
    size = max(have, final) + data + data // 2 + RESERVE_EXTRA
    fd = os.open(shadow, os.O_RDWR)
    try:
        os.posix_fallocate(fd, have, size - have)  # only the new part: the cost does not grow with the file
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)
    return have


def _size_of(value):
    """Bytes of the data in ``value`` (arrays, strings, and containers and dataclasses of them)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, dict):
        return sum(_size_of(k) + _size_of(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(map(_size_of, value))
    if dataclasses.is_dataclass(value):
        return sum(_size_of(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 8


def _abandon(path):
    """Remove ``path``, a file whose writing failed. HDF5 keeps a file open when it could
    not flush it (a full disk); h5py then reports errors as the file's objects go, and
    the process may crash at exit when HDF5 tries again. So the file is emptied first,
    which gives the space back, and then closed with what HDF5 still holds of it."""
    if not os.path.exists(path):
        return
    with contextlib.suppress(OSError):
        os.truncate(path, 0)
    name = os.path.abspath(path)
    for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        with contextlib.suppress(Exception):
            if os.path.abspath(fid.name.decode()) == name:
                h5py.File(fid).close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_small(path, fill):
    """Write a new HDF5 file at ``path`` (fill(h5py.File) adds its contents), fsynced.

    The file is made in memory and then written with plain file I/O: a full disk then
    fails one write() with OSError, while an HDF5 file on disk that cannot be flushed
    stays open inside the library (h5py prints errors as its objects go, and the
    process may crash at exit). For the small files of the split layout."""
    # HDF5's core driver keeps the file in memory (not on disk: backing_store=False)
    with h5py.File(path, "w", driver="core", backing_store=False, track_order=True) as f:
        fill(f)
        f.flush()
        image = f.id.get_file_image()
    with open(path, "wb") as out:
        out.write(image)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_generation(group, g):
    group.attrs["start_time"] = g.start_time
    group.attrs["end_time"] = g.end_time
    group["parameters"] = np.asarray(g.parameters, dtype=np.float64)
    group["objectives"] = np.asarray(g.objectives, dtype=np.float64)
    group["score"] = np.asarray(g.scores, dtype=np.float64)
    group["eval_seconds"] = np.asarray(g.eval_seconds, dtype=np.float64)
    group["rank"] = np.asarray(g.ranks, dtype=np.int32)
    group.create_dataset("status", data=np.asarray(g.status, dtype=np.uint8), dtype=STATUS_DTYPE)
    # fixed-length UTF-8: variable-length strings each take a 4 KiB global heap block
    errors = [e.encode() for e in g.errors]
    group.create_dataset("error", data=np.array(errors, dtype=f"S{max(map(len, errors), default=1) or 1}"))
    if g.features is not None:
        group["features"] = np.asarray(g.features, dtype=np.float64)
    if g.ids is not None:
        group["id"] = np.asarray(g.ids, dtype=np.int64)
        group["finished_time"] = np.asarray(g.finished, dtype=np.float64)
        group.attrs["asked_before"], group.attrs["asked_after"] = (int(v) for v in g.asked)
    if g.restart is not None:
        group.attrs["restart"], group.attrs["population"] = int(g.restart), len(g.scores)


def _write_state(f, state):
    """Write ``state`` into /state, overwriting what is there in place where the
    shapes allow (HDF5 does not reuse the space of deleted objects)."""
    group = f.require_group("state")
    _set_attrs(group, {key: value for key, value in state.items() if key != "generator"})
    generator = group.require_group("generator")
    values = dict(state["generator"])
    _set_attrs(generator, {k: v for k, v in values.items() if not isinstance(v, (bytes, np.ndarray))})
    small = {k: v for k, v in values.items() if isinstance(v, np.ndarray) and v.nbytes < PACKED_BELOW
             and v.dtype.kind in "biufc"}
    if small:  # one dataset, not one each: creating thousands of datasets takes seconds
        index, offset = [], 0
        for key, value in small.items():
            index.append([key, value.dtype.str, list(value.shape), offset])
            offset += value.nbytes
            del values[key]
        values[PACKED] = b"".join(np.ascontiguousarray(v).tobytes() for v in small.values())
    for key in list(generator):
        if key not in values:
            del generator[key]
    for key, value in values.items():
        if isinstance(value, bytes):
            data = np.frombuffer(value, dtype=np.uint8)
            if key not in generator:
                generator.create_dataset(key, data=data, maxshape=(None,), chunks=(min(max(len(data), 4096), 65536),))
            else:
                generator[key].resize((len(data),))
                generator[key][...] = data
            generator[key].attrs["bytes"] = True
            if key == PACKED:
                _set_attrs(generator[key], {"bytes": True, "index": json.dumps(index)})
        elif isinstance(value, np.ndarray):
            existing = generator.get(key)
            if existing is not None and existing.shape == value.shape and existing.dtype == value.dtype:
                existing[...] = value
            else:
                if existing is not None:
                    del generator[key]
                generator[key] = value


def _set_attrs(group, attrs):
    """Make ``group``'s attributes ``attrs``, writing only those that changed (a
    rewritten string takes new space in the file)."""
    for key in [key for key in group.attrs if key not in attrs]:
        del group.attrs[key]
    for key, value in attrs.items():
        if key not in group.attrs or not _same(_plain(group.attrs[key]), value):
            group.attrs[key] = value


def _same(a, b):
    try:
        return type(a) is type(b) and bool(np.all(a == b)) and np.shape(a) == np.shape(b)
    except (TypeError, ValueError):
        return False


def _atomic_write(path, build):
    """build(temporary path) writes the new file; it then replaces ``path`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        build(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        _abandon(tmp)
        if isinstance(err, (OSError, RuntimeError)):
            raise RunFileError(f"{path}: cannot write the run file ({_reason(err)}); it was not changed") from None
        raise
    _fsync(directory)


def _reason(err):
    """Why a write failed, in a few words: the OS's reason (No space left on device), where HDF5
    quotes it too ("... errno = 28, error message = 'No space left on device' ..."), else HDF5's
    first line."""
    quoted = re.search(r"error message = '([^']+)'", str(err))
    if quoted:
        return quoted.group(1)
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0] if str(err) else type(err).__name__


# ---------------------------------------------------------------- reading


def _plain(value):
    """An h5py attribute as a plain Python value (exact)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return [_plain(v) for v in value]
    return value


def _reading(method):
    """``method`` of a RunFile, with what HDF5 raises on a damaged file (metadata that
    cannot be read: OSError, RuntimeError, KeyError) as a RunFileError naming it."""

    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (OSError, RuntimeError, KeyError) as err:
            raise RunFileError(f"{self.path}: damaged run file ({err})") from None

    return read


class RunFile:
    """A run file opened for reading; use as a context manager.

    Raises RunFileError (one line, for the user) if ``path`` is not a readable
    hpcopt run file of this layout version.
    """

    def __init__(self, path, locking=None):
        self.path = path
        if not os.path.exists(path):
            raise RunFileError(f"{path}: no such file")
        try:
            self.file = h5py.File(path, "r", locking=locking)  # None: HDF5's default (its generation files too)
        except OSError as err:
            raise RunFileError(f"{path}: not an HDF5 file ({err})") from err
        try:
            self.version = self._layout()
        except RunFileError:
            self.file.close()
            raise

    @_reading
    def _layout(self):
        """The layout version, after checking that this is a run file with its groups."""
        attrs = self.file.attrs
        if _plain(attrs.get("format")) != FORMAT:
            raise RunFileError(f"{self.path}: not an hpcopt run file (no format='{FORMAT}' attribute)")
        version = _plain(attrs.get("layout_version"))
        if version not in READABLE:
            raise RunFileError(f"{self.path}: run file layout version {version}, this hpcopt reads versions "
                               f"{', '.join(map(str, READABLE))}")
        for name in ("problem", "generations", "state", "state/generator"):
            if not isinstance(self.file.get(name), h5py.Group):
                raise RunFileError(f"{self.path}: damaged run file: no /{name} group")
        return version

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.file.close()

    @property
    @_reading
    def attrs(self):
        return {key: _plain(value) for key, value in self.file.attrs.items()}

    @property
    @_reading
    def config(self):
        """The stored config (a dict with 'problem' and 'optimizer' objects); RunFileError if
        it is missing or not such JSON."""
        if "config" not in self.file.attrs:
            raise RunFileError(f"{self.path}: damaged run file: no 'config' attribute")
        try:
            config = json.loads(_plain(self.file.attrs["config"]))
        except (TypeError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RunFileError(f"{self.path}: damaged run file: its 'config' attribute is not JSON ({err})") from None
        if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("problem", "optimizer")):
            raise RunFileError(f"{self.path}: damaged run file: its 'config' attribute is not an object with "
                               "'problem' and 'optimizer'")
        return config

    @_reading
    def names(self, kind):
        """The stored ``kind`` names ("parameter", "objective" or "feature"), a list of strings."""
        names = _plain(self.file.attrs.get(f"{kind}_names"))
        if not isinstance(names, (list, np.ndarray)) or not all(isinstance(n, str) for n in names):
            raise RunFileError(f"{self.path}: damaged run file: no list of {kind} names ('{kind}_names')")
        return list(names)

    def check(self):
        """RunFileError unless every generation reads, its datasets in consistent shapes."""
        for index in range(len(self)):
            self.generation(index)

    @_reading
    def __len__(self):
        """Number of complete generations stored."""
        return len(self.file["generations"])

    @_reading
    def generation(self, index):
        """Generation ``index`` (negative counts from the end) as a Generation."""
        n = len(self)
        if not -n <= index < n:
            raise RunFileError(f"{self.path}: generation {index} does not exist ({n} stored)")
        group = self._record(index % n)
        return Generation(
            index=index % n,
            parameters=group["parameters"][()],
            objectives=group["objectives"][()],
            scores=group["score"][()],
            eval_seconds=group["eval_seconds"][()],
            ranks=group["rank"][()],
            status=group["status"][()],
            errors=[e.decode() for e in group["error"][()]],
            start_time=float(group.attrs["start_time"]),
            end_time=float(group.attrs["end_time"]),
            features=group["features"][()] if "features" in group else None,
            ids=group["id"][()] if "id" in group else None,
            finished=group["finished_time"][()] if "id" in group else None,
            asked=(int(group.attrs["asked_before"]), int(group.attrs["asked_after"])) if "id" in group else None,
            restart=int(group.attrs["restart"]) if "restart" in group.attrs else None,
        )

    def _record(self, index):
        """The group of generation ``index``, its datasets' shapes checked against one
        another, the bounds and the names; RunFileError naming what is wrong."""
        name = generation_name(index)
        group = self.file["generations"].get(name)
        where = f"{self.path}: damaged run file: generations/{name}"
        link = self.file["generations"].get(name, getlink=True)
        if group is None and isinstance(link, h5py.ExternalLink):
            raise RunFileError(f"{self.path}: generations/{name} is in {link.filename} beside it, which is missing "
                               f"or unreadable (until a run finishes, a run file written without file locking keeps "
                               f"its generations there: keep the folder with the file)")
        if not isinstance(group, h5py.Group):
            raise RunFileError(f"{where} is missing")
        score = group.get("score")
        n = score.shape[0] if isinstance(score, h5py.Dataset) and len(score.shape) == 1 else None
        lower = self.file["problem"].get("lower")
        d = lower.shape[0] if isinstance(lower, h5py.Dataset) and len(lower.shape) == 1 else None
        objectives = _plain(self.file.attrs.get("objective_names"))
        m = len(objectives) if isinstance(objectives, (list, np.ndarray)) else None
        shapes = {"parameters": (n, d), "objectives": (n, m), "score": (n,), "eval_seconds": (n,), "rank": (n,),
                  "status": (n,), "error": (n,)}
        optional = {"features": (n, None), "id": (n,), "finished_time": (n,)}
        for key, shape in {**shapes, **{k: v for k, v in optional.items() if k in group}}.items():
            dataset = group.get(key)
            if not isinstance(dataset, h5py.Dataset):
                raise RunFileError(f"{where}: no dataset '{key}'")
            found = dataset.shape
            if found is None or len(found) != len(shape) or any(e is not None and e != f for e, f in zip(shape, found)):
                expected = "(" + ", ".join("n" if k == 0 and e is None else "*" if e is None else str(e)
                                           for k, e in enumerate(shape)) + ("," if len(shape) == 1 else "") + ")"
                raise RunFileError(f"{where}/{key}: expected shape {expected}, found {found}")
        if group["error"].dtype.kind != "S":
            raise RunFileError(f"{where}/error: expected byte strings, found {group['error'].dtype}")
        if "features" in group and group["features"].dtype.kind not in "fiu":
            raise RunFileError(f"{where}/features: expected numbers, found {group['features'].dtype}")
        for key in ("start_time", "end_time") + (("asked_before", "asked_after") if "id" in group else ()):
            if key not in group.attrs:
                raise RunFileError(f"{where}: no '{key}' attribute")
        return group

    @_reading
    def state(self, resume=False):
        """The saved state: {"generator": {...}, other keys: scalars}; with ``resume``, a
        RunFileError for a file whose generator state this hpcopt cannot continue."""
        if resume and self.version not in RESUMABLE:
            raise RunFileError(f"{self.path}: made by an earlier hpcopt (run file layout {self.version}): this one "
                               f"cannot continue its optimiser; status, report, best and export still read it")
        group = self.file["state"]
        state = {key: _plain(value) for key, value in group.attrs.items()}
        generator = {key: _plain(value) for key, value in group["generator"].attrs.items()}
        for key, dataset in group["generator"].items():
            value = dataset[()]
            if key == PACKED and self.version >= 3:
                buffer = value.tobytes()
                for name, dtype, shape, offset in json.loads(_plain(dataset.attrs["index"])):
                    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                    generator[name] = np.frombuffer(buffer[offset:offset + size], dtype=dtype).reshape(shape).copy()
                continue
            generator[key] = value.tobytes() if dataset.attrs.get("bytes", False) else value
        state["generator"] = generator
        missing = [key for key in RESUME_STATE if key not in state] if resume else []
        if missing:
            raise RunFileError(f"{self.path}: damaged run file: /state has no '{missing[0]}' attribute")
        return state
