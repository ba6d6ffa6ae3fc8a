"""The Graupner-Brunel calcium-based STDP model (Graupner and Brunel 2012), as a
``problem.function`` for hpcopt: ``evaluate`` scores one parameter set against the
spike-timing data of Nevian and Sakmann (2006) in ``data.json``.

The model, in the analytic form of Graupner and Brunel's supplement:

- every presynaptic spike adds ``C_pre`` to the calcium concentration after a delay
  ``D`` (s), every postsynaptic spike adds ``C_post`` at once; calcium decays with
  ``tau_ca`` (s);
- the synaptic efficacy rho is depressed at rate ``gamma_d`` while calcium is above
  ``theta_d`` and potentiated at rate ``gamma_p`` while it is above ``theta_p``, with
  noise of amplitude ``sigma``, on the time scale ``tau`` (s); over a protocol rho is an
  Ornstein-Uhlenbeck process whose drift and noise come from the fractions of time
  calcium spends above the two thresholds;
- a synapse is UP (efficacy ``b``) or DOWN (efficacy 1) according as rho ends above
  or below ``rho_star``; a fraction ``beta`` starts DOWN. The synaptic change is the
  mean efficacy after the protocol over the mean efficacy before.

Times are in seconds. A protocol (``data.json``: ``protocol``) pairs one presynaptic
spike at time 0 with a burst of postsynaptic spikes starting at ``dt``, ``pairings``
times at ``frequency``; calcium between pairings is the periodic steady state.
"""

import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    """A JSON file of this folder (``data.json``, ``reference.json``)."""
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return json.load(f)


DATA = read("data.json")
PROTOCOL = DATA["protocol"]


def objective_name(dt_ms):
    """The objective of the data point at ``dt_ms``: 'dt-90ms', 'dt+10ms'."""
    return f"dt{dt_ms:+g}ms"


OBJECTIVES = [objective_name(p["dt_ms"]) for p in DATA["points"]]


def calcium_events(params, dt):
    """(times, amplitudes) of one pairing's calcium transients, in time order:
    the presynaptic spike at 0 (its calcium after ``D``), the postsynaptic burst at ``dt``."""
    post = dt + PROTOCOL["post_interval"] * np.arange(PROTOCOL["post_spikes"])
    times = np.concatenate([[params["D"]], post])
    amplitudes = np.concatenate([[params["C_pre"]], np.full(post.size, params["C_post"])])
    order = np.argsort(times, kind="stable")
    return times[order], amplitudes[order]


def time_above(times, amplitudes, period, tau_ca, thresholds):
    """Time (s) per period the periodic calcium trace spends above each threshold.

    times, amplitudes: (n,) transients of one period, in time order. Calcium just
    after transient k is the sum of every transient's decayed amplitude, this
    period's and all earlier ones'; it then decays until the next transient.
    """
    lag = (times[:, None] - times[None, :]) % period  # (n, n): how long ago j happened, seen at k
    peak = (amplitudes * np.exp(-lag / tau_ca)).sum(axis=1) / -np.expm1(-period / tau_ca)
    interval = np.diff(times, append=times[0] + period)  # (n,) until the next transient
    above = tau_ca * np.log(peak[:, None] / np.asarray(thresholds, dtype=float))  # (n, thresholds)
    return np.clip(above, 0.0, interval[:, None]).sum(axis=0)


def synaptic_change(params, dt):
    """Mean efficacy after the protocol with spike timing ``dt`` (s) over before it."""
    times, amplitudes = calcium_events(params, dt)
    f, n = PROTOCOL["frequency"], PROTOCOL["pairings"]
    t_d, t_p = time_above(times, amplitudes, 1.0 / f, params["tau_ca"], (params["theta_d"], params["theta_p"]))
    up = down = 0.0  # transition probabilities; none without calcium above a threshold
    if t_d > 0 or t_p > 0:
        alpha_d, alpha_p = t_d * f, t_p * f  # fractions of time above the thresholds
        rate_d, rate_p = params["gamma_d"] * alpha_d, params["gamma_p"] * alpha_p
        rho_bar = rate_p / (rate_d + rate_p)  # where rho drifts to
        variance = params["sigma"] ** 2 * (alpha_d + alpha_p) / (rate_d + rate_p)
        decay = math.exp(-(n / f) * (rate_d + rate_p) / params["tau"])  # memory of rho's start
        spread = math.sqrt(variance * (1.0 - decay ** 2))
        threshold = params["rho_star"]
        up = 0.5 * (1.0 + math.erf((rho_bar * (1.0 - decay) - threshold) / spread))  # from rho = 0
        down = 0.5 * (1.0 + math.erf((threshold - rho_bar * (1.0 - decay) - decay) / spread))  # from rho = 1
    beta, b = params["beta"], params["b"]
    after = beta * (1.0 - up) + (1.0 - beta) * down + b * (beta * up + (1.0 - beta) * (1.0 - down))
    return after / (beta + (1.0 - beta) * b)


def evaluate(params):
    """{objective: |model - mean| / sem} for every data point (the hpcopt function)."""
    return {objective_name(p["dt_ms"]): abs(synaptic_change(params, p["dt_ms"] / 1000.0) - p["mean"]) / p["sem"]
            for p in DATA["points"]}
