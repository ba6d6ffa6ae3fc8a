"""BluePyOpt side of the hpcopt/BluePyOpt score-equivalence test.

Builds a BluePyOpt ``CellEvaluator`` from a model directory laid out like
BluePyOpt's L5PC example (``config/{mechanisms,parameters,protocols,
features}.json``, ``morphology/*.swc|*.asc``, optional ``mechanisms/*.mod``),
exactly the way ``examples/l5pc/l5pc_model.py`` and ``l5pc_evaluator.py`` do,
and returns the objective scores BluePyOpt gives for a parameter set, together
with the raw eFEL feature values behind them.

Used by the tests as the reference; run it directly to print the scores at the
model's release parameters::

    python tests/bluepyopt_reference.py [MODEL_DIR] [PARAMS_JSON]

User mechanisms (``MODEL_DIR/mechanisms/*.mod``) are compiled once with
``nrnivmodl`` into ``<tempdir>/hpcopt-bpo-nrnmech-<hash of the sources>``
(built in a private directory, then renamed into place, so that concurrent
callers never compile into the same directory) and loaded from there; the
source tree is never written to.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import bluepyopt.ephys as ephys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL_DIR = os.path.join(HERE, "data", "l5pc_like")

# Template name of the example (l5pc_model.create: CellModel('l5pc', ...)).
CELL_NAME = "l5pc"

_EVALUATORS = {}


# ---------------------------------------------------------------- mechanisms

def _mod_files(model_dir):
    return sorted(glob.glob(os.path.join(model_dir, "mechanisms", "*.mod")))


def _nrnivmodl():
    candidate = os.path.join(os.path.dirname(sys.executable), "nrnivmodl")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("nrnivmodl")
    if found is None:
        raise RuntimeError("nrnivmodl not found next to %s nor on PATH" % sys.executable)
    return found


def _mod_suffixes(mod_paths):
    suffixes = []
    for path in mod_paths:
        with open(path) as f:
            for line in f:
                words = line.split(":")[0].split()
                if len(words) >= 2 and words[0] in ("SUFFIX", "POINT_PROCESS", "ARTIFICIAL_CELL"):
                    suffixes.append(words[1])
    return suffixes


def _mechanism_loaded(name):
    from neuron import h

    for kind in (0, 1):  # density mechanisms, point processes
        mtype = h.MechanismType(kind)
        ref = h.ref("")
        for i in range(int(mtype.count())):
            mtype.select(i)
            mtype.selected(ref)
            if ref[0] == name:
                return True
    return False


def compiled_mechanisms_dir(model_dir):
    """Compile MODEL_DIR/mechanisms/*.mod once; return the directory (None if no .mod)."""
    mods = _mod_files(model_dir)
    if not mods:
        return None
    digest = hashlib.sha256()
    for path in mods:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    target = os.path.join(tempfile.gettempdir(), "hpcopt-bpo-nrnmech-" + digest.hexdigest()[:20])
    if os.path.isdir(target):
        return target
    work = tempfile.mkdtemp(prefix=".hpcopt-bpo-nrnmech-build-", dir=tempfile.gettempdir())
    try:
        for path in mods:
            shutil.copy(path, work)
        done = subprocess.run([_nrnivmodl()], cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("nrnivmodl failed in %s:\n%s\n%s" % (work, done.stdout, done.stderr))
        try:
            os.rename(work, target)
        except OSError:
            if not os.path.isdir(target):  # not a concurrent creator: a real error
                raise
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
    return target


def load_mechanisms(model_dir):
    """Compile (if needed) and load the model's own mechanisms into NEURON."""
    mods = _mod_files(model_dir)
    if not mods:
        return None
    if all(_mechanism_loaded(s) for s in _mod_suffixes(mods)):
        return None  # already in this process (loaded by us or by someone else)
    import neuron

    directory = compiled_mechanisms_dir(model_dir)
    if not neuron.load_mechanisms(directory, warn_if_already_loaded=False):
        raise RuntimeError("could not load NEURON mechanisms from %s" % directory)
    return directory


# ---------------------------------------------------------------- l5pc_model.py

def _load(model_dir, name):
    with open(os.path.join(model_dir, "config", name)) as f:
        return json.load(f)


def define_mechanisms(model_dir):
    """As l5pc_model.define_mechanisms."""
    mechanisms = []
    for sectionlist, channels in _load(model_dir, "mechanisms.json").items():
        seclist_loc = ephys.locations.NrnSeclistLocation(sectionlist, seclist_name=sectionlist)
        for channel in channels:
            mechanisms.append(ephys.mechanisms.NrnMODMechanism(
                name="%s.%s" % (channel, sectionlist),
                mod_path=None,
                suffix=channel,
                locations=[seclist_loc],
                preloaded=True))
    return mechanisms


def define_parameters(model_dir):
    """As l5pc_model.define_parameters."""
    parameters = []
    for param_config in _load(model_dir, "parameters.json"):
        if "value" in param_config:
            frozen, value, bounds = True, param_config["value"], None
        elif "bounds" in param_config:
            frozen, value, bounds = False, None, param_config["bounds"]
        else:
            raise Exception("Parameter config has to have bounds or value: %s" % param_config)

        if param_config["type"] == "global":
            parameters.append(ephys.parameters.NrnGlobalParameter(
                name=param_config["param_name"],
                param_name=param_config["param_name"],
                frozen=frozen,
                bounds=bounds,
                value=value))
        elif param_config["type"] in ["section", "range"]:
            if param_config["dist_type"] == "uniform":
                scaler = ephys.parameterscalers.NrnSegmentLinearScaler()
            elif param_config["dist_type"] == "exp":
                scaler = ephys.parameterscalers.NrnSegmentSomaDistanceScaler(
                    distribution=param_config["dist"])
            seclist_loc = ephys.locations.NrnSeclistLocation(
                param_config["sectionlist"], seclist_name=param_config["sectionlist"])
            name = "%s.%s" % (param_config["param_name"], param_config["sectionlist"])
            cls = (ephys.parameters.NrnSectionParameter if param_config["type"] == "section"
                   else ephys.parameters.NrnRangeParameter)
            parameters.append(cls(
                name=name,
                param_name=param_config["param_name"],
                value_scaler=scaler,
                value=value,
                frozen=frozen,
                bounds=bounds,
                locations=[seclist_loc]))
        else:
            raise Exception("Param config type has to be global, section or range: %s"
                            % param_config)
    return parameters


def morphology_path(model_dir):
    paths = sorted(glob.glob(os.path.join(model_dir, "morphology", "*.swc"))
                   + glob.glob(os.path.join(model_dir, "morphology", "*.asc")))
    if len(paths) != 1:
        raise RuntimeError("expected exactly one .swc/.asc in %s/morphology, found %s"
                           % (model_dir, paths))
    return paths[0]


def create_cell(model_dir, do_replace_axon=True):
    """As l5pc_model.create."""
    return ephys.models.CellModel(
        CELL_NAME,
        morph=ephys.morphologies.NrnFileMorphology(
            morphology_path(model_dir), do_replace_axon=do_replace_axon),
        mechs=define_mechanisms(model_dir),
        params=define_parameters(model_dir))


# ---------------------------------------------------------------- l5pc_evaluator.py

def define_protocols(model_dir):
    """As l5pc_evaluator.define_protocols (NEURON branch)."""
    protocols = {}
    soma_loc = ephys.locations.NrnSeclistCompLocation(
        name="soma", seclist_name="somatic", sec_index=0, comp_x=0.5)

    for protocol_name, protocol_definition in _load(model_dir, "protocols.json").items():
        recordings = [ephys.recordings.CompRecording(
            name="%s.soma.v" % protocol_name, location=soma_loc, variable="v")]

        for recording_definition in protocol_definition.get("extra_recordings", []):
            if recording_definition["type"] != "somadistance":
                raise Exception("Recording type %s not supported" % recording_definition["type"])
            location = ephys.locations.NrnSomaDistanceCompLocation(
                name=recording_definition["name"],
                soma_distance=recording_definition["somadistance"],
                seclist_name=recording_definition["seclist_name"])
            recordings.append(ephys.recordings.CompRecording(
                name="%s.%s.%s" % (protocol_name, location.name, recording_definition["var"]),
                location=location,
                variable=recording_definition["var"]))

        stimuli = [ephys.stimuli.NrnSquarePulse(
            step_amplitude=stim["amp"],
            step_delay=stim["delay"],
            step_duration=stim["duration"],
            location=soma_loc,
            total_duration=stim["totduration"]) for stim in protocol_definition["stimuli"]]

        protocols[protocol_name] = ephys.protocols.SweepProtocol(protocol_name, stimuli, recordings)
    return protocols


def define_fitness_calculator(model_dir, protocols):
    """As l5pc_evaluator.define_fitness_calculator."""
    objectives = []
    threshold = None
    for protocol_name, locations in _load(model_dir, "features.json").items():
        for location, features in locations.items():
            for efel_feature_name, meanstd in features.items():
                feature_name = "%s.%s.%s" % (protocol_name, location, efel_feature_name)
                recording_names = {"": "%s.%s.v" % (protocol_name, location)}
                stimulus = protocols[protocol_name].stimuli[0]

                stim_start = stimulus.step_delay
                # The example leaves threshold unchanged (from the previous
                # feature) for locations that are neither 'soma' nor '*dend*'.
                if location == "soma":
                    threshold = -20
                elif "dend" in location:
                    threshold = -55

                if protocol_name == "bAP":
                    stim_end = stimulus.total_duration
                else:
                    stim_end = stimulus.step_delay + stimulus.step_duration

                feature = ephys.efeatures.eFELFeature(
                    feature_name,
                    efel_feature_name=efel_feature_name,
                    recording_names=recording_names,
                    stim_start=stim_start,
                    stim_end=stim_end,
                    exp_mean=meanstd[0],
                    exp_std=meanstd[1],
                    threshold=threshold)
                objectives.append(ephys.objectives.SingletonObjective(feature_name, feature))
    return ephys.objectivescalculators.ObjectivesCalculator(objectives)


def build_evaluator(model_dir=DEFAULT_MODEL_DIR, isolate_protocols=None, timeout=None):
    """A BluePyOpt CellEvaluator for MODEL_DIR, built as l5pc_evaluator.create().

    isolate_protocols=None is BluePyOpt's default: every protocol runs in a
    forked child process (pebble), as in the L5PC example.
    """
    model_dir = os.path.abspath(model_dir)
    load_mechanisms(model_dir)
    cell = create_cell(model_dir)
    protocols = define_protocols(model_dir)
    calculator = define_fitness_calculator(model_dir, protocols)
    param_names = [param.name for param in cell.params.values() if not param.frozen]
    sim = ephys.simulators.NrnSimulator()
    return ephys.evaluators.CellEvaluator(
        cell_model=cell,
        param_names=param_names,
        fitness_protocols=protocols,
        fitness_calculator=calculator,
        isolate_protocols=isolate_protocols,
        timeout=timeout,
        sim=sim)


def _evaluator(model_dir):
    key = os.path.abspath(model_dir)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = build_evaluator(key)
    return _EVALUATORS[key]


def _raw_values(feature, responses):
    """Raw eFEL values of one eFELFeature, computed with BluePyOpt's own trace and settings."""
    import efel

    trace = feature._construct_efel_trace(responses)
    if trace is None:
        return None
    feature._setup_efel()
    try:
        values = efel.get_feature_values(
            [trace], [feature.efel_feature_name], raise_warnings=False)[0][feature.efel_feature_name]
    finally:
        efel.reset()
    return None if values is None else [float(v) for v in values]


def bluepyopt_scores(model_dir, params, evaluator=None):
    """BluePyOpt's scores for the free parameters PARAMS ({name: value}).

    Returns (scores {objective name: score}, values {objective name: list of
    raw eFEL values, or None when eFEL returned nothing / the trace is missing}).
    The scores are exactly CellEvaluator.evaluate_with_dicts(params).
    """
    ev = evaluator if evaluator is not None else _evaluator(model_dir)
    missing = set(ev.param_names) - set(params)
    extra = set(params) - set(ev.param_names)
    if missing or extra:
        raise KeyError("free parameters missing: %s; unknown: %s" % (sorted(missing), sorted(extra)))
    responses = ev.run_protocols(ev.fitness_protocols.values(), dict(params))
    scores = {name: float(score)
              for name, score in ev.fitness_calculator.calculate_scores(responses).items()}
    values = {objective.name: _raw_values(objective.features[0], responses)
              for objective in ev.fitness_calculator.objectives}
    return scores, values


def release_params(model_dir=DEFAULT_MODEL_DIR):
    with open(os.path.join(model_dir, "config", "params_release.json")) as f:
        return json.load(f)


def main(argv):
    model_dir = argv[1] if len(argv) > 1 else DEFAULT_MODEL_DIR
    if len(argv) > 2:
        with open(argv[2]) as f:
            params = json.load(f)
    else:
        params = release_params(model_dir)
    scores, values = bluepyopt_scores(model_dir, params)
    print(json.dumps({"n_objectives": len(scores), "scores": scores, "values": values}, indent=1))
    print("number of objectives: %d" % len(scores))


if __name__ == "__main__":
    main(sys.argv)
