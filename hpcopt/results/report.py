"""``hpcopt report``: PNG figures and an index.html of a run, finished or in progress.

The only module that imports matplotlib (headless: the Agg backend; figures are
``matplotlib.figure.Figure`` objects, no pyplot state). A cell model's best
individual is re-simulated here with the problem's own evaluator, as a rank of
the run built it, so its traces are the ones that were scored.

The directory gets index.html and the files it links (PNGs, features.csv), nothing
else: it can be copied or mailed as it is (relative links, no external resource).
"""

import csv
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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from ..errors import HpcoptError, RunFileError  # noqa: E402
from ..store import snapshot  # noqa: E402
from . import fit  # noqa: E402
from . import status as runstatus  # noqa: E402
from . import traces as drawing  # noqa: E402

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


def write(path, directory, traces=True, dpi=DPI, individual="best"):
    """Write the report of the run file ``path`` into ``directory``; returns the
    path of its index.html. traces: re-simulate a cell model's chosen individual;
    dpi: resolution of the PNGs; individual: which individual the per-individual
    parts show (fit.choose: best, best-of:OBJECTIVE or an id)."""
    with matplotlib.rc_context({"text.parse_math": False}):  # names from the file, shown as written: $x$ is no TeX
        return _write(path, directory, traces, dpi, individual)


