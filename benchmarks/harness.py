"""What every benchmark shares: arguments, timing, running hpcopt, the machine, the report and its JSON.

A benchmark parses its arguments with ``parser`` / ``parse`` (``--quick``, ``--no-write``), makes
a ``Run`` before it measures (start time, load average), calls ``Run.stop`` when it is done,
begins its markdown report with ``Run.header`` and ends with ``Run.finish``, which prints the
report and, unless ``--no-write``, writes ``benchmarks/results/<name>.md`` and beside it
``benchmarks/results/<name>.json``:

    {"benchmark": name, "command": the command line, "date": UTC ISO 8601,
     "machine": one line, "report": "<name>.md", "seconds": wall time,
     "load": [1-min load average at start, at end], "versions": {package: version},
     "targets": [{"what", "target", "measured", "met"}, ...]}

``target`` and ``measured`` are short texts ("<= 0.75", "0.21"); ``met`` is a bool, or
None for a comparison that has no target.
``benchmarks/summary.py`` renders all of them into ``benchmarks/RESULTS.md``.
Benchmarks measure, they do not assert: a missed target is a result, not an error.
"""

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent  # the venv's bin: its hpcopt and mpiexec
ERROR_TAIL = 3000  # characters of a failed command's stderr in the error raised


# ---------------------------------------------------------------- arguments


def parser(doc, name, quick, seeds=None):
    """An ArgumentParser for a benchmark: its description the first paragraph of ``doc``,
    ``--quick`` (help ``quick``) and ``--no-write``; with ``seeds``, also ``--seeds`` (that
    default), which ``--quick`` excludes."""
    out = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    group = out.add_mutually_exclusive_group() if seeds else out
    if seeds:
        group.add_argument("--seeds", type=int, default=seeds, help=f"number of seeds, 1..N (default {seeds})")
    group.add_argument("--quick", action="store_true", help=quick)
    out.add_argument("--no-write", action="store_true", help=f"do not write results/{name}.{{md,json}}")
    return out


def parse(argument_parser, quick=None):
    """The parsed arguments; with ``--quick``, the attributes in ``quick`` ({name: value}) set."""
    args = argument_parser.parse_args()
    if args.quick:
        for key, value in (quick or {}).items():
            setattr(args, key, value)
    return args


# ---------------------------------------------------------------- timing


def timed(function, *args, **kwargs):
    """(function(*args, **kwargs), its wall seconds)."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


class Timer:
    """Wall seconds of a ``with`` block: ``with Timer() as t: ...``, then ``t.seconds``."""

    seconds = None

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def cpu_seconds():
    """CPU seconds of this process and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Tally:
    """Seconds accumulated per key by the calls of wrapped functions."""

    def __init__(self):
        self.seconds = {}

    def add(self, key, seconds):
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def get(self, key):
        return self.seconds.get(key, 0.0)

    def wrap(self, function, key, cpu=False):
        """``function`` timed: each call's wall seconds added under ``key`` (a callable key is
        called before each call and gives it); with ``cpu``, its CPU seconds under key + "_cpu"."""

        @functools.wraps(function)
        def wrapped(*args, **kwargs):
            k = key() if callable(key) else key
            cpu_start = time.process_time() if cpu else 0.0
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(k, time.perf_counter() - start)
                if cpu:
                    self.add(k + "_cpu", time.process_time() - cpu_start)

        return wrapped

    def patch(self, owner, name, key, cpu=False):
        """Replace ``owner.name`` (a function or method) by ``wrap`` of it; returns the original."""
        original = getattr(owner, name)
        setattr(owner, name, self.wrap(original, key, cpu))
        return original


def median(rows, key):
    """Median of ``row[key]`` over rows."""
    return statistics.median(row[key] for row in rows)


def mean(rows, key):
    """Mean of ``row.get(key, 0)`` over rows."""
    return sum(row.get(key, 0.0) for row in rows) / len(rows)


# ---------------------------------------------------------------- hpcopt


def write_json(path, data):
    """Write ``data`` as JSON to ``path``; returns the path."""
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return Path(path)


