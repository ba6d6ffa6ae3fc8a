"""``hpcopt status``: progress of a run, also while a job is writing it."""

import time

import numpy as np

from ..store.snapshot import RECENT_GENERATIONS, lock_holder


def progress(run):
    """Per generation: (index, evaluations so far, best so far, best, median, failed)."""
    rows, total, best = [], 0, np.inf
    for g in run.generations:
        total += len(g.scores)
        best = min(best, float(np.min(g.scores)))
        rows.append((g.index, total, best, float(np.min(g.scores)), float(np.median(g.scores)),
                     int(np.count_nonzero(g.status != 0))))
    return rows


def speed(run, last=RECENT_GENERATIONS):
    """Over the last ``last`` generations: (evaluations per second, rank utilisation,
    ranks seen, seconds per generation).

    Speed counts from the first generation's start to the last one's end (so the
    checkpoints' time is in it), unless a pause lies between them (a job stopped
    and resumed later), then only the generations' own wall time. Utilisation is
    the evaluations' time over ranks x the generations' wall time; the run file
    does not store the number of ranks, so it counts the ranks seen evaluating
    (rank ids 0..max) in each generation; with several ranks per evaluation, the
    groups seen (their leaders' ranks 0, K, 2K, ...), each busy while it evaluates."""
    recent = run.generations[-last:]
    wall = np.array([max(g.end_time - g.start_time, 1e-9) for g in recent])
    span = recent[-1].end_time - recent[0].start_time
    elapsed = span if span <= 2 * wall.sum() else wall.sum()
    evaluations = sum(len(g.scores) for g in recent)
    k = int(run.config.get("execution", {}).get("ranks_per_evaluation", 1))
    ranks = np.array([int(np.max(g.ranks, initial=0)) // k + 1 for g in recent])
    busy = sum(float(np.sum(g.eval_seconds)) for g in recent)
    if run.asynchronous:  # a batch holds some ranks' results only: every rank works across batches
        ranks = np.full(len(recent), ranks.max())
    return (evaluations / max(elapsed, 1e-9), busy / float(np.sum(ranks * wall)), int(ranks.max()) * k,
            elapsed / len(recent))


def in_progress(run):
    """What the journal says about generations not yet in the file:
    [(generation, done, in flight, size)]."""
    done, flight = _journal_progress(run, lambda e: (run.generation_of(e["id"]), e["id"]) if "id" in e else None)
    generations = sorted(set(done) | set(flight))
    return [(g, len(done.get(g, ())), len(flight.get(g, set()) - done.get(g, set())), run.generation_size(g))
            for g in generations]


def in_progress_asynchronous(run):
    """(evaluations done and not in the file, evaluations in flight) per the journal
    of an asynchronous run."""
    done, flight = _journal_progress(run, lambda e: (None, e["id"]) if "id" in e else None)
    return len(done.get(None, ())), len(flight.get(None, set()) - done.get(None, set()))


def _journal_progress(run, key):
    """({group: members done}, {group: members started in the latest session and not
    finished}) from the journal; key(entry) -> (group, member) or None (not counted)."""
    latest = max((i for i, e in enumerate(run.journal) if e["event"] == "session"), default=-1)
    done, flight = {}, {}
    for i, e in enumerate(run.journal):
        k = key(e)
        if k is None:
            continue
        group, member = k
        if e["event"] == "done":
            done.setdefault(group, set()).add(member)
            flight.get(group, set()).discard(member)
        elif e["event"] == "abandoned":
            flight.get(group, set()).discard(member)
        elif e["event"] == "start" and i > latest:
            flight.setdefault(group, set()).add(member)
    return done, flight


def common_errors(run, most=3):
    """[(count, message)] of the ``most`` most frequent reasons evaluations failed."""
    counts = {}
    for g in run.generations:
        for code, error in zip(g.status, g.errors):
            if code != 0:
                counts[error] = counts.get(error, 0) + 1
    return sorted(((n, e) for e, n in counts.items()), key=lambda item: -item[0])[:most]


def text(run, rows=10):
    """``hpcopt status``: a few lines and a small table."""
    o = run.config["optimizer"]
    problem = run.config["problem"]
    kind = ("cell model" if run.is_cell else f"function {problem['function']}" if "function" in problem
            else f"network {problem['network'].get('builder') or 'netpyne ' + problem['network']['netpyne']}"
            if "network" in problem
            else f"BluePyOpt evaluator {problem['bluepyopt_evaluator']['factory']}")
    done = len(run.generations)
    lines = [f"{run.path}: {o['algorithm']}, population {o['population']}, "
             f"{len(run.parameter_names)} free parameters, {len(run.objective_names)} objectives ({kind})"]
    restarting = run.restarts != "none"
    budget = (f"evaluation budget of {run.evaluations_budget} met" if run.asynchronous
              else f"evaluation budget of {o['evaluations']} reached in generation {done - 1}" if restarting
              else f"evaluation budget of {o['evaluations']} reached in generation {run.budget - 1}"
              if "evaluations" in o else f"generation budget of {run.budget} met")
    state = f"finished: {run.state.get('stop_reason') or budget}" if run.finished else "not finished"
    if run.asynchronous:
        told = run.state.get("evaluations", 0)
        lines.append(f"asynchronous  {told} of {run.evaluations_budget} evaluations told "
                     f"({100 * told / run.evaluations_budget:.0f} %) in {done} batches of {o['batch']}; {state}")
    elif restarting:
        told = run.state.get("evaluations", 0)
        lines.append(f"budget        {told} of {run.evaluations_budget} evaluations done "
                     f"({100 * told / run.evaluations_budget:.0f} %) in {done} generations; {state}")
        lines.append(restarts_line(run))
    else:
        lines.append(f"generations   {done} of {run.budget} done ({100 * done / run.budget:.0f} %); {state}")
    status = np.concatenate([g.status for g in run.generations]) if run.generations else np.zeros(0, int)
    counts = [int(np.count_nonzero(status == k)) for k in range(3)]
    lines.append(f"evaluations   {len(status)}: {counts[0]} ok, {counts[1]} failed, {counts[2]} timeout")
    for count, error in common_errors(run):
        lines.append(f"  {count:>5} x    {error if len(error) <= 100 else error[:97] + '...'}")
    if run.generations:
        rate, utilisation, ranks, per_generation = speed(run)
        recent = min(len(run.generations), RECENT_GENERATIONS)
        lines.append(f"speed         {rate:.3g} evaluations/s over the last {recent} {run.unit}; rank utilisation "
                     f"{100 * utilisation:.0f} % ({ranks} rank{'s' * (ranks != 1)} seen evaluating)")
        first, last = run.generations[0].start_time, run.generations[-1].end_time
        left = ""
        if not run.finished and restarting:
            remaining = run.evaluations_budget - run.state.get("evaluations", 0)
            left = f"; about {_duration(remaining / max(rate, 1e-9))} left ({remaining} evaluations at {rate:.3g}/s)"
        elif not run.finished:
            remaining = run.budget - done
            left = f"; about {_duration(remaining * per_generation)} left ({remaining} {run.unit} at " \
                   f"{per_generation:.3g} s)"
        lines.append(f"time          started {clock(first)}, last checkpoint {clock(last)} "
                     f"({_duration(run.read_at - last)} ago){left}")
        best = min(range(done), key=lambda i: float(np.min(run.generations[i].scores)))
        g = run.generations[best]
        where = f"batch {g.index}, id {int(g.ids[np.argmin(g.scores)])}" if run.asynchronous else \
            f"generation {g.index}, individual {int(np.argmin(g.scores))}"
        lines.append(f"best          score {float(np.min(g.scores)):.6g} ({where}; 'hpcopt best {run.path}')")
    if run.asynchronous:
        finished, flight = in_progress_asynchronous(run)
        if finished or flight:
            lines.append(f"in progress   {finished} evaluations done and not yet told since the last checkpoint"
                         f"{f', {flight} in flight' if flight else ''} (journal)")
    for g, finished, flight, size in in_progress(run):
        lines.append(f"in progress   generation {g}: {finished} of {size} evaluations done since the last "
                     f"checkpoint{f', {flight} in flight' if flight else ''} (journal)")
    if not run.finished:
        holder, alive = lock_holder(run.path)
        if holder:
            lines.append(f"job           {holder}" + {True: " (running)", False: " (not running)", None: ""}[alive])
    if run.generations:
        lines += ["", _table(run, rows)]
    else:
        lines.append("no generation complete yet")
    return "\n".join(lines)


def restarts_line(run):
    """How many restarts a run with restarts has made, and where each began."""
    starts = restart_starts(run)
    limit = run.config["optimizer"]["restarts"]
    strategy = limit if isinstance(limit, str) else f"{limit['strategy']}, at most {limit['max']}"
    where = ", ".join(map(str, starts[1:11])) + (", ..." if len(starts) > 11 else "")
    return (f"restarts      {strategy}: {run.state.get('restart', 0)} so far, population now "
            f"{run.state.get('population', run.config['optimizer']['population'])}"
            + (f" (restarted at generation{'s' * (len(starts) > 2)} {where})" if len(starts) > 1 else ""))


def restart_starts(run):
    """The generations where each restart's run began (the first: 0), from the records."""
    return [g.index for k, g in enumerate(run.generations)
            if g.restart is not None and (k == 0 or g.restart != run.generations[k - 1].restart)]


def _table(run, rows):
    table = progress(run)
    picked = sorted(set(np.linspace(0, len(table) - 1, min(rows, len(table))).round().astype(int)))
    unit = "batch" if run.asynchronous else "gen"
    restarting = run.restarts != "none"
    header = f"{'batch' if run.asynchronous else 'generation':>10} {'evaluations':>11} {'best so far':>12} " \
             f"{unit + ' best':>12} {unit + ' median':>12} " \
             f"{'failed':>6}" + (f" {'restart':>7} {'pop':>6}" if restarting else "")
    out = [header]
    for i in picked:
        g, total, best, gbest, median, failed = table[i]
        extra = f" {run.generations[i].restart:>7} {len(run.generations[i].scores):>6}" if restarting else ""
        out.append(f"{g:>10} {total:>11} {best:>12.6g} {gbest:>12.6g} {median:>12.6g} {failed:>6}{extra}")
    return "\n".join(out)


def clock(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(seconds):
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
