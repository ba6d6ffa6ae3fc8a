"""Cell models: evaluation without leaks, failures as data, and bad input caught
before anything simulates. Each cell lives in its own process (hpcopt builds one
cell per process), so these tests go through subprocesses."""

import copy
import json
import os
import subprocess
import sys

import h5py
import pytest
from conftest import HERE, hpcopt, write_config

CELL = {
    "morphology": {"sections": [
        {"name": "soma", "sectionlist": "somatic", "length": 20, "diameter": 20},
        {"name": "dend", "sectionlist": "basal", "parent": "soma", "length": 300, "diameter": 2},
        {"name": "axon", "sectionlist": "axonal", "parent": "soma", "length": 100, "diameter": 1},
    ]},
    "mechanisms": {"all": ["pas"], "somatic": ["hh"], "axonal": ["hh"]},
    "parameters": [
        {"param_name": "celsius", "type": "global", "value": 6.3},
        {"param_name": "v_init", "type": "global", "value": -65},
        {"param_name": "e_pas", "type": "range", "sectionlist": "all", "value": -65},
        {"param_name": "g_pas", "type": "range", "sectionlist": "basal", "bounds": [1e-5, 1e-3]},
        {"param_name": "gnabar_hh", "type": "range", "sectionlist": "somatic", "bounds": [0.05, 0.5]},
        {"param_name": "gkbar_hh", "type": "range", "sectionlist": "somatic", "bounds": [0.01, 0.1]},
        {"param_name": "gnabar_hh", "type": "range", "sectionlist": "axonal", "dist_type": "exp",
         "dist": "{value} * math.exp({distance} / 200)", "bounds": [0.05, 0.5]},
    ],
    "protocols": {
        "step": {"stimuli": [{"delay": 20, "amp": 0.3, "duration": 100, "totduration": 150}],
                 "extra_recordings": [{"type": "somadistance", "name": "dend1", "somadistance": 150,
                                       "seclist_name": "basal", "var": "v"}]},
        "ramp": {"stimuli": [{"type": "ramp", "delay": 20, "duration": 100, "amp": 0.0, "amp_end": 3.0,
                              "totduration": 150}]},
        "synaptic": {"stimuli": [{"type": "synapse", "start": 20, "interval": 10, "number": 8, "weight": 0.05,
                                  "synapse": {"mechanism": "ExpSyn", "tau": 2, "e": 0}}],
                     "tstop": 150, "stim_start": 20, "stim_end": 100},
    },
    "features": {
        "step": {"soma": {"Spikecount": [8, 2], "AP_amplitude": [80, 5], "voltage_base": [-65, 1]},
                 "dend1": {"maximum_voltage": [-20, 10]}},
        "ramp": {"soma": {"time_to_first_spike": [40, 10], "Spikecount": [5, 2]}},
        "synaptic": {"soma": {"Spikecount": [8, 2], "mean_frequency": [100, 20]}},
    },
}
PARAMS = {"g_pas.basal": 1e-4, "gnabar_hh.somatic": 0.12, "gkbar_hh.somatic": 0.036,
          "gnabar_hh.axonal": 0.12}
OPTIMIZER = {"algorithm": "cmaes", "population": 6, "generations": 2, "seed": 4}


def config(tmp_path, cell=CELL, name="cell.json"):
    return write_config(tmp_path, name, problem={"cell": cell}, optimizer=OPTIMIZER)


def params(tmp_path, name, **values):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**PARAMS, **values}))
    return path