def _write(path, directory, traces, dpi, individual):
    run = snapshot.read(path)
    run.require_generations()
    table = run.table()
    chosen, who = fit.choose(run, table, individual)  # a bad choice fails before anything is written
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise RunFileError(f"{directory}: cannot create the report directory: {err.strerror}") from err
    groups = objective_groups(run)
    sections = []  # (file name or None, title, caption, extra HTML)

    def add(name, title, caption, figure, extra=""):
        if figure is None:  # not drawn this time: no stale figure of an earlier report stays beside the page
            if os.path.exists(os.path.join(directory, name)):
                os.unlink(os.path.join(directory, name))
            sections.append((None, title, caption, extra))
            return
        _plain_ticks(figure)
        figure.savefig(os.path.join(directory, name), dpi=dpi)
        sections.append((name, title, caption, extra))

    _fit_sections(run, table, groups, (chosen, who), add, directory)
    _parameter_sections(run, table, chosen, add)
    if run.is_cell:
        title = f"Voltage traces of {who}"
        if traces:
            figure, caption = voltage_traces(run, table, chosen)
            add("traces.png", title, caption, figure)
        else:
            add("traces.png", title, "Not drawn (--no-traces).", None)
    add("eval_times.png", "Evaluation times",
        "Wall time of each evaluation, by status. The total is what the run cost in rank-seconds.",
        evaluation_times(table))
    add("timeline.png", "Rank timeline", _timeline_caption(run), timeline(run))
    index = os.path.join(directory, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(_html(run, table, sections))
    return index


def _fit_sections(run, table, groups, chosen, add, directory):
    """Convergence, the chosen individual's objectives and features, the Pareto front."""
    i, who = chosen
    add("convergence.png", "Convergence", _convergence_caption(run, groups), convergence(run, groups))
    add("objectives.png", f"Objectives of {who}",
        f"Each objective's score (eFEL's distance in standard deviations for cell models) of {who} "
        f"({_describe(run, table, i)}), coloured by group, on a logarithmic axis (a score below {FLOOR:g} has no "
        "bar; every value is written). Bars that reached the penalty (a missing feature or a failed simulation) are "
        "red and hatched; the dashed line is the penalty.",
        objectives(run, table, groups, i))
    if run.is_cell or run.is_network:
        figure, caption, extra = features_section(run, table, i, who, directory)
        add("features.png", f"{'Measures' if run.is_network else 'Features'} of {who} against their targets",
            caption, figure, extra)
    else:  # no features: none of an earlier report (of another run) stays beside the page
        for name in (FEATURES_CSV, "features.png"):
            if os.path.exists(os.path.join(directory, name)):
                os.unlink(os.path.join(directory, name))
    if "bluepyopt_evaluator" in run.config["problem"]:
        add("features.png", f"Features of {who} against their targets",
            "The targets cannot be known: a BluePyOpt evaluator (problem.bluepyopt_evaluator) scores its own "
            "features, and the run file stores only its objectives (drawn above), not feature values or targets.",
            None)
    if run.algorithm == "ibea":
        figure, caption = pareto(run, table, groups)
        add("pareto.png", "Pareto front", caption, figure)


def _parameter_sections(run, table, chosen, add):
    scaled = [n for n, s in fit.scales(run).items() if s == "log"]
    where = (f" Logarithmic axes: {', '.join(scaled)} ({_scale_source(run)})." if scaled else
             f" Every axis is linear ({_scale_source(run)}).")
    add("parameters.png", "Parameters over generations",
        f"The best {TOP_FRACTION:.0%} of each generation (dots) and the best individual so far (line), each "
        "parameter on its own axis between its bounds; the dashed line and the value written in each panel are "
        f"the shown individual's ({_describe(run, table, chosen)}). Parameters that the data pin down converge to "
        "a line; degenerate ones stay spread." + where,
        parameters(run, table, chosen))
    figure, caption = pairs(run, table, chosen)
    add("pairs.png", "Parameter pairs of the best individuals", caption + where, figure)
    add("spread.png", "Parameters of the best individuals",
        f"The best {TOP_FRACTION:.0%} of all evaluations (at least 5), each parameter between its bounds on its "
        "scale; the star is the best individual, its value at the right. A wide spread at similar scores means the "
        "parameter is not determined by the objectives (or trades off against another one).",
        spread(run, table))


def _scale_source(run):
    given = run.config.get("optimizer", {}).get("scale")
    if given:
        return "the scales the run's optimizer.scale gave"
    return (f"no optimizer.scale stored: log where the lower bound is positive and the upper one at least "
            f"{fit.AUTO_RATIO:g} times it, as optimizer.scale's auto")


def _describe(run, table, i):
    """'generation G, individual R, id N, score S' of Table row ``i``."""
    ident = int(fit.individual_ids(run)[i])
    return (f"generation {int(table.generation[i])}, individual {int(table.row[i])}, id {ident}, "
            f"score {table.scores[i]:.6g}")


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
    """Best and median score against evaluations; the lowest score per group; for
    CMA-ES each generation's sample spread (its step size). Resumes and restarts are marked."""
    rows = runstatus.progress(run)
    evaluations = np.array([r[1] for r in rows])
    best, gen_best, median = (np.array([r[k] for r in rows]) for k in (2, 3, 4))
    panels = 1 + (len(groups) > 1) + (run.algorithm == "cmaes")
    figure = Figure(figsize=(5.2 * panels + 0.8, 4.0), layout="constrained")
    ax = figure.add_subplot(1, panels, 1)
    ax.plot(evaluations, median, "o-", ms=2.5, lw=1, color="#999999", label="median of the generation")
    ax.plot(evaluations, gen_best, ".", ms=3, color=COLOURS[0], alpha=0.5, label="best of the generation")
    ax.step(evaluations, best, where="post", lw=2, color=COLOURS[0], label="best so far")
    _scale(ax, np.concatenate([best, median]), "y")
    _convergence_axes(ax, run, "score (weighted sum of objectives)", "score")
    if len(groups) > 1:
        ax = figure.add_subplot(1, panels, 2)
        G = np.concatenate([group_scores(run, g.objectives, groups) for g in run.generations])
        ends = np.cumsum([len(g.scores) for g in run.generations])
        best_groups = np.array([G[:end].min(axis=0) for end in ends])
        for k, (name, _) in enumerate(groups):
            ax.step(evaluations, best_groups[:, k], where="post", lw=1.6, color=COLOURS[k % len(COLOURS)],
                    label=name)
        _scale(ax, best_groups.ravel(), "y")
        _convergence_axes(ax, run, "lowest so far", "per " + ("protocol (sum of its scores)" if run.is_cell
                                                              else "objective"), ncol=1 + len(groups) // 8)
    if run.algorithm == "cmaes":
        ax = figure.add_subplot(1, panels, panels)
        ax.plot(evaluations, fit.sample_spread(run), "o-", ms=2.5, lw=1.2, color=COLOURS[2],
                label="spread of the generation's sample")
        sigma0 = run.config["optimizer"].get("sigma0")
        if sigma0:
            ax.axhline(sigma0, color=COLOURS[2], ls=":", lw=1, label=f"sigma0 = {sigma0:g} (config)")
        ax.set_yscale("log")
        _convergence_axes(ax, run, "std of the sample (unit coordinates)", "step size (from the samples)")
    return figure


def _convergence_axes(ax, run, ylabel, title, ncol=1):
    """Labels, grid, resume marks and legend of a convergence panel (x: evaluations)."""
    ends = np.cumsum([len(g.scores) for g in run.generations])
    for n, k in enumerate(fit.resumes(run)):
        ax.axvline(ends[k - 1], color="#d62728", ls="--", lw=1, label="resumed" if n == 0 else None)
    for n, k in enumerate(runstatus.restart_starts(run)[1:]):  # CMA-ES with restarts
        ax.axvline(ends[k - 1], color="#9467bd", ls=":", lw=1, label="CMA-ES restarted" if n == 0 else None)
    ax.set_xlabel("evaluations")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=ncol)


def _convergence_caption(run, groups):
    panels = ["Left", "Right"] if run.algorithm != "cmaes" or len(groups) < 2 else ["Left", "Middle", "Right"]
    text = (f"{panels.pop(0)}: the best score so far (line), each generation's best (dots) and median (grey), "
            "against the number of evaluations.")
    if len(groups) > 1:
        text += (f" {panels.pop(0)}: the lowest score of each " +
                 ("protocol (the sum of its features' objectives)" if run.is_cell else "objective") +
                 " reached so far by any individual; the individuals need not be the same.")
    if run.algorithm == "cmaes":
        text += (f" {panels.pop(0)}: CMA-ES's step size as the samples show it. The run file stores sigma only "
                 "for the current state, so this is each generation's spread: the standard deviation of its sample "
                 "in the search's unit coordinates (each parameter's bounds mapped to [0, 1] on its search scale), "
                 "geometric mean over the parameters; it follows sigma times the sampling distribution's width, "
                 "narrowed where points at a bound are folded back in.")
    resumed = fit.resumes(run)
    if resumed:
        text += (f" Dashed red: the run was resumed before generation{'s' * (len(resumed) > 1)} "
                 f"{', '.join(map(str, resumed))} (a generation started more than {fit.RESUME_GAP:g} s after the "
                 "previous one ended).")
    restarted = runstatus.restart_starts(run)[1:]
    if restarted:
        text += (f" Dotted purple: CMA-ES restarted ({run.restarts}) before generation{'s' * (len(restarted) > 1)} "
                 f"{', '.join(map(str, restarted))}, from a random point with a new population.")
    return text


def objectives(run, table, groups, best):
    """The objectives of Table row ``best`` (the chosen individual) as bars."""
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
    ax.set_title(f"generation {g}, individual {row}, score {table.scores[best]:.6g}")
    ax.grid(axis="x", alpha=0.3)
    if len(groups) > 1:
        handles = [Patch(color=COLOURS[k % len(COLOURS)], label=name) for k, (name, _) in enumerate(groups)]
        if penalised.any():
            handles.append(Patch(facecolor="#d62728", hatch="//", edgecolor="#7a0000", label="penalty"))
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    return figure


def features_section(run, table, i, who, directory):
    """The features of Table row ``i`` against their targets: (figure or None, caption,
    HTML table); also written as features.csv beside index.html."""
    features, why = fit.feature_targets(run)
    path = os.path.join(directory, FEATURES_CSV)
    if features is None:
        names = list(run.attrs.get("feature_names", []))
        stored = fit.stored_features(run)
        rows = [(n.split(".")[0], n, float(stored[i, k]) if stored is not None else math.nan, math.nan, math.nan,
                 math.nan, math.nan) for k, n in enumerate(names)]
        caption = f"The targets cannot be known: {why}. The table lists the feature values the run file stores."
    else:
        rows = fit.feature_rows(run, table, i, features)
        caption = (f"Each objective of {who} ({_describe(run, table, i)}): what it measured (a population's rate, "
                   "ISI CV or synchrony, or an eFEL feature of a recorded voltage; none where nothing could be "
                   "measured), the target mean and std from the stored config, the deviation (value - mean) / std, "
                   "and the stored score (|value - mean| / std, or the penalty)." if run.is_network else
                   f"Each feature of {who} ({_describe(run, table, i)}): its value as the run file stores it (the "
                   "mean of eFEL's values; none where eFEL found none), the target mean and std from the stored "
                   "config, the deviation (value - mean) / std, and the stored score (eFEL's distance: the mean of "
                   "|value - mean| / std over the feature's values, the penalty where it is missing).")
        caption += (" Green band: within one std; light band: two. The axis is linear within one std and "
                    "logarithmic beyond.")
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(FEATURE_COLUMNS)
        out.writerows([protocol, name] + [repr(float(v)) for v in numbers] for protocol, name, *numbers in rows)
    figure = feature_figure(rows) if features is not None and rows else None
    return figure, caption, _feature_table(rows)


FEATURES_CSV = "features.csv"
FEATURE_COLUMNS = ("protocol", "feature", "value", "target_mean", "target_std", "deviation_std", "score")


def feature_figure(rows):
    """One row per feature: its deviation from the target in std units, coloured by protocol."""
    protocols = list(dict.fromkeys(r[0] for r in rows))
    figure = Figure(figsize=(9.0, max(2.6, 0.26 * len(rows) + 1.3)), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(rows))[::-1]
    ax.axvspan(-2, 2, color="#2ca02c", alpha=0.10, lw=0)
    ax.axvspan(-1, 1, color="#2ca02c", alpha=0.22, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    deviation = np.array([r[5] for r in rows])
    edge = max(10.0, float(np.nanmax(np.abs(deviation))) * 1.5 if np.isfinite(deviation).any() else 10.0)
    for yi, (protocol, _, value, mean, std, dev, _) in zip(y, rows):
        colour = COLOURS[protocols.index(protocol) % len(COLOURS)]
        if math.isnan(dev):
            ax.plot(edge, yi, "x", color="#d62728", ms=8)
            ax.text(edge, yi, "  missing", va="center", fontsize=7, color="#d62728")
            continue
        ax.plot([0, dev], [yi, yi], color=colour, lw=1.2)
        ax.plot(dev, yi, "o", color=colour, ms=5)
        ax.text(1.01, yi, f"{value:.4g} vs {mean:.4g} ± {std:.3g}", va="center", fontsize=7,
                transform=ax.get_yaxis_transform())
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(-edge * 1.3, edge * 1.3)
    ax.set_yticks(y, [r[1] for r in rows], fontsize=8 if len(rows) < 40 else 6)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("(model value - target mean) / target std")
    ax.set_title("features against their targets (value vs mean ± std at the right)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    if len(protocols) > 1:
        ax.legend(handles=[Patch(color=COLOURS[k % len(COLOURS)], label=p) for k, p in enumerate(protocols)],
                  fontsize=7, loc="lower left")
    return figure


def _feature_table(rows):
    e = html.escape
    out = ["<div class='wide'><table>", "<tr><th>protocol</th><th>feature</th><th>value</th><th>target mean</th>"
           "<th>target std</th><th>(value - mean) / std</th><th>score</th></tr>"]
    for protocol, name, *numbers in rows:
        cells = "".join(f"<td class='n'>{'' if math.isnan(v) else e(f'{v:.6g}')}</td>" for v in numbers)
        out.append(f"<tr><td>{e(protocol)}</td><td>{e(name)}</td>{cells}</tr>")
    out.append(f"</table></div><p class='caption'>The same, every value as stored: <a href='{FEATURES_CSV}'>"
               f"{FEATURES_CSV}</a> (an empty cell here, nan there: not known, or no value).</p>")
    return "\n".join(out)


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
        ax.set_xlabel(_group_label(run, groups[a][0]))
        ax.set_ylabel(_group_label(run, groups[b][0]))
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


def _group_label(run, name):
    """A Pareto axis: what the value is, not only the group's name."""
    return f"{name}: sum of its features' scores" if run.is_cell else f"objective {name}"


def _non_dominated(G):
    """Indices of the rows of G (n, k) that no other row dominates (minimisation)."""
    keep = []
    for i in range(len(G)):
        dominated = np.all(G <= G[i], axis=1) & np.any(G < G[i], axis=1)
        if not dominated.any():
            keep.append(i)
    return np.array(keep, dtype=int)


def parameters(run, table, chosen):
    """Per parameter, on its scale between its bounds: the best of each generation,
    the best so far, and the chosen individual's value (marked and written)."""
    names = run.parameter_names
    scales = fit.scales(run)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.3 * columns + 0.3, 2.3 * rows + 0.4), layout="constrained")
    best_so_far, best_x = np.inf, None
    generations, top, trail = [], [], []
    for g in run.generations:
        k = max(1, math.ceil(TOP_FRACTION * len(g.scores)))
        order = np.lexsort((np.arange(len(g.scores)), g.scores))[:k]
        generations.append(np.full(k, g.index))
        top.append(g.parameters[order])
        j = int(np.argmin(g.scores))
        if g.scores[j] < best_so_far:
            best_so_far, best_x = g.scores[j], g.parameters[j]
        trail.append(best_x)
    generations, top, trail = np.concatenate(generations), np.concatenate(top), np.array(trail)
    index = [g.index for g in run.generations]
    for p, name in enumerate(names):
        ax = figure.add_subplot(rows, columns, p + 1)
        ax.scatter(generations, top[:, p], s=8, color=COLOURS[0], alpha=0.5, lw=0)
        ax.plot(index, trail[:, p], color=COLOURS[1], lw=1.4)
        value = float(table.X[chosen, p])
        ax.axhline(value, color="k", ls="--", lw=0.9)
        ax.text(0.98, 0.96, f"{value:.4g}", transform=ax.transAxes, ha="right", va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1})
        _parameter_axis(ax, run, p, scales[name], "y")
        ax.tick_params(labelsize=7)
        ax.set_title(f"{name} ({scales[name]})", fontsize=8)
        ax.grid(alpha=0.3)
        if p + columns >= len(names):  # nothing below it
            ax.set_xlabel("generation", fontsize=8)
    return figure


