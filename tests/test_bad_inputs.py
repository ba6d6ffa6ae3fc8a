"""Every bad input is one line: a config, parameter, morphology or run file that is
damaged or of the wrong kind, an output path that cannot be a run file, a full disk.
Each gives exit status 2 and one line on stderr naming the file (and field), and
loses nothing: no half-written file, no lock file, a run file left as it was."""

import errno
import hashlib
import json
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from conftest import HERE, hpcopt, write_config, zdt1_problem


def refused(done, *words):
    """Exit 2, one non-empty stderr line, containing each of ``words``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].strip(), done.stderr
    assert "Traceback" not in done.stderr and all(str(w) in lines[0] for w in words), (words, done.stderr)
    return lines[0]


def zdt1(tmp_path, population=4, generations=2, problem=None):
    return write_config(tmp_path, problem=problem or zdt1_problem(2),
                        optimizer={"algorithm": "ibea", "population": population, "generations": generations})


def cell(tmp_path, change):
    """examples/cell (CMA-ES, one generation of 2) after ``change(cell section)``."""
    raw = json.load(open(f"{HERE}/../examples/cell/config.json"))
    change(raw["problem"]["cell"])
    for name in os.listdir(f"{HERE}/../examples/cell"):
        if not name.endswith(".json"):
            shutil.copy(f"{HERE}/../examples/cell/{name}", tmp_path)
    return write_config(tmp_path, problem=raw["problem"],
                        optimizer={"algorithm": "cmaes", "population": 2, "generations": 1})


def nothing_written(tmp_path, *kept):
    left = sorted(set(os.listdir(tmp_path)) - set(kept))
    assert not [n for n in left if n.endswith((".h5", ".lock", ".journal")) or n.startswith(".")], left


@pytest.mark.parametrize("command", ["validate", "run", "evaluate"])
def test_a_file_that_is_not_utf8(tmp_path, command):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    if command == "evaluate":
        done = hpcopt("evaluate", zdt1(tmp_path), "--params", bad, check=False)
    else:
        done = hpcopt(command, bad, *(["-o", tmp_path / "run.h5"] if command == "run" else []), check=False)
    refused(done, bad, "not UTF-8")
    nothing_written(tmp_path)


def _first_protocol(cell_section):
    return cell_section["protocols"][next(iter(cell_section["protocols"]))]


@pytest.mark.parametrize("key, value, field", [
    ("extra_recordings", 5, "extra_recordings"),
    ("extra_recordings", {"name": "dend"}, "extra_recordings"),
    ("recordings", "soma", "recordings"),
    ("times", 5, "stimuli.0.times"),
    ("times", [0, "a"], "stimuli.0.times.1"),
    ("times", [[0], [1]], "stimuli.0.times.0"),
    ("currents", None, "stimuli.0.currents"),
])
def test_wrong_types_in_recordings_and_waveforms(tmp_path, key, value, field):
    def change(c):
        protocol = _first_protocol(c)
        if key in ("times", "currents"):
            waveform = {"type": "waveform", "times": [0, 100], "currents": [0, 0.1], "totduration": 100}
            protocol["stimuli"] = [{**waveform, key: value}]
        else:
            protocol[key] = value
    path = cell(tmp_path, change)
    refused(hpcopt("validate", path, check=False), path, "problem.cell.protocols.", f".{field}: expected")


@pytest.mark.parametrize("content", [b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4, b"hello morphology\n",
                                     b"1 1 0 0 0 nan -1\n", None])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_unreadable_morphology_file(tmp_path, content, command):
    swc = tmp_path / "cell.swc"
    if content is None:  # a file without read permission
        if os.geteuid() == 0:
            pytest.skip("root reads a file without read permission")
        swc.write_text("1 1 0 0 0 10 -1\n")
        swc.chmod(0)
    else:
        swc.write_bytes(content)

    def change(c):
        c["morphology"] = {"file": "cell.swc"}
    path = cell(tmp_path, change)
    done = hpcopt(command, path, *(["-o", tmp_path / "run.h5"] if command == "run" else []), check=False)
    refused(done, "problem.cell.morphology.file", swc)
    nothing_written(tmp_path)


@pytest.mark.parametrize("output, overwrite", [("out/", False), ("out", False), ("new/", False), ("out", True),
                                               ("out/", True)])
def test_an_output_path_that_is_a_directory(tmp_path, output, overwrite):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("keep\n")
    done = hpcopt("run", zdt1(tmp_path), "-o", f"{tmp_path}/{output}", *(["--overwrite"] if overwrite else []),
                  check=False)
    refused(done, output, "names a directory")
    assert os.listdir(tmp_path / "out") == ["keep"] and not (tmp_path / "new").exists()
    nothing_written(tmp_path)


@pytest.mark.parametrize("algorithm, key, maximum", [("ibea", "population", "10,000"),
                                                     ("ibea", "offspring", "10,000"),
                                                     ("cmaes", "population", "100,000")])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_huge_population_is_refused_with_the_maximum(tmp_path, algorithm, key, maximum, command):
    optimizer = {"algorithm": algorithm, "population": 4, "generations": 1, key: 10**9}
    path = write_config(tmp_path, problem=zdt1_problem(2), optimizer=optimizer)
    done = hpcopt(command, path, *(["-o", tmp_path / "run.h5"] if command == "run" else []), check=False)
    refused(done, path, f"optimizer.{key}: must be <= {maximum}")
    nothing_written(tmp_path)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("good")
    hpcopt("run", zdt1(directory), "-o", directory / "run.h5")
    return directory / "run.h5"


def _replace(dataset_path, data):
    def damage(f):
        del f[dataset_path]
        f[dataset_path] = data
    return damage


def _zero_start(path):
    with open(path, "r+b") as f:
        f.write(b"\0" * 4096)


DAMAGES = {
    "no generations": (lambda f: f.__delitem__("generations"), "no /generations group"),
    "no state": (lambda f: f.__delitem__("state"), "no /state group"),
    "no config": (lambda f: f.attrs.__delitem__("config"), "no 'config' attribute"),
    "config not JSON": (lambda f: f.attrs.__setitem__("config", "{not json"), "'config' attribute is not JSON"),
    "config a list": (lambda f: f.attrs.__setitem__("config", "[1, 2]"), "'config' attribute is not an object"),
    "zeroed start": (None, "not an HDF5 file"),
    "objectives 1-D": (_replace("generations/000001/objectives", np.zeros(4)),
                       "generations/000001/objectives: expected shape (4, 2), found (4,)"),
    "parameters short": (_replace("generations/000000/parameters", np.zeros((3, 2))),
                         "generations/000000/parameters: expected shape (4, 2), found (3, 2)"),
    "score 2-D": (_replace("generations/000001/score", np.zeros((4, 2))),
                  "generations/000001/score: expected shape (n,), found (4, 2)"),
    "no error dataset": (lambda f: f.__delitem__("generations/000000/error"), "no dataset 'error'"),
}
COMMANDS = {
    "best": lambda run, d: ["best", run],
    "status": lambda run, d: ["status", run],
    "report": lambda run, d: ["report", run, "-o", d / "report", "--no-traces"],
    "export": lambda run, d: ["export", run, "--json", d / "p.json"],
    "resume": lambda run, d: ["resume", run, "--generations", 3],
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_file_is_one_line_and_stays_as_it_was(tmp_path, good_run, damage):
    change, message = DAMAGES[damage]
    run = tmp_path / "run.h5"
    shutil.copy(good_run, run)
    if change is None:
        _zero_start(run)
    else:
        with h5py.File(run, "r+") as f:
            change(f)
    before = hashlib.sha256(run.read_bytes()).hexdigest(), os.stat(run).st_mtime_ns
    for command, arguments in COMMANDS.items():
        refused(hpcopt(*arguments(run, tmp_path), check=False), run, message)
        assert (hashlib.sha256(run.read_bytes()).hexdigest(), os.stat(run).st_mtime_ns) == before, command
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]  # no lock, journal, report or export


# (HDF5 file locking, disk size, generations the run file holds at least). FALSE: the split
# layout (docs/runfile.md). With locking on, these disks filled while HDF5 wrote the shadow
# file: HDF5 printed errors for each of its objects and the process crashed (SIGSEGV, every
# time), until the checkpoint reserved its room first. 380 KiB: the first checkpoint fits
# even when the journal holds two generations' lines by then.
@pytest.mark.parametrize("locking, size, written_at_least", [("TRUE", "200k", 0), ("TRUE", "380k", 1),
                                                             ("FALSE", "300k", 1)])
def test_a_full_disk_while_checkpointing(tmp_path, locking, size, written_at_least):
    """A real full disk (a small tmpfs): the run stops with one line naming the file it
    could not write (no HDF5 errors after it, no crash: exit 2); the run file holds its
    last checkpoint, which resumes elsewhere to the same result as an uninterrupted run."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {mounted.stderr.strip()}")
    problem = zdt1_problem(30)
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 100,
                                                               "generations": 20})
    try:
        done = hpcopt("run", path, "-o", disk / "run.h5", "-q", check=False, env={"HDF5_USE_FILE_LOCKING": locking})
        line = refused(done, disk / "run.h5", "No space left on device", "holds the last checkpoint, intact")
        with h5py.File(disk / "run.h5", "r") as f:
            written = f["state"].attrs["next_generation"]
            assert written_at_least <= written < 20 and len(f["generations"]) == written
        for name in ("run.h5", "run.h5.journal"):
            shutil.copy(disk / name, tmp_path / name)
        if locking == "FALSE":
            shutil.copytree(disk / "run.h5.generations", tmp_path / "run.h5.generations",
                            ignore=shutil.ignore_patterns(".*"))
        assert not [n for n in os.listdir(disk) if n.startswith(".")], (line, os.listdir(disk))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    hpcopt("resume", tmp_path / "run.h5")
    reference = tmp_path / "reference"
    reference.mkdir()
    hpcopt("run", path, "-o", reference / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as a, h5py.File(reference / "run.h5", "r") as b:
        assert np.array_equal(a["generations/000019/parameters"][()], b["generations/000019/parameters"][()])


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_one(tmp_path, monkeypatch):
    """The Writer's own path (on a real full disk the journal usually fails first)."""
    from hpcopt.errors import RunFileError
    from hpcopt.store import runfile

    path = tmp_path / "run.h5"
    runfile.create(path, {"config": "{}"}, np.zeros(2), np.ones(2), {"algorithm": "ibea", "generator": {}})
    before = path.read_bytes()

    def full(group, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runfile, "_write_generation", full)
    record = runfile.Generation(0, np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros(1),
                                np.zeros(1), [""], 0.0, 1.0)
    with pytest.raises(RunFileError, match=r"run.h5: cannot write the checkpoint \(No space left on device\); "
                                           r"the run file still holds the last checkpoint, intact"):
        runfile.checkpoint(path, [record], {"algorithm": "ibea", "generator": {}})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["run.h5"]


def test_names_with_dollars_are_drawn_as_written(tmp_path):
    """$...$ is matplotlib's mathtext: an invalid one ($\\notacommand$) broke the report."""
    problem = {"function": "models:named_pair", "parameters": {"$\\notacommand$": [0, 1], "$x^$": [0, 1]},
               "objectives": ["$f_{$", "$\\alpha$"]}
    hpcopt("run", zdt1(tmp_path, problem=problem), "-o", tmp_path / "run.h5")
    done = hpcopt("report", tmp_path / "run.h5", "-o", tmp_path / "report")
    assert "Traceback" not in done.stderr
    figures = sorted(n for n in os.listdir(tmp_path / "report") if n.endswith(".png"))
    assert figures == ["convergence.png", "eval_times.png", "objectives.png", "pairs.png", "parameters.png",
                       "pareto.png", "spread.png", "timeline.png"], figures
    assert "$\\notacommand$" in (tmp_path / "report" / "index.html").read_text()
