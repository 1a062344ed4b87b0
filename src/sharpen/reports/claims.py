"""Per-run values of every registered metric, read from a run directory, and the claims of a
report judged on them as one family.

A claim is a checkable statement written in an experiment file::

    [[claims]]
    claim = "proposed has a smaller generalization gap than progressive"
    paper_says = "gap 4.37 % vs 5.82 %"
    arm = "proposed"
    op = "<"                # ">", "<", "~" (equal within ± tolerance), "best", "worst",
    #                         "P>" / "P<" (a run beats its seed's rival with chance > threshold)
    than = "progressive"    # another arm (paired by seed), or a list for best/worst
    metric = "gap"          # any metric of the registry (sharpen.metrics)
    # value = 0.15          # instead of `than`: the arm's mean against a fixed number
    # tolerance = "1 pp"    # for "~": the equivalence margin, with its unit
    # effect = "1.4 pp"     # the effect the paper states (default: from [published])
    # threshold = 0.75      # for "P>" / "P<": the chance γ in (0.5, 1) to exceed

How a family is judged (docs/methods/statistics.md, "Claims and verdicts"): every claim
gets one p-value — the paired t-test's (two-sided, so each direction is tested at 2.5 %),
the exact sign-flip test's when the differences have no spread, TOST's for ``~`` — and
Holm's adjustment over the report's claims decides the verdicts at 5 %. A ``P>`` claim's p is
the exact binomial test's of P(A > B) = threshold over the seed-matched runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.metrics import as_number, get_metric, metric_values, parse_amount
from sharpen.reports.sequential import SequentialPlan
from sharpen.reports.stats import (
    ALPHA,
    Comparison,
    clip_interval,
    compare,
    exact_decides_from,
    format_p,
    holm,
    min_detectable,
    min_sign_flip_p,
    outperform,
    outperform_decides_from,
    paired_diff,
    repeated_ci,
    seeds_needed,
    tost,
    welch_tost,
)
from sharpen.rundir import RunDir, fingerprint
from sharpen.verdicts import (
    CONTRADICTED,
    NOT_SUPPORTED,
    OPS,
    SUPPORTED,
    THRESHOLD,
    UNTESTED,
    Op,
    Outcome,
    Verdict,
    get_op,
)

Values = dict[str, dict[int, dict[str, float]]]


def values_of_run(rows: list[dict[str, str]], res: dict[str, Any]) -> dict[str, float]:
    """Every registered metric one run has, from its epoch rows (else its result.json)."""
    return {k: v for k, v in metric_values(rows, res).items() if v is not None}


@dataclass
class Runs:
    """What a report needs of a run directory: per arm, per seed, the values of every
    metric (ok runs), every run's status, and each arm's protocol fingerprint."""

    values: Values = field(default_factory=dict)
    status: dict[str, dict[int, str]] = field(default_factory=dict)
    protocol: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # corrupt runs: file and reason
    unrun: list[str] = field(default_factory=list)  # the file's arms the directory lacks

    def lost(self, arm: str) -> list[int]:
        """Seeds of ``arm`` that ran but gave no value: diverged, failed or corrupt."""
        return sorted(s for s, st in self.status.get(arm, {}).items() if st != "ok")

    def only(self, seeds: set[int]) -> Runs:
        """The same runs restricted to ``seeds`` (a sequential look sees its first n seeds,
        even in a directory that holds more)."""
        return replace(self, values={a: {s: v for s, v in d.items() if s in seeds}
                                     for a, d in self.values.items()},
                       status={a: {s: v for s, v in d.items() if s in seeds}
                               for a, d in self.status.items()})

    def comparable(self, a: str, b: str) -> bool:
        pa, pb = self.protocol.get(a), self.protocol.get(b)
        return pa is None or pb is None or pa == pb


def load_runs(run_dir: str | Path) -> Runs:
    """Every run of a directory through :class:`sharpen.rundir.RunDir`."""
    rd = RunDir(run_dir)
    out = Runs()
    try:
        cfg = rd.config()
    except Exception:  # noqa: BLE001 - a directory without config.json still has runs
        cfg = {}
    arms_cfg = cfg.get("arms", {})
    for r in rd.runs():
        out.status.setdefault(r.arm, {})[r.seed] = r.status
        if r.status == "corrupt":
            out.problems.append(r.problem)
            continue
        if r.status != "ok":
            continue
        out.values.setdefault(r.arm, {})[r.seed] = values_of_run(r.rows, r.result)
    for arm in dict.fromkeys([*arms_cfg, *out.status]):  # the file's order, then the rest
        out.protocol[arm] = fingerprint(arms_cfg[arm]) if arm in arms_cfg else None
    if not cfg.get("cells"):  # arms of the file never run here (--arms chose others)
        out.unrun = [a for a in cfg.get("arm_order") or []
                     if a not in arms_cfg and a not in out.status]
    return out


def run_values(run_dir: Path) -> Values:
    """{arm: {seed: {metric: value}}} for every finished ``ok`` run, from its files alone."""
    return load_runs(run_dir).values


def metric_of(values: Values, arm: str, metric: str) -> dict[int, float]:
    return {s: v[metric] for s, v in values.get(arm, {}).items() if metric in v}


def fmt_value(metric: str, v: float | None, diff: bool = False) -> str:
    return get_metric(metric).fmt(v, diff)


def _span(m: Any) -> float | None:
    """How far apart two values of ``m`` can lie: a % metric's range (1 for an accuracy,
    2 for a gap, which goes down to −1); None for an unbounded metric."""
    return 1.0 - m.lowest if m.percent else None


def diff_in_range(m: Any, lo: float | None, hi: float | None
                  ) -> tuple[float | None, float | None]:
    """A difference's interval cut to ±(the metric's range): two accuracies differ by at
    most 100 pp, so an interval that covers the true difference still covers it when cut
    (:func:`~sharpen.reports.stats.clip_interval`); at n = 2 the t interval can reach
    ±128 pp."""
    span = _span(m)
    if span is None or lo is None or hi is None or not (math.isfinite(lo) and
                                                        math.isfinite(hi)):
        return lo, hi
    return clip_interval(lo, hi, -span, span)


BEYOND = "beyond the metric's range"


def fmt_detectable(m: Any, v: float | None) -> str:
    """A smallest detectable effect, or that it lies beyond the metric's range (no true
    difference of two accuracies can be as large: the n cannot detect any)."""
    if v is None:
        return "–"
    span = _span(m)
    if span is not None and v > span:
        return BEYOND
    return m.fmt(v, True).lstrip("+")


# --- judging a family of claims ----------------------------------------------------------------

@dataclass
class ClaimResult:
    """One claim of a report, judged: what a claims table row shows."""

    claim: str
    paper_says: str
    metric: str
    arm: str
    op: str
    n: int = 0
    estimate: str = "–"
    interval: str = ""  # which interval the estimate shows
    test: str = ""  # the test whose p decides
    p: float | None = None
    p_adj: float | None = None  # Holm over the report's claims
    p_exact: float | None = None
    p_exact_adj: float | None = None
    verdict: Verdict = UNTESTED
    notes: list[str] = field(default_factory=list)
    mde: float | None = None  # minimum detectable effect at n, 80 % power, α/m
    effect: float | None = None  # the effect the paper states
    effect_not_comparable: list[str] = field(default_factory=list)  # its protocol differs
    n_needed: int | None = None  # n to detect ``effect`` with 80 % power at α/m
    lost: str = ""  # runs that ran but gave no value, e.g. "1 diverged"
    sd: float | None = None
    direction: int = 0  # +1: the estimate lies on the claimed side, −1: the other side
    spread: bool = True
    # the numbers behind ``estimate``: the difference and the interval it shows (``interval``
    # says which), for the summary figure (sharpen.reports.summary); None where the estimate
    # has none. summary.json keeps the estimate's text only
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None  # a P> / P< claim's γ
    p_min: float | None = None  # the smallest p its exact test could give at n (P> / P<)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("diff", "ci_low", "ci_high")}
        for k in ("threshold", "p_min"):  # only a chance claim's: other reports as before
            if d[k] is None:
                del d[k]
        return d | {"verdict": str(self.verdict)}  # as every section prints it


def _stated_effect(claim: dict[str, Any], published: dict[str, Any], metric: str) -> float | None:
    """The paper's effect: the claim's ``effect`` key, else published[arm] − published[than]."""
    m = get_metric(metric)
    if claim.get("effect") is not None:
        return parse_amount(claim["effect"], m, "effect", signed=True)
    than = claim.get("than")
    if not isinstance(than, str):
        return None
    a, b = published.get(claim["arm"]), published.get(than)
    if isinstance(a, dict) and isinstance(b, dict) and metric in a and metric in b:
        try:
            return float(a[metric]) - float(b[metric])
        except (TypeError, ValueError):
            return None
    return None


def protocol_differences(declared: dict[str, Any] | None, arm_cfg: dict[str, Any] | None
                         ) -> list[str]:
    """How an arm's protocol differs from the one the published numbers were produced
    under (``published_protocol``): 'dataset cifar10 here, cifar100 in the paper'; empty
    when it does not,
    or when either is unknown."""
    if not declared or not arm_cfg:
        return []
    out = []
    for k, v in declared.items():
        mine = arm_cfg.get(k)
        same = mine == v or (isinstance(mine, (int, float)) and isinstance(v, (int, float))
                             and not isinstance(mine, bool) and abs(mine - v) <= 1e-12)
        if not same:
            out.append(f"{k} {mine if mine is not None else '(default)'} here, {v} in the paper")
    return out


def effect_differences(claim: dict[str, Any], protocol: dict[str, Any] | None,
                       arms_cfg: dict[str, dict[str, Any]] | None) -> list[str]:
    """How the protocol of a claim's arms differs from the one its published effect was
    measured under (an effect typed in the claim's ``effect`` key is the claim's own: none).
    An n planned for an effect of another protocol answers another question."""
    if claim.get("effect") is not None or not isinstance(claim.get("than"), str):
        return []
    cfgs = arms_cfg or {}
    return list(dict.fromkeys(
        d for a in (claim["arm"], claim["than"])
        for d in protocol_differences(protocol, cfgs.get(a))))


def _fill_lost(runs: Runs, metric: str) -> Runs:
    """The same runs with every diverged, failed or corrupt run counted as its arm's worst
    value of ``metric`` (the lowest for a higher-is-better metric)."""
    m = get_metric(metric)
    values: Values = {a: {s: dict(v) for s, v in seeds.items()} for a, seeds in runs.values.items()}
    for arm in runs.status:
        xs = list(metric_of(runs.values, arm, metric).values())
        if not xs:
            continue
        worst = min(xs) if m.higher_is_better is not False else max(xs)
        for s in runs.lost(arm):  # a lost run may still carry other metrics: keep them
            values[arm][s] = {**values[arm].get(s, {}), metric: worst}
    return replace(runs, values=values)


def _prejudge(claim: dict[str, Any], runs: Runs) -> tuple[ClaimResult, Any]:
    """The claim's estimate and its single p-value, before the family is adjusted: the
    test its op names (:data:`sharpen.verdicts.OPS`) judges it."""
    metric = claim.get("metric", "test_acc")
    m = get_metric(metric)
    arm, op = claim["arm"], get_op(claim["op"])
    r = ClaimResult(claim=claim["claim"], paper_says=claim.get("paper_says", ""), metric=metric,
                    arm=arm, op=op.name)
    mine = metric_of(runs.values, arm, metric)
    if not mine:
        r.verdict = Verdict.missing(metric, arm)
        return r, None
    if claim.get("value") is not None and op.rivals:  # a directory written before the file
        #                                                 refused it
        fixed = ", ".join(repr(o.name) for o in OPS.values() if not o.rivals)
        raise SharpenError(f"claim {claim['claim']!r}: op {op.name!r} compares with other "
                           f"arms, not a value; value is for {fixed}")
    return TESTS[op.test](r, m, op, claim, runs, mine)


def _against(r: ClaimResult, m: Any, claim: dict[str, Any], runs: Runs, mine: dict[int, float]
             ) -> tuple[list[float], str, Comparison, str] | None:
    """The claim's arm against what it is compared with: a fixed ``value`` (one-sample, the
    differences x − value) or the arm ``than`` (paired by seed when the protocols match).
    None, with the verdict untested, when ``than`` has no value of the metric."""
    arm = claim["arm"]
    if claim.get("value") is not None:
        v0 = float(claim["value"])
        d = [x - v0 for x in mine.values()]
        return d, f"{arm} − {m.fmt(v0)}", paired_diff(d), "one-sample t-test"
    other = claim["than"]
    theirs = metric_of(runs.values, other, r.metric)
    if not theirs:
        r.verdict = Verdict.missing(r.metric, other)
        return None
    ok = runs.comparable(arm, other)
    c = compare(mine, theirs, paired=ok, why_unpaired="" if ok else "different protocols")
    return c.diffs, f"{arm} − {other}", c, c.test


def _measured(r: ClaimResult, c: Comparison) -> bool:
    """Copy the comparison's n, sd, spread and notes; False when it has nothing to test."""
    r.n, r.sd, r.spread = c.n, c.sd, c.spread
    r.p_exact = c.p_exact
    if c.left_out:
        r.notes.append(f"seeds {', '.join(map(str, c.left_out))} left out (in one arm only)")
    if not c.paired:
        r.notes.append(f"unpaired ({c.why_unpaired})")  # compare() always says why
    if r.n < 2 or c.diff is None:
        r.verdict = UNTESTED
        return False
    return True


