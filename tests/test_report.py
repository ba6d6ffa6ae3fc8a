"""What users look at: `hpcopt status` (also of a file a running job is writing),
`hpcopt report` (figures that are not blank, a self-contained index.html), and
`hpcopt export` (a standalone NEURON model that scores exactly what the run stored)."""

import csv
import dataclasses
import json
import math
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
from hpcopt.results import fit, report, status
from hpcopt.store import snapshot as runsnapshot

ROOT = os.path.dirname(HERE)
L5PC = os.path.join(HERE, "data", "l5pc_like")
CELL_FIGURES = ["convergence", "objectives", "features", "parameters", "pairs", "spread", "traces", "eval_times",
                "timeline"]
FUNCTION_FIGURES = [f for f in CELL_FIGURES if f not in ("features", "traces")]


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
    page = assert_report(tmp_path / "report", FUNCTION_FIGURES + ["pareto"])
    assert "models:sleepy" in page


# ---------------------------------------------------------------- is this fit good?


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """CMA-ES on a function whose x0 bounds span three decades, 3 generations of 6, then
    resumed (after a pause longer than fit.RESUME_GAP) to 6."""
    directory = tmp_path_factory.mktemp("resumed")
    problem = {"function": "models:sleepy", "path": [HERE], "objectives": ["f1", "f2"],
               "parameters": {"x0": [0.001, 1], "x1": [0, 1], "slow": 0.0, "slow_x0": -1, "fast": 0.0}}
    config = write_config(directory, problem=problem,
                          optimizer={"algorithm": "cmaes", "population": 6, "generations": 3, "seed": 4})
    hpcopt("run", config, "-o", directory / "run.h5")
    time.sleep(fit.RESUME_GAP + 0.5)
    hpcopt("resume", directory / "run.h5", "--generations", 6)
    return config, directory / "run.h5"


def labels(figure):
    """Every axis label, title, tick label and legend text of a matplotlib Figure."""
    texts = []
    for ax in figure.axes:
        texts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_title(loc="left")]
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.texts]
        if ax.get_legend():
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


def test_individual_choices(cell_run, tmp_path):
    """--individual best | best-of:OBJECTIVE | best-of:PROTOCOL | ID picks the individual
    the per-individual parts show; anything else is one line naming the choices, exit 2,
    nothing written."""
    _, run = cell_run
    snap = runsnapshot.read(str(run))
    table = snap.table()
    assert fit.choose(snap, table, "best")[0] == table.order()[0]
    column = snap.objective_names.index("hyperpol.soma.voltage_base")
    i, who = fit.choose(snap, table, "best-of:hyperpol.soma.voltage_base")
    assert table.F[i, column] == table.F[:, column].min() and "hyperpol.soma.voltage_base" in who
    step = [k for k, n in enumerate(snap.objective_names) if n.startswith("step_low.")]
    i, _ = fit.choose(snap, table, "best-of:step_low")
    assert table.F[i, step].sum() == table.F[:, step].sum(axis=1).min()
    i, _ = fit.choose(snap, table, "11")  # generation 1, individual 3 (8 per generation)
    assert (table.generation[i], table.row[i]) == (1, 3)
    hpcopt("report", run, "-o", tmp_path / "id", "--no-traces", "--individual", "11")
    page = (tmp_path / "id" / "index.html").read_text()
    assert "Objectives of individual 11" in page and "generation 1, individual 3, id 11" in page
    for bad, message in [("worst", "is not one of: best, best-of:OBJECTIVE"), ("best-of:nothing", "protocols: "),
                         ("40", "an individual's id (0 to 39"), ("-1", "is not one of"), ("--dpi=5", "--dpi")]:
        option = [bad] if bad.startswith("--") else ["--individual", bad]
        done = hpcopt("report", run, "-o", tmp_path / "bad", *option, check=False)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
        assert not (tmp_path / "bad").exists()


