"""Deciding with the fewest seeds (issue 25, item 1): the group-sequential rule by
simulation, its boundaries against the spending function, and --until-decided end to end
(killed mid-way, resumed: the same looks and verdicts as an uninterrupted run)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats as st

from sharpen.reports.sequential import (
    SequentialPlan,
    decide,
    obf_spent,
    simulate_error,
    t_boundaries,
)
from sharpen.training import Hook

LOOKS = [5, 10, 15, 20]


def test_obf_spending_is_the_lan_demets_formula():
    for a in (0.05, 0.01):
        assert obf_spent(1.0, a) == pytest.approx(a)
        for t in (0.1, 0.25, 0.5, 0.8):
            want = 2 * (1 - st.norm.cdf(st.norm.ppf(1 - a / 2) / math.sqrt(t)))
            assert obf_spent(t, a) == pytest.approx(want)
    spent = [obf_spent(n / 20, 0.05) for n in LOOKS]
    assert spent == sorted(spent) and spent[0] < 0.001  # almost nothing at the first look


def test_each_boundary_spends_its_share_of_alpha_on_fresh_simulations():
    """Independent paths (another generator seed): the share first crossing at look k is
    α(t_k) − α(t_{k−1}), and the last boundary is above the fixed-n t quantile."""
    b = t_boundaries(LOOKS, 0.05)
    rng = np.random.default_rng(99)
    z = rng.standard_normal((100_000, LOOKS[-1]))
    alive = np.ones(len(z), bool)
    spent_before = 0.0
    for n, c in zip(LOOKS, b):
        x = z[:, :n]
        t = np.abs(x.mean(1)) / (x.std(1, ddof=1) / math.sqrt(n))
        crossed = alive & (t >= c)
        share = crossed.mean()
        want = obf_spent(n / LOOKS[-1], 0.05) - spent_before
        spent_before += want
        assert share == pytest.approx(want, abs=0.0025), n
        alive &= ~crossed
    assert b[-1] > st.t.ppf(0.975, LOOKS[-1] - 1)  # the price of looking early
    assert b == sorted(b, reverse=True)


def test_the_first_look_is_students_t_exactly_and_one_look_is_the_fixed_n_test():
    """Before any path has stopped the statistic is Student's t with n − 1 df: the first
    boundary is its quantile (a Monte Carlo one was 0.051 for a one-look α = 0.05 design)."""
    b = t_boundaries(LOOKS, 0.05)
    assert b[0] == st.t.isf(obf_spent(LOOKS[0] / LOOKS[-1], 0.05) / 2, LOOKS[0] - 1)
    plan = SequentialPlan.make([7], 0.05, 2)  # one look: the fixed-n test at α/m
    assert plan.boundaries == [pytest.approx(st.t.isf(0.025 / 2, 6), rel=1e-12)]
    assert plan.nominal[0] == pytest.approx(0.025, rel=1e-12)


def test_type_one_error_is_at_most_the_level_over_2000_null_experiments():
    res = simulate_error(LOOKS, 0.05, effect=0.0, reps=2000, seed=7)
    # at most the level: a one-sided binomial test cannot reject rate <= 0.05
    k = round(res["rejected"] * 2000)
    assert st.binomtest(k, 2000, 0.05, alternative="greater").pvalue > 0.05, res
    assert res["rejected"] <= 0.055
    # looking at the fixed-n level at every look inflates it: the guard matters
    naive = simulate_error(LOOKS, 0.05, effect=0.0, reps=2000, seed=7, naive=True)
    assert naive["rejected"] > 0.08


def test_a_true_effect_stops_earlier_than_the_fixed_maximum():
    res = simulate_error(LOOKS, 0.05, effect=1.0, reps=2000, seed=8)
    assert res["rejected"] > 0.95 and res["right_side"] == res["rejected"]
    assert res["mean_n"] < 0.75 * LOOKS[-1]  # 20 seeds at most; most stop by 10 or 15


def test_decisions_follow_the_look_threshold():
    assert decide(0.001, 1, ">", 0.01) == "supported"
    assert decide(0.001, -1, ">", 0.01) == "contradicted"
    assert decide(0.02, 1, ">", 0.01) is None and decide(None, 1, ">", 0.01) is None
    assert decide(0.004, 1, "~", 0.01) == "supported" and decide(0.006, 1, "~", 0.01) is None
    plan = SequentialPlan.make([3, 6], 0.05, 2)
    assert SequentialPlan.from_dict(json.loads(json.dumps(plan.as_dict()))) == plan
    assert plan.threshold(6) == pytest.approx(2 * st.t.sf(plan.boundaries[1], 5))


TINY = """
name = "tiny-seq"
dataset = "synthetic"
train_size = 80
test_size = 60
epochs = 1
batch_size = 40
optimizer = "adam"
threads = 1
model = "lenet5_dropout"

