"""A `~` claim is an equivalence question however its runs pair (issue 32, item 3): arms of
different protocols (here different epochs) do not pair, and their claim is judged by two
one-sided Welch tests (TOST), never by a Welch *difference* test. Checked through
``sharpen report`` on a constructed run directory, against statsmodels / scipy, and by
simulation at the margin (fixed seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sharpen.cli import main
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports.claims import Runs, judge_family
from sharpen.reports.sequential import decide
from sharpen.reports.stats import welch_tost


def _rundir(root: Path, arms: dict[str, tuple[int, list[float]]], claims: list[dict]) -> Path:
    """A run directory whose arms ({arm: (epochs, final test accuracies)}) ran for the
    given epochs: arms of different epochs are different protocols."""
    cfg = {"name": "made", "profile": "", "runs": 5, "seed": 0, "claims": claims,
           "arms": {a: {"dataset": "synthetic", "epochs": ep} for a, (ep, _) in arms.items()}}
    atomic_write_json(root / "config.json", cfg)
    for arm, (ep, accs) in arms.items():
        for seed, acc in enumerate(accs):
            d = root / "runs" / arm / f"seed-{seed}"
            rows = [{"epoch": e, "train_loss": 0.1, "train_acc": 0.99, "test_acc": acc,
                     "test_loss": 0.2, "gap": 0.01} for e in range(1, ep + 1)]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": arm, "seed": seed, "status": "ok",
                                                  "test_acc": acc, "epochs_done": ep})
    return root


# the case: +3.00 pp [+1.06, +4.94] (95 %, Welch) was "supported" for "within 4 pp"
LONG = [0.9321, 0.9092, 0.9245, 0.9474, 0.9168]
SHORT = [0.9021, 0.8792, 0.9098, 0.8945, 0.8945]
CLAIM = {"claim": "20 epochs are as good as 10 within 4 pp", "arm": "long", "op": "~",
         "than": "short", "metric": "test_acc", "tolerance": 0.04}


def test_an_unpaired_equivalence_claim_is_judged_by_welch_tost_through_the_cli(tmp_path, capsys):
    d = _rundir(tmp_path / "e", {"short": (10, SHORT), "long": (20, LONG)}, [CLAIM])
    welch = stats.ttest_ind(LONG, SHORT, equal_var=False)
    lo, hi = welch.confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((0.0106, 0.0494), abs=5e-4)  # the numbers
    assert welch.pvalue < 0.05  # the difference test "decided" it
    assert main(["report", str(d)]) == 0
    capsys.readouterr()
    md = (d / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith(f"| {CLAIM['claim']} |"))
    # the 90 % Welch interval [+1.44, +4.55] reaches past +4 pp: equivalence not shown
    assert "**not supported**" in row and "TOST (Welch, unpaired)" in row
    assert "90 % (TOST, ± 4.00 pp)" in row and "unpaired (different protocols)" in row
    from statsmodels.stats.weightstats import ttost_ind

    p_ref = float(ttost_ind(np.array(LONG), np.array(SHORT), -0.04, 0.04, usevar="unequal")[0])
    assert f"| {p_ref:.2g} / – |" in row  # the claim's p is the TOST p, no exact test


def test_welch_tost_against_statsmodels_and_scipy():
    from statsmodels.stats.weightstats import ttost_ind

    rng = np.random.default_rng(3)
    for _ in range(20):
        na, nb = rng.integers(2, 12, 2)
        a, b = rng.normal(0.9, 0.01, na), rng.normal(0.9, rng.uniform(0.002, 0.03), nb)
        tol = float(rng.uniform(0.002, 0.03))
        e = welch_tost(a, b, tol)
        assert e.p == pytest.approx(float(ttost_ind(a, b, -tol, tol, usevar="unequal")[0]))
        # each side is a one-sided Welch test (scipy), the interval Welch's 90 % one
        up = stats.ttest_ind(a + tol, b, equal_var=False, alternative="greater").pvalue
        down = stats.ttest_ind(a - tol, b, equal_var=False, alternative="less").pvalue
        assert e.p == pytest.approx(max(up, down))
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
        assert (e.ci_low, e.ci_high) == pytest.approx((ci.low, ci.high))
        side = "greater" if e.diff >= 0 else "less"
        shift = -tol if e.diff >= 0 else tol
        beyond = stats.ttest_ind(a + shift, b, equal_var=False, alternative=side).pvalue
        assert e.p_beyond == pytest.approx(min(1.0, 2 * beyond))  # side from the data
    # no spread in either arm: no test; one run in an arm: none either
    assert welch_tost([0.9, 0.9], [0.91, 0.91], 0.02).p is None
    assert welch_tost([0.9], [0.91, 0.92], 0.02).p is None


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_unpaired_tost_type_one_error_at_the_margin_is_at_most_its_level(n):
    """True difference exactly at the margin (+tol or −tol), equal spreads or one arm twice
    as noisy: "supported" is the false verdict. The two one-sided Welch tests computed for
    20,000 data sets at once; the first 200 also through judge_family (a family of one, Holm
    at 5 %), whose verdict must be that test's."""
    rng = np.random.default_rng(100 + n)
    reps, tol = 20_000, 0.05
    sd_b = np.where(np.arange(reps) % 2, 0.01, 0.02)[:, None]
    sign = np.where(np.arange(reps) % 4 < 2, 1.0, -1.0)[:, None]
    a = rng.normal(0.9 + sign * tol, 0.01, (reps, n))
    b = 0.9 + rng.normal(0.0, 1.0, (reps, n)) * sd_b
    ua, ub = a.var(1, ddof=1) / n, b.var(1, ddof=1) / n
    se, df = np.sqrt(ua + ub), (ua + ub) ** 2 / ((ua**2 + ub**2) / (n - 1))
    diff = a.mean(1) - b.mean(1)
    p = np.maximum(stats.t.sf((diff + tol) / se, df), stats.t.cdf((diff - tol) / se, df))
    false = (p < 0.05) & (np.abs(diff) <= tol)
    for i in range(200):
        assert welch_tost(a[i], b[i], tol).p == pytest.approx(p[i])
        runs = Runs(values={"a": {s: {"test_acc": float(x)} for s, x in enumerate(a[i])},
                            "b": {s: {"test_acc": float(x)} for s, x in enumerate(b[i])}},
                    protocol={"a": "p1", "b": "p2"})
        (r,) = judge_family([{**CLAIM, "arm": "a", "than": "b", "tolerance": tol}], runs,
                            sensitivity=False)
        assert (str(r.verdict) == "supported") == bool(false[i])
    assert false.mean() <= 0.05
    assert false.mean() > 0.01 if n >= 5 else True  # a test, not a refusal to decide


