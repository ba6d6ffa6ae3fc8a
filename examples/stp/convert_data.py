"""Convert BluePyOpt's in-vitro trace (a pickle) into examples/stp/trace.npz, once.

    .venv/bin/python examples/stp/convert_data.py [PATH/TO/trace.pkl] [-o OUTPUT.npz]

The default input is tests/corpus.py's copy of BluePyOpt 1.14.26's
examples/tsodyksmarkramstp/trace.pkl (fetched from PyPI on first use). That file is
the only one ever unpickled here: a one-off conversion of a file from BluePyOpt's
source distribution, read the way its notebook reads it (latin1, a Python 2
pickle). The example itself only reads trace.npz, with allow_pickle=False.

trace.npz holds the pickle's three float64 arrays unchanged: ``t`` (s, 13000
samples), ``v`` (soma voltage, V) and ``tstim`` (presynaptic stimulus times, s).
"""

import argparse
import hashlib
import os
import pickle
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "trace.npz")
NAMES = ("t", "v", "tstim")


def upstream_trace():
    """The path of BluePyOpt's trace.pkl, fetched by tests/corpus.py if needed."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
    import corpus

    return os.path.join(corpus.examples(), "tsodyksmarkramstp", "trace.pkl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="BluePyOpt's trace.pkl (default: tests/corpus.py's copy)")
    parser.add_argument("-o", "--output", default=OUTPUT, help="default: trace.npz beside this script")
    args = parser.parse_args()
    source = args.source or upstream_trace()
    with open(source, "rb") as f:
        unpickler = pickle.Unpickler(f, encoding="latin1")
        trace = unpickler.load()
    if sorted(trace) != sorted(NAMES):
        sys.exit(f"{source}: expected the arrays {', '.join(NAMES)}, found {sorted(trace)}")
    arrays = {name: np.ascontiguousarray(trace[name], dtype=np.float64) for name in NAMES}
    for name, array in arrays.items():
        if not np.array_equal(array, trace[name]):
            sys.exit(f"{source}: {name} is not exactly representable as float64")
    np.savez_compressed(args.output, **arrays)
    with np.load(args.output, allow_pickle=False) as saved:
        assert all(np.array_equal(saved[name], arrays[name]) for name in NAMES)
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"{source} (sha256 {digest})")
    for name, array in arrays.items():
        print(f"  {name}: {array.shape[0]} samples, {array.min():.6g} .. {array.max():.6g}")
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")


if __name__ == "__main__":
    main()
