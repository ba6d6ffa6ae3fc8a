"""Write a cell example's feature targets from known ("truth") parameter values.

    python examples/make_targets.py examples/cell/config.json examples/cell/truth.json
    python examples/make_targets.py examples/hh/config.json examples/hh/truth.json

CONFIG is an hpcopt config with a ``problem.cell`` section; TRUTH is a JSON
object ``{free parameter name: value}`` naming every free parameter with
BluePyOpt's names (``gnabar_hh.somatic``). The script evaluates the model once
at the truth with hpcopt's own code (``hpcopt.config.load``,
``hpcopt.problem.Problem(config).evaluator()``), so the targets are exactly what
``hpcopt run`` computes, and rewrites CONFIG in place: for every feature of
``problem.cell.features``,

    mean = the mean of the feature's values at the truth (eFEL may return
           several, e.g. one AP_amplitude per spike), rounded to 6 significant
           digits;
    std  = max(relative * |mean|, floor), rounded to 3 significant digits,

with ``(relative, floor)`` by eFEL feature name, in the feature's units, from
``hpcopt.features.targets.rule``: the rule of ``hpcopt targets`` (docs/cells.md),
here without a spread since there is one parameter set. Absolute membrane
potentials (voltage_base, AHP_depth_abs, ...) get a fixed std (relative 0),
since a fraction of -70 mV says nothing about how well a fit matches; every
other feature gets 5 % of its value with a floor that keeps near-zero values (a
count of 0, an ISI_CV of 0.01) from dominating the score. ``hpcopt targets
CONFIG --params TRUTH -o FEATURES.json`` writes the same targets to a file of
their own; this script rewrites the config in place.

Everything else in CONFIG (key order, other sections, a feature's other keys
such as ``threshold`` or ``settings``, the ``[mean, std]`` or
``{"mean": .., "std": ..}`` form) is kept; the file is written as JSON with
indent 2. Running the script again gives the same file.

The script refuses, with exit status 1 and nothing written, when the truth
does not name exactly the free parameters, when the simulation fails at the
truth, when a feature has no value at the truth (eFEL found nothing, e.g. no
spike), or when eFEL's trace check fails there (spikes outside the stimulus).
"""

import argparse
import json
import os
import sys

import numpy as np

from hpcopt import config as configuration
from hpcopt.errors import HpcoptError
from hpcopt.features import scoring as efeatures
from hpcopt.features import targets
from hpcopt.features.targets import significant
from hpcopt.problem.outcome import OK, STATUS_NAMES
from hpcopt.problem.space import Problem


class TargetError(Exception):
    """The targets cannot be made (bad truth, failed simulation, missing feature)."""


def std_of(efel_name, mean):
    relative, floor = targets.rule(efel_name)
    return significant(max(relative * abs(mean), floor), 3)


def truth_values(config_path, truth_path):
    """{feature name: [values]} of the config's model at the truth, and the Config.

    Raises TargetError when the truth or the simulation is unusable.
    """
    config = configuration.load(config_path)
    if not hasattr(config.problem, "model"):
        raise TargetError(f"{config_path}: not a cell model (problem.cell): nothing to do")
    with open(truth_path, encoding="utf-8") as f:
        truth = json.load(f)
    problem = Problem(config)
    if not isinstance(truth, dict) or set(truth) != set(problem.names):
        given = ", ".join(truth) if isinstance(truth, dict) else repr(truth)
        raise TargetError(f"{truth_path}: expected exactly the free parameters {', '.join(problem.names)}; "
                          f"found {given}")
    x = np.array([float(truth[name]) for name in problem.names])
    outcome = problem.evaluator()(x)
    if outcome.status != OK:
        raise TargetError(f"the simulation at the truth {STATUS_NAMES[outcome.status]}: {outcome.error}")
    raw = outcome.raw
    missing = [name for name in problem.features if not raw.get(name)]
    if missing:
        raise TargetError(f"no value at the truth for feature(s) {', '.join(missing)} (eFEL found nothing): "
                          "change the protocol, the feature or the truth")
    # With the trace check passed, each score is eFEL's distance from the config's old targets;
    # a penalty where the distance is finite means the trace check failed.
    for feature, score in zip(config.problem.model.features, outcome.objectives):
        expected = efeatures.distance(raw[feature.name], feature.mean, feature.std, config.problem.penalty)
        if score != expected:
            raise TargetError(f"eFEL's trace check fails at the truth for protocol {feature.protocol!r} "
                              "(spikes outside the stimulus window): change the protocol or the truth")
    return raw, config


def make_targets(config_path, truth_path):
    """Rewrite the feature targets of ``config_path`` in place; returns {feature name: (mean, std)}."""
    raw, config = truth_values(config_path, truth_path)
    with open(config_path, encoding="utf-8") as f:
        document = json.load(f)
    targets = {}
    sections = document["problem"]["cell"]["features"]
    for protocol, recordings in sections.items():
        for recording, features in recordings.items():
            for efel_name, spec in features.items():
                name = f"{protocol}.{recording}.{efel_name}"
                mean = significant(float(np.mean(raw[name])), 6)
                std = std_of(efel_name, mean)
                if isinstance(spec, dict):
                    spec["mean"], spec["std"] = mean, std
                else:
                    features[efel_name] = [mean, std]
                targets[name] = (mean, std)
    text = json.dumps(document, indent=2) + "\n"
    temporary = config_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, config_path)
    return targets, raw


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="hpcopt config with a problem.cell section (rewritten in place)")
    parser.add_argument("truth", help="JSON {free parameter: value}")
    args = parser.parse_args(argv)
    try:
        targets, raw = make_targets(args.config, args.truth)
    except (TargetError, HpcoptError, OSError, json.JSONDecodeError) as err:
        print(f"make_targets: error: {err}", file=sys.stderr)
        return 1
    for name, (mean, std) in targets.items():
        values = raw[name]
        spread = f" ({len(values)} values, {min(values):.4g} .. {max(values):.4g})" if len(values) > 1 else ""
        print(f"{name}: mean {mean:.6g}, std {std:.3g}{spread}")
    print(f"wrote {len(targets)} targets to {args.config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
