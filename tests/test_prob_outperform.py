"""The probability of outperforming as a claim (issue 35, item 4): ``op = "P>"`` (``"P<"``)
with ``threshold = γ`` says a run of the arm beats the run of ``than`` with the same seed
with a chance above γ (Bouthillier et al. 2021).

- The estimate, interval and p against a hand count of the pairs and scipy's exact
  binomial test and Clopper–Pearson interval; the interval and the verdict agree at every
  outcome (supported exactly when the lower bound lies above γ, for a family of one).
- By simulation (fixed seeds): at a true P(A > B) of exactly γ the claim is supported at
  most at its level, ties or none; the interval covers the true chance at ≥ 93 %.
- In a Holm family with the other ops; refused by the file outside (0.5, 1) or with keys
  it does not read; refused by --until-decided.
- Through the CLI: a tiny experiment's report.md and terminal summary (a pipe, and tmux at
  80 and 120 columns) show the claim with its estimate, interval and threshold.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from sharpen import SharpenError
from sharpen.experiments import load_experiment
from sharpen.reports.claim_map import claim_maps, map_table
from sharpen.reports.claims import Runs, judge, judge_family
from sharpen.reports.stats import outperform, outperform_decides_from
from sharpen.verdicts import OPS, Outcome

SHARPEN = Path(sys.executable).with_name("sharpen")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _values(a: list[float], b: list[float], metric: str = "test_acc") -> dict:
    return {"a": {s: {metric: float(x)} for s, x in enumerate(a)},
            "b": {s: {metric: float(x)} for s, x in enumerate(b)}}


def _claim(op: str = "P>", **keys: object) -> dict:
    return {"claim": "a outperforms b", "arm": "a", "op": op, "than": "b", **keys}


# --- the estimator against a direct computation ---------------------------------------------------

def _hand(a: list[float], b: list[float]) -> tuple[int, int]:
    wins = ties = 0
    for x, y in zip(a, b):
        if x > y:
            wins += 1
        elif x == y:
            ties += 1
    return wins, ties


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [0.6, 0.75, 0.9])
def test_estimate_interval_and_p_against_a_hand_count_and_scipys_binomial(seed, gamma):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 30))
    # accuracies on 50 test images: ties happen
    a = list(rng.integers(30, 46, n) / 50)
    b = list(rng.integers(28, 44, n) / 50)
    wins, ties = _hand(a, b)
    o = outperform(list(zip(a, b)), gamma)
    assert (o.n, o.wins, o.ties) == (n, wins, ties)
    assert o.estimate == pytest.approx((wins + ties / 2) / n, abs=1e-12)
    # the lower bound from the wins (a tie is no win), the upper from wins + ties
    lo = stats.binomtest(wins, n).proportion_ci(0.95, method="exact").low
    hi = stats.binomtest(wins + ties, n).proportion_ci(0.95, method="exact").high
    assert o.ci_low == pytest.approx(lo, abs=1e-9) and o.ci_high == pytest.approx(hi, abs=1e-9)
    up = stats.binomtest(wins, n, gamma, alternative="greater").pvalue
    down = stats.binomtest(wins + ties, n, gamma, alternative="less").pvalue
    assert o.p == pytest.approx(min(1.0, 2 * min(up, down)), rel=1e-9)
    assert o.direction == (1 if up < down else -1)
    # through the claim: the same numbers, and P< is P> with the arms' values negated
    r = judge(_claim(threshold=gamma), _values(a, b))
    assert r["n"] == n and r["p"] == pytest.approx(o.p, rel=1e-12)
    assert r["estimate"] == (f"P(a > b) = {o.estimate:.2f} [{o.ci_low:.2f}, {o.ci_high:.2f}], "
                             f"threshold {gamma:g}")
    lower = judge(_claim("P<", threshold=gamma), _values(a, b))
    w_lt, _ = _hand(b, a)
    assert f"{w_lt} of {n} seeds won" in lower["test"]


@pytest.mark.parametrize("n", [2, 5, 13, 14, 20, 40])
@pytest.mark.parametrize("gamma", [0.55, 0.75, 0.9])
def test_the_verdict_of_a_claim_alone_is_its_intervals_position_at_every_outcome(n, gamma):
    """Every outcome (k wins, t ties) of n seeds: supported exactly when the interval's lower
    bound lies above γ, contradicted exactly when its upper bound lies below γ."""
    for k in range(n + 1):
        for t in (0, 1) if k < n else (0,):
            a = [1.0] * k + [0.5] * t + [0.0] * (n - k - t)
            r = judge_family([_claim(threshold=gamma)],
                             Runs(values=_values(a, [0.5] * n)))[0]
            o = outperform(list(zip(a, [0.5] * n)), gamma)
            want = (Outcome.SUPPORTED if o.ci_low > gamma else
                    Outcome.CONTRADICTED if o.ci_high < gamma else None)
            if want is not None:
                assert r.verdict.outcome is want, (n, k, t, o)
            else:
                assert r.verdict.outcome in (Outcome.NOT_SUPPORTED, Outcome.UNDECIDABLE)
            # "undecidable" exactly when no outcome at n could be significant
            floor = 2 * (1 - gamma) ** n
            assert (r.verdict.outcome is Outcome.UNDECIDABLE) == (floor >= 0.05 and
                                                                   want is None), (n, k)


def test_the_n_a_claim_needs_to_be_supported_alone():
    # 2γⁿ < level: at γ = 0.75 and 5 %, 13 seeds (2·0.75¹² = 0.063, 2·0.75¹³ = 0.048)
    for gamma, level in ((0.75, 0.05), (0.75, 0.025), (0.6, 0.05), (0.9, 0.05)):
        n = outperform_decides_from(gamma, level)
        assert 2 * gamma ** n < level <= 2 * gamma ** (n - 1), (gamma, level, n)
    r = judge_family([_claim()], Runs(values=_values([1.0] * 10, [0.0] * 10)))[0]
    assert r.verdict.outcome is Outcome.NOT_SUPPORTED  # 10 of 10: p = 2·0.75¹⁰ = 0.11
    assert any(f"it could from n = {outperform_decides_from(0.75, 0.05)}" in x
               for x in r.notes), r.notes
    assert outperform_decides_from(0.75, 0.05) == 13
    r = judge_family([_claim()], Runs(values=_values([1.0] * 13, [0.0] * 13)))[0]
    assert r.verdict.outcome is Outcome.SUPPORTED and r.p == pytest.approx(2 * 0.75 ** 13)


# --- by simulation ---------------------------------------------------------------------------------

def _supported_rate(gamma: float, n: int, sims: int, ties: float, seed: int) -> float:
    """Data sets whose true P(A > B) + P(A = B)/2 is exactly γ (per seed: a win with chance
    γ − ties/2, a tie with chance ``ties``), each judged as a claim alone."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sims):
        u = rng.random(n)
        a = np.where(u < gamma - ties / 2, 1.0, np.where(u < gamma + ties / 2, 0.5, 0.0))
        a = a + 0.01 * rng.random(n) * (a != 0.5)  # untied values vary
        r = judge_family([_claim(threshold=gamma)],
                         Runs(values=_values(list(a), [0.5] * n)))[0]
        hits += r.verdict.outcome is Outcome.SUPPORTED
    return hits / sims