def _parameter_axis(ax, run, p, scale, axis, values=None):
    """Parameter ``p``'s axis on its scale, from bound to bound (a small margin), or
    around ``values`` where given and not all equal (zoomed in, within the bounds)."""
    low, high = float(run.lower[p]), float(run.upper[p])
    if values is not None and np.ptp(values) > 0:
        low, high = max(float(np.min(values)), low), min(float(np.max(values)), high)
    if scale == "log":
        margin = (high / low) ** 0.03
        limits = (low / margin, high * margin)
    else:
        margin = 0.03 * (high - low if high > low else 1.0)
        limits = (low - margin, high + margin)
    (ax.set_yscale if axis == "y" else ax.set_xscale)(scale)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(*limits)


def pairs(run, table, chosen, most=8):
    """The best individuals, every pair of (the first ``most``) parameters against each
    other on their scales, coloured by score: (figure, caption). Trade-offs show as
    diagonal bands, pinned parameters as narrow columns."""
    ok = np.flatnonzero(table.status == 0)
    if len(ok) < 2 or len(run.parameter_names) < 2:
        return None, "Fewer than two successful evaluations or parameters: no pair to show."
    order = ok[np.lexsort((table.row[ok], table.generation[ok], table.scores[ok]))]
    k = min(len(order), max(20, math.ceil(TOP_FRACTION * len(order))))
    best = order[:k][::-1]  # the best drawn last, on top
    names = run.parameter_names[:most]
    scales = fit.scales(run)
    d = len(names)
    figure = Figure(figsize=(1.9 * d + 1.2, 1.9 * d + 0.4), layout="constrained")
    axes = figure.subplots(d, d, squeeze=False)
    scores = table.scores[best]
    for a in range(d):
        for b in range(d):
            ax = axes[a, b]
            if b >= a:
                _pair_diagonal(ax, names[a], table.X[chosen, a]) if a == b else ax.set_axis_off()
                continue
            points = ax.scatter(table.X[best, b], table.X[best, a], c=scores, s=9, cmap="viridis", lw=0)
            ax.scatter(table.X[chosen, b], table.X[chosen, a], marker="*", s=60, color=COLOURS[1], edgecolor="k",
                       lw=0.5, zorder=3)
            _parameter_axis(ax, run, b, scales[names[b]], "x", table.X[best, b])
            _parameter_axis(ax, run, a, scales[names[a]], "y", table.X[best, a])
            ax.tick_params(labelsize=6)
            for axis, p in ((ax.xaxis, b), (ax.yaxis, a)):
                if scales[names[p]] == "linear":
                    axis.set_major_locator(MaxNLocator(3))
            ax.set_xlabel(names[b], fontsize=7) if a == d - 1 else ax.set_xticklabels([], minor=False)
            ax.set_ylabel(names[a], fontsize=7) if b == 0 else ax.set_yticklabels([], minor=False)
            ax.grid(alpha=0.3)
    figure.colorbar(points, ax=axes[:, -1].tolist(), label="score", shrink=0.6)
    shown = len(run.parameter_names) > most
    caption = (f"The best {k} of {len(ok)} successful evaluations (at least 20, else {TOP_FRACTION:.0%}), each pair of "
               "parameters against each other, coloured by score (darker is better), each axis spanning the values "
               "shown (zoomed in from the bounds); star: "
               "the shown individual, whose values are on the diagonal. Parameters that trade off against each other "
               "(say g_pas.somatic against g_pas.apical) show as a band across a panel; one the data pin down, as a "
               "narrow column or row." + (f" Only the first {most} parameters are shown." if shown else ""))
    return figure, caption


