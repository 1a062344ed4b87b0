"""Issue 34 B: numbers inside their range, caveats where they matter.

Each test checks the report's number against an independent computation (scipy,
statsmodels, a hand count) and, for the intervals, their coverage by simulation with fixed
seeds: an accuracy's interval never beyond 100 %, 40 of 40 right never [100, 100],
P(A > B) never [0.00, 0.00], plan-seeds from two seeds says how uncertain the sd is, a
TOST's exact floor is the one its note states, McNemar counts seeds by the side they favour,
`~` claims carry no "detectable at n", a published effect of another protocol plans
nothing, and an error report says its claims speak of accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from sharpen.cli import main
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports.claims import Runs, judge_family, load_runs
from sharpen.reports.evaluation import image_level_section, robust_section
from sharpen.reports.stats import (
    bootstrap_ci,
    clip_interval,
    prob_improvement,
    prob_improvement_ci,
    sd_upper,
    two_level_bootstrap,
)
from sharpen.reports.tables import table_rows


def _run_dir(root: Path, acc: dict[str, list[float]], claims: list[dict[str, Any]],
             **cfg: Any) -> Path:
    """A finished run directory with the given per-seed test accuracies (no training)."""
    arms = {a: {"dataset": "synthetic", "epochs": 1, "val_size": 0} for a in acc}
    atomic_write_json(root / "config.json", {
        "name": "in-range", "profile": "", "runs": len(next(iter(acc.values()))), "seed": 0,
        "arms": arms, "claims": claims, "arm_order": list(acc), **cfg})
    for a, xs in acc.items():
        for s, t in enumerate(xs):
            d = root / "runs" / a / f"seed-{s}"
            rows = [{"epoch": 1, "train_loss": 0.1, "train_acc": 0.99, "test_acc": t,
                     "test_loss": 0.2, "gap": 0.99 - t}]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": a, "seed": s, "status": "ok",
                                                   "test_acc": t, "epochs_done": 1,
                                                   "seconds": 1.0})
    return root


# --- intervals inside [0, 100 %] -----------------------------------------------------------

def test_an_accuracy_interval_is_cut_at_100_and_keeps_the_t_intervals_coverage(tmp_path):
    """"95.83 [82.91, 108.76]": the t interval over three seeds near 100 % ran past it.
    The table's interval is the t interval (scipy) cut to [0, 1]; cut, it covers the true
    mean exactly as often as uncut (simulated), and no end lies beyond 100 %."""
    xs = [0.999, 0.995, 0.88]
    lo, hi = st.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=st.sem(xs))
    assert hi > 1  # the uncut interval ran past 100 %
    runs = Runs(values={"a": {s: {"test_acc": x} for s, x in enumerate(xs)}})
    (row,) = table_rows([{"arm": "a", "status": "ok"}] * 3, ["a"], runs)
    assert row["test_acc_ci_high"] == 1.0 and row["test_acc_ci_low"] == pytest.approx(lo)
    # through the CLI: report.md and table.csv print 100.00, never 108-something
    d = _run_dir(tmp_path / "d", {"a": xs, "b": [0.97, 0.96, 0.98]}, [])
    assert main(["report", str(d)]) == 0
    line = next(x for x in (d / "report.md").read_text().splitlines() if x.startswith("| a |"))
    assert f"[{100 * lo:.2f}, 100.00]" in line, line
    # coverage by simulation: per-seed accuracies near 100 % (a binomial over 300 images)
    rng = np.random.default_rng(3)
    p, n, reps = 0.985, 3, 4000
    sims = rng.binomial(300, p, size=(reps, n)) / 300
    m, se = sims.mean(1), sims.std(1, ddof=1) / math.sqrt(n)
    half = st.t.ppf(0.975, n - 1) * se
    cut = [clip_interval(a - h, a + h) for a, h in zip(m, half)]
    cover_cut = np.mean([lo_ <= p <= hi_ for lo_, hi_ in cut])
    cover_t = np.mean((m - half <= p) & (p <= m + half))
    assert cover_cut == cover_t and cover_cut > 0.93
    assert max(h for _, h in cut) <= 1.0 and (m + half).max() > 1.0


def test_a_difference_interval_is_cut_at_the_metrics_range_and_mde_beyond_it_said(tmp_path,
                                                                                   capsys):
    """After cut files left n = 2 a claim read "[-106.28 pp, +128.78 pp]" and "detectable at
    n 130.81 pp": two accuracies differ by at most 100 pp. The difference's interval is the
    t interval (scipy) cut to ±100 pp in the Claims table, the paired table and `sharpen
    compare`; a detectable effect past 100 pp (statsmodels) says it lies beyond the range."""
    acc = {"a": [0.95, 0.55], "b": [0.60, 0.50]}
    claim = {"claim": "a beats b", "arm": "a", "op": ">", "than": "b"}
    d = _run_dir(tmp_path / "d", acc, [claim])
    diffs = np.subtract(acc["a"], acc["b"])
    lo, hi = st.t.interval(0.95, 1, loc=diffs.mean(), scale=st.sem(diffs))
    assert lo < -1 and hi > 1  # the uncut interval ran past ±100 pp on both sides
    mde = TTestPower().solve_power(nobs=2, alpha=0.05, power=0.8) * diffs.std(ddof=1)
    assert mde > 1
    assert main(["report", str(d)]) == 0
    report = (d / "report.md").read_text()
    claims = report.split("## Claims", 1)[1]
    row = next(x for x in claims.splitlines() if x.startswith("| a beats b"))
    assert "a − b: +20.00 pp [-100.00 pp, +100.00 pp]" in row, row
    assert "| beyond the metric's range |" in row, row
    paired = report.split("## Paired comparisons", 1)[1]
    row = next(x for x in paired.splitlines() if x.startswith("| b |"))  # b − a
    assert "| [-100.00 pp, +100.00 pp] |" in row, row
    capsys.readouterr()
    assert main(["compare", str(d)]) == 0
    assert "[-100.00 pp, +100.00 pp]" in capsys.readouterr().out
    # within the range the interval is scipy's, uncut
    d2 = _run_dir(tmp_path / "d2", {"a": [0.95, 0.93, 0.96], "b": [0.90, 0.91, 0.90]},
                  [claim])
    diffs = np.subtract([0.95, 0.93, 0.96], [0.90, 0.91, 0.90])
    lo, hi = st.t.interval(0.95, 2, loc=diffs.mean(), scale=st.sem(diffs))
    assert main(["report", str(d2)]) == 0
    assert f"[{100 * lo:+.2f} pp, {100 * hi:+.2f} pp]" in (d2 / "report.md").read_text()


def test_forty_of_forty_right_is_a_wilson_interval_not_100_100():
    """Every seed right on all 40 test images printed "[100.00, 100.00]". The image-level
    interval is never narrower than the Wilson interval of the 40 images (statsmodels
    ``proportion_confint``), and its coverage over simulated test sets holds."""
    est, lo, hi = two_level_bootstrap(np.ones((3, 40)))
    wlo, whi = proportion_confint(40, 40, alpha=0.05, method="wilson")
    assert est == 1.0 and lo == pytest.approx(wlo) and hi == pytest.approx(whi) == 1.0
    assert 0.90 < lo < 0.92
    # a usual case: the floor does not get in the way of a wider bootstrap interval
    rng = np.random.default_rng(0)
    c = rng.random((5, 200)) < 0.8
    _, lo2, hi2 = two_level_bootstrap(c)
    wlo2, whi2 = proportion_confint(c.sum(), c.size, method="wilson")
    assert lo2 <= wlo2 and hi2 >= whi2 and 0 <= lo2 < hi2 <= 1
    # coverage: 40 images i.i.d. right with chance 0.97, every seed alike (a trained model
    # repeats its answers): the old interval was [1, 1] whenever all 40 were right (30 %)
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(400):
        row = rng.random(40) < 0.97
        _, lo_, hi_ = two_level_bootstrap(np.tile(row, (3, 1)), n_boot=200)
        hits += lo_ <= 0.97 <= hi_
    assert hits / 400 >= 0.93


REPS = 60


def test_p_a_beats_b_is_never_0_00_to_0_00(tmp_path):
    """Every run of A below every run of B printed `P(A > B) 0.00 [0.00, 0.00]`. The
    interval has a Wilson floor over min(n_a, n_b) comparisons (statsmodels), and covers
    the true chance in simulation where the bootstrap alone does not."""
    a, b = [0.90, 0.91, 0.92], [0.95, 0.96, 0.97]
    lo, hi = prob_improvement_ci(a, b)
    wlo, whi = proportion_confint(0, 3, alpha=0.05, method="wilson")
    assert prob_improvement(a, b) == 0 and lo == 0 and hi == pytest.approx(whi) and hi > 0.5
    runs = Runs(values={"a": {s: {"test_acc": x} for s, x in enumerate(a)},
                        "b": {s: {"test_acc": x} for s, x in enumerate(b)}})
    text = robust_section(runs, ["b", "a"], "b")
    assert "0.00 [0.00, 0.00]" not in text and f"0.00 [0.00, {whi:.2f}]" in text
    # coverage: A ~ N(0, 1), B ~ N(2.5, 1): P(A > B) = Φ(−2.5/√2) ≈ 0.039, 5 runs each
    truth = float(st.norm.cdf(-2.5 / math.sqrt(2)))
    rng = np.random.default_rng(5)
    hits = boot_hits = 0
    for _ in range(REPS):
        xa, xb = rng.normal(0, 1, 5), rng.normal(2.5, 1, 5)
        lo_, hi_ = prob_improvement_ci(xa, xb, n_boot=200)
        hits += lo_ <= truth <= hi_
        blo, bhi = bootstrap_ci(prob_improvement, [xa, xb], n_boot=200)  # alone: contrast
        boot_hits += blo is not None and blo <= truth <= bhi
    assert hits / REPS >= 0.93 and boot_hits / REPS < 0.85


# --- plan-seeds -----------------------------------------------------------------------------

def test_plan_seeds_from_two_seeds_says_the_sds_upper_limit_and_the_n_it_needs(tmp_path, capsys):
    """"4 seeds needed" from an sd estimated on n = 2, without a word. Beside the sd its
    95 % upper limit (scipy χ²) and the n that limit needs (statsmodels TTestPower)."""
    acc = {"a": [0.950, 0.962], "b": [0.930, 0.934]}
    claim = {"claim": "a beats b", "arm": "a", "op": ">", "than": "b", "effect": "2 pp"}
    d = _run_dir(tmp_path / "d", acc, [claim])
    assert main(["plan-seeds", str(d)]) == 0
    out = capsys.readouterr().out
    sd = float(np.std(np.subtract(acc["a"], acc["b"]), ddof=1))
    up = sd * math.sqrt(1 / st.chi2.ppf(0.05, 1))
    assert up / sd == pytest.approx(15.95, abs=0.01)

    def n_for(s: float) -> int:
        return math.ceil(TTestPower().solve_power(effect_size=0.02 / s, alpha=0.05, power=0.8))

    row = (f"| a beats b | 2 | {100 * sd:.2f} pp ({100 * up:.2f} pp) | ")
    assert row in out, out
    assert f"| +2.00 pp | {n_for(sd)} ({n_for(up)}) |" in out, out
    assert "16 times the sd" in out
    assert sd_upper(sd, 2) == pytest.approx(up)


@pytest.mark.parametrize("power", ["1.5", "0.01", "80", "1"])
def test_plan_seeds_power_outside_half_to_one_is_a_clear_error(power, capsys):
    """`--power 1.5` printed "power 150 %", `--power 0.01` a traceback."""
    rc = main(["plan-seeds", "--effect", "1 pp", "--sd", "1 pp", "--power", power])
    err = capsys.readouterr()
    assert rc != 0 and "Traceback" not in err.err + err.out
    assert f"--power {float(power):g}" in err.err and "from 0.5 up to" in err.err
    assert "150" not in err.out


# --- claims: TOST's floor, `~` columns, protocols, error reports -----------------------------

def test_a_tost_without_spread_states_the_floor_its_exact_p_has():
    """"exact p = 0.125" beside "cannot go below 0.25 at n = 3": TOST's exact p is the
    larger of two one-sided sign-flip p's, whose floor is 1/2ⁿ (hand count), so the note
    was wrong: it says 0.125, and the claim decides from n = 5 (1/32 < 0.05), as it does."""
    claim = {"claim": "a ~ b", "arm": "a", "op": "~", "than": "b", "tolerance": "1 pp"}

    def runs(n: int) -> Runs:
        return Runs(values={"a": {s: {"test_acc": 0.9 + 0.001} for s in range(n)},
                            "b": {s: {"test_acc": 0.9} for s in range(n)}})

    (r,) = judge_family([claim], runs(3), sensitivity=False)
    assert "exact p = 0.125" in r.estimate and str(r.verdict) == "undecidable at n = 3"
    assert any("cannot go below p = 0.125 at n = 3; it could decide from n = 5" in x
               for x in r.notes), r.notes
    assert 1 / 2**5 < 0.05 <= 1 / 2**4  # the hand count of the n it names
    (r5,) = judge_family([claim], runs(5), sensitivity=False)
    assert r5.p == pytest.approx(1 / 32) and str(r5.verdict) == "supported"


def _predictions(root: Path, arm: str, seed: int, label: np.ndarray, right: np.ndarray) -> float:
    """A run's predictions.npz: right where ``right``, a wrong class elsewhere; its accuracy."""
    d = root / "runs" / arm / f"seed-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "predictions.npz", test_pred=np.where(right, label, (label + 1) % 10),
             test_label=label)
    return float(right.mean())


