"""The documentation's code examples run: the run file's Python examples against a real run
file, the cell walkthrough's commands on a real morphology."""

import json
import os
import re
import shlex
import shutil

import pytest
from conftest import hpcopt, write_config, zdt1_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(doc):
    with open(os.path.join(ROOT, doc)) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_runfile_reading_example(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    path = write_config(tmp_path, problem=zdt1_problem(3),
                        optimizer={"algorithm": "ibea", "population": 6, "generations": 3})
    hpcopt("run", path, "-o", tmp_path / "run.h5")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks("docs/runfile.md")
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/runfile.md", "exec"), namespace)
    table = namespace["table"]
    assert len(table) == 18 and list(table.columns[:3]) == ["x0", "x1", "x2"]


def walkthrough():
    """(files {name: text}, commands [argv]) of docs/cells.md's walkthrough, in order."""
    with open(os.path.join(ROOT, "docs", "cells.md")) as f:
        text = f.read().split("## From a morphology and mechanisms to a first fit", 1)[1].split("\n## ", 1)[0]
    files = dict(re.findall(r"<!-- file: (\S+) -->\n```json\n(.*?)```", text, re.S))
    commands = [shlex.split(line) for block in re.findall(r"```sh\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.strip()]
    return files, commands


def test_the_walkthrough_from_a_morphology_to_a_first_fit_runs(tmp_path):
    """Every command of the walkthrough, in its order, on tests/data/l5pc_like's
    morphology and mechanisms; the recordings are the guess's traces with noise."""
    from test_targets import L5PC_LIKE, recordings_from_traces

    files, commands = walkthrough()
    assert set(files) == {"config.json", "features.json", "guess.json", "truth.json"} and len(commands) == 8
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for folder in ("morphology", "mechanisms"):
        shutil.copytree(os.path.join(L5PC_LIKE, folder), tmp_path / folder)
    for i, argv in enumerate(commands):
        ranks = None
        if argv[:3] == ["mpiexec", "-n", "2"]:
            ranks, argv = 2, argv[3:]
        assert argv[0] == "hpcopt", argv
        if "--recordings" in argv:
            recordings_from_traces(tmp_path / "guess.h5", tmp_path / "recordings", repetitions=2, noise=0.2)
        done = hpcopt(*argv[1:], ranks=ranks, cwd=tmp_path, check=i > 0)
        if i == 0:  # the config lists features without targets: validate says run needs them
            assert done.returncode == 2 and "'hpcopt run' needs a target (mean, std) for every feature" in done.stderr
    assert (tmp_path / "guess.png").exists() and (tmp_path / "report" / "index.html").exists()
    features = json.loads((tmp_path / "features.json").read_text())
    assert all(len(target) == 2 for recordings in features.values() for found in recordings.values()
               for target in found.values())