def _pair_diagonal(ax, name, value):
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{name}\n{value:.4g}", ha="center", va="center", fontsize=8, transform=ax.transAxes)


def spread(run, table):
    names = run.parameter_names
    order = table.order()
    k = min(len(order), max(5, math.ceil(TOP_FRACTION * len(order))))
    U = fit.unit(run, table.X[order[:k]], fallback="auto")
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
    scales = fit.scales(run)
    ax.set_yticks(y, [f"{n} (log)" if scales[n] == "log" else n for n in names], fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["lower bound", "", "", "", "upper bound"])
    ax.grid(alpha=0.3)
    ax.set_title(f"best {k} of {len(order)} evaluations")
    figure.colorbar(points, ax=ax, label="score", pad=0.09)
    return figure


def voltage_traces(run, table, chosen):
    """Table row ``chosen`` re-simulated, every protocol's recordings above the current
    its stimuli inject (traces.figure, as ``hpcopt evaluate --plot`` draws them), with
    the targets of voltage-level features over the part of the trace they measure:
    (figure, caption)."""
    try:
        traces, model, rescored = _simulate(run, table.X[chosen])
    except HpcoptError as err:
        print(f"hpcopt: warning: traces not drawn: {err}", file=sys.stderr)
        return None, f"Not drawn: the model could not be rebuilt here ({err})."
    if traces is None:
        return None, f"Not drawn: the individual's simulation failed here ({rescored})."
    rows = fit.feature_rows(run, table, chosen, model.features)
    values = {f.name: (None if math.isnan(row[2]) else row[2], row[6]) for f, row in zip(model.features, rows)}
    figure = drawing.figure(model, traces, values)
    for ax, (protocol, recording) in zip(figure.axes, drawing.layout(model, traces)):
        if recording is not None:
            _voltage_targets(ax, [f for f in model.features if (f.protocol, f.recording) ==
                                  (protocol.name, recording.name)], traces[(protocol.name, recording.name)][0])
    stored = table.F[chosen]
    difference = float(np.max(np.abs(rescored - stored))) if len(stored) else 0.0
    check = ("its objectives re-scored here equal the stored ones" if difference == 0 else
             f"its objectives re-scored here differ from the stored ones by up to {difference:.3g} "
             "(another NEURON or eFEL version, or another machine?)")
    caption = (f"The individual ({_describe(run, table, chosen)}) re-simulated in the report process; {check}. Under "
               "each protocol's recordings, the current its stimuli inject (synaptic input as marks of its events). "
               "Yellow: each feature's stimulus window (where eFEL measures it); dashed lines and bands: targets "
               "(mean and one std) of the features that are voltage levels, over the part of the trace they measure "
               "(the baseline before the stimulus for voltage_base, after the stimulus for steady_state_voltage and "
               "voltage_after_stim). At the right, every feature of the recording: its stored value, its target "
               "and its stored score in standard deviations.")
    return figure, caption