[arms.slow]
lr = 0.0001

[arms.fast]
lr = 0.005

[[claims]]
claim = "fast beats slow"
arm = "fast"
op = ">"
than = "slow"

[[claims]]
claim = "slow beats fast"
arm = "slow"
op = ">"
than = "fast"
"""


def _run(p, out, env, wait_for_look=None):
    cmd = [sys.executable, "-m", "sharpen.cli", "run", str(p), "--until-decided",
           "--spend-anyway", "--step", "2", "--max-runs", "6", "--out", str(out), "--quiet", "--workers", "1"]
    if wait_for_look is None:
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        return
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        f = out / "sequential.json"
        try:
            units = json.loads(f.read_text())["units"] if f.exists() else {}
            if units and len(next(iter(units.values()))["looks"]) >= wait_for_look:
                break
        except json.JSONDecodeError:
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way: the next look is training
    proc.wait()


@pytest.mark.slow
def test_until_decided_killed_and_resumed_ends_as_an_uninterrupted_run(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _run(p, tmp_path / "whole", env)
    whole = json.loads((tmp_path / "whole" / "sequential.json").read_text())
    _run(p, tmp_path / "cut", env, wait_for_look=1)
    cut = json.loads((tmp_path / "cut" / "sequential.json").read_text())
    (u,) = cut["units"].values()
    assert len(u["looks"]) >= 1 and not u["finished"]  # stopped between looks
    _run(p, tmp_path / "cut", env)  # resume: the same plan continues
    resumed = json.loads((tmp_path / "cut" / "sequential.json").read_text())
    assert resumed == whole
    (unit,) = whole["units"].values()
    assert [lk["n"] for lk in unit["looks"]][0] == 2 and unit["finished"]
    # both claims are about one difference: at most one is supported
    verdicts = {d["verdict"] for d in unit["decisions"].values()}
    assert verdicts <= {"supported", "contradicted"}
    report = (tmp_path / "cut" / "report.md").read_text()
    assert "## Decided with the fewest seeds (sequential design)" in report
    # the header names the seeds that ran, not the file's `runs` (which a grid's cells,
    # each at its own n, cannot all match): make them differ and rebuild
    from sharpen.reports import write_report

    n = unit["looks"][-1]["n"]
    cfg_path = tmp_path / "cut" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "runs": 1}))
    write_report(tmp_path / "cut")
    report = (tmp_path / "cut" / "report.md").read_text()
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["seeds"] == list(range(n))
    assert f"Seeds: {list(range(n))} ·" in report


def test_a_look_that_can_decide_nothing_says_so(tmp_path):
    from sharpen.reports.sequential import SEQUENTIAL, SequentialPlan, report_section

    # α = 0.05/9 over looks 5..20: O'Brien–Fleming spends ~3e-8 at n = 5, which 200,000
    # Monte Carlo paths cannot resolve, so that look's boundary is infinite
    plan = SequentialPlan.make([5, 10, 15, 20], 0.05, 9)
    assert plan.nominal[0] == 0 and plan.nominal[1] > 0
    (tmp_path / SEQUENTIAL).write_text(json.dumps(
        {"plan": plan.as_dict(), "claims": ["a beats b"], "units": {}}))
    text = "\n".join(report_section(tmp_path))
    assert "n = 5: 0 (no decision possible at this look), n = 10: " in text


def test_a_grown_directory_is_judged_look_by_look_on_its_first_seeds(tmp_path):
    """A design resumed in a directory that already holds later looks' seeds (its record
    lost the looks after the first) judges each look on its own first n seeds, as the
    uninterrupted run did. (A new design over runs already seen is refused:
    tests/test_sequential_bound.py.)"""
    import shutil

    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _run(p, tmp_path / "whole", env)
    whole = json.loads((tmp_path / "whole" / "sequential.json").read_text())
    (unit,) = whole["units"].values()
    assert len(unit["looks"]) >= 2  # else there is nothing to tell apart
    shutil.copytree(tmp_path / "whole", tmp_path / "again")
    cut = json.loads(json.dumps(whole))
    (u,) = cut["units"].values()
    u["looks"], u["finished"] = u["looks"][:1], False
    u["decisions"] = {k: d for k, d in u["decisions"].items() if d["look"] == u["looks"][0]["n"]}
    (tmp_path / "again" / "sequential.json").write_text(json.dumps(cut))
    _run(p, tmp_path / "again", env)
    again = json.loads((tmp_path / "again" / "sequential.json").read_text())
    assert again == whole
    ps = {lk["n"]: lk["claims"][0]["p"] for lk in unit["looks"]}
    assert len(set(ps.values())) == len(ps)  # each look its own seeds, its own p


def test_until_decided_on_a_grid_runs_each_cell_its_own_design(tmp_path):
    from sharpen.experiments import load_experiment
    from sharpen.experiments.sequential import run_until_decided

    p = tmp_path / "tiny.toml"
    p.write_text(TINY + '\n[profiles.map]\ngrid = { train_size = [60, 80] }\n')
    exp = load_experiment(str(p), profile="map")
    out, _, rec = run_until_decided(exp, tmp_path / "g", max_runs=4, step=2, quiet=True,
                                    spend_anyway=True, workers=1)
    assert set(rec["units"]) == {"train_size=60", "train_size=80"}
    # the family is every claim in every cell: 2 claims × 2 cells
    assert rec["plan"]["claims"] == 4 and rec["cells"] == 2
    for u in rec["units"].values():
        assert [lk["n"] for lk in u["looks"]][0] == 2 and u["finished"]
        assert all(len(lk["claims"]) == 2 for lk in u["looks"])
    # each cell's arms ran as many seeds as its looks needed, no more
    for key, u in rec["units"].items():
        size = key.split("=")[1]
        n = u["looks"][-1]["n"]
        for arm in ("slow", "fast"):
            seeds = sorted((out / "runs").glob(f"{arm}__train_size-{size}/seed-*"))
            assert len(seeds) == n
    report = (out / "report.md").read_text()
    assert "| cell | claim | decided | at n | p | threshold |" in report
    assert "## Claim maps: where each claim holds in the grid" in report


def test_a_grids_cells_take_each_look_together_and_resume_from_any_mix_of_looks(tmp_path):
    """Every cell that takes look k takes it in one invocation (their jobs fill the cores
    together; one cell's look alone is often one job), and a directory whose cells stopped
    at different looks (a design run cell by cell, then killed) ends as an uninterrupted
    run: each cell's record is its own, whichever invocation trained its seeds."""
    import shutil

    from sharpen.experiments import load_experiment
    from sharpen.experiments.sequential import run_until_decided

    p = tmp_path / "tiny.toml"
    p.write_text(TINY + '\n[profiles.map]\ngrid = { train_size = [50, 60, 80] }\n')

    def run(out):
        return run_until_decided(load_experiment(str(p), profile="map"), out, max_runs=6,
                                 step=2, quiet=True, spend_anyway=True, workers=1)[2]

    whole = run(tmp_path / "g")
    looks = {len(u["looks"]) for u in whole["units"].values()}
    history = json.loads((tmp_path / "g" / "history.json").read_text())
    # one invocation per look index (plus none for the report), not one per cell and look
    assert len(history) == max(looks)
    assert history[0]["jobs"] == 3 * 2  # look 1: every cell's two arms, one group each
    assert history[0]["runs"] == 3 * 2 * 2
    # cut: the first cell has all its looks, the others none (the cell-by-cell order)
    shutil.copytree(tmp_path / "g", tmp_path / "cut")
    cut = json.loads(json.dumps(whole))
    first, *rest = cut["units"]
    for key in rest:
        cut["units"][key] = {"looks": [], "decisions": {}, "finished": False}
    (tmp_path / "cut" / "sequential.json").write_text(json.dumps(cut))
    assert run(tmp_path / "cut") == whole


def test_a_finished_grid_design_run_again_trains_no_seed_past_a_cells_last_look(tmp_path,
                                                                                capsys):
    """Cells decide at different looks; the design, run again once every cell finished,
    must leave each cell at its own last look's seeds (it ran every arm at the largest n:
    an early cell gained seeds its decision never saw, and the report counted them)."""
    import shutil

    from sharpen.experiments import load_experiment
    from sharpen.experiments.sequential import run_until_decided

    p = tmp_path / "tiny.toml"
    p.write_text(TINY + '\n[profiles.map]\ngrid = { train_size = [50, 60] }\n')

    def run(out):
        return run_until_decided(load_experiment(str(p), profile="map"), out, max_runs=4,
                                 step=2, quiet=True, spend_anyway=True, workers=1)[2]

    out = tmp_path / "g"
    whole = run(out)
    # the first cell as if it had decided at its first look (n = 2): seeds 2, 3 never ran
    early, late = whole["units"]
    whole["units"][early]["looks"] = whole["units"][early]["looks"][:1]
    (out / "sequential.json").write_text(json.dumps(whole))
    for arm in ("slow__train_size-50", "fast__train_size-50"):
        for s in (2, 3):
            shutil.rmtree(out / "runs" / arm / f"seed-{s}")
    assert run(out) == whole
    seeds = {d.name: sorted(x.name for x in d.iterdir()) for d in (out / "runs").iterdir()}
    assert seeds["slow__train_size-50"] == seeds["fast__train_size-50"] == ["seed-0", "seed-1"]
    assert seeds["slow__train_size-60"] == [f"seed-{s}" for s in range(4)]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted((r["arm"], r["seed"]) for r in rows if r["arm"].endswith("-50")) == \
        [(a, s) for a in ("fast__train_size-50", "slow__train_size-50") for s in "01"]
    # a plain `sharpen run DIR` (the file's runs: 4) may not add them either: refused,
    # naming the cell (it checked the seeds against the most any cell ran)
    from sharpen.cli import main

    capsys.readouterr()
    assert main(["run", str(out), "--quiet", "--workers", "1"]) == 2
    assert "cell train_size=50: its looks ran 2 seeds per arm" in capsys.readouterr().err
    assert sorted(x.name for x in (out / "runs" / "slow__train_size-50").iterdir()) == \
        ["seed-0", "seed-1"]


# ---------------------------------------------------------------- issue 32, items 4 and 5
class FailSeeds(Hook):
    """Stands in for any fault of a look's new seeds: seeds in ``always`` raise every time
    (a bug that comes back), seeds in ``once`` only the first time (a killed job), counted
    by a file per seed in ``marks``; seeds in ``nan`` get a NaN loss (they diverge)."""

    def __init__(self, always=(), once=(), marks="", nan=()):
        self.always, self.once, self.marks, self.nan = set(always), set(once), marks, set(nan)

    def on_loss(self, state, loss, out, y):
        return loss * float("nan") if self.nan & set(state.seeds) else loss

    def on_batch(self, state, x, y):
        for s in state.seeds:
            mark = os.path.join(self.marks, f"seed-{s}") if self.marks else ""
            if s in self.once and not os.path.exists(mark):
                open(mark, "w").close()
                raise RuntimeError(f"fault: seed {s} (the first time only)")
            if s in self.always:
                raise RuntimeError(f"fault: seed {s}")
        return x, y


ONE_ARM = """
name = "seq-faults"
dataset = "synthetic"
train_size = 120
test_size = 300
epochs = 1
batch_size = 40
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 1
model = "lenet5_dropout"

[arms.a]
hooks = [{{ target = "tests.test_sequential:FailSeeds", args = {args} }}]

[[claims]]
claim = "a beats the bar"
arm = "a"
op = ">"
value = {value}
"""


def _accs(out, arm, seeds, metric="test_acc"):
    return [json.loads((out / "runs" / arm / f"seed-{s}" / "result.json").read_text())[
        metric] for s in seeds]


def _one_sample_p(xs, v0):
    return float(st.ttest_1samp(np.asarray(xs) - v0, 0.0).pvalue)


def test_a_look_whose_new_seeds_fail_is_not_judged_at_its_looser_threshold(tmp_path, capsys):
    """Issue 32, item 4: the n = 6 look's new seeds all fail, every time (two crash, one
    diverges). The look must not re-test seeds 0-2 at n = 6's threshold (0.045) after they
    stayed undecided at n = 3's (0.0056): it records the n it was judged on and uses the
    design's threshold for it."""
    from sharpen.cli import main

    p, out = tmp_path / "seq.toml", tmp_path / "r"
    args = "{ always = [3, 4], nan = [5] }"
    loss = 'metric = "test_loss"\nop = ">"'
    p.write_text(ONE_ARM.format(args=args, value=0.0).replace('op = ">"', loss))
    # seeds 0-2 in a pilot directory, as the n = 3 look will see them (a design may not
    # start where results were already seen)
    pilot = tmp_path / "pilot"
    assert main(["run", str(p), "--runs", "3", "--out", str(pilot), "--quiet",
                 "--workers", "1"]) == 0
    x = _accs(pilot, "a", range(3), "test_loss")
    assert np.std(x) > 0
    plan = SequentialPlan.make([3, 6], 0.05, 1)
    lo, hi = plan.nominal  # 0.0056, 0.045: the two thresholds
    # the bar that puts the one-sample t p of seeds 0-2 between them (independently: scipy)
    target = math.sqrt(lo * hi)
    v0 = float(np.mean(x) - st.t.isf(target / 2, 2) * np.std(x, ddof=1) / math.sqrt(3))
    assert lo < _one_sample_p(x, v0) < hi
    p.write_text(ONE_ARM.format(args=args, value=repr(v0)).replace('op = ">"', loss))
    capsys.readouterr()
    code = main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "3", "--max-runs", "6",
                 "--out", str(out), "--workers", "1"])
    assert code == 1  # failed runs
    cap = capsys.readouterr()
    rec = json.loads((out / "sequential.json").read_text())
    (unit,) = rec["units"].values()
    # no decision from seeds 0-2 (undecided at n = 3) at the n = 6 look's threshold
    assert unit["decisions"] == {} and unit["finished"]
    # the crashed seeds are trained once more; the diverged one would diverge again
    assert "look 2: a seed(s) 3 (failed), 4 (failed) did not finish; training them once " \
           "more" in cap.out
    first, second = unit["looks"]
    assert first["n"] == 3 and first["claims"][0]["n"] == 3
    assert first["claims"][0]["p"] == pytest.approx(_one_sample_p(x, v0))
    assert first["claims"][0]["decision"] is None
    # the n = 6 look: judged on the 3 seeds that finished, at the threshold for n = 3
    assert second["n"] == 6 and second["lost"] == {"a": {"3": "failed", "4": "failed",
                                                        "5": "diverged"}}
    c = second["claims"][0]
    assert c["n"] == 3 and c["threshold"] == pytest.approx(lo)
    assert c["p"] == pytest.approx(_one_sample_p(x, v0)) and c["decision"] is None
    assert "'a beats the bar' judged on the 3 seeds that finished" in cap.err
    report = (out / "report.md").read_text()
    assert f"| a beats the bar | undecided: the budget of 6 seeds is spent | 3 (look at 6) | " \
           f"{c['p']:.3g} | {lo:.3g} |" in report
    assert "Seeds that did not finish at their look" in report


