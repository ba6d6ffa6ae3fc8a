"""The HDF5 run file: the only module that imports h5py.

Every write is atomic: the new file is written beside the old one under a
temporary name, fsynced, and renamed over it with ``os.replace`` (then the
directory is fsynced). A kill -9 at any instant leaves either the previous file
or the new one, both complete. Readers (``hpcopt status``, a user's h5py
session) never see a half-written file. Layout: docs/runfile.md.
"""

import json
import os
import shutil
from dataclasses import dataclass

import h5py
import numpy as np

from .errors import RunFileError

FORMAT = "hpcopt-run"
LAYOUT_VERSION = 1
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


def generation_name(index):
    return f"{index:06d}"


def create(path, attrs, lower, upper, state):
    """Write a new run file: header ``attrs``, bounds, and the initial ``state``."""

    def build(tmp):
        with h5py.File(tmp, "w", track_order=True) as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            f.attrs["format"] = FORMAT
            f.attrs["layout_version"] = LAYOUT_VERSION
            problem = f.create_group("problem")
            problem["lower"] = lower
            problem["upper"] = upper
            f.create_group("generations", track_order=True)
            _write_state(f, state)

    _atomic_write(path, build)


def checkpoint(path, records, state, attrs=None):
    """Append the Generation ``records`` and replace the state, atomically.

    state: {"generator": dict from the generator's state(), other keys: scalars};
    attrs: root attributes to set (e.g. an updated config).

    The old file is copied by the operating system (no HDF5 object is rewritten),
    the new generations are appended to the copy and the state is overwritten in
    place, so a checkpoint costs a file copy plus what is new, and the file does
    not grow by a state per checkpoint.
    """

    def build(tmp):
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as f:
            _set_attrs(f, {**{k: _plain(v) for k, v in f.attrs.items()}, **(attrs or {})})
            generations = f["generations"]
            for record in records:
                _write_generation(generations.create_group(generation_name(record.index)), record)
            _write_state(f, state)

    _atomic_write(path, build)


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


def _write_state(f, state):
    """Write ``state`` into /state, overwriting what is there in place where the
    shapes allow (HDF5 does not reuse the space of deleted objects)."""
    group = f.require_group("state")
    _set_attrs(group, {key: value for key, value in state.items() if key != "generator"})
    generator = group.require_group("generator")
    values = state["generator"]
    _set_attrs(generator, {k: v for k, v in values.items() if not isinstance(v, (bytes, np.ndarray))})
    for key in list(generator):
        if key not in values:
            del generator[key]
    for key, value in values.items():
        if isinstance(value, bytes):
            data = np.frombuffer(value, dtype=np.uint8)
            if key not in generator:
                generator.create_dataset(key, data=data, maxshape=(None,), chunks=(min(max(len(data), 1), 65536),))
            else:
                generator[key].resize((len(data),))
                generator[key][...] = data
            generator[key].attrs["bytes"] = True
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
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


class RunFile:
    """A run file opened for reading; use as a context manager.

    Raises RunFileError (one line, for the user) if ``path`` is not a readable
    hpcopt run file of this layout version.
    """

    def __init__(self, path):
        self.path = path
        if not os.path.exists(path):
            raise RunFileError(f"{path}: no such file")
        try:
            self.file = h5py.File(path, "r")
        except OSError as err:
            raise RunFileError(f"{path}: not an HDF5 file ({err})") from err
        attrs = self.file.attrs
        if _plain(attrs.get("format")) != FORMAT:
            self.file.close()
            raise RunFileError(f"{path}: not an hpcopt run file (no format='{FORMAT}' attribute)")
        version = _plain(attrs.get("layout_version"))
        if version != LAYOUT_VERSION:
            self.file.close()
            raise RunFileError(
                f"{path}: run file layout version {version}, this hpcopt reads version {LAYOUT_VERSION}"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.file.close()

    @property
    def attrs(self):
        return {key: _plain(value) for key, value in self.file.attrs.items()}

    @property
    def config(self):
        return json.loads(self.attrs["config"])

    def __len__(self):
        """Number of complete generations stored."""
        return len(self.file["generations"])

    def generation(self, index):
        """Generation ``index`` (negative counts from the end) as a Generation."""
        n = len(self)
        if not -n <= index < n:
            raise RunFileError(f"{self.path}: generation {index} does not exist ({n} stored)")
        group = self.file["generations"][generation_name(index % n)]
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
        )

    def state(self):
        """The saved state: {"generator": {...}, other keys: scalars}."""
        group = self.file["state"]
        state = {key: _plain(value) for key, value in group.attrs.items()}
        generator = {key: _plain(value) for key, value in group["generator"].attrs.items()}
        for key, dataset in group["generator"].items():
            value = dataset[()]
            generator[key] = value.tobytes() if dataset.attrs.get("bytes", False) else value
        state["generator"] = generator
        return state
