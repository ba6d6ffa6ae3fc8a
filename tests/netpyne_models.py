"""A small NetPyNE network for the tests of problem.network.netpyne (tests/test_netpyne.py):
20 excitatory and 10 inhibitory single-compartment Hodgkin-Huxley cells (NEURON's
built-in hh), each driven by its own Poisson background (a NetStim source, seeded by
NetPyNE per cell and gid), E->I and I->E connections with probability 0.5 (drawn by
NetPyNE's gid-seeded generator) whose weights are parameters, and E->E weak.
``refusing`` and ``dies_once_on_group_rank_1`` are the failures a group must agree on."""

from netpyne import specs
from network_models import crash_once, refuse_or_log
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
    """make(), after network_models.refuse_or_log with w_in above 0.0055."""
    refuse_or_log(int(h.ParallelContext().id()), params, 0.0055)  # the rank in the group (NEURON's subworld)
    return make(params)


def dies_once_on_group_rank_1(params):
    """make(), after network_models.crash_once with w_in above 0.005."""
    crash_once(int(h.ParallelContext().id()), params, 0.005)
    return make(params)
