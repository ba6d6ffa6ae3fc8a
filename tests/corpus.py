"""Real models hpcopt did not write: BluePyOpt's examples, as its source distribution on
PyPI ships them (nothing of them is committed here).

``examples()`` returns the folder of the unpacked ``examples/`` of bluepyopt VERSION,
fetching it once with ``pip download`` into a cache: $HPCOPT_CORPUS, else
~/.cache/hpcopt/corpus. Unpacked into a temporary folder and renamed into place, so
concurrent callers never see half an example.

    python tests/corpus.py        # fetch (if needed) and print the folder
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

VERSION = "1.14.26"


def cache():
    return os.environ.get("HPCOPT_CORPUS") or os.path.join(os.path.expanduser("~"), ".cache", "hpcopt", "corpus")


def examples():
    """The folder holding BluePyOpt VERSION's examples (l5pc, simplecell, stochkv, ...)."""
    target = os.path.join(cache(), f"bluepyopt-{VERSION}", "examples")
    if os.path.isdir(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".fetch-", dir=os.path.dirname(target))
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                               ":all:", f"bluepyopt=={VERSION}", "-d", work], capture_output=True, text=True)
        archives = [n for n in os.listdir(work) if n.endswith((".tar.gz", ".zip"))]
        if done.returncode != 0 or not archives:
            raise RuntimeError(f"pip download bluepyopt=={VERSION} failed: {done.stderr.strip()[-500:]}")
        with tarfile.open(os.path.join(work, archives[0])) as archive:
            members = [m for m in archive.getmembers()
                       if m.name.split("/")[1:2] == ["examples"] and (m.isfile() or m.isdir())]
            archive.extractall(work, members=members, filter="data")
        unpacked = os.path.join(work, archives[0].rsplit(".tar.gz", 1)[0], "examples")
        try:
            os.rename(unpacked, target)
        except OSError:
            if not os.path.isdir(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def copy(example, destination):
    """A private, writable copy of one example (``nrnivmodl`` writes into it)."""
    path = os.path.join(str(destination), example)
    shutil.copytree(os.path.join(examples(), example), path)
    return path


if __name__ == "__main__":
    print(examples())
