"""The run file: required layout, checkpoint cadence, atomic writes, best."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import assert_same_results, hpcopt, write_config, zdt1_problem

from hpcopt.errors import RunFileError
from hpcopt.store import runfile

OPTIMIZER = {"algorithm": "ibea", "population": 6, "generations": 4, "seed": 2}


def serial(problem):
    """The real evaluator on one process."""
    from hpcopt.execute.executor import SerialExecutor

    return SerialExecutor(problem.evaluator())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("layout")
    path = write_config(directory, problem=zdt1_problem(3), optimizer=OPTIMIZER)
    hpcopt("run", path, "-o", directory / "run.h5")
    return directory / "run.h5"


def test_required_layout(run):
    with h5py.File(run, "r") as f:
        attrs = f.attrs
        assert list(attrs["parameter_names"]) == ["x0", "x1", "x2"]
        assert list(attrs["objective_names"]) == ["f1", "f2"]
        assert json.loads(attrs["config"])["optimizer"]["population"] == 6
        assert attrs["layout_version"] == runfile.LAYOUT_VERSION and attrs["format"] == "hpcopt-run"
        for package in ("hpcopt", "numpy", "cma", "mpi4py", "h5py"):
            assert attrs[f"{package}_version"]
        assert list(f["generations"]) == ["000000", "000001", "000002", "000003"]
        start = 0.0
        for g in f["generations"].values():
            assert g["parameters"].shape == (6, 3) and g["objectives"].shape == (6, 2)
            assert g["eval_seconds"].shape == g["rank"].shape == g["status"].shape == (6,)
            assert np.all(g["parameters"][()] >= 0) and np.all(g["parameters"][()] <= 1)
            assert start <= g.attrs["start_time"] <= g.attrs["end_time"]
            start = g.attrs["end_time"]
        assert f["state"].attrs["next_generation"] == 4
        assert "generator" in f["state"]


def test_physical_values_are_stored(tmp_path):
    problem = {**zdt1_problem(2), "function": "hpcopt.testfunctions:sphere", "objectives": ["f_x0", "f_x1"],
               "parameters": {"x0": [-3, -1], "x1": [10, 20]}}
    path = write_config(tmp_path, problem=problem, optimizer={**OPTIMIZER, "generations": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        X, F = f["generations/000000/parameters"][()], f["generations/000000/objectives"][()]
    assert np.all((X[:, 0] >= -3) & (X[:, 0] <= -1) & (X[:, 1] >= 10) & (X[:, 1] <= 20))
    assert np.array_equal(F, X ** 2)


@pytest.mark.parametrize("every, generations, writes", [
    ({"every_generations": 3}, 7, [3, 6, 7]),
    ({"every_generations": 1}, 3, [1, 2, 3]),
    ({"every_generations": 1000, "every_seconds": 1e-9}, 3, [1, 2, 3]),
    ({"every_generations": 1000, "every_seconds": 3600}, 3, [3]),
])
def test_checkpoint_cadence(tmp_path, monkeypatch, every, generations, writes):
    """The file is written after every k-th generation, when s seconds have passed
    since the last write, and after the last generation."""
    seen = []
    real = runfile.Writer.checkpoint

    def spy(writer, records, state, attrs=None):
        seen.append(state["next_generation"])
        real(writer, records, state, attrs)

    monkeypatch.setattr(runfile.Writer, "checkpoint", spy)
    from hpcopt import config as configuration
    from hpcopt.execute import loop as driver
    from hpcopt.problem.space import Problem

    raw = {"problem": zdt1_problem(3), "optimizer": {**OPTIMIZER, "generations": generations},
           "checkpoint": every}
    c = configuration.parse(raw)
    problem = Problem(c)
    path = str(tmp_path / "run.h5")
    driver.start(path, c, problem, {})
    assert driver.Loop(path, c, problem, serial(problem)).run() == driver.EXIT_DONE
    assert seen == writes
    with runfile.RunFile(path) as r:
        assert len(r) == generations


def test_interrupt_writes_a_complete_checkpoint(tmp_path):
    """With checkpoints every 100 generations, an interrupt still saves all done."""
    from hpcopt import config as configuration
    from hpcopt.execute import loop as driver
    from hpcopt.problem.space import Problem

    raw = {"problem": zdt1_problem(3), "optimizer": {**OPTIMIZER, "generations": 50},
           "checkpoint": {"every_generations": 100}}
    c = configuration.parse(raw)
    problem = Problem(c)
    path = str(tmp_path / "run.h5")
    driver.start(path, c, problem, {})
    evaluator = serial(problem)
    calls = []
    evaluate = evaluator.evaluate
    evaluator.evaluate = lambda x: calls.append(1) or evaluate(x)
    loop = driver.Loop(path, c, problem, evaluator, interrupted=lambda: len(calls) >= 3 * 6)
    assert loop.run() == driver.EXIT_INTERRUPTED
    with runfile.RunFile(path) as r:
        assert len(r) == 3 and r.state()["next_generation"] == 3


def test_best_matches_the_minimum_score(run):
    done = hpcopt("best", run, "--json")
    best = json.loads(done.stdout)
    with h5py.File(run, "r") as f:
        scores = np.concatenate([g["score"][()] for g in f["generations"].values()])
        g = f["generations"][f"{best['generation']:06d}"]
        assert best["score"] == scores.min() == g["score"][best["index"]]
        assert list(best["parameters"].values()) == list(g["parameters"][best["index"]])
        assert list(best["objectives"]) == ["f1", "f2"]


def test_best_of_an_empty_run_is_an_error(tmp_path):
    path = tmp_path / "empty.h5"
    runfile.create(path, {}, np.zeros(1), np.ones(1), {"algorithm": "ibea", "generator": {}})
    done = hpcopt("best", path, check=False)
    assert done.returncode == 2 and "no complete generation yet" in done.stderr


def test_atomic_write_leaves_the_old_file_when_building_fails(tmp_path):
    path = tmp_path / "run.h5"
    runfile.create(path, {"marker": 1}, np.zeros(1), np.ones(1), {"algorithm": "ibea", "generator": {}})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        runfile.checkpoint(path, [], {"algorithm": "ibea", "generator": {"bad": object()}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]  # no temporary left


def test_generation_index_past_the_end(run):
    with runfile.RunFile(run) as r:
        assert r.generation(-1).index == 3
        with pytest.raises(RunFileError, match="generation 4 does not exist"):
            r.generation(4)


def _record(index, n=5, d=2, m=3):
    rng = np.random.default_rng(index)
    return runfile.Generation(
        index=index, parameters=rng.random((n, d)), objectives=rng.random((n, m)), scores=rng.random(n),
        eval_seconds=rng.random(n), ranks=np.arange(n, dtype=np.int32), status=np.zeros(n, dtype=np.uint8),
        errors=[""] * n, start_time=float(index), end_time=index + 0.5, features=rng.random((n, 4)),
    )


def _state(index):
    return {"algorithm": "ibea", "next_generation": index + 1,
            "generator": {"rng": bytes([index % 256]) * (10 + index), "x": np.full(3, float(index))}}


def _contents(path):
    """Everything in a run file, as plain values (the state's generator included)."""
    with runfile.RunFile(path) as r:
        generations = [r.generation(i) for i in range(len(r))]
        return r.attrs, r.state(), [(g.index, g.parameters.tolist(), g.objectives.tolist(), g.features.tolist(),
                                     g.errors, g.start_time) for g in generations]


def _same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "generator":
            assert a[key].keys() == b[key].keys()
            for k, value in a[key].items():
                assert np.array_equal(value, b[key][k]) if isinstance(value, np.ndarray) else value == b[key][k]
        else:
            assert a[key] == b[key]


def test_writer_appends_without_copying_and_equals_full_copies(tmp_path):
    """After the first checkpoint the Writer copies nothing whole; every checkpoint
    holds exactly what checkpoints made by whole-file copies hold."""
    shadowed, copied = tmp_path / "a" / "run.h5", tmp_path / "b" / "run.h5"
    for path in (shadowed, copied):
        path.parent.mkdir()
        runfile.create(path, {"config": "{}"}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(shadowed)
    for g in range(0, 12, 2):
        records = [_record(g), _record(g + 1)]
        writer.checkpoint(records, _state(g + 1), {"config": json.dumps({"g": g})})
        runfile.checkpoint(copied, records, _state(g + 1), {"config": json.dumps({"g": g})})
        a, b = _contents(shadowed), _contents(copied)
        assert a[0] == b[0] and a[2] == b[2] and len(a[2]) == g + 2
        _same_state(a[1], b[1])
    assert writer.copied == 1
    assert (tmp_path / "a" / ".run.h5.shadow").exists()
    writer.close()
    assert sorted(p.name for p in shadowed.parent.iterdir()) == ["run.h5"]
    assert sorted(p.name for p in copied.parent.iterdir()) == ["run.h5"]
    # the shadow's in-place updates do not make the file grow beyond the copies' size
    assert shadowed.stat().st_size <= 1.1 * copied.stat().st_size


@pytest.mark.parametrize("forced", [None, "TRUE"])
def test_a_reader_keeps_its_snapshot_across_checkpoints(tmp_path, monkeypatch, forced):
    """A user's h5py session (another process) that opened the run file keeps reading
    the checkpoint it opened while the job writes more (the Writer then copies); also
    with HDF5_USE_FILE_LOCKING=TRUE, which overrides the Writer's locking=False."""
    if forced:
        monkeypatch.setenv("HDF5_USE_FILE_LOCKING", forced)
    else:
        monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    path = tmp_path / "run.h5"
    writer = _read_across_checkpoints(path)
    assert writer.copied == 2  # the first checkpoint, and the one that found the reader on the shadow
    writer.checkpoint([_record(6)], _state(6))
    assert writer.copied == 2
    assert _contents(path)[1]["next_generation"] == 7 and len(_contents(path)[2]) == 7


def _read_across_checkpoints(path):
    """A new run file at ``path`` with checkpoints 0 and 1; a reader (another process,
    HDF5's default file locking, as a user gets it) opens it, checkpoints 2 to 5 follow,
    and the reader must still see what it opened. Returns the Writer."""
    runfile.create(path, {}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(path)
    writer.checkpoint([_record(0)], _state(0))
    writer.checkpoint([_record(1)], _state(1))
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        opened = json.loads(reader.stdout.readline())
        for g in range(2, 6):
            writer.checkpoint([_record(g)], _state(g))
        later, _ = reader.communicate("\n", timeout=60)
    finally:
        reader.kill()
    assert json.loads(later) == opened == {"generations": ["000000", "000001"], "next": 2,
                                           "x": _record(1).parameters.tolist()}
    return writer


READER = """
import json, sys, h5py
f = h5py.File(sys.argv[1], "r")
def show():
    print(json.dumps({"generations": sorted(f["generations"]), "next": int(f["state"].attrs["next_generation"]),
                      "x": f["generations/000001/parameters"][()].tolist()}), flush=True)
show()
sys.stdin.readline()
show()
"""


def test_a_failed_checkpoint_after_shadowed_ones_keeps_the_file(tmp_path):
    path = tmp_path / "run.h5"
    runfile.create(path, {}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(path)
    writer.checkpoint([_record(0)], _state(0))
    writer.checkpoint([_record(1)], _state(1))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        writer.checkpoint([_record(2)], {"algorithm": "ibea", "generator": {"bad": object()}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    writer.checkpoint([_record(2)], _state(2))
    assert len(_contents(path)[2]) == 3 and writer.copied == 2


def test_journal_drops_a_line_cut_short_before_appending(tmp_path):
    """A kill or a full disk can cut the journal's last line short: the next session
    must not glue its first event to it."""
    from hpcopt.store.journal import Journal

    path = str(tmp_path / "run.h5")
    with open(path + ".journal", "w") as f:
        f.write('{"event": "session"}\n{"event": "done", "id": 1, "x": [0.')
    journal = Journal(path, outstanding=3)
    journal.abandoned(2)
    journal.close()
    again = Journal(path)
    journal_events = [e["event"] for e in again.entries]
    again.close()
    assert journal_events == ["session", "session", "abandoned"]


def test_without_hdf5_file_locking_checkpoints_write_only_what_is_new(tmp_path, monkeypatch):
    """Readers that take no lock cannot be seen, so nothing they may hold is modified:
    each checkpoint writes its generations once into a file of their own and replaces
    only the small run file linking to them (the split layout). It holds exactly what
    in-place checkpoints hold; when the run finishes it is one self-contained file again."""
    split, reference = tmp_path / "a" / "run.h5", tmp_path / "b" / "run.h5"
    for path in (split, reference):
        path.parent.mkdir()
        runfile.create(path, {"config": "{}"}, np.zeros(2), np.ones(2), _state(-1))
    in_place = runfile.Writer(reference)
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    assert not runfile.readers_are_seen(tmp_path)
    writer = runfile.Writer(split)
    sizes = []
    for g in range(0, 40, 2):
        records = [_record(g, n=200), _record(g + 1, n=200)]
        writer.checkpoint(records, _state(g + 1), {"config": json.dumps({"g": g})})
        in_place.checkpoint(records, _state(g + 1), {"config": json.dumps({"g": g})})
        a, b = _contents(split), _contents(reference)
        assert a[0] == b[0] and a[2] == b[2] and len(a[2]) == g + 2
        _same_state(a[1], b[1])
        sizes.append((split.stat().st_size, (split.parent / "run.h5.generations" / f"{g:06d}.h5").stat().st_size))
    assert writer.copied == 0
    pieces = sorted(p.name for p in (split.parent / "run.h5.generations").iterdir())
    assert pieces == [f"{g:06d}.h5" for g in range(0, 40, 2)]
    # what a checkpoint writes does not grow with the history: the run file by a link per generation
    assert max(size for _, size in sizes) <= 1.01 * min(size for _, size in sizes)
    assert sizes[-1][0] - sizes[0][0] < 300 * 40 and sizes[-1][0] < reference.stat().st_size / 20
    with h5py.File(split, "r") as f:  # a user's h5py session sees one file
        assert list(f["generations"]) == [f"{g:06d}" for g in range(40)]
        assert np.array_equal(f["generations/000013/parameters"][()], _record(13, n=200).parameters)
    writer.close(finished=True)
    in_place.close()
    assert sorted(p.name for p in split.parent.iterdir()) == ["run.h5"]
    a, b = _contents(split), _contents(reference)
    assert a[0] == b[0] and a[2] == b[2]
    _same_state(a[1], b[1])
    with h5py.File(split, "r") as f:
        assert not any(isinstance(f["generations"].get(n, getlink=True), h5py.ExternalLink) for n in f["generations"])


def test_without_file_locking_a_reader_keeps_its_snapshot(tmp_path, monkeypatch):
    """A user's h5py session that opened the run file while the job wrote it without
    locks keeps reading the checkpoint it opened, generation files included."""
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    path = tmp_path / "run.h5"
    _read_across_checkpoints(path)
    assert _contents(path)[1]["next_generation"] == 6 and len(_contents(path)[2]) == 6


def test_a_run_file_changes_layout_with_the_filesystem_and_keeps_everything(tmp_path, monkeypatch):
    """A run written in place, resumed without locks (its history moves to a generation
    file once), then with locks again (a mixed file), then finished: every generation
    and the last state are there, in one file."""
    path = tmp_path / "run.h5"
    runfile.create(path, {}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(path)
    for g in range(3):
        writer.checkpoint([_record(g)], _state(g))
    writer.close()
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    writer = runfile.Writer(path)
    for g in range(3, 6):
        writer.checkpoint([_record(g)], _state(g))
    assert writer.copied == 1
    assert sorted(p.name for p in (tmp_path / "run.h5.generations").iterdir()) == ["000000.h5", "000003.h5",
                                                                                   "000004.h5", "000005.h5"]
    writer.close()
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING")
    writer = runfile.Writer(path)
    for g in range(6, 8):
        writer.checkpoint([_record(g)], _state(g))
    assert len(_contents(path)[2]) == 8
    writer.close(finished=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    contents = _contents(path)
    assert [g[0] for g in contents[2]] == list(range(8)) and contents[1]["next_generation"] == 8
    assert contents[2][4][1] == _record(4).parameters.tolist()


def test_a_split_run_file_without_its_folder_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    path = tmp_path / "run.h5"
    runfile.create(path, {}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(path)
    writer.checkpoint([_record(0)], _state(0))
    (tmp_path / "run.h5.generations" / "000000.h5").unlink()
    with runfile.RunFile(path) as r, pytest.raises(RunFileError, match="generations/000000 is in "
                                                                       "run.h5.generations/000000.h5 beside it"):
        r.generation(0)


def test_a_failed_split_checkpoint_keeps_the_file(tmp_path, monkeypatch):
    """A checkpoint that fails after its generation file was written leaves the run file
    as it was; the next one writes that generation file again."""
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    path = tmp_path / "run.h5"
    runfile.create(path, {}, np.zeros(2), np.ones(2), _state(-1))
    writer = runfile.Writer(path)
    writer.checkpoint([_record(0)], _state(0))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        writer.checkpoint([_record(1)], {"algorithm": "ibea", "generator": {"bad": object()}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5", "run.h5.generations"]
    writer.checkpoint([_record(1)], _state(1))
    assert len(_contents(path)[2]) == 2


def test_a_run_without_file_locking_resumes_to_the_same_result_as_one_file(tmp_path, monkeypatch):
    """A run with HDF5 file locking off (as on GPFS or Lustre with localflock), stopped
    by a signal after 3 generations, is read by status, best and report while split and
    resumed (by hpcopt resume): the finished run is one file equal to a run with locking on."""
    from hpcopt import config as configuration
    from hpcopt.execute import loop as driver
    from hpcopt.problem.space import Problem

    raw = {"problem": zdt1_problem(3), "optimizer": {**OPTIMIZER, "generations": 6}}
    hpcopt("run", write_config(tmp_path, **raw), "-o", tmp_path / "whole.h5")
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    c = configuration.parse(raw)
    problem = Problem(c)
    split = tmp_path / "split.h5"
    driver.start(str(split), c, problem, {})
    evaluator = serial(problem)
    calls = []
    evaluate = evaluator.evaluate
    evaluator.evaluate = lambda x: calls.append(1) or evaluate(x)
    loop = driver.Loop(str(split), c, problem, evaluator, interrupted=lambda: len(calls) >= 3 * 6)
    assert loop.run() == driver.EXIT_INTERRUPTED
    assert sorted(p.name for p in (tmp_path / "split.h5.generations").iterdir()) == ["000000.h5", "000001.h5",
                                                                                    "000002.h5"]
    assert "3 of 6 done" in hpcopt("status", split, cwd="/").stdout
    assert json.loads(hpcopt("best", split, "--json", cwd="/").stdout)["generation"] <= 2
    hpcopt("report", split, "-o", tmp_path / "report", cwd="/")
    hpcopt("resume", split)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("split")) == ["split.h5"]
    assert_same_results(tmp_path / "whole.h5", split)


@pytest.mark.parametrize("fstype, options, seen", [
    ("ext4", "rw,relatime", True),
    ("xfs", "rw", True),
    ("lustre", "rw,flock,lazystatfs", True),
    ("lustre", "rw,localflock", False),
    ("lustre", "rw,noflock", False),
    ("nfs4", "rw,vers=4.2,local_lock=none", True),
    ("nfs", "rw,vers=3,local_lock=flock", False),
    ("nfs", "rw,vers=3,nolock", False),
    ("gpfs", "rw", False),
    ("beegfs", "rw", False),
    ("fuse.sshfs", "rw", False),
])
def test_in_place_updates_only_where_every_reader_is_seen(tmp_path, monkeypatch, fstype, options, seen):
    """A reader on a login node must hold a lock the job sees, or the job copies the
    whole file at every checkpoint: Lustre with flock, NFS with its lock service and
    local filesystems qualify; node-local locks and unknown filesystems do not."""
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/a\\040b /scratch\\040x {fstype} {options} 0 0\n")
    assert runfile.readers_are_seen("/scratch x/me/run", mounts) is seen
    assert runfile.readers_are_seen("/scratch xy", mounts) is True  # another directory, on /


def test_a_run_file_of_layout_1_is_read_but_not_resumed(tmp_path):
    path = write_config(tmp_path, problem=zdt1_problem(3), optimizer={**OPTIMIZER, "generations": 2})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r+") as f:
        f.attrs["layout_version"] = 1
    assert "generations   2 of 2 done" in hpcopt("status", tmp_path / "run.h5").stdout
    hpcopt("best", tmp_path / "run.h5", "--json")
    for ranks in (None, 2):
        done = hpcopt("resume", tmp_path / "run.h5", "--generations", 3, ranks=ranks, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "made by an earlier hpcopt (run file layout 1)" in done.stderr


def test_closing_a_journal_twice_is_harmless(tmp_path):
    """Loop.run closes its journal; a caller (benchmarks/rank0_cost.py) may close it again."""
    from hpcopt.store.journal import Journal

    journal = Journal(str(tmp_path / "run.h5"), outstanding=1)
    journal.close()
    journal.close()
