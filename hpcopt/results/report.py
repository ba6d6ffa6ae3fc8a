"""``hpcopt report``: PNG figures and an index.html of a run, finished or in progress.

The only module that imports matplotlib (headless: the Agg backend; figures are
``matplotlib.figure.Figure`` objects, no pyplot state). A cell model's best
individual is re-simulated here with the problem's own evaluator, as a rank of
the run built it, so its traces are the ones that were scored.

The directory gets index.html and the PNGs it links, nothing else: it can be
copied or mailed as it is (relative links, no external resource).
"""

import html
import json
import math
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..errors import HpcoptError, RunFileError  # noqa: E402
from ..store import snapshot  # noqa: E402
from . import status as runstatus  # noqa: E402

DPI = 100
TOP_FRACTION = 0.10  # "the best individuals": this fraction of a generation, or of the run
GROUP_PAIRS = 4  # the Pareto figure projects at most this many objective groups pairwise
FLOOR = 1e-6  # objective bars start at the smallest score's decade, not below this (a log axis has no 0)
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
           "#d62728"]
STATUS_COLOURS = {0: "#4a7fb0", 1: "#d62728", 2: "#ff9900"}
LATER = LinearSegmentedColormap.from_list("later", ["#dddddd", "#202020"])  # early light, late dark
# eFEL features whose value is a membrane potential (mV): drawn as targets on the traces
VOLTAGE_LEVELS = {
    "voltage_base", "steady_state_voltage", "steady_state_voltage_stimend", "steady_state_hyper",
    "minimum_voltage", "maximum_voltage", "voltage_after_stim", "AHP_depth_abs", "AHP_depth_abs_slow",
    "min_AHP_values", "peak_voltage", "AP_begin_voltage", "min_voltage_between_spikes",
}


def write(path, directory, traces=True, dpi=DPI):
    """Write the report of the run file ``path`` into ``directory``; returns the
    path of its index.html. traces: re-simulate a cell model's best individual;
    dpi: resolution of the PNGs."""
    with matplotlib.rc_context({"text.parse_math": False}):  # names from the file, shown as written: $x$ is no TeX
        return _write(path, directory, traces, dpi)


