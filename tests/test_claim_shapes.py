"""Every claim an experiment file can write either means something that is judged as it
reads, or is refused when the file is read (issue 32: no silent wrong answer).

- A: each op × (than / value / tolerance) combination: the accepted ones are exactly those
  with a meaning; the rest are refused naming the file, the claim, the field and what is
  allowed (``op = "best"`` with ``value`` was judged as ``<``).
- B: a ``best``/``worst`` claim's rivals include an arm whose runs all failed or diverged:
  the claim is untested, naming that arm (it was dropped, making "best" easier to reach).
"""

from __future__ import annotations

import itertools
import json

import pytest
from scipy import stats

from sharpen import SharpenError
from sharpen.cli import main
from sharpen.experiments import load_experiment
from sharpen.reports.claims import claims_table, load_runs
from tests.test_verdicts import _dir

BASE = """name = "shapes"
dataset = "synthetic"
train_size = 100
test_size = 50
epochs = 1
runs = 2
[arms.a]
[arms.b]
[arms.c]
lr = 0.02
"""


def _toml(claim: dict) -> str:
    lines = ["[[claims]]", 'claim = "c0"', 'arm = "a"']
    for k, v in claim.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return BASE + "\n".join(lines) + "\n"


THAN = {"none": None, "one": "b", "list1": ["b"], "list2": ["b", "c"], "empty": [],
        "self": "a", "twice": ["b", "b"]}
# the accepted shapes, each with its meaning (tests/test_claims_units.py judges each):
# < and >: against one arm or a fixed number; ~: the same within a margin > 0;
# best/worst: against one arm, a list of arms, or (than left out) every other arm
ACCEPTED = {(op, than, val, False) for op in "<>" for than, val in (("one", False), ("none", True))}
ACCEPTED |= {("~", than, val, True) for than, val in (("one", False), ("none", True))}
ACCEPTED |= {(op, than, False, False) for op in ("best", "worst")
             for than in ("none", "one", "list1", "list2")}


def test_every_op_than_value_tolerance_combination_is_meant_or_refused(tmp_path):
    seen = set()
    for op, than, val, tol in itertools.product(
            ["<", ">", "~", "best", "worst"], THAN, [False, True], [False, True]):
        claim = {"op": op}
        if THAN[than] is not None:
            claim["than"] = THAN[than]
        if val:
            claim["value"] = 0.5
        if tol:
            claim["tolerance"] = "1 pp"
        p = tmp_path / "e.toml"
        p.write_text(_toml(claim))
        try:
            exp = load_experiment(str(p))
        except SharpenError as exc:
            msg = str(exc)
            # names the file and the claim; the field where one key is at fault
            assert msg.startswith(f"{p}: field claims[0]"), (op, than, val, tol, msg)
            continue
        seen.add((op, than, val, tol))
        assert exp.claims[0].op == op
    assert seen == ACCEPTED


@pytest.mark.parametrize("claim,field,allowed", [
    ({"op": "best", "value": 0.5}, "claims[0].value", "compares with other arms, not a number"),
    ({"op": "worst", "value": 0.5}, "claims[0].value", "give than = an arm or a list of arms"),
    ({"op": "best", "tolerance": "1 pp"}, "claims[0].tolerance", "has no margin"),
    ({"op": ">", "than": "b", "tolerance": "1 pp"}, "claims[0].tolerance", "tolerance is for '~'"),
    ({"op": ">", "value": 90}, "claims[0].value", "written as a fraction (90 % is 0.9)"),
    ({"op": ">", "value": -0.1}, "claims[0].value", "-0.1 is below test_acc's range [0, 1]"),
    ({"op": "best", "than": []}, "claims[0].than", "leave than out to compare with every other"),
    ({"op": "best", "than": ["b", "a"]}, "claims[0].than", "the claim's own arm"),
    ({"op": "<", "than": "a"}, "claims[0].than", "the claim's own arm"),
    ({"op": "worst", "than": ["c", "c"]}, "claims[0].than", "names an arm twice"),
])
def test_sharpen_run_refuses_a_claim_shape_without_a_meaning(tmp_path, capsys, claim, field,
                                                              allowed):
    """What a user meets: `sharpen run` stops before training, naming file, field and fix."""
    p = tmp_path / "e.toml"
    p.write_text(_toml(claim))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{p}: field {field}" in err and allowed in err, err
    assert not (tmp_path / "out").exists()  # nothing trained


def _acc(base: float, n: int = 6) -> dict[int, float]:
    return {s: base + s / 1000 + (0.001 if s % 2 else -0.001) * s for s in range(n)}


def test_a_directory_holding_a_best_claim_with_a_value_is_refused_by_report(tmp_path, capsys):
    """A directory written before the file refused it: `sharpen report` says why instead of
    judging "a best, value 0.95" as "a < 0.95" (which the numbers below support)."""
    claim = [{"claim": "a is best", "arm": "a", "op": "best", "value": 0.95}]
    d = _dir(tmp_path / "d", {"a": _acc(0.90), "b": _acc(0.85)}, claim)
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert "'a is best'" in err and "op 'best' compares with other arms, not a value" in err


def test_a_best_claim_whose_rival_never_finished_is_untested_naming_it(tmp_path):
    """c's runs all diverged: "a is best" among a, b, c cannot be tested. It was supported
    (c dropped); a careful researcher wants the claim untested with c named, as when an
    explicit than names an arm that was not run."""
    claims = [{"claim": "a is best", "arm": "a", "op": "best"},
              {"claim": "a is best of b, c", "arm": "a", "op": "best", "than": ["b", "c"]},
              {"claim": "b is worst", "arm": "b", "op": "worst"}]
    a, b = _acc(0.92), {s: 0.85 + s / 1000 + (s % 3) / 500 for s in range(6)}
    d = _dir(tmp_path / "d", {"a": a, "b": b, "c": dict.fromkeys(range(6), "diverged")}, claims)
    assert main(["report", str(d)]) == 0
    md = (d / "report.md").read_text()
    for name in ("a is best", "a is best of b, c", "b is worst"):
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))
        assert "**untested (no test_acc for c)**" in row, row
    # without c the same numbers decide: a beats b by the paired t-test, as scipy says
    p = stats.ttest_rel([a[s] for s in a], [b[s] for s in b]).pvalue
    assert p < 0.01
    _, rows = claims_table([claims[0]], load_runs(d).only(set(range(6))))
    assert str(rows[0].verdict) == "untested (no test_acc for c)"
    d2 = _dir(tmp_path / "d2", {"a": a, "b": b}, claims[:1])
    _, rows = claims_table(claims[:1], load_runs(d2))
    assert str(rows[0].verdict) == "supported" and rows[0].p == pytest.approx(p)


def test_a_best_claims_implicit_rivals_lost_runs_are_counted_beside_it(tmp_path):
    """A rival with some ok runs stays judged on them (diverged runs are not values), and its
    lost runs are shown beside the claim as for an explicit than."""
    b: dict[int, float | str] = {s: 0.85 + s / 1000 + (s % 3) / 500 for s in range(8)}
    b[2] = "diverged"
    claims = [{"claim": "a is best", "arm": "a", "op": "best"}]
    d = _dir(tmp_path / "d", {"a": _acc(0.92, 8), "b": b}, claims)
    assert main(["report", str(d)]) == 0
    row = next(ln for ln in (d / "report.md").read_text().splitlines()
               if ln.startswith("| a is best |"))
    assert "**supported**" in row and "(b: 1 diverged not counted)" in row, row