@pytest.mark.parametrize("gamma,n,ties", [(0.75, 20, 0.0), (0.75, 30, 0.2), (0.6, 16, 0.0)])
def test_at_a_true_chance_of_exactly_the_threshold_it_is_supported_at_most_at_its_level(
        gamma, n, ties):
    """Measured (1,500 data sets each, fixed seeds): 2.7 % at γ = 0.75, n = 20 (exact
    size 2.43 %: the Monte Carlo's sd is 0.4 pp); 0.07 % at γ = 0.75, n = 30 with 20 %
    ties (exact 0.03 %: a tie is no win for the lower bound); 2.2 % at γ = 0.6, n = 16
    (exact 1.83 %). The exact size, summed over the binomial, is at most the 2.5 % a
    claim's side is tested at (5 % two-sided, the family's level), and the measured rate
    agrees with it within Monte Carlo error."""
    rate = _supported_rate(gamma, n, 1500, ties, seed=n)
    p_win = gamma - ties / 2  # a tie is no win for the lower bound
    k = next(k for k in range(n + 2) if stats.binom.sf(k - 1, n, gamma) < 0.025)
    exact = stats.binom.sf(k - 1, n, p_win)  # P(wins ≥ k): the chance it is supported
    assert exact <= 0.025
    assert rate <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / 1500), rate  # and Monte Carlo agrees
    assert abs(rate - exact) <= 3 * np.sqrt(exact * (1 - exact) / 1500) + 1e-9, (rate, exact)


def test_the_interval_covers_the_true_chance():
    """Coverage over 500 data sets per case (fixed seeds), seed-matched runs sharing a
    seed's noise, whose difference has P(A > B) = Φ(μ): measured 98.0 % (P = 0.6, n = 10),
    96.6 % (0.75, 20), 99.0 % (0.9, 12), 98.2 % (0.75, 40) — Clopper–Pearson is
    conservative — never below 95 % − 2 pp."""
    rng = np.random.default_rng(7)
    for p_true, n in ((0.6, 10), (0.75, 20), (0.9, 12), (0.75, 40)):
        mu = stats.norm.ppf(p_true)
        hits = 0
        for _ in range(500):
            shared = rng.normal(0.9, 0.02, n)  # what a seed gives both arms
            b = shared + 0.01 * rng.standard_normal(n)
            a = b + 0.01 * (mu + rng.standard_normal(n))
            o = outperform(list(zip(a, b)), 0.75)
            hits += o.ci_low <= p_true <= o.ci_high
        assert hits / 500 >= 0.93, (p_true, n, hits)


