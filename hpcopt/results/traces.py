"""One parameter set's traces, to look at while designing a fit (``hpcopt evaluate
--plot/--traces``): every protocol's recordings above the current its stimuli
inject, the stimulus windows where eFEL measures, and each feature's value beside
its target.
"""

import csv
import os

import numpy as np
from matplotlib.figure import Figure

STIMULUS_COLOUR = "#1f77b4"


def injected(stimulus, t, tstop):
    """(nA at each time of ``t``) that a current stimulus injects, None for a synapse."""
    p = stimulus.primitive(tstop)
    if p["type"] == "step":
        return np.where((t >= p["delay"]) & (t < p["delay"] + p["dur"]), p["amp"], 0.0)
    if p["type"] == "play":
        times, amps = np.asarray(p["times"]), np.asarray(p["amps"])
        inside = (t >= p["delay"]) & (t <= p["delay"] + p["dur"])
        return np.where(inside, np.interp(t, times, amps), 0.0)
    return None


def figure(model, traces, values, dpi=110):
    """The traces of ``model`` (config.cell.CellModel) as one matplotlib Figure.

    traces: {(protocol, recording): (t, v)}; values: {feature name: (value or None,
    score)}. Per protocol: its recordings, then the injected current (synaptic events
    as marks), with each feature's stimulus window shaded; at the right of each
    recording, its features: value, target mean +- std, score in std units.
    """
    panels = layout(model, traces)
    heights = [0.7 if r is None else 2.0 for _, r in panels]
    fig = Figure(figsize=(11.0, sum(heights) + 0.8), layout="constrained", dpi=dpi)
    axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax, (protocol, recording) in zip(axes, panels):
        if recording is None:
            _stimulus_panel(ax, protocol, model)
        else:
            _recording_panel(ax, protocol, recording, traces[(protocol.name, recording.name)], model, values)
    axes[-1].set_xlabel("time (ms)")
    return fig


def layout(model, traces):
    """The panels of ``figure``, top to bottom (its axes, in this order): per protocol,
    (protocol, recording) for each recording in ``traces``, then (protocol, None) for
    its injected current."""
    panels = []
    for protocol in model.protocols:
        for recording in protocol.recordings:
            if (protocol.name, recording.name) in traces:
                panels.append((protocol, recording))
        panels.append((protocol, None))
    return panels


def _recording_panel(ax, protocol, recording, trace, model, values):
    t, v = trace
    features = [f for f in model.features if (f.protocol, f.recording) == (protocol.name, recording.name)]
    for start, end in sorted({(f.stim_start, f.stim_end) for f in features}):
        ax.axvspan(start, end, color="#f2d16b", alpha=0.25, lw=0)
    ax.plot(t, v, color="k", lw=0.8)
    ax.set_xlim(0, protocol.tstop)
    ax.set_ylabel(f"{recording.variable} (mV)" if recording.variable == "v" else recording.variable)
    ax.set_title(f"{protocol.name} / {recording.name}", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    if features:
        lines = ["feature                       value    target (mean ± std)   score"]
        for f in features:
            value, score = values.get(f.name, (None, None))
            shown = "none" if value is None else f"{value:.4g}"
            if not f.has_target:  # measured only: hpcopt targets makes its target
                lines.append(f"{f.efel_name:<28.28} {shown:>8} {'no target':>21}")
                continue
            lines.append(f"{f.efel_name:<28.28} {shown:>8} {f.mean:>10.4g} ± {f.std:<8.3g} {score:>6.3g}")
        ax.text(1.01, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=6.5,
                family="monospace")


def _stimulus_panel(ax, protocol, model):
    t = np.linspace(0.0, protocol.tstop, 4001)
    drawn = False
    for stimulus in protocol.stimuli:
        current = injected(stimulus, t, protocol.tstop)
        if current is None:
            p = stimulus.primitive(protocol.tstop)
            events = p["start"] + p["interval"] * np.arange(int(p["number"]))
            ax.vlines(events[events <= protocol.tstop], 0, 1, color=STIMULUS_COLOUR, lw=0.8)
            ax.set_yticks([])
        else:
            ax.plot(t, current, color=STIMULUS_COLOUR, lw=0.9, drawstyle="steps-post")
            drawn = True
    if drawn:
        ax.set_ylabel("I (nA)")
    ax.set_xlim(0, protocol.tstop)
    ax.grid(alpha=0.3)
    ax.set_title(f"{protocol.name}: injected current" if drawn else f"{protocol.name}: synaptic events",
                 fontsize=8, loc="left")


def write(path, traces):
    """Write ``traces`` {(protocol, recording): (t, v)} to ``path``: HDF5 (.h5, .hdf5;
    /PROTOCOL/RECORDING/t and /v) or CSV (any other name; columns protocol,
    recording, t, value)."""
    if os.path.splitext(path)[1].lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            for (protocol, recording), (t, v) in traces.items():
                group = f.require_group(protocol).require_group(recording)
                group["t"], group["v"] = np.asarray(t, dtype=float), np.asarray(v, dtype=float)
                group["t"].attrs["unit"] = "ms"
        return
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["protocol", "recording", "t", "value"])
        for (protocol, recording), (t, v) in traces.items():
            out.writerows((protocol, recording, repr(float(a)), repr(float(b))) for a, b in zip(t, v))