def test_a_look_whose_seeds_fail_once_is_retried_and_judged_on_its_own_n(tmp_path, capsys):
    """Seeds 1 and 2 of the n = 3 look fail once (a killed job): the look trains them once
    more and is judged on its 3 seeds, not on seed 0 alone."""
    from sharpen.cli import main

    p, out = tmp_path / "seq.toml", tmp_path / "r"
    marks = tmp_path / "marks"
    marks.mkdir()
    p.write_text(ONE_ARM.format(args=f'{{ once = [1, 2], marks = "{marks}" }}', value=0.2))
    code = main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "3", "--max-runs", "6",
                 "--out", str(out), "--workers", "1"])
    cap = capsys.readouterr()
    assert sorted(x.name for x in marks.iterdir()) == ["seed-1", "seed-2"]  # they did fail
    rec = json.loads((out / "sequential.json").read_text())
    (unit,) = rec["units"].values()
    first = unit["looks"][0]
    assert first["claims"][0]["n"] == 3 and "lost" not in first
    assert "look 1: a seed(s) 1 (failed), 2 (failed) did not finish; training them once " \
           "more" in cap.out
    x = _accs(out, "a", range(3))
    lo = SequentialPlan.make([3, 6], 0.05, 1).nominal[0]
    p3 = _one_sample_p(x, 0.2)
    assert first["claims"][0]["p"] == pytest.approx(p3)
    assert first["threshold"] == first["claims"][0]["threshold"] == pytest.approx(lo)
    want = decide(p3, 1 if np.mean(x) > 0.2 else -1, ">", lo)
    assert first["claims"][0]["decision"] == want
    assert code == 0  # every run finished in the end