def evaluate(path, p):
    done = hpcopt("evaluate", path, "--params", p, "--json", check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: the evaluation failed
    return json.loads(done.stdout)


def sequence(path, *ps):
    done = subprocess.run([sys.executable, os.path.join(HERE, "cell_sequence.py"), str(path), *map(str, ps)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])  # NEURON may print CVODE errors before it


def test_evaluate_prints_scores_and_raw_features(tmp_path):
    result = evaluate(config(tmp_path), params(tmp_path, "a"))
    assert result["status"] == "ok"
    assert list(result["objectives"]) == [
        "step.soma.Spikecount", "step.soma.AP_amplitude", "step.soma.voltage_base", "step.dend1.maximum_voltage",
        "ramp.soma.time_to_first_spike", "ramp.soma.Spikecount", "synaptic.soma.Spikecount",
        "synaptic.soma.mean_frequency"]
    spikes = result["features"]["step.soma.Spikecount"][0]
    assert spikes > 0 and result["objectives"]["step.soma.Spikecount"] == pytest.approx(abs(spikes - 8) / 2)
    heights = result["features"]["step.soma.AP_amplitude"]
    assert len(heights) == spikes
    expected = sum(abs(h - 80) for h in heights) / 5 / len(heights)
    assert result["objectives"]["step.soma.AP_amplitude"] == pytest.approx(expected, rel=1e-12)
    # the dendrite sees the back-propagated spikes, the synapse drives spikes too
    assert result["features"]["step.dend1.maximum_voltage"][0] > -20
    assert result["features"]["synaptic.soma.Spikecount"][0] > 0
    assert result["features"]["ramp.soma.time_to_first_spike"][0] > 0


def test_no_leak_between_evaluations(tmp_path):
    """a, b, c then c, b, a in one process, and each in a fresh process: identical."""
    path = config(tmp_path)
    a = params(tmp_path, "a")
    b = params(tmp_path, "b", **{"gnabar_hh.somatic": 0.3, "g_pas.basal": 5e-4})
    c = params(tmp_path, "c", **{"gkbar_hh.somatic": 0.08, "gnabar_hh.axonal": 0.4})
    forward = sequence(path, a, b, c)
    backward = sequence(path, c, b, a)
    assert forward == backward[::-1]
    for p, result in zip((a, b, c), forward):
        fresh = evaluate(path, p)
        assert list(fresh["objectives"].values()) == result["objectives"]
    assert len({json.dumps(r["objectives"]) for r in forward}) == 3  # the three really differ


def test_failed_and_timed_out_simulations_are_data(tmp_path):
    path = config(tmp_path)
    broken = params(tmp_path, "broken", **{"g_pas.basal": -1.0})  # CVODE cannot integrate this
    fine = params(tmp_path, "fine")
    results = sequence(path, broken, fine)
    assert results[0]["status"] == 1 and set(results[0]["objectives"]) == {250.0}
    assert "NEURON" in results[0]["error"] or "non-finite" in results[0]["error"]
    assert results[1] == sequence(path, fine)[0]  # the cell is fine afterwards

    slow = copy.deepcopy(CELL)
    slow["simulation"] = {"max_steps": 50}
    results = sequence(config(tmp_path, slow, "slow.json"), fine)
    assert results[0]["status"] == 2 and "more than 50 integration steps" in results[0]["error"]


def test_run_under_mpi_stores_features_and_status(tmp_path):
    path = config(tmp_path)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=3)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        names = list(f.attrs["feature_names"])
        assert names == list(f.attrs["objective_names"])
        g = f["generations/000001"]
        assert g["features"].shape == (6, len(names))
        assert set(g["rank"][()]) == {0, 1, 2}
        assert f.attrs["neuron_version"] and f.attrs["efel_version"]


def _edit(path, value):
    def apply(cell):
        node = cell
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return cell
    return apply


def _append(path, value):
    def apply(cell):
        node = cell
        for key in path:
            node = node[key]
        node.append(value)
        return cell
    return apply


def _both(*edits):
    def apply(cell):
        for edit in edits:
            cell = edit(cell)
        return cell
    return apply


