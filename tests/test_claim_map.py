"""Claim maps (issue 25, item 2): a grid's claim judged in every cell, paired within the
cell, the cells one Holm family; the heat map's axes are the grid's keys."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports import write_report
from sharpen.reports.claim_map import claim_maps, map_figure
from sharpen.reports.claims import load_runs

STAGES, EPOCHS = [1, 3, 5], [1, 2]
# the planted effect of "sharp" over "base" per cell (pp): strong where stages and epochs
# are many, none at one stage, reversed at (5, 1)
EFFECT = {(1, 1): 0.0, (1, 2): 0.0, (3, 1): 1.0, (3, 2): 2.0, (5, 1): -2.0, (5, 2): 3.0}
SEEDS = range(6)


def _grid_dir(root: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(3)
    cells, arms = {}, {}
    acc: dict[tuple, dict[str, list[float]]] = {}
    for k, e in itertools.product(STAGES, EPOCHS):
        base = 0.90 + rng.normal(0, 0.004, len(SEEDS))  # shared per-seed level: pairing pays
        acc[(k, e)] = {"base": list(base),
                       "sharp": list(base + EFFECT[(k, e)] / 100 + rng.normal(0, 0.003, 6))}
        for a in ("base", "sharp"):
            name = f"{a}__stages-{k}__epochs_per_stage-{e}"
            cells[name] = {"arm": a, "stages": k, "epochs_per_stage": e}
            arms[name] = {"dataset": "synthetic", "epochs": 2, "val_size": 0}
    cfg = {"name": "map", "profile": "", "runs": 6, "seed": 0, "arms": arms, "cells": cells,
           "grid": {"stages": STAGES, "epochs_per_stage": EPOCHS},
           "claims": [{"claim": "sharpening beats the baseline", "arm": "sharp", "op": ">",
                       "than": "base"}]}
    root.mkdir(parents=True)
    atomic_write_json(root / "config.json", cfg)
    for name, c in cells.items():
        for s in SEEDS:
            t = float(acc[(c["stages"], c["epochs_per_stage"])][c["arm"]][s])
            d = root / "runs" / name / f"seed-{s}"
            rows = [{"epoch": 1, "train_loss": 0.1, "train_acc": 0.99, "test_acc": t,
                     "test_loss": 0.2, "gap": 0.99 - t}]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": name, "seed": s, "status": "ok",
                                                   "test_acc": t, "epochs_done": 1,
                                                   "base_arm": c["arm"], "seconds": 1.0})
    return root, acc


def test_every_cell_is_judged_paired_and_the_cells_are_one_holm_family(tmp_path):
    d, acc = _grid_dir(tmp_path / "g")
    (cm,) = claim_maps(json.loads((d / "config.json").read_text()), load_runs(d))
    # the axes as config.json stores the grid (its keys sorted), every cell once
    assert cm.axes == ["epochs_per_stage", "stages"] and len(cm.cells) == 6
    points = [(c.point["stages"], c.point["epochs_per_stage"]) for c in cm.cells]
    assert sorted(points) == sorted(itertools.product(STAGES, EPOCHS))
    # independent: scipy's paired t per cell, statsmodels' Holm over the six
    ps = [st.ttest_rel(acc[p]["sharp"], acc[p]["base"]).pvalue for p in points]
    reject, adj, _, _ = multipletests(ps, alpha=0.05, method="holm")
    for c, p, pa, rej, pt in zip(cm.cells, ps, adj, reject, points):
        assert c.result.p == pytest.approx(p, rel=1e-9)
        assert c.result.p_adj == pytest.approx(pa, rel=1e-9)
        diff = np.mean(np.subtract(acc[pt]["sharp"], acc[pt]["base"]))
        assert c.diff == pytest.approx(diff)
        want = ("supported" if diff > 0 else "contradicted") if rej else "not supported"
        assert str(c.result.verdict) == want, pt
    verdicts = {pt: str(c.result.verdict) for pt, c in zip(points, cm.cells)}
    assert verdicts[(3, 2)] == verdicts[(5, 2)] == "supported"
    assert verdicts[(5, 1)] == "contradicted" and verdicts[(1, 1)] == "not supported"


def test_the_heat_map_axes_are_the_grid_keys_and_the_report_shows_it(tmp_path):
    d, _ = _grid_dir(tmp_path / "g")
    (cm,) = claim_maps(json.loads((d / "config.json").read_text()), load_runs(d))
    fig = map_figure(cm)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epochs_per_stage" and ax.get_ylabel() == "stages"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "3", "5"]
    colours = {tuple(round(v, 3) for v in p.get_facecolor()[:3]) for p in ax.patches}
    assert len(colours) == 3  # supported, contradicted, not supported
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 6 and any(t.startswith("+2.95 pp\n[") for t in texts)
    assert all(t.endswith(f"\nn = {c.result.n}") for t, c in zip(texts, cm.cells))
    write_report(d)
    report = (d / "report.md").read_text()
    assert "## Claim maps: where each claim holds in the grid" in report
    assert ("Supported in epochs_per_stage = 1, stages = 3; epochs_per_stage = 2, stages = 3; "
            "epochs_per_stage = 2, stages = 5.") in report
    assert (d / "claim_map_1.png").is_file() and (d / "claim_map_1.pdf").is_file()
    from sharpen.reports.compare import compare_dirs

    assert "| 1 | 5 |" in compare_dirs([d]) and "**contradicted**" in compare_dirs([d])


def test_compare_on_a_grid_pairs_each_cell_with_its_own_cells_baseline(tmp_path, capsys):
    """Every row was paired with the first cell's baseline (another configuration): a
    silent wrong difference, CI and p in every other cell."""
    import csv
    import io

    from sharpen.cli import main

    d, acc = _grid_dir(tmp_path / "g")
    assert main(["compare", str(d), "--format", "csv"]) in (0, None)
    rows = {r["row"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    for (k, e), cell in acc.items():
        name = f"sharp__stages-{k}__epochs_per_stage-{e}"
        base = f"base__stages-{k}__epochs_per_stage-{e}"
        r = rows[name]
        assert r["vs"] == base
        want = st.ttest_rel(cell["sharp"], cell["base"])  # independent: scipy, in the cell
        assert float(r["diff"]) == pytest.approx(np.mean(np.subtract(cell["sharp"],
                                                                     cell["base"])))
        assert float(r["p"]) == pytest.approx(want.pvalue, rel=1e-9)
        lo, hi = want.confidence_interval()
        assert (float(r["diff_ci_low"]), float(r["diff_ci_high"])) == pytest.approx((lo, hi))
        assert rows[base]["vs"] == ""  # each cell's baseline is a baseline row
    # planted: -2 pp at (5, 1); the first cell's baseline made it -1.93 pp
    assert float(rows["sharp__stages-5__epochs_per_stage-1"]["diff"]) == pytest.approx(
        -0.0210, abs=5e-5)
    # --baseline names an arm: its run in each cell; a cell's name: that one row for all
    assert main(["compare", str(d), "--format", "csv", "--baseline", "sharp"]) in (0, None)
    rows = {r["row"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["base__stages-3__epochs_per_stage-2"]["vs"] == "sharp__stages-3__epochs_per_stage-2"
    one = "base__stages-1__epochs_per_stage-1"
    assert main(["compare", str(d), "--format", "csv", "--baseline", one]) in (0, None)
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["vs"] for r in rows} == {"", one}
    md = main(["compare", str(d)]) in (0, None) and capsys.readouterr().out
    assert "| − the baseline of its cell |" in md


def test_a_sequential_directory_maps_the_designs_verdicts(tmp_path):
    """Grown by --until-decided: each cell's verdict is its sequential decision (or not
    supported when it stayed open), the Holm p only a fixed-n reference."""
    from sharpen.reports.claim_map import map_table
    from sharpen.reports.sequential import SequentialPlan

    d, _ = _grid_dir(tmp_path / "g")
    cfg = json.loads((d / "config.json").read_text())
    plan = SequentialPlan.make([3, 6], 0.05, 6)
    look = {"n": 6, "threshold": plan.nominal[1], "claims": [{"p": 0.5, "direction": 1,
                                                              "n": 6, "decision": None}]}
    units = {f"epochs_per_stage={e}, stages={k}": {"looks": [look], "decisions": {},
                                                   "finished": True}
             for k, e in itertools.product(STAGES, EPOCHS)}
    units["epochs_per_stage=2, stages=5"]["decisions"]["0"] = {
        "verdict": "supported", "n": 3, "p": 1e-4, "threshold": plan.nominal[0]}
    rec = {"plan": plan.as_dict(), "claims": [cfg["claims"][0]["claim"]], "ops": [">"],
           "cells": 6, "units": units}
    (cm,) = claim_maps(cfg, load_runs(d), sequential=rec)
    verdicts = {(c.point["stages"], c.point["epochs_per_stage"]): str(c.result.verdict)
                for c in cm.cells}
    assert verdicts.pop((5, 2)) == "supported"
    # the fixed-n Holm map would support (3, 2) and contradict (5, 1); the design did not
    assert set(verdicts.values()) == {"not supported"}
    table = map_table(cm)
    assert "| Holm p (fixed n) | sequential design | verdict |" in table
    assert "| decided at n = 3 | **supported** |" in table and "| undecided |" in table
    fig = map_figure(cm)
    assert "sequential design, each cell at α/m" in fig._suptitle.get_text()
    atomic_write_json(d / "sequential.json", rec)
    write_report(d)
    report = (d / "report.md").read_text()
    assert "the verdicts are the sequential design's" in report
    assert "Supported in epochs_per_stage = 2, stages = 5." in report
    assert "each claim in each of the 6 cells tested at α = 0.05/6 (Bonferroni over the " \
           "family of 6: 1 claim(s) × 6 cells)" in report


def test_every_table_in_the_stored_reports_has_one_delimiter_per_header_cell():
    """A Markdown table whose delimiter row has another number of cells than its header is
    not rendered as a table (GitHub, CommonMark's GFM): the sequential map's had one extra."""
    from pathlib import Path

    bad = []
    for report in sorted((Path(__file__).parents[1] / "docs" / "results").glob("*/report.md")):
        lines = report.read_text().splitlines()
        for i in range(1, len(lines)):
            if lines[i].startswith("|---") and lines[i - 1].startswith("|") and \
                    lines[i].count("|") != lines[i - 1].count("|"):
                bad.append(f"{report.parent.name}/report.md:{i}")
    assert not bad, bad
