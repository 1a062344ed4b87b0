"""The pieces of a claims table, each against an independent computation: "best" and
"worst" (intersection–union over rivals), the table row as printed, lost-run sensitivity
and formatting (the functions `make mutate` found under-tested in reports/claims.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as st

from sharpen.metrics import get_metric
from sharpen.reports.claims import (
    ClaimResult,
    Runs,
    _best,
    _fill_lost,
    claims_table,
    fmt_value,
    judge_family,
)
from sharpen.reports.stats import format_p
from sharpen.verdicts import get_op

M = get_metric("test_acc")


def _p(p: float | None) -> str:
    """A p-value as the claims table prints it (stats.format_p in the table's style)."""
    return format_p(p, 2, "–", sci_below=0.001)


SEEDS = range(5)
RNG = np.random.default_rng(5)
NOISE = {a: RNG.normal(0, 0.004, 5) for a in "abcd"}


def _runs(means: dict[str, float], protocol: dict[str, str] | None = None,
          drop: dict[str, list[int]] | None = None, status: dict | None = None) -> Runs:
    values = {a: {s: {"test_acc": float(mu + NOISE[a][s])} for s in SEEDS
                  if s not in (drop or {}).get(a, [])} for a, mu in means.items()}
    st_ = {a: {s: "ok" for s in v} for a, v in values.items()}
    for a, d in (status or {}).items():
        st_.setdefault(a, {}).update(d)
    return Runs(values=values, status=st_, protocol=protocol or {})


def _vals(r: Runs, a: str) -> list[float]:
    return [r.values[a][s]["test_acc"] for s in sorted(r.values[a])]


def _paired_p(r: Runs, a: str, b: str) -> float:
    return float(st.ttest_rel(_vals(r, a), _vals(r, b)).pvalue)


def _judge_best(claim: dict, runs: Runs) -> ClaimResult:
    r = ClaimResult(claim=claim["claim"], paper_says="", metric="test_acc", arm=claim["arm"],
                    op=claim["op"])
    mine = {s: v["test_acc"] for s, v in runs.values[claim["arm"]].items()}
    out, _ = _best(r, M, get_op(claim["op"]), claim, runs, mine)
    return out


def test_best_is_the_largest_rival_p_when_every_rival_is_beaten():
    runs = _runs({"a": 0.95, "b": 0.90, "c": 0.93})
    r = _judge_best({"claim": "a best", "arm": "a", "op": "best"}, runs)
    ps = {o: _paired_p(runs, "a", o) for o in "bc"}
    assert r.p == pytest.approx(max(ps.values())) and r.direction == 1
    closest = max(ps, key=ps.get)
    assert closest == "c" and r.n == 5 and r.test == "paired t-test"
    d = np.subtract(_vals(runs, "a"), _vals(runs, "c"))
    h = st.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert r.estimate == (f"a − c (closest rival): {M.fmt(d.mean(), True)} "
                          f"[{M.fmt(d.mean() - h, True)}, {M.fmt(d.mean() + h, True)}]")
    assert r.interval == "95 %, unadjusted" and r.notes == []
    from sharpen.reports.stats import sign_flip

    assert r.p_exact == pytest.approx(max(sign_flip(np.subtract(_vals(runs, "a"), _vals(runs, o)))
                                          for o in "bc"))


def test_best_against_a_rival_that_wins_is_bonferroni_over_the_rivals():
    runs = _runs({"a": 0.93, "b": 0.90, "c": 0.95, "d": 0.96})
    r = _judge_best({"claim": "a best", "arm": "a", "op": "best"}, runs)
    against = {o: _paired_p(runs, "a", o) for o in "cd"}
    assert r.direction == -1
    assert r.p == pytest.approx(min(1.0, 3 * min(against.values())))
    worst = min(against, key=against.get)
    assert r.estimate.startswith(f"a − {worst} (contradicting rival): -")


def test_worst_mirrors_best_and_than_names_the_rivals():
    runs = _runs({"a": 0.80, "b": 0.90, "c": 0.93})
    r = _judge_best({"claim": "a worst", "arm": "a", "op": "worst", "than": ["c"]}, runs)
    assert r.direction == 1 and r.p == pytest.approx(_paired_p(runs, "a", "c"))
    assert r.estimate.startswith("a − c (closest rival): -")
    r = _judge_best({"claim": "a worst", "arm": "a", "op": "worst", "than": "b"}, runs)
    assert r.p == pytest.approx(_paired_p(runs, "a", "b"))
    r = _judge_best({"claim": "c worst", "arm": "c", "op": "worst"}, runs)
    assert r.direction == -1 and r.p == pytest.approx(min(1.0, 2 * min(
        _paired_p(runs, "c", o) for o in "ab")))


def test_best_without_a_rival_run_or_with_too_few_seeds_is_untested():
    runs = _runs({"a": 0.95, "b": 0.90})
    r = _judge_best({"claim": "x", "arm": "a", "op": "best", "than": ["b", "zz"]}, runs)
    assert str(r.verdict) == "untested (no test_acc for zz)" and r.p is None
    thin = _runs({"a": 0.95, "b": 0.90}, drop={"b": [1, 2, 3, 4]})
    r = _judge_best({"claim": "x", "arm": "a", "op": "best"}, thin)
    assert r.p is None and r.n == 1


def test_best_notes_left_out_seeds_unpaired_protocols_and_no_spread():
    runs = _runs({"a": 0.95, "b": 0.90, "c": 0.92}, drop={"c": [4]})
    r = _judge_best({"claim": "x", "arm": "a", "op": "best"}, runs)
    assert r.notes == ["seeds 4 left out (in one arm only)"] and r.n == 4
    runs = _runs({"a": 0.95, "b": 0.90}, protocol={"a": "p1", "b": "p2"})
    r = _judge_best({"claim": "x", "arm": "a", "op": "best"}, runs)
    assert "unpaired (different protocols)" in r.notes and r.test == "Welch t-test (unpaired)"
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in SEEDS},
                        "b": {s: {"test_acc": 0.94} for s in SEEDS}})
    r = _judge_best({"claim": "x", "arm": "a", "op": "best"}, flat)
    assert r.estimate == ("a − b (closest rival): +1.00 pp (no spread: n = 5 identical "
                          "differences; exact p = 0.0625)")
    assert r.spread is False and r.interval == ""


