"""Feature targets (mean, std) made from values: a model's own at known parameters
(a synthetic check that a fit finds them again) or those of recordings
(``hpcopt targets``).

The rule, per feature (eFEL name), from its values over repetitions (one value per
repetition: the mean of what eFEL returns for it, e.g. one AP_amplitude per spike):

    mean = the mean over repetitions, 6 significant digits
    std  = max(spread over repetitions, relative * |mean|, floor), 3 significant digits

where spread is the standard deviation over repetitions (the population
standard deviation, ddof 0; 0 with one repetition or one parameter set), relative 5 % (``--std-relative``)
and floor in the feature's own units from ``FLOORS`` (``--std-floor`` replaces every
floor). Absolute membrane potentials (voltage_base, AHP_depth_abs, ...) take no
relative part (a fraction of -70 mV says nothing about a fit's quality): their std is
the spread, at least 1 mV. The floor keeps a near-zero value (a count of 0, an
ISI_CV of 0.01) from getting a std near 0, so every std is > 0.
"""

import json
import math
import os
import re
import tempfile

import numpy as np

RELATIVE = 0.05
DEFAULT_FLOOR = 0.01

# eFEL feature name -> floor of its std, in the feature's units
FLOORS = {
    "Spikecount": 0.5, "Spikecount_stimint": 0.5,  # counts
    "mean_frequency": 0.5, "inv_first_ISI": 0.5, "inv_last_ISI": 0.5,  # Hz
    "inv_time_to_first_spike": 0.5,
    "time_to_first_spike": 0.5, "time_to_second_spike": 0.5, "time_to_last_spike": 0.5,  # ms
    "AP_width": 0.05, "spike_half_width": 0.05, "AP_duration_half_width": 0.05, "AP1_width": 0.05,
    "decay_time_constant_after_stim": 0.5, "time_constant": 0.1,
    "ISI_CV": 0.02, "adaptation_index2": 0.02,  # dimensionless
    "AP_amplitude": 1.0, "mean_AP_amplitude": 1.0, "AP_amplitude_from_voltagebase": 1.0,  # mV, MOhm
    "AHP_depth": 0.5, "voltage_deflection": 0.1, "voltage_deflection_vb_ssse": 0.1,
    "ohmic_input_resistance_vb_ssse": 1.0,
}
# absolute membrane potentials (mV): no relative part, floor 1 mV
ABSOLUTE = {"voltage_base": 1.0, "steady_state_voltage_stimend": 1.0, "steady_state_voltage": 1.0,
            "AHP_depth_abs": 1.0, "minimum_voltage": 1.0, "maximum_voltage": 1.0, "AP_height": 1.0,
            "peak_voltage": 1.0}


def rule(efel_name, relative=None, floor=None):
    """(relative, floor) of ``efel_name``'s std; ``relative``/``floor`` replace the
    defaults (relative not for absolute potentials)."""
    if efel_name in ABSOLUTE:
        return 0.0, ABSOLUTE[efel_name] if floor is None else floor
    return (RELATIVE if relative is None else relative,
            FLOORS.get(efel_name, DEFAULT_FLOOR) if floor is None else floor)


def significant(value, digits):
    """``value`` rounded to ``digits`` significant digits (a plain float)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(f"{value:.{digits - 1}e}")


def target(efel_name, values, relative=None, floor=None):
    """(mean, std) of one value per repetition, by the rule above."""
    values = np.asarray(values, dtype=float)
    mean = float(np.mean(values))
    share, least = rule(efel_name, relative, floor)
    return significant(mean, 6), significant(max(float(np.std(values)), share * abs(mean), least), 3)


def document(raw, targets):
    """The features object ``raw`` (as the config gives it: BluePyOpt's features.json
    form or problem.cell's) with every feature's target from ``targets`` {feature
    name: (mean, std)}: ``[mean, std]`` where it was listed by name, as null or as a
    pair; an object keeps its other keys (threshold, settings, window). Order is kept."""
    out = {}
    for protocol, recordings in raw.items():
        for recording, features in recordings.items():
            if isinstance(features, list):
                features = dict.fromkeys(features)
            written = out.setdefault(protocol, {}).setdefault(recording, {})
            for efel_name, spec in features.items():
                mean, std = targets[f"{protocol}.{recording}.{efel_name}"]
                if isinstance(spec, dict):
                    written[efel_name] = {"mean": mean, "std": std,
                                          **{k: v for k, v in spec.items() if k not in ("mean", "std")}}
                else:
                    written[efel_name] = [mean, std]
    return out


def text(features):
    """``features`` as JSON text, indented, each [mean, std] on one line."""
    indented = json.dumps(features, indent=2) + "\n"
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m[1].split(",")) + "]",
                  indented)


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file renamed into place: a
    reader never sees half a file, and an error leaves no file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
