"""The statistics behind every table and verdict (docs/methods/statistics.md).

Distributions come from scipy.stats, multiple testing, equivalence and power from
statsmodels; the sign-flip test is an exact enumeration (checked against
``scipy.stats.permutation_test`` in the tests).

* :func:`describe`: n, mean, sample sd, 95 % Student-t interval of the mean, best, worst.
  Zero spread gives no interval (``spread`` False), never ``[x, x]``.
* :func:`compare`: arm A − arm B, paired by seed when the caller says the runs are
  comparable (same protocol), else Welch; with the paired t-test, the exact sign-flip test.
* :func:`sign_flip`: exact permutation p-value of a mean difference (all 2ⁿ sign patterns
  up to n = 20, a fixed-seed Monte Carlo of 200,000 patterns above).
* :func:`holm`: Holm's step-down adjustment (equal to statsmodels ``multipletests``).
* :func:`tost`: two one-sided tests of |difference| < tolerance (statsmodels ``ttost_paired``);
  :func:`welch_tost` the same for unpaired arms (statsmodels ``ttost_ind``, unequal variances).
* :func:`min_detectable` / :func:`seeds_needed`: paired-t power (statsmodels ``TTestPower``).
* :func:`against_published`: our mean against a published mean, as an equivalence question
  with margin ε: reproduced, better, worse or undecided, with the paper's n and sd where it
  states them (else one run, or their n with our sd) and the published number's rounding.
* :func:`two_level_bootstrap`: an interval that covers seeds *and* test images.
* :func:`mcnemar`: paired arms image by image, per seed (exact: a binomial test of the
  discordant images, as statsmodels' exact McNemar) and pooled.
* :func:`iqm`, :func:`prob_improvement`, :func:`bootstrap_ci`: rliable-style summaries
  (:func:`prob_improvement_ci`: P(A > B)'s bootstrap interval with a Wilson floor).
* :func:`outperform`: P(A > B) over seed-matched runs against a threshold γ (a ``P>``
  claim): the exact binomial test and Clopper–Pearson's interval.
* :func:`clip_interval`, :func:`wilson`, :func:`sd_upper`: intervals inside their range.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate, stats

from sharpen.verdicts import CONTRADICTED, NOT_SUPPORTED, SUPPORTED, UNTESTED, Verdict

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # two-sided: each direction at 2.5 %
EXACT_MAX_N = 20  # all 2ⁿ sign patterns up to here; a Monte Carlo above
MONTE_CARLO = 200_000
POWER = 0.8


def _t(df: float, confidence: float = CONFIDENCE) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def format_p(p: float | None, digits: int = 3, missing: str = "n/a",
             sci_below: float = 0.0) -> str:
    """A p-value as the report prints it: ``digits`` significant digits, in scientific
    notation with one digit below ``sci_below``, ``missing`` where there is none. The
    paired-comparison table uses the defaults, the claims table (2, "–", 0.001)."""
    if p is None:
        return missing
    return f"{p:.1e}" if p < sci_below else f"{p:.{digits}g}"


def describe(xs: Sequence[float]) -> dict[str, Any]:
    """n, mean, sd (sample), ci_low/ci_high (95 % Student t), best, worst; None where
    undefined. ``spread`` is False when all n ≥ 2 values are identical: then there is no
    interval to show (a t interval of zero width is not certainty)."""
    xs = [float(x) for x in xs]
    n = len(xs)
    out: dict[str, Any] = {"n": n, "mean": None, "sd": None, "ci_low": None, "ci_high": None,
                           "best": None, "worst": None, "spread": n > 1}
    if not n:
        return out
    m = statistics.fmean(xs)
    out.update(mean=m, best=max(xs), worst=min(xs))
    if n > 1:
        sd = statistics.stdev(xs)
        out["sd"] = sd
        if sd > 0:
            half = _t(n - 1) * sd / math.sqrt(n)
            out.update(ci_low=m - half, ci_high=m + half)
        else:
            out["spread"] = False
    return out


# --- exact sign-flip test ---------------------------------------------------------------------

def sign_flip(d: Sequence[float], alternative: str = "two-sided") -> float:
    """Exact p-value of the sign-flip (paired permutation) test of mean(d) = 0.

    Under the null each difference is as likely to have either sign; the p-value is the
    share of the 2ⁿ sign patterns whose mean is at least as extreme as the observed one
    (``alternative``: "two-sided", "greater", "less"). Differences of exactly 0 add
    nothing. Exact up to n = 20; above, a Monte Carlo of 200,000 patterns (fixed seed)
    that counts the observed pattern, so p is never 0.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    x = np.array([float(v) for v in d])
    n = len(x)
    if n == 0:
        return 1.0
    obs = x.sum()
    tol = 1e-12 * max(1.0, float(np.abs(x).sum()))  # equal sums up to rounding count as ties
    if n <= EXACT_MAX_N:
        count, total = 0, 1 << n
        bits = np.arange(n, dtype=np.int64)
        for start in range(0, total, 1 << 16):
            codes = np.arange(start, min(total, start + (1 << 16)), dtype=np.int64)
            signs = 1 - 2 * ((codes[:, None] >> bits) & 1)
            sums = signs @ x
            count += int(_extreme(sums, obs, tol, alternative).sum())
        return count / total
    rng = np.random.default_rng(0)
    count, done = 1, 1  # the observed pattern is one of the patterns
    while done < MONTE_CARLO + 1:
        k = min(1 << 15, MONTE_CARLO + 1 - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(k, n))
        count += int(_extreme(signs @ x, obs, tol, alternative).sum())
        done += k
    return count / done


