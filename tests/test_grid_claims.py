"""A grid's claims are judged cell by cell: in a cell, a ``best`` / ``worst`` claim without
``than`` is best (worst) among that cell's arms, never against another cell's runs that the
same directory holds, in ``sharpen report``'s claim maps and in ``--until-decided`` alike;
a claim naming one cell's arm is refused (it would be judged nowhere, or in every cell)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from sharpen.cli import main
from sharpen.io import atomic_write_csv, atomic_write_json

KS = [1, 2]
SEEDS = range(6)
# per cell, each base arm's level: in cell k = 1 "a" beats b and c, but every arm of cell
# k = 2 is higher than all of cell 1 (a rival from there would contradict "a is best")
LEVEL = {1: {"a": 0.90, "b": 0.86, "c": 0.82}, 2: {"a": 0.975, "b": 0.955, "c": 0.935}}
CLAIMS = [{"claim": "a is the best arm", "arm": "a", "op": "best"},
          {"claim": "c is the worst arm", "arm": "c", "op": "worst"},
          {"claim": "a beats b and c", "arm": "a", "op": "best", "than": ["b", "c"]}]


def _grid_dir(root: Path) -> dict[int, dict[str, list[float]]]:
    rng = np.random.default_rng(7)
    acc: dict[int, dict[str, list[float]]] = {}
    cells, arms = {}, {}
    for k in KS:
        shared = rng.normal(0, 0.004, len(SEEDS))  # a per-seed level: pairing pays
        acc[k] = {a: list(v + shared + rng.normal(0, 0.004, len(SEEDS)))
                  for a, v in LEVEL[k].items()}
        for a in LEVEL[k]:
            cells[f"{a}__k-{k}"] = {"arm": a, "k": k}
            arms[f"{a}__k-{k}"] = {"dataset": "synthetic", "epochs": 1, "val_size": 0}
    atomic_write_json(root / "config.json", {
        "name": "grid-best", "profile": "", "runs": len(SEEDS), "seed": 0, "arms": arms,
        "cells": cells, "grid": {"k": KS}, "claims": CLAIMS, "arm_order": ["a", "b", "c"]})
    for name, c in cells.items():
        for s in SEEDS:
            t = float(acc[c["k"]][c["arm"]][s])
            d = root / "runs" / name / f"seed-{s}"
            rows = [{"epoch": 1, "train_loss": 0.1, "train_acc": 0.99, "test_acc": t,
                     "test_loss": 0.2, "gap": 0.99 - t}]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": name, "seed": s, "status": "ok",
                                                   "test_acc": t, "epochs_done": 1,
                                                   "base_arm": c["arm"], "seconds": 1.0})
    return acc


def _iu_p(arm: list[float], rivals: list[list[float]], want: int) -> tuple[float, int]:
    """Independent: the intersection–union p of "arm beats every rival" (paired t per
    rival, scipy), or the Bonferroni p of the most contrary rival; and the direction."""
    res = [(float(np.mean(np.subtract(arm, r))), st.ttest_rel(arm, r).pvalue) for r in rivals]
    against = [p for d, p in res if d * want < 0]
    if against:
        return min(1.0, len(res) * min(against)), -1
    return max(p for _, p in res), 1


def _rows(report: str, heading: str) -> dict[str, list[str]]:
    """The claim map table under ``heading``: k → its cells."""
    part = report.split(f"### {heading}\n", 1)[1].split("![claim map", 1)[0]
    return {line.split("|")[1].strip(): [x.strip() for x in line.split("|")[1:-1]]
            for line in part.splitlines() if line.startswith("| ") and
            line.split("|")[1].strip() in {str(k) for k in KS}}


def test_report_judges_best_and_worst_among_the_cells_own_arms(tmp_path):
    d = tmp_path / "g"
    acc = _grid_dir(d)
    assert main(["report", str(d)]) == 0
    report = (d / "report.md").read_text()
    for claim in CLAIMS:
        arm, want = claim["arm"], 1 if claim["op"] == "best" else -1
        rivals = [a for a in "abc" if a != arm]
        ps, dirs = zip(*(_iu_p(acc[k][arm], [acc[k][r] for r in rivals], want) for k in KS))
        reject, adj, _, _ = multipletests(ps, alpha=0.05, method="holm")
        rows = _rows(report, claim["claim"])
        for k, p, pa, rej, dr in zip(KS, ps, adj, reject, dirs):
            _, _eff, n, p_txt, pa_txt, _mde, _need, verdict, _notes = rows[str(k)]
            p_txt = p_txt.split(" / ")[0]  # the t p (the exact p beside it)
            assert n == str(len(SEEDS)) and float(p_txt) == pytest.approx(p, rel=1e-2)
            assert float(pa_txt) == pytest.approx(pa, rel=1e-2)
            want_v = ("supported" if dr > 0 else "contradicted") if rej else "not supported"
            assert verdict == f"**{want_v}**", (claim["claim"], k)
        # planted: in each cell a is best and c worst among the cell's own arms
        assert [rows[str(k)][-2] for k in KS] == ["**supported**"] * 2, claim["claim"]
        # and the report names them
        assert (f"Judged in each cell against that cell's {', '.join(rivals)}."
                in report.split(f"### {claim['claim']}\n", 1)[1].split("\n\n")[0])
    # the implicit rivals and the explicit `than` list are one and the same claim
    assert _rows(report, CLAIMS[0]["claim"]) == _rows(report, CLAIMS[2]["claim"])


TINY_GRID = """
name = "tiny-grid-best"
dataset = "synthetic"
train_size = 80
test_size = 60
epochs = 1
batch_size = 40
optimizer = "adam"
threads = 1
model = "lenet5_dropout"

