"""The pieces of a claims table, each against an independent computation: "best" and
"worst" (intersection–union over rivals), the table row as printed, lost-run sensitivity
and formatting (the functions `make mutate` found under-tested in reports/claims.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sharpen.metrics import get_metric
from sharpen.reports.claims import (
    ClaimResult,
    Runs,
    _best,
    _fill_lost,
    _p,
    claims_table,
    fmt_value,
    judge_family,
)

M = get_metric("test_acc")
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
    out, _ = _best(r, M, claim, runs, mine)
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
    assert r.verdict == "untested (no test_acc for zz)" and r.p is None
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
    assert r.direction == -1 and r.verdict == "contradicted"
    # different protocols: unpaired, said so, judged by Welch
    runs = _runs({"a": 0.95, "b": 0.90}, protocol={"a": "p1", "b": "p2"})
    r = _one({"claim": "x", "arm": "a", "op": ">", "than": "b"}, runs)
    assert r.notes == ["unpaired (different protocols)"] and r.test == "Welch t-test (unpaired)"
    # a fixed value: a one-sample t-test on the arm
    r = _one({"claim": "x", "arm": "a", "op": "<", "value": 0.99}, _runs({"a": 0.95}))
    assert r.test == "one-sample t-test" and r.estimate.startswith("a − 99.00 %: -")
    assert r.verdict == "supported"


def test_equivalence_rows_inside_and_outside_the_margin():
    runs = _runs({"a": 0.950, "b": 0.949})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.02}, runs)
    assert r.interval == "90 % (TOST, ± 2.00 pp)" and r.test == "TOST (paired t)"
    assert r.direction == 1 and r.verdict == "supported"
    runs = _runs({"a": 0.95, "b": 0.90})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.01}, runs)
    assert r.test == "one-sided t beyond the margin" and r.direction == -1
    assert r.p_exact is None and r.verdict == "contradicted"
    flat = Runs(values={"a": {s: {"test_acc": 0.95} for s in SEEDS},
                        "b": {s: {"test_acc": 0.949} for s in SEEDS}})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.01}, flat)
    assert r.test == "exact sign-flip TOST (no spread)"
    assert r.estimate == ("a − b: +0.10 pp (no spread: n = 5 identical differences; exact p = "
                          "0.0312)")
    unpaired = _runs({"a": 0.950, "b": 0.949}, protocol={"a": "p1", "b": "p2"})
    r = _one({"claim": "x", "arm": "a", "op": "~", "than": "b", "tolerance": 0.02}, unpaired)
    assert r.interval == "95 %" and r.test == "Welch t-test (unpaired)" and r.direction == 1