def _write(path, directory, traces, dpi):
    run = snapshot.read(path)
    run.require_generations()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise RunFileError(f"{directory}: cannot create the report directory: {err.strerror}") from err
    table = run.table()
    groups = objective_groups(run)
    sections = []  # (file name or None, title, caption)

    def add(name, title, caption, figure):
        if figure is None:  # not drawn this time: no stale figure of an earlier report stays beside the page
            if os.path.exists(os.path.join(directory, name)):
                os.unlink(os.path.join(directory, name))
            sections.append((None, title, caption))
            return
        figure.savefig(os.path.join(directory, name), dpi=dpi)
        sections.append((name, title, caption))

    add("convergence.png", "Convergence", _convergence_caption(run, groups), convergence(run, groups))
    add("objectives.png", "Objectives of the best individual",
        "Each objective's score (eFEL's distance in standard deviations for cell models) of the best individual, "
        f"coloured by group, on a logarithmic axis (a score below {FLOOR:g} has no bar; every value is written). "
        "Bars that reached the penalty (a missing feature or a failed simulation) are red and hatched; the dashed "
        "line is the penalty.",
        objectives(run, table, groups))
    if run.algorithm == "ibea":
        figure, caption = pareto(run, table, groups)
        add("pareto.png", "Pareto front", caption, figure)
    add("parameters.png", "Parameters over generations",
        f"The best {TOP_FRACTION:.0%} of each generation (dots) and the best individual so far (line), each "
        "parameter normalised to its bounds (the axis is labelled with the bounds). Parameters that the data pin "
        "down converge to a line; degenerate ones stay spread.",
        parameters(run))
    add("spread.png", "Parameters of the best individuals",
        f"The best {TOP_FRACTION:.0%} of all evaluations (at least 5), normalised to the bounds; the star is the "
        "best individual, its value at the right. A wide spread at similar scores means the parameter is not "
        "determined by the objectives (or trades off against another one).",
        spread(run, table))
    if run.is_cell:
        if traces:
            figure, caption = voltage_traces(run, table)
            add("traces.png", "Voltage traces of the best individual", caption, figure)
        else:
            add("traces.png", "Voltage traces of the best individual", "Not drawn (--no-traces).", None)
    add("eval_times.png", "Evaluation times",
        "Wall time of each evaluation, by status. The total is what the run cost in rank-seconds.",
        evaluation_times(table))
    add("timeline.png", "Rank timeline", _timeline_caption(run), timeline(run))
    index = os.path.join(directory, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(_html(run, table, sections))
    return index


def objective_groups(run):
    """[(name, objective indices)]: one group per protocol for cell models
    (objective names are protocol.recording.feature), one per objective otherwise."""
    names = run.objective_names
    if not run.is_cell:
        return [(name, [i]) for i, name in enumerate(names)]
    groups = {}
    for i, name in enumerate(names):
        groups.setdefault(name.split(".")[0], []).append(i)
    return list(groups.items())


def group_scores(run, F, groups):
    """(N, m) objectives -> (N, len(groups)) weighted sums per group."""
    weighted = np.asarray(F) * run.weights
    return np.stack([weighted[:, indices].sum(axis=1) for _, indices in groups], axis=1)


# ---------------------------------------------------------------- figures


def convergence(run, groups):
    rows = runstatus.progress(run)
    evaluations = np.array([r[1] for r in rows])
    best, gen_best, median = (np.array([r[k] for r in rows]) for k in (2, 3, 4))
    panels = 2 if len(groups) > 1 else 1
    figure = Figure(figsize=(5.2 * panels + 0.8, 4.0), layout="constrained")
    ax = figure.add_subplot(1, panels, 1)
    ax.plot(evaluations, median, "o-", ms=2.5, lw=1, color="#999999", label="median of the generation")
    ax.plot(evaluations, gen_best, ".", ms=3, color=COLOURS[0], alpha=0.5, label="best of the generation")
    ax.step(evaluations, best, where="post", lw=2, color=COLOURS[0], label="best so far")
    _scale(ax, np.concatenate([best, median]), "y")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("score (weighted sum of objectives)")
    ax.set_title("score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if panels == 2:
        ax = figure.add_subplot(1, 2, 2)
        G = np.concatenate([group_scores(run, g.objectives, groups) for g in run.generations])
        sizes = [len(g.scores) for g in run.generations]
        ends = np.cumsum(sizes)
        best_groups = np.array([G[:end].min(axis=0) for end in ends])
        for k, (name, _) in enumerate(groups):
            ax.step(evaluations, best_groups[:, k], where="post", lw=1.6, color=COLOURS[k % len(COLOURS)],
                    label=name)
        _scale(ax, best_groups.ravel(), "y")
        ax.set_xlabel("evaluations")
        ax.set_ylabel("lowest so far")
        ax.set_title("per " + ("protocol" if run.is_cell else "objective"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=1 + len(groups) // 8)
    return figure


def _convergence_caption(run, groups):
    text = ("Left: the best score so far (line), each generation's best (dots) and median (grey), against the "
            "number of evaluations.")
    if len(groups) > 1:
        text += (" Right: the lowest score of each " + ("protocol (the sum of its features' objectives)"
                                                         if run.is_cell else "objective") +
                 " reached so far by any individual; the individuals need not be the same.")
    return text


def objectives(run, table, groups):
    best = table.order()[0]
    values = table.F[best]
    names = run.objective_names
    colour = np.empty(len(names), dtype=object)
    for k, (_, indices) in enumerate(groups):
        colour[indices] = COLOURS[k % len(COLOURS)]
    penalised = values >= run.penalty
    positive = values[values > 0]
    floor = float(np.clip(10 ** np.floor(np.log10(positive.min())), FLOOR, 1e-2)) if len(positive) else 1e-2
    height = max(2.6, 0.24 * len(names) + 1.2)
    figure = Figure(figsize=(9.0, height), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(names))[::-1]
    bars = ax.barh(y, np.maximum(values, floor) - floor, left=floor, color=list(colour), height=0.7)
    for bar, bad in zip(bars, penalised):
        if bad:
            bar.set_color("#d62728")
            bar.set_hatch("//")
            bar.set_edgecolor("#7a0000")
    for yi, value in zip(y, values):
        ax.text(max(value, floor), yi, f" {value:.3g}", va="center", fontsize=7)
    ax.axvline(run.penalty, color="#d62728", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(floor, run.penalty * 4)
    ax.set_yticks(y, names, fontsize=8 if len(names) < 40 else 6)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel(f"objective score (penalty {run.penalty:g}, dashed)")
    g, row = int(table.generation[best]), int(table.row[best])
    ax.set_title(f"best individual: generation {g}, individual {row}, score {table.scores[best]:.6g}")
    ax.grid(axis="x", alpha=0.3)
    if len(groups) > 1:
        handles = [Patch(color=COLOURS[k % len(COLOURS)], label=name) for k, (name, _) in enumerate(groups)]
        if penalised.any():
            handles.append(Patch(facecolor="#d62728", hatch="//", edgecolor="#7a0000", label="penalty"))
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    return figure


def pareto(run, table, groups):
    """Pairwise projections of up to GROUP_PAIRS objective groups; the individuals
    non-dominated in the space of all groups are highlighted."""
    if len(groups) < 2:
        return None, "One objective group: there is no trade-off to show."
    ok = table.status == 0
    G = group_scores(run, table.F, groups)[ok]
    if len(G) < 2:
        return None, "Fewer than two successful evaluations: no front to show."
    front = _non_dominated(G)
    shown = list(range(min(len(groups), GROUP_PAIRS)))
    pairs = [(a, b) for i, a in enumerate(shown) for b in shown[i + 1:]]
    columns = min(3, len(pairs))
    rows = math.ceil(len(pairs) / columns)
    figure = Figure(figsize=(3.6 * columns + 0.4, 3.4 * rows + 0.3), layout="constrained")
    generation = table.generation[ok]
    best = int(np.argmin(table.scores[ok]))
    for k, (a, b) in enumerate(pairs):
        ax = figure.add_subplot(rows, columns, k + 1)
        points = ax.scatter(G[:, a], G[:, b], c=generation, s=6, cmap=LATER, vmin=0,
                            vmax=max(generation.max(), 1), alpha=0.7, lw=0)
        ax.scatter(G[front, a], G[front, b], s=16, color=COLOURS[1], label="non-dominated", zorder=3)
        ax.scatter(G[best, a], G[best, b], marker="*", s=140, color=COLOURS[0], edgecolor="k", lw=0.5,
                   label="best score", zorder=4)
        _scale(ax, G[:, a], "x")
        _scale(ax, G[:, b], "y")
        ax.set_xlabel(groups[a][0])
        ax.set_ylabel(groups[b][0])
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    figure.colorbar(points, ax=figure.axes, label="generation", shrink=0.8)
    what = ("protocol (the sum of its features' objectives)" if run.is_cell else "objective")
    caption = (f"Every successful evaluation (grey, darker = later generation) in the space of one score per {what}, "
               f"projected on pairs; orange: the {len(front)} individuals non-dominated in the space of all "
               f"{len(groups)} groups; star: the best total score.")
    if len(groups) > GROUP_PAIRS:
        caption += f" Only the first {GROUP_PAIRS} of {len(groups)} groups are shown."
    return figure, caption


def _non_dominated(G):
    """Indices of the rows of G (n, k) that no other row dominates (minimisation)."""
    keep = []
    for i in range(len(G)):
        dominated = np.all(G <= G[i], axis=1) & np.any(G < G[i], axis=1)
        if not dominated.any():
            keep.append(i)
    return np.array(keep, dtype=int)


def parameters(run):
    names = run.parameter_names
    span = np.where(run.upper > run.lower, run.upper - run.lower, 1.0)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.3 * columns + 0.3, 2.2 * rows + 0.4), layout="constrained")
    best_so_far, best_x = np.inf, None
    generations, top, trail = [], [], []
    for g in run.generations:
        k = max(1, math.ceil(TOP_FRACTION * len(g.scores)))
        order = np.lexsort((np.arange(len(g.scores)), g.scores))[:k]
        generations.append(np.full(k, g.index))
        top.append((g.parameters[order] - run.lower) / span)
        j = int(np.argmin(g.scores))
        if g.scores[j] < best_so_far:
            best_so_far, best_x = g.scores[j], g.parameters[j]
        trail.append((best_x - run.lower) / span)
    generations, top, trail = np.concatenate(generations), np.concatenate(top), np.array(trail)
    index = [g.index for g in run.generations]
    for p, name in enumerate(names):
        ax = figure.add_subplot(rows, columns, p + 1)
        ax.scatter(generations, top[:, p], s=8, color=COLOURS[0], alpha=0.5, lw=0)
        ax.plot(index, trail[:, p], color=COLOURS[1], lw=1.4)
        ax.set_ylim(-0.04, 1.04)
        ax.set_yticks([0, 0.5, 1], [f"{run.lower[p]:.3g}", "", f"{run.upper[p]:.3g}"], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(name, fontsize=8)
        ax.grid(alpha=0.3)
        if p + columns >= len(names):  # nothing below it
            ax.set_xlabel("generation", fontsize=8)
    return figure


def spread(run, table):
    names = run.parameter_names
    order = table.order()
    k = min(len(order), max(5, math.ceil(TOP_FRACTION * len(order))))
    span = np.where(run.upper > run.lower, run.upper - run.lower, 1.0)
    U = (table.X[order[:k]] - run.lower) / span
    figure = Figure(figsize=(8.0, 0.32 * len(names) + 1.3), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(names))[::-1]
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=U.shape)
    scores = table.scores[order[:k]]
    points = ax.scatter(U, np.broadcast_to(y, U.shape) + jitter, c=np.broadcast_to(scores[:, None], U.shape), s=10,
                        cmap="viridis_r", alpha=0.7, lw=0)
    ax.scatter(U[0], y, marker="*", s=120, color=COLOURS[1], edgecolor="k", lw=0.5, zorder=3, label="best")
    for yi, value in zip(y, table.X[order[0]]):
        ax.text(1.03, yi, f"{value:.4g}", va="center", fontsize=7, transform=ax.get_yaxis_transform())
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["lower bound", "", "", "", "upper bound"])
    ax.grid(alpha=0.3)
    ax.set_title(f"best {k} of {len(order)} evaluations")
    figure.colorbar(points, ax=ax, label="score", pad=0.09)
    return figure


def voltage_traces(run, table):
    """The best individual re-simulated, every protocol and recording: (figure, caption)."""
    best = table.order()[0]
    try:
        traces, model, rescored = _simulate(run, table.X[best])
    except HpcoptError as err:
        print(f"hpcopt: warning: traces not drawn: {err}", file=sys.stderr)
        return None, f"Not drawn: the model could not be rebuilt here ({err})."
    if traces is None:
        return None, f"Not drawn: the best individual's simulation failed here ({rescored})."
    features = {}
    for i, f in enumerate(model.features):
        features.setdefault((f.protocol, f.recording), []).append((i, f))
    keys = list(traces)
    figure = Figure(figsize=(11.0, 2.3 * len(keys) + 0.5), layout="constrained")
    stored = table.F[best]
    for n, key in enumerate(keys):
        t, v = traces[key]
        ax = figure.add_subplot(len(keys), 1, n + 1)
        windows = sorted({(f.stim_start, f.stim_end) for _, f in features.get(key, [])})
        for start, end in windows:
            ax.axvspan(start, end, color="#f2d16b", alpha=0.25 if len(windows) == 1 else 0.15, lw=0)
        ax.plot(t, v, color="k", lw=0.8)
        lines = []
        for k, (i, f) in enumerate(features.get(key, [])):
            lines.append(f"{f.efel_name:<32.32} {stored[i]:>7.3g}")
            if f.efel_name in VOLTAGE_LEVELS:
                colour = COLOURS[(k + 1) % len(COLOURS)]
                start, end = _measured(f, t[0], t[-1])
                ax.fill_between([start, end], f.mean - f.std, f.mean + f.std, color=colour, alpha=0.25, lw=0)
                ax.hlines(f.mean, start, end, color=colour, lw=1.4, ls="--", label=f"{f.efel_name} target")
        ax.set_xlim(t[0], t[-1])
        ax.set_ylabel(f"{model_variable(model, key)}")
        total = sum(stored[i] * run.weights[i] for i, _ in features.get(key, []))
        summary = f": {len(lines)} feature{'s' * (len(lines) > 1)}, score {total:.4g}" if lines else ": no feature"
        ax.set_title(f"{key[0]} / {key[1]}{summary}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        if lines:
            ax.text(1.01, 1.0, "feature                          score\n" + "\n".join(lines), transform=ax.transAxes,
                    va="top", ha="left", fontsize=6.5, family="monospace")
        if any(f.efel_name in VOLTAGE_LEVELS for _, f in features.get(key, [])):
            ax.legend(fontsize=6.5, loc="best", framealpha=0.85)
        if n == len(keys) - 1:
            ax.set_xlabel("time (ms)")
    difference = float(np.max(np.abs(rescored - stored))) if len(stored) else 0.0
    check = ("its objectives re-scored here equal the stored ones" if difference == 0 else
             f"its objectives re-scored here differ from the stored ones by up to {difference:.3g} "
             "(another NEURON or eFEL version, or another machine?)")
    caption = (f"The best individual (generation {int(table.generation[best])}, individual {int(table.row[best])}) "
               f"re-simulated in the report process; {check}. Yellow: each feature's stimulus window (where eFEL "
               "measures it); dashed lines and bands: targets (mean and one std) of the features that are voltage "
               "levels, over the part of the trace they measure (the baseline before the stimulus for voltage_base, "
               "after the stimulus for steady_state_voltage and voltage_after_stim). At the right, every feature of "
               "the trace with its stored objective score.")
    return figure, caption


def _measured(feature, t0, tstop):
    """Where on the trace a voltage-level feature is measured (eFEL's defaults, roughly)."""
    name, start, end = feature.efel_name, feature.stim_start, feature.stim_end
    if name == "voltage_base":
        return t0, start
    if name in ("steady_state_voltage", "voltage_after_stim"):
        return end, tstop
    if name == "steady_state_voltage_stimend":
        return end - 0.1 * (end - start), end
    return start, end


def model_variable(model, key):
    protocol = next(p for p in model.protocols if p.name == key[0])
    variable = next(r.variable for r in protocol.recordings if r.name == key[1])
    return f"{variable} (mV)" if variable == "v" else variable


def _simulate(run, x):
    """(traces, CellModel, re-scored objectives) of the physical values ``x``, or
    (None, model, error message) when the simulation fails."""
    from ..neuron.session import stdout_redirected
    from ..neuron.simulation import SimulationError
    from .export import rebuild

    model, evaluator = rebuild(run)
    values = dict(evaluator.frozen)
    values.update(zip(run.parameter_names, map(float, x)))
    with stdout_redirected(2):
        try:
            traces = evaluator.simulate(values)
        except SimulationError as err:
            return None, model, str(err)
        scores, _, _ = evaluator.scorer(traces)
    return traces, model, scores


def evaluation_times(table):
    figure = Figure(figsize=(7.0, 3.4), layout="constrained")
    ax = figure.add_subplot()
    timed = table.seconds > 0  # 0: recorded without running (in flight during crashes)
    if not timed.any():
        timed[:] = True
    seconds = table.seconds[timed]
    low, high = float(seconds.min()), float(seconds.max())
    logarithmic = low > 0 and high / low > 30
    bins = np.geomspace(low, high, 40) if logarithmic else np.linspace(low, high if high > low else low + 1, 40)
    data, labels, colours = [], [], []
    for code, name in enumerate(snapshot.STATUS_NAMES):
        chosen = table.seconds[(table.status == code) & timed]
        if len(chosen):
            data.append(chosen)
            labels.append(f"{name} ({len(chosen)})")
            colours.append(STATUS_COLOURS[code])
    ax.hist(data, bins=bins, stacked=True, label=labels, color=colours)
    if logarithmic:
        ax.set_xscale("log")
    ax.set_xlabel("evaluation wall time (s)")
    ax.set_ylabel("evaluations")
    ax.set_title(f"median {np.median(table.seconds):.3g} s, max {table.seconds.max():.3g} s, "
                 f"total {table.seconds.sum():.4g} rank-seconds", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def timeline(run):
    """Per rank, bars for its evaluations: the whole run, and the last generations."""
    t0 = run.generations[0].start_time
    bars = {}  # rank -> [(start, seconds, colour)]
    for g in run.generations:
        ahead = {}
        shade = ("#4a7fb0", "#9cc0e0")[g.index % 2]
        finished = g.finished if g.finished is not None else [None] * len(g.ranks)
        for seconds, rank, code, end in zip(g.eval_seconds, g.ranks, g.status, finished):
            rank = int(rank)
            if rank < 0:
                continue
            if end is not None:  # asynchronous runs store when each evaluation finished
                start = end - seconds - t0
            else:
                start = g.start_time - t0 + ahead.get(rank, 0.0)
                ahead[rank] = ahead.get(rank, 0.0) + float(seconds)
            colour = shade if code == 0 else STATUS_COLOURS[int(code)]
            bars.setdefault(rank, []).append((start, float(seconds), colour))
    ranks = sorted(bars)
    wall = sum(max(g.end_time - g.start_time, 1e-9) for g in run.generations)
    last = run.generations[-3:]
    zoom = len(run.generations) > len(last)
    height = min(0.28 * len(ranks), 6.0) + 1.4
    figure = Figure(figsize=(10.5, height * (2 if zoom else 1)), layout="constrained")
    panels = [(0.0, run.generations[-1].end_time - t0, "whole run")]
    if zoom:
        panels.append((last[0].start_time - t0, last[-1].end_time - t0, f"last {len(last)} generations"))
    for n, (left, right, title) in enumerate(panels):
        ax = figure.add_subplot(len(panels), 1, n + 1)
        for rank in ranks:
            chosen = [(s, d) for s, d, _ in bars[rank]]
            ax.broken_barh(chosen, (rank - 0.4, 0.8), facecolors=[c for _, _, c in bars[rank]],
                           edgecolor="white", lw=0.4 if n else 0)
        for g in run.generations:
            if left <= g.start_time - t0 <= right:
                ax.axvline(g.start_time - t0, color="k", lw=0.5 if n else 0.2, alpha=0.6)
        ax.set_xlim(left, right + (right - left) * 0.01)
        ax.set_ylim(-0.6, max(ranks, default=0) + 0.6)
        ax.invert_yaxis()
        step = max(1, len(ranks) // 16)
        busy = {r: sum(d for _, d, _ in bars[r]) / wall for r in ranks}
        ticks = ranks[::step]
        ax.set_yticks(ticks, [f"{r} ({100 * busy[r]:.0f} %)" for r in ticks], fontsize=7)
        ax.set_ylabel("rank (busy)")
        ax.set_title(title, fontsize=9, loc="left")
        if n == len(panels) - 1:
            ax.set_xlabel("seconds since the first generation started")
    legend = [Patch(color="#4a7fb0", label="ok (shades alternate per generation)")]
    legend += [Patch(color=STATUS_COLOURS[c], label=snapshot.STATUS_NAMES[c]) for c in (1, 2)
               if any(int(c) in g.status for g in run.generations)]
    figure.axes[0].legend(handles=legend, fontsize=7, loc="upper right")
    return figure


def _timeline_caption(run):
    rate, utilisation, ranks, _ = runstatus.speed(run, last=len(run.generations))
    if run.asynchronous:
        return ("Which rank evaluated what, when (asynchronous run: each evaluation's end is stored, so the bars "
                "are exact); vertical lines are the ends of batches, shades alternate per batch. Over the run: "
                f"{rate:.3g} evaluations/s, rank utilisation {100 * utilisation:.0f} % ({ranks} ranks seen; the "
                "percentage beside a rank is its busy share of the run's wall time).")
    return ("Which rank evaluated what, when; vertical lines are generation starts. The run file stores each "
            "evaluation's duration and rank but not its start: starts are reconstructed as the generation's start "
            "plus the durations of that rank's earlier evaluations in the generation (idle time between them is "
            "not known, so bars are packed to the left). Idle space before the next generation's line is load "
            f"imbalance. Over the run: {rate:.3g} evaluations/s, rank utilisation {100 * utilisation:.0f} % "
            f"({ranks} ranks seen; the percentage beside a rank is its busy share of the generations' wall time).")


def _scale(ax, values, axis):
    """Logarithmic when the values are positive and span more than two decades."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) and values.min() > 0 and values.max() / values.min() > 20:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


# ---------------------------------------------------------------- index.html


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 1em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ddd; padding: 2px 6px; }
th { background: #f0f0f0; } td.n { text-align: right; font-family: monospace; }
.wide { overflow-x: auto; } img { max-width: 100%; border: 1px solid #eee; } p.caption { color: #444; }
"""


def _html(run, table, sections):
    e = html.escape
    name = os.path.basename(run.path)
    out = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>hpcopt report: {e(name)}</title>",
           f"<style>{_STYLE}</style></head><body>",
           f"<h1>hpcopt report: {e(name)}</h1>",
           f"<p>{e(os.path.abspath(run.path))}, read {e(runstatus.clock(run.read_at))}"
           + ("" if run.finished else " &mdash; <b>the run was not finished</b>") + ".</p>",
           "<h2>Status</h2>", f"<pre>{e(runstatus.text(run))}</pre>",
           "<h2>Contents</h2><ul>"]
    out += [f"<li><a href='#{_anchor(title)}'>{e(title)}</a></li>" for _, title, _ in sections]
    out.append("<li><a href='#best'>Best individuals</a></li><li><a href='#config'>Config</a></li>"
               "<li><a href='#versions'>Versions</a></li></ul>")
    for file, title, caption in sections:
        out.append(f"<h2 id='{_anchor(title)}'>{e(title)}</h2>")
        if file:
            out.append(f"<p><a href='{e(file)}'><img src='{e(file)}' alt='{e(title)}'></a></p>")
        out.append(f"<p class='caption'>{e(caption)}</p>")
    out += ["<h2 id='best'>Best individuals</h2>", _best_table(run, table)]
    out += ["<h2 id='config'>Config (as stored in the run file, defaults filled in)</h2>",
            f"<pre>{e(json.dumps(run.config, indent=2))}</pre>"]
    versions = {k: v for k, v in run.attrs.items() if k.endswith("_version") or k == "mpi_library"}
    out += ["<h2 id='versions'>Versions</h2>", "<table>"]
    out += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in versions.items()]
    out += ["</table>", f"<p class='caption'>Report written by hpcopt {e(_version())} at "
                        f"{e(runstatus.clock(time.time()))}.</p>", "</body></html>\n"]
    return "\n".join(out)


def _best_table(run, table, count=10):
    e = html.escape
    order = table.order()[:count]
    head = ["#", "generation", "individual", "score", "status"] + run.parameter_names
    rows = ["<div class='wide'><table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for n, i in enumerate(order, 1):
        cells = [str(n), str(table.generation[i]), str(table.row[i]), f"{table.scores[i]:.6g}",
                 snapshot.STATUS_NAMES[int(table.status[i])]] + [f"{v:.6g}" for v in table.X[i]]
        rows.append("<tr>" + "".join(f"<td class='n'>{e(c)}</td>" for c in cells) + "</tr>")
    rows.append("</table></div>")
    rows.append(f"<p class='caption'>The {len(order)} lowest scores of {len(table)} evaluations. "
                f"<code>hpcopt export {e(run.path)} --rank K --json p.json</code> writes the K-th as parameters "
                "(<code>--hoc</code>, <code>--python</code>: a standalone NEURON model).</p>")
    return "\n".join(rows)


def _anchor(title):
    return "".join(c if c.isalnum() else "-" for c in title.lower())


def _version():
    from .. import __version__

    return __version__