def hpcopt_command(args, ranks=None):
    """The command line of the venv's ``hpcopt ARGS``, under its ``mpiexec -n RANKS`` when ranks is given."""
    command = [str(BIN / "hpcopt"), *map(str, args)]
    return command if ranks is None else [str(BIN / "mpiexec"), "-n", str(ranks), *command]


def hpcopt(args, ranks=None, check=True, env=None):
    """Run ``hpcopt ARGS`` (see hpcopt_command), its output captured; the CompletedProcess.
    check: raise RuntimeError (with the end of its stderr) if it fails."""
    done = subprocess.run(hpcopt_command(args, ranks), capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"hpcopt {args[0]} failed (exit {done.returncode}):\n{done.stderr[-ERROR_TAIL:]}")
    return done


def hpcopt_run(config, workdir, stem, ranks=None):
    """``hpcopt run CONFIG -o WORKDIR/STEM.h5 -q``: config a dict (written to WORKDIR/STEM.json)
    or a config file. Returns (the run file, the command's wall seconds); raises if it fails."""
    if isinstance(config, dict):
        config = write_json(Path(workdir) / f"{stem}.json", config)
    runfile = Path(workdir) / f"{stem}.h5"
    _, seconds = timed(hpcopt, ["run", config, "-o", runfile, "-q"], ranks)
    return runfile, seconds


def generations(runfile, *datasets):
    """[each dataset of the run file's /generations/NNNNNN/ groups, concatenated in generation order]."""
    import h5py
    import numpy as np

    with h5py.File(runfile, "r") as f:
        groups = [f["generations"][name] for name in sorted(f["generations"])]
        return [np.concatenate([group[dataset][()] for group in groups]) for dataset in datasets]


def bluepyopt_evaluator(objectives, parameters, evaluate):
    """A BluePyOpt Evaluator of ``evaluate`` (a list of parameter values -> a list of objective
    values, in the order of ``objectives``); parameters: [(name, lower, upper)]. BluePyOpt's
    optimisations call ``init_simulator_and_evaluate_with_lists``. BluePyOpt is imported here,
    so only when it runs."""
    import bluepyopt.evaluators
    import bluepyopt.objectives
    import bluepyopt.parameters

    class Evaluator(bluepyopt.evaluators.Evaluator):
        def __init__(self):
            super().__init__(
                objectives=[bluepyopt.objectives.Objective(name) for name in objectives],
                params=[bluepyopt.parameters.Parameter(name, bounds=[float(lower), float(upper)])
                        for name, lower, upper in parameters],
            )

        def evaluate_with_lists(self, param_list):
            return evaluate(param_list)

        def init_simulator_and_evaluate_with_lists(self, param_list):
            return evaluate(param_list)

    return Evaluator()


def bluepyopt_optimisation(evaluator, algorithm, population, seed):
    """BluePyOpt's IBEA (``IBEADEAPOptimisation``) or single-objective CMA-ES
    (``DEAPOptimisationCMA``, ``selector_name="single_objective"``) on ``evaluator``, with
    their defaults and ``offspring_size`` = population."""
    from bluepyopt.deapext.optimisations import IBEADEAPOptimisation
    from bluepyopt.deapext.optimisationsCMA import DEAPOptimisationCMA

    if algorithm == "ibea":
        return IBEADEAPOptimisation(evaluator=evaluator, offspring_size=population, seed=seed)
    return DEAPOptimisationCMA(evaluator=evaluator, offspring_size=population, seed=seed,
                               selector_name="single_objective")


def resolve_paths(cell, base):
    """Make an example cell section's relative file paths (mechanisms, morphology) absolute."""
    for key in ("mechanisms", "morphology"):
        value = cell.get(key)
        if isinstance(value, str) and not os.path.isabs(value):
            cell[key] = str(base / value)