def _fmt_ci(m: Any, lo: float | None, hi: float | None) -> str:
    return f"[{m.fmt(lo, True)}, {m.fmt(hi, True)}]"


def _directional(r: ClaimResult, m: Any, op: Op, claim: dict[str, Any], runs: Runs,
                 mine: dict[int, float]) -> tuple[ClaimResult, Any]:
    """Higher or lower than an arm or a value: the paired (or one-sample, or Welch) t-test,
    two-sided, on the side ``op`` claims; the exact sign-flip test without spread."""
    got = _against(r, m, claim, runs, mine)
    if got is None:
        return r, None
    _, label, c, test = got
    if not _measured(r, c):
        return r, None
    r.direction = 1 if c.diff * op.side > 0 else -1 if c.diff else 0  # +1: the claimed side
    r.test = test if c.spread else c.test  # without spread: the exact test, or none
    r.p = c.decision_p
    r.diff = c.diff
    if not c.spread and c.paired:
        r.estimate = (f"{label}: {m.fmt(c.diff, True)} (no spread: n = {c.n} identical "
                      f"differences; exact p = {c.p_exact:.3g})")
    elif c.ci_low is None:
        r.estimate = f"{label}: {m.fmt(c.diff, True)} (no interval: {c.test})"
    else:
        r.ci_low, r.ci_high = diff_in_range(m, c.ci_low, c.ci_high)
        r.estimate = f"{label}: {m.fmt(c.diff, True)} {_fmt_ci(m, r.ci_low, r.ci_high)}"
        r.interval = "95 %, unadjusted"
    return r, c


