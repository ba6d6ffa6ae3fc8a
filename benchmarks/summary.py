"""Render benchmarks/RESULTS.md from every benchmarks/results/*.json.

One table of every target (what, target, measured, met?, the detailed report), then each
benchmark's command, machine, date and duration. Nothing is typed by hand: every figure
comes from the JSON a benchmark wrote in one run (see benchmarks/targets.py).

    python benchmarks/summary.py              # writes benchmarks/RESULTS.md
    python benchmarks/summary.py --no-write   # prints it only
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE / "RESULTS.md"
KEYS = ("benchmark", "command", "date", "machine", "targets")


def load(directory=RESULTS):
    """[(file name, result dict)] of the JSON results, ordered by benchmark name; skips broken files
    with a message."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            print(f"summary: skipping {path.name}: {err}", file=sys.stderr)
            continue
        missing = [key for key in KEYS if key not in data]
        if missing:
            print(f"summary: skipping {path.name}: no {', '.join(missing)}", file=sys.stderr)
            continue
        out.append((path.name, data))
    return sorted(out, key=lambda item: item[1]["benchmark"])


def cell(text):
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results):
    rows = [(data, t) for _, data in results for t in data["targets"]]
    met = sum(1 for _, t in rows if t["met"])
    lines = [
        "# Benchmark results",
        "",
        "Rendered by `python benchmarks/summary.py` from `benchmarks/results/*.json`; every figure was measured "
        "by one run of the benchmark named in its row (commands, machines and dates below). Do not edit by hand: "
        "rerun the benchmark, then this script.",
        "",
        f"**{met} of {len(rows)} targets met.**",
        "",
        "| benchmark | what | target | measured | met? | details |",
        "|---|---|---|---|---|---|",
    ]
    for data, t in rows:
        report = data.get("report")
        link = f"[{report}](results/{report})" if report else ""
        lines.append(f"| {cell(data['benchmark'])} | {cell(t['what'])} | {cell(t['target'])} | {cell(t['measured'])} "
                     f"| {'yes' if t['met'] else '**NO**'} | {link} |")
    lines += ["", "## Runs", "",
              "| benchmark | command | date (UTC) | duration s | load average (start, end) | machine |",
              "|---|---|---|---:|---|---|"]
    for _, data in results:
        load = data.get("load")
        lines.append(
            f"| {cell(data['benchmark'])} | `{cell(data['command'])}` | {cell(data['date'])} "
            f"| {'' if data.get('seconds') is None else data['seconds']} "
            f"| {'' if not load else ', '.join(str(v) for v in load)} | {cell(data['machine'])} |")
    versions = {}
    for _, data in results:
        for package, version in (data.get("versions") or {}).items():
            versions.setdefault(package, set()).add(version)
    if versions:
        lines += ["", "Versions: " + ", ".join(f"{p} {' / '.join(sorted(v))}" for p, v in sorted(versions.items()))
                  + "."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help=f"print only, do not write {OUTPUT.name}")
    args = parser.parse_args()
    results = load()
    text = render(results)
    print(text)
    if not args.no_write:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"written to {OUTPUT} ({len(results)} benchmarks)", file=sys.stderr)


if __name__ == "__main__":
    main()
