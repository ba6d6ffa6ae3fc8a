"""The Tsodyks-Markram model of short-term plasticity, fitted to an in-vitro trace.

The model (the "full" TM model of BluePyOpt's tsodyksmarkramstp example): each
presynaptic spike at t_k (the stimulus time plus ``latency``) moves resources

    dR/dt = (1 - R - E) / trec - U R delta(t - t_k)      recovered
    dE/dt = -E / tinac         + U R delta(t - t_k)      effective (active)
    dU/dt = (use - U) / tfac   + use (1 - U) delta(t - t_k)
    tmem dV/dt = -(V - V_rest) + rinput ase E            soma voltage

starting at rest (R = 1, E = 0, U = use, V = V_rest, the mean of the trace before
the first stimulus). Time constants and latency in ms, ase in pA, rinput in MOhm,
use dimensionless. Only the product rinput * ase enters the voltage, so the two
are not identifiable one by one.

The equations are discretised as BluePyOpt's ``tmodeint.integrate`` does (forward
Euler at the trace's sampling step; a spike acts in the step after its sample, at
the sample nearest to stimulus + latency). Between two spikes that discrete system
is linear with constant coefficients, so each stretch is computed at once in
closed form (geometric series) rather than sample by sample: the same numbers up
to rounding, about a hundred times faster.

Objectives, as BluePyOpt's example scores a trace: for each stimulus, the
Euclidean norm (V) of model minus data over the 40 ms from 5 ms after the
stimulus (the last window, the recovery test response, is 120 ms long).
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "trace.npz")
PARAMETERS = ("trec", "tfac", "ase", "use", "rinput", "tmem", "tinac", "latency")
OFFSET, WINDOW = 0.005, 0.04  # s: where each scored window starts after its stimulus, its length


class Trace:
    """The in-vitro recording: t (s), v (V), tstim (s), from a .npz file of plain arrays."""

    def __init__(self, path=DATA):
        with np.load(path, allow_pickle=False) as data:
            self.t, self.v, self.tstim = (np.array(data[name], dtype=float) for name in ("t", "v", "tstim"))
        self.dt = self.t[1] - self.t[0]
        self.stimulus = np.searchsorted(self.t, self.tstim)  # sample index of each stimulus
        self.v_rest = float(np.mean(self.v[:self.stimulus[0]]))
        starts = np.searchsorted(self.t, self.tstim + OFFSET)
        stops = starts + int(round(WINDOW / self.dt))
        stops[-1] += 2 * int(round(WINDOW / self.dt))
        self.windows = list(zip(starts.tolist(), stops.tolist()))

    @property
    def objectives(self):
        return [f"interval_{i}" for i in range(len(self.windows))]


def geometric_sums(a, b, m):
    """S[j] = sum_{i<j} a^(j-1-i) b^i for j = 0..m (S[0] = 0): the response after j steps
    of y <- a y + x to an input x that starts at 1 and decays by b each step.

    Factored by the larger of |a|, |b| so that no power grows: stable also for a = b.
    """
    big, small = (a, b) if abs(a) >= abs(b) else (b, a)
    S = np.zeros(m + 1)
    if m:
        S[1:] = np.power(big, np.arange(m)) * np.cumsum(np.power(small / big, np.arange(m)))
    return S


def simulate(trace, trec, tfac, ase, use, rinput, tmem, tinac, latency):
    """The model's soma voltage (V) at every sample of ``trace``; parameters as in PARAMETERS."""
    n = len(trace.t)
    step = trace.dt * 1e3  # ms
    # one Euler step: R <- aR + r(1 - E), E <- qE, U <- sU + (1 - s)use, P <- pP + gE
    r, q, s = step / trec, 1 - step / tinac, 1 - step / tfac
    a, p, g = 1 - r, 1 - step / tmem, step / tmem * rinput * ase * 1e-6
    spikes = trace.stimulus + int(np.round(1e-3 * latency / trace.dt))
    if spikes[-1] >= n - 1:
        raise ValueError(f"latency {latency} ms puts the last spike past the trace")
    longest = int(np.max(np.diff(np.append(spikes, n - 1)))) - 1  # free steps after a spike, at most
    p_powers = np.power(p, np.arange(longest + 1))
    p_response, a_response = geometric_sums(p, q, longest), geometric_sums(a, q, longest)
    P = np.zeros(n)
    R, E, U, V = 1.0, 0.0, use, 0.0  # the state at the sample of the first spike: rest
    for k, spike in enumerate(spikes):
        # the step out of the spike's sample: Euler step from the state there, plus the jump
        release, facilitation = U * R, use * (1 - U)
        R, E, U, V = a * R + r * (1 - E) - release, q * E + release, s * U + (1 - s) * use + facilitation, p * V + g * E
        P[spike + 1] = V
        end = spikes[k + 1] if k + 1 < len(spikes) else n - 1
        m = end - spike - 1  # free steps to the next spike's sample (or the end)
        P[spike + 2:end + 1] = p_powers[1:m + 1] * V + g * E * p_response[1:m + 1]
        R, E, U, V = 1 + a ** m * (R - 1) - r * E * a_response[m], q ** m * E, use + s ** m * (U - use), P[end]
    return P + trace.v_rest


def errors(trace, v):
    """Norm of (v - recorded) in each scored window, V."""
    return [float(np.linalg.norm(trace.v[t0:t1] - v[t0:t1])) for t0, t1 in trace.windows]


TRACE = Trace()


def evaluate(params):
    """hpcopt's problem.function: {parameter: value} -> {interval_i: error (V)}."""
    v = simulate(TRACE, *(params[name] for name in PARAMETERS))
    return dict(zip(TRACE.objectives, errors(TRACE, v)))