def test_features_against_targets_are_the_run_files(cell_run, tmp_path):
    """The features table (HTML and CSV) of the chosen individual: the values the run file
    stores for it, the targets of the stored config, the stored scores."""
    _, run = cell_run
    hpcopt("report", run, "-o", tmp_path / "report", "--no-traces", "--individual", "best-of:step_low")
    snap = runsnapshot.read(str(run))
    i, _ = fit.choose(snap, snap.table(), "best-of:step_low")
    generation, row = int(snap.table().generation[i]), int(snap.table().row[i])
    with h5py.File(run, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["feature_names"]]
        group = f["generations"][f"{generation:06d}"]
        values, objectives = group["features"][row], group["objectives"][row]
        targets = json.loads(f.attrs["config"])["problem"]["cell"]["features"]
    with open(tmp_path / "report" / "features.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["feature"] for r in rows] == names and len(names) == 15
    page = (tmp_path / "report" / "index.html").read_text()
    for r, value, objective in zip(rows, values, objectives):
        protocol, recording, feature = r["feature"].split(".")
        target = targets[protocol][recording][feature]
        assert r["protocol"] == protocol
        assert np.array_equal(float(r["value"]), value, equal_nan=True)
        assert float(r["target_mean"]) == target["mean"] and float(r["target_std"]) == target["std"]
        assert np.array_equal(float(r["deviation_std"]), (value - target["mean"]) / target["std"], equal_nan=True)
        assert float(r["score"]) == objective
        assert f"<td>{r['feature']}</td><td class='n'>{'' if np.isnan(value) else f'{value:.6g}'}</td>" in page
    assert "<a href='features.csv'>" in page
    assert_drawn(tmp_path / "report" / "features.png")


def test_features_of_a_run_whose_targets_are_gone_say_so(l5pc_run, tmp_path):
    """A BluePyOpt-file run: targets from its feature file; moved away, the page says the
    targets cannot be known and lists the stored values."""
    _, run = l5pc_run
    snap = runsnapshot.read(str(run))
    features, why = fit.feature_targets(snap)
    assert why is None and [f.name for f in features] == list(snap.attrs["feature_names"])
    config = dict(snap.config, problem={"cell": dict(snap.config["problem"]["cell"], morphology="/no/such.swc")})
    broken = dataclasses.replace(snap, config=config)
    features, why = fit.feature_targets(broken)
    assert features is None and "cannot be read here" in why
    figure, caption, page = report.features_section(broken, snap.table(), 0, "x", str(tmp_path))
    assert figure is None and caption.startswith("The targets cannot be known") and "features.csv" in page


def test_a_bluepyopt_evaluators_report_says_its_targets_are_not_known(tmp_path):
    pytest.importorskip("bluepyopt")
    spec = {"factory": "bpo_evaluators:create", "path": [HERE]}
    config = write_config(tmp_path, problem={"bluepyopt_evaluator": spec},
                          optimizer={"algorithm": "ibea", "population": 6, "generations": 2, "seed": 4})
    hpcopt("run", config, "-o", tmp_path / "run.h5")
    hpcopt("report", tmp_path / "run.h5", "-o", tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    assert not (tmp_path / "report" / "features.png").exists()
    assert "Features of the best individual (lowest score) against their targets" in page
    assert "The targets cannot be known: a BluePyOpt evaluator" in page


def test_figures_carry_what_they_show(cell_run, l5pc_run, resumed_run):
    """Labels, scales and marks on the figures: the step size and resumes (CMA-ES), the
    Pareto axes as protocol sums (IBEA), log axes where bounds span decades, the shown
    individual's value on each parameter panel, the current under each trace."""
    snap = runsnapshot.read(str(resumed_run[1]))
    table, groups = snap.table(), report.objective_groups(snap)
    assert fit.resumes(snap) == [3]
    figure = report.convergence(snap, groups)
    assert "step size (from the samples)" in labels(figure) and "std of the sample (unit coordinates)" in labels(figure)
    assert figure.axes[-1].get_yscale() == "log"
    for ax in figure.axes:  # the resume: a dashed line at the evaluations before generation 3
        assert [tuple(line.get_xdata()) for line in ax.lines if line.get_label() == "resumed"] == [(18, 18)]
    assert "resumed" in labels(report.timeline(snap))
    assert "resumed before generation 3" in report._convergence_caption(snap, groups)
    spread = fit.sample_spread(snap)
    assert len(spread) == 6 and np.all(spread > 0) and spread[0] < 1
    assert fit.scales(snap) == {"x0": "log", "x1": "linear"}  # auto: x0 spans three decades
    best = table.order()[0]
    figure = report.parameters(snap, table, best)
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "linear"]
    assert f"{table.X[best, 0]:.4g}" in labels(figure) and "x0 (log)" in labels(figure)
    assert [tuple(line.get_ydata()) for line in figure.axes[0].lines if line.get_linestyle() == "--"] == \
        [(table.X[best, 0],) * 2]
    figure, _ = report.pairs(snap, table, best)
    assert figure.axes[2].get_xscale() == "log" and figure.axes[2].get_xlabel() == "x0"  # row 1, column 0
    # another scale stored in the config wins over the auto rule
    assert fit.scales(dataclasses.replace(snap, config={"optimizer": {"scale": "linear"}})) == \
        {"x0": "linear", "x1": "linear"}
    stored = {"optimizer": {"scale": {"default": "log", "x0": "linear"}}}
    assert fit.scales(dataclasses.replace(snap, config=stored)) == {"x0": "linear", "x1": "linear"}  # x1's low is 0

    snap = runsnapshot.read(str(l5pc_run[1]))
    figure, _ = report.pareto(snap, snap.table(), report.objective_groups(snap))
    assert all(ax.get_xlabel().endswith(": sum of its features' scores") for ax in figure.axes[:-1])

    snap = runsnapshot.read(str(cell_run[1]))
    table = snap.table()
    figure, caption = report.voltage_traces(snap, table, table.order()[0])
    titles = labels(figure)
    for protocol in ("hyperpol", "step_low", "step_high"):
        assert f"{protocol}: injected current" in titles
    assert "mixed: injected current" in titles and "I (nA)" in titles
    assert "re-scored here equal the stored ones" in caption


def test_index_html_in_a_real_browser(function_run, tmp_path):
    """index.html opened by headless Chromium: every image loads, and every src and
    href stays inside the report's folder. `make test` installs chromium and
    chromium-driver (Debian) when they are missing."""
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium or chromedriver is not installed (apt-get install chromium chromium-driver; "
                    "make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    hpcopt("report", function_run[1], "-o", tmp_path / "report")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        folder = (tmp_path / "report").as_uri() + "/"
        browser.get(folder + "index.html")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.currentSrc, i.complete, i.naturalWidth]);")
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('[src], [href]')).map(e => e.src || e.href);")
    finally:
        browser.quit()
    assert len(images) == len(FUNCTION_FIGURES) + 1  # and the Pareto front
    for src, complete, width in images:
        assert src.startswith(folder) and complete and width > 0, (src, complete, width)
    assert links and all(link.startswith(folder) for link in links), links


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


def test_best_prints_the_measured_features(cell_run, function_run):
    """``hpcopt best`` gives the best individual's stored feature values (null where eFEL
    found none), by name; a function problem has none."""
    _, run = cell_run
    best = json.loads(hpcopt("best", run, "--json").stdout)
    with h5py.File(run, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["feature_names"]]
        stored = f["generations"][f"{best['generation']:06d}"]["features"][best["index"]]
    assert list(best["features"]) == names and len(names) == 15
    assert [math.nan if v is None else v for v in best["features"].values()] == pytest.approx(list(stored),
                                                                                             nan_ok=True)
    assert all(v is None or v == s for v, s in zip(best["features"].values(), stored))
    text = hpcopt("best", run).stdout
    assert "measured features:" in text and f"  {names[0]}: " in text
    assert "features" not in json.loads(hpcopt("best", function_run[1], "--json").stdout)


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