def truth_found(X, scores, target, tolerance, threshold=None):
    """How a run that evaluated the rows of X (n, d) in order, with ``scores`` (n,), did
    against the true parameters ``target`` (d,): success (its best-scoring point has every
    parameter within ``tolerance``, relative; with a ``threshold``, its best score is at or
    below it instead), to_success (the first evaluation count from which the best so far
    stays a success, None without success), best (score), evaluations, error (the largest
    relative error of the best point)."""
    import numpy as np

    within = np.all(np.abs(X - target) <= tolerance * np.abs(target), axis=1)
    best_index = np.array([int(np.argmin(scores[:k + 1])) for k in range(len(scores))])
    # after k + 1 evaluations, is the best so far a success?
    ok = within[best_index] if threshold is None else scores[best_index] <= threshold
    success = bool(len(ok) and ok[-1])
    to_success = None
    if success:
        failing = np.flatnonzero(~ok)
        to_success = int(failing[-1] + 2) if len(failing) else 1
    return {"success": success, "to_success": to_success, "best": float(scores[best_index[-1]]),
            "evaluations": len(scores),
            "error": float(np.max(np.abs(X[best_index[-1]] - target) / np.abs(target)))}


def quartiles(values):
    """'25 / 50 / 75 %' percentiles of ``values``, 3 significant digits."""
    import numpy as np

    return " / ".join(f"{v:.3g}" for v in np.percentile(values, [25, 50, 75]))


# ---------------------------------------------------------------- machine and versions


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


def note(text):
    """A progress line (stderr: stdout is the report)."""
    print(text, file=sys.stderr)


# ---------------------------------------------------------------- markdown


def row(*cells):
    """One markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(*columns):
    """A markdown table's head: column titles, each ending in ">" to align it right (the ">" is dropped)."""
    return [row(*(c[:-1] if c.endswith(">") else c for c in columns)),
            "|" + "|".join("---:" if c.endswith(">") else "---" for c in columns) + "|"]


def cell(text):
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict(met):
    return "met" if met else "NOT met"


def ms(seconds):
    """Milliseconds, one decimal."""
    return f"{1000 * seconds:.1f}"


# ---------------------------------------------------------------- the run, its report and JSON


def target(what, target, measured, met):
    """One row of the targets table; met None: a comparison, which has no target."""
    return {"what": what, "target": target, "measured": measured, "met": None if met is None else bool(met)}


class Run:
    """One run of a benchmark, from before it measures: its start time and load average,
    then (``stop``) its wall seconds, the load at its end and the date."""

    def __init__(self, name, packages):
        self.name, self.packages = name, tuple(packages)
        self.report = RESULTS / f"{name}.md"
        self.start, self.load = time.perf_counter(), [os.getloadavg()[0]]
        self.seconds = self.date = None

    def stop(self):
        """The measurements are done: wall seconds since the start (returned), load and date now."""
        self.seconds = time.perf_counter() - self.start
        self.load = [self.load[0], os.getloadavg()[0]]
        self.date = now()
        return self.seconds

    def header(self, title, load_note=""):
        """The report's title and its command, date, machine, versions and load lines (after ``stop``)."""
        return [
            f"# {title}",
            "",
            f"- Command: `{command()}`",
            f"- Date (UTC): {self.date:%Y-%m-%d %H:%M:%S}",
            f"- Machine: {machine()}",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions(*self.packages).items()),
            f"- Load average (1 min) at the start and end: {self.load[0]:.2f}, {self.load[1]:.2f}" + load_note,
        ]

    def tail(self):
        """The report's last line."""
        return f"Whole benchmark: {self.seconds:.1f} s."

    def finish(self, text, targets, no_write):
        """Print the report ``text``; unless ``no_write``, write it and the JSON (targets: target() rows)."""
        print(text)
        if not no_write:
            path = self.write(text, targets)
            note(f"written to {self.report} and {path}")

    def write(self, text, targets):
        """Write the markdown ``text`` to results/<name>.md and results/<name>.json; returns the JSON's path."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.report.write_text(text, encoding="utf-8")
        data = {
            "benchmark": self.name,
            "command": command(),
            "date": self.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "report": self.report.name,
            "seconds": round(float(self.seconds), 1),
            "load": [round(float(v), 2) for v in self.load],
            "versions": versions(*self.packages),
            "targets": list(targets),
        }
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return path
