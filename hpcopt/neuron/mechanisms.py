"""The model's own mechanisms (.mod files): compiled once, loaded by every rank."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from . import session


def compiled(mod_dir, cache=None):
    """The directory with ``mod_dir``'s mechanisms compiled, compiling them if needed.

    Compiled once into ``<cache>/<hash of the sources and NEURON version>``: built in
    a temporary directory beside it and renamed into place, so ranks or jobs
    starting at the same moment never build into the same directory; whoever
    loses the rename uses the winner's build.
    """
    mods = sorted(glob.glob(os.path.join(mod_dir, "*.mod")))
    digest = hashlib.sha256(session.version().encode())
    for path in mods:
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = cache or os.environ.get("HPCOPT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hpcopt")
    target = os.path.join(cache, "mechanisms-" + digest.hexdigest()[:16])
    if library(target):
        return target
    os.makedirs(cache, exist_ok=True)
    build = tempfile.mkdtemp(prefix=".build-", dir=cache)
    try:
        for path in mods:
            shutil.copy(path, build)
        nrnivmodl = shutil.which("nrnivmodl") or os.path.join(os.path.dirname(sys.executable), "nrnivmodl")
        done = subprocess.run([nrnivmodl], cwd=build, capture_output=True, text=True)
        if done.returncode != 0 or not library(build):
            errors = [line for line in (done.stdout + done.stderr).splitlines() if "rror" in line]
            raise session.SetupError(f"{mod_dir}: nrnivmodl failed: {' / '.join(errors[:3]) or done.stderr[-300:]}")
        try:
            os.rename(build, target)
        except OSError:
            if not library(target):
                raise
    finally:
        if os.path.exists(build):
            shutil.rmtree(build, ignore_errors=True)
    return target


def library(directory):
    """The compiled libnrnmech.so in ``directory`` ('' if none)."""
    found = glob.glob(os.path.join(directory, "*", ".libs", "libnrnmech.so")) + glob.glob(
        os.path.join(directory, "*", "libnrnmech.so"))
    return found[0] if found else ""


_loaded = set()


def load(directory):
    """Load the mechanisms compiled in ``directory`` into this process (once)."""
    h = session.neuron()
    found = library(directory)
    if found not in _loaded:
        h.nrn_load_dll(found)
        _loaded.add(found)


def known(h, name):
    """Whether ``name`` is a density mechanism NEURON knows (built in or loaded)."""
    table = h.MechanismType(0)
    found = h.ref("")
    for i in range(int(table.count())):
        table.select(i)
        table.selected(found)
        if found[0] == name:
            return True
    return False
