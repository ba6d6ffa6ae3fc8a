"""A benchmark's machine-readable result: what it measured against which target.

Every benchmark writes ``benchmarks/results/<name>.json`` beside its markdown report:

    {"benchmark": name, "command": the command line, "date": UTC ISO 8601,
     "machine": one line, "report": "<name of the detailed .md>", "seconds": wall time,
     "load": [1-min load average at start, at end], "versions": {package: version},
     "targets": [{"what", "target", "measured", "met"}, ...]}

``target`` and ``measured`` are short texts ("<= 0.75", "0.21"); ``met`` is a bool.
``benchmarks/summary.py`` renders all of them into ``benchmarks/RESULTS.md``.
Benchmarks measure, they do not assert: a missed target is a result, not an error.
"""

import datetime
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def command():
    """This process's command line as the user typed it (paths relative to the cwd)."""
    return shlex.join([os.path.relpath(sys.executable), *sys.argv])


def machine():
    """One line: OS, architecture, CPU count and model, memory, Python."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal:")))
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    cpu = f"{os.cpu_count()} CPUs" + (f" ({model})" if model else "")
    return f"{platform.platform()}, {platform.machine()}, {cpu}{memory}, Python {platform.python_version()}"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def versions(*packages):
    """{package: installed version} (``not installed`` where missing)."""
    out = {}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def target(what, target, measured, met):
    """One row of the targets table."""
    return {"what": what, "target": target, "measured": measured, "met": bool(met)}


def write(name, report, text, targets, *, seconds=None, load=None, packages=(), extra=None):
    """Write the markdown ``text`` to ``report`` and results/<name>.json; returns the
    JSON's path. targets: target() rows."""
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(text, encoding="utf-8")
    data = {
        "benchmark": name,
        "command": command(),
        "date": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "report": Path(report).name,
        "seconds": None if seconds is None else round(float(seconds), 1),
        "load": None if load is None else [round(float(v), 2) for v in load],
        "versions": versions(*packages),
        "targets": list(targets),
    }
    if extra:
        data.update(extra)
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path
