"""The statistics of a variance study (``sharpen variance``): how much of the spread of test
accuracy each source of randomness contributes (docs/methods/statistics.md, "Which
randomness matters").

Pure functions: numbers in, numbers and Markdown out (the run directory is read by
:mod:`sharpen.reports.variance_study`). A study trains n seeds per arm; in the arm of
source j only stream j follows the seed (the others are pinned), in the arm ``all`` every
stream the run draws from does. So:

* :func:`sd_interval`: a source's sd over its seeds with the chi-square interval
  ``[sqrt((n−1)s²/χ²₀.₉₇₅), sqrt((n−1)s²/χ²₀.₀₂₅)]`` (exact for normal accuracies).
* :func:`ratio_interval`: a ratio of two arms' variances with its F interval. Two source
  arms share no stream that follows the seed, so their estimates are independent and the
  interval is exact for normal accuracies; a source against ``all`` shares that source's
  draws (seed s draws the same split in both arms), which correlates the two estimates
  positively and makes the share's interval conservative (wider than it need be), never
  too narrow (tests/test_variance_study.py measures both).
* :func:`binomial_sd`: the test-set sampling term ``sqrt(p(1−p)/N)``, what a new test set of
  the same size would move one run's accuracy by. The ideal bootstrap over the test images of
  one run's 0/1 correctness has exactly this variance, p̂(1 − p̂)/N, so the two agree.
* :func:`spreads`: every source's row; :func:`dominant`: the source that dominates, only
  when its variance exceeds every other source's (each F interval of the ratio above 1,
  Bonferroni over the comparisons), else the sources it cannot be told apart from.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALL = "all"  # the arm in which every source follows the seed


@functools.lru_cache(maxsize=4096)
def _chi2(q: float, df: int) -> float:
    return float(stats.chi2.ppf(q, df))


@functools.lru_cache(maxsize=4096)
def _f(q: float, d1: int, d2: int) -> float:
    return float(stats.f.ppf(q, d1, d2))


def sd_interval(xs: Sequence[float], confidence: float = CONFIDENCE
                ) -> tuple[float, float | None, float | None]:
    """The sample sd of ``xs`` and its chi-square interval for the true sd (None below two
    values: one run says nothing of a spread)."""
    x = np.asarray(xs, dtype=float)
    if len(x) < 2:
        return (float("nan") if len(x) == 0 else 0.0), None, None
    n, s = len(x), float(np.std(x, ddof=1))
    a = (1 - confidence) / 2
    lo = math.sqrt((n - 1) * s * s / _chi2(1 - a, n - 1))
    hi = math.sqrt((n - 1) * s * s / _chi2(a, n - 1))
    return s, lo, hi


def ratio_interval(s1: float, n1: int, s2: float, n2: int, confidence: float = CONFIDENCE
                   ) -> tuple[float, float | None, float | None]:
    """σ₁²/σ₂² estimated by s₁²/s₂² from two independent normal samples, with its F interval
    (None where either sample has fewer than two values or s₂ is 0)."""
    if n1 < 2 or n2 < 2 or s2 <= 0:
        return (float("nan"), None, None)
    r = s1 * s1 / (s2 * s2)
    a = (1 - confidence) / 2
    return r, r / _f(1 - a, n1 - 1, n2 - 1), r / _f(a, n1 - 1, n2 - 1)


def binomial_sd(p: float, n_test: int) -> float:
    """The sd of one run's test accuracy over test sets of ``n_test`` images: sqrt(p(1−p)/N)."""
    if n_test < 1:
        raise ValueError(f"a test set of {n_test} images has no sampling sd")
    return math.sqrt(max(p * (1 - p), 0.0) / n_test)


@dataclass(frozen=True)
class Spread:
    """One arm of a study: its source (or ``all``), seeds, mean and sd of test accuracy
    with the sd's interval, its variance as a share of the all-sources arm's (with the F
    interval), and the test-set sampling sd of its runs (None without predictions)."""

    source: str
    n: int
    mean: float
    sd: float
    sd_lo: float | None
    sd_hi: float | None
    share: float | None
    share_lo: float | None
    share_hi: float | None
    test_sd: float | None
    n_test: int | None
    values: tuple[float, ...] = ()  # the seeds' values, for the figure


