"""Network builders whose behaviour the tests control: examples/network's E/I network,
logging each build of a group's leader to HPCOPT_TEST_LOG (an event a test can wait
for), and refusing some parameter sets on one rank of the group."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "network"))

import model  # noqa: E402  (examples/network/model.py)


def refuse_or_log(rank, params, above):
    """Raise on group rank ``refuse_on`` (a frozen parameter, -1: never) when w_in > ``above``;
    on a group's leader, log the build to HPCOPT_TEST_LOG (an event a test can wait for)."""
    if int(params.get("refuse_on", -1)) == rank and params["w_in"] > above:
        raise ValueError(f"w_in {params['w_in']:.4g} refused on group rank {rank}")
    log = os.environ.get("HPCOPT_TEST_LOG")
    if log and rank == 0:
        with open(log, "a") as f:
            f.write(f"{params['w_in']!r}\n")


def crash_once(rank, params, above):
    """On group rank 1, segfault (as a broken mechanism would) the first time w_in > ``above``
    after its first 8 builds (generations 0 and 1 of population 4: the checkpoint of
    generation 0 is then written, so that there is one to resume from); HPCOPT_TEST_LOG
    records the crash, HPCOPT_TEST_LOG.builds counts the builds."""
    log = os.environ["HPCOPT_TEST_LOG"]
    if rank == 1 and not os.path.exists(log):
        with open(log + ".builds", "a") as f:
            f.write("build\n")
        with open(log + ".builds") as f:
            built = len(f.readlines())
        if built > 8 and params["w_in"] > above:
            with open(log, "w") as f:
                f.write("crash\n")
            os.kill(os.getpid(), signal.SIGSEGV)


def build(pc, params):
    """The example's network; refuse_or_log with w_in above 0.006."""
    refuse_or_log(int(pc.id()), params, 0.006)
    return model.build(pc, params)


def nothing_recorded(pc, params):
    """A builder that forgets to say what to record."""
    model.build(pc, params)
    return {"cells": "none"}


def dies_once_on_group_rank_1(pc, params):
    """The example's network, but crash_once with w_in above 0.006."""
    crash_once(int(pc.id()), params, 0.006)
    return model.build(pc, params)


def short_delays(pc, params):
    """The example's network with connection delays shorter than the time step."""
    built = model.build(pc, params)
    for netcon in built["connections"]:
        netcon.delay = 0.01
    return built
