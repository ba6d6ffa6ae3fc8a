"""A small E/I network for hpcopt's network problem kind (examples/network/config.json).

40 excitatory and 10 inhibitory single-compartment Hodgkin-Huxley cells (NEURON's
built-in hh, nothing to compile), each driven by its own Poisson input, connected at
random (a fixed pattern, the same whatever the ranks): every cell receives 8 E and
2 I inputs through exponential synapses with 1.5 ms delays. The weights are the
parameters (uS).

``build(pc, params)`` creates the cells whose gid falls on this rank of the group
(gid % nhost == id), so the same network spreads over 1, 2 or more ranks. Every random
number comes from a stream tied to a gid (Random123 for the Poisson input), which is
why the spikes, and the scores, do not depend on how many ranks run it.
"""

import numpy as np
from neuron import h

N_E, N_I = 40, 10
INPUTS_E, INPUTS_I = 8, 2  # inputs of every cell from each population
DELAY = 1.5  # ms
DRIVE_RATE = 200.0  # Hz of each cell's Poisson input
PATTERN_SEED = 4  # the connectivity


def connectivity():
    """[(source gid, target gid)] of the whole network, the same on every rank."""
    rng = np.random.default_rng(PATTERN_SEED)
    pairs = []
    for target in range(N_E + N_I):
        for low, high, k in ((0, N_E, INPUTS_E), (N_E, N_E + N_I, INPUTS_I)):
            candidates = [g for g in range(low, high) if g != target]
            pairs += [(int(s), target) for s in rng.choice(candidates, size=k, replace=False)]
    return pairs


class Cell:
    """One soma with hh, an excitatory and an inhibitory synapse, a Poisson drive."""

    def __init__(self, gid, params):
        self.soma = h.Section(name=f"cell{gid}")
        self.soma.L = self.soma.diam = 20
        self.soma.insert("hh")
        self.excitatory = h.ExpSyn(self.soma(0.5))
        self.excitatory.tau, self.excitatory.e = 2, 0
        self.inhibitory = h.ExpSyn(self.soma(0.5))
        self.inhibitory.tau, self.inhibitory.e = 6, -80
        self.drive = h.NetStim()
        self.drive.interval, self.drive.number, self.drive.start, self.drive.noise = 1000 / DRIVE_RATE, 1e9, 0, 1
        self.drive.noiseFromRandom123(gid, 1, 0)
        self.drive_input = h.NetCon(self.drive, self.excitatory)
        self.drive_input.weight[0] = params["w_in"]
        self.spikes = h.NetCon(self.soma(0.5)._ref_v, None, sec=self.soma)
        self.spikes.threshold = 0


def build(pc, params):
    """The cells of this rank and their input connections; what hpcopt records."""
    rank, ranks = int(pc.id()), int(pc.nhost())
    cells = {}
    for gid in range(rank, N_E + N_I, ranks):
        cells[gid] = Cell(gid, params)
        pc.set_gid2node(gid, rank)
        pc.cell(gid, cells[gid].spikes)
    weight = {("E", "E"): params["w_ee"], ("E", "I"): params["w_ei"],
              ("I", "E"): params["w_ie"], ("I", "I"): params["w_ii"]}
    connections = []
    for source, target in connectivity():
        if target in cells:
            kind = "E" if source < N_E else "I"
            synapse = cells[target].excitatory if kind == "E" else cells[target].inhibitory
            netcon = pc.gid_connect(source, synapse)
            netcon.weight[0] = weight[(kind, "E" if target < N_E else "I")]
            netcon.delay = DELAY
            connections.append(netcon)
    return {"populations": {"E": [g for g in cells if g < N_E], "I": [g for g in cells if g >= N_E]},
            "voltages": {"e0": cells[0].soma(0.5)} if 0 in cells else {},
            "cells": cells, "connections": connections}
