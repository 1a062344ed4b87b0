"""A claim operator is one entry of ``sharpen.verdicts.OPS``, and a verdict one value with
one spelling (issue 33, item 6).

- A throwaway operator registered in a test (nothing else changed) is accepted by the
  experiment file, checked for its keys, judged by the test it names and decided at a
  sequential look, exactly as the operator it copies.
- Every registered operator judges the side it names, against scipy's paired t-test.
- A verdict prints one way wherever it is printed (the table, the report's JSON, notes).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from sharpen import SharpenError
from sharpen.experiments import load_experiment
from sharpen.reports.claims import Runs, judge, judge_family
from sharpen.reports.sequential import decide
from sharpen.verdicts import OPS, Op, Outcome, Verdict, get_op

BASE = """name = "ops"
dataset = "synthetic"
train_size = 100
test_size = 50
epochs = 1
runs = 2
[arms.a]
[arms.b]
lr = 0.02
"""


def _claim(op: str, **keys: object) -> str:
    lines = ["[[claims]]", 'claim = "c0"', 'arm = "a"', f"op = {json.dumps(op)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return BASE + "\n".join(lines) + "\n"


def _values(shift: float, n: int = 6, seed: int = 0) -> dict:
    """Arm a = arm b + shift + noise, per seed (paired), on test_acc."""
    rng = np.random.default_rng(seed)
    b = 0.80 + 0.01 * rng.standard_normal(n)
    a = b + shift + 0.004 * rng.standard_normal(n)
    return {"a": {s: {"test_acc": float(x)} for s, x in enumerate(a)},
            "b": {s: {"test_acc": float(x)} for s, x in enumerate(b)}}


def test_a_new_operator_is_one_registry_entry(tmp_path, monkeypatch):
    p = tmp_path / "e.toml"
    p.write_text(_claim("above", than="b"))
    with pytest.raises(SharpenError, match=r"field claims\.0\.op: Input should be '>', '<', '~', "
                                           r"'best', 'worst', 'P>' or 'P<' \(got 'above'\)"):
        load_experiment(str(p))
    monkeypatch.setitem(OPS, "above", Op("above", "higher than", +1))
    exp = load_experiment(str(p))  # the file reads it now: nothing else was changed
    assert exp.claims[0].op == "above"
    p.write_text(_claim("above", than="b", tolerance="1 pp"))  # its own key check
    with pytest.raises(SharpenError, match=r"claims\[0\]\.tolerance: op 'above' has no margin"):
        load_experiment(str(p))
    values = _values(0.01)
    new = judge({"claim": "x", "arm": "a", "op": "above", "than": "b"}, values)
    old = judge({"claim": "x", "arm": "a", "op": ">", "than": "b"}, values)
    d = [values["a"][s]["test_acc"] - values["b"][s]["test_acc"] for s in range(6)]
    assert new["p"] == pytest.approx(stats.ttest_rel(d, [0.0] * 6).pvalue, rel=1e-9)
    assert new["verdict"] == old["verdict"] == "supported"
    assert {k: v for k, v in new.items() if k != "op"} == {k: v for k, v in old.items()
                                                          if k != "op"}
    assert decide(0.001, 1, "above", 0.01) == decide(0.001, 1, ">", 0.01) == "supported"


@pytest.mark.parametrize("shift", [0.02, -0.02])
def test_every_operator_judges_the_side_it_names(shift):
    """A clear paired difference: each op's verdict from the sign of the difference and
    the side the op names; p from scipy's paired t-test (TOST's margin excludes it)."""
    values = _values(shift)
    d = [values["a"][s]["test_acc"] - values["b"][s]["test_acc"] for s in range(6)]
    p = stats.ttest_rel(d, [0.0] * 6).pvalue
    assert p < 1e-4
    want = {">": shift > 0, "<": shift < 0, "best": shift > 0, "worst": shift < 0}
    for name, op in OPS.items():
        claim = {"claim": "x", "arm": "a", "op": name, "than": "b", "tolerance": 0.001}
        r = judge_family([claim], Runs(values=values))[0]
        if op.chance:  # the exact binomial test of the seeds' wins at the default 0.75
            wins = sum(x * op.side > 0 for x in d)
            assert wins in (0, 6)
            q = min(1.0, 2 * min(stats.binomtest(wins, 6, 0.75, "greater").pvalue,
                                 stats.binomtest(wins, 6, 0.75, "less").pvalue))
            assert r.p == pytest.approx(q, rel=1e-9), name
            # 6 of 6 wins (p = 2·0.75⁶) cannot support it; 0 of 6 contradict it
            assert r.verdict.outcome is (Outcome.NOT_SUPPORTED if wins else
                                         Outcome.CONTRADICTED), name
            continue
        if op.margin:  # 2 pp apart, 0.1 pp margin: outside, on either side; p beyond it
            side = "greater" if shift > 0 else "less"
            beyond = stats.ttest_1samp([x - 0.001 if shift > 0 else x + 0.001 for x in d],
                                       0.0, alternative=side).pvalue
            assert r.p == pytest.approx(min(1.0, 2 * beyond), rel=1e-9), name
            assert r.test == "t beyond the margin, one-sided × 2", name
            assert r.verdict.outcome is Outcome.CONTRADICTED and r.direction == -1
            continue
        assert r.p == pytest.approx(p, rel=1e-9), name
        assert r.verdict.outcome is (Outcome.SUPPORTED if want[name] else
                                     Outcome.CONTRADICTED), name
        assert r.direction == (1 if want[name] else -1), name
        assert op.decide(r.p, r.direction, 0.01) is r.verdict.outcome, name


def test_an_equivalence_inside_its_margin_is_judged_by_tost():
    from statsmodels.stats.weightstats import ttost_paired

    values = _values(0.0)
    a = np.array([values["a"][s]["test_acc"] for s in range(6)])
    b = np.array([values["b"][s]["test_acc"] for s in range(6)])
    for name, op in OPS.items():
        if not op.margin:
            continue
        r = judge_family([{"claim": "x", "arm": "a", "op": name, "than": "b",
                           "tolerance": 0.02}], Runs(values=values))[0]
        assert r.test == "TOST (paired t)" and r.direction == 1
        assert r.p == pytest.approx(ttost_paired(a, b, -0.02, 0.02)[0], rel=1e-9)
        assert r.verdict.outcome is Outcome.SUPPORTED


def test_an_equivalence_is_decided_at_half_the_threshold_and_refused_beyond_at_the_whole():
    op = get_op("~")
    assert op.decide(0.004, 1, 0.01) is Outcome.SUPPORTED
    assert op.decide(0.006, 1, 0.01) is None and op.support_threshold(0.01) == 0.005
    assert op.decide(0.01, -1, 0.01) is Outcome.CONTRADICTED
    assert op.decide(0.011, -1, 0.01) is None and op.decide(None, 1, 0.01) is None
    assert get_op(">").decide(0.01, -1, 0.01) is Outcome.CONTRADICTED
    assert get_op("<").support_threshold(0.01) == 0.01
    with pytest.raises(SharpenError, match=r"op: '=' is not an op; ops: '>' \(higher than\)"):
        get_op("=")


def test_a_verdict_prints_one_way_wherever_it_is_printed():
    assert [str(v) for v in (Verdict(Outcome.SUPPORTED), Verdict(Outcome.NOT_SUPPORTED),
                             Verdict(Outcome.CONTRADICTED), Verdict.undecidable(3),
                             Verdict.untested(), Verdict.missing("gap", "b"))] == [
        "supported", "not supported", "contradicted", "undecidable at n = 3",
        "untested (n < 2)", "untested (no gap for b)"]
    values = _values(0.02)
    rows = judge_family([{"claim": "x", "arm": "a", "op": ">", "than": "b"},
                         {"claim": "y", "arm": "a", "op": ">", "than": "zz"}],
                        Runs(values=values))
    assert rows[0].verdict == Verdict(Outcome.SUPPORTED)
    assert rows[1].verdict == Verdict.missing("test_acc", "zz")  # not re-judged by n
    assert [r.as_dict()["verdict"] for r in rows] == ["supported", "untested (no test_acc for zz)"]
    json.dumps([r.as_dict() for r in rows])  # the report's JSON holds the text


def _c(**keys: object) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(**{"than": None, "value": None, "tolerance": None,
                              "metric": "test_acc", **keys})


@pytest.mark.parametrize("op, keys, message", [
    ("~", {"than": "b"}, "claims[0].tolerance: a '~' claim needs a margin > 0, e.g. "
                         "tolerance = \"1 pp\""),
    (">", {}, "claims[0]: op '>' needs exactly one of than (an arm) or value (a fixed number)"),
    (">", {"than": ["b", "c"]}, "claims[0].than: op '>' compares with one arm, not a list"),
    (">", {"value": 90}, "claims[0].value: 90 is not a fraction of 1; test_acc is written as a "
                         "fraction (90 % is 0.9)"),
    (">", {"value": -0.1}, "claims[0].value: -0.1 is below test_acc's range [0, 1]; give a "
                           "fraction in it (90 % is 0.9)"),
    (">", {"than": "b", "tolerance": 0.01}, "claims[0].tolerance: op '>' has no margin "
     "(tolerance is for '~', equal within ± tolerance); drop it, or use op = \"~\""),
    ("best", {"value": 0.9}, "claims[0].value: op 'best' compares with other arms, not a "
     "number; give than = an arm or a list of arms (or leave it out: every other arm), or use "
     "op '>' / '<' with value"),
    ("best", {"tolerance": 0.01}, "claims[0].tolerance: op 'best' has no margin (tolerance is "
                                  "for '~'); drop it"),
    ("best", {"than": ["b", "b"]}, "claims[0].than: ['b', 'b'] names an arm twice; name each "
                                   "rival once"),
])
def test_each_refusal_says_exactly_what_is_wrong_and_what_is_allowed(op, keys, message):
    with pytest.raises(SharpenError) as err:
        get_op(op).check(_c(**keys), "claims[0]")
    assert str(err.value) == message


def test_the_edges_of_a_value_and_of_a_rival_name_are_accepted():
    get_op(">").check(_c(value=1.0), "c")  # 100 %: the top of the range, a fraction still
    get_op(">").check(_c(value=0.0), "c")  # the bottom of accuracy's range
    get_op(">").check(_c(value=-1.0, metric="gap"), "c")  # the gap's range starts at -1
    with pytest.raises(SharpenError, match="not a fraction of 1"):
        get_op(">").check(_c(value=1.5), "c")
    get_op("best").check(_c(than="bb"), "c")  # one rival named by a string, not its letters


def test_a_look_decides_at_its_threshold_exactly():
    gt, eq = get_op(">"), get_op("~")
    assert gt.decide(0.01, +1, 0.01) is Outcome.SUPPORTED
    assert gt.decide(0.01, -1, 0.01) is Outcome.CONTRADICTED
    assert gt.decide(0.0100001, +1, 0.01) is None
    half = eq.support_threshold(0.01)
    assert eq.decide(half, +1, 0.01) is Outcome.SUPPORTED
    assert eq.decide(half * 1.0001, +1, 0.01) is None
    assert eq.decide(0.01, -1, 0.01) is Outcome.CONTRADICTED


def test_an_untested_verdict_without_a_reason_says_n_below_2():
    assert str(Verdict(Outcome.UNTESTED)) == "untested (n < 2)"


def test_an_unknown_op_lists_every_op_with_its_meaning():
    with pytest.raises(SharpenError) as err:
        get_op("=")
    assert str(err.value) == "op: '=' is not an op; ops: " + ", ".join(
        f"{o!r} ({op.means})" for o, op in OPS.items())