def test_mcnemar_counts_seeds_by_the_side_they_favour(tmp_path):
    """"McNemar p < 0.05 on 7 seeds" counted a seed that favoured the other arm."""
    rng = np.random.default_rng(2)
    m, favour = 400, [+1, +1, +1, -1]  # seed 3 is significant for the baseline
    label = rng.integers(0, 10, m)
    acc: dict[str, list[float]] = {"a": [], "b": []}
    for s, f in enumerate(favour):
        b_right = rng.random(m) < 0.8
        a_right = b_right.copy()
        flip = rng.choice(m, 60, replace=False)
        a_right[flip] = (f > 0)  # 60 images turned right (f > 0) or wrong for arm a
        for arm, right in (("a", a_right), ("b", b_right)):
            acc[arm].append(_predictions(tmp_path, arm, s, label, right))
    _run_dir(tmp_path, acc, [])
    text = image_level_section(tmp_path, load_runs(tmp_path), ["b", "a"], "b")
    # independent: statsmodels' exact McNemar per seed, counted by side
    up = down = 0
    for s in range(len(favour)):
        ra = np.load(tmp_path / "runs" / "a" / f"seed-{s}" / "predictions.npz")
        rb = np.load(tmp_path / "runs" / "b" / f"seed-{s}" / "predictions.npz")
        ar, br = ra["test_pred"] == ra["test_label"], rb["test_pred"] == rb["test_label"]
        n10, n01 = int((ar & ~br).sum()), int((~ar & br).sum())
        p = sm_mcnemar([[0, n10], [n01, 0]], exact=True).pvalue
        up += p < 0.05 and n10 > n01
        down += p < 0.05 and n10 < n01
    assert (up, down) == (3, 1)
    assert "arm better / b better" in text and "| 3 / 1 of 4 |" in text, text


