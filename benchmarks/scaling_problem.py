"""The function problem of benchmarks/scaling.py: three conductances fitted to a
steady-state current-voltage curve, with bounds spanning two to three decades and the
truth near their low end, as in conductance fitting.

A single compartment with a leak, a delayed-rectifier-like potassium current (n^4, n at
its steady state) and an h-like current activated by hyperpolarisation:

    I(V) = gl (V - EL) + gk n_inf(V)^4 (V - EK) + gh h_inf(V) (V - EH)

clamped at VOLTAGES (mV); conductances in S/cm2, currents in mA/cm2 (x 1000). The
objectives are one per voltage, |I(V) - I_target(V)| / (5 % of |I_target(V)|), like the
z-scores of eFEL features against targets with a 5 % standard deviation; TRUTH makes
the targets, so the minimum (0) is at the truth.
"""

import math

EL, EK, EH = -70.0, -90.0, -30.0
VOLTAGES = (-120.0, -105.0, -90.0, -75.0, -60.0, -45.0, -30.0, -15.0)
BOUNDS = {"gl": (1e-5, 1e-2), "gk": (1e-4, 1e-1), "gh": (1e-6, 1e-4)}  # 3, 3 and 2 decades
TRUTH = {"gl": 3e-5, "gk": 4e-4, "gh": 5e-6}  # near the low end of each
OBJECTIVES = [f"v{i}" for i in range(len(VOLTAGES))]


def current(g, v):
    """mA/cm2 (x 1000) at the clamped voltage v (mV) for conductances g ({name: S/cm2})."""
    n = 1.0 / (1.0 + math.exp(-(v + 40.0) / 10.0))
    h = 1.0 / (1.0 + math.exp((v + 80.0) / 8.0))
    return 1000.0 * (g["gl"] * (v - EL) + g["gk"] * n ** 4 * (v - EK) + g["gh"] * h * (v - EH))


TARGETS = [current(TRUTH, v) for v in VOLTAGES]


def evaluate(params):
    """{objective: |I - I_target| / (0.05 |I_target|)} at each voltage."""
    return {name: abs(current(params, v) - target) / (0.05 * abs(target))
            for name, v, target in zip(OBJECTIVES, VOLTAGES, TARGETS)}
