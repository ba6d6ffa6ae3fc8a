"""What users look at: `hpcopt status` (also of a file a running job is writing),
`hpcopt report` (figures that are not blank, a self-contained index.html), and
`hpcopt export` (a standalone NEURON model that scores exactly what the run stored)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import HERE, hpcopt, mpiexec, write_config

from hpcopt import config as configuration
from hpcopt.features import scoring as features
from hpcopt.results import status
from hpcopt.store import snapshot as runsnapshot

ROOT = os.path.dirname(HERE)
L5PC = os.path.join(HERE, "data", "l5pc_like")
CELL_FIGURES = ["convergence", "objectives", "parameters", "spread", "traces", "eval_times", "timeline"]


# every kind of stimulus hpcopt has, in one protocol, and features that see them
MIXED = {
    "stimuli": [
        {"type": "ramp", "delay": 20, "duration": 100, "amp": 0.0, "amp_end": 0.4},
        # ends before tstop: a waveform ending at tstop fails today ("integration stalled"; reported)
        {"type": "waveform", "times": [0, 50, 100, 170], "currents": [0, 0.05, -0.05, 0]},
        {"type": "synapse", "start": 130, "interval": 5, "number": 5, "weight": 0.01,
         "synapse": {"mechanism": "ExpSyn", "tau": 2, "e": 0},
         "location": {"type": "somadistance", "seclist_name": "apical", "somadistance": 100}},
    ],
    "tstop": 180, "stim_start": 20, "stim_end": 170,
}
MIXED_FEATURES = {"soma": {"maximum_voltage": [0, 20], "minimum_voltage": [-70, 5], "mean_frequency": [30, 10]}}


def cell_config(directory, generations, population=8, name="cell.json", extended=False):
    """examples/cell/config.json with a small budget; extended: with a distance-dependent
    parameter and a protocol of ramp, waveform and synaptic input."""
    with open(os.path.join(ROOT, "examples", "cell", "config.json")) as f:
        raw = json.load(f)
    raw["optimizer"].update(generations=generations, population=population)
    raw.pop("output")
    if extended:
        cell = raw["problem"]["cell"]
        apical = next(p for p in cell["parameters"] if p["param_name"] == "g_pas" and p["sectionlist"] == "apical")
        apical.update(dist_type="exp", dist="{value} * math.exp({distance} * 0.002)")
        cell["protocols"]["mixed"] = MIXED
        cell["features"]["mixed"] = MIXED_FEATURES
    return write_config(directory, name, **raw)


@pytest.fixture(scope="module")
def cell_run(tmp_path_factory):
    """The built-in cell example (inline morphology, CMA-ES), 5 generations of 8, with
    a distance-dependent parameter and every kind of stimulus."""
    directory = tmp_path_factory.mktemp("cell")
    config = cell_config(directory, 5, extended=True)
    hpcopt("run", config, "-o", directory / "run.h5")
    return config, directory / "run.h5"


@pytest.fixture(scope="module")
def l5pc_run(tmp_path_factory):
    """A BluePyOpt-style model (SWC morphology, axon replacement, own mechanism, an
    exponential distribution, dendritic recordings), IBEA, 2 generations of 4."""
    directory = tmp_path_factory.mktemp("l5pc")
    files = {key: os.path.join(L5PC, "config", f"{key}.json")
             for key in ("mechanisms", "parameters", "protocols", "features")}
    files.update(morphology=os.path.join(L5PC, "morphology", "cell.swc"), mod_dir=os.path.join(L5PC, "mechanisms"),
                 replace_axon=True)
    config = write_config(directory, problem={"bluepyopt": files},
                          optimizer={"algorithm": "ibea", "population": 4, "generations": 2, "seed": 3})
    hpcopt("run", config, "-o", directory / "run.h5")
    return config, directory / "run.h5"


@pytest.fixture(scope="module")
def function_run(tmp_path_factory):
    """A function of two objectives that takes 5 ms (so that evaluations show on the
    rank timeline), IBEA, 8 generations of 12."""
    directory = tmp_path_factory.mktemp("function")
    problem = {"function": "models:sleepy", "path": [HERE], "objectives": ["f1", "f2"],
               "parameters": {"x0": [0, 1], "x1": [0, 1], "slow": 0.005, "slow_x0": -1, "fast": 0.005}}
    config = write_config(directory, problem=problem,
                          optimizer={"algorithm": "ibea", "population": 12, "generations": 8, "seed": 2})
    hpcopt("run", config, "-o", directory / "run.h5")
    return config, directory / "run.h5"


# ---------------------------------------------------------------- report


def assert_drawn(path):
    """A PNG with data on it, not only axes and text (which are black and grey): every
    figure draws its data in colour."""
    from matplotlib import image

    pixels = image.imread(path)[..., :3]
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    inked = np.mean(np.any(pixels < 0.9, axis=-1))
    coloured = np.count_nonzero(pixels.max(axis=-1) - pixels.min(axis=-1) > 0.1)
    assert colours > 20 and inked > 0.01 and coloured > 300, (path, colours, inked, coloured)


def assert_report(directory, figures):
    files = sorted(name for name in os.listdir(directory) if name.endswith(".png"))
    assert files == sorted(f"{name}.png" for name in figures)
    for name in files:
        assert_drawn(os.path.join(directory, name))
    with open(os.path.join(directory, "index.html")) as f:
        page = f.read()
    links = re.findall(r"(?:src|href)='([^']*)'", page)
    for name in files:
        assert name in links
    for link in links:  # self-contained: relative links to files that exist, or anchors
        assert link.startswith("#") or os.path.isfile(os.path.join(directory, link)), link
    assert "http" not in "".join(links)
    return page


def test_report_of_a_cell_run(cell_run, tmp_path):
    config, run = cell_run
    done = hpcopt("report", run, "-o", tmp_path / "report")
    assert done.stdout.strip() == str(tmp_path / "report" / "index.html")
    page = assert_report(tmp_path / "report", CELL_FIGURES)
    best = json.loads(hpcopt("best", run, "--json").stdout)
    assert f"{best['score']:.6g}" in page  # the best individuals' table
    assert "re-scored here equal the stored ones" in page  # the traces are the ones that were scored
    assert "gnabar_hh.somatic" in page and "neuron_version" in page  # config, versions


def test_report_of_an_ibea_cell_run_has_its_pareto_front(l5pc_run, tmp_path):
    _, run = l5pc_run
    hpcopt("report", run, "-o", tmp_path / "report")
    page = assert_report(tmp_path / "report", CELL_FIGURES + ["pareto"])
    assert "re-scored here equal the stored ones" in page


def test_report_of_a_function_problem_has_everything_but_traces(function_run, tmp_path):
    _, run = function_run
    hpcopt("report", run, "-o", tmp_path / "report")
    page = assert_report(tmp_path / "report", [f for f in CELL_FIGURES if f != "traces"] + ["pareto"])
    assert "models:sleepy" in page


# ---------------------------------------------------------------- status


def test_status_of_a_finished_run(function_run):
    _, run = function_run
    out = hpcopt("status", run).stdout
    assert "8 of 8 done" in out and "finished" in out and "96: 96 ok, 0 failed, 0 timeout" in out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[0] == "generation" and len(table) == 1 + 8  # 8 generations: one row each


def test_failures_by_kind(tmp_path):
    """`failed` (an exception, a NaN) and `timeout` (past the step budget) are counted
    apart, with their most common reasons, and drawn."""
    config = write_config(tmp_path, "fails.json",
                          problem={"function": "models:fails_sometimes", "path": [HERE],
                                   "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]},
                          optimizer={"algorithm": "ibea", "population": 16, "generations": 2, "seed": 1})
    hpcopt("run", config, "-o", tmp_path / "fails.h5")
    out = hpcopt("status", tmp_path / "fails.h5").stdout
    failed = int(re.search(r"(\d+) failed, 0 timeout", out).group(1))
    assert failed > 0 and "x    ArithmeticError: model blew up" in out
    hpcopt("report", tmp_path / "fails.h5", "-o", tmp_path / "report")
    assert_drawn(tmp_path / "report" / "eval_times.png")

    with open(cell_config(tmp_path, 1)) as f:
        raw = json.load(f)
    raw["problem"]["cell"]["simulation"] = {"max_steps": 1200}  # spiking protocols need more
    hpcopt("run", write_config(tmp_path, "steps.json", **raw), "-o", tmp_path / "steps.h5")
    out = hpcopt("status", tmp_path / "steps.h5").stdout
    timeouts = int(re.search(r"0 failed, (\d+) timeout", out).group(1))
    assert timeouts > 0 and "x    more than 1200 integration steps" in out


@pytest.mark.mpi
def test_status_of_a_file_a_running_job_writes(tmp_path):
    """Read a run file over and over while a job under mpiexec writes it: every read
    succeeds, is consistent, and generations never go back; a report of a snapshot
    taken mid-run works."""
    ranks = int(os.environ.get("HPCOPT_TEST_RANKS", "2").split(",")[-1])
    budget = 30
    config = cell_config(tmp_path, budget)
    run = str(tmp_path / "run.h5")
    command = [*mpiexec(ranks), sys.executable, "-m", "hpcopt", "run", config,
               "-o", run, "-q"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, texts, snapshot = [], [], None
    try:
        deadline = time.time() + 120
        while job.poll() is None and time.time() < deadline:
            if not os.path.exists(run):
                time.sleep(0.01)
                continue
            if len(seen) % 10 == 0:  # the command itself, now and then
                done = hpcopt("status", run, check=False)
                assert done.returncode == 0, done.stderr
                texts.append(done.stdout)
                generations = int(re.search(r"generations\s+(\d+) of", done.stdout).group(1))
            else:
                snap = runsnapshot.read(run)
                texts.append(status.text(snap))
                generations = len(snap.generations)
                assert snap.state["next_generation"] == generations  # a complete, consistent version
                assert snap.state["evaluations"] == sum(len(g.scores) for g in snap.generations)
                if snapshot is None and 2 <= generations < budget - 5:
                    snapshot = tmp_path / "snapshot.h5"
                    shutil.copy(run, snapshot)
            seen.append(generations)
        job.wait(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, job.stderr.read()
    assert len(seen) >= 10 and seen == sorted(seen), seen  # never backwards
    assert any(0 < g < budget for g in seen), seen  # seen mid-run
    assert any("not finished" in text for text in texts)
    assert f"{budget} of {budget} done" in hpcopt("status", run).stdout
    assert snapshot is not None
    hpcopt("report", snapshot, "-o", tmp_path / "report")
    page = assert_report(tmp_path / "report", CELL_FIGURES)
    assert "the run was not finished" in page


# ---------------------------------------------------------------- export


def exported_traces(tmp_path, python_file, hoc_file=None):
    """The traces the exported Python file simulates in a fresh process (of the cell
    the exported hoc file builds, when given): {(protocol, recording): (t, v)}."""
    script = f"""
