"""What sequential studies and claim maps tell a reader (issue 34, A): repeated confidence
intervals valid under the design (coverage by simulation), decisions the exact test could
not reach marked, what an undecided cell rules out, the budget's power before the first
look (against statsmodels, and through the CLI), and fixed-n maps with their exact p."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.power import TTestPower
from test_claim_map import EPOCHS, STAGES, _grid_dir

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports import write_report
from sharpen.reports.claim_map import claim_maps, map_table
from sharpen.reports.claims import load_runs
from sharpen.reports.sequential import SequentialPlan, budget_power, normal_model_note
from sharpen.reports.stats import min_detectable_at, repeated_ci

LOOKS = [5, 10, 15, 20]


def _stop_and_cover(plan: SequentialPlan, mu: float, reps: int, seed: int
                    ) -> tuple[float, float, float]:
    """Simulate the design on N(mu, 1) differences: the share of experiments whose repeated
    interval at the stopping look covers mu, whose intervals at every look all do, and
    whose naive 95 % t interval at the stopping look does."""
    rng = np.random.default_rng(seed)
    d = rng.normal(mu, 1.0, (reps, plan.looks[-1]))
    stopped = np.zeros(reps, dtype=bool)
    at_stop = np.zeros(reps, dtype=bool)
    naive = np.zeros(reps, dtype=bool)
    every = np.ones(reps, dtype=bool)
    for n, thr in zip(plan.looks, plan.nominal):
        x = d[:, :n]
        mean, sd = x.mean(1), x.std(1, ddof=1)
        p = 2 * st.t.sf(np.abs(mean) / (sd / math.sqrt(n)), n - 1)
        # the function's half-width per unit sd at this look (it is linear in sd and mean)
        unit = repeated_ci(0.0, 1.0, n, thr)[1]
        lo, hi = mean - unit * sd, mean + unit * sd
        cover = (lo <= mu) & (mu <= hi)
        every &= cover
        half = st.t.isf(0.025, n - 1) * sd / math.sqrt(n)
        last = n == plan.looks[-1]
        stop = ~stopped & ((p <= thr) | last)
        at_stop[stop] = cover[stop]
        naive[stop] = (np.abs(mean - mu) <= half)[stop]
        stopped |= stop
    return float(at_stop.mean()), float(every.mean()), float(naive.mean())


@pytest.mark.parametrize("claims,mu", [(1, 0.0), (1, 0.6), (4, 0.9)])
def test_the_repeated_interval_covers_at_the_stopping_time(claims, mu):
    """The repeated CI at the look the design stopped covers the true difference at least
    1 − α/m of the time, and those of every look together too (what makes it valid at any
    stopping time); the naive 95 % interval at the stopping look is narrower."""
    plan = SequentialPlan.make(LOOKS, 0.05, claims)
    level = 0.05 / claims
    reps = 4000
    at_stop, every, naive = _stop_and_cover(plan, mu, reps, seed=11 + claims)
    tol = 2.6 * math.sqrt(level * (1 - level) / reps)  # ~1 % one-sided binomial slack
    assert at_stop >= 1 - level - tol, (at_stop, level)
    assert every >= 1 - level - tol, (every, level)
    # the interval by the formula (Jennison & Turnbull): the look's boundary on the t scale
    lo, hi = repeated_ci(0.3, 0.8, 10, plan.nominal[1])
    assert hi - 0.3 == pytest.approx(plan.boundaries[1] * 0.8 / math.sqrt(10), rel=1e-9)
    assert lo == pytest.approx(0.6 - hi)
    assert repeated_ci(0.3, 0.8, 5, 0.0) == (-math.inf, math.inf)


def test_naive_intervals_at_every_look_do_not_cover_together():
    """The planted alternative: the 95 % t interval at each look, all looks together,
    covers far less than 95 % (what the repeated interval is for)."""
    rng = np.random.default_rng(5)
    d = rng.normal(0.0, 1.0, (4000, 20))
    every = np.ones(4000, dtype=bool)
    for n in LOOKS:
        x = d[:, :n]
        half = st.t.isf(0.025, n - 1) * x.std(1, ddof=1) / math.sqrt(n)
        every &= np.abs(x.mean(1)) <= half
    assert every.mean() < 0.92


def test_a_decision_the_exact_test_cannot_reach_is_marked():
    # the case: 10 negative differences, exact p 2/2¹⁰ = 0.00195, threshold 9.1e-5
    note = normal_model_note(10, 9.1e-5)
    assert note.startswith("rests on the normal model") and "p = 0.00195 at n = 10" in note
    assert normal_model_note(10, 0.0119) == ""
    # the floor is below the threshold, yet these differences' exact p is not
    assert normal_model_note(10, 0.003, p_exact=0.0039) == (
        "rests on the normal model: the exact sign-flip test gives p = 0.0039, above the "
        "threshold 0.003")


def _sequential_record(d: Path, plan: SequentialPlan) -> dict:
    cfg = json.loads((d / "config.json").read_text())
    look = {"n": 6, "threshold": plan.nominal[1], "claims": [{"p": 0.5, "direction": 1,
                                                              "n": 6, "decision": None}]}
    units = {f"epochs_per_stage={e}, stages={k}": {"looks": [look], "decisions": {},
                                                   "finished": True}
             for k, e in itertools.product(STAGES, EPOCHS)}
    # (5, 2) decided at n = 6 at a threshold no sign pattern of 6 differences reaches
    units["epochs_per_stage=2, stages=5"]["decisions"]["0"] = {
        "verdict": "supported", "n": 6, "look": 6, "p": 1e-6, "threshold": 1e-3}
    return {"plan": plan.as_dict(), "claims": [cfg["claims"][0]["claim"]], "ops": [">"],
            "cells": 6, "units": units}


def test_a_sequential_map_shows_repeated_intervals_and_what_undecided_cells_rule_out(
        tmp_path):
    d, acc = _grid_dir(tmp_path / "g")
    cfg = json.loads((d / "config.json").read_text())
    plan = SequentialPlan.make([3, 6], 0.05, 6)
    rec = _sequential_record(d, plan)
    (cm,) = claim_maps(cfg, load_runs(d), sequential=rec)
    thr = plan.nominal[1]
    for c in cm.cells:
        pt = (c.point["stages"], c.point["epochs_per_stage"])
        diffs = np.subtract(acc[pt]["sharp"], acc[pt]["base"])
        # independently: the look's critical |t| (the plan's boundary) × the standard error
        half = plan.boundaries[1] * diffs.std(ddof=1) / math.sqrt(6)
        assert c.rci_low == pytest.approx(diffs.mean() - half, rel=1e-6)
        assert c.rci_high == pytest.approx(diffs.mean() + half, rel=1e-6)
        assert c.rci_high - c.rci_low > c.ci_high - c.ci_low  # wider than the naive 95 %
        if pt == (5, 2):
            assert c.notes == ["rests on the normal model: the exact sign-flip test cannot go "
                               "below p = 0.0312 at n = 6, above the threshold 0.001"]
        else:
            bound = 100 * max(abs(c.rci_low), abs(c.rci_high))
            assert c.notes[0].startswith(f"no effect beyond ±{bound:.2f} pp at the design's "
                                         "level (repeated CI ["), c.notes
    table = map_table(cm)
    assert "| effect [repeated CI, valid under the design] |" in table
    assert "[95 % CI]" not in table and thr > 0
    atomic_write_json(d / "sequential.json", rec)
    write_report(d)
    report = (d / "report.md").read_text()
    assert "repeated confidence interval" in report
    section = report.split("## Decided with the fewest seeds")[1]
    assert "| notes |" in section and "rests on the normal model" in section
    assert section.count("no effect beyond ±") == 5


def test_a_fixed_n_map_shows_the_exact_p_and_the_seeds_to_settle(tmp_path):
    d, acc = _grid_dir(tmp_path / "g")
    cfg = json.loads((d / "config.json").read_text())
    cfg["claims"][0]["effect"] = "0.3 pp"  # d_z about 1: statsmodels gives no NaN
    atomic_write_json(d / "config.json", cfg)
    (cm,) = claim_maps(cfg, load_runs(d))
    table = map_table(cm)
    assert ("| effect [95 % CI, unadjusted] | n | p (t / exact) | Holm p | detectable at n "
            "(80 %) | n for the paper's effect | verdict | notes |") in table
    power = TTestPower()
    for c, row in zip(cm.cells, table.splitlines()[2:]):
        pt = (c.point["stages"], c.point["epochs_per_stage"])
        diffs = np.subtract(acc[pt]["sharp"], acc[pt]["base"])
        # the exact sign-flip p by hand: all 2⁶ sign patterns
        pats = np.array(list(itertools.product([-1, 1], repeat=6)))
        exact = np.mean(np.abs((pats * np.abs(diffs)).sum(1)) >= abs(diffs.sum()) - 1e-12)
        assert c.result.p_exact == pytest.approx(exact)
        assert f" / {exact:.3g} |" in row
        sd = diffs.std(ddof=1)
        mde = power.solve_power(nobs=6, alpha=0.05 / 6, power=0.8) * sd
        assert f"| {100 * mde:.2f} pp |" in row
        n = next(k for k in range(2, 10_000)
                 if power.power(0.003 / sd, k, 0.05 / 6) >= 0.8)
        assert f"| {n} for +0.30 pp |" in row, row


def _flat_grid(root: Path) -> Path:
    """A grid whose `base` arm its key does not touch: each cell's runs the same numbers."""
    rng = np.random.default_rng(0)
    base = list(0.9 + rng.normal(0, 0.01, 3))
    cells, arms = {}, {}
    for k in (1, 2, 3):
        for a in ("base", "sharp"):
            name = f"{a}__stages-{k}"
            cells[name] = {"arm": a, "stages": k}
            arms[name] = {"dataset": "synthetic", "epochs": 1, "val_size": 10}
    atomic_write_json(root / "config.json", {
        "name": "flat", "profile": "", "runs": 3, "seed": 0, "arms": arms, "cells": cells,
        "grid": {"stages": [1, 2, 3]}, "claims": []})
    for name, c in cells.items():
        for s in range(3):
            t = float(base[s] + (0.0 if c["arm"] == "base" else 0.001 * c["stages"] * (s + 1)))
            # the timings differ between identical runs: they must not tell twins apart
            rows = [{"epoch": 1, "train_loss": 0.1, "test_acc": t, "val_acc": t,
                     "test_loss": 0.2}]
            dd = root / "runs" / name / f"seed-{s}"
            atomic_write_csv(dd / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(dd / "result.json", {
                "arm": name, "seed": s, "status": "ok", "test_acc": t, "val_acc": t,
                "epochs_done": 1, "base_arm": c["arm"], "seconds": 1.0 + rng.random()})
    return root


def test_an_arm_of_twin_cells_gets_no_budget_curve_and_no_chosen_cell(tmp_path):
    d = _flat_grid(tmp_path / "g")
    write_report(d)
    report = (d / "report.md").read_text()
    grid = report.split("## Grid")[1].split("\n## ")[0]
    rows = [r for r in grid.splitlines() if re.match(r"\| \d \|", r)]
    assert len(rows) == 3
    assert not any(r.split(" | ")[1].startswith("**") for r in rows)  # base: none in bold
    assert sum(r.split(" | ")[2].startswith("**") for r in rows) == 1  # sharp: its best
    assert "No cell in bold for base: its cells are twin copies" in grid
    budget = report.split("## Budget curves")[1].split("\n## ")[0]
    assert "No curve for base" in budget
    assert "| base |" not in budget and "| sharp | 3 |" in budget


def test_the_budgets_power_is_statsmodels():
    plan = SequentialPlan.make([5, 10, 15, 20], 0.05, 9)
    b = budget_power(plan, "c", 0.01, "pilot", 0.004, "the paper's effect")
    want = TTestPower().solve_power(nobs=20, alpha=plan.nominal[-1], power=0.8) * 0.01
    assert b.mde == pytest.approx(want, rel=1e-6)
    assert b.mde == pytest.approx(min_detectable_at(20, 0.01, plan.nominal[-1]))
    # the seeds the effect needs: the first n whose power reaches 80 % at that threshold
    n = next(k for k in range(2, 10_000)
             if TTestPower().power(0.4, k, plan.nominal[-1]) >= 0.8)
    assert b.needed == n and b.short and n > 20
    assert not budget_power(plan, "c", 0.01, "pilot", 0.02, "min_effect").short


TINY = """
name = "tiny-power"
dataset = "synthetic"
train_size = 80
test_size = 60
epochs = 1
batch_size = 40
optimizer = "adam"
threads = 1
model = "lenet5_dropout"
{extra}

[arms.slow]
lr = 0.0001

[arms.fast]
lr = 0.005

[[claims]]
claim = "fast beats slow"
arm = "fast"
op = ">"
than = "slow"
"""


def _pilot(root: Path, diffs: list[float], **changed: object) -> Path:
    """A fixed-n pilot directory of TINY's two arms (their keys ``changed``), per-seed
    differences ``diffs``."""
    from sharpen.experiments import load_experiment

    root.mkdir(parents=True)
    (root / "t.toml").write_text(TINY.format(extra=""))
    arms = load_experiment(str(root / "t.toml")).resolved()["arms"]
    atomic_write_json(root / "config.json", {
        "name": "tiny-power", "profile": "", "runs": len(diffs), "seed": 0,
        "arms": {a: {**cfg, **changed} for a, cfg in arms.items()}})
    for s, dv in enumerate(diffs):
        for a, t in (("slow", 0.5), ("fast", 0.5 + dv)):
            dd = root / "runs" / a / f"seed-{s}"
            rows = [{"epoch": 1, "train_loss": 0.1, "test_acc": t, "test_loss": 0.2}]
            atomic_write_csv(dd / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(dd / "result.json", {"arm": a, "seed": s, "status": "ok",
                                                    "test_acc": t, "epochs_done": 1})
    return root


def test_until_decided_states_the_budgets_power_and_refuses_what_it_cannot_detect(
        tmp_path, capsys):
    from sharpen.cli import main

    p, out = tmp_path / "t.toml", tmp_path / "seq"
    base = ["run", str(p), "--until-decided", "--step", "2", "--max-runs", "4", "--out",
            str(out), "--workers", "1", "--quiet"]
    # no sd anywhere: its power cannot be known, so it is refused before a seed is spent
    p.write_text(TINY.format(extra=""))
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "needs the sd of the per-seed differences" in err and "--pilot DIR" in err
    assert not out.exists()
    # a pilot's sd: the smallest effect the budget detects, stated; min_effect too small
    diffs = [0.01, 0.03, -0.01, 0.02]
    pilot = _pilot(tmp_path / "pilot", diffs)
    p.write_text(TINY.format(extra='min_effect = "1 pp"'))
    assert main([*base, "--pilot", str(pilot)]) == 2
    cap = capsys.readouterr()
    plan = SequentialPlan.make([2, 4], 0.05, 1)
    sd = float(np.std(diffs, ddof=1))
    mde = TTestPower().solve_power(nobs=4, alpha=plan.nominal[-1], power=0.8) * sd
    assert (f"budget 4 seeds per arm, last look at p ≤ {plan.nominal[-1]:.3g} (α = 0.05/1): "
            f"'fast beats slow' detects ≥ {100 * mde:.2f} pp with 80 % power (sd "
            f"{100 * sd:.2f} pp from pilot {pilot}, n = 4); min_effect +1.00 pp needs") \
        in cap.out
    assert "the budget of 4 seeds per arm cannot detect the effect of interest of " \
           "'fast beats slow'" in cap.err and "--spend-anyway" in cap.err
    assert not out.exists()


def test_a_budget_that_detects_the_effect_goes_on(tmp_path):
    from sharpen.experiments import load_experiment
    from sharpen.experiments.sequential import check_budget

    p = tmp_path / "t.toml"
    p.write_text(TINY.format(extra='min_effect = "20 pp"'))
    exp = load_experiment(str(p))
    claims = [c.model_dump() for c in exp.claims]
    pilot = _pilot(tmp_path / "pilot", [0.01, 0.03, -0.01, 0.02])
    plan = SequentialPlan.make([2, 4], 0.05, 1)
    (b,) = check_budget(exp, claims, plan, pilot, spend_anyway=False)
    assert b.effect == pytest.approx(0.2) and not b.short and b.needed <= 4
    # and too small an effect goes on only when told to
    exp.min_effect = "1 pp"
    (b,) = check_budget(exp, claims, plan, pilot, spend_anyway=True)
    assert b.short


def test_a_pilot_of_another_configuration_is_refused(tmp_path, capsys):
    """A pilot run on another dataset (or epochs, or any key that changes what a seed
    computes) gave its sd to the budget's power silently; how seeds were grouped or
    threaded is no other configuration."""
    from sharpen.cli import main

    p = tmp_path / "t.toml"
    p.write_text(TINY.format(extra='min_effect = "20 pp"'))
    base = ["run", str(p), "--until-decided", "--step", "2", "--max-runs", "4", "--out",
            str(tmp_path / "seq"), "--workers", "1", "--quiet", "--pilot"]
    diffs = [0.01, 0.03, -0.01, 0.02]
    other = _pilot(tmp_path / "other", diffs, dataset="mnist-sample", epochs=3)
    assert main([*base, str(other)]) == 2
    assert capsys.readouterr().err == (
        f"sharpen: error: --pilot {other} ran another configuration of these arms "
        '(arms.slow.dataset: "mnist-sample" → "synthetic"; arms.slow.epochs: 3 → 1; '
        'arms.fast.dataset: "mnist-sample" → "synthetic"; arms.fast.epochs: 3 → 1): its '
        "sd would state the power of another study. Give a pilot run of this experiment as "
        "it stands (`sharpen run EXPERIMENT --runs 3 --out PILOT`), or --spend-anyway "
        "without one\n")
    assert not (tmp_path / "seq").exists()
    from sharpen.experiments import load_experiment
    from sharpen.experiments.sequential import check_budget

    exp = load_experiment(str(p))
    same = _pilot(tmp_path / "same", diffs, stack_seeds=4, threads=2)
    plan = SequentialPlan.make([2, 4], 0.05, 1)
    (b,) = check_budget(exp, [c.model_dump() for c in exp.claims], plan, same, False)
    assert b.sd == pytest.approx(np.std(diffs, ddof=1))


@pytest.mark.parametrize("flag", [["--pilot", "DIR"], ["--spend-anyway"], ["--step", "2"],
                                  ["--max-runs", "8"]])
def test_a_sequential_option_without_until_decided_is_refused(tmp_path, capsys, flag):
    """It was ignored: `--pilot DIR` (or --max-runs 8) gave a fixed-n run of --runs seeds."""
    from sharpen.cli import main

    p = tmp_path / "t.toml"
    p.write_text(TINY.format(extra=""))
    assert main(["run", str(p), *flag, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"sharpen: error: {flag[0]} applies to --until-decided only (without it the run "
        f"trains --runs seeds per arm); add --until-decided, or leave {flag[0]} out\n")
    assert not (tmp_path / "o").exists()


def test_an_undecided_claim_of_a_plain_design_says_what_it_rules_out(tmp_path):
    diffs = [0.01, 0.03, -0.01, 0.02]
    d = _pilot(tmp_path / "seq", diffs)
    cfg = json.loads((d / "config.json").read_text())
    cfg["claims"] = [{"claim": "fast beats slow", "arm": "fast", "op": ">", "than": "slow"}]
    atomic_write_json(d / "config.json", cfg)
    plan = SequentialPlan.make([2, 4], 0.05, 1)
    look = {"n": 4, "threshold": plan.nominal[1], "claims": [
        {"p": 0.2, "direction": 1, "n": 4, "threshold": plan.nominal[1], "decision": None}]}
    atomic_write_json(d / "sequential.json", {
        "plan": plan.as_dict(), "claims": ["fast beats slow"], "ops": [">"], "cells": 0,
        "units": {"": {"looks": [look], "decisions": {}, "finished": True}}})
    write_report(d)
    section = (d / "report.md").read_text().split("## Decided with the fewest seeds")[1]
    half = st.t.isf(plan.nominal[1] / 2, 3) * np.std(diffs, ddof=1) / 2
    lo, hi = 100 * (np.mean(diffs) - half), 100 * (np.mean(diffs) + half)
    assert (f"| no effect beyond ±{max(abs(lo), abs(hi)):.2f} pp at the design's level "
            f"(repeated CI [{lo:+.2f} pp, {hi:+.2f} pp]) |") in section, section


def test_a_grid_pilot_gives_the_largest_sd_over_its_cells(tmp_path):
    from sharpen.experiments.sequential import pilot_sds

    d, acc = _grid_dir(tmp_path / "g")
    claims = json.loads((d / "config.json").read_text())["claims"]
    ((sd, where),) = pilot_sds(d, claims)
    sds = {pt: np.std(np.subtract(v["sharp"], v["base"]), ddof=1) for pt, v in acc.items()}
    top = max(sds, key=sds.get)
    assert sd == pytest.approx(sds[top])
    assert f"epochs_per_stage = {top[1]}, stages = {top[0]}, n = 6" in where
    # a claim on arms the pilot lacks gives no sd, and says so
    ((none, why),) = pilot_sds(d, [{**claims[0], "arm": "other"}])
    assert none is None and "has no cell with 2 paired seeds" in why


@pytest.mark.parametrize("value", ['"abc"', '"1 kg"', '-0.01'])
def test_min_effect_is_checked_when_the_file_loads_not_only_under_until_decided(
        tmp_path, capsys, value):
    """A fixed-n run took min_effect = "abc" (it was parsed only by --until-decided): the
    file's field is checked when it loads, with the message --until-decided gives."""
    from sharpen.cli import main
    from sharpen.metrics import get_metric, parse_amount

    p, out = tmp_path / "t.toml", tmp_path / "fixed"
    p.write_text(TINY.format(extra=f"min_effect = {value}"))
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    with pytest.raises(SharpenError) as want:  # the message --until-decided gives
        parse_amount(eval(value), get_metric("test_acc"), "min_effect")
    assert f"field {want.value}" in err, err
    assert not out.exists()
    p.write_text(TINY.format(extra='min_effect = "0.5 pp"'))  # a good one still loads
    from sharpen.experiments import load_experiment
    assert load_experiment(str(p)).min_effect == "0.5 pp"