def test_a_claims_table_row_is_printed_as_computed():
    runs = _runs({"a": 0.95, "b": 0.90})
    claims = [{"claim": "a beats b", "paper_says": "+5 pp", "arm": "a", "op": ">",
               "than": "b", "effect": 0.05}]
    md, (r,) = claims_table(claims, runs)
    head, rule, row = md.splitlines()
    assert head.startswith("| claim | the paper says | ours | verdict | n | p (t / exact) |")
    assert rule == "|" + "---|" * 11
    p = _paired_p(runs, "a", "b")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "a beats b" and cells[1] == "+5 pp" and cells[3] == "**supported**"
    assert cells[2] == r.estimate + " (95 %, unadjusted)"
    assert cells[4] == "5" and cells[5] == f"{_p(p)} / {_p(0.0625)}"
    assert cells[6] == _p(p) and cells[7] == "paired t-test"
    assert cells[8] == M.fmt(r.mde, True).lstrip("+") and cells[9] == f"{r.n_needed} for +5.00 pp"
    assert cells[10] == ("rests on the normal model: the exact sign-flip test gives p = 0.0625 "
                         "(Holm 0.0625); at n = 5 it cannot reach the family's level; it could "
                         "from n = 6")


def test_lost_runs_are_counted_and_can_change_a_verdict():
    # b lost two runs; as b's worst runs they would turn "a beats b" around
    runs = _runs({"a": 0.91, "b": 0.90}, drop={"b": [3, 4]},
                 status={"b": {3: "diverged", 4: "failed"}})
    claims = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    (r,) = judge_family(claims, runs)
    assert r.lost == "b: 1 diverged, 1 failed"
    filled = _fill_lost(runs, "test_acc")
    worst = min(_vals(runs, "b"))
    assert filled.values["b"][3]["test_acc"] == filled.values["b"][4]["test_acc"] == worst
    assert runs.values["b"].get(3) is None  # the original is unchanged
    (f,) = judge_family(claims, filled, sensitivity=False)
    if f.verdict != r.verdict:
        assert r.notes[-1] == (f"would be {f.verdict} if the lost runs counted as their "
                               "arm's worst run")
    else:
        assert not any(n.startswith("would be") for n in r.notes)
    md, _ = claims_table(claims, runs)
    assert "| 3 (b: 1 diverged, 1 failed not counted) |" in md