import sys
sys.modules["hpcopt"] = None  # plain NEURON: importing hpcopt would fail
sys.path.insert(0, {str(python_file.parent)!r})
import numpy as np
from neuron import h
import {python_file.stem} as model
if {str(hoc_file or "")!r}:
    h.load_file({str(hoc_file or "")!r})  # loads the model's mechanisms itself
    sections = {{sec.name().split(".", 1)[-1]: sec for sec in h.allsec()}}
else:
    sections = model.build()
traces = model.simulate(sections)
np.savez(sys.argv[1], **{{f"{{p}}/{{r}}/{{k}}": a for (p, r), tv in traces.items() for k, a in zip("tv", tv)}})
"""
    saved = tmp_path / f"traces-{python_file.stem}-{bool(hoc_file)}.npz"
    done = subprocess.run([sys.executable, "-c", script, str(saved)], capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
    data = np.load(saved)
    traces = {}
    for key in data.files:
        protocol, recording, kind = key.rsplit("/", 2)
        traces.setdefault((protocol, recording), [None, None])["tv".index(kind)] = data[key]
    return {key: tuple(value) for key, value in traces.items()}


@pytest.mark.parametrize("which, rank", [("cell_run", 1), ("l5pc_run", 1), ("cell_run", 3)])
def test_exported_model_scores_what_the_run_stored(which, rank, request, tmp_path):
    config, run = request.getfixturevalue(which)
    snap = runsnapshot.read(str(run))
    table = snap.table()
    i = table.order()[rank - 1]
    stored = table.F[i]
    hpcopt("export", run, "--rank", rank, "--python", tmp_path / "fitted.py")
    hpcopt("export", run, "--rank", rank, "--hoc", tmp_path / "fitted.hoc")
    hpcopt("export", run, "--rank", rank, "--json", tmp_path / "p.json")
    with open(tmp_path / "p.json") as f:
        assert list(json.load(f).values()) == list(table.X[i])  # exact, in parameter order
    model = configuration.parse(snap.config).problem.model
    scorer = features.Scorer(model.features, model.penalty, model.trace_check)
    for hoc_file in (None, tmp_path / "fitted.hoc"):
        scores, _, _ = scorer(exported_traces(tmp_path, tmp_path / "fitted.py", hoc_file))
        assert np.array_equal(scores, stored), (hoc_file, np.max(np.abs(scores - stored)))
    # the JSON is what `hpcopt evaluate --params` reads, and scores the same
    evaluated = json.loads(hpcopt("evaluate", config, "--params", tmp_path / "p.json", "--json").stdout)
    assert list(evaluated["objectives"].values()) == list(stored)


def test_export_of_the_best_is_what_best_prints(function_run, tmp_path):
    _, run = function_run
    hpcopt("export", run, "--json", tmp_path / "p.json")
    with open(tmp_path / "p.json") as f:
        assert json.load(f) == json.loads(hpcopt("best", run, "--json").stdout)["parameters"]


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_files(function_run, tmp_path_factory):
    _, run = function_run
    directory = tmp_path_factory.mktemp("bad")
    (directory / "text.h5").write_text("not HDF5\n")
    with h5py.File(directory / "foreign.h5", "w") as f:
        f["x"] = 1
    shutil.copy(run, directory / "empty.h5")
    with h5py.File(directory / "empty.h5", "r+") as f:
        for name in list(f["generations"]):
            del f["generations"][name]
        f["state"].attrs.update(next_generation=0, evaluations=0)
    shutil.copy(run, directory / "v3.h5")  # a layout this hpcopt does not know (a newer one's)
    with h5py.File(directory / "v3.h5", "r+") as f:
        f.attrs["layout_version"] = 99
    return directory


COMMANDS = {"status": [], "report": ["-o", "out"], "export": ["--json", "p.json"]}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name, message", [
    ("text.h5", "not an HDF5 file"),
    ("foreign.h5", "not an hpcopt run file"),
    ("v3.h5", "layout version 99, this hpcopt reads versions 1, 2, 3"),
    ("missing.h5", "no such file"),
    ("empty.h5", "no complete generation yet"),
])
def test_bad_run_file_is_one_line(bad_files, command, name, message):
    done = hpcopt(command, bad_files / name, *COMMANDS[command], cwd=bad_files, check=False)
    if name == "empty.h5" and command == "status":  # a job that just started: status says so
        assert done.returncode == 0 and "0 of 8 done" in done.stdout and "no generation complete yet" in done.stdout
        return
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and str(name) in done.stderr, done.stderr
    assert not (bad_files / "out").exists() and not (bad_files / "p.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--rank", "97", "--json", "p.json"], "no individual 97: the run has 96 evaluations"),
    (["--rank", "0", "--json", "p.json"], "no individual 0"),
    (["--hoc", "cell.hoc"], "a function problem has no cell"),
    (["--json", "no/such/dir/p.json"], "cannot write"),
])
def test_bad_export_is_one_line(function_run, tmp_path, args, message):
    _, run = function_run
    done = hpcopt("export", run, *args, cwd=tmp_path, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
