"""Deciding with the fewest seeds: a group-sequential design for the claims of a report.

Seeds arrive in groups (one stacked group per look); after each look every open claim is
judged, and the experiment stops when all are decided or the budget of seeds is spent.
Looking after every group and stopping at the first "significant" look would inflate the
error rate (five looks at 5 % each reject a true null about 14 % of the time), so each look
has its own, stricter threshold:

* **Alpha spending** (Lan & DeMets 1983) with the O'Brien–Fleming-type function
  α(t) = 2 − 2Φ(z₁₋α/₂ / √t), t = n / n_max the information fraction: almost nothing is
  spent at the first looks, nearly the whole α at the last one, so a design that runs to
  its budget loses little against a fixed-n test.
* **Boundaries for the paired t statistic.** Seeds are few, so the usual normal (z)
  boundaries would be too lenient. Under the normal model the one-sample t statistic at
  every look is pivotal (its joint law across looks does not depend on the mean-zero
  differences' σ), so the critical |t| per look is found by Monte Carlo under N(0, 1) with a
  fixed seed: at look k, c_k is the value that the not-yet-stopped simulated paths exceed with
  probability α(t_k) − α(t_{k−1}). Each boundary is then written as the nominal two-sided
  p-value a look must reach, p*_k = 2·(1 − F_t(c_k; n_k − 1)), and applied to each claim's
  own decision p (paired t, one-sample t, the intersection–union p of "best", TOST).
* **The family.** Every claim gets α/m (Bonferroni over the m claims; in a grid, over every
  claim in every cell, so a claim map of 9 cells is a family of 9): valid under optional
  stopping whatever the dependence between claims. A claim's decision is final at the look
  it is made; later seeds do not reopen it.

Assumptions: the per-seed differences are independent and roughly normal (the same model
the fixed-n t-tests assume); looks are at the group ends fixed in advance. The plan (looks,
level, boundaries) is recorded before the first look and reused on resume, with the design
it binds (each claim's definition, step, budget, cells: :func:`design`), which no later
invocation may change. A look is judged on its own n; a claim whose seeds fell short is
judged at the threshold of the last look its n reaches (:meth:`SequentialPlan.threshold_reached`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st

from sharpen.errors import SharpenError
from sharpen.reports.stats import POWER, min_detectable_at, min_sign_flip_p, seeds_needed
from sharpen.rundir import SEQUENTIAL, RunDir  # SEQUENTIAL: the design and every look
from sharpen.verdicts import Outcome, get_op

SIMS = 200_000  # Monte Carlo paths per boundary: the spent α is within ±0.0004 (95 %)
BOUNDARY_SEED = 20_240_531


def obf_spent(t: float, alpha: float) -> float:
    """α spent by information fraction ``t`` (Lan–DeMets O'Brien–Fleming, two-sided)."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    return float(2.0 - 2.0 * st.norm.cdf(st.norm.ppf(1 - alpha / 2) / math.sqrt(t)))


def t_boundaries(looks: Sequence[int], alpha: float, sims: int = SIMS,
                 seed: int = BOUNDARY_SEED) -> list[float]:
    """Critical |t| at each look (n seeds so far) of a two-sided level-``alpha`` design
    with O'Brien–Fleming spending, by Monte Carlo under the normal model (the t statistic
    is pivotal; at the first look it is Student's t, taken exactly). ``inf`` where a look
    spends nothing."""
    looks = [int(n) for n in looks]
    if not looks or looks[0] < 2 or any(b <= a for a, b in zip(looks, looks[1:])):
        raise SharpenError(f"looks must increase and start at n >= 2, got {looks}")
    if not 0 < alpha < 1:
        raise SharpenError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    n_max = looks[-1]
    alive = np.ones(sims, dtype=bool)
    s1 = np.zeros(sims)
    s2 = np.zeros(sims)
    done = 0
    out: list[float] = []
    spent_before = 0.0
    for n in looks:
        z = rng.standard_normal((sims, n - done))
        s1 += z.sum(1)
        s2 += (z * z).sum(1)
        done = n
        mean = s1 / n
        sd = np.sqrt(np.maximum(s2 - n * mean * mean, 0.0) / (n - 1))
        t = np.abs(mean) / (sd / math.sqrt(n))
        spent = obf_spent(n / n_max, alpha)
        k = int(round((spent - spent_before) * sims))  # paths this look may stop
        spent_before = spent
        if k <= 0:
            out.append(math.inf)
            continue
        if n == looks[0]:  # nothing stopped yet: t has n − 1 df exactly, no simulation error
            c = float(st.t.isf(spent / 2, n - 1))
        else:
            ts = np.sort(t[alive])[::-1]
            c = float(ts[min(k, len(ts)) - 1])
        out.append(c)
        alive &= t < c
    return out


def nominal_p(boundary: float, n: int) -> float:
    """The two-sided p-value of the paired t-test with n seeds that a look must reach."""
    return 0.0 if math.isinf(boundary) else float(2 * st.t.sf(boundary, n - 1))


@dataclass
class Look:
    """One look: the seeds so far and, per claim, its p, threshold and decision."""

    n: int
    claims: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SequentialPlan:
    """The design fixed before the first look: looks, per-claim level, boundaries."""

    looks: list[int]
    alpha: float  # the family's level
    claims: int  # m: each claim is tested at alpha / m
    boundaries: list[float]  # critical |t| per look
    nominal: list[float]  # the nominal two-sided p per look, for a claim at alpha / m
    spending: str = "Lan-DeMets O'Brien-Fleming"
    seed: int = BOUNDARY_SEED
    sims: int = SIMS

    @classmethod
    def make(cls, looks: Sequence[int], alpha: float, claims: int) -> SequentialPlan:
        level = alpha / max(claims, 1)
        b = t_boundaries(looks, level)
        return cls(list(looks), alpha, claims, b, [nominal_p(c, n) for c, n in zip(b, looks)])

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isinf(v) else v)
                for k, v in asdict(self).items()} | {
            "boundaries": [None if math.isinf(c) else c for c in self.boundaries]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequentialPlan:
        d = dict(d)
        d["boundaries"] = [math.inf if c is None else c for c in d["boundaries"]]
        return cls(**d)

    def threshold(self, n: int) -> float:
        """The nominal two-sided p a claim must reach at the look with ``n`` seeds."""
        if n not in self.looks:
            raise SharpenError(f"n = {n} is not a look of this plan ({self.looks})")
        return self.nominal[self.looks.index(n)]

    def threshold_reached(self, n: int) -> float:
        """The threshold for a claim judged on ``n`` seeds at a look whose seeds did not all
        finish: the design's threshold for the last look ``n`` reaches (0, no decision,
        below the first look), never a later look's looser one."""
        reached = [p for look, p in zip(self.looks, self.nominal) if look <= n]
        return reached[-1] if reached else 0.0


@dataclass
class BudgetPower:
    """What a design's budget can detect for one claim, stated before the first look."""

    claim: str
    sd: float | None  # sd of the per-seed differences, from ``sd_from``
    sd_from: str  # where the sd comes from ("" where there is none)
    effect: float | None  # the effect of interest (signed), from ``effect_from``
    effect_from: str
    mde: float | None = None  # smallest true difference the budget detects with POWER
    needed: int | None = None  # seeds per arm that would detect ``effect``

    @property
    def short(self) -> bool:
        """The budget cannot detect the effect of interest with POWER."""
        return self.mde is not None and self.effect is not None and self.mde > abs(self.effect)


def budget_power(plan: SequentialPlan, claim: str, sd: float | None, sd_from: str,
                 effect: float | None, effect_from: str, power: float = POWER) -> BudgetPower:
    """The smallest true paired difference the design's budget (its last look, n_max seeds,
    at that look's nominal p) detects with ``power``, and the seeds the effect of interest
    would need at that p. The earlier looks only add to the power, so this is what the
    budget can promise (statsmodels TTestPower at the last look's threshold)."""
    b = BudgetPower(claim, sd, sd_from, effect, effect_from)
    n, thr = plan.looks[-1], plan.nominal[-1]
    if sd and sd > 0 and 0 < thr < 1:
        b.mde = min_detectable_at(n, sd, thr, power)
        b.needed = seeds_needed(effect, sd, thr, power) if effect else None
    return b


def decide(p: float | None, direction: int, op: str, threshold: float) -> Outcome | None:
    """A claim's decision at one look, or None while it stays open: ``p`` its two-sided
    decision p (for "~", the TOST p), ``direction`` +1 when the estimate lies on the
    claimed side; its op decides (:meth:`sharpen.verdicts.Op.decide`)."""
    return get_op(op).decide(p, direction, threshold)


def simulate_error(looks: Sequence[int], alpha: float, effect: float = 0.0, reps: int = 2000,
                   seed: int = 1, naive: bool = False) -> dict[str, float]:
    """Run the sequential rule on ``reps`` simulated experiments whose per-seed differences
    are N(effect, 1): the share that ends "supported" or "contradicted" (type-I error when
    effect = 0), the share deciding for the true side, and the mean seeds used. ``naive``:
    the fixed-n threshold α at every look instead (what the design guards against)."""
    plan = SequentialPlan.make(looks, alpha, 1)
    if naive:
        plan.nominal = [alpha] * len(looks)
    rng = np.random.default_rng(seed)
    rejected = right = 0
    used = 0
    for _ in range(reps):
        d = rng.normal(effect, 1.0, looks[-1])
        stop = looks[-1]
        for n, thr in zip(looks, plan.nominal):
            x = d[:n]
            sd = x.std(ddof=1)
            t = x.mean() / (sd / math.sqrt(n)) if sd > 0 else math.inf
            p = float(2 * st.t.sf(abs(t), n - 1))
            if p <= thr:
                rejected += 1
                right += int((t > 0) == (effect > 0)) if effect else 0
                stop = n
                break
        used += stop
    return {"rejected": rejected / reps, "right_side": right / reps, "mean_n": used / reps,
            "max_n": looks[-1]}


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run directory's sequential record, or None when it has none."""
    path = Path(run_dir) / SEQUENTIAL
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SharpenError(f"{path}: not valid JSON ({exc}); it records the sequential plan, "
                           "so it cannot be guessed: remove it to start the looks again") from None


# what decides a claim (its text names it); paper_says and effect only describe it
BOUND_KEYS = ("claim", "arm", "op", "than", "value", "metric", "tolerance")


def bound_claim(claim: dict[str, Any]) -> dict[str, Any]:
    """The part of a claim's definition a sequential design binds, in a canonical form (a
    rival list's order means nothing; numbers as floats)."""
    c = {k: claim.get(k) for k in BOUND_KEYS}
    c["metric"] = c["metric"] or "test_acc"
    c["tolerance"] = float(c["tolerance"] or 0.0)
    c["value"] = None if c["value"] is None else float(c["value"])
    if isinstance(c["than"], list | tuple):
        c["than"] = sorted(c["than"])
    return c


def _cell_key(key: str) -> str:
    """A unit key with its axes in sorted order (config.json stores the grid sorted)."""
    return ", ".join(sorted(key.split(", "))) if key else key


def design(claims: Sequence[dict[str, Any]], base_arms: Sequence[str], looks: Sequence[int],
           alpha: float, family: int, cells: Sequence[str], seed: int | None = None
           ) -> dict[str, Any]:
    """Everything a sequential design's decisions depend on, bound when it is made: each
    claim's definition, the level, the looks (step and budget), the family, the grid's
    cells and the first seed (the looks' seeds are seed, seed + 1, …); the arms too when a
    ``best``/``worst`` claim without ``than`` takes every other arm as its rivals."""
    implicit = any(get_op(c["op"]).rivals and not c.get("than") for c in claims)
    return {"claims": [bound_claim(c) for c in claims], "alpha": alpha,
            "step": looks[0], "budget": looks[-1], "looks": list(looks),
            "family": family, "cells": sorted(_cell_key(k) for k in cells),
            "arms": sorted(base_arms) if implicit else None, "seed": seed}


def base_arms_of(config: dict[str, Any]) -> list[str]:
    """The experiment's own arms (a grid's base arms, not its cells') from config.json."""
    cells = config.get("cells") or {}
    return sorted({c["arm"] for c in cells.values()} if cells else set(config.get("arms") or {}))


def bound_design(record: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The design a record binds: its own, or for a record made before designs were bound,
    what its plan and the directory's config.json say."""
    if record.get("design"):
        # a design bound before its first seed was: the seed the directory was made with
        return {"seed": config.get("seed"), **record["design"]}
    axes = list(config.get("grid") or {})
    cells = sorted({", ".join(f"{a}={c[a]}" for a in axes)
                    for c in (config.get("cells") or {}).values()}) if axes else [""]
    plan = record["plan"]
    return design(config.get("claims") or [], base_arms_of(config), plan["looks"],
                  plan["alpha"], plan["claims"], cells, config.get("seed"))


_FIELDS = {"alpha": "the family's level α", "step": "seeds per look, --step",
           "budget": "seeds per arm at most, --max-runs or max_runs in whole steps",
           "looks": "the looks", "cells": "the grid's cells",
           "arms": "the arms, the rivals of a best/worst claim without `than`",
           "family": "the family's size, claims × cells",
           "seed": "the first seed, `seed`: the looks' seeds are seed, seed + 1, …"}


def design_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a bound design and the one an invocation asks for, as
    "claim 1 ('…') op: '>' → '<'" lines; empty when they are the same design."""
    out: list[str] = []
    oc, nc = old["claims"], new["claims"]
    for i, (a, b) in enumerate(zip(oc, nc), 1):
        for k in BOUND_KEYS:
            if a.get(k) != b.get(k):
                out.append(f"claim {i} ({a['claim']!r}) {k}: {a.get(k)!r} → {b.get(k)!r}")
    if len(oc) != len(nc):
        gone = [c["claim"] for c in oc[len(nc):]]
        added = [c["claim"] for c in nc[len(oc):]]
        out.append(f"claims: {len(oc)} → {len(nc)}" + (f" ({gone} removed)" if gone else "")
                   + (f" ({added} added)" if added else ""))
    for k, what in _FIELDS.items():
        if k in ("family", "looks") and out:  # follows from what is already named
            continue
        if k == "seed" and (old.get(k) is None or new.get(k) is None):
            continue  # a check of claims alone (report --claims-from) names no seed
        if old.get(k) != new.get(k):
            out.append(f"{k} ({what}): {old.get(k)} → {new.get(k)}")
    return out


def refuse_changes(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise when ``new`` is not the design ``path`` binds, naming each changed field."""
    changes = design_changes(old, new)
    if changes:
        raise SharpenError(
            f"{path}: this directory's sequential design binds its claims and looks, and "
            f"this command changes them: {'; '.join(changes)}. Decisions already taken "
            "cannot be re-judged under another definition: start a new design with another "
            "--out (or restore the file's claims and the same --step / --max-runs)")


def check_claims(run_dir: Path, claims: Sequence[dict[str, Any]], base_arms: Sequence[str]
                 ) -> None:
    """Refuse claims that differ from those a directory's sequential design binds (a plain
    ``sharpen run`` or ``report --claims-from`` into a directory grown by --until-decided):
    its decisions would stand beside a claims table judging another definition."""
    rec = read_record(run_dir)
    if rec is None:
        return
    old = bound_design(rec, {} if rec.get("design") else RunDir(run_dir).config())
    new = {**old, "claims": [bound_claim(c) for c in claims]}
    if old.get("arms") is not None:  # the directory keeps its arms: a new one joins them
        new["arms"] = sorted(set(old["arms"]) | set(base_arms))
    refuse_changes(Path(run_dir) / SEQUENTIAL, old, new)


def _threshold(p: float) -> str:
    """A look's nominal p; 0 where the look spends less α than the boundary's Monte Carlo
    resolves (O'Brien–Fleming's first looks), so no claim can be decided there."""
    return f"{p:.3g}" if p > 0 else "0 (no decision possible at this look)"


def _shown(op: str, threshold: float) -> float:
    """The threshold a claim's row shows: the p its supporting decision must reach (an
    equivalence: half the look's; a record made before ops were stored names none)."""
    return get_op(op).support_threshold(threshold) if op else threshold


def _decided_at(op: str, d: dict[str, Any]) -> float:
    """The threshold a decided claim reached: an equivalence supported at half the look's,
    contradicted (beyond the margin, one-sided × 2) at the look's whole threshold."""
    return d["threshold"] if d["verdict"] == "contradicted" else _shown(op, d["threshold"])


def normal_model_note(n: int, threshold: float, p_exact: float | None = None) -> str:
    """"rests on the normal model: …" for a decision at n seeds and a nominal ``threshold``
    the exact sign-flip test could not reach (its smallest p at n, 2/2ⁿ, is above it; or,
    where known, its p with these differences is), as the fixed-n claims tables mark it;
    "" where the exact test reaches it too."""
    floor = min_sign_flip_p(n)
    if floor > threshold:
        return (f"rests on the normal model: the exact sign-flip test cannot go below "
                f"p = {floor:.3g} at n = {n}, above the threshold {threshold:.3g}")
    if p_exact is not None and p_exact > threshold:
        return (f"rests on the normal model: the exact sign-flip test gives p = "
                f"{p_exact:.3g}, above the threshold {threshold:.3g}")
    return ""


def report_section(run_dir: Path, rules_out: dict[tuple[str, int], str] | None = None
                   ) -> list[str]:
    """The report's "Decided with the fewest seeds" section, from sequential.json alone:
    per claim (and per grid cell), where it was decided, or why it stayed open (with what
    its repeated interval rules out: ``rules_out``, by unit key and claim index)."""
    rules_out = rules_out or {}
    rec = read_record(run_dir)
    if rec is None:
        return []
    plan = SequentialPlan.from_dict(rec["plan"])
    ops = rec.get("ops") or [""] * len(rec["claims"])
    units = rec.get("units") or {}
    grid = any(units) and "" not in units
    lines = ["## Decided with the fewest seeds (sequential design)", "",
             f"Looks after n = {', '.join(map(str, plan.looks))} seeds per arm"
             + (" in each grid cell (each cell its own design)" if grid else "") + "; each "
             + (f"claim in each of the {len(units)} cells" if grid else "of the claims")
             + f" tested at α = {plan.alpha:g}/{plan.claims} (Bonferroni over the family of "
             f"{plan.claims}: {len(rec['claims'])} claim(s)"
             + (f" × {len(units)} cells" if grid else "") + ") "
             f"with {plan.spending} alpha spending; a claim is decided at the first look whose "
             "p reaches that look's threshold (docs/methods/statistics.md). Nominal two-sided "
             "p per look: " + ", ".join(f"n = {n}: {_threshold(p)}" for n, p in zip(plan.looks,
                                                                                  plan.nominal))
             + ".",
             "", ("| cell " if grid else "") + "| claim | decided | at n | p | threshold | "
             "notes |", "|---" * (7 if grid else 6) + "|"]
    short = []  # looks whose seeds did not all finish
    for key, u in units.items():
        last = u["looks"][-1] if u["looks"] else None
        short += [f"{key + ', ' if grid else ''}look at n = {lk['n']}: " + "; ".join(
            f"{a} seed(s) " + ", ".join(f"{s} ({st})" for s, st in seeds.items())
            for a, seeds in lk["lost"].items()) for lk in u["looks"] if lk.get("lost")]
        for i, claim in enumerate(rec["claims"]):
            cell = f"| {key} " if grid else ""
            d = u["decisions"].get(str(i))
            if d:
                at = f"{d['n']} (look at {d['look']})" if d.get("look", d["n"]) != d["n"] \
                    else f"{d['n']}"
                thr = _decided_at(ops[i], d)
                lines.append(f"{cell}| {claim} | **{d['verdict']}** | {at} | {d['p']:.3g} | "
                             f"{thr:.3g} | {normal_model_note(d['n'], thr) or '–'} |")
            elif last is None:
                lines.append(f"{cell}| {claim} | not yet looked at | – | – | – | – |")
            else:
                c = last["claims"][i]
                why = (f"undecided: the budget of {last['n']} seeds is spent" if u["finished"]
                       else "open")
                p = "–" if c["p"] is None else f"{c['p']:.3g}"
                at = f"{c['n']} (look at {last['n']})" if c["n"] < last["n"] and \
                    last.get("lost") else f"{last['n']}"
                lines.append(f"{cell}| {claim} | {why} | {at} | {p} | "
                             f"{_shown(ops[i], c.get('threshold', last['threshold'])):.3g} | "
                             f"{rules_out.get((key, i), '–')} |")
    if short:
        lines += ["", "Seeds that did not finish at their look (trained once more, then left "
                  "out): " + " · ".join(short) + ". A claim on those arms was judged on the "
                  "seeds that finished, at the design's threshold for that n (the last look "
                  "it reaches), never at the look's own, looser one."]
    return lines + [""]


def base_arms(exp: Any) -> list[str]:
    """The experiment's own arms (a grid's base arms, not its cells')."""
    return sorted({c["arm"] for c in exp.cells.values()} if exp.cells else set(exp.arms))


def check_bound(out: Path, exp: Any, look: bool = False) -> None:
    """Refuse a run into a directory grown by --until-decided whose claims this experiment
    changed, or (``look`` False: a plain ``sharpen run``) that adds seeds past those its
    design's looks ran (the runner asks before it writes config.json)."""
    check_claims(out, [c.model_dump() for c in exp.claims], base_arms(exp))
    record = read_record(out)
    if look or record is None:
        return
    d = bound_design(record, RunDir(out).config())
    first = d.get("seed") if d.get("seed") is not None else 0
    # per unit (a grid's cells stop at their own looks: a cell decided at n = 6 must not
    # gain seeds 6, 7 because another cell looked at n = 8)
    ran, where = min((_ran(record, exp, a), a) for a in exp.arms) if exp.arms else (0, "")
    extra = sorted(set(exp.seeds) - set(range(first, first + ran)))
    if not extra:  # the seeds the looks judged: resuming or re-reporting them is fine
        return
    # seeds added after the looks (more of them, or others through `seed`), judged at the
    # fixed-n level: optional stopping (the sequential verdict already spent the level on
    # these looks); a silent "supported"
    spent = all(u.get("finished") for u in record.get("units", {}).values()) and \
        record.get("units")
    what = (f"--runs {exp.runs}" if exp.seed == first else
            f"seed {exp.seed} (the design's seeds start at {first})")
    raise SharpenError(
        f"{out / SEQUENTIAL}: this directory's seeds are chosen by a sequential design "
        f"(--until-decided --step {d['step']} --max-runs {d['budget']}: looks at n = "
        f"{', '.join(map(str, d['looks']))}; "
        f"{f'cell {unit_key(exp.cells[where], list(exp.grid))}: ' if exp.cells else ''}"
        f"its looks ran {ran} seeds per arm, seeds "
        f"{first}–{first + ran - 1}{', and it is finished' if spent else ''}); {what} would "
        f"add seed(s) {_seeds_text(extra)} after its looks, and a fixed-n verdict on them "
        "ignores the looks already taken (optional stopping: its p would not be what it "
        "says). Continue the design with `sharpen run EXPERIMENT --out "
        f"{out} --until-decided --step {d['step']} --max-runs {d['budget']}` (it stops at its "
        "budget), or start a new design or a fixed-n experiment with another --out")


def unit_key(cell: dict[str, Any], axes: list[str]) -> str:
    """A grid cell's name in ``sequential.json``'s units: "k=v, k2=v2" in the grid's order."""
    return ", ".join(f"{k}={cell[k]}" for k in axes)


def _ran(record: dict[str, Any], exp: Any, arm: str) -> int:
    """The seeds per arm the looks of ``arm``'s unit ran (an arm of no unit, one added
    after the design: as many as the most any unit ran)."""
    units = record.get("units", {})
    u = units.get(unit_key(exp.cells[arm], list(exp.grid)) if exp.cells else "")
    if u and u.get("looks"):
        return u["looks"][-1]["n"]
    return max((v["looks"][-1]["n"] for v in units.values() if v.get("looks")), default=0)


def _seeds_text(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds[:6])) + (f", … ({len(seeds)} in all)" if len(seeds) > 6
                                             else "")