def test_lost_runs_flip_a_verdict_and_say_so():
    # a is better on its 3 ok runs; its 2 diverged runs, counted as its worst, sink it
    values = {"a": {s: {"test_acc": v} for s, v in zip(range(3), [0.95, 0.96, 0.955])},
              "b": {s: {"test_acc": v} for s, v in zip(range(5), [0.90, 0.905, 0.91, 0.95, 0.96])}}
    runs = Runs(values=values, status={"a": {0: "ok", 1: "ok", 2: "ok", 3: "diverged",
                                             4: "diverged"},
                                       "b": {s: "ok" for s in range(5)}})
    (r,) = judge_family([{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"}], runs)
    (f,) = judge_family([{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"}],
                        _fill_lost(runs, "test_acc"), sensitivity=False)
    assert r.verdict != f.verdict
    assert r.notes[-1] == f"would be {f.verdict} if the lost runs counted as their arm's worst run"


def test_formatting_of_p_and_values():
    assert _p(None) == "–" and _p(0.5) == "0.5" and _p(0.0123) == "0.012"
    assert _p(0.001) == "0.001" and _p(0.000999) == "1.0e-03"
    assert fmt_value("test_acc", 0.91234) == M.fmt(0.91234)
    assert fmt_value("test_acc", 0.01, diff=True) == "+1.00 pp"
    assert fmt_value("test_acc", None) == M.fmt(None)


HEADER = ("| claim | the paper says | ours | verdict | n | p (t / exact) | Holm p | test | "
          "detectable at n (80 %) | n for the paper's effect | notes |")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


def test_the_whole_table_layout_and_its_empty_cells():
    runs = _runs({"a": 0.95, "b": 0.90})
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"},  # no paper_says
              {"claim": "zz beats a", "arm": "zz", "op": ">", "than": "a"}]  # untested
    md, (r, u) = claims_table(claims, runs)
    head, rule, row, row2 = md.splitlines()
    assert head == HEADER
    c = _cells(row)
    assert c[1] == "–" and c[9] == "–"  # no paper_says, no stated effect
    assert c[10] == "; ".join(r.notes) and len(r.notes) == 1
    c2 = _cells(row2)
    assert c2[2] == "–" and c2[3] == "**untested (no test_acc for zz)**"
    assert c2[5] == "– / –" and c2[6] == "–" and c2[7] == "–" and c2[8] == "–" and c2[10] == "–"
    # a plain dict of values is a Runs
    md2, _ = claims_table(claims, runs.values)
    assert md2.splitlines()[2] == row


def test_several_notes_are_joined_and_an_effect_out_of_reach_says_so():
    runs = _runs({"a": 0.95, "b": 0.90}, drop={"b": [4]}, status={"b": {4: "corrupt"}})
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b", "effect": "0.0001 pp"}]
    md, (r,) = claims_table(claims, runs)
    c = _cells(md.splitlines()[2])
    assert len(r.notes) >= 2 and c[10] == "; ".join(r.notes)
    assert r.lost == "b: 1 corrupt" and c[4] == "4 (b: 1 corrupt not counted)"
    assert r.effect == pytest.approx(1e-6) and r.n_needed is None  # beyond 2^20 seeds
    assert c[9] == "– for +0.00 pp"


def test_the_stated_effect_comes_from_the_claim_or_the_published_numbers():
    from sharpen.reports.claims import _stated_effect

    pub = {"a": {"test_acc": 0.95}, "b": {"test_acc": 0.90}, "c": {"val_acc": 0.5},
           "d": {"test_acc": "n/a"}}
    assert _stated_effect({"arm": "a", "than": "b"}, pub, "test_acc") == pytest.approx(0.05)
    assert _stated_effect({"arm": "b", "than": "a"}, pub, "test_acc") == pytest.approx(-0.05)
    assert _stated_effect({"arm": "a", "than": "b", "effect": "-2 pp"}, pub, "test_acc") == \
        pytest.approx(-0.02)
    assert _stated_effect({"arm": "a", "than": "b", "effect": 0.03}, pub, "test_acc") == \
        pytest.approx(0.03)
    assert _stated_effect({"arm": "a", "than": "c"}, pub, "test_acc") is None  # no such metric
    assert _stated_effect({"arm": "a", "than": "d"}, pub, "test_acc") is None  # not a number
    assert _stated_effect({"arm": "a", "than": ["b"]}, pub, "test_acc") is None  # a rival list
    assert _stated_effect({"arm": "a", "than": "zz"}, pub, "test_acc") is None
    assert _stated_effect({"arm": "zz", "than": "b"}, pub, "test_acc") is None
    from sharpen.errors import SharpenError

    with pytest.raises(SharpenError, match=r"^effect: "):
        _stated_effect({"arm": "a", "than": "b", "effect": "2 kg"}, pub, "test_acc")


def test_lost_runs_of_both_arms_and_of_a_rival_list_are_each_counted():
    runs = _runs({"a": 0.95, "b": 0.90, "c": 0.92}, drop={"a": [4], "b": [3], "c": [2]},
                 status={"a": {4: "diverged"}, "b": {3: "failed"}, "c": {2: "corrupt"}})
    (r,) = judge_family([{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"}], runs)
    assert r.lost == "a: 1 diverged; b: 1 failed"
    (r,) = judge_family([{"claim": "a best", "arm": "a", "op": "best", "than": ["b", "c"]}], runs)
    assert r.lost == "a: 1 diverged; b: 1 failed; c: 1 corrupt"
    filled = _fill_lost(runs, "test_acc")
    for arm, s in (("a", 4), ("b", 3), ("c", 2)):
        assert filled.values[arm][s]["test_acc"] == min(_vals(runs, arm))
        assert set(filled.values[arm]) == set(SEEDS)
    # a lower-is-better metric: the lost run counts as the arm's largest value
    err = Runs(values={"a": {0: {"test_error": 0.1}, 1: {"test_error": 0.3}}},
               status={"a": {0: "ok", 1: "ok", 2: "failed"}})
    assert _fill_lost(err, "test_error").values["a"][2]["test_error"] == 0.3


def test_load_runs_fingerprints_only_the_arms_the_config_describes(tmp_path):
    import json

    from sharpen.io import atomic_write_csv, atomic_write_json
    from sharpen.reports.claims import load_runs
    from sharpen.rundir import fingerprint

    arm_cfg = {"dataset": "synthetic", "epochs": 1, "val_size": 0}
    atomic_write_json(tmp_path / "config.json", {"name": "x", "arms": {"a": arm_cfg}})
    for arm in ("a", "extra"):
        d = tmp_path / "runs" / arm / "seed-0"
        atomic_write_csv(d / "metrics.csv", [{"epoch": 1, "train_loss": 0.1, "train_acc": 0.9,
                                              "test_acc": 0.8, "test_loss": 0.2, "gap": 0.1}],
                         ["epoch", "train_loss", "train_acc", "test_acc", "test_loss", "gap"])
        atomic_write_json(d / "result.json", {"arm": arm, "seed": 0, "status": "ok",
                                              "test_acc": 0.8, "epochs_done": 1})
    r = load_runs(tmp_path)
    assert r.protocol == {"a": fingerprint(arm_cfg), "extra": None}
    assert r.values["a"][0]["test_acc"] == 0.8 and r.values["extra"][0]["test_acc"] == 0.8
    (tmp_path / "config.json").write_text(json.dumps({"name": "x"}))  # no arms at all
    assert load_runs(tmp_path).protocol == {"a": None, "extra": None}
    (tmp_path / "config.json").unlink()  # no config at all: the runs still count
    r = load_runs(tmp_path)
    assert r.protocol == {"a": None, "extra": None} and r.values["a"][0]["test_acc"] == 0.8


def test_best_is_judged_from_two_seeds_on():
    runs = _runs({"a": 0.95, "b": 0.90, "c": 0.92}, drop={a: [2, 3, 4] for a in "abc"})
    r = _judge_best({"claim": "a best", "arm": "a", "op": "best"}, runs)
    assert r.n == 2 and r.p == pytest.approx(max(_paired_p(runs, "a", o) for o in "bc"))


def _one(claim: dict, runs: Runs) -> ClaimResult:
    (r,) = judge_family([claim], runs, sensitivity=False)
    return r


def test_directional_rows_say_what_was_computed():
    runs = _runs({"a": 0.95, "b": 0.90}, drop={"b": [4]})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, runs)
    assert r.notes[0] == "seeds 4 left out (in one arm only)" and r.n == 4
    assert r.interval == "95 %, unadjusted" and r.test == "paired t-test" and r.direction == 1
    assert r.estimate.startswith("a − b: +")
    r = _one({"claim": "x", "arm": "b", "op": ">", "than": "a"}, runs)
    assert r.direction == -1 and str(r.verdict) == "contradicted"
    # different protocols: unpaired, said so, judged by Welch
    runs = _runs({"a": 0.95, "b": 0.90}, protocol={"a": "p1", "b": "p2"})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, runs)
    assert r.notes == ["unpaired (different protocols)"] and r.test == "Welch t-test (unpaired)"
    # a fixed value: a one-sample t-test on the arm
    r = _one({"claim": "x", "arm": "a", "op": "<", "value": 0.99}, _runs({"a": 0.95}))
    assert r.test == "one-sample t-test" and r.estimate.startswith("a − 99.00 %: -")
    assert str(r.verdict) == "supported"


def test_equivalence_rows_inside_and_outside_the_margin():
    runs = _runs({"a": 0.950, "b": 0.949})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.02}, runs)
    assert r.interval == "90 % (TOST, ± 2.00 pp)" and r.test == "TOST (paired t)"
    assert r.direction == 1 and str(r.verdict) == "supported"
    runs = _runs({"a": 0.95, "b": 0.90})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.01}, runs)
    assert r.test == "t beyond the margin, one-sided × 2" and r.direction == -1
    assert r.p_exact is None and str(r.verdict) == "contradicted"
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in SEEDS},
                        "b": {s: {"test_acc": 0.949} for s in SEEDS}})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.01}, flat)
    assert r.test == "exact sign-flip TOST (no spread)" and r.p == pytest.approx(1 / 32)
    assert str(r.verdict) == "supported"
    assert r.estimate == ("a − b: +0.10 pp (no spread: n = 5 identical differences; exact p = "
                          "0.0312)")
    unpaired = _runs({"a": 0.950, "b": 0.949}, protocol={"a": "p1", "b": "p2"})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.02}, unpaired)
    assert r.interval == "90 % (TOST, ± 2.00 pp)" and r.test == "TOST (Welch, unpaired)"
    assert r.direction == 1


