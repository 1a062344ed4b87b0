"""Verdicts a statistician would sign: the exact sign-flip test, Holm families, TOST,
power, the four-outcome published agreement, the two-level bootstrap, McNemar and the
rliable-style summaries — each against scipy/statsmodels or an enumeration written here,
and by simulation (fixed seeds) for its error rate or coverage; then the degenerate run
directories a report must word honestly.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sharpen import SharpenError
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.metrics import get_metric, parse_amount
from sharpen.reports import write_report
from sharpen.reports.claims import Runs, claims_table, judge_family, load_runs
from sharpen.reports.compare import compare_dirs
from sharpen.reports.stats import (
    bootstrap_ci,
    exact_decides_from,
    holm,
    iqm,
    mcnemar,
    min_detectable,
    min_sign_flip_p,
    prob_improvement,
    seeds_needed,
    sign_flip,
    tost,
    two_level_bootstrap,
)

# --- the exact sign-flip test --------------------------------------------------------------------


def _enumerate(d: list[float], alternative: str) -> float:
    """The sign-flip p by listing every sign pattern (itertools), independent of the code."""
    obs = sum(d)
    hits = 0
    pats = list(itertools.product((1, -1), repeat=len(d)))
    for signs in pats:
        s = sum(x * g for x, g in zip(d, signs))
        if alternative == "greater":
            hits += s >= obs - 1e-12
        elif alternative == "less":
            hits += s <= obs + 1e-12
        else:
            hits += abs(s) >= abs(obs) - 1e-12
    return hits / len(pats)


@pytest.mark.parametrize("d", [
    [0.01, 0.02, -0.005, 0.03, 0.015, 0.004],
    [0.3, -0.1, 0.2],
    [0.01] * 5,
    [0.02, -0.02, 0.01, -0.01, 0.0, 0.005, -0.003],
    [-0.4, -0.1, -0.25, 0.05, -0.3, -0.2, -0.15, -0.05, -0.12, 0.01],
])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sign_flip_is_the_exact_enumeration_and_scipys_permutation_test(d, alternative):
    p = sign_flip(d, alternative)
    assert p == pytest.approx(_enumerate(d, alternative), abs=1e-12)
    ref = stats.permutation_test((np.array(d),), lambda x, axis=-1: x.mean(axis=axis),
                                 permutation_type="samples", n_resamples=np.inf,
                                 alternative=alternative)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)


def test_sign_flip_smallest_p_and_the_n_it_needs():
    # n = 5 identical positive differences: 2 of 32 patterns are as extreme
    assert sign_flip([0.01] * 5) == 0.0625 == min_sign_flip_p(5)
    assert min_sign_flip_p(3) == 0.25 and min_sign_flip_p(3, "greater") == 0.125
    assert exact_decides_from(0.05) == 6 and exact_decides_from(0.05 / 8) == 9
    assert min_sign_flip_p(exact_decides_from(0.01)) <= 0.01 < min_sign_flip_p(
        exact_decides_from(0.01) - 1)
    # above 20 differences, a Monte Carlo; with equal |d| the sum is c·(2K − n) with
    # K ~ Binomial(n, ½), so the exact p is a binomial tail (scipy)
    d = [1.0] * 15 + [-1.0] * 6
    exact = stats.binom.cdf(6, 21, 0.5) + stats.binom.sf(14, 21, 0.5)
    assert sign_flip(d) == pytest.approx(exact, abs=0.004)
    assert sign_flip(d, "greater") == pytest.approx(stats.binom.sf(14, 21, 0.5), abs=0.003)


def test_sign_flip_type_one_error_is_at_most_its_level():
    rng = np.random.default_rng(0)
    for n in (6, 10):
        rejections = sum(sign_flip(list(rng.normal(0, 1, n))) <= 0.05 for _ in range(2000))
        # exact: the rejection rate is ≤ 5 % up to Monte Carlo noise (3 sd of 2,000 draws)
        assert rejections / 2000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000), n


# --- Holm, TOST, power -------------------------------------------------------------------------


def _holm_by_hand(ps: list[float]) -> list[float]:
    order = sorted(range(len(ps)), key=ps.__getitem__)
    m, out, run = len(ps), [0.0] * len(ps), 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (m - k) * ps[i]))
        out[i] = run
    return out


def test_holm_is_the_step_down_by_hand_and_statsmodels_and_skips_missing():
    from statsmodels.stats.multitest import multipletests

    ps = [0.0106, 0.041, 0.3, 0.002, 0.049]
    assert holm(ps) == pytest.approx(_holm_by_hand(ps))
    rng = np.random.default_rng(4)
    for m in (1, 2, 3, 8, 20):
        for _ in range(2):
            ps = list(rng.uniform(0, 0.2, m) ** 2)
            ps[0] = ps[-1]  # ties
            assert holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]), abs=1e-15)
    assert holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])
    # the two README verdicts the audit named: 0.0106 of 5 claims → 0.053; 0.041 → 0.21
    assert holm([0.0106, 0.2, 0.3, 0.4, 0.5])[0] == pytest.approx(0.053)


def test_tost_against_two_one_sided_t_tests_by_scipy():
    d = [0.002, -0.004, 0.006, 0.001, -0.002, 0.003]
    e = tost(d, 0.01)
    lo = stats.ttest_1samp([x + 0.01 for x in d], 0, alternative="greater").pvalue
    hi = stats.ttest_1samp([x - 0.01 for x in d], 0, alternative="less").pvalue
    assert e.p == pytest.approx(max(lo, hi))
    ci = stats.t.interval(0.90, 5, loc=np.mean(d), scale=stats.sem(d))
    assert (e.ci_low, e.ci_high) == pytest.approx(ci)
    assert e.p_exact == pytest.approx(max(_enumerate([x + 0.01 for x in d], "greater"),
                                          _enumerate([x - 0.01 for x in d], "less")))


def test_power_against_the_noncentral_t_by_hand():
    # power of a two-sided paired t-test: P(|T| > t_crit) with T ~ nct(n − 1, d_z √n)
    def power(dz: float, n: int, alpha: float) -> float:
        tc = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = dz * math.sqrt(n)
        return stats.nct.sf(tc, n - 1, nc) + stats.nct.cdf(-tc, n - 1, nc)

    mde = min_detectable(10, 0.004, 0.05 / 5)
    assert power(mde / 0.004, 10, 0.01) == pytest.approx(0.8, abs=1e-4)
    n = seeds_needed(0.005, 0.004, 0.01)
    assert power(0.005 / 0.004, n, 0.01) >= 0.8 > power(0.005 / 0.004, n - 1, 0.01)
    assert seeds_needed(0.005, None) is None and min_detectable(1, 0.01) is None


# --- a family of claims by simulation -------------------------------------------------------------


@pytest.mark.slow
def test_a_report_of_8_true_null_claims_keeps_its_family_wise_error_at_5_percent():
    rng = np.random.default_rng(1)
    claims = [{"claim": f"c{k}", "arm": f"a{k}", "op": ">" if k % 2 else "<", "than": "base"}
              for k in range(8)]
    any_false, any_false_unadjusted = 0, 0
    reports = 2000
    for _ in range(reports):
        seed_effect = rng.normal(0.9, 0.01, 5)  # shared by every arm: pairing removes it
        values = {"base": {s: {"test_acc": seed_effect[s] + rng.normal(0, 0.005)}
                           for s in range(5)}}
        for k in range(8):
            values[f"a{k}"] = {s: {"test_acc": seed_effect[s] + rng.normal(0, 0.005)}
                               for s in range(5)}
        res = judge_family(claims, Runs(values=values), sensitivity=False)
        any_false += any(str(r.verdict) == "supported" for r in res)
        any_false_unadjusted += any(r.p is not None and r.p < 0.05 and r.direction > 0
                                    for r in res)
    assert any_false / reports <= 0.05
    assert any_false_unadjusted / reports > 0.1  # what the report did before: no control


# --- published agreement, bootstrap, McNemar, robust ---------------------------------------------


def test_two_level_bootstrap_covers_a_known_truth():
    from scipy.special import expit

    rng = np.random.default_rng(7)
    truth = float(np.mean(expit(rng.normal(2, 1.5, 400_000)[:, None]
                                + rng.normal(0, 0.3, 200)[None, :200]).mean(0)))
    hits, trials = 0, 300
    for t in range(trials):
        z, u = rng.normal(2, 1.5, 500), rng.normal(0, 0.3, 5)
        c = rng.random((5, 500)) < expit(z[None, :] + u[:, None])
        est, lo, hi = two_level_bootstrap(c, n_boot=300, seed=t)
        hits += lo <= truth <= hi
    assert hits / trials >= 0.93
    # the seed-only t interval misses the shared images' noise: it covers much less
    seed_only = 0
    for _ in range(trials):
        z, u = rng.normal(2, 1.5, 500), rng.normal(0, 0.3, 5)
        acc = (rng.random((5, 500)) < expit(z[None, :] + u[:, None])).mean(1)
        lo, hi = stats.t.interval(0.95, 4, loc=acc.mean(), scale=stats.sem(acc))
        seed_only += lo <= truth <= hi
    assert seed_only / trials < hits / trials


def test_two_level_bootstrap_image_part_is_the_binomial_se_when_seeds_agree():
    rng = np.random.default_rng(11)  # not the bootstrap's own seed 0: its draws would align
    row = rng.random(2000) < 0.8
    c = np.stack([row] * 4)  # four identical seeds: only the images vary
    est, lo, hi = two_level_bootstrap(c, n_boot=4000)
    se = math.sqrt(est * (1 - est) / 2000)
    assert (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.08)


def test_mcnemar_per_seed_is_statsmodels_exact_and_pooled_is_mantel_haenszel():
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    rng = np.random.default_rng(2)
    a, b = rng.random((3, 400)) < 0.9, rng.random((3, 400)) < 0.85
    r = mcnemar(a, b)
    for k, row in enumerate(r["per_seed"]):
        n10, n01 = int((a[k] & ~b[k]).sum()), int((~a[k] & b[k]).sum())
        assert (row["b"], row["c"]) == (n10, n01)
        assert row["p"] == pytest.approx(stats.binomtest(n10, n10 + n01).pvalue)
        assert row["p"] == pytest.approx(sm_mcnemar([[0, n10], [n01, 0]], exact=True).pvalue)
    sb, sc = r["b"], r["c"]
    assert r["p"] == pytest.approx(stats.chi2.sf((sb - sc) ** 2 / (sb + sc), 1))


def test_robust_summaries_against_scipy():
    xs, ys = [0.9, 0.1, 0.5, 0.7, 0.6, 0.55, 0.52, 0.58], [0.5, 0.4, 0.6, 0.45]
    assert iqm(xs) == pytest.approx(stats.trim_mean(xs, 0.25))
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(np.mean([2, 3, 4]))  # trims 1 of 5 per side
    u = stats.mannwhitneyu(xs, ys).statistic
    assert prob_improvement(xs, ys) == pytest.approx(u / (len(xs) * len(ys)))
    lo, hi = bootstrap_ci(iqm, [xs], n_boot=500)
    ref = stats.bootstrap((np.array(xs),), lambda x, axis=-1: stats.trim_mean(x, 0.25, axis=axis),
                          n_resamples=500, method="percentile", rng=np.random.default_rng(0))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert bootstrap_ci(iqm, [[0.5, 0.5, 0.5]]) == (None, None)


def test_amounts_carry_their_unit_and_implausible_ones_are_refused():
    acc = get_metric("test_acc")
    assert parse_amount("1 pp", acc) == pytest.approx(0.01)
    assert parse_amount("0.5 %", acc) == pytest.approx(0.005) and parse_amount(0.02, acc) == 0.02
    with pytest.raises(SharpenError, match=r"100 pp of a 0–100 % scale.*\"1 pp\""):
        parse_amount(1.0, acc)
    with pytest.raises(SharpenError, match="not a percentage"):
        parse_amount("1 pp", get_metric("train_loss"))
    with pytest.raises(SharpenError, match="≥ 0"):
        parse_amount(-0.1, acc)
    assert parse_amount("-1.4 pp", acc, signed=True) == pytest.approx(-0.014)
    # an amount that already has its unit is not told to "write it with its unit"
    with pytest.raises(SharpenError, match=r"'50 pp' .* must be under 50 pp") as e:
        parse_amount("50 pp", acc)
    assert "with its unit" not in str(e.value)


def test_an_experiment_file_refuses_a_percent_tolerance_written_as_a_fraction(tmp_path):
    from sharpen.experiments import load_experiment

    p = tmp_path / "e.toml"
    body = ('name = "e"\ndataset = "synthetic"\n[arms.a]\n[arms.b]\n[[claims]]\nclaim = "same"\n'
            'arm = "a"\nop = "~"\nthan = "b"\n')
    p.write_text(body + "tolerance = 1.0\n")
    with pytest.raises(SharpenError, match=r"claims\[0\].tolerance: 1.0 for test_acc is 100 pp"):
        load_experiment(str(p))
    p.write_text(body + 'tolerance = "1 pp"\n')
    assert load_experiment(str(p)).claims[0].tolerance == pytest.approx(0.01)
    p.write_text(body)
    with pytest.raises(SharpenError, match="needs a margin > 0"):
        load_experiment(str(p))


# --- degenerate run directories -------------------------------------------------------------------


def _dir(root: Path, arms: dict[str, dict[int, float | str]], claims: list | None = None,
         protocol: dict | None = None, published: dict | None = None) -> Path:
    """A run directory of final test accuracies; a value "diverged" or "failed" marks the
    run so, "nan" writes an ok run whose metric is NaN."""
    root.mkdir(parents=True)
    cfg = {"name": "made", "profile": "", "runs": 3, "seed": 0,
           "arms": {a: {"dataset": "synthetic", "epochs": 2, **(protocol or {})} for a in arms}}
    if claims:
        cfg["claims"] = claims
    if published:
        cfg["published"] = published
    atomic_write_json(root / "config.json", cfg)
    for arm, runs in arms.items():
        for seed, v in runs.items():
            d = root / "runs" / arm / f"seed-{seed}"
            status = v if v in ("diverged", "failed") else "ok"
            acc = float("nan") if v == "nan" else (None if status != "ok" else float(v))
            if status == "ok":
                rows = [{"epoch": e, "train_loss": 0.1, "train_acc": 0.99, "test_acc": acc,
                         "test_loss": 0.2, "gap": 0.01} for e in (1, 2)]
                atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": arm, "seed": seed, "status": status,
                                                  "test_acc": acc, "epochs_done": 2})
    return root


FORBIDDEN = [re.compile(r"\[(-?[\d.]+)( pp| %)?, \1( pp| %)?\]"), re.compile(r"\bp(?: =)? 0\b(?!\.)"),
             re.compile(r"\binf\b")]


def _honest(text: str) -> None:
    for pat in FORBIDDEN:
        m = pat.search(text)
        assert m is None, f"{pat.pattern!r} found: {text[max(0, m.start() - 80):m.end() + 40]}"


def test_zero_spread_is_never_printed_as_certainty(tmp_path):
    claim = [{"claim": "plus one", "arm": "b", "op": ">", "than": "a"}]
    d = _dir(tmp_path / "z", {"a": {s: 0.90 + s / 100 for s in range(5)},
                              "b": {s: 0.91 + s / 100 for s in range(5)},
                              "c": {s: 0.109 for s in range(5)}}, claim)
    md = write_report(d).read_text()
    _honest(md)
    row = next(ln for ln in md.splitlines() if ln.startswith("| plus one |"))
    assert "no spread: n = 5 identical differences; exact p = 0.0625" in row
    assert "**undecidable at n = 5**" in row and "could decide from n = 6" in row
    table = next(ln for ln in md.splitlines() if ln.startswith("| c |"))
    assert "0 (no spread)" in table and "none: 5 identical" in table
    _honest(compare_dirs([d], "test_acc"))
    # at n = 10 the exact test can decide: 2/2¹⁰ < 5 %
    d10 = _dir(tmp_path / "z10", {"a": {s: 0.90 + s / 100 for s in range(10)},
                                  "b": {s: 0.91 + s / 100 for s in range(10)}}, claim)
    row = next(ln for ln in write_report(d10).read_text().splitlines() if ln.startswith("| plus one |"))
    assert "**supported**" in row and "decided by the exact sign-flip test" in row


def test_one_and_two_runs(tmp_path):
    claim = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    d1 = _dir(tmp_path / "one", {"a": {0: 0.9}, "b": {0: 0.95}}, claim)
    md = write_report(d1).read_text()
    _honest(md)
    assert "**untested (n < 2)**" in md and "| n/a | n/a |" in md
    d2 = _dir(tmp_path / "two", {"a": {0: 0.9, 1: 0.92}, "b": {0: 0.95, 1: 0.96}}, claim)
    md = write_report(d2).read_text()
    _honest(md)
    row = next(ln for ln in md.splitlines() if ln.startswith("| b beats a |"))
    # 2 differences: the exact test's smallest p is 0.5; the t-test with 1 df decides nothing
    assert "| 2 |" in row and "/ 0.5 |" in row and "**not supported**" in row


def test_a_nan_in_an_ok_run_leaves_the_mean_and_the_n(tmp_path):
    d = _dir(tmp_path / "n", {"a": {0: 0.9, 1: "nan", 2: 0.92}})
    md = write_report(d).read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| a |"))
    assert row.startswith("| a | 3 (3/0/0) | 2 | 91.00 |")


def test_diverged_runs_are_counted_and_can_change_a_verdict(tmp_path):
    claim = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    a = {s: 0.90 + s / 100 for s in range(8)}
    b = {s: 0.92 + s / 100 + (0.002 if s % 2 else -0.002) for s in range(8)}
    b[3] = b[6] = "diverged"
    d = _dir(tmp_path / "d", {"a": a, "b": b}, claim)
    md = write_report(d).read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| b beats a |"))
    assert "**supported**" in row and "| 6 (b: 2 diverged not counted) |" in row
    assert "would be contradicted if the lost runs counted as their arm's worst run" not in row
    assert "would be" in row  # with b's worst (0.918) at seeds 3 and 6 the claim no longer holds
    assert "| b | 8 (6/2/0) | 6 |" in md


def test_partial_seed_overlap_names_the_seeds_left_out(tmp_path):
    claim = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    d = _dir(tmp_path / "p", {"a": {s: 0.9 + s / 1000 for s in range(10)},
                              "b": {s: 0.91 + s / 1000 + (s % 3) / 1000 for s in (0, 1, 2, 10, 11)}},
             claim)
    md = write_report(d).read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| b beats a |"))
    assert "| 3 |" in row and "seeds 3, 4, 5, 6, 7, 8, 9, 10, 11 left out (in one arm only)" in row
    text = compare_dirs([d], "test_acc")
    assert "| 3 (3, 4, 5, 6, 7, 8, 9, 10, 11) |" in text


def test_two_folders_of_different_protocol_are_not_paired(tmp_path):
    d1 = _dir(tmp_path / "mnist", {"a": {s: 0.96 + s / 1000 for s in range(5)}},
              protocol={"dataset": "mnist"})
    d2 = _dir(tmp_path / "fashion", {"a": {s: 0.88 + (s % 2) / 100 for s in range(5)}},
              protocol={"dataset": "fashion-mnist"})
    text = compare_dirs([d1, d2], "test_acc")
    row = next(ln for ln in text.splitlines() if ln.startswith("| fashion/a |"))
    assert "Welch t-test (unpaired) (different protocols)" in row and "d_z" not in row
    same = _dir(tmp_path / "again", {"a": {s: 0.965 + s / 1000 + (s % 2) / 500 for s in range(5)}},
                protocol={"dataset": "mnist"})
    row = next(ln for ln in compare_dirs([d1, same], "test_acc").splitlines()
               if ln.startswith("| again/a |"))
    assert "paired t-test" in row


def test_compare_names_its_metric_and_flags_selection_on_test(tmp_path):
    d = _dir(tmp_path / "m", {"a": {s: 0.9 + s / 100 for s in range(3)},
                              "b": {s: 0.91 + s / 50 for s in range(3)}})
    assert compare_dirs([d], "best_test_acc").startswith(
        "Metric: best test accuracy over epochs (best_test_acc, selected on test: optimistic). "
        "It is chosen on the test set")
    with pytest.raises(SharpenError, match="did you mean 'test_acc'"):
        compare_dirs([d], "test_ac")


def test_an_equivalence_claim_is_tost_with_its_margin_in_pp(tmp_path):
    a = {s: 0.90 + s / 100 for s in range(6)}
    b = {s: a[s] + (0.002 if s % 2 else -0.003) for s in range(6)}
    claim = [{"claim": "same", "arm": "b", "op": "~", "than": "a", "tolerance": 0.01}]
    md, rows = claims_table(claim, load_runs(_dir(tmp_path / "e", {"a": a, "b": b}, claim)))
    assert str(rows[0].verdict) == "supported" and rows[0].test == "TOST (paired t)"
    assert "90 % (TOST, ± 1.00 pp)" in md
    e = tost([b[s] - a[s] for s in range(6)], 0.01)
    assert rows[0].p == pytest.approx(e.p)
    # a new user's tolerance = 1.0 (meant as 1 pp) never reaches a verdict
    with pytest.raises(SharpenError, match="100 pp"):
        judge_family([{**claim[0], "tolerance": 1.0}], load_runs(tmp_path / "e"))


def test_published_numbers_get_four_outcomes(tmp_path):
    pub = {"a": {"test_acc": 0.905}, "b": {"test_acc": 0.80}}
    d = _dir(tmp_path / "pub", {"a": {s: 0.90 + (s % 3) / 1000 for s in range(6)},
                                "b": {s: 0.90 + (s % 2) / 100 for s in range(6)}},
             published=pub)
    md = write_report(d).read_text()
    assert next(ln for ln in md.splitlines() if ln.startswith("| a | test_acc |")).endswith(
        "| reproduced |")
    assert next(ln for ln in md.splitlines() if ln.startswith("| b | test_acc |")).endswith(
        "| better than published |")
    assert "n − 1 degrees of freedom" in md and "± 1 pp" in md
    assert "2(n − 1)" not in md  # issue 32: only our sd is observed


def test_the_claims_table_shows_power_and_the_seeds_a_stated_effect_needs(tmp_path):
    a = {s: 0.90 + s / 100 for s in range(5)}
    b = {s: a[s] + 0.004 + (0.003 if s % 2 else -0.003) for s in range(5)}
    claim = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a", "effect": 0.004}]
    _, rows = claims_table(claim, load_runs(_dir(tmp_path / "w", {"a": a, "b": b}, claim)))
    r = rows[0]
    sd = float(np.std([b[s] - a[s] for s in range(5)], ddof=1))
    assert r.sd == pytest.approx(sd)
    assert r.mde == pytest.approx(min_detectable(5, sd, 0.05))
    assert r.n_needed == seeds_needed(0.004, sd, 0.05)


def test_a_corrupt_result_or_metrics_file_is_a_run_to_redo_named_in_the_report(tmp_path):
    d = _dir(tmp_path / "c", {"a": {s: 0.9 + s / 100 for s in range(3)}})
    (d / "runs" / "a" / "seed-1" / "result.json").write_text('{"arm": "a", "seed": 1, "sta')
    csv_path = d / "runs" / "a" / "seed-2" / "metrics.csv"
    csv_path.write_text(csv_path.read_text()[:-20])  # an interrupted copy
    runs = load_runs(d)
    assert runs.status["a"] == {0: "ok", 1: "corrupt", 2: "corrupt"}
    md = write_report(d).read_text()
    assert "seed-1/result.json: cannot be read" in md and "seed-2/metrics.csv:" in md
    assert next(ln for ln in md.splitlines() if ln.startswith("| a |")).startswith(
        "| a | 3 (1/0/2) | 1 |")


def test_a_rerun_trains_a_corrupt_run_again(tmp_path, capsys):
    from sharpen.experiments import load_experiment, run_experiment

    exp = load_experiment("quickstart", "smoke", ["dataset=synthetic", "epochs=1"], 2)
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    res = out / "runs" / "lenet5" / "seed-1" / "result.json"
    good = json.loads(res.read_text())
    res.write_text(res.read_text()[:25])
    run_experiment(exp, out, quiet=True)
    assert "result.json: cannot be read" in capsys.readouterr().err
    again = json.loads(res.read_text())
    assert again["test_acc"] == good["test_acc"] and again["status"] == "ok"


def test_a_cut_predictions_file_is_a_run_to_redo_in_the_report_and_the_rerun(tmp_path, capsys):
    from sharpen.experiments import load_experiment, run_experiment
    from sharpen.rundir import RunDir

    exp = load_experiment("quickstart", "smoke", ["dataset=synthetic", "epochs=1"], 2)
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    npz = out / "runs" / "lenet5" / "seed-1" / "predictions.npz"
    good = RunDir(out).predictions("lenet5", 1)
    npz.write_bytes(npz.read_bytes()[:60])  # an interrupted copy: no zip directory left
    assert load_runs(out).status["lenet5"] == {0: "ok", 1: "corrupt"}
    md = write_report(out).read_text()  # was zipfile.BadZipFile
    assert "seed-1/predictions.npz: cannot be read" in md
    run_experiment(exp, out, quiet=True)  # was zipfile.BadZipFile too
    assert "predictions.npz: cannot be read" in capsys.readouterr().err
    again = RunDir(out).predictions("lenet5", 1)
    assert again is not None and (again["test_pred"] == good["test_pred"]).all()
    assert load_runs(out).status["lenet5"] == {0: "ok", 1: "ok"}


def test_predictions_are_stored_and_reproduce_the_recorded_accuracy(tmp_path):
    from sharpen.experiments import load_experiment, run_experiment
    from sharpen.rundir import RunDir

    exp = load_experiment("quickstart", "smoke", ["dataset=synthetic", "epochs=2",
                                                  "val_size=40"], 2)
    out, results = run_experiment(exp, tmp_path / "p", quiet=True)
    rd = RunDir(out)
    for r in results:
        p = rd.predictions(r["arm"], r["seed"])
        assert p["test_pred"].dtype == np.int16 and p["val_pred"].dtype == np.int16
        assert float((p["test_pred"] == p["test_label"]).mean()) == pytest.approx(r["test_acc"])
        assert float((p["val_pred"] == p["val_label"]).mean()) == pytest.approx(r["val_acc"])
    md = (out / "report.md").read_text()
    assert "95 % CI over seeds and test images" in md


def test_older_directories_without_predictions_still_report_and_say_so(tmp_path):
    claim = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    d = _dir(tmp_path / "old", {"a": {s: 0.9 + s / 100 for s in range(3)},
                                "b": {s: 0.91 + s / 90 for s in range(3)}}, claim)
    md = write_report(d).read_text()
    assert "a (3 of 3 runs without predictions.npz)" in md and "re-run them" in md


# --- each statistic at its edges (the cases mutation testing found unchecked) ----------------


def test_two_level_bootstrap_is_its_formula():
    rng = np.random.default_rng(21)
    c = rng.random((4, 300)) < rng.uniform(0.6, 0.9, (4, 1))
    est, lo, hi = two_level_bootstrap(c, n_boot=20000, seed=3)
    cf = c.astype(float)
    v_seed = cf.mean(1).var(ddof=1) / 4
    v_img = cf.mean(0).var(ddof=0) / 300  # the bootstrap variance of a mean of 300 images
    v = v_seed + v_img
    df = v**2 / (v_seed**2 / 3 + v_img**2 / 299)
    half = max(stats.t.ppf(0.975, df) * math.sqrt(v), stats.t.ppf(0.975, 3) * math.sqrt(v_seed))
    assert est == pytest.approx(cf.mean())
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.03) and (lo + hi) / 2 == pytest.approx(est)
    # the paired difference: the same computation on A − B per image
    other = rng.random((4, 300)) < 0.7
    d_est, d_lo, d_hi = two_level_bootstrap(c, other, n_boot=20000, seed=3)
    dd = cf - other
    v2 = dd.mean(1).var(ddof=1) / 4 + dd.mean(0).var(ddof=0) / 300
    assert d_est == pytest.approx(dd.mean()) and d_hi - d_lo > 2 * 1.9 * math.sqrt(v2) * 0.97
    # one seed: the image level alone (a binomial interval); a 90 % interval is narrower
    e1, l1, h1 = two_level_bootstrap(c[:1], n_boot=20000)
    p1 = cf[0].mean()
    wald = 1.96 * math.sqrt(p1 * (1 - p1) / 300)
    from statsmodels.stats.proportion import proportion_confint

    wlo, whi = proportion_confint(cf[0].sum(), 300, method="wilson")  # the floor (issue 34 B)
    assert l1 == pytest.approx(min(p1 - wald, wlo), abs=0.003)
    assert h1 == pytest.approx(max(p1 + wald, whi), abs=0.003)
    assert two_level_bootstrap(c, n_boot=4000, confidence=0.9)[2] < hi
    # all right: no variance in the sample, but 50 images do not make 100 % certain: the
    # Wilson interval of 50 of 50 (z²/(n + z²) below 1), never [1, 1] (issue 34 B)
    z2 = stats.norm.ppf(0.975) ** 2
    assert two_level_bootstrap(np.ones((3, 50), bool)) == pytest.approx((1.0, 50 / (50 + z2), 1.0))


def test_mcnemar_counts_0_1_integers_and_has_no_discordance_edge():
    a = np.array([[1, 1, 0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 1, 1, 1, 0]])  # ints, not bools
    b = np.array([[1, 0, 0, 1, 0, 0, 0, 1], [1, 0, 1, 1, 1, 1, 1, 1]])
    r = mcnemar(a, b)
    assert [(x["b"], x["c"]) for x in r["per_seed"]] == [(3, 1), (0, 2)]
    assert r["per_seed"][0]["p"] == pytest.approx(stats.binomtest(3, 4).pvalue)
    assert (r["b"], r["c"]) == (3, 3) and r["chi2"] == 0.0 and r["p"] == pytest.approx(1.0)
    same = mcnemar(a, a)
    assert same["chi2"] == 0.0 and same["p"] == 1.0 and same["per_seed"][0]["p"] == 1.0


def test_one_sided_beyond_the_margin_against_scipy():
    from sharpen.reports.stats import one_sided_beyond

    up = [0.03, 0.025, 0.035, 0.028]
    # the one-sided p on the estimate's side, doubled: the side is chosen from the data
    assert one_sided_beyond(up, 0.01) == pytest.approx(
        2 * stats.ttest_1samp([x - 0.01 for x in up], 0, alternative="greater").pvalue)
    down = [-x for x in up]
    assert one_sided_beyond(down, 0.01) == pytest.approx(
        2 * stats.ttest_1samp([x + 0.01 for x in down], 0, alternative="less").pvalue)
    assert one_sided_beyond([0.02], 0.01) is None and one_sided_beyond([0.02, 0.02], 0.01) is None
    # a `~` claim whose difference lies far outside the margin is contradicted
    d = {s: 0.9 + s / 100 for s in range(5)}
    far = {s: d[s] + 0.03 + (0.002 if s % 2 else -0.002) for s in range(5)}
    res = judge_family([{"claim": "same", "arm": "b", "op": "~", "than": "a", "tolerance": 0.01}],
                       Runs(values={"a": {s: {"test_acc": v} for s, v in d.items()},
                                    "b": {s: {"test_acc": v} for s, v in far.items()}}))[0]
    assert str(res.verdict) == "contradicted" and res.test == "t beyond the margin, one-sided × 2"
    assert res.p == pytest.approx(one_sided_beyond([far[s] - d[s] for s in range(5)], 0.01))


def test_tost_with_two_runs_and_without_spread():
    two = tost([0.001, -0.002], 0.01)
    assert two.n == 2 and two.p is not None and two.spread
    one = tost([0.001], 0.01)
    assert one.n == 1 and one.p is None and one.p_exact is None
    flat = tost([0.002] * 6, 0.01)
    assert flat.n == 6 and flat.p is None and flat.spread is False
    assert flat.p_exact == pytest.approx(1 / 64)  # each one-sided exact test: 1 of 2⁶ patterns


def test_sign_flip_edges():
    with pytest.raises(ValueError, match="alternative must be two-sided, greater or less"):
        sign_flip([0.1], "bigger")
    assert sign_flip([]) == 1.0 and sign_flip([0.3]) == 1.0 and sign_flip([0.3], "less") == 1.0
    assert sign_flip([0.3], "greater") == 0.5
    # n = 20 is still exact: equal |d| make the p a binomial tail, to the last digit
    d = [1.0] * 15 + [-1.0] * 5
    assert sign_flip(d) == stats.binom.cdf(5, 20, 0.5) + stats.binom.sf(14, 20, 0.5)
    # above 20, the Monte Carlo counts the observed pattern: never 0, never above 3/200001
    p = sign_flip([1.0] * 24)
    assert 0 < p <= 3 / 200_001
    assert min_sign_flip_p(0) == 1.0 and min_sign_flip_p(1) == 1.0
    assert min_sign_flip_p(1, "less") == 0.5 and min_sign_flip_p(2) == 0.5
    assert exact_decides_from(0.0625) == 5 and exact_decides_from(0.0625, "greater") == 4
    assert exact_decides_from(1.0) == 1


def test_comparison_records_what_each_side_had():
    from sharpen.reports.stats import compare

    c = compare({s: 0.9 + s / 100 for s in range(6)}, {s: 0.88 + s / 90 for s in range(2, 5)})
    assert (c.n, c.n_a, c.n_b, c.left_out) == (3, 6, 3, [0, 1, 5])
    from sharpen.reports.stats import paired_diff, welch

    p = paired_diff([0.01, 0.02, 0.015])
    assert (p.n_a, p.n_b) == (3, 3)
    one = compare({0: 0.9, 1: 0.8}, {1: 0.7, 2: 0.6})
    assert one.why_unpaired == "1 shared seed" and not one.paired
    none = compare({0: 0.9, 1: 0.8}, {2: 0.7, 3: 0.6})
    assert none.why_unpaired == "0 shared seeds"
    assert compare({0: 0.9, 1: 0.8}, {0: 0.7, 1: 0.65}, paired=False).why_unpaired == ""
    w = welch([0.9], [0.8, 0.7])
    assert w.test == "none (fewer than 2 runs in an arm)"
    w = welch([0.9, 0.85, 0.8], [0.8, 0.7, 0.75, 0.72])
    pooled = math.sqrt((2 * np.var([0.9, 0.85, 0.8], ddof=1) + 3 * np.var([0.8, 0.7, 0.75, 0.72],
                                                                           ddof=1)) / 5)
    assert w.sd == pytest.approx(pooled)
    assert w.p == pytest.approx(stats.ttest_ind([0.9, 0.85, 0.8], [0.8, 0.7, 0.75, 0.72],
                                                equal_var=False).pvalue)


def test_power_and_bootstrap_edges():
    from sharpen.reports.stats import iqm

    assert min_detectable(2, 0.01) is not None and min_detectable(1, 0.01) is None
    assert min_detectable(5, 0.0) is None and min_detectable(5, math.inf) is None
    assert seeds_needed(0.0, 0.01) is None and seeds_needed(0.01, math.inf) is None
    # a huge effect needs the smallest n a t-test can use
    assert seeds_needed(1.0, 0.001) == 2
    assert holm([0.3, 0.4, 0.5, 0.6]) == [1.0, 1.0, 1.0, 1.0]  # (m − k)·p capped at 1
    xs = [0.1, 0.5, 0.3, 0.9, 0.7]
    lo, hi = bootstrap_ci(iqm, [xs])  # the default 2,000 resamples, as scipy with the same seed
    ref = stats.bootstrap((np.array(xs),), lambda x, axis=-1: stats.trim_mean(x, 0.25, axis=axis),
                          n_resamples=2000, method="percentile", rng=np.random.default_rng(0))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert bootstrap_ci(prob_improvement, [[0.1, 0.2], [0.15, 0.3]]) != (None, None)  # n = 2 works
    assert bootstrap_ci(iqm, [[0.5]]) == (None, None)
    assert prob_improvement([1, 2], [1, 2]) == 0.5 and iqm([1, 2, 3, 4]) == 2.5


def test_against_published_records_its_margin_and_both_intervals():
    from sharpen.reports.stats import against_published

    a = against_published([0.80, 0.82, 0.81], 0.9, 0.02)
    assert a["margin"] == 0.02 and a["half90"] < a["half"] and a["verdict"] == "worse than published"


def test_power_where_the_noncentral_t_fails_matches_a_simulation():
    from sharpen.reports.stats import paired_power

    # n = 2 and d_z ≈ 10: statsmodels (and scipy's noncentral t) return NaN here
    rng = np.random.default_rng(5)
    d = rng.normal(9.84, 1.0, (200_000, 2))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(2))
    rate = float((np.abs(t) > stats.t.ppf(1 - 0.025 / 2, 1)).mean())
    assert paired_power(9.84, 2, 0.025) == pytest.approx(rate, abs=0.005)
    assert seeds_needed(0.0984, 0.01, 0.025) == 3  # power 0.42 at n = 2, 0.999 at n = 3


def test_values_of_a_run_follow_the_metric_registry():
    from sharpen.reports.claims import values_of_run

    rows = [{"epoch": "1", "test_acc": "0.5", "val_acc": "0.7", "gap": "0.1", "train_loss": "1"},
            {"epoch": "2", "test_acc": "0.8", "val_acc": "0.7", "gap": "0.2", "train_loss": "0.5"},
            {"epoch": "3", "test_acc": "0.6", "val_acc": "0.6", "gap": "0.3", "train_loss": "nan"}]
    v = values_of_run(rows, {"seconds": 12.5})
    assert v["test_acc"] == 0.6 and v["best_test_acc"] == 0.8 and v["gap"] == 0.3
    # validation ties at epochs 1 and 2: the earliest is chosen, and its test accuracy reported
    assert v["selected_val_acc"] == 0.7 and v["selected_test_acc"] == 0.5
    assert v["test_error"] == pytest.approx(0.4) and v["seconds"] == 12.5
    assert "train_loss" not in v  # NaN is no value
    rows[1]["test_acc"] = ""
    assert "best_test_acc" not in values_of_run(rows, {})  # an epoch without a value: no best
    only = values_of_run([], {"test_acc": 0.9, "best_test_acc": 0.95, "gap": 0.02})
    assert only == {"test_acc": 0.9, "best_test_acc": 0.95, "gap": 0.02,
                    "test_error": pytest.approx(0.1)}


def test_a_best_claim_with_a_rival_clearly_ahead_is_contradicted_at_k_times_its_p():
    from sharpen.reports.stats import compare

    base = {s: 0.80 + s / 100 for s in range(6)}
    rival = {s: base[s] + 0.05 + (0.004 if s % 2 else -0.004) for s in range(6)}
    other = {s: base[s] - 0.02 + (0.003 if s % 2 else -0.003) for s in range(6)}
    runs = Runs(values={a: {s: {"test_acc": v} for s, v in d.items()}
                        for a, d in (("me", base), ("rival", rival), ("other", other))})
    r = judge_family([{"claim": "me best", "arm": "me", "op": "best"}], runs)[0]
    assert str(r.verdict) == "contradicted" and "contradicting rival" in r.estimate
    assert r.p == pytest.approx(2 * compare(base, rival).p)
    w = judge_family([{"claim": "other worst", "arm": "other", "op": "worst"}], runs)[0]
    assert str(w.verdict) == "supported"
    assert w.p == pytest.approx(max(compare(other, base).p, compare(other, rival).p))


def test_lost_runs_count_as_the_worst_value_of_their_metric():
    from sharpen.reports.claims import _fill_lost

    runs = Runs(values={"a": {0: {"gap": 0.1, "test_acc": 0.9}, 1: {"gap": 0.3, "test_acc": 0.7}}},
                status={"a": {0: "ok", 1: "ok", 2: "diverged", 3: "failed"}})
    assert runs.lost("a") == [2, 3]
    gap = _fill_lost(runs, "gap").values["a"]  # lower is better: the worst is the largest
    assert gap[2]["gap"] == 0.3 and gap[3]["gap"] == 0.3
    acc = _fill_lost(runs, "test_acc").values["a"]
    assert acc[2]["test_acc"] == 0.7
    assert runs.values["a"].keys() == {0, 1}  # the original is left alone
