: Iht: a small hyperpolarisation-activated cation current (Ih-like), written
: for the hpcopt test model. One gate, Boltzmann steady state, bell-shaped time
: constant, Q10 = 2.3 relative to 34 degC.

NEURON {
    SUFFIX Iht
    NONSPECIFIC_CURRENT ihcn
    RANGE gIhbar, gIh, ehcn
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gIhbar = 0.0001 (S/cm2)
    ehcn = -45 (mV)
    vhalf = -85 (mV)
    slope = 7 (mV)
    taumax = 60 (ms)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ihcn (mA/cm2)
    gIh (S/cm2)
    minf
    mtau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    gIh = gIhbar * m
    ihcn = gIh * (v - ehcn)
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m) / mtau
}

INITIAL {
    rates(v)
    m = minf
}

PROCEDURE rates(v (mV)) { LOCAL qt
    qt = 2.3^((celsius - 34) / 10)
    minf = 1 / (1 + exp((v - vhalf) / slope))
    mtau = (5 + taumax / (exp((v - vhalf) / 20) + exp(-(v - vhalf) / 20))) / qt
}