# --- in the family, and as the file writes it ------------------------------------------------------

def test_a_chance_claim_joins_the_holm_family_like_the_others():
    rng = np.random.default_rng(3)
    b = 0.8 + 0.01 * rng.standard_normal(16)
    a = b + 0.004 + 0.004 * rng.standard_normal(16)
    claims = [_claim(), _claim(">"), _claim("~", tolerance=0.01), _claim("P<", threshold=0.6)]
    rows = judge_family(claims, Runs(values=_values(list(a), list(b))))
    ps = [r.p for r in rows]
    assert all(p is not None for p in ps)
    want = multipletests(ps, method="holm")[1]
    assert [r.p_adj for r in rows] == pytest.approx(list(want), rel=1e-12)
    assert rows[0].mde is None and rows[0].n_needed is None  # no t-test power for a chance


def test_a_grids_claim_map_shows_the_chance_in_every_cell():
    rng = np.random.default_rng(0)
    cells = {f"{arm}__lr-{lr}": {"arm": arm, "lr": lr} for arm in "ab" for lr in (0.1, 0.2)}
    cfg = {"grid": {"lr": [0.1, 0.2]}, "cells": cells,
           "claims": [{"claim": "c", "arm": "a", "op": "P>", "than": "b", "threshold": 0.6}]}
    vals = {arm: {s: {"test_acc": 0.8 + 0.01 * float(rng.standard_normal())
                      + (0.02 if arm.startswith("a") else 0.0)} for s in range(10)}
            for arm in cells}
    cm = claim_maps(cfg, Runs(values=vals))[0]
    table = map_table(cm)
    ps = []
    for c in cm.cells:
        a, b = (f"{x}__lr-{c.point['lr']}" for x in "ab")
        wins, _ = _hand([vals[a][s]["test_acc"] for s in range(10)],
                        [vals[b][s]["test_acc"] for s in range(10)])
        ps.append(min(1.0, 2 * min(stats.binomtest(wins, 10, 0.6, "greater").pvalue,
                                   stats.binomtest(wins, 10, 0.6, "less").pvalue)))
        assert c.result.p == pytest.approx(ps[-1], rel=1e-9)
        assert f"| {c.point['lr']} | P({a} > {b}) = " in table, table  # the chance, not "–"
    assert [c.result.p_adj for c in cm.cells] == pytest.approx(
        list(multipletests(ps, method="holm")[1]), rel=1e-12)  # the cells: one family


BASE = """name = "chance"
dataset = "synthetic"
train_size = 100
test_size = 50
epochs = 1
runs = 2
[arms.a]
[arms.b]
lr = 0.02
[[claims]]
claim = "c0"
arm = "a"
"""


@pytest.mark.parametrize("extra,msg", [
    ('op = "P>"\nthan = "b"\nthreshold = 0.5', r"claims\[0\]\.threshold: 0\.5 is not in \(0\.5, 1\)"),
    ('op = "P>"\nthan = "b"\nthreshold = 1', r"claims\[0\]\.threshold: 1\.0 is not in \(0\.5, 1\)"),
    ('op = "P<"\nthan = "b"\nthreshold = 75', r"claims\[0\]\.threshold: 75\.0 is not in \(0\.5, 1\)"),
    ('op = "P>"\nthan = "b"\nthreshold = nan', r"claims\[0\]\.threshold: nan is not in"),
    ('op = ">"\nthan = "b"\nthreshold = 0.8', r"claims\[0\]\.threshold: op '>' has no threshold"),
    ('op = "P>"\nvalue = 0.9', r"claims\[0\]: op 'P>' compares runs of the arm with runs of one"),
    ('op = "P>"\nthan = ["b"]', r"claims\[0\]: op 'P>' compares runs of the arm"),
    ('op = "P>"\nthan = "b"\ntolerance = "1 pp"', r"claims\[0\]\.tolerance: op 'P>' judges a "),
    ('op = "P>"\nthan = "b"\neffect = "1 pp"', r"claims\[0\]\.effect: op 'P>' judges a chance"),
])
def test_the_file_refuses_a_chance_claim_it_could_not_judge_as_written(tmp_path, extra, msg):
    p = tmp_path / "e.toml"
    p.write_text(BASE + extra + "\n")
    with pytest.raises(SharpenError, match=msg):
        load_experiment(str(p))