# --- rows checked number by number against scipy / statsmodels / a hand enumeration ---------

def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _t_interval(d, confidence: float = 0.95) -> tuple[float, float, float]:
    d = np.asarray(d, dtype=float)
    half = st.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _sign_flip_by_hand(d, side: str = "two-sided") -> float:
    """Every one of the 2ⁿ sign patterns, counted."""
    import itertools

    d = np.asarray(d, dtype=float)
    sums = np.array(list(itertools.product([-1.0, 1.0], repeat=len(d)))) @ d
    obs = d.sum()
    hit = {"two-sided": np.abs(sums) >= abs(obs) - 1e-12, "greater": sums >= obs - 1e-12,
           "less": sums <= obs + 1e-12}[side]
    return float(hit.mean())


def test_a_family_of_two_is_computed_as_scipy_and_statsmodels_compute_it():
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestPower

    runs = _runs({"a": 0.95, "b": 0.90, "c": 0.905})
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"},
              {"claim": "c below b", "arm": "c", "op": "<", "than": "b", "effect": "-1 pp"}]
    published = {"a": {"test_acc": 0.945}, "b": {"test_acc": 0.94}}
    rows = judge_family(claims, runs, published)
    pairs = [("a", "b"), ("c", "b")]
    diffs = [np.subtract(_vals(runs, x), _vals(runs, y)) for x, y in pairs]
    ps = [float(st.ttest_rel(_vals(runs, x), _vals(runs, y)).pvalue) for x, y in pairs]
    exact = [_sign_flip_by_hand(d) for d in diffs]
    level = 0.05 / 2  # the strictest Holm step of a family of two
    for r, (x, y), d, p, p_adj, px, px_adj, effect in zip(
            rows, pairs, diffs, ps, multipletests(ps, method="holm")[1], exact,
            multipletests(exact, method="holm")[1], [0.005, -0.01]):
        mean, lo, hi = _t_interval(d)
        assert r.arm == x and r.op == claims[pairs.index((x, y))]["op"] and r.paper_says == ""
        assert r.estimate == f"{x} − {y}: {_pp(mean)} [{_pp(lo)}, {_pp(hi)}]"
        assert r.interval == "95 %, unadjusted" and r.test == "paired t-test" and r.n == 5
        assert r.p == pytest.approx(p) and r.p_adj == pytest.approx(p_adj)
        assert r.p_exact == pytest.approx(px) and r.p_exact_adj == pytest.approx(px_adj)
        sd = float(d.std(ddof=1))
        assert r.sd == pytest.approx(sd)
        power = TTestPower()
        assert r.mde == pytest.approx(power.solve_power(nobs=5, alpha=level, power=0.8) * sd,
                                      rel=1e-6)
        assert r.effect == pytest.approx(effect)
        need = next(n for n in range(2, 10_000)
                    if power.power(abs(effect) / sd, n, level) >= 0.8)
        assert r.n_needed == need
        claimed = (mean > 0) == (r.op == ">")
        assert r.direction == (1 if claimed else -1)
        assert str(r.verdict) == ("not supported" if p_adj >= 0.05 else
                             "supported" if claimed else "contradicted")