def test_a_grid_cell_whose_seeds_all_failed_is_untested_not_not_supported(tmp_path, capsys):
    """Every seed of every look failed: the design records n = 0 for each cell, and the
    claim map read "not supported in 2 of 2 cells", a verdict on nothing; it stays
    untested, naming why, as at fixed n."""
    from sharpen.cli import main

    p, out = tmp_path / "seq.toml", tmp_path / "r"
    text = ONE_ARM.format(args="{ always = [0, 1, 2, 3] }", value=0.2)
    p.write_text(text.replace('model = "lenet5_dropout"',
                              'model = "lenet5_dropout"\ngrid = { train_size = [100, 120] }'))
    assert main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "2",
                 "--max-runs", "2", "--out", str(out), "--workers", "1"]) == 1
    cap = capsys.readouterr().out
    assert "a beats the bar: untested (no test_acc for a__train_size-100) in 1, untested " \
           "(no test_acc for a__train_size-120) in 1 of 2 cells" in cap, cap
    assert "not supported" not in cap


def test_a_claim_reached_with_fewer_seeds_gets_the_threshold_of_the_last_look_reached():
    plan = SequentialPlan.make([3, 6, 9], 0.05, 2)
    assert plan.threshold_reached(9) == plan.nominal[2]
    assert plan.threshold_reached(8) == plan.threshold_reached(6) == plan.nominal[1]
    assert plan.threshold_reached(5) == plan.threshold_reached(3) == plan.nominal[0]
    assert plan.threshold_reached(2) == plan.threshold_reached(0) == 0.0  # below the first
    assert plan.nominal == sorted(plan.nominal)  # so never looser than the look's own


