"""The statistics behind every table: summaries with confidence intervals, paired
comparisons across seeds, and claim verdicts. scipy.stats does the distributions.

* ``summary``: n, mean, sample standard deviation (None for n = 1), a 95 % confidence
  interval of the mean by Student's t (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n), best and worst.
* ``compare``: arm A against arm B. Runs of the arms of one experiment share their seeds
  (same initialisation stream, data order and split), so they are compared per seed: the
  mean of the per-seed differences, its t interval, the paired t-test's p-value
  (``scipy.stats.ttest_rel``) and Cohen's d_z (mean difference / sd of the differences).
  With fewer than two common seeds the comparison falls back to Welch's unpaired t-test
  (``scipy.stats.ttest_ind(equal_var=False)``), Welch–Satterthwaite interval and Hedges' g,
  and says so.
* ``verdict``: a claim's direction against the interval: supported when the whole interval
  lies on the claimed side, contradicted when it lies wholly on the other side, not
  supported when it includes no difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

CONFIDENCE = 0.95


def _t(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def summary(xs: Sequence[float]) -> dict[str, Any]:
    """n, mean, sd (sample), ci_low/ci_high (95 % Student t), best, worst; None where undefined."""
    xs = [float(x) for x in xs]
    n = len(xs)
    out: dict[str, Any] = {"n": n, "mean": None, "sd": None, "ci_low": None, "ci_high": None,
                           "best": None, "worst": None}
    if not n:
        return out
    m = statistics.fmean(xs)
    out.update(mean=m, best=max(xs), worst=min(xs))
    if n > 1:
        sd = statistics.stdev(xs)
        half = _t(n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, ci_low=m - half, ci_high=m + half)
    return out


def compare(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, Any]:
    """Arm ``a`` − arm ``b`` from per-seed values {seed: value}: paired when they share seeds."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        from scipy import stats

        d = [a[s] - b[s] for s in common]
        sm = summary(d)
        sd = sm["sd"]
        if sd == 0:  # identical differences: no spread, the test is degenerate
            p = 0.0 if sm["mean"] != 0 else 1.0
            dz = math.copysign(math.inf, sm["mean"]) if sm["mean"] else 0.0
        else:
            p = float(stats.ttest_rel([a[s] for s in common], [b[s] for s in common]).pvalue)
            dz = sm["mean"] / sd
        return {"paired": True, "test": "paired t-test", "n": len(common), "diff": sm["mean"],
                "ci_low": sm["ci_low"], "ci_high": sm["ci_high"], "p": p,
                "effect": dz, "effect_name": "d_z"}
    return welch(list(a.values()), list(b.values()))


def welch(xa: Sequence[float], xb: Sequence[float]) -> dict[str, Any]:
    """Unpaired: Welch's t-test, its interval of the difference of means, Hedges' g."""
    na, nb = len(xa), len(xb)
    out: dict[str, Any] = {"paired": False, "test": "Welch t-test (unpaired)", "n": min(na, nb),
                           "n_a": na, "n_b": nb, "diff": None, "ci_low": None, "ci_high": None,
                           "p": None, "effect": None, "effect_name": "g"}
    if na < 2 or nb < 2:
        if na and nb:
            out["diff"] = statistics.fmean(xa) - statistics.fmean(xb)
        return out
    from scipy import stats

    ma, mb = statistics.fmean(xa), statistics.fmean(xb)
    va, vb = statistics.variance(xa), statistics.variance(xb)
    se2 = va / na + vb / nb
    diff = ma - mb
    if se2 == 0:
        out.update(diff=diff, ci_low=diff, ci_high=diff, p=0.0 if diff else 1.0)
        return out
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = _t(df) * math.sqrt(se2)
    p = float(stats.ttest_ind(xa, xb, equal_var=False).pvalue)
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    g = diff / pooled * (1 - 3 / (4 * (na + nb) - 9)) if pooled else math.inf
    out.update(diff=diff, ci_low=diff - half, ci_high=diff + half, p=p, effect=g)
    return out


SUPPORTED, NOT_SUPPORTED, CONTRADICTED, UNTESTED = (
    "supported", "not supported", "contradicted", "untested (n < 2)")


def verdict(lo: float | None, hi: float | None, direction: str, tolerance: float = 0.0) -> str:
    """A claim about a difference (or a value minus its threshold) from its interval.

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


def against_published(xs: Sequence[float], published: float) -> dict[str, Any]:
    """Our runs against a published mean of as many runs whose spread was not published.

    Assuming the published runs had our sd and our n, the difference of the two means has
    standard error s·√(2/n); they agree when the difference lies within t₀.₉₇₅,ₙ₋₁ of it
    (Welch's interval with equal variances and sizes).
    """
    sm = summary(xs)
    out = {**sm, "published": float(published), "diff": None, "half": None, "verdict": UNTESTED}
    if sm["mean"] is None:
        return out
    out["diff"] = sm["mean"] - published
    if sm["sd"] is None:
        return out
    half = _t(sm["n"] - 1) * sm["sd"] * math.sqrt(2 / sm["n"])
    out["half"] = half
    out["verdict"] = ("agrees" if abs(out["diff"]) <= half else
                      "ours higher" if out["diff"] > 0 else "ours lower")
    return out