def test_a_stated_effect_needs_both_published_numbers_and_must_be_an_amount():
    from sharpen.errors import SharpenError

    runs = _runs({"a": 0.95, "b": 0.90})
    claim = {"claim": "x", "arm": "a", "op": ">", "than": "b"}
    only_b = {"b": {"test_acc": 0.94}}
    only_a = {"a": {"test_acc": 0.94}}
    assert _one(claim, runs).effect is None
    for published in (only_a, only_b, {"a": {"test_acc": 0.9}, "b": {"val_acc": 0.8}}):
        (r,) = judge_family([claim], runs, published, sensitivity=False)
        assert r.effect is None and r.n_needed is None
    with pytest.raises(SharpenError, match=r"^effect: '80 pp' for test_acc is 80 pp"):
        _one({**claim, "effect": "80 pp"}, runs)
    # an equivalence claim asks the opposite question: no effect to detect, and no smallest
    # detectable difference either (it was printed for `~` claims, where it means nothing)
    (r,) = judge_family([{**claim, "op": "~", "tolerance": "1 pp"}], runs,
                        {"a": {"test_acc": 0.96}, "b": {"test_acc": 0.94}}, sensitivity=False)
    assert r.effect is None and r.n_needed is None and r.mde is None


def test_claims_on_another_metric_and_a_one_sample_equivalence():
    runs = Runs(values={a: {s: {"test_acc": 0.5, "val_acc": mu + NOISE[a][s]} for s in SEEDS}
                        for a, mu in (("a", 0.95), ("b", 0.90))})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b", "metric": "val_acc"}, runs)
    d = [runs.values["a"][s]["val_acc"] - runs.values["b"][s]["val_acc"] for s in SEEDS]
    assert r.metric == "val_acc" and r.p == pytest.approx(st.ttest_1samp(d, 0).pvalue)
    # one sample, ">" and "~": the arm against a fixed value
    xs = [runs.values["a"][s]["val_acc"] for s in SEEDS]
    r = _one({"claim": "x", "arm": "a", "op": ">", "value": 0.9, "metric": "val_acc"}, runs)
    assert r.direction == 1 and str(r.verdict) == "supported"
    assert r.p == pytest.approx(st.ttest_1samp(xs, 0.9).pvalue)
    r = _one({"claim": "x", "arm": "a", "op": "~", "value": 0.95, "tolerance": "2 pp",
              "metric": "val_acc"}, runs)
    d = np.subtract(xs, 0.95)
    mean, lo, hi = _t_interval(d, 0.90)
    assert r.estimate == f"a − 95.00 %: {_pp(mean)} [{_pp(lo)}, {_pp(hi)}]"
    tost_p = max(st.ttest_1samp(d + 0.02, 0, alternative="greater").pvalue,
                 st.ttest_1samp(d - 0.02, 0, alternative="less").pvalue)
    assert r.p == pytest.approx(tost_p) and str(r.verdict) == "supported"
    # a `~` claim without a tolerance: equivalence within 0, which no data can show
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "metric": "val_acc"}, runs)
    assert r.interval == "90 % (TOST, ± 0.00 pp)" and r.direction == -1