def test_seeds_tested_on_images_of_their_own_get_no_image_bootstrap(tmp_path):
    """Digit pairs that follow the seed: image i of seed 0 is not image i of seed 1, so a
    bootstrap of the image columns "shared by all seeds" resampled nothing real. The seed
    interval already covers the test set then; McNemar still pairs an arm with the
    baseline on each seed (both drew that seed's pairs)."""
    rng = np.random.default_rng(5)
    m = 300
    acc: dict[str, list[float]] = {"a": [], "b": []}
    for s in range(4):
        label = rng.integers(0, 10, m)  # this seed's own test pairs
        for arm, p_right in (("a", 0.85), ("b", 0.8)):
            acc[arm].append(_predictions(tmp_path, arm, s, label, rng.random(m) < p_right))
    _run_dir(tmp_path, acc, [])
    text = image_level_section(tmp_path, load_runs(tmp_path), ["b", "a"], "b")
    assert "Each seed of b, a is tested on images of its own" in text
    assert "Where every seed is tested on the same images" not in text
    assert text.count("– (each seed its own images)") == 2
    assert "| a | 4 |" in text and "of 4 |" in text  # McNemar over the 4 shared seeds
    # one seed whose baseline saw other images: not paired on it
    d = tmp_path / "runs" / "b" / "seed-3"
    z = dict(np.load(d / "predictions.npz"))
    np.savez(d / "predictions.npz", test_pred=z["test_pred"], test_label=(z["test_label"] + 1) % 10)
    text = image_level_section(tmp_path, load_runs(tmp_path), ["b", "a"], "b")
    assert "of 3 |" in text and "of 4 |" not in text