def test_a_claim_edited_between_invocations_is_refused_naming_the_field(tmp_path, capsys):
    """Issue 32, item 5: the design binds the whole claim definition, the looks and the
    level. `op` flipped with the same text, a new bar, another step or budget: each is
    refused naming the claim and the field (old → new), and nothing in the directory
    changes; the same definition continues; a record made before designs were bound binds
    what config.json says."""
    from sharpen.cli import main

    p, out = tmp_path / "seq.toml", tmp_path / "r"
    text = ONE_ARM.format(args="{}", value=0.0)
    p.write_text(text)
    seq = ["run", str(p), "--until-decided", "--spend-anyway", "--step", "3", "--max-runs", "6", "--out",
           str(out), "--workers", "1", "--quiet"]
    assert main(seq) == 0
    files = {f: (out / f).read_bytes() for f in ("sequential.json", "config.json", "report.md")}

    def refused(args, *said):
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        for s in said:
            assert s in err, err
        assert "start a new design with another --out" in err
        for f, b in files.items():  # nothing rewritten: no report mixing two definitions
            assert (out / f).read_bytes() == b, f

    p.write_text(text.replace('op = ">"', 'op = "<"'))
    refused(seq, f"{out / 'sequential.json'}: ", "claim 1 ('a beats the bar') op: '>' → '<'")
    rec = json.loads(files["sequential.json"])
    assert rec["design"]["claims"] == [{"claim": "a beats the bar", "arm": "a", "op": ">",
                                        "than": None, "value": 0.0, "metric": "test_acc",
                                        "tolerance": 0.0}]
    assert (rec["design"]["step"], rec["design"]["budget"], rec["design"]["alpha"]) == \
        (3, 6, 0.05)
    # a plain run into the directory, and adopting the edited claims, are refused alike
    refused(["run", str(p), "--runs", "3", "--out", str(out), "--workers", "1", "--quiet"],
            "claim 1 ('a beats the bar') op: '>' → '<'")
    refused(["report", str(out), "--claims-from", str(p)], "op: '>' → '<'")
    p.write_text(text.replace("value = 0.0", "value = 0.1"))
    refused(seq, "claim 1 ('a beats the bar') value: 0.0 → 0.1")
    p.write_text(text)
    refused([*seq[:4], "--step", "2", *seq[6:]], "step (seeds per look, --step): 3 → 2")
    refused([*seq[:6], "--max-runs", "9", *seq[8:]], "budget (seeds per arm at most")
    assert main(seq) == 0  # the same design continues (here: nothing left to look at)
    assert (out / "sequential.json").read_bytes() == files["sequential.json"]
    # a record from before designs were bound (docs/results): bound from config.json
    old = {k: v for k, v in rec.items() if k != "design"}
    (out / "sequential.json").write_text(json.dumps(old))
    files = {f: (out / f).read_bytes() for f in files}
    p.write_text(text.replace('op = ">"', 'op = "<"'))
    refused(seq, "claim 1 ('a beats the bar') op: '>' → '<'")
    p.write_text(text)
    assert main(seq) == 0
    assert json.loads((out / "sequential.json").read_text())["design"] == rec["design"]