def spreads(values: Mapping[str, Sequence[float]],
            tests: Mapping[str, tuple[float, int]] | None = None,
            confidence: float = CONFIDENCE) -> list[Spread]:
    """One :class:`Spread` per arm of ``values`` (source → per-seed test accuracies, in the
    order given; ``all`` for the all-sources arm). ``tests``: source → (accuracy over its
    runs' per-image predictions, test images per run) for the binomial term."""
    tests = tests or {}
    base = values.get(ALL)
    s_all = float(np.std(base, ddof=1)) if base is not None and len(base) > 1 else None
    out = []
    for src, xs in values.items():
        s, lo, hi = sd_interval(xs, confidence)
        p_n = tests.get(src)
        # seeds that all scored the same: the interval is not [0, 0] (a spread below one test
        # image's step hides there); its upper end is that of the one-step sd 1/(N√n)
        step = 1 / (p_n[1] * math.sqrt(len(xs))) if p_n and s == 0 and len(xs) > 1 else None
        if step is not None:
            hi = sd_interval([0.0] * (len(xs) - 1) + [step * math.sqrt(len(xs))], confidence)[2]
        share = share_lo = share_hi = None
        if s_all is not None and base is not None and len(xs) > 1 and s_all > 0:
            share, share_lo, share_hi = ratio_interval(step or s, len(xs), s_all, len(base),
                                                       confidence)
            share = s * s / (s_all * s_all)
            share_lo = 0.0 if step is not None else share_lo
        out.append(Spread(src, len(xs), float(np.mean(xs)) if len(xs) else float("nan"), s,
                          lo, hi, share, share_lo, share_hi,
                          binomial_sd(*p_n) if p_n else None, p_n[1] if p_n else None,
                          tuple(float(x) for x in xs)))
    return out


@dataclass(frozen=True)
class Dominance:
    """Which single source dominates: ``source`` when its variance is larger than every
    other source's (Bonferroni-adjusted F intervals of the ratios all above 1), else None
    with ``tied``: the largest source and those it cannot be told apart from."""

    source: str | None
    largest: str | None
    tied: tuple[str, ...]
    level: float  # the confidence of each ratio's interval


def dominant(rows: Sequence[Spread], confidence: float = CONFIDENCE) -> Dominance:
    """The source (not ``all``) with the largest sd, and whether it dominates: its variance
    over each other source's, as an F interval at 1 − α/(k − 1) (Bonferroni over the k − 1
    comparisons), lies above 1 for every one. One source alone dominates trivially."""
    srcs = [r for r in rows if r.source != ALL and r.n >= 2 and not math.isnan(r.sd)]
    if not srcs:
        return Dominance(None, None, (), confidence)
    top = max(srcs, key=lambda r: r.sd)
    others = [r for r in srcs if r is not top]
    level = 1 - (1 - confidence) / max(len(others), 1)
    tied = []
    for r in others:
        s2 = _resolved_sd(r)
        _, lo, _ = ratio_interval(top.sd, top.n, s2 or 0.0, r.n, level)
        if top.sd == 0 or lo is None or lo <= 1:
            tied.append(r.source)
    return Dominance(None if tied else top.source, top.source, tuple(tied), level)


def _resolved_sd(r: Spread) -> float | None:
    """The sd a source is compared with: its own, or for seeds that all scored the same the
    smallest spread the test set could show, n values one image apart (sd 1/(N√n)). An
    accuracy over N images moves in steps of 1/N: equal values hide a spread below a step,
    they do not show a zero one (taken as 0, any other source 'dominated' it, even at n = 2).
    None when N is unknown (no predictions): nothing to compare with."""
    if r.sd > 0:
        return r.sd
    return 1 / (r.n_test * math.sqrt(r.n)) if r.n_test else None