def _equivalence(r: ClaimResult, m: Any, op: Op, claim: dict[str, Any], runs: Runs,
                 mine: dict[int, float]) -> tuple[ClaimResult, Any]:
    """Equal within ± tolerance: an equivalence question however the runs pair — paired
    TOST, else Welch's TOST; outside the margin, the doubled one-sided p beyond it."""
    got = _against(r, m, claim, runs, mine)
    if got is None:
        return r, None
    d, label, c, _ = got
    if not _measured(r, c):
        return r, None
    tol = parse_amount(claim.get("tolerance") or 0.0, m)
    e = tost(d, tol) if c.paired else welch_tost(c.xa, c.xb, tol)
    r.interval = f"90 % (TOST, ± {m.fmt(tol, True).lstrip('+')})"
    r.p_exact = e.p_exact
    r.diff = e.diff
    if not e.spread and c.paired:
        r.estimate = (f"{label}: {m.fmt(e.diff, True)} (no spread: n = {e.n} identical "
                      f"differences; exact p = {e.p_exact:.3g})")
    elif not e.spread:  # unpaired, neither arm varies: no test at all
        r.estimate = f"{label}: {m.fmt(e.diff, True)} (no interval: no spread in either arm)"
        r.interval = ""
    else:
        r.ci_low, r.ci_high = diff_in_range(m, e.ci_low, e.ci_high)
        r.estimate = f"{label}: {m.fmt(e.diff, True)} {_fmt_ci(m, r.ci_low, r.ci_high)}"
    inside = abs(e.diff) <= tol  # type: ignore[arg-type]
    r.direction = 1 if inside else -1
    if inside:
        r.test = e.test if e.spread else "exact sign-flip TOST (no spread)" if c.paired \
            else "none (no spread in either arm)"
        r.p = e.p if e.spread else e.p_exact
    else:
        r.test = ("t beyond the margin, one-sided × 2" if c.paired else
                  "Welch t beyond the margin, one-sided × 2 (unpaired)")
        r.p = e.p_beyond
        r.p_exact = None
    return r, c


