"""Feature scoring from made-up traces (no simulation): the same numbers as eFEL's
own get_distance, one extraction per trace, settings that do not leak."""

import numpy as np
import pytest

efel = pytest.importorskip("efel")

from hpcopt.config.cell import Feature  # noqa: E402
from hpcopt.features.scoring import Scorer, distance  # noqa: E402


def spike_train(times, dt=0.025, tstop=400.0, rest=-70.0):
    """A voltage trace with spikes (rise 0.5 ms to +30 mV, fall 1.5 ms, an AHP) at ``times``."""
    t = np.arange(0, tstop, dt)
    v = np.full_like(t, rest)
    for s in times:
        rise = (t >= s) & (t < s + 0.5)
        v[rise] = rest + (t[rise] - s) / 0.5 * 100
        fall = (t >= s + 0.5) & (t < s + 2.0)
        v[fall] = rest + 100 - (t[fall] - s - 0.5) / 1.5 * 110
        ahp = (t >= s + 2.0) & (t < s + 12.0)
        v[ahp] = rest - 10 * np.exp(-(t[ahp] - s - 2.0) / 3)
    return t, v


TRACES = {("step", "soma"): spike_train([120, 150, 185, 225]), ("step", "dend"): spike_train([121, 151])}


def feature(name, mean, std, recording="soma", threshold=-20.0, settings=()):
    return Feature("step", recording, name, mean, std, 100.0, 300.0, threshold, settings)


FEATURES = (
    feature("Spikecount", 5, 1),
    feature("AP_amplitude", 95, 2),
    feature("ISI_values", 35, 5),
    feature("mean_frequency", 20, 4),
    feature("Spikecount", 3, 1, recording="dend", threshold=-55.0),
    feature("time_to_first_spike", 20, 5, recording="dend", threshold=-55.0),
)


def reference(f, trace):
    """eFEL's own get_distance, on a fresh eFEL, one feature at a time (as BluePyOpt)."""
    efel.reset()
    efel.set_setting("Threshold", f.threshold)
    for key, value in f.settings:
        efel.set_setting(key, value)
    t, v = trace
    return efel.get_distance({"T": t, "V": v, "stim_start": [f.stim_start], "stim_end": [f.stim_end]},
                             f.efel_name, f.mean, f.std, trace_check=False, error_dist=250)


def test_scores_are_efels_distances():
    scores, means, raw = Scorer(FEATURES, 250.0)(TRACES)
    for i, f in enumerate(FEATURES):
        assert scores[i] == reference(f, TRACES[(f.protocol, f.recording)]), f.name
    assert raw["step.soma.Spikecount"] == [4.0] and means[0] == 4.0
    assert len(raw["step.soma.AP_amplitude"]) == 4 and scores[1] > 0


def test_missing_feature_scores_the_penalty():
    flat = {key: (t, np.full_like(v, -70.0)) for key, (t, v) in TRACES.items()}
    scores, means, raw = Scorer(FEATURES, 99.0)(flat)
    assert raw["step.soma.AP_amplitude"] is None and np.isnan(means[1]) and scores[1] == 99.0
    assert scores[0] == abs(0 - 5) / 1  # no spike is a count of 0, not missing


def test_settings_of_one_trace_do_not_leak_into_the_next():
    """A feature with its own eFEL settings, scored before the others, changes nothing
    for them: each trace starts from eFEL's defaults."""
    special = feature("AP_amplitude", 95, 2, settings=(("interp_step", 0.5), ("DerivativeThreshold", 50.0)))
    alone, _, _ = Scorer(FEATURES, 250.0)(TRACES)
    mixed, _, _ = Scorer((special,) + FEATURES, 250.0)(TRACES)
    assert np.array_equal(alone, mixed[1:])
    assert mixed[0] == reference(special, TRACES[("step", "soma")])


def test_trace_check_fails_a_trace_with_spikes_outside_the_window():
    late = {("step", "soma"): spike_train([120, 320]), ("step", "dend"): spike_train([121])}
    unchecked, _, _ = Scorer(FEATURES[:1], 250.0)(late)
    checked, _, _ = Scorer(FEATURES[:1], 250.0, trace_check=True)(late)
    assert unchecked[0] == abs(2 - 5) and checked[0] == 250.0  # Spikecount counts the whole trace


def test_distance_formula():
    assert distance([1.0, 3.0], 2.0, 0.5, 250) == 2.0
    assert distance(None, 2.0, 0.5, 250) == 250 and distance([], 2.0, 0.5, 7) == 7
    assert distance([np.nan], 2.0, 0.5, 250) == 250


def test_extraction_uses_its_own_settings_after_someone_else_resets_efel():
    """Other eFEL code in the process (BluePyOpt's, a notebook's) calls efel.reset(), which
    replaces eFEL's settings object, and changes settings: the scorer still extracts with
    its own settings, the values a fresh process gets."""
    import json
    import os
    import subprocess
    import sys

    scorer = Scorer(FEATURES, 250.0)
    before = scorer(TRACES)
    efel.reset()
    efel.set_setting("interp_step", 0.5)
    efel.set_setting("DerivativeThreshold", 50.0)
    try:
        after = scorer(TRACES)
    finally:
        efel.reset()
    here = os.path.dirname(os.path.abspath(__file__))
    script = ("import json, test_features as t; scores, means, raw = t.Scorer(t.FEATURES, 250.0)(t.TRACES); "
              "print(json.dumps([scores.tolist(), means.tolist(), raw]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=here, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")})
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for ours in (before, after):
        assert [ours[0].tolist(), ours[1].tolist(), ours[2]] == fresh