def _voltage_targets(ax, features, t):
    """Dashed target means and one-std bands of the voltage-level ``features`` on ``ax``."""
    drawn = False
    for k, f in enumerate(features):
        if f.efel_name in VOLTAGE_LEVELS:
            colour = COLOURS[(k + 1) % len(COLOURS)]
            start, end = _measured(f, t[0], t[-1])
            ax.fill_between([start, end], f.mean - f.std, f.mean + f.std, color=colour, alpha=0.25, lw=0)
            ax.hlines(f.mean, start, end, color=colour, lw=1.4, ls="--", label=f"{f.efel_name} target")
            drawn = True
    if drawn:
        ax.legend(fontsize=6.5, loc="best", framealpha=0.85)


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
        for k, resumed in enumerate(fit.resumes(run)):
            x = run.generations[resumed].start_time - t0
            if left <= x <= right:
                ax.axvline(x, color="#d62728", ls="--", lw=1.2, label="resumed" if k == 0 else None)
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
    if fit.resumes(run):
        legend.append(Line2D([], [], color="#d62728", ls="--", label="resumed"))
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


def _plain_ticks(figure):
    """Tick labels of logarithmic axes as plain numbers (1e-05, 0.01, 100): matplotlib
    writes them as TeX, which the report does not parse (text.parse_math is off so that
    names from the run file are shown as written)."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() in ("log", "symlog"):
                low, high = sorted(abs(v) for v in axis.get_view_interval())
                axis.set_major_formatter(plain)
                few = axis.get_scale() == "log" and low > 0 and high / low < 20  # under two decades: minor ones too
                axis.set_minor_formatter(plain if few else NullFormatter())


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
    out += [f"<li><a href='#{_anchor(title)}'>{e(title)}</a></li>" for _, title, _, _ in sections]
    out.append("<li><a href='#best'>Best individuals</a></li><li><a href='#config'>Config</a></li>"
               "<li><a href='#versions'>Versions</a></li></ul>")
    for file, title, caption, extra in sections:
        out.append(f"<h2 id='{_anchor(title)}'>{e(title)}</h2>")
        if file:
            out.append(f"<p><a href='{e(file)}'><img src='{e(file)}' alt='{e(title)}'></a></p>")
        out.append(f"<p class='caption'>{e(caption)}</p>")
        out.append(extra)
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
    head = ["#", "generation", "individual", "id", "score", "status"] + run.parameter_names
    ids = fit.individual_ids(run)
    rows = ["<div class='wide'><table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for n, i in enumerate(order, 1):
        cells = [str(n), str(table.generation[i]), str(table.row[i]), str(ids[i]), f"{table.scores[i]:.6g}",
                 snapshot.STATUS_NAMES[int(table.status[i])]] + [f"{v:.6g}" for v in table.X[i]]
        rows.append("<tr>" + "".join(f"<td class='n'>{e(c)}</td>" for c in cells) + "</tr>")
    rows.append("</table></div>")
    rows.append(f"<p class='caption'>The {len(order)} lowest scores of {len(table)} evaluations. "
                f"<code>hpcopt export {e(run.path)} --rank K --json p.json</code> writes the K-th as parameters "
                "(<code>--hoc</code>, <code>--python</code>: a standalone NEURON model); "
                "<code>hpcopt report --individual ID</code> shows the individual of that id.</p>")
    return "\n".join(rows)


def _anchor(title):
    return "".join(c if c.isalnum() else "-" for c in title.lower())


def _version():
    from .. import __version__

    return __version__
