"""BluePyOpt's own L5PC example, as its source distribution ships it (tests/corpus.py),
runs unchanged: from another folder, and from its own folder after ``nrnivmodl
mechanisms`` (NEURON then loads ./x86_64 by itself), scoring exactly what BluePyOpt's
own ``l5pc_evaluator.create()`` scores for the published release parameters.
"""

import ast
import json
import os
import subprocess
import sys

import corpus
import pytest
from conftest import BIN, HERE, hpcopt, write_config

pytest.importorskip("bluepyopt")

FILES = {"morphology": "morphology/C060114A7.asc", "mechanisms": "config/mechanisms.json",
         "parameters": "config/parameters.json", "protocols": "config/protocols.json",
         "features": "config/features.json", "mod_dir": "mechanisms"}


@pytest.fixture(scope="module")
def l5pc(tmp_path_factory):
    """A copy of the example with ``nrnivmodl mechanisms`` run in it, as BluePyOpt's
    README tells users to do."""
    folder = corpus.copy("l5pc", tmp_path_factory.mktemp("corpus"))
    subprocess.run([os.path.join(BIN, "nrnivmodl"), "mechanisms"], cwd=folder, check=True, capture_output=True)
    return folder


def release_params(folder):
    """The release circuit's parameters, as l5pc_analysis.py (the example's) defines them."""
    tree = ast.parse(open(os.path.join(folder, "l5pc_analysis.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "release_params":
            return ast.literal_eval(node.value)
    raise AssertionError("no release_params in l5pc_analysis.py")


def bluepyopt_scores(folder, params, cwd):
    """BluePyOpt's scores from the example's own evaluator. It runs in another folder than
    the example's: there NEURON 9 loads ./x86_64 at import, and the evaluator's own
    load of the same library fails ("The user defined name already exists")."""
    script = ("import json, sys; import l5pc_evaluator; "
              "print(json.dumps(l5pc_evaluator.create().evaluate_with_dicts(json.load(open(sys.argv[1])))))")
    done = subprocess.run([sys.executable, "-c", script, params], cwd=cwd, capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": folder})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def release(l5pc, tmp_path_factory):
    """(the release parameters' file, BluePyOpt's scores for them)."""
    directory = tmp_path_factory.mktemp("release")
    params = directory / "release.json"
    params.write_text(json.dumps(release_params(l5pc)))
    return params, bluepyopt_scores(l5pc, params, directory)


def config(directory, folder, name="config.json", **optimizer):
    files = {key: os.path.join(folder, path) for key, path in FILES.items()}
    return write_config(directory, name, problem={"bluepyopt": files},
                        optimizer={"algorithm": "ibea", "population": 2, "generations": 1, **optimizer})


def test_validates_unchanged_and_says_what_it_ignored(l5pc, tmp_path):
    done = hpcopt("validate", config(tmp_path, l5pc))
    lines = done.stdout.strip().splitlines()
    assert "valid: ibea, 20 free parameters, 35 objectives" in lines[1]
    assert lines[2].startswith("settings: seed 1, offspring ")
    assert lines[3].startswith("scale of each free parameter")
    scales = [line.split() for line in lines[4:]]  # name, bounds, the scale auto gives it
    assert len(scales) == 20  # auto: log where positive bounds span two decades, the calcium dynamics' gamma
    assert sorted(words[0] for words in scales if words[-1] == "log") == ["gamma_CaDynamics_E2.axonal",
                                                                          "gamma_CaDynamics_E2.somatic"]
    assert "ignored (kept by BluePyOpt for Arbor" in lines[0]
    assert "bAP.extra_recordings.0.arbor_branch_index_with_replaced_axon" in lines[0]


def test_scores_equal_bluepyopts_from_another_folder_and_from_its_own(l5pc, release, tmp_path):
    params, theirs = release
    path = config(tmp_path, l5pc)
    for cwd in (tmp_path, l5pc):  # its own folder has ./x86_64, which NEURON loads at import
        ours = json.loads(hpcopt("evaluate", path, "--params", params, "--json", cwd=cwd).stdout)
        assert ours["status"] == "ok"
        assert sorted(ours["objectives"]) == sorted(theirs) and len(theirs) == 35
        for name, score in theirs.items():
            assert ours["objectives"][name] == pytest.approx(score, abs=1e-6), (cwd, name)
    assert 0 < sum(theirs.values()) < 250 * len(theirs)


def test_runs_at_2_ranks_from_its_own_folder(l5pc, tmp_path):
    hpcopt("run", config(tmp_path, l5pc), "-o", tmp_path / "run.h5", ranks=2, cwd=l5pc)
    best = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    assert len(best["parameters"]) == 20 and len(best["objectives"]) == 35


def test_other_mechanisms_loaded_by_neuron_stop_it_with_one_line(l5pc, tmp_path):
    """./x86_64 built from the example's mechanisms, mod_dir an edited copy of them."""
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in os.listdir(os.path.join(l5pc, "mechanisms")):
        text = open(os.path.join(l5pc, "mechanisms", name), "rb").read()
        (edited / name).write_bytes(text + (b"\n: edited\n" if name == "Ih.mod" else b""))
    path = config(tmp_path, l5pc)
    raw = json.load(open(path))
    raw["problem"]["bluepyopt"]["mod_dir"] = str(edited)
    json.dump(raw, open(path, "w"))
    done = hpcopt("validate", path, cwd=l5pc, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NEURON already loaded mechanisms" in lines[0] and "x86_64" in lines[0], done.stderr


def evaluator_config(directory, folder, **optimizer):
    problem = {"bluepyopt_evaluator": {"factory": "l5pc_evaluator:create", "arguments": {"do_replace_axon": True},
                                       "path": [folder]}}
    return write_config(directory, "evaluator.json", problem=problem,
                        optimizer={"algorithm": "ibea", "population": 2, "generations": 1, **optimizer})


def test_its_own_evaluator_scores_exactly_as_bluepyopt_from_another_folder_and_from_its_own(l5pc, release,
                                                                                            tmp_path):
    params, theirs = release
    path = evaluator_config(tmp_path, l5pc)
    for cwd in (tmp_path, l5pc):  # from its own folder NEURON has loaded ./x86_64 before BluePyOpt loads it
        ours = json.loads(hpcopt("evaluate", path, "--params", params, "--json", cwd=cwd).stdout)
        assert ours["status"] == "ok" and ours["objectives"] == theirs, cwd


def test_its_own_evaluator_runs_at_2_ranks(l5pc, tmp_path):
    hpcopt("run", evaluator_config(tmp_path, l5pc), "-o", tmp_path / "run.h5", ranks=2, cwd=l5pc)
    best = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    assert len(best["parameters"]) == 20 and len(best["objectives"]) == 35 and best["status"] == "ok"


NOTEBOOKS = [("simplecell", "simplecell.ipynb", "cell_evaluator", {"gnabar_hh": 0.1, "gkbar_hh": 0.03}),
             ("expsyn", "ExpSyn.ipynb", "cell_evaluator", {"expsyn_tau": 10.0}),
             # a meta-parameter: cm_meta sets cm on the soma and on the axon (NrnMetaListEqualParameter)
             ("metaparameters", "metaparameters.ipynb", "cell_evaluator", {"cm_meta": 1.0}),
             # the evaluator of bluepyopt.ephys.examples.simplecell, which its CMA-ES strategies fit
             ("cma_strategy", "cma.ipynb", "evaluator", {"gnabar_hh": 0.1, "gkbar_hh": 0.03})]


def notebook_scores(folder, notebook, name, params, cwd):
    """BluePyOpt's scores from the notebook's own evaluator: its code cells run one by one
    (IPython lines left out) until one defines ``name``, as in Jupyter."""
    script = (
        "import json, os, sys; os.environ['MPLBACKEND'] = 'Agg'; os.chdir(sys.argv[1]); ns = {}\n"
        "for cell in json.load(open(sys.argv[2]))['cells']:\n"
        "    if cell['cell_type'] == 'code' and sys.argv[4] not in ns:\n"
        "        exec('\\n'.join(l for l in ''.join(cell['source']).splitlines()\n"
        "                        if not l.lstrip().startswith(('%', '!'))), ns)\n"
        "print(json.dumps(ns[sys.argv[4]].evaluate_with_dicts(json.loads(sys.argv[3]))))\n")
    done = subprocess.run([sys.executable, "-c", script, folder, notebook, json.dumps(params), name], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("example, notebook, name, params", NOTEBOOKS)
def test_a_notebooks_own_evaluator_runs_unchanged(tmp_path, example, notebook, name, params):
    """These examples define their optimisation in a notebook: hpcopt runs the notebook's
    code up to its evaluator (hpcopt.problem.notebook) and scores exactly as it."""
    folder = corpus.copy(example, tmp_path)
    spec = {"factory": "hpcopt.problem.notebook:evaluator",
            "arguments": {"notebook": os.path.join(folder, notebook), "name": name}}
    path = write_config(tmp_path, problem={"bluepyopt_evaluator": spec},
                        optimizer={"algorithm": "ibea", "population": 4, "generations": 2})
    assert f"valid: ibea, {len(params)} free parameters" in hpcopt("validate", path).stdout
    (tmp_path / "p.json").write_text(json.dumps(params))
    ours = json.loads(hpcopt("evaluate", path, "--params", "p.json", "--json", cwd=tmp_path).stdout)
    theirs = notebook_scores(folder, os.path.join(folder, notebook), name, params, tmp_path)
    assert ours["status"] == "ok" and ours["objectives"] == theirs
    hpcopt("run", path, "-o", "run.h5", ranks=2, cwd=tmp_path)  # relative: the notebook changes directory
    best = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    assert set(best["parameters"]) == set(params) and best["status"] == "ok"


PROBE = '''
import os
from hpcopt.problem import notebook


def evaluator(notebook_path, log):
    """The notebook's evaluator, noting which process builds it and which runs each protocol."""
    made = notebook.evaluator(notebook_path)
    with open(log, "a") as f:
        f.write(f"rank {os.getpid()}\\n")
    for protocol in made.fitness_protocols.values():
        run = protocol._run_func

        def noted(*args, run=run, **kwargs):
            with open(log, "a") as f:
                f.write(f"protocol {os.getpid()}\\n")
            return run(*args, **kwargs)
        protocol._run_func = noted
    return made
'''


def test_protocols_run_in_the_ranks_own_process(tmp_path):
    """BluePyOpt forks a child per protocol by default; a forked MPI process can take its
    parent's messages (ExpSyn's NetCon made NEURON call MPI there, and 2-rank runs hung now
    and then): under hpcopt run, every protocol runs in the process of a rank, or in the child
    process that evaluates for rank 0, which builds the evaluator too and does as a rank."""
    folder = corpus.copy("expsyn", tmp_path)
    (tmp_path / "probe.py").write_text(PROBE)
    log = tmp_path / "pids.txt"
    path = write_config(tmp_path, problem={"bluepyopt_evaluator": {
        "factory": "probe:evaluator", "path": [str(tmp_path)],
        "arguments": {"notebook_path": os.path.join(folder, "ExpSyn.ipynb"), "log": str(log)}}},
        optimizer={"algorithm": "ibea", "population": 4, "generations": 1})
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, cwd=tmp_path)
    lines = [line.split() for line in log.read_text().splitlines()]
    ranks = {pid for kind, pid in lines if kind == "rank"}
    protocols = [pid for kind, pid in lines if kind == "protocol"]
    assert len(protocols) >= 4 and set(protocols) <= ranks, lines


def test_the_l5pc_example_fits_and_compares_with_the_release_parameters(tmp_path):
    """make example-l5pc's steps, with a tiny budget: the script's config runs unchanged at 2
    ranks from the example's own folder, and compare prints both columns, the release
    parameters scored 35.33, the sum of the objectives BluePyOpt's own evaluator gives them (the
    tests above compare every objective)."""
    script = os.path.join(HERE, "..", "examples", "l5pc", "l5pc.py")
    folder = tmp_path / "l5pc"
    subprocess.run([sys.executable, script, "config", folder, "--population", "2", "--generations", "1"], check=True)
    subprocess.run([os.path.join(BIN, "nrnivmodl"), "mechanisms"], cwd=folder, check=True, capture_output=True)
    hpcopt("run", "config.json", "-o", tmp_path / "run.h5", ranks=2, cwd=folder)
    done = subprocess.run([sys.executable, script, "compare", tmp_path / "run.h5", folder], check=True,
                          capture_output=True, text=True)
    row = next(line for line in done.stdout.splitlines() if line.startswith("score"))
    assert float(row.split()[-1]) == pytest.approx(35.33, abs=0.01) and len(done.stdout.splitlines()) == 23


def test_the_lfpy_example_scores_exactly_as_bluepyopt_and_runs_at_2_ranks(tmp_path):
    """l5pc_lfpy: BluePyOpt's L5PC with extracellular features (LFPy's LFPySimulator, a
    40-electrode probe, 21 objectives), through its own factory, from its own folder
    (it opens extra_features.json there). As it ships, the mechanisms it asks for
    (../l5pc, never compiled) are missing: mod_dir gives them. BluePyOpt's own run
    needs them compiled there, so it runs last."""
    pytest.importorskip("LFPy")
    for example in ("l5pc", "l5pc_lfpy"):  # siblings: the evaluator reads ../l5pc/config
        corpus.copy(example, tmp_path)
    folder = str(tmp_path / "l5pc_lfpy")
    path = write_config(tmp_path, "lfpy.json", problem={"bluepyopt_evaluator": {
        "factory": "l5pc_lfpy_evaluator:create", "path": [folder], "mod_dir": str(tmp_path / "l5pc" / "mechanisms")}},
        optimizer={"algorithm": "ibea", "population": 2, "generations": 1})
    assert "valid: ibea, 20 free parameters, 21 objectives" in hpcopt("validate", path, cwd=folder).stdout
    script = ("import json, sys; from generate_extra_features import release_params; "
              "json.dump(release_params, open(sys.argv[1], 'w'))")
    subprocess.run([sys.executable, "-c", script, tmp_path / "release.json"], cwd=folder, check=True,
                   capture_output=True)
    ours = json.loads(hpcopt("evaluate", path, "--params", tmp_path / "release.json", "--json",
                             cwd=folder).stdout)
    hpcopt("run", path, "-o", tmp_path / "run.h5", ranks=2, cwd=folder)
    best = json.loads(hpcopt("best", tmp_path / "run.h5", "--json").stdout)
    assert len(best["parameters"]) == 20 and len(best["objectives"]) == 21 and best["status"] == "ok"
    subprocess.run([os.path.join(BIN, "nrnivmodl"), "mechanisms"], cwd=tmp_path / "l5pc", check=True,
                   capture_output=True)
    script = ("import json, sys; import l5pc_lfpy_evaluator; "
              "print(json.dumps(l5pc_lfpy_evaluator.create().evaluate_with_dicts(json.load(open(sys.argv[1])))))")
    done = subprocess.run([sys.executable, "-c", script, tmp_path / "release.json"], cwd=folder, check=True,
                          capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert ours["status"] == "ok" and ours["objectives"] == theirs