def test_the_sequential_design_reads_the_unpaired_tost_p():
    """A look decides a `~` claim on its p: unpaired, that is now Welch's TOST p, so a
    difference test's small p can no longer end a look as "supported"."""
    runs = Runs(values={"long": {s: {"test_acc": x} for s, x in enumerate(LONG)},
                        "short": {s: {"test_acc": x} for s, x in enumerate(SHORT)}},
                protocol={"long": "p20", "short": "p10"})
    from sharpen.reports.claims import _prejudge

    r, _ = _prejudge(CLAIM, runs)
    assert r.p == pytest.approx(welch_tost(LONG, SHORT, 0.04).p)
    assert decide(r.p, r.direction, "~", 0.05) is None  # open, not "supported"
    # far inside the margin it is decided equivalent; far outside, contradicted
    near = [x - 0.03 for x in LONG]
    r2, _ = _prejudge(CLAIM, Runs(values={"long": {s: {"test_acc": x} for s, x in
                                                   enumerate(near)},
                                          "short": runs.values["short"]},
                                  protocol=runs.protocol))
    assert r2.test == "TOST (Welch, unpaired)" and decide(r2.p, r2.direction, "~", 0.05) \
        == "supported"
    far = [x + 0.05 for x in LONG]
    r3, _ = _prejudge(CLAIM, Runs(values={"long": {s: {"test_acc": x} for s, x in
                                                   enumerate(far)},
                                          "short": runs.values["short"]},
                                  protocol=runs.protocol))
    assert r3.test.startswith("Welch t beyond the margin, one-sided × 2") and r3.direction == -1
    assert decide(r3.p, r3.direction, "~", 0.05) == "contradicted"
    assert math.isclose(r3.p, welch_tost(far, SHORT, 0.04).p_beyond)