[grid]  # more epochs train better: cell 1's fast is worse than cell 4's
epochs = [1, 4]

[arms.slow]
lr = 0.0001

[arms.fast]
lr = 0.005

[[claims]]
claim = "fast is the best arm"
arm = "fast"
op = "best"
"""


def _accs(out: Path, arm: str, n: int) -> list[float]:
    return [json.loads((out / "runs" / arm / f"seed-{s}" / "result.json").read_text())[
        "test_acc"] for s in range(n)]


def test_until_decided_judges_best_among_the_cells_own_arms_as_the_report_does(tmp_path):
    from sharpen.reports.sequential import decide

    p, out = tmp_path / "g.toml", tmp_path / "r"
    p.write_text(TINY_GRID)
    assert main(["run", str(p), "--until-decided", "--spend-anyway", "--step", "2", "--max-runs", "4",
                 "--out", str(out), "--quiet", "--workers", "1"]) == 0
    rec = json.loads((out / "sequential.json").read_text())
    assert set(rec["units"]) == {"epochs=1", "epochs=4"}
    for key, unit in rec["units"].items():
        size = key.split("=")[1]
        fast, slow = f"fast__epochs-{size}", f"slow__epochs-{size}"
        for look in unit["looks"]:
            (c,) = look["claims"]
            # independent: scipy's paired t of this cell's two arms on the look's seeds
            a, b = _accs(out, fast, look["n"]), _accs(out, slow, look["n"])
            assert c["p"] == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-9)
            assert c["direction"] == (1 if np.mean(np.subtract(a, b)) > 0 else -1)
            if str(0) not in unit["decisions"] or unit["decisions"]["0"]["look"] == look["n"]:
                assert c["decision"] == decide(c["p"], c["direction"], "best", c["threshold"])
    # cells run one after another: a later cell's look saw every earlier cell's runs, and
    # took them as rivals; each look records whom it judged against
    for key, unit in rec["units"].items():
        slow = f"slow__epochs-{key.split('=')[1]}"
        assert all(lk["claims"][0]["rivals"] == [slow] for lk in unit["looks"])
    # sharpen report rebuilds the map from files alone: the same rivals, named
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "Judged in each cell against that cell's slow." in report


def test_a_grid_claim_naming_one_cells_arm_is_refused(tmp_path, capsys):
    p = tmp_path / "g.toml"
    p.write_text(TINY_GRID.replace('op = "best"', 'op = ">"\nthan = "slow__epochs-1"'))
    assert main(["run", str(p), "--out", str(tmp_path / "r"), "--quiet"]) != 0
    assert not (tmp_path / "r").exists()  # refused before anything ran
    err = capsys.readouterr().err
    assert "claims[0]: 'slow__epochs-1' is one cell of the grid" in err
    assert "claims name its arms (slow, fast)" in err


def test_plan_seeds_on_a_grid_pilot_plans_each_claim_in_each_cell(tmp_path, capsys):
    """`sharpen plan-seeds DIR` on a grid: the base arms have no runs of their own (it said
    "n now 0"); each claim is planned in each cell from that cell's runs."""
    from statsmodels.stats.power import TTestPower

    d = tmp_path / "g"
    acc = _grid_dir(d)
    assert main(["plan-seeds", str(d)]) == 0
    out = capsys.readouterr().out
    for claim in CLAIMS:
        arm = claim["arm"]
        rivals = [a for a in "abc" if a != arm]
        for k in KS:
            # independent: the closest rival (largest paired p), its sd of differences, and
            # the effect a paired t at α/2 (2 cells, one family) detects with 80 % power
            closest = max(rivals, key=lambda r: st.ttest_rel(acc[k][arm], acc[k][r]).pvalue)
            sd = float(np.std(np.subtract(acc[k][arm], acc[k][closest]), ddof=1))
            mde = TTestPower().solve_power(nobs=len(SEEDS), alpha=0.05 / 2, power=0.8) * sd
            # the sd's own 95 % upper confidence limit (χ² on n − 1 df) beside it
            up = sd * np.sqrt((len(SEEDS) - 1) / st.chi2.ppf(0.05, len(SEEDS) - 1))
            row = f"| {claim['claim']} | k = {k} | {len(SEEDS)} | {100 * sd:.2f} pp " \
                  f"({100 * up:.2f} pp) | {100 * mde:.2f} pp |"
            assert row in out, (row, out)


