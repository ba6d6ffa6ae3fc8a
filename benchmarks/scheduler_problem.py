"""The synthetic problem of benchmarks/scheduler.py: an evaluation that only waits.

``evaluate(params)`` takes ``duration(x)`` seconds and returns {"f": sum of x}. The
duration is a lognormal draw (median ``median``, shape ``sigma``: frozen parameters of the
same names) seeded by a hash of the free parameter values, so an individual always takes
the same time, on whichever rank and in whichever run. It sleeps: a sleeping rank uses no
CPU, so many ranks on few cores measure the scheduler, not the machine.

With the frozen parameter ``rank0_chunk`` > 0, rank 0's evaluations do not sleep but
compute for the same time while holding Python's GIL in chunks of ``rank0_chunk`` seconds,
as NEURON does while it integrates (hpcopt's chunked ``fadvance`` loop returns to Python
between chunks). Rank 0's evaluations run where hpcopt runs them: in rank 0's process
(``PMI_RANK`` 0; ``--rank0 evaluate-in-process``), whose dispatcher thread then runs only
between chunks, or in its child process (``HPCOPT_RANK`` 0; the default), which holds its
own GIL.
"""

import hashlib
import math
import os
import random
import struct
import time

FROZEN = ("median", "sigma", "rank0_chunk")
_ITERATIONS_PER_SECOND = []  # of sum(range(n)), measured once per process


def duration(params):
    """Seconds the individual ``params`` ({name: value}) takes: lognormal, deterministic."""
    free = [value for name, value in params.items() if name not in FROZEN]
    digest = hashlib.sha256(struct.pack(f"<{len(free)}d", *free)).digest()
    rng = random.Random(int.from_bytes(digest[:8], "little"))
    return rng.lognormvariate(math.log(params["median"]), params["sigma"])


def hold_gil(seconds, chunk):
    """Compute for ``seconds``, in C calls (``sum(range(n))``) that each hold the GIL for
    about ``chunk`` seconds."""
    if not _ITERATIONS_PER_SECOND:
        start = time.perf_counter()
        sum(range(200_000))
        _ITERATIONS_PER_SECOND.append(200_000 / max(time.perf_counter() - start, 1e-6))
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        sum(range(max(1, int(min(chunk, left) * _ITERATIONS_PER_SECOND[0]))))


def evaluate(params):
    """Wait ``duration(params)``; the objective is the sum of the free values."""
    seconds = duration(params)
    chunk = params.get("rank0_chunk", 0.0)
    if chunk > 0 and os.environ.get("HPCOPT_RANK", os.environ.get("PMI_RANK")) == "0":
        hold_gil(seconds, chunk)
    else:
        time.sleep(seconds)
    return {"f": sum(value for name, value in params.items() if name not in FROZEN)}
