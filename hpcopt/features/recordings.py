"""Recordings of experiments, measured with the features of a cell config
(``hpcopt targets --recordings DIR``).

Layout: one folder per protocol that has features, named as the protocol, holding
one CSV file per repetition (``DIR/PROTOCOL/*.csv``, read in name order; other
files and folders are ignored). Each file has a header line and one row per
sample: ``t`` (ms, non-decreasing), ``v`` (mV, the soma), a column named after each
other recording whose features the config lists (``dend1``), and optionally ``i``
(nA, the injected current: kept for your records, not read; the feature windows
and eFEL settings are the config's).
"""

import csv
import math
import os

import numpy as np

from ..errors import ConfigError
from .scoring import Scorer

TIME, SOMA, CURRENT = "t", "v", "i"


def values(model, directory):
    """{feature name: [one value per repetition, NaN where eFEL found none]} of the
    features of ``model`` (config.cell.CellModel), and {protocol: repetitions}.

    A feature's value in a repetition is the mean of what eFEL returns for it, in the
    feature's window with its threshold and settings, as a run measures a model.
    """
    if not os.path.isdir(directory):
        raise ConfigError(directory, "--recordings: no such folder")
    found, counts = {}, {}
    for protocol in dict.fromkeys(f.protocol for f in model.features):
        features = tuple(f for f in model.features if f.protocol == protocol)
        needed = tuple(dict.fromkeys(f.recording for f in features))
        scorer = Scorer(features, math.nan)
        files = _repetitions(directory, protocol)
        counts[protocol] = len(files)
        for path in files:
            traces = _read(path, needed)
            _, means, _ = scorer({(protocol, name): trace for name, trace in traces.items()})
            for f, mean in zip(features, means):
                found.setdefault(f.name, []).append(float(mean))
    return found, counts


def _repetitions(directory, protocol):
    folder = os.path.join(directory, protocol)
    if not os.path.isdir(folder):
        raise ConfigError(folder, f"missing: the recordings of protocol {protocol!r} (one CSV file per "
                                  "repetition, columns t, v)")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(".csv"))
    if not files:
        raise ConfigError(folder, f"no .csv file: the recordings of protocol {protocol!r} (one per repetition)")
    return files


def _read(path, needed):
    """{recording: (t, values)} of the CSV file ``path`` for the recordings ``needed``."""
    columns = {"soma" if name == SOMA else name: i for i, name in enumerate(_header(path))}
    wanted = [TIME] + [name for name in needed]
    missing = [SOMA if name == "soma" else name for name in wanted if name not in columns]
    if missing:
        expected = ", ".join(SOMA if name == "soma" else name for name in wanted)
        raise ConfigError(path, f"no column {', '.join(missing)}: expected a header line naming the columns "
                                f"{expected} (t in ms, v in mV at the soma, one column per other recording) "
                                f"and optionally {CURRENT}; found {', '.join(_header(path))}")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    data = np.empty((len(rows), len(wanted)))
    for number, row in enumerate(rows, 2):
        try:
            data[number - 2] = [float(row[columns[name]]) for name in wanted]
        except (ValueError, IndexError):
            shown = ", ".join(SOMA if name == "soma" else name for name in wanted)
            raise ConfigError(path, f"line {number}: expected numbers in columns {shown}, found "
                                    f"{','.join(row)[:60]!r}") from None
    if len(data) < 2 or not np.isfinite(data).all() or (np.diff(data[:, 0]) < 0).any():
        raise ConfigError(path, "expected at least two rows of finite numbers, t (ms) non-decreasing")
    return {name: (data[:, 0], data[:, j]) for j, name in enumerate(wanted) if j}


def _header(path):
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = next(csv.reader(f), [])
    except OSError as err:
        raise ConfigError(path, f"cannot read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "not a UTF-8 text (CSV) file") from None
    names = [name.strip() for name in first]
    if len(set(names)) != len(names):
        raise ConfigError(path, f"a column named twice in the header {','.join(names)}")
    return names