BAD = [
    (_edit(["morphology"], {"file": "missing.swc"}), "problem.cell.morphology.file: morphology file not found"),
    (_edit(["mod_dir"], "nomods"), "problem.cell.mod_dir: no such directory"),
    (_edit(["mechanisms", "somatic"], ["hh", "nosuchmech"]), "mechanisms.somatic: no mechanism 'nosuchmech'"),
    (_edit(["mechanisms", "apical"], ["pas"]), "no section in section list 'apical'"),
    (_edit(["parameters", 3, "sectionlist"], "apical"), "no section in section list 'apical'"),
    (_edit(["features", "step", "soma", "NotAFeature"], [1, 1]),
     "problem.cell.features.step.soma.NotAFeature: unknown eFEL feature"),
    (_edit(["features", "step", "soma", "Spikecount"], [8, 0]),
     "problem.cell.features.step.soma.Spikecount.std: must be > 0"),
    (_edit(["parameters", 6, "dist"], "{value} * math.exq({distance})"),
     "problem.cell.parameters.6.dist: expression '{value} * math.exq({distance})' does not evaluate"),
    (_edit(["parameters", 3, "param_name"], "g_nosuch"), "g_nosuch.basal: dend has no 'g_nosuch'"),
    (_edit(["features", "step", "nowhere"], {"Spikecount": [1, 1]}), "step.nowhere: no such recording"),
    (_append(["parameters"], {"param_name": "g_pas", "type": "range", "sectionlist": "all", "value": 1e-4}),
     "problem.cell.parameters.7: fixed parameter 'g_pas.all' overrides free parameter 'g_pas.basal' "
     "(parameters.3) on section list basal in every evaluation"),
    (_both(_edit(["parameters", 2], {"param_name": "e_pas", "type": "range", "sectionlist": "all",
                                     "bounds": [-80, -60]}),
           _append(["parameters"], {"param_name": "e_pas", "type": "section", "sectionlist": "somatic",
                                    "value": -70})),
     "problem.cell.parameters.7: fixed parameter 'e_pas.somatic' overrides free parameter 'e_pas.all' "
     "(parameters.2) on section list somatic in every evaluation"),
]


@pytest.mark.parametrize("edit, message", BAD, ids=[b[1][:40] for b in BAD])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_cell_config_is_one_line_before_any_simulation(tmp_path, edit, message, command):
    path = config(tmp_path, edit(copy.deepcopy(CELL)))
    before = sorted(os.listdir(tmp_path))
    done = hpcopt(command, path, cwd=tmp_path, check=False, ranks=2 if command == "run" else None)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert lines[0].startswith(f"hpcopt: error: {path}") or lines[0].startswith(f"hpcopt: error: {tmp_path}")
    assert sorted(os.listdir(tmp_path)) == before


