"""Features without targets yet, and ``hpcopt targets``: from a parameter set (a
synthetic check) and from recordings, in the config's features form; a short fit to
synthetic targets finds the parameters they were made from."""

import csv
import json
import os
import random

import h5py
import pytest
from conftest import HERE, hpcopt

from hpcopt.features.targets import ABSOLUTE

CELL = os.path.join(HERE, "..", "examples", "cell", "config.json")
TRUTH = os.path.join(HERE, "..", "examples", "cell", "truth.json")
L5PC_LIKE = os.path.join(HERE, "data", "l5pc_like")


def cell_config(directory, features="features.json", **changes):
    """examples/cell's config in ``directory`` with its features in ``features.json``
    listed without targets (by name, as null, as an object without mean and std)."""
    config = json.load(open(CELL))
    cell = config["problem"]["cell"]
    listed = {protocol: {recording: list(found) for recording, found in recordings.items()}
              for protocol, recordings in cell["features"].items()}
    listed["step_high"]["soma"] = {name: None for name in listed["step_high"]["soma"]}
    listed["hyperpol"]["soma"] = {name: {"threshold": -20} for name in listed["hyperpol"]["soma"]}
    (directory / "features.json").write_text(json.dumps(listed, indent=1))
    cell["features"] = features
    cell.update(changes)
    (directory / "config.json").write_text(json.dumps(config))
    return directory / "config.json"


def committed_targets():
    """{feature name: (mean, std)} of examples/cell, made by examples/make_targets.py."""
    features = json.load(open(CELL))["problem"]["cell"]["features"]
    return {f"{p}.{r}.{name}": tuple(value) for p, recordings in features.items()
            for r, found in recordings.items() for name, value in found.items()}