def test_paired_tost_with_spread_against_scipy_and_the_exact_one_sided_tests():
    runs = _runs({"a": 0.950, "b": 0.948})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": "1.5 pp"}, runs)
    d = np.subtract(_vals(runs, "a"), _vals(runs, "b"))
    mean, lo, hi = _t_interval(d, 0.90)
    assert r.estimate == f"a − b: {_pp(mean)} [{_pp(lo)}, {_pp(hi)}]"
    tost_p = max(st.ttest_1samp(d + 0.015, 0, alternative="greater").pvalue,
                 st.ttest_1samp(d - 0.015, 0, alternative="less").pvalue)
    assert r.p == pytest.approx(tost_p)
    assert r.p_exact == pytest.approx(max(_sign_flip_by_hand(d + 0.015, "greater"),
                                          _sign_flip_by_hand(d - 0.015, "less")))


def test_the_equivalence_margin_is_inclusive_paired_and_unpaired():
    # dyadic numbers: every difference and mean is exactly 0.25, the margin
    a = [0.5, 0.625, 0.75, 0.5, 0.625]
    b = [x - 0.25 for x in a]
    flat = Runs(values={"a": {s: {"test_acc": a[s]} for s in SEEDS},
                        "b": {s: {"test_acc": b[s]} for s in SEEDS}})
    claim = {"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.25}
    r = _one(claim, flat)
    assert r.direction == 1 and r.test == "exact sign-flip TOST (no spread)"
    unpaired = replace(flat, protocol={"a": "p1", "b": "p2"})
    r = _one(claim, unpaired)
    assert r.direction == 1 and r.interval == "90 % (TOST, ± 25.00 pp)"
    r = _one({**claim, "tolerance": 0.2}, unpaired)
    assert r.direction == -1


def test_unpaired_equivalence_is_judged_by_two_one_sided_welch_tests():
    # issue 32: the same question as paired TOST, never Welch's difference test
    runs = _runs({"a": 0.950, "b": 0.946}, protocol={"a": "p1", "b": "p2"})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": "2 pp"}, runs)
    xa, xb = np.array(_vals(runs, "a")), np.array(_vals(runs, "b"))
    va, vb = xa.var(ddof=1) / 5, xb.var(ddof=1) / 5
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 4)
    diff = xa.mean() - xb.mean()
    half = st.t.ppf(0.95, df) * math.sqrt(va + vb)  # the 90 % interval of TOST at 5 %
    assert r.estimate == f"a − b: {_pp(diff)} [{_pp(diff - half)}, {_pp(diff + half)}]"
    assert r.p == pytest.approx(max(
        st.ttest_ind(xa + 0.02, xb, equal_var=False, alternative="greater").pvalue,
        st.ttest_ind(xa - 0.02, xb, equal_var=False, alternative="less").pvalue))
    assert r.test == "TOST (Welch, unpaired)" and r.notes == ["unpaired (different protocols)"]
    assert r.p_exact is None  # no exact test without pairs


def test_rows_without_spread_say_which_test_spoke():
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in range(6)},
                        "b": {s: {"test_acc": 0.90} for s in range(6)}})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, flat)
    assert r.test == "exact sign-flip (no spread)" and r.p == pytest.approx(2 / 64)
    assert r.estimate == ("a − b: +5.00 pp (no spread: n = 6 identical differences; exact p = "
                          "0.0312)")
    assert str(r.verdict) == "supported" and r.notes == ["decided by the exact sign-flip test"]
    # unpaired and flat: no test at all, so nothing can be decided
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"},
             replace(flat, protocol={"a": "p1", "b": "p2"}))
    assert r.test == "none (no spread in either arm)" and r.p is None
    assert r.estimate == "a − b: +5.00 pp (no interval: none (no spread in either arm))"
    assert str(r.verdict) == "undecidable at n = 6"
    text, _ = claims_table([{"claim": "x", "arm": "a", "op": ">", "than": "b"}],
                           replace(flat, protocol={"a": "p1", "b": "p2"}))
    assert "(no interval: none (no spread in either arm)) |" in text
    # one sample without spread: the exact test, named as such
    r = _one({"claim": "x", "arm": "a", "op": ">", "value": 0.9}, flat)
    assert r.test == "exact sign-flip (no spread)" and r.p == pytest.approx(2 / 64)


