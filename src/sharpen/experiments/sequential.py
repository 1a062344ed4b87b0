"""``sharpen run EXP --until-decided``: grow a run directory one stacked group of seeds per
look until every claim is decided or the budget is spent (the rule:
:mod:`sharpen.reports.sequential`).

Each look is an ordinary ``run_experiment`` with ``runs`` grown by one group, so finished
runs are kept and a killed look resumes; every arm that may stack trains each look's seeds
as one group of ``step`` (the same groups whatever the looks before), which keeps every
number equal to an uninterrupted run's. The design and every look are written to
``sequential.json`` in the run directory before and after each look, so a resumed run
continues the same plan and the report rebuilds from files alone. On a grid each cell is its
own design, and every cell that takes look k takes it in the same invocation, so that the
cells' jobs run side by side (the sharpening map's cells looked one after another left one
of two cores idle: one arm's new group per look).

The design binds its definition (every claim, the level, step, budget and cells): a later
invocation that changes any of it is refused, naming the field. A look is judged on the n
it is named for: seeds of a look that did not finish are trained once more, and a claim
whose seeds still fall short is judged on those that finished at the design's threshold for
that n, never at the look's own, looser one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpen.console import fitted
from sharpen.data.prepare import check_data_sizes
from sharpen.errors import SharpenError
from sharpen.experiments.plan import stack_blockers
from sharpen.experiments.progress import status
from sharpen.experiments.runner import (
    config_diff,
    default_out_dir,
    refuse_another_experiment,
    run_experiment,
)
from sharpen.metrics import get_metric, parse_amount
from sharpen.reports import write_report
from sharpen.reports.claim_map import cell_of, claim_maps, in_cell
from sharpen.reports.claims import BEYOND, _prejudge, _stated_effect, fmt_detectable, load_runs
from sharpen.reports.sequential import (
    SEQUENTIAL,
    BudgetPower,
    SequentialPlan,
    base_arms,
    bound_design,
    budget_power,
    decide,
    design,
    read_record,
    refuse_changes,
    unit_key,
)
from sharpen.rundir import CONFIG, FINISHED, RunDir
from sharpen.verdicts import get_op

DEFAULT_STEP = 5  # seeds per look when the file does not fix stack_seeds


def _step(exp: Any, step: int | None) -> int:
    if step is not None:
        return step
    fixed = {c.stack_seeds for c in exp.arms.values() if isinstance(c.stack_seeds, int)}
    return max(fixed) if fixed and max(fixed) > 1 else DEFAULT_STEP


def looks_of(step: int, max_runs: int) -> list[int]:
    """The seeds after each look: step, 2·step, … up to max_runs (a whole number of steps)."""
    if step < 2:
        raise SharpenError(f"--step {step}: a look needs at least 2 new seeds (a t statistic "
                           "needs 2)")
    if max_runs < step:
        raise SharpenError(f"--max-runs {max_runs} is less than one step of {step} seeds")
    return list(range(step, max_runs - max_runs % step + 1, step))


def _units(exp: Any) -> list[tuple[str, Any]]:
    """What runs its own looks: the experiment, or for a grid each cell (its arms)."""
    if not exp.cells:
        return [("", exp)]
    axes = list(exp.grid)
    by: dict[tuple, dict[str, str]] = {}
    for derived, c in exp.cells.items():
        by.setdefault(tuple(c[k] for k in axes), {})[c["arm"]] = derived
    out = []
    for point, arms in by.items():
        key = unit_key(dict(zip(axes, point)), axes)
        sub = exp.model_copy(update={"arms": {a: exp.arms[a] for a in arms.values()},
                                     "cells": {a: exp.cells[a] for a in arms.values()}})
        out.append((key, sub))
    return out


def _in_unit(claims: list[dict[str, Any]], out: Path, sub: Any) -> list[dict[str, Any] | None]:
    """The claims as a unit judges them: for a grid cell, renamed onto the cell's arms as
    the directory records them, by the claim map's own mapping (so a best/worst claim has
    the rivals `sharpen report` gives it: the cell's arms, never another cell's); None for
    a claim the cell cannot judge."""
    if not sub.cells:
        return list(claims)
    here = cell_of(RunDir(out).config(), next(iter(sub.cells)))
    return [in_cell(c, here) for c in claims]


def _lost(out: Path, arms: list[str], seeds: list[int]) -> dict[str, dict[str, str]]:
    """The look's seeds that gave no value, per arm: seed → failed, diverged, corrupt or
    missing (no result at all)."""
    status = load_runs(out).status
    lost = {a: {str(s): status.get(a, {}).get(s, "missing") for s in seeds
                if status.get(a, {}).get(s) != "ok"} for a in arms}
    return {a: seeds for a, seeds in lost.items() if seeds}


def _said(lost: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{a} seed(s) " + ", ".join(f"{s} ({st})" for s, st in seeds.items())
                     for a, seeds in lost.items() if seeds)


def run_until_decided(exp: Any, out: Path | None, max_runs: int | None = None,
                      step: int | None = None, quiet: bool = False, pilot: Path | None = None,
                      spend_anyway: bool = False, **run_kw: Any
                      ) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    """Looks until every claim is decided or ``max_runs`` seeds per arm have run (for a
    grid: in every cell, each cell its own design); returns the run directory, the last
    look's results and the sequential record. Before the first look the budget's power is
    stated (``pilot``: a run directory whose per-seed differences give the sd) and a budget
    that cannot detect the effect of interest is refused unless ``spend_anyway``."""
    claims = [c.model_dump() for c in exp.claims]
    if not claims:
        raise SharpenError(f"{exp.source or exp.name}: --until-decided judges claims, and this "
                           "experiment has none ([[claims]] in the file)")
    chance = [c["claim"] for c in claims if get_op(c["op"]).chance]
    if chance:  # its boundaries are those of t statistics; an exact binomial's are not
        raise SharpenError(f"{exp.source or exp.name}: claim {chance[0]!r} (op "
                           f"{next(c['op'] for c in claims if c['claim'] == chance[0])!r}) "
                           "cannot be decided by --until-decided (its looks' boundaries are "
                           "those of the t-test); run a fixed number of seeds instead")
    _refuse_left_out_arms(exp, claims)
    check_data_sizes(exp.arms)  # before the design is written or its power stated
    out = Path(out) if out is not None else default_out_dir(exp)
    if (out / CONFIG).is_file():  # another experiment's directory: refused untouched
        refuse_another_experiment(out, RunDir(out).config(), exp.resolved())
    g = _step(exp, step)
    units = _units(exp)
    plan, record, created = _open_design(exp, out, claims, units,
                                         _looks(g, max_runs or exp.max_runs or 4 * g))
    if created:  # before the first seed is spent: can this budget detect what matters?
        check_budget(exp, claims, plan, pilot, spend_anyway)
    # its looks alone add seeds to the directory (look=True)
    d = _Design(out, claims, plan, record, created, quiet, {**run_kw, "look": True})
    for cfg in exp.arms.values():  # each look's new seeds train as one group of g
        if cfg.stack_seeds == "auto":
            cfg.stack_seeds = g if not stack_blockers(cfg) else 1
    results: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).write_sequential(d.record)
    ran = False
    recs = {key: d.record["units"].setdefault(key, {"looks": [], "decisions": {},
                                                    "finished": False})
            for key, _ in units}
    for k, n in enumerate(d.plan.looks):
        # every cell that takes look k takes it in one invocation: their jobs fill the
        # cores together (a cell's look alone is often one job: one busy core). A cell's
        # seeds, and so its decisions, are the same whichever invocation trains them.
        now = [(key, sub) for key, sub in units
               if not recs[key]["finished"] and len(recs[key]["looks"]) == k]
        if not now:  # judged before this run was stopped (its seeds ran), or finished
            continue
        results, _ = _run_look(d, _together(exp, [sub for _, sub in now], n), k)
        ran = True
        for key, sub in now:
            rec = recs[key]
            lost = _lost(out, list(sub.arms), sub.seeds)
            before = set(rec["decisions"])
            rec["looks"].append(_judge_look(d, key, sub, k, lost, rec["decisions"]))
            rec["finished"] = len(rec["decisions"]) == len(claims) or n == d.plan.looks[-1]
            RunDir(out).write_sequential(d.record)
            if not quiet:
                _say_look(d, key, k, rec, before)
    if not ran:  # every look was judged earlier: the runs as they stand
        results = _as_they_stand(d, exp, units, recs)
    else:  # again, now with the last look's sequential record
        with status("building the report…", quiet=quiet):
            write_report(out)
    return out, results, d.record


def _refuse_left_out_arms(exp: Any, claims: list[dict[str, Any]]) -> None:
    """A claim naming an arm this run leaves out (--arms, select_arms) could never be
    judged: every look would spend seeds on it, and a grid's summary read "not supported"
    where nothing was tested. Refused before the design is written."""
    have = set(base_arms(exp))
    for c in claims:
        than = c.get("than")
        if than is None and get_op(c["op"]).rivals:  # best/worst: every arm of the file
            than = list(exp.arm_order)
        named = [c["arm"], *(than if isinstance(than, list) else [than] if than else [])]
        missing = [a for a in named if a not in have]
        if missing:
            raise SharpenError(
                f"{exp.source or exp.name}: claim {c['claim']!r} names arm {missing[0]!r}, "
                f"which this run leaves out (it runs {', '.join(sorted(have))}: --arms or "
                "select_arms): --until-decided could never judge it; run the arms its "
                "claims name")


def _together(exp: Any, subs: list[Any], n: int) -> Any:
    """One invocation's experiment: the arms of ``subs`` (units) at ``n`` seeds each."""
    for sub in subs:
        sub.runs = n
    return subs[0] if len(subs) == 1 else exp.model_copy(update={
        "runs": n, "arms": {a: c for sub in subs for a, c in sub.arms.items()},
        "cells": {a: c for sub in subs for a, c in sub.cells.items()}})


