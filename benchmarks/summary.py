"""Render benchmarks/RESULTS.md from every benchmarks/results/*.json.

One table of every target (what, target, measured, met?, the detailed report), then each
benchmark's command, machine, date and duration. Nothing is typed by hand: every figure
comes from the JSON a benchmark wrote in one run (see benchmarks/harness.py).

    python benchmarks/summary.py              # writes benchmarks/RESULTS.md and README.md's table
    python benchmarks/summary.py --no-write   # prints it only
"""

import argparse
import json
import sys
from pathlib import Path

from harness import RESULTS, cell, row, table

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "RESULTS.md"
README = HERE.parent / "README.md"
README_BEGIN, README_END = "<!-- benchmarks: begin -->", "<!-- benchmarks: end -->"
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


def targets_table(results, prefix=""):
    """Markdown lines: the count of targets met, then one table row per target (links
    relative to benchmarks/, or to ``prefix`` + that)."""
    rows = [(data, t) for _, data in results for t in data["targets"]]
    judged = [t for _, t in rows if t["met"] is not None]  # met None: a comparison, without a target
    met = sum(1 for t in judged if t["met"])
    lines = [f"**{met} of {len(judged)} targets met.**" + (f" ({len(rows) - len(judged)} rows are comparisons "
                                                            "without a target: -.)" if len(judged) < len(rows) else ""),
             "", *table("benchmark", "what", "target", "measured", "met?", "details")]
    for data, t in rows:
        report = data.get("report")
        link = f"[{report}]({prefix}results/{report})" if report else ""
        lines.append(row(cell(data["benchmark"]), cell(t["what"]), cell(t["target"]), cell(t["measured"]),
                         "-" if t["met"] is None else "yes" if t["met"] else "**NO**", link))
    return lines


HEADLINE = "l5pc_speed"  # the representative figure: a real model, not a small one


def headline(results):
    """The README's first line on speed, from the real-model benchmark (none without it)."""
    for _, data in results:
        if data["benchmark"] == HEADLINE and data["targets"]:
            t = data["targets"][0]
            return [f"**Speed on a real model**: {t['what']}: **{t['measured']}** (target {t['target']}; "
                    f"[{data['report']}](benchmarks/results/{data['report']})). The figures for `l5pc_like` and "
                    "`hh` below are for small models, where BluePyOpt's fixed cost per evaluation dominates. "
                    "The scheduler's 16 and 64 ranks run oversubscribed on this machine's cores with evaluations "
                    "that sleep (rank 0's compute, holding the GIL as NEURON does): they measure hpcopt's "
                    "dispatching, not a cluster; rank0_cost measures rank 0's own seconds per generation at "
                    "population 1,000 and sets them against an assumed 8 s generation on 1,000 ranks.", ""]
    return []


def readme_block(results):
    """The README's block between its benchmark markers."""
    dates = sorted(data["date"][:10] for _, data in results)
    return [
        README_BEGIN,
        *headline(results),
        f"Measured on {results[0][1]['machine'] if results else '-'}, {dates[0]} to {dates[-1]} "
        "(rendered by `benchmarks/summary.py` from the benchmarks' JSON; commands and details in "
        "[benchmarks/RESULTS.md](benchmarks/RESULTS.md)):" if results else "No benchmark results yet.",
        "",
        *targets_table(results, prefix="benchmarks/"),
        README_END,
    ]


def update_readme(results, path=README):
    """Replace the block between the README's markers; the rest is left as it is."""
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"summary: {path} has no {README_BEGIN} ... {README_END} block")
    path.write_text(text[:begin] + "\n".join(readme_block(results)) + text[end + len(README_END):],
                    encoding="utf-8")


def render(results):
    lines = [
        "# Benchmark results",
        "",
        "Rendered by `python benchmarks/summary.py` from `benchmarks/results/*.json`; every figure was measured "
        "by one run of the benchmark named in its row (commands, machines and dates below). Do not edit by hand: "
        "rerun the benchmark, then this script (it also updates the table in the README).",
        "",
        *targets_table(results),
    ]
    lines += ["", "## Runs", "",
              *table("benchmark", "command", "date (UTC)", "duration s>", "load average (start, end)", "machine")]
    for _, data in results:
        load = data.get("load")
        lines.append(row(cell(data["benchmark"]), f"`{cell(data['command'])}`", cell(data["date"]),
                         "" if data.get("seconds") is None else data["seconds"],
                         "" if not load else ", ".join(str(v) for v in load), cell(data["machine"])))
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
    parser.add_argument("--no-write", action="store_true",
                        help=f"print only, do not write {OUTPUT.name} or the README's table")
    args = parser.parse_args()
    results = load()
    text = render(results)
    print(text)
    if not args.no_write:
        OUTPUT.write_text(text, encoding="utf-8")
        update_readme(results)
        print(f"written to {OUTPUT} and the table in {README} ({len(results)} benchmarks)", file=sys.stderr)


if __name__ == "__main__":
    main()
