"""A small NetPyNE network for the tests of problem.network.netpyne (tests/test_netpyne.py):
20 excitatory and 10 inhibitory single-compartment Hodgkin-Huxley cells (NEURON's
built-in hh), each driven by its own Poisson background (a NetStim source, seeded by
NetPyNE per cell and gid), E->I and I->E connections with probability 0.5 (drawn by
NetPyNE's gid-seeded generator) whose weights are parameters, and E->E weak.
``refusing`` and ``dies_once_on_group_rank_1`` are the failures a group must agree on."""

import os
import signal

from netpyne import specs
from neuron import h


def make(params):
    """(netParams, simConfig) of the parameters w_in, w_ei, w_ie (uS)."""
    net = specs.NetParams()
    soma = {"geom": {"diam": 20, "L": 20, "Ra": 100, "cm": 1}, "mechs": {"hh": {}}}
    net.cellParams["HH"] = {"secs": {"soma": soma}}
    net.popParams["E"] = {"cellType": "HH", "numCells": 20}
    net.popParams["I"] = {"cellType": "HH", "numCells": 10}
    net.synMechParams["exc"] = {"mod": "ExpSyn", "tau": 2, "e": 0}
    net.synMechParams["inh"] = {"mod": "ExpSyn", "tau": 6, "e": -80}
    net.stimSourceParams["background"] = {"type": "NetStim", "rate": 200, "noise": 1.0}
    net.stimTargetParams["background->all"] = {"source": "background", "conds": {"pop": ["E", "I"]},
                                               "weight": params["w_in"], "delay": 1, "synMech": "exc"}
    for name, pre, post, weight, synapse in (("E->I", "E", "I", params["w_ei"], "exc"),
                                             ("I->E", "I", "E", params["w_ie"], "inh"),
                                             ("E->E", "E", "E", params["w_ee"], "exc")):
        net.connParams[name] = {"preConds": {"pop": pre}, "postConds": {"pop": post}, "probability": 0.5,
                                "weight": weight, "delay": 1.5, "synMech": synapse}
    cfg = specs.SimConfig()
    cfg.hParams["celsius"] = 6.3
    return net, cfg


def not_a_pair(params):
    """A make() that forgets the simConfig."""
    return make(params)[0]


def refusing(params):
    """make(), but raises on group rank ``refuse_on`` (a frozen parameter, -1: never) when
    w_in > 0.0055; each build of a group's leader is logged to HPCOPT_TEST_LOG (an event a
    test can wait for)."""
    rank = int(h.ParallelContext().id())  # the rank in the group (NEURON's subworld)
    if int(params.get("refuse_on", -1)) == rank and params["w_in"] > 0.0055:
        raise ValueError(f"w_in {params['w_in']:.4g} refused on group rank {rank}")
    log = os.environ.get("HPCOPT_TEST_LOG")
    if log and rank == 0:
        with open(log, "a") as f:
            f.write(f"{params['w_in']!r}\n")
    return make(params)


def dies_once_on_group_rank_1(params):
    """make(), but group rank 1 segfaults (as a broken mechanism would) the first time it
    makes a network with w_in > 0.005 after its first 8 (generations 0 and 1 of population
    4: the checkpoint of generation 0 is then written, so that there is one to resume from);
    HPCOPT_TEST_LOG records the crash, HPCOPT_TEST_LOG.builds counts the builds."""
    log = os.environ["HPCOPT_TEST_LOG"]
    if int(h.ParallelContext().id()) == 1 and not os.path.exists(log):
        with open(log + ".builds", "a") as f:
            f.write("build\n")
        with open(log + ".builds") as f:
            built = len(f.readlines())
        if built > 8 and params["w_in"] > 0.005:
            with open(log, "w") as f:
                f.write("crash\n")
            os.kill(os.getpid(), signal.SIGSEGV)
    return make(params)