def _as_they_stand(d: _Design, exp: Any, units: list[tuple[str, Any]],
                   recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A design whose every look was judged earlier, run again: each unit at the n of its
    last look (cells that decided at different looks hold different n; one n for all
    would train seeds past an early cell's decision), grouped by that n."""
    at: dict[int, list[Any]] = {}
    for key, sub in units:
        looks = recs[key]["looks"]
        at.setdefault(looks[-1]["n"] if looks else d.plan.looks[0], []).append(sub)
    results: list[dict[str, Any]] = []
    for n, subs in sorted(at.items()):  # the last one's results hold every kept run
        results = run_experiment(_together(exp, subs, n), d.out, quiet=True, **d.run_kw)[1]
    return results


def _say_look(d: _Design, key: str, k: int, rec: dict[str, Any], before: set[str]) -> None:
    """One line for look ``k``, and one per claim it decided (``before``: the claims decided
    at earlier looks): the earlier looks' runs are not listed again."""
    where = f"{key}: " if key else ""
    print(fitted(f"{where}look {k + 1}/{len(d.plan.looks)} at n = {d.plan.looks[k]}: "
                 f"{len(rec['decisions'])}/{len(d.claims)} claims decided (nominal p ≤ "
                 f"{d.plan.nominal[k]:.3g} each)"), flush=True)
    for i in sorted(set(rec["decisions"]) - before, key=int):
        dec = rec["decisions"][i]
        print(fitted(f"{where}decided: {d.claims[int(i)]['claim']!r} {dec['verdict']} at n = "
                     f"{dec['n']} (p {dec['p']:.3g}, threshold {dec['threshold']:.3g})", "  "),
              flush=True)


def _looks(step: int, budget: int) -> list[int]:
    """:func:`looks_of`, warning when the budget is not a whole number of steps."""
    looks = looks_of(step, budget)
    if looks[-1] != budget:  # a look needs a whole step of new seeds
        print(f"sharpen: warning: --max-runs {budget} is not a whole number of steps of {step}: "
              f"the design stops at {looks[-1]} seeds per arm (looks at n = "
              f"{', '.join(map(str, looks))})", file=sys.stderr, flush=True)
    return looks


@dataclass
class _Design:
    """A design being run: its directory, claims, plan and record (``sequential.json``)."""

    out: Path
    claims: list[dict[str, Any]]
    plan: SequentialPlan
    record: dict[str, Any]
    created: bool  # this invocation made the record (no look had run before)
    quiet: bool
    run_kw: dict[str, Any]  # run_experiment's options for every look


def _open_design(exp: Any, out: Path, claims: list[dict[str, Any]],
                 units: list[tuple[str, Any]], looks: list[int]
                 ) -> tuple[SequentialPlan, dict[str, Any], bool]:
    """A new design's plan and record (True: made now), or the directory's, bound: any
    change to a claim, the looks or the grid is refused, and so is a first look over
    results already seen at fixed n."""
    # the family: every claim in every cell (a map of 9 cells is 9 questions), Bonferroni
    m = len(claims) * len(units)
    record = read_record(out)
    seen = [r for r in RunDir(out).runs() if r.status in FINISHED] if out.is_dir() else []
    if record is None and seen:
        # its first look would count seeds whose results were already seen at fixed n: a
        # design started after looking is optional stopping
        raise SharpenError(
            f"{out} already holds {len(seen)} finished run(s) of this experiment, judged at "
            "fixed n; a sequential design must choose its seeds before any result is seen "
            "(its first look would count these). Start the design with another --out, or "
            "keep this directory fixed-n (`sharpen run` with --runs)")
    wanted = design(claims, base_arms(exp), looks, 0.05, m, [key for key, _ in units],
                    exp.seed)
    if record is None:
        plan = SequentialPlan.make(looks, 0.05, m)
        record = {"plan": plan.as_dict(), "claims": [c["claim"] for c in claims],
                  "ops": [c["op"] for c in claims], "cells": len(units) if exp.cells else 0,
                  "design": wanted, "units": {}}
        return plan, record, True
    bound = bound_design(record, RunDir(out).config() if (out / CONFIG).is_file() else {})
    refuse_changes(out / SEQUENTIAL, bound, wanted)
    record["design"] = bound  # a record made before designs were bound: now bound
    return SequentialPlan.from_dict(record["plan"]), record, False


def _run_look(d: _Design, sub: Any, k: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run look ``k`` (``sub.runs`` seeds per arm); seeds that did not finish train once
    more. Returns its results and the seeds still lost (:func:`_lost`)."""
    try:
        _, results = run_experiment(sub, d.out, quiet=d.quiet, **d.run_kw)
    except SharpenError:
        # refused before anything trained: the record this invocation wrote goes
        # too, or it would bind a design that never looked
        if d.created and not any(u["looks"] for u in d.record["units"].values()):
            (d.out / SEQUENTIAL).unlink(missing_ok=True)
        raise
    lost = _lost(d.out, list(sub.arms), sub.seeds)
    again = {a: {s: st for s, st in seeds.items() if st != "diverged"}
             for a, seeds in lost.items()}
    if any(again.values()):
        # a crash or a killed job may not happen again: its seeds train once more
        # (a diverged run would diverge again)
        if not d.quiet:
            print(f"look {k + 1}: {_said(again)} did not finish; training them once "
                  "more", flush=True)
        _, results = run_experiment(sub, d.out, quiet=d.quiet, **d.run_kw)
        lost = _lost(d.out, list(sub.arms), sub.seeds)
    return results, lost


def _judge_look(d: _Design, key: str, sub: Any, k: int, lost: dict[str, Any],
                decisions: dict[str, Any]) -> dict[str, Any]:
    """Look ``k``'s record: each claim's p, n, threshold and decision on this look's seeds
    (no later ones); a claim decided now is added to ``decisions`` (final)."""
    n, plan = d.plan.looks[k], d.plan
    runs = load_runs(d.out).only(set(sub.seeds))  # this look's seeds, no later ones
    look: dict[str, Any] = {"n": n, "threshold": plan.nominal[k], "claims": []}
    if lost:
        look["lost"] = lost
    for i, c in enumerate(_in_unit(d.claims, d.out, sub)):
        if c is None:  # names an arm this cell lacks: nothing to judge, ever
            look["claims"].append({"p": None, "direction": 0, "n": 0,
                                   "threshold": plan.nominal[k], "decision": None,
                                   "untested": "the cell lacks an arm it names"})
            continue
        r, _ = _prejudge(c, runs)
        # a look is judged on the n it is named for; a claim whose seeds did not all
        # finish is judged on those that did, at the design's threshold for that n
        # (an earlier look's, stricter), never at this look's looser one
        thr = plan.nominal[k] if r.n >= n else plan.threshold_reached(r.n)
        before = str(i) in decisions  # decided at an earlier look: final
        new = None if before else decide(r.p, r.direction, c["op"], thr)
        look["claims"].append({"p": r.p, "direction": r.direction, "n": r.n,
                               "threshold": thr, "decision": new})
        if sub.cells and get_op(c["op"]).rivals:  # whom "best" was judged against
            look["claims"][-1]["rivals"] = list(c.get("than") or [])
        if new:
            decisions[str(i)] = {"verdict": new, "n": r.n, "look": n, "p": r.p,
                                 "threshold": thr}
        if r.n < n and not before:
            print(f"sharpen: warning: {f'{key}: ' if key else ''}look {k + 1} at n = "
                  f"{n}: {c['claim']!r} judged on the {r.n} seeds that finished "
                  f"({_said(lost)} did not), at the threshold for n = {r.n}: "
                  f"{thr:.3g}", file=sys.stderr, flush=True)
    return look


def pilot_sds(pilot: Path, claims: list[dict[str, Any]]) -> list[tuple[float | None, str]]:
    """Per claim, the sd of its per-seed differences in a pilot run directory (for a grid:
    the largest over its cells, paired within each cell as the claim map judges it) and
    where it comes from; (None, why) where the pilot cannot give one."""
    cfg = RunDir(pilot).config()  # a clear error when it is not a run directory
    runs = load_runs(pilot)
    out: list[tuple[float | None, str]] = []
    maps = claim_maps({**cfg, "claims": claims}, runs) if cfg.get("cells") else None
    for i, c in enumerate(claims):
        if maps is not None:
            cells = [x for x in maps[i].cells if x.result.sd]
            if not cells:
                out.append((None, f"the pilot {pilot} has no cell with 2 paired seeds of "
                                  "its arms"))
                continue
            top = max(cells, key=lambda x: x.result.sd)
            where = ", ".join(f"{a} = {v}" for a, v in top.point.items())
            out.append((top.result.sd, f"pilot {pilot}, the largest over its cells "
                                       f"({where}, n = {top.result.n})"))
            continue
        r, _ = _prejudge(c, runs)
        out.append((r.sd, f"pilot {pilot}, n = {r.n}") if r.sd and r.n >= 2 else
                   (None, f"the pilot {pilot} has no 2 paired seeds of its arms"))
    return out


# keys that decide where and how many seeds train at once, not what a seed computes
PILOT_NEUTRAL = ("stack_seeds", "threads")


def refuse_another_pilot(pilot: Path, arms: dict[str, Any]) -> None:
    """Refuse a pilot whose arms ran another configuration than ``arms`` (another dataset,
    epochs, profile ...): its sd would state the power of another study, and the budget
    would be judged on it silently."""
    diff = [d for d in config_diff(RunDir(pilot).config().get("arms") or {}, arms,
                                   common_only=True)
            if d.split(":", 1)[0].rsplit(".", 1)[-1] not in PILOT_NEUTRAL]
    if diff:
        said = "; ".join(diff[:4]) + (f"; … {len(diff) - 4} more" if len(diff) > 4 else "")
        raise SharpenError(
            f"--pilot {pilot} ran another configuration of these arms ({said}): its sd would "
            "state the power of another study. Give a pilot run of this experiment as it "
            "stands (`sharpen run EXPERIMENT --runs 3 --out PILOT`), or --spend-anyway "
            "without one")


def _effect_of_interest(exp: Any, claim: dict[str, Any]) -> tuple[float | None, str]:
    """The effect a claim's budget must detect: the file's ``min_effect``, else the paper's
    effect (the claim's ``effect``, or published[arm] − published[than])."""
    metric = claim.get("metric") or "test_acc"
    if get_op(claim["op"]).margin:  # "~": equivalence asks for no effect, not one
        return None, ""
    if exp.min_effect is not None:
        return parse_amount(exp.min_effect, get_metric(metric), "min_effect"), "min_effect"
    eff = _stated_effect(claim, getattr(exp, "published", None) or {}, metric)
    return (eff, "the paper's effect") if eff else (None, "")


def check_budget(exp: Any, claims: list[dict[str, Any]], plan: SequentialPlan,
                 pilot: Path | None, spend_anyway: bool) -> list[BudgetPower]:
    """State, before the first look, the smallest effect the budget detects for each claim
    (80 % power at its last look's threshold, the sd from ``pilot``), and refuse a budget
    that cannot detect the effect of interest, or one whose power cannot be known (no sd),
    unless ``spend_anyway``."""
    if pilot:
        refuse_another_pilot(pilot, exp.resolved()["arms"])
    sds = pilot_sds(pilot, claims) if pilot else [(None, "")] * len(claims)
    rows = [budget_power(plan, c["claim"], sd, src, *_effect_of_interest(exp, c))
            for c, (sd, src) in zip(claims, sds)]
    for c, b in zip(claims, rows):
        print(_power_line(plan, c, b), flush=True)
    short = [b for b in rows if b.short]
    blind = [b for b in rows if b.sd is None]
    if spend_anyway or not (short or blind):
        return rows
    if short:
        raise SharpenError(
            f"the budget of {plan.looks[-1]} seeds per arm cannot detect the effect of "
            "interest of " + "; ".join(f"{b.claim!r} (needs {b.needed or 'more than 10⁶'})"
                                      for b in short)
            + " with 80 % power at the design's level: raise --max-runs (or max_runs) to the "
            "seeds it needs, state a larger min_effect if a smaller one does not matter, or "
            "pass --spend-anyway to run the budget knowing it may end undecided")
    raise SharpenError(
        "--until-decided states, before spending, the smallest effect its budget can detect, "
        "and that needs the sd of the per-seed differences, which nothing gives here ("
        + "; ".join(f"{b.claim!r}: {b.sd_from or 'no --pilot'}" for b in blind)
        + "): pass --pilot DIR (a fixed-n run directory of these arms, e.g. `sharpen run "
        "EXPERIMENT --runs 3`), or --spend-anyway to run the budget without knowing its power")


def _power_line(plan: SequentialPlan, claim: dict[str, Any], b: BudgetPower) -> str:
    m = get_metric(claim.get("metric") or "test_acc")
    head = (f"budget {plan.looks[-1]} seeds per arm, last look at p ≤ {plan.nominal[-1]:.3g} "
            f"(α = {plan.alpha:g}/{plan.claims}): {b.claim!r} ")
    if b.mde is None:
        return head + "— its power is unknown: no sd of the per-seed differences " + (
            f"({b.sd_from})" if b.sd_from else "(give --pilot DIR)")
    mde = fmt_detectable(m, b.mde)
    text = (head + (f"detects ≥ {mde}" if mde != BEYOND else f"detects no effect the metric "
                    f"can have ({mde})") + f" with 80 % power (sd "
            f"{m.fmt(b.sd, True).lstrip('+')} from {b.sd_from})")
    if b.effect is not None:
        text += (f"; {b.effect_from} {m.fmt(b.effect, True)} needs "
                 f"{b.needed or 'more than 10⁶'} seeds"
                 + (": the budget is too small" if b.short else ""))
    return text