SEQUENTIAL_RESULTS = ["sharpening-map-mnist", "sharpening-map-fashion-mnist",
                      "deblur-map-cifar10", "sharpening-map-quick", "deblur-map-quick"]


@pytest.mark.parametrize("name", SEQUENTIAL_RESULTS)
def test_records_from_before_designs_were_bound_rebuild_and_bind_their_config(name):
    """docs/results' sequential.json files have no bound design: their report section is
    rebuilt unchanged, and they bind what their config.json says (its claims, the plan's
    looks): the experiment file they ran passes, an edited claim is refused."""
    from pathlib import Path

    from sharpen import SharpenError
    from sharpen.experiments import load_experiment
    from sharpen.reports.claim_map import sequential_rules_out
    from sharpen.reports.claims import load_runs
    from sharpen.reports.sequential import check_bound, read_record, report_section

    d = Path(__file__).parents[1] / "docs" / "results" / name
    rec = read_record(d)
    assert rec is not None and "design" not in rec
    cfg = json.loads((d / "config.json").read_text())
    ruled = sequential_rules_out(cfg, load_runs(d), rec)  # what undecided cells rule out
    assert "\n".join(report_section(d, ruled)) in (d / "report.md").read_text()
    exp = load_experiment(str(d / "experiment.toml"), cfg.get("profile"))
    check_bound(d, exp)
    exp.claims[0].op = "<" if exp.claims[0].op != "<" else ">"
    with pytest.raises(SharpenError, match=r"claim 1 \(.*\) op: '.' → '.'.*another --out"):
        check_bound(d, exp)


