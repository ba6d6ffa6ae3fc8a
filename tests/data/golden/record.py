"""(Re)create golden.json, the golden results tests/test_golden.py checks.

Usage, from the repository root, with the venv's python (needs its mpiexec):

    .venv/bin/python tests/data/golden/record.py            # write golden.json
    .venv/bin/python tests/data/golden/record.py --check    # compare, write nothing
    .venv/bin/python tests/data/golden/record.py --ranks 1,2,3

Runs every case of tests/golden_cases.py (CASES) through the ``hpcopt`` command
line of whatever hpcopt is importable (set PYTHONPATH to record another checkout's
code: ``PYTHONPATH=/path/to/old/checkout``), at each rank count of --ranks (default
1 and 3; 1 runs without mpiexec), fails unless every rank count gives the same
bits, then runs the interrupted-and-resumed sequences (RESUMES) and fails unless
each equals its uninterrupted case. golden.json stores, for every case, the config
used and every generation's parameters, objectives (float.hex) and status, plus
``recorded_at``: the git commit of the repository this file is in (with "+dirty"
when hpcopt/ has uncommitted changes there; pass --recorded-at when the code run
is another checkout's).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TESTS)

import golden_cases  # noqa: E402


def _commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=golden_cases.ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", "hpcopt") else "")


def _dumps(golden):
    """JSON with every innermost list (a row of values) on one line."""
    text = json.dumps(golden, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def record(ranks, recorded_at=None):
    """Run every case and resume sequence; returns the golden.json dict (raises on disagreement)."""
    golden = {"recorded_at": recorded_at or _commit()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in golden_cases.CASES.items():
            results = {}
            for n in ranks:
                directory = os.path.join(tmp, f"{name}-{n}")
                os.makedirs(directory)
                results[n] = golden_cases.run_case(config, n, directory)
                print(f"{name}: {n} rank(s), {len(results[n])} generations", file=sys.stderr)
            first = results[ranks[0]]
            for n in ranks[1:]:
                diff = golden_cases.differences(results[n], first)
                if diff:
                    raise SystemExit(f"{name}: {n} ranks differ from {ranks[0]}:\n" + "\n".join(diff))
            entry = {"config": config}
            if "problem_from" in config:
                entry["problem_sha256"] = golden_cases.problem_sha256(config)
            entry["generations"] = first
            golden[name] = entry
        for name, (case, first_generations, first_ranks, resume_ranks) in golden_cases.RESUMES.items():
            directory = os.path.join(tmp, name)
            os.makedirs(directory)
            got = golden_cases.run_resume(
                golden_cases.CASES[case], first_generations, first_ranks, resume_ranks, directory
            )
            diff = golden_cases.differences(got, golden[case]["generations"])
            if diff:
                raise SystemExit(f"{name}: resumed run differs from {case}:\n" + "\n".join(diff))
            print(f"{name}: equals {case}", file=sys.stderr)
    return golden


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,3", help="comma-separated rank counts (default 1,3)")
    parser.add_argument("--check", action="store_true", help="compare with golden.json instead of writing it")
    parser.add_argument("--recorded-at", help="the commit of the code run (default: this repository's HEAD)")
    args = parser.parse_args()
    golden = record([int(n) for n in args.ranks.split(",")], args.recorded_at)
    if args.check:
        with open(golden_cases.GOLDEN) as f:
            stored = json.load(f)
        bad = [name for name in golden_cases.CASES if stored.get(name) != golden[name]]
        if bad:
            raise SystemExit(f"differ from {golden_cases.GOLDEN}: {', '.join(bad)}")
        print(f"all cases equal {golden_cases.GOLDEN}", file=sys.stderr)
        return
    with open(golden_cases.GOLDEN, "w") as f:
        f.write(_dumps(golden) + "\n")
    print(f"wrote {golden_cases.GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