def rivals(claim: dict[str, Any], runs: Runs) -> list[str]:
    """Whom a ``best``/``worst`` claim must beat: its ``than`` (one arm or a list), else
    every other arm of the experiment file and of the directory, from config.json and from
    its runs, whether or not any of its runs finished or ran at all (a rival whose runs
    diverged, or that --arms left out, stays a rival: dropping it would make "best" easier
    to reach)."""
    than = claim.get("than")
    if than:
        return [than] if isinstance(than, str) else list(than)
    known = dict.fromkeys([*runs.protocol, *runs.status, *runs.values, *runs.unrun])
    return [a for a in known if a != claim["arm"]]


def _best(r: ClaimResult, m: Any, op: Op, claim: dict[str, Any], runs: Runs,
          mine: dict[int, float]) -> tuple[ClaimResult, Any]:
    """A beats every rival: each rival compared; the claim's p is the largest rival p when
    every estimate lies on the claimed side (intersection–union), else the smallest p on the
    other side times the number of rivals (Bonferroni within the claim)."""
    arm, metric = claim["arm"], r.metric
    others = rivals(claim, runs)
    missing = [o for o in others if not metric_of(runs.values, o, metric)]
    if missing:  # a rival that was not run cannot be beaten or lost to
        r.verdict = Verdict.missing(metric, missing[0])
        return r, None
    if not others:
        return r, None
    want = op.side
    comps = []
    for o in others:
        ok = runs.comparable(arm, o)
        comps.append((o, compare(mine, metric_of(runs.values, o, metric), paired=ok)))
    if any(c.diff is None or c.n < 2 for _, c in comps):
        r.n = min(c.n for _, c in comps)
        return r, None
    against = [(o, c) for o, c in comps if c.diff * want < 0]
    if against:
        o, c = min(against, key=lambda t: t[1].decision_p if t[1].decision_p is not None else 1.0)
        ps = [c.decision_p for _, c in against]
        r.p = None if None in ps else min(1.0, len(comps) * min(ps))  # type: ignore[type-var]
        r.direction, who = -1, "contradicting rival"
    else:
        o, c = max(comps, key=lambda t: t[1].decision_p if t[1].decision_p is not None else 2.0)
        ps = [c.decision_p for _, c in comps]
        r.p = None if None in ps else max(ps)  # type: ignore[type-var]
        r.direction, who = 1, "closest rival"
        exact = [c.p_exact for _, c in comps]
        r.p_exact = None if None in exact else max(exact)  # type: ignore[type-var]
    r.n, r.sd, r.spread = min(c.n for _, c in comps), c.sd, all(c.spread for _, c in comps)
    r.test, r.diff = c.test, c.diff
    for _, cc in comps:
        if cc.left_out:
            r.notes.append(f"seeds {', '.join(map(str, cc.left_out))} left out (in one arm only)")
            break
    if not c.paired:
        r.notes.append("unpaired (different protocols)")
    if not c.spread and c.paired:
        r.estimate = (f"{arm} − {o} ({who}): {m.fmt(c.diff, True)} (no spread: n = {c.n} "
                      f"identical differences; exact p = {c.p_exact:.3g})")
    elif c.ci_low is None:  # unpaired, and neither arm varies: Welch has nothing to say
        r.estimate = f"{arm} − {o} ({who}): {m.fmt(c.diff, True)} (no interval: {c.test})"
    else:
        r.ci_low, r.ci_high = diff_in_range(m, c.ci_low, c.ci_high)
        r.estimate = f"{arm} − {o} ({who}): {m.fmt(c.diff, True)} {_fmt_ci(m, r.ci_low, r.ci_high)}"
        r.interval = "95 %, unadjusted"
    return r, c