def test_a_plain_run_cannot_grow_a_sequential_design_past_its_looks(tmp_path, capsys):
    """Issue 32 (optional stopping): a design whose budget of 2 seeds is spent, then
    `sharpen run --runs 6 --set stack_seeds=2` into the same directory was accepted and the
    Claims table judged the 6 seeds at the fixed-n level ("supported", no word of the looks
    before). A plain run may not add seeds past the looks: refused naming the design's
    budget and how to go on, every file of the directory byte-identical; without --set the
    stack_seeds refusal says the design fixed it (a key the user never set)."""
    from sharpen.cli import main

    p, out = tmp_path / "c2.toml", tmp_path / "r5"
    p.write_text(TINY)
    assert main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "2",
                 "--max-runs", "2", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    rec = json.loads((out / "sequential.json").read_text())
    assert [lk["n"] for lk in rec["units"][""]["looks"]] == [2]

    def files():
        return {f.relative_to(out): f.read_bytes() for f in sorted(out.rglob("*"))
                if f.is_file()}

    before = files()
    plain = ["run", str(p), "--out", str(out), "--workers", "1", "--quiet"]
    for extra in (["--runs", "6", "--set", "stack_seeds=2"], ["--runs", "6"],
                  ["--runs", "3", "--set", "stack_seeds=2"]):
        capsys.readouterr()
        assert main([*plain, *extra]) == 2, extra
        err = capsys.readouterr().err
        for said in (f"{out / 'sequential.json'}: ", "sequential design",
                     "--until-decided --step 2 --max-runs 2", "looks ran 2 seeds per arm",
                     f"--runs {extra[1]} would add seed(s) ", "after its looks", "another --out"):
            assert said in err, (extra, err)
        assert files() == before, extra  # nothing trained, no report judging 6 seeds
        assert not (out / "runs" / "fast" / "seed-2").exists()
    # the seeds the looks ran may be re-run (resumed: nothing to train) with the same plan;
    # the file's "auto" against the design's fixed 2 is refused saying who fixed it
    capsys.readouterr()
    assert main([*plain, "--runs", "2"]) == 2
    err = capsys.readouterr().err
    assert 'arms.fast.stack_seeds: 2 → "auto"' in err
    assert "stack_seeds was not set by you: this directory's sequential design " \
        "(--until-decided --step 2" in err, err
    assert files() == before
    assert main([*plain, "--runs", "2", "--set", "stack_seeds=2"]) == 0
    # the design itself continues (here: its budget is spent, nothing to train)
    assert main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "2",
                 "--max-runs", "2", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert not (out / "runs" / "fast" / "seed-2").exists()


def test_a_budget_that_is_not_whole_steps_is_said_not_silently_rounded(tmp_path, capsys):
    """--max-runs 3 with --step 2 looks at n = 2 only: said on stderr with the looks."""
    from sharpen.cli import main

    p, out = tmp_path / "c.toml", tmp_path / "r"
    p.write_text(TINY)
    assert main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "2",
                 "--max-runs", "3", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert [lk["n"] for lk in json.loads((out / "sequential.json").read_text())
            ["units"][""]["looks"]] == [2]
    assert ("--max-runs 3 is not a whole number of steps of 2: the design stops at 2 seeds "
            "per arm (looks at n = 2)") in capsys.readouterr().err