def test_mechanisms_compile_once_when_many_start_together(tmp_path):
    """Five processes compile the same .mod at the same moment into an empty cache:
    all succeed and agree on one build directory."""
    script = ("import sys; from hpcopt.neuron import mechanisms; "
              "print(mechanisms.compiled(sys.argv[1], cache=sys.argv[2]))")
    mod_dir = os.path.join(HERE, "data", "l5pc_like", "mechanisms")
    jobs = [subprocess.Popen([sys.executable, "-c", script, mod_dir, str(tmp_path / "cache")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert all(job.returncode == 0 for job in jobs), outputs
    directories = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(directories) == 1
    assert os.listdir(tmp_path / "cache") == [os.path.basename(directories.pop())]  # no build left behind


def test_mechanisms_with_an_include_build_and_an_edited_include_rebuilds(tmp_path):
    """nrnivmodl reads what a .mod INCLUDEs: it is copied to the build and hashed."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "leakinc.mod").write_text(
        "NEURON { SUFFIX leakinc NONSPECIFIC_CURRENT i RANGE g, e }\n"
        "UNITS { (mA) = (milliamp) (mV) = (millivolt) }\n"
        'INCLUDE "leakparams.inc"\n'
        "ASSIGNED { v (mV) i (mA/cm2) }\n"
        "BREAKPOINT { i = g*(v - e) }\n")
    script = ("import sys; from neuron import h; from hpcopt.neuron import mechanisms; "
              "d = mechanisms.compiled(sys.argv[1], cache=sys.argv[2]); h.nrn_load_dll(mechanisms.library(d)); "
              "s = h.Section(); s.insert('leakinc'); print(d, s(0.5).g_leakinc)")
    builds = []
    for g in ("0.001", "0.002"):
        (mods / "leakparams.inc").write_text(f"PARAMETER {{ g = {g} (S/cm2) e = -65 (mV) }}\n")
        done = subprocess.run([sys.executable, "-c", script, str(mods), str(tmp_path / "cache")],
                              capture_output=True, text=True, check=True)
        directory, value = done.stdout.strip().splitlines()[-1].split()
        assert float(value) == float(g)
        builds.append(directory)
    assert builds[0] != builds[1]


def test_nothing_accumulates_over_evaluations(tmp_path):
    """100 evaluations of every stimulus kind leave no NEURON object behind."""
    done = subprocess.run([sys.executable, os.path.join(HERE, "cell_objects.py"), str(config(tmp_path)),
                           str(params(tmp_path, "a")), "100"], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["first"] == result["last"]
    assert result["first"]["IClamp"] == result["first"]["NetStim"] == result["first"]["ExpSyn"] == 0
    assert result["same_scores"]


def test_stimulus_ending_at_tstop_integrates_to_the_end(tmp_path):
    """A waveform that ends exactly at tstop (an event at tstop) completes, and a run
    that finishes within its step budget is not a timeout."""
    cell = copy.deepcopy(CELL)
    cell["protocols"] = {"wave": {"stimuli": [{"type": "waveform", "times": [0, 50, 100, 180],
                                               "currents": [0, 3.0, -0.05, 0]}],
                                  "tstop": 180, "stim_start": 20, "stim_end": 180}}
    cell["features"] = {"wave": {"soma": {"Spikecount": [3, 1], "voltage_base": [-65, 1]}}}
    cell["simulation"] = {"max_steps": 100000}
    result = evaluate(config(tmp_path, cell), params(tmp_path, "a"))
    assert result["status"] == "ok", result["error"]
    assert result["features"]["wave.soma.Spikecount"][0] > 0



def test_a_fixed_parameter_before_a_free_one_is_fine_after_it_refused(tmp_path):
    """Parameters are applied in order: a fixed value on 'all' then a free one on a
    subset (BluePyOpt's L5PC sets cm so) fits; the other way round the fixed value wins
    in every evaluation, which BluePyOpt runs silently and hpcopt refuses. The same in
    BluePyOpt's parameters.json, where the message names that file."""
    from hpcopt.config import cell as schema
    from hpcopt.config.fields import Where
    from hpcopt.errors import ConfigError

    g_pas = {"param_name": "g_pas", "type": "range", "sectionlist": "all", "value": 1e-4}
    first = copy.deepcopy(CELL)
    first["parameters"].insert(0, g_pas)
    assert schema.parse(first, Where("c.json"), HERE).free[0].name == "g_pas.basal"
    twice = copy.deepcopy(CELL)  # free on all, then free on basal: both are fitted
    twice["parameters"][3]["sectionlist"] = "all"
    twice["parameters"].append({"param_name": "g_pas", "type": "range", "sectionlist": "basal",
                                "bounds": [1e-5, 1e-3]})
    assert len(schema.parse(twice, Where("c.json"), HERE).free) == 5

    model = os.path.join(HERE, "data", "l5pc_like")
    parameters = json.load(open(os.path.join(model, "config", "parameters.json")))
    parameters.append({**g_pas, "sectionlist": "apical"})  # after the free g_pas.all
    (tmp_path / "parameters.json").write_text(json.dumps(parameters))
    files = {key: os.path.join(model, "config", f"{key}.json") for key in ("mechanisms", "protocols", "features")}
    raw = {"bluepyopt": {"morphology": os.path.join(model, "morphology", "cell.swc"),
                         "parameters": str(tmp_path / "parameters.json"), **files}}
    with pytest.raises(ConfigError) as refused:
        schema.problem(raw, Where("c.json", ("problem",)), HERE)
    where = os.path.relpath(tmp_path / "parameters.json")
    assert str(refused.value) == (
        f"{where}: {len(parameters) - 1}: fixed parameter 'g_pas.apical' overrides free parameter 'g_pas.all' "
        "(parameters.7) on section list apical in every evaluation: give the fixed one first, or on section "
        "lists the free one does not cover")
