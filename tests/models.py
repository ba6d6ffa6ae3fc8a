"""Test problems whose behaviour the tests control (importable from tests/)."""

import math
import os
import signal
import sys
import threading
import time


def sleepy(params):
    """Two objectives; sleeps ``slow`` s when x0 == slow_x0, else ``fast`` s."""
    x0 = params["x0"]
    time.sleep(params["slow"] if x0 == params["slow_x0"] else params["fast"])
    return {"f1": x0, "f2": (1 - x0) ** 2 + params["x1"]}


def fails_sometimes(params):
    """Raises for x0 < 0.3, returns NaN for x0 > 0.9, else a dict."""
    if params["x0"] < 0.3:
        raise ArithmeticError("model blew up")
    if params["x0"] > 0.9:
        return [float("nan"), 1.0]
    return {"f1": params["x0"], "f2": 1 - params["x0"] + params["x1"]}


def dies_on_rank_1(params):
    """Segfaults (a real SIGSEGV, as a broken mechanism would) when evaluated on MPI rank 1
    (as MPICH's launchers name it, or Open MPI's)."""
    if os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK")) == "1":
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(0.01)
    return {"f1": params["x0"], "f2": params["x1"]}


def counted(params):
    """ZDT1-like; appends x0 to the file named by HPCOPT_TEST_LOG (one line per call)
    and sleeps ``pause`` seconds, so tests can count evaluations across jobs. With
    HPCOPT_TEST_GATE="N:path", the N-th call and later ones return only once ``path``
    exists: a test can signal a job that is sure to be unfinished."""
    with open(os.environ["HPCOPT_TEST_LOG"], "a") as f:
        f.write(f"{params['x0']!r}\n")
    time.sleep(params["pause"])
    gate = os.environ.get("HPCOPT_TEST_GATE")  # "N:path": from call N on, wait until path exists
    if gate:
        after, path = gate.split(":", 1)
        if len(open(os.environ["HPCOPT_TEST_LOG"]).read().splitlines()) >= int(after):
            while not os.path.exists(path):
                time.sleep(0.01)
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def poisonous(params):
    """Segfaults the process evaluating it when x0 == poison, the
    first two times (counted in the file HPCOPT_TEST_LOG), so that clones of the
    poisonous individual in later generations do not crash a third job."""
    if params["x0"] == params["poison"]:
        log = os.environ["HPCOPT_TEST_LOG"]
        crashes = open(log).read().count("crash") if os.path.exists(log) else 0
        if crashes < 2:
            with open(log, "a") as f:
                f.write("crash\n")
            os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(0.02)
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def hangs(params):
    """Blocks forever inside a C call (a lock nobody releases) when x0 == hang, after
    writing "hang" to the file HPCOPT_TEST_LOG, so tests can wait for it to start."""
    if params["x0"] == params["hang"]:
        with open(os.environ["HPCOPT_TEST_LOG"], "a") as f:
            f.write("hang\n")
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # never returns
    time.sleep(0.01)
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def stuck_in_c(params):
    """Blocks forever inside C (libc pause(), signals ignored around it) for x0 > 0.6:
    only ending the process stops it."""
    if params["x0"] > 0.6:
        import ctypes

        ctypes.CDLL(None).pause()
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def exits(params):
    """Calls sys.exit(0) for x0 > 0.5: a model that ends the process must not end the run."""
    if params["x0"] > 0.5:
        sys.exit(0)
    return {"f1": params["x0"], "f2": 1 - params["x0"] + params["x1"]}


def hard_exits(params):
    """Calls os._exit(0) for x0 > 0.5: no exception, no clean-up, the process just ends."""
    if params["x0"] > 0.5:
        os._exit(0)
    return {"f1": params["x0"], "f2": 1 - params["x0"] + params["x1"]}


def named(params):
    """One objective, the sum of the parameters, whatever they are called."""
    return [sum(params.values())]


def named_pair(params):
    """Two objectives (the first parameter, the sum of the others), whatever they are called."""
    values = list(params.values())
    return [values[0], sum(values[1:])]


def huge_error(params):
    """Raises with a 10 MB message for x0 < 0.5."""
    if params["x0"] < 0.5:
        raise ValueError("x" * 10_000_000)
    return {"f1": params["x0"], "f2": 1 - params["x0"]}


def nested(params):
    """Returns [[value]]: not one number per objective."""
    return [[params["x0"]]]


def whoami(params):
    """ZDT1-like; appends "PMI_RANK HPCOPT_RANK" ("-" where unset) to HPCOPT_TEST_LOG, so a
    test sees which evaluations ran in a rank's child process (no PMI_RANK, HPCOPT_RANK set)."""
    with open(os.environ["HPCOPT_TEST_LOG"], "a") as f:
        f.write(f"{os.environ.get('PMI_RANK', '-')} {os.environ.get('HPCOPT_RANK', '-')}\n")
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def counted_rastrigin(params):
    """Rastrigin (hpcopt.testfunctions) of a and b, appending a to the file named by
    HPCOPT_TEST_LOG (one line per call), so tests can count evaluations across jobs."""
    with open(os.environ["HPCOPT_TEST_LOG"], "a") as f:
        f.write(f"{params['a']!r}\n")
    x = (params["a"], params["b"])
    return {"f": 10 * len(x) + sum(v * v - 10 * math.cos(2 * math.pi * v) for v in x)}


def crashes_rank0_once(params):
    """ZDT1-like; the first evaluation made in rank 0's child process (HPCOPT_RANK 0)
    segfaults it, once over the runs (noted in the file HPCOPT_TEST_LOG)."""
    log = os.environ["HPCOPT_TEST_LOG"]
    if os.environ.get("HPCOPT_RANK") == "0" and not os.path.exists(log):
        with open(log, "a") as f:
            f.write("crash\n")
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def broken(params):
    """Raises for every parameter set (as a model with a bug does), unless HPCOPT_TEST_FIXED
    is set: then ZDT1-like."""
    if not os.environ.get("HPCOPT_TEST_FIXED"):
        raise KeyError("no such section: 'somadend'")
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def stuck_in_rank0s_child(params):
    """ZDT1-like; blocks forever inside C (libc pause()) in rank 0's child process
    (HPCOPT_RANK 0) while HPCOPT_TEST_HANG is set, after writing "hang" to the file
    HPCOPT_TEST_LOG: an evaluation of rank 0's own that does not end."""
    if os.environ.get("HPCOPT_RANK") == "0" and os.environ.get("HPCOPT_TEST_HANG"):
        with open(os.environ["HPCOPT_TEST_LOG"], "a") as f:
            f.write("hang\n")
        import ctypes
        ctypes.CDLL(None).pause()
    return {"f1": params["x0"], "f2": (1 - params["x0"]) ** 2 + params["x1"]}


def stuck_or_broken(params):
    """Blocks forever inside C (libc pause()) for x0 > 0.5, raises for the others: every
    evaluation fails or times out (with evaluation.timeout)."""
    if params["x0"] > 0.5:
        import ctypes
        ctypes.CDLL(None).pause()
    raise KeyError("no such section: 'somadend'")


def removes_then_blocks(params):
    """The first evaluation (of any process: a marker file, $HPCOPT_TEST_MARKER) removes
    the file $HPCOPT_TEST_REMOVE and blocks forever inside C; the others return at once."""
    marker = os.environ["HPCOPT_TEST_MARKER"]
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return {"f": sum(v * v for v in params.values())}
    os.remove(os.environ["HPCOPT_TEST_REMOVE"])
    import ctypes

    ctypes.CDLL(None).pause()
