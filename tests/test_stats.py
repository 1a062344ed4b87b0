"""Confidence intervals, paired comparisons, selection on validation, claims, compare.

Checked against scipy.stats and hand computations on fixed numbers, and on constructed run
directories where the right answer is known.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
from scipy import stats

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports import write_report
from sharpen.reports.claims import judge, run_values
from sharpen.reports.compare import compare_dirs, compare_table
from sharpen.reports.stats import compare, describe, verdict

A = [0.91, 0.93, 0.90, 0.95, 0.92]
B = [0.89, 0.92, 0.90, 0.91, 0.88]


def test_summary_interval_is_student_t_by_hand_and_by_scipy():
    sm = describe(A)
    n, m = 5, sum(A) / 5
    sd = math.sqrt(sum((x - m) ** 2 for x in A) / (n - 1))
    half = 2.7764451051977987 * sd / math.sqrt(n)  # t(0.975, 4), from a table
    assert sm["mean"] == pytest.approx(m) and sm["sd"] == pytest.approx(sd)
    assert (sm["ci_low"], sm["ci_high"]) == pytest.approx((m - half, m + half))
    lo, hi = stats.t.interval(0.95, n - 1, loc=m, scale=stats.sem(A))
    assert (sm["ci_low"], sm["ci_high"]) == pytest.approx((lo, hi))
    assert (sm["best"], sm["worst"]) == (0.95, 0.90)
    one = describe([0.5])
    assert one["sd"] is None and one["ci_low"] is None and one["mean"] == 0.5


def test_paired_comparison_against_scipy_and_by_hand():
    c = compare(dict(enumerate(A)), dict(enumerate(B)))
    d = [a - b for a, b in zip(A, B)]
    md = sum(d) / 5
    sdd = math.sqrt(sum((x - md) ** 2 for x in d) / 4)
    assert c.paired and c.test == "paired t-test" and c.n == 5
    assert c.diff == pytest.approx(md)
    half = 2.7764451051977987 * sdd / math.sqrt(5)
    assert (c.ci_low, c.ci_high) == pytest.approx((md - half, md + half))
    assert c.p == pytest.approx(stats.ttest_rel(A, B).pvalue)
    t = md / (sdd / math.sqrt(5))
    assert c.p == pytest.approx(2 * stats.t.sf(abs(t), 4))  # the p-value from t by hand
    assert c.effect == pytest.approx(md / sdd) and c.effect_name == "d_z"


def test_runs_without_common_seeds_fall_back_to_welch_and_say_so():
    c = compare({0: A[0], 1: A[1], 2: A[2]}, {7: B[0], 8: B[1], 9: B[2], 10: B[3]})
    assert not c.paired and "Welch" in c.test
    ref = stats.ttest_ind(A[:3], B[:4], equal_var=False)
    assert c.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))


def test_verdicts():
    assert str(verdict(0.01, 0.03, ">")) == "supported"
    assert str(verdict(-0.01, 0.03, ">")) == "not supported"
    assert str(verdict(-0.03, -0.01, ">")) == "contradicted"
    assert str(verdict(-0.03, -0.01, "<")) == "supported"
    assert str(verdict(-0.004, 0.006, "~", 0.01)) == "supported"
    assert str(verdict(0.02, 0.03, "~", 0.01)) == "contradicted"
    assert str(verdict(-0.004, 0.02, "~", 0.01)) == "not supported"
    assert str(verdict(None, None, ">")).startswith("untested")


def _rundir(root: Path, arms: dict[str, dict[int, list[tuple[float, float | None]]]],
            claims: list | None = None, cells: dict | None = None) -> Path:
    """A run directory from per-arm, per-seed epochs of (test_acc, val_acc)."""
    root.mkdir(parents=True)
    has_val = any(v is not None for runs in arms.values() for ep in runs.values() for _, v in ep)
    cfg = {"name": "made", "profile": "", "runs": 3, "seed": 0,
           "arms": {a: {"dataset": "synthetic", "epochs": 3, "val_size": 10 if has_val else 0}
                    for a in arms}}
    if claims:
        cfg["claims"] = claims
    if cells:
        cfg["cells"], cfg["grid"] = cells, {"lr": sorted({c["lr"] for c in cells.values()})}
    atomic_write_json(root / "config.json", cfg)
    for arm, runs in arms.items():
        for seed, epochs in runs.items():
            d = root / "runs" / arm / f"seed-{seed}"
            rows = [{"epoch": i + 1, "train_loss": 0.1, "train_acc": 0.99, "test_acc": t,
                     "test_loss": 0.2, "gap": 0.99 - (v if v is not None else t),
                     **({"val_acc": v, "val_loss": 0.2} if v is not None else {})}
                    for i, (t, v) in enumerate(epochs)]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            res = {"arm": arm, "seed": seed, "status": "ok", "test_acc": epochs[-1][0],
                   "best_test_acc": max(t for t, _ in epochs), "epochs_done": len(epochs),
                   "val_acc": epochs[-1][1], "train_acc": 0.99, "gap": rows[-1]["gap"],
                   "seconds": 1.0}
            if cells and arm in cells:
                res["base_arm"] = cells[arm]["arm"]
            atomic_write_json(d / "result.json", res)
    return root


def test_selection_is_on_validation_and_reports_the_test_accuracy_there(tmp_path):
    # validation peaks at epoch 2, test at epoch 3: the selected test accuracy is epoch 2's
    runs = {s: [(0.80, 0.70), (0.85 + s / 100, 0.90), (0.95, 0.75)] for s in range(3)}
    d = _rundir(tmp_path / "r", {"a": runs})
    v = run_values(d)["a"]
    assert [v[s]["selected_test_acc"] for s in range(3)] == pytest.approx([0.85, 0.86, 0.87])
    assert all(v[s]["best_test_acc"] == 0.95 and v[s]["selected_val_acc"] == 0.90 for s in range(3))
    md = write_report(d).read_text()
    assert "Selection happens on validation" in md
    row = next(line for line in md.splitlines() if line.startswith("| a |"))
    assert "| 86.00 [" in row  # the mean of 85, 86, 87 at the best-val epoch, with its CI
    sm = describe([0.85, 0.86, 0.87])
    assert f"[{100 * sm['ci_low']:.2f}, {100 * sm['ci_high']:.2f}]" in row


def test_without_validation_the_report_says_it_selects_on_test(tmp_path):
    d = _rundir(tmp_path / "r", {"a": {0: [(0.8, None), (0.9, None)]}})
    md = write_report(d).read_text()
    assert "no validation split, so any choice of epoch or cell is made on test" in md
    assert "| n/a | n/a |" in md  # one run: sd and CI are n/a, never ± 0.00


def test_the_keep_best_column_is_the_best_test_epoch_of_metrics_csv(tmp_path):
    runs = {0: [(0.80, 0.7), (0.93, 0.8), (0.90, 0.9)], 1: [(0.91, 0.7), (0.85, 0.8), (0.88, 0.9)]}
    d = _rundir(tmp_path / "r", {"a": runs})
    cfg = json.loads((d / "config.json").read_text())
    cfg["arms"]["a"]["keep_best"] = True
    atomic_write_json(d / "config.json", cfg)
    md = write_report(d).read_text()
    head = next(line for line in md.splitlines() if line.startswith("| arm |"))
    row = next(line for line in md.splitlines() if line.startswith("| a |"))
    col = [h.strip() for h in head.split("|")].index(
        "best test epoch acc % (selected on test: optimistic)")
    best = [max(float(r["test_acc"]) for r in csv.DictReader(open(p)))
            for p in sorted(d.glob("runs/a/seed-*/metrics.csv"))]
    assert [c.strip() for c in row.split("|")][col].startswith(f"{100 * sum(best) / 2:.2f} ±")


def _claims_dir(tmp_path: Path) -> Path:
    base = {s: [(0.80 + s / 100, 0.8)] for s in range(5)}
    better = {s: [(0.83 + s / 100 + (0.004 if s % 2 else -0.004), 0.8)] for s in range(5)}
    same = {s: [(0.80 + s / 100 + (0.01 if s % 2 else -0.01), 0.8)] for s in range(5)}
    return _rundir(tmp_path / "c", {"base": base, "better": better, "same": same})


@pytest.mark.parametrize("claim,want", [
    ({"arm": "better", "op": ">", "than": "base"}, "supported"),
    ({"arm": "same", "op": ">", "than": "base"}, "not supported"),
    ({"arm": "base", "op": ">", "than": "better"}, "contradicted"),
    ({"arm": "better", "op": "best"}, "supported"),
    ({"arm": "base", "op": "best"}, "contradicted"),
    ({"arm": "same", "op": "best", "than": ["base"]}, "not supported"),
    ({"arm": "base", "op": "<", "value": 0.9}, "supported"),
    ({"arm": "base", "op": "~", "than": "same", "tolerance": 0.05}, "supported"),
])
def test_each_verdict_on_a_constructed_run_directory(tmp_path, claim, want):
    d = _claims_dir(tmp_path)
    r = judge({"claim": "c", **claim}, run_values(d))
    assert r["verdict"] == want
    assert r["n"] == 5


def test_the_report_has_a_claims_table(tmp_path):
    d = _claims_dir(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["claims"] = [{"claim": "better beats base", "paper_says": "+3 pp", "arm": "better",
                      "op": ">", "than": "base"}]
    atomic_write_json(d / "config.json", cfg)
    md = write_report(d).read_text()
    assert "## Claims" in md
    row = next(line for line in md.splitlines() if line.startswith("| better beats base |"))
    # per-seed differences 3 ∓ 0.4 pp over 5 seeds: mean 3 − 0.4/5 = 2.92 pp
    assert "**supported**" in row and "| paired t-test |" in row and "+2.92 pp" in row
    assert "| **supported** | 5 |" in row
    # 5 differences all positive: the exact sign-flip p is 2/2⁵ = 0.0625, above 5 %
    assert "rests on the normal model" in row and "p = 0.0625" in row
    assert "at n = 5 it cannot reach the family's level; it could from n = 6" in row
    assert "## Paired comparisons with `base`" in md


def test_compare_across_two_directories(tmp_path):
    d1 = _rundir(tmp_path / "one", {"a": {s: [(0.80 + s / 100, 0.8)] for s in range(3)}})
    d2 = _rundir(tmp_path / "two", {"a": {s: [(0.82 + s / 100, 0.8)] for s in range(3)}})
    rows = compare_table([d1, d2], "test_acc")
    assert [r["row"] for r in rows] == ["one/a", "two/a"]
    # the same 0.02 on every seed: no spread, so no t-test, no [x, x] and no infinite d_z
    assert rows[1]["vs"] == "one/a" and rows[1]["test"] == "exact sign-flip (no spread)"
    assert rows[1]["diff"] == pytest.approx(0.02) and rows[1]["n"] == 3
    assert rows[1]["p"] is None and rows[1]["p_exact"] == 0.25 and rows[1]["diff_ci_low"] is None
    text = compare_dirs([d1, d2], "test_acc", out=tmp_path / "cmp.md")
    assert "| two/a | 3 |" in text and "none: 3 identical differences" in text
    assert text.startswith("Metric: test accuracy (test_acc, final epoch).")
    assert (tmp_path / "cmp.png").exists() and (tmp_path / "cmp.pdf").exists()
    out = compare_dirs([d1, d2], "test_acc", fmt="csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert float(parsed[1]["diff"]) == pytest.approx(0.02) and parsed[0]["vs"] == ""
    # --baseline names an arm: the one row holding it, else the rows that do, to choose from
    d3 = _rundir(tmp_path / "three", {"b": {s: [(0.81, 0.8)] for s in range(3)}})
    rows = compare_table([d1, d3], "test_acc", baseline="b")
    assert [r.get("vs") for r in rows] == ["three/b", None]
    assert rows[0]["diff"] == pytest.approx(0.80 + 0.01 - 0.81)
    with pytest.raises(SharpenError, match=r"^--baseline 'a': 2 rows hold arm 'a' \(one/a, "
                       r"two/a\); name one as DIR/ARM$"):
        compare_table([d1, d2], "test_acc", baseline="a")
    with pytest.raises(SharpenError, match=r"^--baseline 'z': not a row; rows: one/a, two/a$"):
        compare_table([d1, d2], "test_acc", baseline="z")
    assert compare_table([d1, d2], "test_acc", baseline="two/a")[0]["vs"] == "two/a"


def test_latex_output_is_a_well_formed_tabular(tmp_path):
    d = _rundir(tmp_path / "x_y", {"arm_1": {s: [(0.8 + s / 100, 0.8)] for s in range(3)},
                                   "arm_2": {s: [(0.9, 0.8)] for s in range(3)}})
    tex = compare_dirs([d], "test_acc", fmt="latex")
    lines = tex.strip().splitlines()
    assert lines[0].startswith("% Metric: test accuracy (test_acc, final epoch)")
    lines = lines[1:]
    m = re.fullmatch(r"\\begin\{tabular\}\{(l r*)\}".replace(" ", ""), lines[0])
    assert m and lines[-1] == r"\end{tabular}"
    ncols = len(m.group(1))
    body = [ln for ln in lines[1:-1] if ln != r"\hline"]
    assert len(body) == 3  # header + two rows
    for ln in body:
        assert ln.endswith(r"\\")
        cells = re.split(r"(?<!\\)&", ln[:-2])
        assert len(cells) == ncols
        assert not re.search(r"(?<!\\)[%_#&$]", ln.replace("$-$", "").replace(r"$\pm$", "")
                             .replace("&", "")), ln  # every special character escaped
    assert r"arm\_1" in tex and r"\%" in tex


def test_grid_best_cell_is_chosen_on_validation(tmp_path):
    # lr 0.1 has the better test accuracy but the worse validation accuracy
    cells = {"m__lr-0.1": {"arm": "m", "lr": 0.1}, "m__lr-0.01": {"arm": "m", "lr": 0.01}}
    d = _rundir(tmp_path / "g", {"m__lr-0.1": {s: [(0.95, 0.70)] for s in range(3)},
                                 "m__lr-0.01": {s: [(0.90, 0.80)] for s in range(3)}}, cells=cells)
    md = write_report(d).read_text()
    assert "chosen on validation" in md
    line01 = next(ln for ln in md.splitlines() if ln.startswith("| 0.01 |"))
    line1 = next(ln for ln in md.splitlines() if ln.startswith("| 0.1 |"))
    assert "**90.00" in line01 and "**" not in line1


def test_against_published_is_an_equivalence_question_with_four_outcomes():
    from sharpen.reports.stats import against_published
    xs = [0.84, 0.86, 0.85, 0.83, 0.87]
    # the paper's mean of 5 runs, our sd standing in for theirs: only our s is observed, so
    # s·√(1/5 + 1/5) with n − 1 = 4 degrees of freedom (issue 32: not 2(n − 1))
    s = stats.tstd(xs)
    half = stats.t.ppf(0.975, 4) * s * math.sqrt(2 / 5)
    ref = stats.t.interval(0.95, 4, loc=0.05, scale=s * math.sqrt(2 / 5))
    a = against_published(xs, 0.80, 0.01, runs=5)
    assert a["diff"] == pytest.approx(0.05) and a["half"] == pytest.approx(half)
    assert (a["diff"] - a["half"], a["diff"] + a["half"]) == pytest.approx(ref)
    assert a["verdict"] == "better than published"
    half90 = stats.t.ppf(0.95, 4) * s * math.sqrt(2 / 5)
    assert a["half90"] == pytest.approx(half90)
    assert a["assumption"] == "the paper's n = 5, our sd as its sd"
    # one published run (no n given): the pooled two-sample t of ours against one value
    one = against_published(xs, 0.80, 0.01)
    ref1 = stats.ttest_ind(xs, [0.80], equal_var=True).confidence_interval(0.95)
    assert (one["diff"] - one["half"], one["diff"] + one["half"]) == pytest.approx(
        (ref1.low, ref1.high))
    assert one["assumption"] == "one run (no n given), our sd as its sd"
    # reproduced: the 90 % interval inside ± margin; just outside it, undecided
    m = half90 + 0.001
    assert against_published(xs, 0.85, m, runs=5)["verdict"] == "reproduced"
    assert against_published(xs, 0.85 + 0.002, m, runs=5)["verdict"] == "undecided"
    assert against_published(xs, 0.85 + 1.01 * half, 0.001, runs=5)["verdict"] \
        == "worse than published"
    # the published number's rounding widens both intervals by half a unit
    r = against_published(xs, 0.85 + 1.01 * half, 0.001, runs=5, rounding=0.005)
    assert r["half"] == pytest.approx(half + 0.005) and r["verdict"] == "undecided"
    # for a lower-is-better metric, higher is worse
    assert against_published(xs, 0.80, 0.01, higher_is_better=False, runs=5)["verdict"] \
        == "worse than published"
    assert against_published([0.9], 0.9, 0.01)["verdict"].startswith("untested")
    assert against_published([0.9, 0.9], 0.9, 0.01)["verdict"] == "undecidable at n = 2"


def test_published_grid_is_set_beside_ours_cell_by_cell(tmp_path):
    cells = {"m__lr-0.1": {"arm": "m", "lr": 0.1}, "m__lr-0.01": {"arm": "m", "lr": 0.01}}
    d = _rundir(tmp_path / "g", {"m__lr-0.1": {s: [(0.50 + s / 100, None)] for s in range(3)},
                                 "m__lr-0.01": {s: [(0.90 + s / 100, None)] for s in range(3)}},
                cells=cells)
    cfg = json.loads((d / "config.json").read_text())
    cfg["published_grid"] = {"lr": {"values": [0.1, 0.01], "m": [0.51, 0.70]}}
    atomic_write_json(d / "config.json", cfg)
    md = write_report(d).read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith(("| 0.1 | m |", "| 0.01 | m |"))]
    assert rows[0].startswith("| 0.1 | m | 51.00 [") and "| 51.00 | +0.00 ± " in rows[0]
    # sd 1 pp at n = 3: the 90 % interval is wider than ± 1 pp; the paper's n not given:
    # one run, and 0.51 is known to ± 0.005
    assert rows[0].endswith("| one run (no n given), our sd as its sd; ± 0.5 pp rounding | "
                            "undecided |")
    assert "| 70.00 | +21.00 ± " in rows[1] and rows[1].endswith("| better than published |")
    assert "Of 2 cells: reproduced 0, better than published 1, undecided 1." in md
    assert "- m: our best lr 0.01 (mean on test), the paper's table's best 0.01." in md


@pytest.mark.parametrize("table,match", [
    ("[published_grid.lr]\na = [0.5]", r"published_grid.lr: needs values"),
    ("[published_grid.lr]\nvalues = [0.1]\nq = [0.5]", r"published_grid.lr.q: not an arm; arms: a"),
    ("[published_grid.lr]\nvalues = [0.1, 0.2]\na = [0.5]",
     r"published_grid.lr.a: 1 numbers for 2 values"),
    ("[published_grid.lrr]\nvalues = [0.1]\na = [0.5]",
     r"'lrr' is not a run key \(did you mean 'lr'\?\)"),
])
def test_bad_published_grids_name_the_field(tmp_path, table, match):
    from sharpen import SharpenError
    from sharpen.experiments import load_experiment
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\ndataset = "synthetic"\n[arms.a]\n' + table + "\n")
    with pytest.raises(SharpenError, match=match):
        load_experiment(str(p))


def test_stage_jumps_pair_each_stage_start_with_the_baseline(tmp_path):
    from sharpen.reports.curriculum import stage_jumps
    # baseline climbs 1 pp an epoch; the curriculum arm climbs 3 (+ seed noise) when its
    # blur kernel goes 3 → 1 at epoch 3, and 1 pp otherwise
    for arm, col in (("base", None), ("cur", "blur_n")):
        for seed in range(3):
            rows = []
            for e in range(1, 5):
                acc = 0.5 + 0.01 * e + (0.02 + 0.001 * seed if col and e >= 3 else 0.0)
                row = {"epoch": e, "test_acc": acc}
                if col:
                    row[col] = 3 if e < 3 else 1
                rows.append(row)
            atomic_write_csv(tmp_path / "runs" / arm / f"seed-{seed}" / "metrics.csv", rows,
                             list(rows[0]))
    md, rows = stage_jumps(tmp_path, "base")
    assert [(r["arm"], r["epoch"], r["from"], r["blur_n"]) for r in rows] == [("cur", 3, "3", "1")]
    want = describe([0.020, 0.021, 0.022])  # the per-seed extra climb, by hand
    assert rows[0]["diff"] == pytest.approx(want["mean"])
    assert rows[0]["ci_low"] == pytest.approx(want["ci_low"]) and rows[0]["verdict"] == "climbs"
    assert "| cur | 3 | blur_n 3 → 1 | +2.10 |" in md


@pytest.mark.slow
def test_every_folder_in_docs_results_rebuilds_byte_for_byte(tmp_path):
    import shutil

    root = Path(__file__).parents[1] / "docs" / "results"
    dirs = [d for d in sorted(root.iterdir()) if (d / "config.json").is_file()
            and (d / "report.md").is_file()
            # skip a run in progress (its last invocation has not ended); earlier invocations
            # stopped by a session's end and then resumed do not count
            and not any(h.get("wall_s") is None for h in _history(d)[-1:])]
    assert len(dirs) >= 9 and "vgg-cifar10-cpu" in {d.name for d in dirs}
    for d in dirs:
        copy = tmp_path / d.name
        shutil.copytree(d, copy)
        write_report(copy)
        for f in ("report.md", "summary.json", "table.csv"):
            assert (copy / f).read_bytes() == (d / f).read_bytes(), f"{d.name}/{f}"


def _history(d: Path) -> list:
    p = d / "history.json"
    return json.loads(p.read_text()) if p.exists() else []


def test_a_claim_about_an_arm_that_was_not_run_is_untested(tmp_path):
    d = _rundir(tmp_path / "r", {"a": {s: [(0.9 + s / 100, None)] for s in range(3)},
                                 "b": {s: [(0.8, None)] for s in range(3)}})
    v = run_values(d)
    assert judge({"claim": "x", "arm": "a", "op": "best", "than": ["b", "zz"]}, v)["verdict"] \
        == "untested (no test_acc for zz)"
    assert judge({"claim": "x", "arm": "a", "op": ">", "than": "zz"}, v)["verdict"] \
        == "untested (no test_acc for zz)"
    assert judge({"claim": "x", "arm": "a", "op": "best", "than": ["b"]}, v)["verdict"] == "supported"


def test_welch_every_field_against_scipy_and_the_textbook_formulas():
    from sharpen.reports.stats import welch

    xa, xb = A[:3], B[:4]
    w = welch(xa, xb)
    assert w.paired is False and w.test == "Welch t-test (unpaired)"
    assert (w.n, w.n_a, w.n_b, w.effect_name) == (3, 3, 4, "g")
    assert w.diff == pytest.approx(sum(xa) / 3 - sum(xb) / 4)
    ref = stats.ttest_ind(xa, xb, equal_var=False)
    assert w.p == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (w.ci_low, w.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # Hedges' g: the mean difference over the pooled sd, times J = 1 − 3 / (4(n_a + n_b) − 9)
    va, vb = stats.tvar(xa), stats.tvar(xb)
    pooled = math.sqrt((2 * va + 3 * vb) / 5)
    assert w.effect == pytest.approx(w.diff / pooled * (1 - 3 / 19), rel=1e-12)


def test_welch_and_compare_in_their_degenerate_cases():
    from sharpen.reports.stats import welch

    for xa, xb in (([0.9], [0.8, 0.7]), ([0.9, 0.8], [0.7])):  # one side with a single run
        w = welch(xa, xb)
        assert w.diff == pytest.approx(sum(xa) / len(xa) - sum(xb) / len(xb))
        assert w.ci_low is w.ci_high is w.p is w.effect is None
        assert (w.n_a, w.n_b, w.n) == (len(xa), len(xb), 1)
    w = welch([], [0.8, 0.7])
    assert w.diff is None and w.n == 0
    # two runs on each side with no spread: no interval and no test, said so
    w = welch([0.9, 0.9], [0.7, 0.7])
    assert w.diff == pytest.approx(0.2) and w.ci_low is w.ci_high is w.p is None
    assert not w.spread and w.test.startswith("none")
    # paired differences that are all equal: no t-test, no interval, no infinite d_z; the
    # exact sign-flip test decides (2 identical differences: p = 2/2² = 0.5)
    c = compare({0: 0.9, 1: 0.8}, {0: 0.7, 1: 0.6})
    assert c.p is None and c.effect is None and c.ci_low is None and not c.spread
    assert c.p_exact == 0.5 and c.decision_p == 0.5 and c.diff == pytest.approx(0.2)
    c = compare({0: 0.6, 1: 0.5}, {0: 0.6, 1: 0.5})
    assert c.p is None and c.p_exact == 1.0
    # one common seed is not enough to pair
    assert compare({0: 0.6, 1: 0.5}, {1: 0.7, 2: 0.6}).paired is False


@pytest.mark.parametrize("lo,hi,direction,tol,want", [
    (0.0, 0.1, ">", 0, "not supported"), (-0.1, 0.0, ">", 0, "not supported"),
    (1e-9, 0.1, ">", 0, "supported"), (-0.1, -1e-9, ">", 0, "contradicted"),
    (-0.1, 0.0, "<", 0, "not supported"), (0.0, 0.1, "<", 0, "not supported"),
    (1e-9, 0.1, "<", 0, "contradicted"), (-0.1, -1e-9, "<", 0, "supported"),
    (-0.01, 0.01, "~", 0.01, "supported"), (-0.0101, 0.01, "~", 0.01, "not supported"),
    (0.01, 0.02, "~", 0.01, "not supported"), (0.0101, 0.02, "~", 0.01, "contradicted"),
    (-0.02, -0.0101, "~", 0.01, "contradicted"), (-0.02, -0.01, "~", 0.01, "not supported"),
    (0.1, None, ">", 0, "untested (n < 2)"), (None, 0.1, "<", 0, "untested (n < 2)"),
])
def test_verdict_at_its_boundaries(lo, hi, direction, tol, want):
    assert str(verdict(lo, hi, direction, tol)) == want


def test_verdict_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="direction must be"):
        verdict(0.1, 0.2, ">=")


def test_summary_and_against_published_with_too_few_runs():
    assert describe([]) == {"n": 0, "mean": None, "sd": None, "ci_low": None, "ci_high": None,
                           "best": None, "worst": None, "spread": False}
    from sharpen.reports.stats import against_published

    a = against_published([0.9], 0.8, 0.01)
    assert a["diff"] == pytest.approx(0.1) and a["half"] is None and a["published"] == 0.8
    assert a["verdict"].startswith("untested")
    e = against_published([], 0.8, 0.01)
    assert e["diff"] is None and e["verdict"].startswith("untested")
    low = against_published([0.84, 0.86, 0.85], 0.95, 0.01)
    assert low["verdict"] == "worse than published" and low["n"] == 3


def test_verdict_on_no_difference_has_no_tolerance_unless_given():
    # "~" without a tolerance: only an interval of exactly zero is "no difference"
    assert str(verdict(0.1, 0.2, "~")) == "contradicted"
    assert str(verdict(-0.1, 0.2, "~")) == "not supported"
    assert str(verdict(0.0, 0.0, "~")) == "supported"


def test_one_p_value_formatter_prints_both_tables_styles():
    from sharpen.reports.stats import format_p

    assert [format_p(p) for p in (None, 0.012345, 0.00012, 1.0)] == [
        "n/a", "0.0123", "0.00012", "1"]  # the paired-comparison table
    assert [format_p(p, 2, "–", sci_below=0.001) for p in (None, 0.012345, 0.001, 0.00012)] \
        == ["–", "0.012", "0.001", "1.2e-04"]  # the claims table