def test_no_spread_in_a_family_of_two_is_undecidable_and_zero_differences_are_not():
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in range(6)},
                        "b": {s: {"test_acc": 0.90} for s in range(6)},
                        "c": {s: {"test_acc": 0.90 + NOISE["c"][s % 5]} for s in range(6)}})
    claims = [{"claim": "x", "arm": "a", "op": ">", "than": "b"},
              {"claim": "y", "arm": "c", "op": ">", "than": "b"}]
    r, other = judge_family(claims, flat, sensitivity=False)
    assert other.p > 0.05  # so the flat claim's Holm p is 2 × 2/64 = 0.0625
    assert r.p_adj == pytest.approx(0.0625) and str(r.verdict) == "undecidable at n = 6"
    assert r.notes == ["no spread, and the exact test cannot go below p = 0.0312 at n = 6; it "
                       "could decide from n = 7"]
    # ten identical zero differences: the exact test could decide at n = 10, it just does not
    zero = Runs(values={a: {s: {"test_acc": 0.9} for s in range(10)} for a in "ab"})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, zero)
    assert r.direction == 0 and r.p == 1.0 and str(r.verdict) == "not supported" and r.notes == []


def test_a_t_verdict_the_exact_test_does_not_share_says_so():
    d = [0.010, 0.012, 0.011, 0.013, 0.009, -0.001]
    runs = Runs(values={"a": {s: {"test_acc": 0.9 + x} for s, x in enumerate(d)},
                        "b": {s: {"test_acc": 0.9} for s in range(6)}})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, runs)
    assert r.p < 0.05 and str(r.verdict) == "supported"
    assert _sign_flip_by_hand(d) == pytest.approx(4 / 64) == r.p_exact
    assert r.notes == ["rests on the normal model: the exact sign-flip test gives p = 0.0625 "
                       "(Holm 0.0625); it does not reach the family's level with these "
                       "differences"]
    # ten seeds of a clear effect: both tests decide, no note
    big = Runs(values={"a": {s: {"test_acc": 0.95 + NOISE["a"][s % 5] / (1 + s)} for s in
                             range(10)}, "b": {s: {"test_acc": 0.90} for s in range(10)}})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, big)
    assert str(r.verdict) == "supported" and r.p_exact == pytest.approx(2 / 1024) and r.notes == []


def test_an_untested_or_undecidable_claim_does_not_stop_the_family():
    runs = _runs({"a": 0.95, "b": 0.90})
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in SEEDS},
                        "b": {s: {"test_acc": 0.90} for s in SEEDS}},
                protocol={"a": "p1", "b": "p2"})
    both = Runs(values={**runs.values, "f": flat.values["a"], "g": flat.values["b"]},
                protocol={"f": "p1", "g": "p2"})
    claims = [{"claim": "none", "arm": "zz", "op": ">", "than": "b"},
              {"claim": "one seed", "arm": "a", "op": ">", "than": "b"},
              {"claim": "flat", "arm": "f", "op": ">", "than": "g"},
              {"claim": "real", "arm": "a", "op": ">", "than": "b"}]
    one = Runs(values={**both.values, "a": {0: both.values["a"][0]}}, protocol=both.protocol)
    rows = judge_family(claims, both, sensitivity=False)
    assert [str(r.verdict) for r in rows[::2]] == ["untested (no test_acc for zz)",
                                              "undecidable at n = 5"]
    assert str(rows[3].verdict) == "supported"
    rows = judge_family(claims, one, sensitivity=False)
    assert str(rows[1].verdict) == "untested (n < 2)" and rows[1].estimate == "–"
    assert str(rows[2].verdict) == "undecidable at n = 5"


def test_pairing_follows_the_protocols_and_the_shared_seeds():
    runs = _runs({"a": 0.95, "b": 0.90}, protocol={"a": "p1"})  # one arm without a record
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, runs)
    assert r.test == "paired t-test" and not any("unpaired" in n for n in r.notes)
    assert Runs(protocol={"a": "p1", "b": "p1"}).comparable("a", "b")
    assert not Runs(protocol={"a": "p1", "b": "p2"}).comparable("a", "b")
    one_shared = _runs({"a": 0.95, "b": 0.90}, drop={"a": [0, 1, 2], "b": [3]})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, one_shared)
    assert r.notes == ["unpaired (1 shared seed)"] and r.test == "Welch t-test (unpaired)"


