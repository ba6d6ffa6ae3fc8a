"""BluePyOpt's L5PC-style files (mechanisms.json, parameters.json, protocols.json,
features.json) read as a ``problem.cell`` object, with that example's conventions."""

import os

from . import fields
from .fields import path_of

ARBOR_PREFIX = "arbor_"  # keys BluePyOpt 1.14 keeps in protocols.json for its Arbor export
_BLUEPYOPT_KEYS = ("morphology", "mechanisms", "parameters", "protocols", "features")


def from_bluepyopt(raw, where, base_dir):
    """``problem.bluepyopt`` (paths to L5PC-style files) as a ``problem.cell`` object.

    Keys that BluePyOpt keeps for Arbor (``arbor_*`` in extra_recordings) are ignored,
    and where they were is said in ``wheres['ignored']`` (one line); any other unknown
    key is an error, as in ``problem.cell``.

    Conventions of BluePyOpt's L5PC example: the soma recording is 'soma', the
    stimulus window of a protocol is [delay, delay + duration] of its first
    stimulus, except for 'bAP' where it ends at totduration; spike threshold
    -20 mV at the soma, -55 mV elsewhere.
    """
    t = fields.table(raw, where, required=_BLUEPYOPT_KEYS, optional=("replace_axon", "mod_dir", "nseg_length",
                                                               "simulation", "penalty"))
    files, wheres = {}, {}
    for key in ("mechanisms", "parameters", "protocols", "features"):
        path = path_of(t[key], where, key, base_dir)
        wheres[key] = fields.Where(os.path.relpath(path))
        files[key] = fields.read_json(path, what=f"the {key} file named by {where.source}")
    protocols = {}
    if not isinstance(files["protocols"], dict):
        raise where.error("protocols", "expected an object {protocol name: {stimuli, extra_recordings}}")
    ignored = []
    for name, spec in files["protocols"].items():
        spec = dict(spec) if isinstance(spec, dict) else spec
        if isinstance(spec, dict) and isinstance(spec.get("extra_recordings"), list):
            spec["extra_recordings"] = [_for_neuron(r, f"{name}.extra_recordings.{i}", ignored)
                                        for i, r in enumerate(spec["extra_recordings"])]
        if isinstance(spec, dict) and isinstance(spec.get("stimuli"), list) and spec["stimuli"]:
            first = spec["stimuli"][0]
            if name == "bAP" and isinstance(first, dict) and "totduration" in first:
                spec.setdefault("stim_end", first["totduration"])
        protocols[name] = spec
    cell = {
        "morphology": {"file": path_of(t["morphology"], where, "morphology", base_dir),
                       "replace_axon": t.get("replace_axon", True)},
        "mechanisms": files["mechanisms"],
        "parameters": files["parameters"],
        "protocols": protocols,
        "features": files["features"],
    }
    if "nseg_length" in t:
        cell["morphology"]["nseg_length"] = t["nseg_length"]
    if "mod_dir" in t:
        cell["mod_dir"] = path_of(t["mod_dir"], where, "mod_dir", base_dir)
    for key in ("simulation", "penalty"):
        if key in t:
            cell[key] = t[key]
    if ignored:
        wheres["ignored"] = f"{wheres['protocols'].source}: " + ", ".join(ignored)
    return cell, wheres


def _for_neuron(recording, where, ignored):
    """A recording without the keys BluePyOpt keeps for Arbor (``arbor_*``), which NEURON
    does not use; their places go into ``ignored``."""
    if not isinstance(recording, dict):
        return recording
    for key in recording:
        if key.startswith(ARBOR_PREFIX):
            ignored.append(f"{where}.{key}")
    return {k: v for k, v in recording.items() if not k.startswith(ARBOR_PREFIX)}