def _threshold(claim: dict[str, Any]) -> float:
    """A chance claim's γ (the file's check stores it; a claim given as a dict may leave it
    out: the default), refused outside (0.5, 1), e.g. in a hand-edited config.json."""
    t = claim.get("threshold")
    t = THRESHOLD if t is None else t
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0.5 < t < 1:
        raise SharpenError(f"claim {claim['claim']!r}: threshold {t!r} is not in (0.5, 1)")
    return float(t)


def _outperform(r: ClaimResult, m: Any, op: Op, claim: dict[str, Any], runs: Runs,
                mine: dict[int, float]) -> tuple[ClaimResult, Any]:
    """A run of the arm beats the run of ``than`` with the same seed (``P<``: is below it)
    with a chance above the claim's threshold γ: the exact binomial test of the seeds'
    wins (:func:`sharpen.reports.stats.outperform`), with Clopper–Pearson's interval. Its
    estimate is a chance, not a difference of the metric: ``diff`` and its interval stay
    None."""
    arm, other = claim["arm"], claim["than"]
    theirs = metric_of(runs.values, other, r.metric)
    if not theirs:
        r.verdict = Verdict.missing(r.metric, other)
        return r, None
    r.threshold = gamma = _threshold(claim)
    common = sorted(set(mine) & set(theirs))
    left = sorted(set(mine) ^ set(theirs))
    if left:
        r.notes.append(f"seeds {', '.join(map(str, left))} left out (in one arm only)")
    if not runs.comparable(arm, other):
        r.notes.append("seeds matched one to one (different protocols: a pair shares no "
                       "randomness)")
    r.n = len(common)
    if r.n < 2:
        return r, None
    s = op.side  # P<: P(A < B) is P(−A > −B)
    o = outperform([(s * mine[k], s * theirs[k]) for k in common], gamma)
    r.p, r.direction, r.p_min = o.p, o.direction, o.p_min
    r.test = (f"exact binomial at {gamma:g}: {o.wins} of {o.n} seeds won"
              + (f", {o.ties} tied" if o.ties else ""))
    sign = ">" if s > 0 else "<"
    r.estimate = (f"P({arm} {sign} {other}) = {o.estimate:.2f} [{o.ci_low:.2f}, "
                  f"{o.ci_high:.2f}], threshold {gamma:g}")
    r.interval = "95 % Clopper–Pearson, unadjusted"
    verb = "beats" if s > 0 else "is below"
    if o.ci_high < 0.5:
        r.notes.append(f"{arm} {verb} {other} less often than not (upper bound < 0.5)")
    elif 0.5 < o.ci_low <= gamma:
        r.notes.append(f"{arm} {verb} {other} more often than not (lower bound > 0.5), "
                       f"not shown to with a chance above {gamma:g}")
    return r, None  # no Comparison: a claim map shows no difference for it


