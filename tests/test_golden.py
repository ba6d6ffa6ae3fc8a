"""Golden results: runs through the command line give, bit for bit, what the code gave
when tests/data/golden/golden.json was recorded (its "recorded_at" commit).

The cases are tests/golden_cases.py's; tests/data/golden/record.py re-records them.
Only the ``hpcopt`` command and h5py are used, never hpcopt's internal modules.
"""

import json

import pytest
from conftest import mpi_sizes
from golden_cases import CASES, GOLDEN, RESUMES, differences, problem_sha256, run_case, run_resume

with open(GOLDEN) as f:
    STORED = json.load(f)

# The rank counts, 1 and 3, where HPCOPT_TEST_RANKS allows them (else its own):
# 1 rank runs plain hpcopt, more run under mpiexec (and are marked mpi).
RANKS = [n for n in mpi_sizes() if n in (1, 3)] or mpi_sizes()


def _ranks_param(n):
    return pytest.param(n, marks=[pytest.mark.mpi] if n > 1 else [], id=f"{n}rank")


def _check(name, got, case):
    diff = differences(got, STORED[case]["generations"])
    if diff:
        config = STORED[case]["config"]
        if "problem_from" in config and problem_sha256(config) != STORED[case]["problem_sha256"]:
            diff.append(f"note: the problem section of {config['problem_from']} has changed since recording")
        pytest.fail(f"{name} differs from golden (recorded at {STORED['recorded_at']}):\n" + "\n".join(diff))


def test_cases_are_the_recorded_ones():
    """golden_cases.CASES and golden.json agree: a changed case needs re-recording."""
    assert sorted(CASES) == sorted(k for k in STORED if k != "recorded_at")
    for name, config in CASES.items():
        assert STORED[name]["config"] == config, name


@pytest.mark.parametrize("ranks", [_ranks_param(n) for n in RANKS])
@pytest.mark.parametrize("case", list(CASES))
def test_run_equals_golden(case, ranks, tmp_path):
    got = run_case(STORED[case]["config"], ranks, tmp_path)
    _check(f"{case} at {ranks} rank(s)", got, case)


@pytest.mark.mpi
@pytest.mark.parametrize("name", list(RESUMES))
def test_resumed_run_equals_golden(name, tmp_path):
    """Stopped early, then ``hpcopt resume --generations N``: the uninterrupted golden."""
    case, first_generations, first_ranks, resume_ranks = RESUMES[name]
    got = run_resume(STORED[case]["config"], first_generations, first_ranks, resume_ranks, tmp_path)
    _check(name, got, case)
