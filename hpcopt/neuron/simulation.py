"""Running one protocol on a built cell: stimuli, recordings, integration.

Integration advances in chunks of at most ``CHUNK_STEPS`` steps with the same
``fadvance`` sequence as NEURON's ``run()`` (what BluePyOpt calls), so that results
are BluePyOpt's; between chunks the step budget and the wall-clock safety net are
checked. Stimuli and recordings are created for the run and dropped after it, so
nothing of one evaluation reaches the next.
"""

import time

import numpy as np

# Steps per call into NEURON. NEURON holds the GIL while it integrates: on rank 0 the
# dispatcher thread that answers the other ranks waits for the end of a chunk.
CHUNK_STEPS = 100


class SimulationError(Exception):
    """This parameter set failed (a CVODE or hoc error, non-finite values)."""


class SimulationTimeout(SimulationError):
    """This parameter set exceeded the step budget or the wall-clock limit."""


def run(cell, protocol, simulation, deadline):
    """Simulate ``protocol`` on ``cell`` (neuron.cell.Cell) until ``deadline``
    (time.perf_counter()); returns {recording name: (t, values)} numpy arrays.

    Raises SimulationError (failed) or SimulationTimeout (budget exceeded).
    """
    h = cell.h
    keep = [stimulus(h, cell.location(s.location), s.primitive(protocol.tstop)) for s in protocol.stimuli]
    t = h.Vector()
    t.record(h._ref_t)
    vectors = []
    for r in protocol.recordings:
        sec, x = cell.location(r.location)
        v = h.Vector()
        v.record(getattr(sec(x), f"_ref_{r.variable}"))
        vectors.append(v)
    try:
        integrate(h, protocol.tstop, simulation, deadline)
    finally:
        del keep
    T = t.as_numpy().copy()
    traces = {}
    for r, v in zip(protocol.recordings, vectors):
        values = v.as_numpy().copy()
        if not np.all(np.isfinite(values)):
            raise SimulationError(f"{protocol.name}: non-finite {r.variable} at {r.name}")
        traces[r.name] = (T, values)
    return traces


def stimulus(h, place, primitive):
    """The NEURON objects of a stimulus (config.stimuli: its ``primitive``) at ``place``
    (section, x); the caller keeps them alive while the protocol runs."""
    sec, x = place
    if primitive["type"] == "step":
        clamp = h.IClamp(sec(x))
        clamp.delay, clamp.dur, clamp.amp = primitive["delay"], primitive["dur"], primitive["amp"]
        return (clamp,)
    if primitive["type"] == "play":  # the amplitude follows times/amps
        clamp = h.IClamp(sec(x))
        clamp.delay, clamp.dur = primitive["delay"], primitive["dur"]
        tvec, ivec = h.Vector(primitive["times"]), h.Vector(primitive["amps"])
        ivec.play(clamp._ref_amp, tvec, 1)
        return clamp, tvec, ivec
    synapse = dict(primitive["synapse"])
    point = getattr(h, synapse.pop("mechanism"))(sec(x))
    for key, value in synapse.items():
        setattr(point, key, value)
    stim = h.NetStim()
    stim.start, stim.interval, stim.number, stim.noise = (primitive["start"], primitive["interval"],
                                                          primitive["number"], 0)
    con = h.NetCon(stim, point)
    con.weight[0], con.delay = primitive["weight"], 0.0
    return point, stim, con


def integrator(h, tstop, simulation):
    """Set NEURON's integrator up for a run to ``tstop`` (CVODE or fixed dt)."""
    h.tstop = tstop
    h.cvode_active(1 if simulation.cvode else 0)
    if simulation.cvode:
        if simulation.atol:
            h.CVode().atol(simulation.atol)
    else:
        h.dt = simulation.dt
        h.steps_per_ms = 1.0 / simulation.dt


def integrate(h, tstop, simulation, deadline):
    """From stdinit() to ``tstop``, as run() does, in chunks (see the module's docstring)."""
    integrator(h, tstop, simulation)
    try:
        h.stdinit()
        if simulation.cvode:
            h.CVode().event(tstop)
            stop_at = tstop
        else:
            stop_at = tstop - h.dt / 2
        steps = 0
        while True:
            # hoc's loop ends at t >= stop_at with hoc's own tolerance, as run() does; it
            # took fewer steps than asked only when it got there
            asked = min(CHUNK_STEPS, simulation.max_steps + 1 - steps)
            taken = int(h.hpcopt_advance(stop_at, asked))
            steps += taken
            if taken < asked:
                return
            if steps > simulation.max_steps:
                raise SimulationTimeout(f"more than {simulation.max_steps} integration steps "
                                        f"(t = {h.t:.6g} of {tstop} ms)")
            if time.perf_counter() > deadline:
                raise SimulationTimeout(f"wall-clock limit reached at t = {h.t:.6g} of {tstop} ms")
    except RuntimeError as err:  # hoc errors, CVODE failures
        raise SimulationError(f"NEURON: {str(err).strip() or type(err).__name__}") from err