def test_features_without_targets_are_measured_not_scored(tmp_path):
    config = cell_config(tmp_path)
    done = hpcopt("evaluate", config, "--params", TRUTH, "--json")
    result = json.loads(done.stdout)
    assert result["objectives"] == {} and result["score"] is None
    assert len(result["features"]) == 12
    assert result["features"]["step_high.soma.mean_frequency"] == [pytest.approx(92.3295, rel=1e-6)]
    done = hpcopt("evaluate", config, "--params", TRUTH, "--plot", tmp_path / "p.png")
    assert "step_low.soma.time_to_first_spike: no target; value 2.8" in done.stdout
    assert (tmp_path / "p.png").stat().st_size > 10_000
    for command in (("validate", config), ("run", config, "-o", tmp_path / "run.h5")):
        done = hpcopt(*command, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "'hpcopt run' needs a target (mean, std) for every feature; none for hyperpol.soma.voltage_base" in \
            done.stderr and "and 4 more" in done.stderr
    assert "valid for 'hpcopt evaluate' and 'hpcopt targets'" in hpcopt("validate", config, check=False).stderr
    assert not (tmp_path / "run.h5").exists()


def test_a_mix_scores_the_features_with_targets_only(tmp_path):
    config = json.load(open(CELL))
    config["problem"]["cell"]["features"]["step_high"]["soma"]["AP1_width"] = None
    (tmp_path / "c.json").write_text(json.dumps(config))
    result = json.loads(hpcopt("evaluate", tmp_path / "c.json", "--params", TRUTH, "--json").stdout)
    assert len(result["objectives"]) == 11 and "step_high.soma.AP1_width" not in result["objectives"]
    assert result["score"] == pytest.approx(sum(result["objectives"].values())) and result["score"] < 0.01
    config["problem"]["cell"]["features"]["step_high"]["soma"]["AP1_width"] = {"mean": 1.6}
    (tmp_path / "c.json").write_text(json.dumps(config))
    done = hpcopt("validate", tmp_path / "c.json", check=False)
    assert done.returncode == 2 and "AP1_width: give both 'mean' and 'std', or neither" in done.stderr


def test_targets_from_params_validate_and_score_zero(tmp_path):
    config = cell_config(tmp_path)
    done = hpcopt("targets", config, "--params", TRUTH, "-o", tmp_path / "features.json", check=False)
    assert done.returncode == 2 and "exists: pass --overwrite" in done.stderr
    assert "voltage_base" in json.load(open(tmp_path / "features.json"))["hyperpol"]["soma"]  # untouched
    done = hpcopt("targets", config, "--params", TRUTH, "-o", tmp_path / "features.json", "--overwrite")
    assert done.stdout.strip().endswith(f"wrote 12 targets to {tmp_path / 'features.json'}")
    written = json.load(open(tmp_path / "features.json"))
    assert written["hyperpol"]["soma"]["voltage_base"] == {"mean": -64.8671, "std": 1.0, "threshold": -20}
    assert written["step_low"]["soma"]["mean_frequency"] == [64.5624, 3.23]
    made = {f"{p}.{r}.{n}": (v["mean"], v["std"]) if isinstance(v, dict) else tuple(v)
            for p, recordings in written.items() for r, found in recordings.items() for n, v in found.items()}
    assert made == committed_targets()  # the rule of examples/make_targets.py, the same model
    assert "valid: cmaes" in hpcopt("validate", config).stdout
    result = json.loads(hpcopt("evaluate", config, "--params", TRUTH, "--json").stdout)
    assert len(result["objectives"]) == 12 and max(result["objectives"].values()) < 1e-3


def test_targets_for_a_bluepyopt_config_are_in_its_features_json_form(tmp_path):
    features = json.load(open(os.path.join(L5PC_LIKE, "config", "features.json")))
    (tmp_path / "listed.json").write_text(json.dumps(
        {p: {r: list(found) for r, found in recordings.items()} for p, recordings in features.items()}))
    files = {key: os.path.join(L5PC_LIKE, "config", f"{key}.json") for key in ("mechanisms", "parameters",
                                                                               "protocols")}
    files.update(morphology=os.path.join(L5PC_LIKE, "morphology", "cell.swc"), features=str(tmp_path / "listed.json"),
                 mod_dir=os.path.join(L5PC_LIKE, "mechanisms"))
    config = {"problem": {"bluepyopt": files}, "optimizer": {"algorithm": "ibea", "population": 4, "generations": 1}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    params = os.path.join(L5PC_LIKE, "config", "params_release.json")
    hpcopt("targets", tmp_path / "config.json", "--params", params, "-o", tmp_path / "features.json",
           "--std-relative", "0.1", "--std-floor", "0.2")
    written = json.load(open(tmp_path / "features.json"))
    assert list(written) == list(features)
    for p, recordings in features.items():
        assert list(written[p]) == list(recordings)
        for r, found in recordings.items():
            assert list(written[p][r]) == list(found)
            for name, (mean, std) in written[p][r].items():  # one parameter set: no spread
                expected = 0.2 if name in ABSOLUTE else max(0.1 * abs(mean), 0.2)
                assert std > 0 and std == pytest.approx(expected, rel=5e-3), (p, r, name, mean, std)
    config["problem"]["bluepyopt"]["features"] = str(tmp_path / "features.json")
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = json.loads(hpcopt("evaluate", tmp_path / "config.json", "--params", params, "--json").stdout)
    single = [name for name, values in result["features"].items() if len(values) == 1]
    assert len(single) > 5 and all(result["objectives"][name] < 1e-3 for name in single)


def recordings_from_traces(traces, directory, repetitions, noise, seed=1):
    """DIR/PROTOCOL/repN.csv (columns t, v, other recordings) from an ``hpcopt evaluate
    --traces`` HDF5 file, with Gaussian noise of ``noise`` mV added to every sample."""
    generator = random.Random(seed)
    with h5py.File(traces, "r") as f:
        for protocol in f:
            os.makedirs(directory / protocol, exist_ok=True)
            names = list(f[protocol])
            t = f[protocol]["soma"]["t"][()]
            columns = [f[protocol][name]["v"][()] for name in names]
            for repetition in range(repetitions):
                with open(directory / protocol / f"rep{repetition}.csv", "w", newline="") as out:
                    rows = csv.writer(out)
                    rows.writerow(["t"] + ["v" if name == "soma" else name for name in names])
                    for k, time in enumerate(t):
                        rows.writerow([time] + [c[k] + generator.gauss(0.0, noise) for c in columns])


def test_targets_from_recordings_are_near_the_synthetic_ones(tmp_path):
    config = cell_config(tmp_path)
    hpcopt("evaluate", config, "--params", TRUTH, "--traces", tmp_path / "traces.h5")
    recordings_from_traces(tmp_path / "traces.h5", tmp_path / "recordings", repetitions=3, noise=0.3)
    done = hpcopt("targets", config, "--recordings", tmp_path / "recordings", "-o", tmp_path / "data.json")
    assert "(from 3 of 3 repetitions)" in done.stdout
    written = json.load(open(tmp_path / "data.json"))
    synthetic = committed_targets()
    for p, recordings in written.items():
        for r, found in recordings.items():
            for name, value in found.items():
                mean, std = (value["mean"], value["std"]) if isinstance(value, dict) else value
                truth_mean, truth_std = synthetic[f"{p}.{r}.{name}"]
                assert abs(mean - truth_mean) < truth_std, (p, r, name, mean, truth_mean)
                assert std >= truth_std * 0.9 and std < 3 * truth_std, (p, r, name, std, truth_std)
    one = tmp_path / "one"
    recordings_from_traces(tmp_path / "traces.h5", one, repetitions=1, noise=0.0)
    hpcopt("targets", config, "--recordings", one, "-o", tmp_path / "one.json")
    assert json.load(open(tmp_path / "one.json"))["step_low"]["soma"]["mean_frequency"] == [64.5624, 3.23]


def test_a_short_fit_to_synthetic_targets_finds_their_parameters(tmp_path):
    """gnabar and gkbar of the soma, from targets made at values other than the
    example's own; CMA-ES, 8 x 18 evaluations, 1 rank: within 3 %."""
    config = json.load(open(cell_config(tmp_path)))
    truth = {"gnabar_hh.somatic": 0.15, "gkbar_hh.somatic": 0.03}
    frozen = json.load(open(TRUTH))
    for parameter in config["problem"]["cell"]["parameters"]:
        name = f"{parameter['param_name']}.{parameter.get('sectionlist')}"
        if "bounds" in parameter and name not in truth:
            del parameter["bounds"]
            parameter["value"] = frozen[name]
    config["optimizer"] = {"algorithm": "cmaes", "population": 8, "generations": 18, "seed": 3}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    hpcopt("targets", tmp_path / "config.json", "--params", tmp_path / "truth.json", "-o", tmp_path / "features.json",
           "--overwrite")
    hpcopt("run", tmp_path / "config.json", "-o", tmp_path / "run.h5", "-q")
    best = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    for name, value in truth.items():
        assert best["parameters"][name] == pytest.approx(value, rel=0.03), best


def test_a_feature_the_model_does_not_produce_is_one_error_and_no_file(tmp_path):
    config = cell_config(tmp_path)
    listed = json.load(open(tmp_path / "features.json"))
    listed["hyperpol"]["soma"]["AP1_width"] = None  # no spike while hyperpolarised
    (tmp_path / "features.json").write_text(json.dumps(listed))
    done = hpcopt("targets", config, "--params", TRUTH, "-o", tmp_path / "out.json", check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "eFEL finds no value for protocol 'hyperpol', feature soma.AP1_width" in done.stderr
    assert not (tmp_path / "out.json").exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".out")]


def test_bad_recordings_are_one_line_each(tmp_path):
    config = cell_config(tmp_path)
    hpcopt("evaluate", config, "--params", TRUTH, "--traces", tmp_path / "traces.h5")
    recordings = tmp_path / "recordings"
    recordings_from_traces(tmp_path / "traces.h5", recordings, repetitions=2, noise=0.1)

    def refused(expected):
        done = hpcopt("targets", config, "--recordings", recordings, "-o", tmp_path / "out.json", check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert expected in done.stderr, done.stderr
        assert not (tmp_path / "out.json").exists()

    os.rename(recordings / "step_low", tmp_path / "step_low")
    refused(f"{recordings / 'step_low'}: missing: the recordings of protocol 'step_low'")
    os.rename(tmp_path / "step_low", recordings / "step_low")
    hyperpol = recordings / "hyperpol" / "rep1.csv"
    kept = hyperpol.read_text()
    header, rest = kept.split("\n", 1)
    assert header.startswith("t,") and "basal" in header.split(",")
    hyperpol.write_text(f"time{header[1:]}\n{rest}")
    refused(f"{hyperpol}: no column t: expected a header line naming the columns t, v, apical, basal")
    hyperpol.write_text(f"{header.replace('basal', 'dendrite')}\n{rest}")
    refused(f"{hyperpol}: no column basal")
    hyperpol.write_text(f"{header}\n{rest.replace(',', ';', 1)}")
    refused(f"{hyperpol}: line 2: expected numbers in columns t, v, apical, basal")
    hyperpol.write_text(kept)
    for name in ("rep0.csv", "rep1.csv"):  # a cell that never fires under step_high
        flat = recordings / "step_high" / name
        rows = [row[:1] + ["-65.0"] for row in csv.reader(open(flat))][1:]
        flat.write_text("t,v\n" + "\n".join(",".join(row) for row in rows) + "\n")
    refused(f"{recordings}: in every repetition: eFEL finds no value for protocol 'step_high', feature "
            "soma.mean_frequency; protocol 'step_high', feature soma.inv_first_ISI")


def test_targets_refuses_what_it_cannot_do(tmp_path):
    config = cell_config(tmp_path)
    for arguments, expected in [
        (("--std-floor", "0"), "--std-floor: expected a number > 0, found 0.0"),
        (("--std-relative", "-1"), "--std-relative: expected a number >= 0"),
        (("-o", tmp_path), "names a directory"),
        (("-o", tmp_path / "nosuch" / "f.json"), "output directory"),
    ]:
        rest = arguments if "-o" in arguments else (*arguments, "-o", tmp_path / "x.json")
        done = hpcopt("targets", config, "--params", TRUTH, *rest, check=False)
        assert done.returncode == 2 and expected in done.stderr, (arguments, done.stderr)
    done = hpcopt("targets", config, "--recordings", tmp_path / "nosuch", "-o", tmp_path / "x.json", check=False)
    assert done.returncode == 2 and f"{tmp_path / 'nosuch'}: --recordings: no such folder" in done.stderr
    function = tmp_path / "f.json"
    function.write_text(json.dumps({"problem": {"function": "hpcopt.testfunctions:zdt1",
                                                "parameters": {"x0": [0, 1], "x1": [0, 1]}, "objectives": ["f1", "f2"]},
                                    "optimizer": {"algorithm": "ibea", "population": 4, "generations": 1}}))
    done = hpcopt("targets", function, "--params", TRUTH, "-o", tmp_path / "x.json", check=False)
    assert done.returncode == 2 and "needs a cell model" in done.stderr
    assert not (tmp_path / "x.json").exists()
