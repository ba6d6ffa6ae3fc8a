"""The documentation's code examples run against a real run file."""

import os
import re

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