def test_a_grid_over_one_model_argument_keeps_the_others_and_a_table_value_is_refused(
        tmp_path, capsys):
    """A grid over ``model_args`` tables trained every run and then failed with
    ``unhashable type: 'dict'`` (and replaced the arm's other model arguments). The axis is a
    field, ``model_args.dropout``, merged into the rest; a table as a value is refused at load
    with the way to write it, before anything trains."""
    base = TINY_GRID.replace("[grid]  # more epochs train better: cell 1's fast is worse than "
                             "cell 4's\nepochs = [1, 4]", "model_args = { activation = \"tanh\" }"
                             "\n\n[grid]\nmodel_args.dropout = [0.0, 0.5]")
    assert "model_args.dropout" in base
    p, out = tmp_path / "g.toml", tmp_path / "r"
    p.write_text(base)
    assert main(["run", str(p), "--runs", "1", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert sorted(cfg["cells"]) == ["fast__model_args.dropout-0.0", "fast__model_args.dropout-0.5",
                                    "slow__model_args.dropout-0.0", "slow__model_args.dropout-0.5"]
    for name, cell in cfg["cells"].items():
        assert cfg["arms"][name]["model_args"] == {"activation": "tanh",
                                                   "dropout": cell["model_args.dropout"]}
    report = (out / "report.md").read_text()
    assert "| model_args.dropout | slow | fast |" in report  # the grid table, one row a value
    assert "\n| 0.0 |" in report and "\n| 0.5 |" in report
    assert main(["report", str(out)]) == 0
    table = p.read_text().replace("model_args.dropout = [0.0, 0.5]",
                                  "model_args = [{dropout = 0.0}, {dropout = 0.5}]")
    p.write_text(table)
    assert main(["run", str(p), "--runs", "1", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "grid axis 'model_args': value {'dropout': 0.0} is a table or a list" in err
    assert "model_args.dropout = [0.0, 0.5]" in err
    assert not (tmp_path / "t").exists()


# --- a grid never makes two cells one configuration (issue 32) ---------------------------------

ARMS_GRID = """
name = "g"
dataset = "synthetic"
train_size = 60
test_size = 40
epochs = 1
runs = 1
threads = 1

[arms.base]

[arms.nodrop]
{arm}

[grid]
{axis}

[[claims]]
claim = "nodrop beats base"
arm = "nodrop"
op = ">"
than = "base"
"""


@pytest.mark.parametrize("arm,axis,field", [
    ("lr = 0.03", "lr = [0.001, 0.003]", "lr"),
    ("model_args = { dropout = 0.0 }", "model_args.dropout = [0.1, 0.3]", "model_args.dropout"),
])
def test_a_grid_axis_over_an_arms_own_key_is_refused_naming_arm_key_and_axis(
        tmp_path, capsys, arm, axis, field):
    """The axis set the key in every cell: nodrop ran as base everywhere, and its claim was
    judged +0.00 pp undecidable."""
    p, out = tmp_path / "g.toml", tmp_path / "r"
    p.write_text(ARMS_GRID.format(arm=arm, axis=axis))
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"field arms.nodrop.{field} is never used: the grid axis {field} sets {field} in " \
           "every cell" in err, err
    assert f"(arm base does not set it); drop {field} from arms.nodrop, or drop the axis " \
           f"{field} from the grid" in err
    assert not out.exists()  # refused before anything ran


def test_two_arms_the_grid_makes_identical_are_refused_and_a_grid_over_every_arm_is_not(
        tmp_path, capsys):
    p, out = tmp_path / "g.toml", tmp_path / "r"
    # every arm sets lr, and lr is all that tells them apart
    p.write_text(ARMS_GRID.format(arm="lr = 0.03", axis="lr = [0.001, 0.003]").replace(
        "[arms.base]\n", "[arms.base]\nlr = 0.1\n"))
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "arms base and nodrop are the same configuration in the grid's cells " \
           "(base__lr-0.001 and nodrop__lr-0.001): they differ only in lr, which the grid's " \
           "axes (lr) set in every cell" in err, err
    assert not out.exists()
    # every arm sets lr and they differ in another key too: the grid runs each at every lr
    # (a paper's grid at each model: bundled pairs-sublenet's lr-grid and batch-grid)
    from sharpen.experiments import load_experiment

    p.write_text(p.read_text().replace("[arms.nodrop]\n", "[arms.nodrop]\nmomentum = 0.5\n"))
    exp = load_experiment(str(p))
    for lr in (0.001, 0.003):
        assert exp.arms[f"base__lr-{lr}"].lr == exp.arms[f"nodrop__lr-{lr}"].lr == lr
        assert exp.arms[f"nodrop__lr-{lr}"] != exp.arms[f"base__lr-{lr}"]


def test_two_values_of_one_axis_that_give_one_configuration_are_refused(tmp_path, capsys):
    """``--axis epochs=1,true``: the run key reads true as 1, and the cells zeta__epochs-1
    and zeta__epochs-True ran the same configuration twice, as if two."""
    p, out = tmp_path / "z.toml", tmp_path / "r"
    p.write_text(ARMS_GRID.split("[arms.base]")[0] + "[arms.zeta]\n")
    assert main(["run", str(p), "--axis", "epochs=1,true", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "grid axis 'epochs': the values 1 and true give the same configuration (epochs = 1: " \
           "cells zeta__epochs-1 and zeta__epochs-True); give each value once" in err, err
    assert main(["run", str(p), "--axis", "model_args.dropout=0,0.0", "--out", str(out),
                 "--quiet"]) == 2
    assert "grid axis 'model_args.dropout': the values 0 and 0.0 give the same configuration" \
        in capsys.readouterr().err
    assert not out.exists()


def test_an_unknown_model_argument_is_named_alone(tmp_path, capsys):
    """It listed in_channels and num_classes (which sharpen passes every model) as bad
    keyword arguments beside the user's misspelt one."""
    p, out = tmp_path / "z.toml", tmp_path / "r"
    p.write_text(ARMS_GRID.split("[arms.base]")[0] + "[arms.zeta]\n")
    assert main(["run", str(p), "--axis", "model_args.nonexistent=1,2", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model 'lenet5_dropout' takes no argument 'nonexistent' (model_args); its " \
           "arguments: input_size, dropout, activation" in err, err
    assert "num_classes" not in err and "in_channels" not in err
    assert main(["run", str(p), "--set", "model_args.dropot=0.1", "--out", str(out)]) == 2
    assert "takes no argument 'dropot' (model_args) (did you mean 'dropout'?)" in \
        capsys.readouterr().err
    assert not out.exists()


def test_a_grids_published_arm_numbers_are_shown_not_left_out(tmp_path):
    """A grid experiment's [published.ARM] numbers were left out of its report without a
    word (bundled pairs-sublenet's lr-grid and batch-grid hold them): shown, each arm's
    number, said to be beside no cell."""
    d = tmp_path / "g"
    _grid_dir(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["published"] = {"b": {"runs": 20, "test_acc": 0.8607}, "a": {"test_acc": 0.9012,
                                                                     "test_acc_std": 0.004}}
    atomic_write_json(d / "config.json", cfg)
    assert main(["report", str(d)]) == 0
    report = (d / "report.md").read_text()
    part = report.split("## The published numbers (not set beside the grid's cells)\n", 1)[1]
    assert "this grid runs every arm at the grid's settings instead, so no cell is judged " \
           "against them" in part
    rows = [ln for ln in part.split("\n## ", 1)[0].splitlines() if ln.startswith("| ")]
    # the file's arm order (a before b), % as a report prints them, runs not a number row
    assert rows[1:] == ["| a | test_acc | 90.12 |", "| a | test_acc_std | 0.40 |",
                        "| b | test_acc | 86.07 |"]
    assert "## Ours beside the published numbers" not in report  # no cell judged against them


def test_in_a_grid_best_without_than_counts_the_files_arms_that_did_not_run(tmp_path):
    """`--arms slow,fast` left `strong` out of the grid, and "fast is the best arm" was judged
    in each cell against slow alone: strong stays a rival in every cell, the claim untested
    there without its runs (as outside a grid, tests/test_sequential_bound.py)."""
    text = TINY_GRID.replace("[arms.fast]", "[arms.strong]\nlr = 0.01\n\n[arms.fast]") \
        .replace("epochs = [1, 4]", "epochs = [1, 2]")
    p, out = tmp_path / "g.toml", tmp_path / "r"
    p.write_text(text)
    assert main(["run", str(p), "--runs", "2", "--arms", "slow,fast", "--out", str(out),
                 "--quiet", "--workers", "1"]) == 0
    report = (out / "report.md").read_text()
    for size in (1, 2):
        assert f"untested (no test_acc for strong__epochs-{size})" in report, report
    assert "supported" not in report.split("## Claim map", 1)[-1].split("\n## ", 1)[0] \
        .replace("not supported", "")
