"""The model's own mechanisms (.mod files): compiled once, loaded by every rank.

Every regular file of the mod folder is copied to the build and hashed (nrnivmodl
also reads what the .mod files INCLUDE), so an edited include rebuilds.

NEURON may hold mechanisms before hpcopt loads any: at import it loads
``./x86_64`` (or ``./arm64``) of the working directory, where a user ran
``nrnivmodl mechanisms`` as BluePyOpt's examples say, or what ``NRNMECH_LIB_PATH``
names. ``load`` finds out which (the libraries mapped into this process, and the
sources nrnivmodl recorded beside them): built from the same files, they are used
as they are; mechanisms of the same names from other files stop the run with one
line that says what to do, before any rank simulates.
"""

import glob
import hashlib
import os
import re
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
    sources = _sources(mod_dir)
    digest = hashlib.sha256(session.version().encode())
    for path in sources:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    cache = cache or os.environ.get("HPCOPT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hpcopt")
    target = os.path.join(cache, "mechanisms-" + digest.hexdigest()[:16])
    if library(target):
        _check_owner(target, library(target))
        return target
    os.makedirs(cache, exist_ok=True)
    build = tempfile.mkdtemp(prefix=".build-", dir=cache)
    try:
        for path in sources:
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


def _check_owner(*paths):
    """A build is loaded into every rank: in a shared cache, only one of the user's (or
    root's) that nobody else can write to (the hash of the sources is predictable)."""
    for path in paths:
        info = os.stat(path)
        if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o002:
            raise session.SetupError(
                f"{path}: a mechanisms build that is not yours or that others can write to; hpcopt will not "
                "load it. Remove it, or set HPCOPT_CACHE to a folder of your own")


def library(directory):
    """The compiled libnrnmech.so in ``directory`` ('' if none)."""
    found = glob.glob(os.path.join(directory, "*", ".libs", "libnrnmech.so")) + glob.glob(
        os.path.join(directory, "*", "libnrnmech.so"))
    return found[0] if found else ""


def _sources(mod_dir):
    """Every regular file of ``mod_dir`` (.mod files and what they include), sorted."""
    return sorted(p for p in glob.glob(os.path.join(mod_dir, "*")) if os.path.isfile(p))


def defined(mod_dir):
    """The mechanism names (SUFFIX, POINT_PROCESS, ARTIFICIAL_CELL) the .mod files of ``mod_dir`` define."""
    names = []
    for path in sorted(glob.glob(os.path.join(mod_dir, "*.mod"))) if mod_dir else []:
        with open(path, encoding="utf-8", errors="replace") as f:
            names += re.findall(r"^\s*(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", f.read(), re.M)
    return names


def mapped_libraries(maps="/proc/self/maps"):
    """The libnrnmech.so files this process has loaded."""
    try:
        with open(maps) as f:
            paths = {line.split()[-1] for line in f if "libnrnmech" in line and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith("libnrnmech"))


def compiled_from(library_path):
    """The folder of .mod files that nrnivmodl compiled ``library_path`` from, as it
    recorded it beside the library (makemod2c_inc), or '' if it cannot be told."""
    directory = os.path.dirname(library_path)
    if os.path.basename(directory) == ".libs":
        directory = os.path.dirname(directory)
    try:
        with open(os.path.join(directory, "makemod2c_inc"), encoding="utf-8", errors="replace") as f:
            found = re.findall(r'\(cd "([^"]+)";', f.read())
    except OSError:
        return ""
    folders = {os.path.normpath(os.path.join(directory, d)) for d in found}
    return folders.pop() if len(folders) == 1 else ""


def same_sources(a, b):
    """Whether mod folders ``a`` and ``b`` hold the same .mod files, and the same files
    beside them wherever both have one."""
    mods = [sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.mod"))) for d in (a, b)]
    if mods[0] != mods[1]:
        return False
    for path in _sources(a):
        other = os.path.join(b, os.path.basename(path))
        if (path.endswith(".mod") or os.path.isfile(other)) and not _same_bytes(path, other):
            return False
    return True


def _same_bytes(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


_loaded = set()


def load(mod_dir):
    """Make ``mod_dir``'s mechanisms available in this process (once): hpcopt's build of
    them, or the same ones NEURON loaded already. SetupError where NEURON already holds
    mechanisms of these names built from other files."""
    h = session.neuron()
    ours = library(compiled(mod_dir))
    if ours in _loaded:
        return
    wanted = set(defined(mod_dir))
    for other in mapped_libraries():
        if other == ours or other in _loaded:
            continue
        sources = compiled_from(other)
        clash = sorted(wanted & set(defined(sources))) if sources else sorted(n for n in wanted if known(h, n))
        if not clash:
            continue
        if sources and same_sources(mod_dir, sources) and os.path.getmtime(other) >= _newest(sources):
            _loaded.update((ours, other))  # NEURON loaded a build of the same files: use it
            return
        where = f"compiled from {sources}" if sources else "of unknown origin"
        raise session.SetupError(
            f"{mod_dir}: NEURON already loaded mechanisms {', '.join(clash[:4])}{' ...' if len(clash) > 4 else ''} "
            f"from {other} ({where}), which are not a current build of these files. Run hpcopt from another "
            f"folder, or remove {os.path.dirname(other).removesuffix('/.libs')} (or recompile it there with "
            f"'nrnivmodl {mod_dir}'), or unset NRNMECH_LIB_PATH")
    h.nrn_load_dll(ours)
    _loaded.add(ours)


def _newest(mod_dir):
    return max((os.path.getmtime(p) for p in _sources(mod_dir)), default=0.0)


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