def _chance_reach(r: ClaimResult, level: float) -> None:
    """A chance claim whose support no outcome at its n could reach (n of n wins gives
    p = 2γⁿ): say so, and from which n it could."""
    if r.threshold is None or r.n < 2:
        return
    best = min(1.0, 2 * r.threshold ** r.n)
    if best >= level:
        r.notes.append(f"no outcome at n = {r.n} could support it ({r.n} of {r.n} wins give "
                       f"p = {best:.2g}); it could from n = "
                       f"{outperform_decides_from(r.threshold, level)}")


# the tests an op may name (Op.test): each judges one claim on the runs
TESTS = {"directional": _directional, "equivalence": _equivalence, "rivals": _best,
         "outperform": _outperform}


def judge_family(claims: list[dict[str, Any]], runs: Runs, published: dict[str, Any] | None = None,
                 alpha: float = ALPHA, sensitivity: bool = True,
                 protocol: dict[str, Any] | None = None,
                 arms_cfg: dict[str, dict[str, Any]] | None = None) -> list[ClaimResult]:
    """Every claim of one report judged as one family (Holm at ``alpha``). ``protocol``
    (``published_protocol``) and ``arms_cfg``: a published effect measured under another
    protocol than the arms' gets no n (it is not comparable)."""
    pre = [_prejudge(c, runs) for c in claims]
    results = [r for r, _ in pre]
    m_family = sum(r.p is not None for r in results) or 1
    for i, r, adj, adj_x in zip(range(len(results)), results, holm([r.p for r in results]),
                                holm([r.p_exact for r in results])):
        r.p_adj, r.p_exact_adj = adj, adj_x
        if r.verdict != UNTESTED:  # settled before the family: an arm it names has no values
            continue
        if r.n < 2:
            r.verdict = UNTESTED
            continue
        level = alpha / m_family  # the strictest Holm step: the level power is planned at
        op = get_op(r.op)
        margin = op.margin
        # a difference to detect; an equivalence claim asks the opposite question, and a
        # chance claim none of a mean, so neither a detectable difference nor an n for the
        # paper's effect means anything for them
        r.mde = min_detectable(r.n, r.sd, level) if op.difference else None
        r.effect = (_stated_effect(claims[i], published or {}, r.metric) if op.difference
                    else None)
        if r.effect is not None:
            r.effect_not_comparable = effect_differences(claims[i], protocol, arms_cfg)
        r.n_needed = None if r.effect_not_comparable else seeds_needed(r.effect, r.sd, level)
        # TOST's exact p is the larger of two one-sided sign-flip p's: at least 1/2ⁿ, not 2/2ⁿ
        alt = "greater" if margin else "two-sided"
        if r.p is None:
            r.verdict = Verdict.undecidable(r.n)
            continue
        if adj is not None and adj < alpha:
            r.verdict = SUPPORTED if r.direction > 0 else CONTRADICTED
            if r.spread and r.p_exact is not None and (adj_x is None or adj_x >= alpha):
                k = exact_decides_from(level, alt)
                why = (f"at n = {r.n} it cannot reach the family's level; it could from n = {k}"
                       if k > r.n else "it does not reach the family's level with these "
                       "differences")
                r.notes.append(f"rests on the normal model: the exact sign-flip test gives "
                               f"p = {r.p_exact:.3g} (Holm {adj_x:.3g}); {why}")
            elif not r.spread:
                r.notes.append("decided by the exact sign-flip test")
        else:
            # could any outcome at this n decide? Without spread only the exact test speaks
            if (not r.spread and r.test.startswith("exact")
                    and min_sign_flip_p(r.n, alt) * m_family >= alpha):
                r.verdict = Verdict.undecidable(r.n)
                r.notes.append(f"no spread, and the exact test cannot go below p = "
                               f"{min_sign_flip_p(r.n, alt):.3g} at n = {r.n}; it could decide "
                               f"from n = {exact_decides_from(level, alt)}")
            elif r.p_min is not None and r.p_min * m_family >= alpha:  # an exact test's floor
                r.verdict = Verdict.undecidable(r.n)
            else:
                r.verdict = NOT_SUPPORTED
        if op.chance and r.verdict.outcome in (Outcome.NOT_SUPPORTED, Outcome.UNDECIDABLE):
            _chance_reach(r, level)
    if sensitivity:
        _sensitivity(claims, runs, published, alpha, results)
    return results