def pp(x: float | None, digits: int = 2) -> str:
    """A fraction as percentage points (``0.0123`` → ``1.23``); ``n/a`` for None/nan."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def share_text(r: Spread) -> str:
    if r.source == ALL:
        return "100 % (the reference)"
    if r.share is None:
        return "n/a"
    hi = "∞" if r.share_hi is None else f"{100 * r.share_hi:.0f}"
    return f"{100 * r.share:.0f} % [{100 * (r.share_lo or 0):.0f}, {hi}]"


def table(rows: Sequence[Spread], labels: Mapping[str, str] | None = None) -> str:
    """The study's Markdown table: one row per source, then the all-sources arm."""
    labels = labels or {}
    lines = ["| source | what varies | n | mean test acc % | sd (pp) | sd 95 % CI (χ²) | share of the "
             "all-sources variance [95 % CI, F] | test-set sampling sd (pp, binomial) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = "n/a" if r.sd_lo is None else f"[{pp(r.sd_lo)}, {pp(r.sd_hi)}]"
        test = "n/a" if r.test_sd is None else f"{pp(r.test_sd)} (N = {r.n_test:,})"
        lines.append(f"| {r.source} | {labels.get(r.source, '')} | {r.n} | {pp(r.mean)} | "
                     f"{pp(r.sd)} | {ci} | {share_text(r)} | {test} |")
    return "\n".join(lines)


def verdict_text(d: Dominance, rows: Sequence[Spread]) -> str:
    """One sentence: which source dominates, or which cannot be told apart, and how the
    sources compare with the test-set sampling term."""
    if d.largest is None:
        return "No source has two or more finished seeds: nothing to compare yet."
    n_src = sum(r.source != ALL for r in rows)
    if d.source is not None and n_src > 1:
        head = (f"**{d.source} dominates**: its variance exceeds every other source's (each "
                f"F interval of the ratio above 1 at {100 * d.level:.4g} %, Bonferroni over "
                f"{n_src - 1} comparison{'s' if n_src > 2 else ''}).")
    elif d.source is not None:
        head = f"Only one source varies in this run: {d.source}."
    else:
        head = (f"**No single source dominates**: the largest sd is {d.largest}'s, but it "
                f"cannot be told apart from {', '.join(d.tied)} at these seeds (an F interval "
                f"of the ratio at {100 * d.level:.4g} % includes 1); more seeds narrow it.")
    ref = next((r for r in rows if r.source == ALL), None) or next(
        r for r in rows if r.source == d.largest)
    what = "all sources together" if ref.source == ALL else f"{ref.source} (the largest)"
    if ref.test_sd is not None and ref.sd_hi is not None and ref.sd_lo is not None:
        where = ("above" if ref.test_sd > ref.sd_hi else "below" if ref.test_sd < ref.sd_lo
                 else "within")
        head += (f" The test-set sampling sd ({pp(ref.test_sd)} pp) lies {where} the interval "
                 f"of the sd of {what} [{pp(ref.sd_lo)}, {pp(ref.sd_hi)}]" + {
                     "above": ": a new test set would move a run more than the training "
                              "randomness does.",
                     "below": ": the training randomness moves a run more than a new test "
                              "set would.",
                     "within": ": at these seeds the two cannot be told apart."}[where])
    return head


def additivity_text(rows: Sequence[Spread]) -> str:
    """The single-source variances summed against the all-sources variance (equal when the
    sources act independently and add up; interactions and chance move it)."""
    by = {r.source: r for r in rows}
    if ALL not in by or by[ALL].n < 2 or by[ALL].sd <= 0:
        return ""
    total = sum(r.sd ** 2 for r in rows if r.source != ALL and r.n >= 2)
    return (f"The single-source variances add up to {100 * total / by[ALL].sd ** 2:.0f} % of the "
            "all-sources variance (100 % if the sources act independently and add; "
            "interactions between them, and chance at these seeds, move it).")