def test_the_threshold_defaults_to_three_in_four_and_is_recorded(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text(BASE + 'op = "P>"\nthan = "b"\n')
    exp = load_experiment(str(p))
    assert exp.resolved()["claims"][0]["threshold"] == 0.75
    p.write_text(BASE + 'op = ">"\nthan = "b"\n')  # other ops: recorded as before the key
    assert "threshold" not in load_experiment(str(p)).resolved()["claims"][0]
    assert {"P>", "P<"} <= set(OPS)


def test_until_decided_refuses_a_chance_claim_before_training(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text(BASE + 'op = "P>"\nthan = "b"\n')
    r = subprocess.run([str(SHARPEN), "run", str(p), "--until-decided", "--spend-anyway",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert r.returncode != 0
    assert "claim 'c0' (op 'P>') cannot be decided by --until-decided" in r.stderr, r.stderr
    assert not (tmp_path / "o" / "runs").exists()


# --- through the CLI -------------------------------------------------------------------------------

TINY = """
name = "tiny-chance"
dataset = "synthetic"
train_size = 80
test_size = 60
epochs = 1
batch_size = 40
optimizer = "adam"
threads = 1
model = "lenet5_dropout"
runs = 4

[arms.slow]
lr = 0.0001

[arms.fast]
lr = 0.005

[[claims]]
claim = "a fast run beats the slow run of its seed in most seeds"
arm = "fast"
op = "P>"
than = "slow"
threshold = 0.6
"""


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          timeout=20).stdout


def _in_tmux(cmd: str, width: int, tmp: Path, name: str) -> str:
    """``cmd``'s whole output in a tmux pane ``width`` columns wide, wrapped lines joined."""
    sock = f"sharpen-chance-{os.getpid()}-{name}"
    done = tmp / f"{name}.done"
    _tmux(sock, "new-session", "-d", "-s", "t", "-x", str(width), "-y", "50",
          f"cd {tmp}; OMP_NUM_THREADS=1 {cmd}; touch {done}; sleep 60")
    try:
        t0 = time.time()
        while not done.exists() and time.time() - t0 < 300:
            time.sleep(0.2)
        assert done.exists(), f"{cmd} did not finish"
        return _tmux(sock, "capture-pane", "-p", "-J", "-S", "-", "-t", "t")
    finally:
        _tmux(sock, "kill-server")


def test_a_chance_claim_in_report_md_and_the_terminal_summary(tmp_path):
    """The run in a pane 80 columns wide (a pipe where tmux is missing), its report in one
    120 wide: the claim's line in each, its row and the method in report.md."""
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "r"
    run = f"{SHARPEN} run {tmp_path / 'tiny.toml'} --workers 1 --out {out}"
    tmux = shutil.which("tmux") is not None
    if tmux:
        shown = {80: _in_tmux(run, 80, tmp_path, "run")}
    else:
        r = subprocess.run(run.split(), capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        shown = {0: r.stdout}
    acc = {arm: [json.loads((out / "runs" / arm / f"seed-{s}" / "result.json").read_text())
                 ["test_acc"] for s in range(4)] for arm in ("fast", "slow")}
    wins, ties = _hand(acc["fast"], acc["slow"])
    lo = stats.binomtest(wins, 4).proportion_ci(0.95, method="exact").low
    hi = stats.binomtest(wins + ties, 4).proportion_ci(0.95, method="exact").high
    est = (f"P(fast > slow) = {(wins + ties / 2) / 4:.2f} [{lo:.2f}, {hi:.2f}], "
           "threshold 0.6")
    up = stats.binomtest(wins, 4, 0.6, alternative="greater").pvalue
    down = stats.binomtest(wins + ties, 4, 0.6, alternative="less").pvalue
    p = min(1.0, 2 * min(up, down))
    md = (out / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| a fast run beats"))
    assert est in row and f"{wins} of 4 seeds won" in row, row
    assert "95 % Clopper–Pearson, unadjusted" in row
    # 4 seeds: 4 of 4 wins give p = 2·0.6⁴ = 0.26, so it is never supported here
    assert "**supported**" not in row and "could from n = 8" in row, row
    assert "A `P>` claim" in md  # the method, below the table
    summary = json.loads((out / "summary.json").read_text())["claims"][0]
    assert summary["p"] == pytest.approx(p, rel=1e-9) and summary["threshold"] == 0.6
    if tmux:
        shown[120] = _in_tmux(f"{SHARPEN} report {out}", 120, tmp_path, "report")
    for width, text in shown.items():  # wrapped with a hanging indent, read back whole
        logical = re.sub(r"\n {4}(?=\S)", " ", text)
        line = next(ln for ln in logical.splitlines() if "a fast run beats" in ln)
        assert line.startswith(f"  {summary['verdict']}: a fast run beats"), line
        assert est in line and "Holm p" in line, line
        assert not [ln for ln in text.splitlines()  # nothing wider than the pane
                    if width and len(ln.rstrip()) > width and str(out) not in ln], text