def _sensitivity(claims: list[dict[str, Any]], runs: Runs, published: dict[str, Any] | None,
                 alpha: float, results: list[ClaimResult]) -> None:
    """Count lost runs beside each claim; say when counting them as the arm's worst run
    would change the verdict."""
    for i, (c, r) in enumerate(zip(claims, results)):
        arms = [c["arm"]] + (rivals(c, runs) if get_op(c["op"]).rivals else
                             [c["than"]] if isinstance(c.get("than"), str) else [])
        lost = {a: runs.lost(a) for a in arms if runs.lost(a)}
        if not lost:
            continue
        st = {a: runs.status[a] for a in lost}
        parts = []
        for a, seeds in lost.items():
            kinds = [st[a][s] for s in seeds]
            parts.append(f"{a}: " + ", ".join(f"{kinds.count(k)} {k}" for k in
                                              ("diverged", "failed", "corrupt") if k in kinds))
        r.lost = "; ".join(parts)
        filled = judge_family(claims, _fill_lost(runs, r.metric), published, alpha,
                              sensitivity=False)[i]
        if filled.verdict != r.verdict:
            r.notes.append(f"would be {filled.verdict} if the lost runs counted as their "
                           "arm's worst run")


def judge(claim: dict[str, Any], values: Values) -> dict[str, Any]:
    """One claim judged alone (a family of one) on per-run values, as a dict."""
    return judge_family([claim], Runs(values=values))[0].as_dict()


def take_decisions(rows: list[ClaimResult], unit: dict[str, Any] | None) -> None:
    """A directory grown by ``--until-decided``: each claim's verdict is its design's
    decision (``unit``: the record's unit, its ``decisions`` by claim index). A fixed-n test
    at the last look is no longer a valid test, so a claim the design left undecided is not
    supported, whatever its Holm p (kept, for reference)."""
    if unit is None:
        return
    plan = SequentialPlan.from_dict(unit["plan"]) if unit.get("plan") else None
    for i, r in enumerate(rows):
        if plan is not None:
            _repeated_interval(r, plan)
        if r.verdict.outcome is Outcome.UNTESTED:
            continue
        d = (unit.get("decisions") or {}).get(str(i))
        if d:
            r.verdict = Verdict(Outcome(d["verdict"]))
            r.notes.append(f"decided by the sequential design at n = {d['n']}")
        elif r.verdict.outcome in (Outcome.SUPPORTED, Outcome.CONTRADICTED):
            r.notes.append(f"the fixed-n Holm test says {r.verdict}; the sequential design "
                           "left it undecided, and only its decision is valid after looking")
            r.verdict = NOT_SUPPORTED
        else:
            r.notes.append("undecided by the sequential design")


def _repeated_interval(r: ClaimResult, plan: SequentialPlan) -> None:
    """A claim of a sequential directory shows the repeated confidence interval at its last
    look (valid at whatever look the design stopped), as a grid's claim map does, in place
    of the naive 95 % one, which looking on the way has made too narrow."""
    if r.interval != "95 %, unadjusted" or r.diff is None or r.ci_low is None:
        return  # no interval, or not a difference's (a chance claim's, a TOST's)
    m = get_metric(r.metric)
    naive = _fmt_ci(m, r.ci_low, r.ci_high)
    if any(n.startswith("unpaired") for n in r.notes) or not r.sd or r.n < 2:
        r.interval = "95 %, unadjusted, not valid under the sequential design"
        return  # the design's repeated interval is of paired differences
    lo, hi = repeated_ci(r.diff, r.sd, r.n, plan.threshold_reached(r.n))
    if math.isfinite(lo) and math.isfinite(hi):
        r.ci_low, r.ci_high = diff_in_range(m, lo, hi)
        r.estimate = r.estimate.replace(naive, _fmt_ci(m, r.ci_low, r.ci_high))
    else:  # a look that spends no α bounds nothing
        r.ci_low = r.ci_high = None
        r.estimate = r.estimate.replace(naive, "[−∞, +∞]")
    r.interval = "repeated CI at the last look, valid under the sequential design"