def test_a_claims_verdict_in_a_sequential_directory_is_the_designs_decision(tmp_path):
    """Hostile pass: in a directory grown by --until-decided the Claims table and
    summary.json said "supported" (fixed-n Holm p 0.036 at 0.05) for a claim the design had
    left undecided (p 0.036 against its last look's 0.0238). After looking, only the
    design's decision is valid: undecided is not supported, and a decided claim reads as
    decided."""
    from sharpen.reports import write_report
    from tests.test_stats import _rundir

    rng = np.random.default_rng(3)
    b = {s: 0.80 + 0.01 * rng.standard_normal() for s in range(6)}
    a = {s: b[s] + 0.02 + 0.002 * rng.standard_normal() for s in range(6)}  # clearly above
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"},
              {"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}]
    d = _rundir(tmp_path / "r", {"a": {s: [(v, None)] for s, v in a.items()},
                                 "b": {s: [(v, None)] for s, v in b.items()}}, claims)
    p_fixed = st.ttest_rel(list(a.values()), list(b.values())).pvalue
    assert p_fixed < 0.001  # the fixed-n Holm test: a beats b supported, b beats a contradicted
    plan = SequentialPlan.make([3, 6], 0.05, 2)
    look = {"n": 6, "threshold": plan.nominal[1],
            "claims": [{"p": p_fixed, "n": 6, "threshold": plan.nominal[1], "decision": None},
                       {"p": p_fixed, "n": 6, "threshold": plan.nominal[1],
                        "decision": "contradicted"}]}
    record = {"plan": plan.as_dict(), "claims": [c["claim"] for c in claims],
              "ops": [">", ">"],
              "units": {"": {"looks": [look], "finished": True, "decisions": {
                  "1": {"verdict": "contradicted", "n": 6, "look": 6, "p": p_fixed,
                        "threshold": plan.nominal[1]}}}}}
    (d / "sequential.json").write_text(json.dumps(record))
    write_report(d)
    report = (d / "report.md").read_text()
    section = report.split("## Claims\n", 1)[1].split("\n## ", 1)[0]
    rows = {r.split("|")[1].strip(): r for r in section.splitlines()
            if r.startswith("| a beats b") or r.startswith("| b beats a")}
    assert "| **not supported** |" in rows["a beats b"]
    assert "the fixed-n Holm test says supported; the sequential design left it undecided" \
        in rows["a beats b"]
    assert "| **contradicted** |" in rows["b beats a"]
    assert "decided by the sequential design at n = 6" in rows["b beats a"]
    assert "the verdict column is the design's decision" in report
    summary = json.loads((d / "summary.json").read_text())
    assert [c["verdict"] for c in summary["claims"]] == ["not supported", "contradicted"]
    # without the record the same runs are judged at fixed n
    (d / "sequential.json").unlink()
    write_report(d)
    assert [c["verdict"] for c in json.loads((d / "summary.json").read_text())["claims"]] == \
        ["supported", "contradicted"]


def test_a_decided_equivalence_shows_the_threshold_it_was_decided_at(tmp_path):
    """A `~` claim is supported when each one-sided test reaches half the look's threshold,
    contradicted (beyond the margin, one-sided × 2) at the whole threshold: the sequential
    section printed half for both (deblur-map-cifar10: 0.0014 beside a contradiction decided
    at 0.00281)."""
    from sharpen.reports.sequential import report_section

    plan = SequentialPlan.make([5, 10], 0.05, 2)
    thr = plan.nominal[1]
    rec = {"plan": plan.as_dict(), "claims": ["within", "also within"], "ops": ["~", "~"],
           "units": {"": {"looks": [], "finished": True, "decisions": {
               "0": {"verdict": "contradicted", "n": 10, "look": 10, "p": thr / 3,
                     "threshold": thr},
               "1": {"verdict": "supported", "n": 10, "look": 10, "p": thr / 3,
                     "threshold": thr}}}}}
    (tmp_path / "sequential.json").write_text(json.dumps(rec))
    rows = {r.split("|")[1].strip(): r for r in report_section(tmp_path) if r.startswith("| ")}
    assert rows["within"].endswith(f"| {thr:.3g} | – |")
    assert rows["also within"].endswith(f"| {thr / 2:.3g} | – |")


def test_a_sequential_directorys_claims_table_shows_the_repeated_interval(tmp_path):
    """Issue 34 leftover: in a grid-less directory grown by --until-decided the Claims table
    showed the naive 95 % interval, too narrow after looking on the way, while the grid's
    claim map showed the repeated one. Now the Claims table shows the repeated CI of the
    last look, labelled, checked against mean ± t_{1−thr/2, n−1}·sd/√n by hand."""
    from sharpen.reports import write_report
    from tests.test_stats import _rundir

    rng = np.random.default_rng(5)
    b = {s: 0.80 + 0.01 * rng.standard_normal() for s in range(6)}
    a = {s: b[s] + 0.004 + 0.004 * rng.standard_normal() for s in range(6)}
    claims = [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"}]
    d = _rundir(tmp_path / "r", {"a": {s: [(v, None)] for s, v in a.items()},
                                 "b": {s: [(v, None)] for s, v in b.items()}}, claims)
    plan = SequentialPlan.make([3, 6], 0.05, 1)
    diffs = np.array([a[s] - b[s] for s in range(6)])
    p_fixed = st.ttest_rel(list(a.values()), list(b.values())).pvalue
    look = {"n": 6, "threshold": plan.nominal[1],
            "claims": [{"p": p_fixed, "n": 6, "threshold": plan.nominal[1], "decision": None}]}
    record = {"plan": plan.as_dict(), "claims": ["a beats b"], "ops": [">"],
              "units": {"": {"looks": [look], "finished": True, "decisions": {}}}}
    (d / "sequential.json").write_text(json.dumps(record))
    write_report(d)
    section = (d / "report.md").read_text().split("## Claims\n", 1)[1].split("\n## ", 1)[0]
    row = next(r for r in section.splitlines() if r.startswith("| a beats b"))
    half = st.t.isf(plan.nominal[1] / 2, 5) * diffs.std(ddof=1) / math.sqrt(6)
    lo, hi = 100 * (diffs.mean() - half), 100 * (diffs.mean() + half)
    assert f"[{lo:+.2f} pp, {hi:+.2f} pp] (repeated CI at the last look, valid under the " \
           "sequential design)" in row
    naive = st.t.isf(0.025, 5) * diffs.std(ddof=1) / math.sqrt(6)
    assert f"{100 * (diffs.mean() - naive):+.2f} pp" not in row  # the naive interval is gone
    # a fixed-n directory (no record) keeps its 95 % interval
    (d / "sequential.json").unlink()
    write_report(d)
    assert "(95 %, unadjusted)" in (d / "report.md").read_text()