def _extreme(sums: np.ndarray, obs: float, tol: float, alternative: str) -> np.ndarray:
    if alternative == "greater":
        return sums >= obs - tol
    if alternative == "less":
        return sums <= obs + tol
    return np.abs(sums) >= abs(obs) - tol


def min_sign_flip_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p-value the sign-flip test can give with n non-zero differences."""
    if n <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2 ** n)


def exact_decides_from(alpha: float, alternative: str = "two-sided") -> int:
    """The smallest n at which the sign-flip test can reach p ≤ ``alpha``."""
    n = 1
    while min_sign_flip_p(n, alternative) > alpha:
        n += 1
    return n


# --- intervals inside a metric's range ----------------------------------------------------------

def clip_interval(lo: float | None, hi: float | None, lowest: float = 0.0, highest: float = 1.0
                  ) -> tuple[float | None, float | None]:
    """An interval cut to the range its quantity can take (an accuracy: [0, 1]). The true
    mean lies in the range, so an interval that covers it still covers it when cut: the
    coverage is the uncut interval's, and no end is printed beyond 100 %."""
    if lo is None or hi is None:
        return lo, hi
    return min(max(lo, lowest), highest), max(min(hi, highest), lowest)


def wilson(p_hat: float, n: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p_hat`` observed over n trials: inside
    [0, 1], and never of zero width (n of n right gives [n/(n + z²), 1])."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre = (p_hat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p_hat * (1 - p_hat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if p_hat == 0 else lo), (1.0 if p_hat == 1 else hi)  # exact ends, no 1e-17


def sd_upper(sd: float, n: int, confidence: float = CONFIDENCE) -> float | None:
    """The one-sided upper confidence limit of a normal sd estimated from n values:
    s·√((n − 1)/χ²_{1−c}(n − 1)). At n = 2 it is 16 s at 95 %: a pilot's sd says little."""
    if n < 2 or not sd:
        return None
    return sd * math.sqrt((n - 1) / float(stats.chi2.ppf(1 - confidence, n - 1)))


# --- comparisons --------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Arm A − arm B on one metric: the estimate, its interval and the tests that judge it."""

    paired: bool
    test: str  # the test whose p-value is shown
    n: int  # pairs used (paired) or the smaller arm's size (Welch)
    diff: float | None = None
    ci_low: float | None = None  # 95 %, unadjusted
    ci_high: float | None = None
    p: float | None = None  # two-sided p of ``test``
    p_exact: float | None = None  # two-sided exact sign-flip p (paired only)
    effect: float | None = None
    effect_name: str = ""
    sd: float | None = None  # sd of the per-seed differences (paired) or pooled sd (Welch)
    spread: bool = True  # False: every difference identical (no interval, no t-test)
    n_a: int = 0
    n_b: int = 0
    left_out: list[int] = field(default_factory=list)  # seeds of one arm missing in the other
    diffs: list[float] = field(default_factory=list)  # the per-seed differences (paired)
    why_unpaired: str = ""
    xa: list[float] = field(default_factory=list)  # the two arms' values (unpaired: Welch)
    xb: list[float] = field(default_factory=list)

    @property
    def decision_p(self) -> float | None:
        """The p-value a verdict rests on: the t-test's, or the exact test's without spread."""
        return self.p if self.p is not None else (self.p_exact if not self.spread else None)


def compare(a: Mapping[int, float], b: Mapping[int, float], paired: bool = True,
            why_unpaired: str = "") -> Comparison:
    """Arm ``a`` − arm ``b`` from per-seed values {seed: value}.

    ``paired`` (the runs share their protocol): the seeds both arms have are paired — mean
    per-seed difference, its t interval, the paired t-test (``scipy.stats.ttest_rel``), the
    exact sign-flip test and Cohen's d_z; the seeds only one arm has are listed in
    ``left_out``. With fewer than two shared seeds, or unpaired: Welch.
    """
    common = sorted(set(a) & set(b))
    if paired and len(common) >= 2:
        d = [a[s] - b[s] for s in common]
        left = sorted(set(a) ^ set(b))
        return paired_diff(d, left_out=left, n_a=len(a), n_b=len(b))
    why = why_unpaired or ("" if paired is False else
                           f"{len(common)} shared seed{'s' if len(common) != 1 else ''}")
    c = welch(list(a.values()), list(b.values()))
    c.why_unpaired = why
    return c


def paired_diff(d: Sequence[float], left_out: Sequence[int] = (), n_a: int = 0,
                n_b: int = 0) -> Comparison:
    """The paired comparison of per-seed differences ``d`` (also: a value claim's x − v)."""
    d = [float(x) for x in d]
    sm = describe(d)
    c = Comparison(paired=True, test="paired t-test", n=len(d), diff=sm["mean"], sd=sm["sd"],
                   n_a=n_a or len(d), n_b=n_b or len(d), left_out=list(left_out), diffs=d,
                   effect_name="d_z")
    if len(d) < 2:
        return c
    c.p_exact = sign_flip(d)
    if not sm["spread"]:
        c.spread, c.test = False, "exact sign-flip (no spread)"
        return c
    c.ci_low, c.ci_high = sm["ci_low"], sm["ci_high"]
    c.p = float(stats.ttest_1samp(d, 0.0).pvalue)
    c.effect = sm["mean"] / sm["sd"]
    return c


def welch(xa: Sequence[float], xb: Sequence[float]) -> Comparison:
    """Unpaired: Welch's t-test, its interval of the difference of means, Hedges' g."""
    xa, xb = [float(x) for x in xa], [float(x) for x in xb]
    na, nb = len(xa), len(xb)
    c = Comparison(paired=False, test="Welch t-test (unpaired)", n=min(na, nb), n_a=na, n_b=nb,
                   effect_name="g", xa=xa, xb=xb)
    if na and nb:
        c.diff = statistics.fmean(xa) - statistics.fmean(xb)
    if na < 2 or nb < 2:
        c.test = "none (fewer than 2 runs in an arm)"
        return c
    va, vb = statistics.variance(xa), statistics.variance(xb)
    se2 = va / na + vb / nb
    if se2 == 0:
        c.spread, c.test = False, "none (no spread in either arm)"
        return c
    df = _welch_df(va / na, vb / nb, na, nb)
    half = _t(df) * math.sqrt(se2)
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    c.ci_low, c.ci_high = c.diff - half, c.diff + half  # type: ignore[operator]
    c.p = float(2 * stats.t.sf(abs(c.diff) / math.sqrt(se2), df))  # type: ignore[arg-type]
    c.sd = pooled
    c.effect = c.diff / pooled * (1 - 3 / (4 * (na + nb) - 9))  # type: ignore[operator]
    return c


def _welch_df(ua: float, ub: float, na: int, nb: int) -> float:
    """Welch–Satterthwaite degrees of freedom of ua + ub (each a variance of a mean)."""
    return (ua + ub) ** 2 / (ua**2 / (na - 1) + ub**2 / (nb - 1))


# --- families, equivalence, power ---------------------------------------------------------------

def holm(pvals: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values: sorted ascending, the k-th (from 0) times m − k, made
    non-decreasing, capped at 1. None stays None and does not count towards the family.

    The same numbers as statsmodels ``multipletests(method="holm")`` (the tests compare
    them on random families); computed here because statsmodels runs a full garbage
    collection per call, which makes a simulation of thousands of reports take minutes.
    """
    idx = [i for i, p in enumerate(pvals) if p is not None]
    out: list[float | None] = [None] * len(pvals)
    m = len(idx)
    running = 0.0
    for k, i in enumerate(sorted(idx, key=lambda i: float(pvals[i]))):  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - k) * float(pvals[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


@dataclass
class Equivalence:
    """Two one-sided tests of −tol < mean(d) < tol, and the 90 % interval they imply."""

    n: int
    diff: float | None
    ci_low: float | None  # 90 % (1 − 2α for α = 5 %)
    ci_high: float | None
    p: float | None  # TOST p: the larger of the two one-sided p-values
    p_exact: float | None  # the same with exact one-sided sign-flip tests
    spread: bool = True
    # p of |difference| > tol, two-sided-consistent: the one-sided p on the estimate's side,
    # doubled (capped at 1), because the side is chosen from the data (a `~` claim
    # contradicted; compared at the whole α, like a directional claim's two-sided p)
    p_beyond: float | None = None
    test: str = "TOST (paired t)"


def tost(d: Sequence[float], tol: float, alpha: float = ALPHA) -> Equivalence:
    """Equivalence of per-seed differences ``d`` to 0 within ± ``tol`` (statsmodels
    ``ttost_paired``); exact counterpart: one-sided sign-flip tests of d + tol and d − tol."""
    d = [float(x) for x in d]
    sm = describe(d)
    e = Equivalence(n=len(d), diff=sm["mean"], ci_low=None, ci_high=None, p=None, p_exact=None)
    if len(d) < 2:
        return e
    e.p_exact = max(sign_flip([x + tol for x in d], "greater"),
                    sign_flip([x - tol for x in d], "less"))
    if not sm["spread"]:
        e.spread = False
        return e
    from statsmodels.stats.weightstats import ttost_paired  # lazy: heavy: statsmodels

    e.p = float(ttost_paired(np.asarray(d), np.zeros(len(d)), -tol, tol)[0])
    half = _t(len(d) - 1, 1 - 2 * alpha) * sm["sd"] / math.sqrt(len(d))
    e.ci_low, e.ci_high = sm["mean"] - half, sm["mean"] + half
    e.p_beyond = one_sided_beyond(d, tol)
    return e


def welch_tost(xa: Sequence[float], xb: Sequence[float], tol: float, alpha: float = ALPHA
               ) -> Equivalence:
    """Equivalence of two unpaired arms, mean(a) − mean(b) within ± ``tol``: two one-sided
    Welch tests (Welch–Satterthwaite df; statsmodels ``ttost_ind(usevar="unequal")``), their
    1 − 2α Welch interval, and the one-sided Welch p that the difference lies beyond the
    margin on the estimate's side. The same question as :func:`tost` asks of paired runs:
    a claim's meaning never depends on how its runs pair. No exact counterpart."""
    xa, xb = [float(x) for x in xa], [float(x) for x in xb]
    na, nb = len(xa), len(xb)
    diff = statistics.fmean(xa) - statistics.fmean(xb) if na and nb else None
    e = Equivalence(n=min(na, nb), diff=diff, ci_low=None, ci_high=None, p=None, p_exact=None,
                    test="TOST (Welch, unpaired)")
    if na < 2 or nb < 2:
        return e
    ua, ub = statistics.variance(xa) / na, statistics.variance(xb) / nb
    if ua + ub == 0:
        e.spread = False
        return e
    se, df = math.sqrt(ua + ub), _welch_df(ua, ub, na, nb)
    p_low = float(stats.t.sf((diff + tol) / se, df))  # H0: diff ≤ −tol
    p_high = float(stats.t.cdf((diff - tol) / se, df))  # H0: diff ≥ +tol
    e.p = max(p_low, p_high)
    half = _t(df, 1 - 2 * alpha) * se
    e.ci_low, e.ci_high = diff - half, diff + half
    # beyond the margin on the estimate's side, doubled: the side is chosen from the data
    one = float(stats.t.sf((diff - tol) / se, df) if diff >= 0 else
                stats.t.cdf((diff + tol) / se, df))
    e.p_beyond = min(1.0, 2 * one)
    return e


def one_sided_beyond(d: Sequence[float], tol: float) -> float | None:
    """p of |mean(d)| > tol (a `~` claim contradicted): the one-sided t p on the side the
    estimate lies, doubled and capped at 1. Choosing the side from the data makes the bare
    one-sided p a test at twice its level (up to 10 % at α = 5 %); doubled, it is compared
    at the whole α, as a directional claim's two-sided p is."""
    d = [float(x) for x in d]
    if len(d) < 2 or statistics.stdev(d) == 0:
        return None
    m = statistics.fmean(d)
    if m >= 0:
        one = stats.ttest_1samp([x - tol for x in d], 0.0, alternative="greater").pvalue
    else:
        one = stats.ttest_1samp([x + tol for x in d], 0.0, alternative="less").pvalue
    return min(1.0, 2 * float(one))


def min_detectable(n: int, sd: float | None, alpha: float = ALPHA, power: float = POWER
                   ) -> float | None:
    """The smallest true paired difference a two-sided paired t-test at ``alpha`` detects
    with ``power`` at n pairs, given the sd of the differences (statsmodels TTestPower)."""
    if n < 2 or not sd or not math.isfinite(sd):
        return None
    return _detectable_dz(n, alpha, power) * sd


@functools.lru_cache(maxsize=4096)
def _detectable_dz(n: int, alpha: float, power: float) -> float:
    from statsmodels.stats.power import TTestPower  # lazy: heavy: statsmodels

    return float(TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                          alternative="two-sided"))


def paired_power(dz: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test at ``alpha`` with n pairs and standardised effect
    d_z (statsmodels ``TTestPower``); where its noncentral-t evaluation gives NaN (a very
    large effect at small n), the same probability as one integral over the χ² of the
    variance."""
    from statsmodels.stats.power import TTestPower  # lazy: heavy: statsmodels

    p = float(TTestPower().power(effect_size=dz, nobs=n, alpha=alpha, alternative="two-sided"))
    if math.isfinite(p):
        return p
    # T = (Z + δ) / √(V/df), V ~ χ²(df): P(|T| > t_c) = E_V[Φ(δ − t_c s) + Φ(−δ − t_c s)],
    # s = √(V/df), one integral over V (scipy's noncentral t also gives NaN out here)
    df, delta = n - 1, dz * math.sqrt(n)
    tc = stats.t.ppf(1 - alpha / 2, df)

    def inner(v: float) -> float:
        s_ = math.sqrt(v / df)
        return float(stats.chi2.pdf(v, df) * (stats.norm.cdf(delta - tc * s_)
                                              + stats.norm.cdf(-delta - tc * s_)))

    return float(integrate.quad(inner, 0, math.inf, limit=200)[0])


def seeds_needed(effect: float | None, sd: float | None, alpha: float = ALPHA,
                 power: float = POWER) -> int | None:
    """The smallest n of pairs at which a paired t-test at ``alpha`` detects ``effect``
    with ``power`` (sd of the per-seed differences ``sd``); None if either is unknown."""
    if not sd or not effect or not math.isfinite(sd):
        return None
    dz = abs(effect) / sd

    def enough(n: int) -> bool:
        return paired_power(dz, n, alpha) >= power

    # power grows with n: double until enough, then bisect (n = 1 has no t-test)
    lo, hi = 1, 2
    while not enough(hi):
        lo, hi = hi, 2 * hi
        if hi > 1 << 20:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


# --- verdicts ------------------------------------------------------------------------------------

# the verdict values (sharpen.verdicts), re-exported where the statistics are
undecidable = Verdict.undecidable


def verdict(lo: float | None, hi: float | None, direction: str, tolerance: float = 0.0
            ) -> Verdict:
    """A claim about a difference from an interval alone (the stage-jump table).

    ``direction``: ">" (positive), "<" (negative) or "~" (within ± ``tolerance``).
    """
    if lo is None or hi is None:
        return UNTESTED
    if direction == ">":
        return SUPPORTED if lo > 0 else CONTRADICTED if hi < 0 else NOT_SUPPORTED
    if direction == "<":
        return SUPPORTED if hi < 0 else CONTRADICTED if lo > 0 else NOT_SUPPORTED
    if direction == "~":
        if -tolerance <= lo and hi <= tolerance:
            return SUPPORTED
        return CONTRADICTED if lo > tolerance or hi < -tolerance else NOT_SUPPORTED
    raise ValueError(f"direction must be '>', '<' or '~', got {direction!r}")


# --- ours against a published number -------------------------------------------------------------

REPRODUCED, BETTER, WORSE, UNDECIDED, NOT_COMPARABLE = (
    "reproduced", "better than published", "worse than published", "undecided",
    "not comparable")


def half_unit(x: float, min_decimals: int = 0) -> float:
    """Half a unit of the last digit a number is written with (0.21 → 0.005): a number
    printed with k decimals is known only to ± half a unit of the k-th. Trailing zeros are
    lost in a float, so at least ``min_decimals`` count (2 for a % metric written as a
    fraction: 0.5 was printed as 50 %, known to ± 0.5 pp, not ± 5 pp)."""
    text = repr(float(x))
    if "e" in text or "E" in text:
        mant, _, exp = text.lower().partition("e")
        k = len(mant.partition(".")[2].rstrip("0")) - int(exp)
    else:
        k = len(text.partition(".")[2].rstrip("0"))
    return 0.5 * 10.0 ** (-max(k, min_decimals))


def against_published(xs: Sequence[float], published: float, margin: float,
                      higher_is_better: bool = True, alpha: float = ALPHA,
                      runs: int | None = None, sd: float | None = None,
                      rounding: float = 0.0) -> dict[str, Any]:
    """Our runs against a published mean, as an equivalence question with margin ε.

    What the paper states decides the standard error of ours − published (s, n: ours;
    ``runs`` = n_p, ``sd`` = s_p: the paper's, ``rounding``: half a unit of its last printed
    digit, already added to ``sd`` by the caller where the sd is rounded too):

    * **the paper's n and sd**: both means vary, each with its own spread; Banerjee's
      interval, half = √(t²(n − 1)·s²/n + t²(n_p − 1)·s_p²/n_p): at least its confidence for
      any ratio of the two variances (Welch–Satterthwaite's df is not: at n = 2 against 10
      published runs it says better/worse 10–12 % of the time under equal means);
    * **their n, our sd as theirs**: s·√(1/n + 1/n_p) with n − 1 df (exact when the spreads
      are equal: only our s is observed);
    * **one run** (``runs`` 1, or not stated: one run is the widest assumption, valid
      whatever the paper's n): the published number is one draw, s·√(1 + 1/n), n − 1 df.

    Then the published number's rounding widens every interval by ± ``rounding``, so a
    verdict holds for every value the printed number may stand for. Four outcomes:
    **reproduced** when the 90 % interval lies within ± margin (two one-sided tests at 5 %),
    else **better** / **worse than published** when the 95 % interval excludes 0 on that
    side, else **undecided**. ``assumption`` says which case was used.
    """
    sm = describe(xs)
    out = {**sm, "published": float(published), "margin": margin, "diff": None, "half": None,
           "half90": None, "verdict": str(UNTESTED), "runs": runs, "published_sd": sd,
           "rounding": rounding, "assumption": _assumption(runs, sd, rounding)}
    if sm["mean"] is None:
        return out
    out["diff"] = diff = sm["mean"] - published
    if sm["sd"] is None:
        return out
    n, s = sm["n"], sm["sd"]

    def half_at(confidence: float) -> float:
        if sd is not None and runs is not None and runs >= 2:
            return math.sqrt(_t(n - 1, confidence) ** 2 * s**2 / n
                             + _t(runs - 1, confidence) ** 2 * sd**2 / runs)
        m = runs if runs is not None and runs >= 1 else 1
        return _t(n - 1, confidence) * s * math.sqrt(1 / n + 1 / m)

    if half_at(CONFIDENCE) == 0:
        out["verdict"] = str(undecidable(n))
        return out
    out["half"] = half = half_at(CONFIDENCE) + rounding
    out["half90"] = half90 = half_at(1 - 2 * alpha) + rounding
    if -margin < diff - half90 and diff + half90 < margin:
        out["verdict"] = REPRODUCED
    elif diff - half > 0 or diff + half < 0:
        up = diff > 0
        out["verdict"] = BETTER if up == higher_is_better else WORSE
    else:
        out["verdict"] = UNDECIDED
    return out


def _assumption(runs: int | None, sd: float | None, rounding: float) -> str:
    """What a published row assumes about the paper's runs, in words."""
    if sd is not None and runs is not None and runs >= 2:
        what = f"the paper's n = {runs} and sd (≤ {100 * sd:.2f} pp)"
    elif runs is not None and runs >= 2:
        what = f"the paper's n = {runs}, our sd as its sd"
    elif runs == 1:
        what = "one run, our sd as its sd"
    else:
        what = "one run (no n given), our sd as its sd"
    shown = f"{100 * rounding:.10f}".rstrip("0").rstrip(".")  # 0.5, 0.005, 0.00005
    return what + (f"; ± {shown} pp rounding" if rounding else "")


# --- evaluation-set uncertainty -----------------------------------------------------------------

def two_level_bootstrap(correct: np.ndarray, other: np.ndarray | None = None,
                        n_boot: int = 2000, confidence: float = CONFIDENCE,
                        seed: int = 0) -> tuple[float, float, float]:
    """Mean accuracy (or, with ``other``, the paired difference) with an interval that
    covers seeds *and* test images. The two levels add their variances:

    * seeds: s²/n of the per-seed accuracies (what the t interval over seeds uses);
    * images: a bootstrap of the test images, drawn with replacement once per replicate and
      shared by all seeds (they are tested on the same images), of the seed-mean accuracy.

    The interval is estimate ± t·√(V_seeds + V_images), with Welch–Satterthwaite degrees of
    freedom (n − 1 for the seed part, images − 1 for the image part), and never narrower
    than the t interval over seeds alone. An accuracy's interval (no ``other``) is cut to
    [0, 1] and never narrower than the Wilson score interval at its effective number of
    images est(1 − est)/V, or its m test images where there is no variance (a binomial
    floor: all m right gives [m/(m + z²), 1], never [1, 1]).
    ``correct``: seeds × images of 0/1; ``other``: the other arm's, same seeds and images.
    Returns (estimate, low, high); with one seed, the image level alone.
    """
    c = np.asarray(correct, dtype=np.float64)
    if other is not None:
        c = c - np.asarray(other, dtype=np.float64)
    n, m = c.shape
    est = float(c.mean())
    per_seed = c.mean(1)
    v_seed = float(per_seed.var(ddof=1)) / n if n > 1 else 0.0
    rng = np.random.default_rng(seed)
    col = c.mean(0)  # each image's mean over seeds
    reps = np.empty(n_boot)
    for start in range(0, n_boot, 500):
        k = min(500, n_boot - start)
        w = rng.multinomial(m, np.full(m, 1 / m), size=k).astype(np.float64) / m
        reps[start:start + k] = w @ col
    v_img = float(reps.var(ddof=1)) if np.ptp(col) > 0 else 0.0  # every image alike: none
    v = v_seed + v_img
    if v == 0 and other is not None:
        return est, est, est
    half = 0.0
    if v > 0:
        terms = (v_seed**2 / (n - 1) if n > 1 else 0.0) + v_img**2 / max(m - 1, 1)
        df = v**2 / terms if terms > 0 else math.inf
        half = _t(df, confidence) * math.sqrt(v)
        if n > 1:  # never narrower than the interval over seeds alone
            half = max(half, _t(n - 1, confidence) * math.sqrt(v_seed))
    if other is not None:
        return est, est - half, est + half
    # an accuracy: inside [0, 1], and never narrower than a Wilson interval at the effective
    # number of images est(1 − est)/V (the n a binomial of this variance has: the t interval's
    # own width inside, bent to respect the bounds); with no variance, or at 0 or 1, the m
    # images themselves (every seed sees the same images: 40 of 40 right is [91.2, 100])
    n_eff = est * (1 - est) / v if v > 0 and 0 < est < 1 else m
    wlo, whi = wilson(est, max(n_eff, 1.0), confidence)
    return est, max(0.0, min(est - half, wlo)), min(1.0, max(est + half, whi))


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict[str, Any]:
    """Arm A against arm B image by image: per seed the discordant counts (A right and B
    wrong: ``b``; A wrong and B right: ``c``) and the exact McNemar p (equal to statsmodels'); pooled
    over seeds, the Mantel–Haenszel (matched-pairs) test on the summed counts."""
    a, b = np.asarray(a_right) != 0, np.asarray(b_right) != 0
    per = []
    for k in range(a.shape[0]):
        n10 = int((a[k] & ~b[k]).sum())
        n01 = int((~a[k] & b[k]).sum())
        # the exact McNemar test is a binomial test of n10 of the n10 + n01 discordant images
        p = float(stats.binomtest(n10, n10 + n01).pvalue) if n10 + n01 else 1.0
        per.append({"b": n10, "c": n01, "p": p})
    sb, sc = sum(r["b"] for r in per), sum(r["c"] for r in per)
    chi2 = (sb - sc) ** 2 / (sb + sc) if sb + sc else 0.0
    return {"per_seed": per, "b": sb, "c": sc, "chi2": chi2,
            "p": float(stats.chi2.sf(chi2, 1)) if sb + sc else 1.0}


# --- rliable-style summaries ---------------------------------------------------------------------

def iqm(xs: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (scipy ``trim_mean(x, 0.25)``)."""
    return float(stats.trim_mean(np.array([float(x) for x in xs]), 0.25))


def prob_improvement(xa: Sequence[float], xb: Sequence[float]) -> float:
    """P(A > B): the chance that a random run of A beats a random run of B (ties count
    half) — the Mann–Whitney U statistic over n_a · n_b."""
    a, b = np.array([float(x) for x in xa]), np.array([float(x) for x in xb])
    gt = (a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
    return float(gt / (len(a) * len(b)))


def prob_improvement_ci(xa: Sequence[float], xb: Sequence[float], n_boot: int = 2000,
                        confidence: float = CONFIDENCE, seed: int = 0
                        ) -> tuple[float | None, float | None]:
    """P(A > B)'s interval: the stratified percentile bootstrap, never narrower than the
    Wilson interval of the estimate over min(n_a, n_b) comparisons (runs paired off one to
    one give that many independent A-against-B draws of the same chance). Where every run
    of A loses to every run of B the bootstrap collapses to [0, 0]; the floor does not:
    with 3 runs per arm, [0, 0.56]."""
    if min(len(xa), len(xb)) < 2:
        return None, None
    lo, hi = bootstrap_ci(prob_improvement, [xa, xb], n_boot, confidence, seed)
    wlo, whi = wilson(prob_improvement(xa, xb), min(len(xa), len(xb)), confidence)
    return (wlo, whi) if lo is None or hi is None else (min(lo, wlo), max(hi, whi))


@dataclass(frozen=True)
class Outperform:
    """P(A > B) over seed-matched runs, judged against a threshold γ (:func:`outperform`)."""

    n: int  # seed-matched pairs
    wins: int  # pairs where A's value is above B's
    ties: int  # pairs with equal values (counted half in the estimate)
    estimate: float  # (wins + ties / 2) / n
    ci_low: float  # Clopper–Pearson lower bound of P(A > B), from the wins
    ci_high: float  # Clopper–Pearson upper bound of P(A ≥ B), from wins + ties
    p: float  # two-sided: 2 × the smaller exact one-sided binomial p at γ, capped at 1
    direction: int  # +1: the support side (P > γ) has the smaller p, −1: the other side
    p_min: float  # the smallest p any outcome at this n gives (n of n losses: 2(1 − γ)ⁿ)


def outperform(pairs: Sequence[tuple[float, float]], threshold: float,
               confidence: float = CONFIDENCE) -> Outperform:
    """P(A > B): the chance that a run of A beats the run of B with the same seed
    (Bouthillier et al. 2021), judged against ``threshold`` γ by the exact binomial test.

    Seeds are independent, so the pairs' wins are a binomial count: the interval is
    Clopper–Pearson's and the p the two one-sided exact tests of P = γ (doubled, as every
    claim's p is two-sided), so the interval's lower bound lies above γ exactly when the
    support side's one-sided p is below (1 − confidence)/2. A tie (equal values) is half a
    win in the estimate; the bounds count it against the side being claimed (a loss for
    the lower bound, a win for the upper), so each bound stays valid for P(A > B) +
    P(A = B)/2 whatever the chance of a tie."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold {threshold!r}: need 0 < threshold < 1")
    n = len(pairs)
    if n < 1:
        raise ValueError("no pairs")
    wins = sum(1 for a, b in pairs if a > b)
    ties = sum(1 for a, b in pairs if a == b)
    a2 = (1 - confidence) / 2
    up_to = wins + ties  # wins when ties count for A
    lo = 0.0 if wins == 0 else float(stats.beta.ppf(a2, wins, n - wins + 1))
    hi = 1.0 if up_to == n else float(stats.beta.ppf(1 - a2, up_to + 1, n - up_to))
    p_support = float(stats.binom.sf(wins - 1, n, threshold))  # P(X ≥ wins | γ)
    p_against = float(stats.binom.cdf(up_to, n, threshold))  # P(X ≤ wins + ties | γ)
    return Outperform(n=n, wins=wins, ties=ties, estimate=(wins + ties / 2) / n,
                      ci_low=lo, ci_high=hi, p=min(1.0, 2 * min(p_support, p_against)),
                      direction=1 if p_support < p_against else -1,
                      p_min=min(1.0, 2 * min(threshold, 1 - threshold) ** n))


def outperform_decides_from(threshold: float, level: float) -> int:
    """The smallest n at which n of n wins gives p = 2γⁿ below ``level``: below it a
    claim that P(A > B) > γ is undecidable, whatever the runs."""
    return max(1, math.floor(math.log(level / 2) / math.log(threshold)) + 1)


def bootstrap_ci(stat: Callable[..., float], samples: Sequence[Sequence[float]],
                 n_boot: int = 2000, confidence: float = CONFIDENCE, seed: int = 0
                 ) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``stat`` over independent samples, each resampled
    within itself (a stratified bootstrap: scipy ``bootstrap``, method "percentile")."""
    if any(len(s) < 2 for s in samples):
        return None, None
    if all(len(set(s)) == 1 for s in samples):
        return None, None
    res = stats.bootstrap([np.asarray(s, dtype=np.float64) for s in samples],
                          lambda *xs, axis=-1: _vstat(stat, xs, axis),
                          n_resamples=n_boot, confidence_level=confidence, method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _vstat(stat: Callable[..., float], xs: tuple[np.ndarray, ...], axis: int) -> np.ndarray:
    """``stat`` applied along ``axis`` of resampled batches (scipy passes batches)."""
    xs = tuple(np.moveaxis(x, axis, -1) for x in xs)
    shape = xs[0].shape[:-1]
    out = np.empty(shape)
    for idx in np.ndindex(*shape):
        out[idx] = stat(*(x[idx] for x in xs))
    return out


# --- group-sequential intervals ------------------------------------------------------------------

def repeated_ci(mean: float, sd: float, n: int, threshold: float) -> tuple[float, float]:
    """The repeated confidence interval (Jennison & Turnbull 1989) of a paired difference
    at a look of a group-sequential design: mean ± c·sd/√n, c the look's boundary on the t
    scale, here recovered from the nominal two-sided p ``threshold`` the look must reach
    (c = F_t⁻¹(1 − threshold/2; n − 1)). Because the paths that cross any look's boundary
    are α of all, the intervals of every look cover the true difference together with
    probability 1 − α: valid at whatever look the design stopped. A look that spends
    nothing (threshold 0) gives (−inf, inf)."""
    if n < 2 or threshold <= 0 or not math.isfinite(sd):
        return -math.inf, math.inf
    c = float(stats.t.isf(threshold / 2, n - 1))
    half = c * sd / math.sqrt(n)
    return mean - half, mean + half


def min_detectable_at(n: int, sd: float, threshold: float, power: float = POWER) -> float:
    """The smallest true paired difference a two-sided paired t-test with n pairs detects
    with ``power`` at the nominal p ``threshold`` (a sequential design's last look: the
    earlier looks only add to the power, so this is what the budget can promise)."""
    if n < 2 or not sd > 0 or not 0 < threshold < 1:
        raise ValueError(f"n = {n}, sd = {sd}, threshold = {threshold}: need n ≥ 2, sd > 0 "
                         "and 0 < threshold < 1")
    return _detectable_dz(n, threshold, power) * sd