def claims_table(claims: list[dict[str, Any]], runs: Runs | Values,
                 published: dict[str, Any] | None = None,
                 sequential: dict[str, Any] | None = None,
                 cfg: dict[str, Any] | None = None) -> tuple[str, list[ClaimResult]]:
    """The claims section's table and the judged claims (``sequential``: the unit of a
    directory's sequential record whose decisions are the verdicts; ``cfg``: config.json,
    whose ``published_protocol`` and arms say which published effects are comparable)."""
    runs = runs if isinstance(runs, Runs) else Runs(values=runs)
    cfg = cfg or {}
    rows = judge_family(claims, runs, published, protocol=cfg.get("published_protocol"),
                        arms_cfg=cfg.get("arms"))
    take_decisions(rows, sequential)
    lines = ["| claim | the paper says | ours | verdict | n | p (t / exact) | Holm p | test | "
             "detectable at n (80 %) | n for the paper's effect | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = get_metric(r.metric)
        n = f"{r.n}" + (f" ({r.lost} not counted)" if r.lost else "")
        mde = fmt_detectable(m, r.mde)
        need = "–" if r.effect is None else (
            f"not comparable: the paper's {m.fmt(r.effect, True)} is of another protocol "
            f"({'; '.join(r.effect_not_comparable)})" if r.effect_not_comparable else
            f"{r.n_needed} for {m.fmt(r.effect, True)}" if r.n_needed else
            f"– for {m.fmt(r.effect, True)}")
        if get_op(r.op).margin:
            mde = need = "– (`~`: not a difference to detect)"
        elif get_op(r.op).chance:
            mde = need = f"– (`{r.op}`: a chance, not a difference to detect)"
        est = r.estimate + (f" ({r.interval})" if r.interval and r.estimate != "–" else "")
        if cfg.get("report_error") and m.table is not None and m.table.as_error \
                and r.estimate != "–":  # the report speaks of error, the claim of accuracy
            est = f"in {m.label}, where + is a lower error: {est}"
        p, p_exact, p_adj = (format_p(v, 2, "–", sci_below=0.001)
                             for v in (r.p, r.p_exact, r.p_adj))
        lines.append(f"| {r.claim} | {r.paper_says or '–'} | {est} | **{r.verdict}** | {n} | "
                     f"{p} / {p_exact} | {p_adj} | {r.test or '–'} | {mde} | "
                     f"{need} | {'; '.join(r.notes) or '–'} |")
    if any(get_op(r.op).chance for r in rows):
        lines += ["", CHANCE_TEXT]
    return "\n".join(lines), rows


FAMILY_TEXT = (
    "The {m} claim(s) of this report are one family. Each claim gets one p-value: the paired "
    "t-test's, two-sided (a directional claim is judged on the side the paper claims, so each "
    "direction is tested at 2.5 %); the exact sign-flip test's when the per-seed differences "
    "have no spread; for `~` claims two one-sided tests (TOST) at the stated margin, with "
    "their 90 % interval (Welch's for arms of different protocols, which do not pair). "
    "Holm's step-down adjustment (the numbers of statsmodels `multipletests`) over the "
    "family decides the verdicts at 5 %: **supported** (significant on the claimed side), "
    "**contradicted** (significant on the other side), **not supported** (not significant: "
    "our n cannot tell), **undecidable at n = N** (no outcome at this n could be "
    "significant). Intervals are 95 % per claim, *unadjusted*. Beside the t-test every "
    "paired claim carries the exact sign-flip p (all 2ⁿ sign patterns); a verdict the "
    "t-test reaches but the exact test cannot is marked *rests on the normal model*. "
    "\"Detectable at n\" is the smallest true difference a paired t-test at α/m = {lvl} "
    "finds with 80 % power given our sd of the differences; \"n for the paper's effect\" the "
    "seeds that would take (statsmodels `TTestPower`), *not comparable* where the paper "
    "measured it under another protocol; neither exists for a `~` claim.")


CHANCE_TEXT = (
    "A `P>` claim (`P<`: below) says that a run of the arm beats the run of `than` with the "
    "same seed with a chance P above its threshold γ (Bouthillier et al. 2021). Over n "
    "seed-matched pairs the wins are a binomial count: the estimate is (wins + ties/2)/n, "
    "the interval Clopper–Pearson's 95 % (a tie counts against the side each bound is "
    "for), the p the exact binomial test of P = γ, two-sided as every claim's, in the "
    "family like the others: **supported** when P > γ is significant (for a family of one: "
    "the interval's lower bound lies above γ), **contradicted** when P < γ is (its upper "
    "bound below γ). n of n wins give p = 2γⁿ: at γ = 0.75 no n below 13 can support a "
    "claim alone.")


__all__ = ["run_values", "load_runs", "Runs", "judge", "judge_family", "claims_table",
           "ClaimResult", "metric_of", "fmt_value", "as_number", "values_of_run",
           "FAMILY_TEXT", "SUPPORTED", "NOT_SUPPORTED", "CONTRADICTED", "UNTESTED"]
