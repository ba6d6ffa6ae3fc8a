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

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import harness

NAME = "memory"
PACKAGES = ("hpcopt", "neuron", "efel", "numpy", "h5py")
ROOT = Path(__file__).resolve().parent.parent
POPULATION = 12
GROWTH_TARGET = 0.05  # largest growth / peak RSS of any rank


def rank_processes(mpiexec_pid):
    """{pid: rank} of the hpcopt ranks started by mpiexec (found through /proc: they carry
    our marker and a PMI_RANK in their environment; mpiexec's proxy has no PMI_RANK), and
    of the child process that evaluates for rank 0 (HPCOPT_RANK, no PMI_RANK): "0 child"."""
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
        if b"hpcopt" not in command or env.get(b"HPCOPT_MEMORY_BENCH") != str(mpiexec_pid).encode():
            continue
        if b"PMI_RANK" in env:
            ranks[int(entry)] = env[b"PMI_RANK"].decode()
        elif b"HPCOPT_RANK" in env:
            ranks[int(entry)] = env[b"HPCOPT_RANK"].decode() + " child"
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
        path = harness.write_json(Path(directory) / "config.json", config)
        command = harness.hpcopt_command(["run", path, "-o", Path(directory) / "run.h5", "-q"], ranks)
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


def growth(values):
    """(median MiB of the second quarter of the samples, of the last quarter)."""
    quarter = max(1, len(values) // 4)
    return statistics.median(values[quarter:2 * quarter]), statistics.median(values[-quarter:])


def report(run, args, samples, seconds, done):
    lines = [
        *run.header("Memory per rank over many evaluations"),
        f"- Run: `mpiexec -n {args.ranks} hpcopt run` of examples/hh (CMA-ES, population {POPULATION}), "
        f"{done} evaluations in {seconds:.0f} s; VmRSS of every rank sampled once a second",
        "",
        *harness.table("rank>", "samples>", "peak RSS MiB>", "second-quarter median MiB>",
                       "last-quarter median MiB>", "growth MiB>", "growth / peak>"),
    ]
    worst = 0.0
    for rank in sorted(samples, key=lambda r: (int(r.split()[0]), r)):
        values = samples[rank]
        first, last = growth(values)
        worst = max(worst, (last - first) / max(values))
        lines.append(harness.row(rank, len(values), f"{max(values):.1f}", f"{first:.1f}", f"{last:.1f}",
                                 f"{last - first:+.1f}", f"{(last - first) / max(values):+.1%}"))
    met = worst <= GROWTH_TARGET
    lines += ["", f"Largest growth relative to the peak: **{worst:+.1%}** over {done} evaluations "
                  "(flat means within a few percent, from allocator noise). "
                  f"Target (<= {GROWTH_TARGET:.0%}): **{harness.verdict(met)}**."]
    target = harness.target(
        f"memory per rank flat over {done} evaluations ({args.ranks} ranks, examples/hh): largest growth "
        "between the second and the last quarter of the run, relative to the peak RSS",
        f"<= {GROWTH_TARGET:.0%}", f"{worst:+.1%}", met)
    return "\n".join(lines) + "\n", [target]


def main():
    parser = harness.parser(__doc__, NAME, "about 300 evaluations")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2000)
    args = harness.parse(parser, quick={"evaluations": 300})
    run = harness.Run(NAME, PACKAGES)
    samples, seconds, done = measure(args.ranks, args.evaluations)
    run.stop()
    text, targets = report(run, args, samples, seconds, done)
    run.finish(text, targets, args.no_write)


if __name__ == "__main__":
    main()