def test_best_picks_the_closest_rival_and_caps_its_bonferroni_p():
    runs = Runs(values={n: {s: {"test_acc": mu + NOISE[k][s]} for s in SEEDS}
                        for n, mu, k in (("ours", 0.95, "a"), ("near", 0.945, "b"),
                                         ("far", 0.90, "c"))})
    r = _judge_best({"claim": "x", "arm": "ours", "op": "best", "than": ["near", "far"]}, runs)
    p_near = float(st.ttest_rel(_vals(runs, "ours"), _vals(runs, "near")).pvalue)
    assert r.estimate.startswith("ours − near (closest rival): ") and r.p == pytest.approx(p_near)
    # a rival level with ours: a tie is no evidence against the claim
    tie = Runs(values={**runs.values, "twin": runs.values["ours"]})
    r = _judge_best({"claim": "x", "arm": "ours", "op": "best", "than": ["twin", "far"]}, tie)
    assert r.direction == 1 and r.p == 1.0
    # a rival a hair better, within the noise: 2 × its p, capped at 1
    bump = [0.003, -0.0028, 0.002, -0.0019, 0.0001]
    worse = Runs(values={**runs.values, "up": {s: {"test_acc": v["test_acc"] + bump[s]}
                                               for s, v in runs.values["ours"].items()}})
    r = _judge_best({"claim": "x", "arm": "ours", "op": "best", "than": ["up", "far"]}, worse)
    p_up = float(st.ttest_1samp(bump, 0).pvalue)
    assert r.direction == -1 and p_up > 0.5 and r.p == 1.0


def test_best_with_a_rival_that_has_no_test_has_no_p():
    ours = {s: {"test_acc": 0.95} for s in SEEDS}  # flat, as is the unpaired rival
    for level, noisy_mu, direction in ((0.80, 0.90, 1), (0.99, 0.97, -1)):
        runs = Runs(values={"ours": ours, "flat": {s: {"test_acc": level} for s in SEEDS},
                            "noisy": {s: {"test_acc": noisy_mu + NOISE["c"][s]} for s in SEEDS}},
                    protocol={"ours": "p1", "flat": "p2", "noisy": "p1"})
        r = _judge_best({"claim": "x", "arm": "ours", "op": "best"}, runs)
        assert r.direction == direction and r.p is None and r.p_exact is None
        if direction == 1:  # the rival without a p is the closest: nothing rules it out
            assert r.estimate == ("ours − flat (closest rival): +15.00 pp (no interval: none "
                                  "(no spread in either arm))")
        (row,) = judge_family([{"claim": "x", "arm": "ours", "op": "best"}], runs,
                              sensitivity=False)
        assert str(row.verdict) == "undecidable at n = 5"


def test_best_lists_every_left_out_seed():
    runs = Runs(values={"ours": {s: {"test_acc": 0.95 + NOISE["a"][s]} for s in SEEDS},
                        "other": {s: {"test_acc": 0.90 + NOISE["b"][s]} for s in (0, 1, 2)}})
    r = _judge_best({"claim": "x", "arm": "ours", "op": "best", "than": "other"}, runs)
    assert r.notes == ["seeds 3, 4 left out (in one arm only)"] and r.n == 3
    one = Runs(values={**runs.values, "other": {0: runs.values["other"][0]}},
               protocol={"ours": "p1", "other": "p2"})
    r = _judge_best({"claim": "x", "arm": "ours", "op": "best", "than": "other"}, one)
    assert r.n == 1 and r.estimate == "–" and r.p is None


def test_filling_lost_runs_keeps_their_other_metrics_and_every_arm():
    runs = Runs(values={"b": {0: {"test_acc": 0.5}, 1: {"test_acc": 0.7}, 2: {"val_acc": 0.6}}},
                status={"a": {0: "failed"}, "b": {0: "ok", 1: "ok", 2: "diverged"}})
    filled = _fill_lost(runs, "test_acc").values
    assert filled["b"][2] == {"val_acc": 0.6, "test_acc": 0.5} and "a" not in filled


def test_sensitivity_names_each_arm_and_kind_of_lost_run():
    runs = Runs(values={"ours": {s: {"test_acc": 0.95 + NOISE["a"][s]} for s in SEEDS},
                        "base": {s: {"test_acc": 0.90 + NOISE["b"][s]} for s in (0, 1, 2)}},
                status={"ours": {**{s: "ok" for s in SEEDS}, 5: "corrupt"},
                        "base": {0: "ok", 1: "ok", 2: "ok", 3: "failed", 4: "corrupt"}})
    runs.values["tidy"] = runs.values["ours"]
    claims = [{"claim": "clean", "arm": "tidy", "op": "~", "value": 0.95, "tolerance": "2 pp"},
              {"claim": "x", "arm": "ours", "op": ">", "than": "base"},
              {"claim": "y", "arm": "ours", "op": "best", "than": ["base"]}]
    rows = judge_family(claims, runs)
    assert rows[1].lost == "ours: 1 corrupt; base: 1 failed, 1 corrupt" == rows[2].lost
    assert rows[0].lost == ""


def test_a_claims_table_from_plain_values():
    values = {a: {s: {"test_acc": mu + NOISE[a][s]} for s in SEEDS}
              for a, mu in (("a", 0.95), ("b", 0.90))}
    text, rows = claims_table([{"claim": "x", "arm": "a", "op": ">", "than": "b"}], values,
                              {"a": {"test_acc": 0.95}, "b": {"test_acc": 0.93}})
    assert str(rows[0].verdict) == "supported" and rows[0].effect == pytest.approx(0.02)
    assert "| detectable at n (80 %) | n for the paper's effect | notes |" in text
    assert "| Holm p |" in text and f"for {_pp(0.02)} |" in text
