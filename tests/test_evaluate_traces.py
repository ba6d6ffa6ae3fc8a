"""hpcopt evaluate while designing a fit: --plot and --traces, its exit status, and
values outside the bounds."""

import csv
import json

import h5py
import matplotlib.image
import numpy as np
from conftest import HERE, hpcopt, write_config

CELL = f"{HERE}/../examples/cell/config.json"
TRUTH = f"{HERE}/../examples/cell/truth.json"


def test_plot_and_traces_of_a_cell(tmp_path):
    done = hpcopt("evaluate", CELL, "--params", TRUTH, "--plot", tmp_path / "p.png", "--traces", tmp_path / "t.h5")
    assert done.returncode == 0 and f"plot: {tmp_path / 'p.png'}" in done.stdout
    image = matplotlib.image.imread(tmp_path / "p.png")
    assert image.shape[0] > 1000 and image[..., :3].std() > 0.05  # drawn, not blank
    config = json.load(open(CELL))["problem"]["cell"]
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert set(f) == set(config["protocols"])
        t, v = f["step_high/soma/t"][()], f["step_high/soma/v"][()]
    assert t[0] == 0 and t.shape == v.shape and v.max() > 0  # it spikes
    hpcopt("evaluate", CELL, "--params", TRUTH, "--traces", tmp_path / "t.csv")
    rows = list(csv.reader(open(tmp_path / "t.csv")))
    assert rows[0] == ["protocol", "recording", "t", "value"]
    step = [float(r[3]) for r in rows[1:] if r[:2] == ["step_high", "soma"]]
    assert np.array_equal(step, v)


def test_the_figure_carries_every_recording_its_current_and_its_features():
    from hpcopt import config as configuration
    from hpcopt.problem.space import Problem
    from hpcopt.results import traces as drawing

    problem = Problem(configuration.load(CELL))
    evaluator = problem.evaluator()
    values = {**evaluator.frozen, **json.load(open(TRUTH))}
    simulated = evaluator.simulate(values)
    model = evaluator.model
    figure = drawing.figure(model, simulated, {f.name: (1.0, 0.5) for f in model.features})
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    for protocol in model.protocols:
        assert f"{protocol.name}: injected current" in titles
        for recording in protocol.recordings:
            assert f"{protocol.name} / {recording.name}" in titles
    text = "\n".join(t.get_text() for ax in figure.axes for t in ax.texts)
    assert all(f.efel_name in text for f in model.features) and "target (mean ± std)" in text
    step = next(p for p in model.protocols if p.name == "step_high").stimuli[0]
    t = np.array([0.0, step.delay + 1, step.delay + step.duration + 1])
    assert list(drawing.injected(step, t, 1000.0)) == [0.0, step.amplitude, 0.0]


def test_a_failed_evaluation_exits_1_and_values_outside_the_bounds_are_warned(tmp_path):
    problem = {"function": "models:exits", "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]}
    path = write_config(tmp_path, problem=problem, optimizer={"algorithm": "ibea", "population": 4, "generations": 1})
    (tmp_path / "ok.json").write_text(json.dumps({"x0": 0.2, "x1": 1.5}))
    (tmp_path / "bad.json").write_text(json.dumps({"x0": 0.9, "x1": 0.5}))
    done = hpcopt("evaluate", path, "--params", tmp_path / "ok.json")
    assert "x1 = 1.5 is outside its bounds [0, 1]" in done.stderr
    done = hpcopt("evaluate", path, "--params", tmp_path / "bad.json", check=False)
    assert done.returncode == 1 and "status: failed" in done.stdout
    done = hpcopt("evaluate", path, "--params", tmp_path / "ok.json", "--plot", tmp_path / "x.png", check=False)
    assert done.returncode == 2 and "need a cell model" in done.stderr and not (tmp_path / "x.png").exists()


def test_the_traces_are_those_the_scores_were_computed_from(tmp_path, monkeypatch, capsys):
    """One simulation for the scores, the plot and the traces file (not a second run)."""
    from hpcopt import cli
    from hpcopt.problem.cell import CellEvaluator

    simulated = []
    simulate = CellEvaluator.simulate
    monkeypatch.setattr(CellEvaluator, "simulate", lambda self, values: simulated.append(simulate(self, values))
                        or simulated[-1])
    args = ["evaluate", CELL, "--params", TRUTH, "--json", "--plot", str(tmp_path / "p.png"),
            "--traces", str(tmp_path / "t.h5")]
    assert cli.main(args) == 0
    assert len(simulated) == 1 and (tmp_path / "p.png").exists()
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert np.array_equal(f["step_high/soma/v"][()], simulated[0][("step_high", "soma")][1])
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def test_a_failed_simulation_gives_no_traces_and_says_why(tmp_path):
    config = json.load(open(CELL))
    config["problem"]["cell"]["simulation"] = {**config["problem"]["cell"].get("simulation", {}), "wall_limit": 1e-6}
    path = write_config(tmp_path, **config)
    done = hpcopt("evaluate", path, "--params", TRUTH, "--plot", tmp_path / "p.png", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "status: timeout" in done.stdout
    assert "hpcopt: warning: no traces: " in done.stderr and not (tmp_path / "p.png").exists()