def _claims_report(tmp_path: Path, **cfg: Any) -> list[str]:
    rng = np.random.default_rng(4)
    base = 0.9 + rng.normal(0, 0.004, 6)
    acc = {"a": [float(x) for x in base + 0.01 + rng.normal(0, 0.003, 6)],
           "b": [float(x) for x in base + rng.normal(0, 0.003, 6)]}
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"},
              {"claim": "a matches b", "arm": "a", "op": "~", "than": "b",
               "tolerance": "2 pp"},
              {"claim": "a has the lowest test error", "arm": "a", "op": "best"}]
    d = _run_dir(tmp_path / "d", acc, claims,
                 published={"a": {"test_acc": 0.95}, "b": {"test_acc": 0.93}}, **cfg)
    assert main(["report", str(d)]) == 0
    md = (d / "report.md").read_text().split("## Claims", 1)[1]
    return [x for x in md.splitlines() if x.startswith("| a ")][:3]  # the claims table's


def test_claims_rows_say_only_what_their_numbers_support(tmp_path):
    """`~` claims carry no "detectable at n"; the paper's effect plans an n (statsmodels)
    where its protocol is ours, and is "not comparable" where it is not."""
    beats, matches, lowest = _claims_report(tmp_path / "same")
    cols = [c.strip() for c in matches.split("|")[1:-1]]
    assert cols[8] == cols[9] == "– (`~`: not a difference to detect)", cols
    cols = [c.strip() for c in beats.split("|")[1:-1]]
    assert cols[9].endswith("for +2.00 pp") and cols[9].split()[0].isdigit(), cols
    assert not lowest.split("|")[3].strip().startswith("in test accuracy")  # an acc report
    beats, _, _ = _claims_report(tmp_path / "other", published_protocol={"dataset": "mnist"})
    cols = [c.strip() for c in beats.split("|")[1:-1]]
    assert cols[9] == ("not comparable: the paper's +2.00 pp is of another protocol "
                       "(dataset synthetic here, mnist in the paper)"), cols


def test_an_error_report_says_its_claims_speak_of_accuracy(tmp_path):
    """"lowest test error" stated as "+1.38 pp": in an error report the claim's number is
    accuracy, where + is a lower error; the row says so."""
    _, _, lowest = _claims_report(tmp_path, report_error=True)
    ours = lowest.split("|")[3].strip()
    assert ours.startswith("in test accuracy, where + is a lower error: a − b (closest "
                           "rival): +"), ours
