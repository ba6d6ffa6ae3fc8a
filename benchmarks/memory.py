"""Memory per rank over thousands of evaluations: does it stay flat?

Runs a real ``mpiexec -n RANKS hpcopt run`` of the single-compartment HH example
(examples/hh, CMA-ES, population 12) for about EVALUATIONS evaluations and samples
the resident memory (VmRSS) of every rank once a second from /proc. Reports per rank
the peak RSS and the growth between the median of the second and of the last quarter
of the samples (the first quarter is start-up: imports, building the cell), in MiB
and relative to the peak. A leak (NEURON objects, recorded
vectors, eFEL state, journal entries kept in memory) shows as growth that scales
with the number of evaluations.

    python benchmarks/memory.py                 # ~2,000 evaluations on 2 ranks
    python benchmarks/memory.py --quick         # ~300 evaluations (CI smoke test)

Target: flat memory, i.e. the largest growth of any rank is at most 5 % of its peak RSS
(allocator noise stays within a few percent; a leak grows with the evaluations).

Writes benchmarks/results/memory.md and memory.json (unless --no-write). A measurement:
exits 0 whether or not the target is met.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import targets

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results" / "memory.md"
POPULATION = 12
GROWTH_TARGET = 0.05  # largest growth / peak RSS of any rank


def rank_processes(mpiexec_pid):
    """{pid: rank} of the hpcopt ranks started by mpiexec (found through /proc: they carry
    our marker and a PMI_RANK in their environment; mpiexec's proxy has no PMI_RANK)."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if (b"hpcopt" in command and b"PMI_RANK" in env
                and env.get(b"HPCOPT_MEMORY_BENCH") == str(mpiexec_pid).encode()):
            ranks[int(entry)] = int(env.get(b"PMI_RANK", b"0"))
    return ranks


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure(ranks, evaluations):
    """{rank: [RSS MiB samples]} and the wall time of one run."""
    with open(ROOT / "examples" / "hh" / "config.json") as f:
        config = json.load(f)
    config["optimizer"] = {"algorithm": "cmaes", "population": POPULATION,
                           "generations": max(1, evaluations // POPULATION), "seed": 1}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.json"
        path.write_text(json.dumps(config))
        command = [str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "hpcopt"), "run", str(path),
                   "-o", str(Path(directory) / "run.h5"), "-q"]
        marker = str(os.getpid())
        start = time.perf_counter()
        job = subprocess.Popen(command, env={**os.environ, "HPCOPT_MEMORY_BENCH": marker},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples = {}
        while job.poll() is None:
            for pid, rank in rank_processes(int(marker)).items():
                value = rss_mib(pid)
                if value is not None:
                    samples.setdefault(rank, []).append(value)
            time.sleep(1.0)
        _, err = job.communicate()
        if job.returncode != 0:
            raise SystemExit(f"hpcopt failed:\n{err}")
        return samples, time.perf_counter() - start, config["optimizer"]["generations"] * POPULATION


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="about 300 evaluations")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    evaluations = 300 if args.quick else args.evaluations
    start, load = time.perf_counter(), os.getloadavg()
    samples, seconds, done = measure(args.ranks, evaluations)
    now = datetime.datetime.now(datetime.timezone.utc)
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("hpcopt", "neuron", "efel", "numpy", "h5py"))
    lines = [
        "# Memory per rank over many evaluations",
        "",
        f"- Command: `{shlex.join([os.path.relpath(sys.executable), *sys.argv])}`",
        f"- Date (UTC): {now:%Y-%m-%d %H:%M:%S}",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- Versions: {versions}",
        f"- Run: `mpiexec -n {args.ranks} hpcopt run` of examples/hh (CMA-ES, population {POPULATION}), "
        f"{done} evaluations in {seconds:.0f} s; VmRSS of every rank sampled once a second",
        "",
        "| rank | samples | peak RSS MiB | second-quarter median MiB | last-quarter median MiB | growth MiB "
        "| growth / peak |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for rank in sorted(samples):
        values = samples[rank]
        quarter = max(1, len(values) // 4)
        first, last = statistics.median(values[quarter:2 * quarter]), statistics.median(values[-quarter:])
        growth = last - first
        worst = max(worst, growth / max(values))
        lines.append(f"| {rank} | {len(values)} | {max(values):.1f} | {first:.1f} | {last:.1f} | {growth:+.1f} "
                     f"| {growth / max(values):+.1%} |")
    met = worst <= GROWTH_TARGET
    lines += ["", f"Largest growth relative to the peak: **{worst:+.1%}** over {done} evaluations "
                  "(flat means within a few percent, from allocator noise). "
                  f"Target (<= {GROWTH_TARGET:.0%}): **{'met' if met else 'NOT met'}**."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        path = targets.write("memory", RESULTS, text, [targets.target(
            f"memory per rank flat over {done} evaluations ({args.ranks} ranks, examples/hh): largest growth "
            "between the second and the last quarter of the run, relative to the peak RSS",
            f"<= {GROWTH_TARGET:.0%}", f"{worst:+.1%}", met)],
            seconds=time.perf_counter() - start, load=(load[0], os.getloadavg()[0]),
            packages=("hpcopt", "neuron", "efel", "numpy", "h5py"))
        print(f"written to {RESULTS} and {path}")


if __name__ == "__main__":
    main()
