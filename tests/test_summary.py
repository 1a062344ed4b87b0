"""Every verdict at a glance (issue 37): ``sharpen summary DIR...`` draws one forest plot and
writes one compact table across run directories, each verdict from the code that writes the
directory's report; tools/rebuild_results.py puts them in the README, which must agree with
docs/results."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from test_claim_map import _grid_dir

from sharpen.cli import main
from sharpen.io import atomic_write_csv, atomic_write_json
from sharpen.reports import claims as claims_mod
from sharpen.reports.summary import (
    UNDECIDED_COLOUR,
    VERDICT_COLOURS,
    forest_lines,
    summary_figure,
    summary_rows,
    summary_table,
)
from sharpen.verdicts import OPS, Op, Outcome

ROOT = Path(__file__).parents[1]
SEEDS = range(6)
# what a reader is told each colour means (the claim maps' three, and two more)
COLOUR = {"supported": "#4daf4a", "contradicted": "#e41a1c", "not supported": "#bdbdbd",
          "undecidable": "#ff7f00", "untested": "#ffffff", "undecided by the design": "#984ea3"}


def _plain_dir(root: Path, paper: str, acc: dict[str, list[float]], claims: list[dict]) -> Path:
    """A finished run directory without a grid: one epoch per run, test_acc per seed."""
    atomic_write_json(root / "config.json", {
        "name": root.name, "paper": paper, "runs": len(next(iter(acc.values()))), "seed": 0,
        "arms": {a: {"dataset": "synthetic", "epochs": 1, "val_size": 0} for a in acc},
        "arm_order": list(acc), "claims": claims})
    for a, xs in acc.items():
        for s, t in enumerate(xs):
            d = root / "runs" / a / f"seed-{s}"
            rows = [{"epoch": 1, "train_loss": 0.1, "train_acc": 0.99, "test_acc": t,
                     "test_loss": 0.2, "gap": 0.99 - t}]
            atomic_write_csv(d / "metrics.csv", rows, list(rows[0]))
            atomic_write_json(d / "result.json", {"arm": a, "seed": s, "status": "ok",
                                                   "test_acc": t, "epochs_done": 1,
                                                   "seconds": 1.0})
    return root


def _paper_a(root: Path) -> tuple[Path, dict[str, list[float]]]:
    """Paper 001: a clear win, a clear loss, no difference, and the same arm equal within 1 pp."""
    rng = np.random.default_rng(37)
    base = 0.90 + rng.normal(0, 0.004, len(SEEDS))
    acc = {"base": base, "good": base + 0.02 + rng.normal(0, 0.003, 6),
           "bad": base - 0.015 + rng.normal(0, 0.003, 6),
           "same": base + rng.normal(0, 0.003, 6)}
    acc = {a: [float(x) for x in v] for a, v in acc.items()}
    claims = [{"claim": "good beats the baseline", "arm": "good", "op": ">", "than": "base"},
              {"claim": "bad beats the baseline", "arm": "bad", "op": ">", "than": "base"},
              {"claim": "same beats the baseline", "arm": "same", "op": ">", "than": "base"},
              {"claim": "same is as good as the baseline", "arm": "same", "op": "~",
               "than": "base", "tolerance": 0.01}]
    return _plain_dir(root, "001 (a paper)", acc, claims), acc


def _paper_c(root: Path) -> Path:
    """Paper 003: identical differences at n = 3 (undecidable: no sign pattern of 3 goes
    below p = 0.25) and a claim about an arm that never ran (untested)."""
    a = [0.5, 0.625, 0.75]  # binary fractions: the differences are exactly equal
    acc = {"a": a, "b": [x + 0.125 for x in a]}
    claims = [{"claim": "b beats a", "arm": "b", "op": ">", "than": "a"},
              {"claim": "a beats zz", "arm": "a", "op": ">", "than": "zz"}]
    return _plain_dir(root, "003 (another)", acc, claims)


def _dirs(tmp_path: Path) -> tuple[list[Path], dict[str, list[float]], dict]:
    a, acc = _paper_a(tmp_path / "paper-a")
    b, grid = _grid_dir(tmp_path / "grid-b")  # no paper: its rows come last
    return [b, _paper_c(tmp_path / "paper-c"), a], acc, grid


def _expected_a(acc: dict[str, list[float]]) -> list[tuple[str, str, float, float, float]]:
    """Independent: scipy's paired t per directional claim, statsmodels' Holm over the
    family of four (the ~ claim's p: TOST's, the larger one-sided p at ±1 pp)."""
    out, ps = [], []
    for arm in ("good", "bad", "same"):
        d = np.subtract(acc[arm], acc["base"])
        ps.append(st.ttest_rel(acc[arm], acc["base"]).pvalue)
        ci = st.ttest_1samp(d, 0).confidence_interval(0.95)
        out.append((arm, float(d.mean()), ci.low, ci.high))
    d = np.subtract(acc["same"], acc["base"])
    se = d.std(ddof=1) / np.sqrt(len(d))
    ps.append(max(st.t.sf((d.mean() + 0.01) / se, len(d) - 1),
                  st.t.cdf((d.mean() - 0.01) / se, len(d) - 1)))
    reject = multipletests(ps, alpha=0.05, method="holm")[0]
    verdicts = [("supported" if m > 0 else "contradicted") if rej else "not supported"
                for (_, m, _, _), rej in zip(out, reject)]
    half = st.t.isf(0.05, len(d) - 1) * se  # TOST's 90 % interval
    out.append(("same~", float(d.mean()), d.mean() - half, d.mean() + half))
    verdicts.append("supported" if reject[3] else "not supported")
    return [(v, *o) for v, o in zip(verdicts, out)]


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def test_the_table_cell_by_cell_from_three_run_directories(tmp_path):
    dirs, acc, gacc = _dirs(tmp_path)
    rows = summary_rows(dirs)
    table = summary_table(rows, tmp_path, cells=True).splitlines()
    assert table[0] == "| paper | claim | verdict | effect [95 % CI unless named] | n | report |"
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table[2:]]
    exp = _expected_a(acc)
    assert [v for v, *_ in exp] == ["supported", "contradicted", "not supported", "supported"]
    claims = ["good beats the baseline", "bad beats the baseline", "same beats the baseline",
              "same is as good as the baseline"]
    link_a = "[paper-a](paper-a/report.md)"
    for row, claim, (verdict, _, m, lo, hi) in zip(cells[:4], claims, exp):
        which = " (90 % (TOST, ± 1.00 pp))" if "as good" in claim else ""
        assert row == ["001", claim, f"**{verdict}**",
                       f"{_pp(m)} pp [{_pp(lo)}, {_pp(hi)}]{which}, test accuracy", "6",
                       link_a], row
    # paper 003 after 001; its undecidable claim shows the report's own estimate (no interval)
    assert cells[4][:3] == ["003", "b beats a", "**undecidable at n = 3**"]
    assert cells[4][3].startswith("b − a: +12.50 pp (no spread") and cells[4][4] == "3"
    assert cells[5][:5] == ["003", "a beats zz", "**untested (no test_acc for zz)**", "–", "0"]
    # the grid (no paper) last, one row per cell, in the grid's order
    grid = cells[6:]
    assert len(grid) == 6 and all(r[0] == "–" and r[5] == "[grid-b](grid-b/report.md)"
                                  for r in grid)
    by_cell = {r[1].split(" — ")[1]: r[2] for r in grid}
    assert by_cell["epochs_per_stage = 2, stages = 3"] == "**supported**"
    assert by_cell["epochs_per_stage = 2, stages = 5"] == "**supported**"
    assert by_cell["epochs_per_stage = 1, stages = 5"] == "**contradicted**"
    assert by_cell["epochs_per_stage = 1, stages = 1"] == "**not supported**"
    # the compact form: a grid's claim in one row, its cells counted by verdict
    short = summary_table(rows, tmp_path).splitlines()
    assert len(short) == 2 + 6 + 1
    last = [c.strip() for c in short[-1].split("|")[1:-1]]
    assert last[1] == "sharpening beats the baseline (each cell of the grid)"
    counts: dict[str, int] = {}  # in the order the cells first show each verdict
    for r in grid:
        counts[r[2]] = counts.get(r[2], 0) + 1
    assert last[2] == ", ".join(f"{v} in {k}" for v, k in counts.items()) + " of 6 cells"
    diffs = [np.mean(np.subtract(v["sharp"], v["base"])) for v in gacc.values()]
    assert last[3] == (f"{_pp(min(diffs))} pp to {_pp(max(diffs))} pp over the cells, "
                       "test accuracy")
    assert last[4] == "6"
    for r in grid:  # each cell's effect with its 95 % interval (scipy)
        k, e = (int(x.split(" = ")[1]) for x in r[1].split(" — ")[1].split(", ")[::-1])
        d = np.subtract(gacc[(k, e)]["sharp"], gacc[(k, e)]["base"])
        ci = st.ttest_1samp(d, 0).confidence_interval(0.95)
        assert r[3] == f"{_pp(d.mean())} pp [{_pp(ci.low)}, {_pp(ci.high)}], test accuracy", r


def _colour_hex(c) -> str:
    from matplotlib.colors import to_hex

    return to_hex(c)


def test_the_figure_rows_labels_and_verdict_colours(tmp_path):
    dirs, acc, _ = _dirs(tmp_path)
    rows = summary_rows(dirs)
    fig = summary_figure(rows)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    cells = [f"    epochs_per_stage = {e}, stages = {k}" for e in (1, 2) for k in (1, 3, 5)]
    assert labels == ["paper 001 · paper-a", "good beats the baseline", "bad beats the baseline",
                      "same beats the baseline", "same is as good as the baseline",
                      "paper 003 · paper-c", "b beats a", "a beats zz",
                      "grid-b", "sharpening beats the baseline, per cell:", *cells]
    assert ax.get_xscale() == "symlog" and ax.get_xlabel().startswith("effect: the claim's arm")
    assert any(line.get_xdata()[0] == 0 for line in ax.get_lines() if line.get_linestyle() == "-"
               and len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1])
    ys = dict(zip(ax.get_yticks(), labels))
    markers = {ys[line.get_ydata()[0]]: line for line in ax.get_lines()
               if line.get_gid() == "verdict"}
    colour = {k: _colour_hex(m.get_markerfacecolor()) for k, m in markers.items()}
    want = dict(zip(["good beats the baseline", "bad beats the baseline",
                     "same beats the baseline", "same is as good as the baseline"],
                    [v for v, *_ in _expected_a(acc)]))
    want |= {"b beats a": "undecidable", "    epochs_per_stage = 2, stages = 3": "supported",
             "    epochs_per_stage = 1, stages = 5": "contradicted",
             "    epochs_per_stage = 1, stages = 1": "not supported"}
    for label, verdict in want.items():
        assert colour[label] == COLOUR[verdict], label
    # each marker sits at its effect (pp), its interval drawn through it
    spans = {ys[ln.get_ydata()[0]]: list(ln.get_xdata()) for ln in ax.get_lines()
             if ln.get_gid() == "interval"}
    for (_, _, m, lo, hi), label in zip(_expected_a(acc), list(want)[:4]):
        assert markers[label].get_xdata()[0] == pytest.approx(100 * m)
        assert spans[label] == pytest.approx([100 * lo, 100 * hi])
    # the untested claim has no marker: the row says so in words
    assert "a beats zz" not in markers
    texts = {t.get_text().strip() for t in ax.texts}
    assert "untested (no test_acc for zz)" in texts and "–" in texts
    legend = fig.legends[0]
    keys = {t.get_text(): _colour_hex(h.get_markerfacecolor())
            for t, h in zip(legend.get_texts(), legend.legend_handles)
            if getattr(h, "get_marker", lambda: "")() == "o"}
    assert keys == COLOUR  # the legend says what the markers show
    assert {_colour_hex(c) for c in VERDICT_COLOURS.values()} | {UNDECIDED_COLOUR} == set(COLOUR.values())
    assert VERDICT_COLOURS[Outcome.SUPPORTED] == COLOUR["supported"]
    assert len(forest_lines(rows)) == len(labels)
    # a cell its sequential design left undecided is drawn in its own colour, not as a
    # fixed-n "not supported"
    first = dataclasses.replace(rows[0], undecided=True)
    ax = summary_figure([first]).axes[0]
    (marker,) = [ln for ln in ax.get_lines() if ln.get_gid() == "verdict"]
    assert _colour_hex(marker.get_markerfacecolor()) == COLOUR["undecided by the design"]


def test_sharpen_summary_writes_figure_and_table(tmp_path, capsys):
    from matplotlib.image import imread

    dirs, _, _ = _dirs(tmp_path)
    out = tmp_path / "out" / "summary.png"
    assert main(["summary", *map(str, dirs), "--out", str(out)]) == 0
    table = (out.with_suffix(".md")).read_text()
    assert table == summary_table(summary_rows(dirs), out.parent) + "\n"
    assert "[paper-a](../paper-a/report.md)" in table  # relative to the table's folder
    assert capsys.readouterr().out == table
    img = imread(out)
    assert img.shape[1] <= 900  # the README shows it 800 wide: its labels barely shrink
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_an_op_the_summary_does_not_know_shows_its_own_estimate(tmp_path, monkeypatch):
    """A claim op added later (its test sets no interval for the figure) is still a row:
    the claim's own estimate and verdict."""
    def prob(r, m, op, claim, runs, mine):
        r.n, r.estimate, r.p, r.direction = len(mine), "P(b > a) = 1.00", 0.001, 1
        return r, None

    monkeypatch.setitem(OPS, "P>", Op("P>", "more often higher than", +1, test="prob"))
    monkeypatch.setitem(claims_mod.TESTS, "prob", prob)
    d = _plain_dir(tmp_path / "p", "005", {"a": [0.5, 0.6, 0.7], "b": [0.6, 0.7, 0.9]},
                   [{"claim": "b is more often higher", "arm": "b", "op": "P>", "than": "a"}])
    (row,) = summary_rows([d])
    assert row.effect == "P(b > a) = 1.00" and row.verdict == "supported"
    line = summary_table([row], tmp_path).splitlines()[2]
    assert "| **supported** | P(b > a) = 1.00 | 3 |" in line
    ax = summary_figure([row]).axes[0]
    assert not [ln for ln in ax.get_lines() if ln.get_gid() == "verdict"]
    assert "P(b > a) = 1.00" in {t.get_text().strip() for t in ax.texts}


def test_a_sequential_directory_shows_its_designs_decisions(tmp_path):
    """A directory grown by --until-decided: each verdict is its design's decision, and a
    claim the design left open is not supported, whatever the fixed-n test says."""
    from sharpen.reports.sequential import SequentialPlan

    d, acc = _paper_a(tmp_path / "seq")
    plan = SequentialPlan.make([3, 6], 0.05, 4)
    atomic_write_json(d / "sequential.json", {
        "plan": plan.as_dict(), "claims": [f"c{i}" for i in range(4)],
        "ops": [">", ">", ">", "~"], "units": {"": {"looks": [], "finished": True, "decisions": {
            "1": {"verdict": "contradicted", "n": 6, "look": 6, "p": 1e-6,
                  "threshold": 1e-3}}}}})
    rows = summary_rows([d])
    # fixed n: supported / contradicted / not supported / supported (the first test)
    assert [r.verdict for r in rows] == ["not supported", "contradicted", "not supported",
                                         "not supported"]


def _report_verdicts(report: str) -> dict[str, str]:
    """Independent of the summary's code: each claim's verdict as report.md prints it, in
    its Claims table by the claim (first column), in its claim maps by "claim — a = 1, b = 2"
    (the map's heading and the cell's axis values)."""
    out: dict[str, str] = {}
    section, heading, axes = "", "", []
    for line in report.splitlines():
        if line.startswith("## "):
            section, heading = line[3:], ""
        elif line.startswith("### "):
            heading, axes = line[4:], []
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if not cells or set(cells[0]) <= {"-"}:
            continue
        verdict = next((c.strip("*") for c in cells if c.startswith("**")), None)
        if section == "Claims" and verdict:
            out[cells[0]] = verdict
        elif section.startswith("Claim maps") and heading and not axes:
            axes = cells[:[c.startswith("effect") for c in cells].index(True)]
        elif section.startswith("Claim maps") and heading and verdict:
            out[f"{heading} — " + ", ".join(f"{a} = {v}" for a, v in zip(axes, cells))] = verdict
    return out


def test_every_row_says_what_its_report_says(tmp_path):
    dirs, _, _ = _dirs(tmp_path)
    for d in dirs:
        assert main(["report", str(d)]) == 0
    _agrees_with_reports(summary_rows(dirs))


def _agrees_with_reports(rows) -> None:
    reports = {}
    for r in rows:
        if r.folder not in reports:
            reports[r.folder] = _report_verdicts(r.report.read_text())
        key = f"{r.claim} — {r.cell}" if r.cell else r.claim
        assert reports[r.folder][key] == str(r.result.verdict), (r.folder, key)


def _tool():
    spec = importlib.util.spec_from_file_location("rebuild_results",
                                                  ROOT / "tools" / "rebuild_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rebuild_results"] = mod
    spec.loader.exec_module(mod)
    return mod


def _between(text: str, tool) -> str:
    return text.split(tool.START + "\n", 1)[1].split("\n" + tool.END, 1)[0]


@pytest.mark.slow  # judges every claim of docs/results: about 30 s of exact sign-flip tests
def test_the_readme_summary_is_the_one_docs_results_gives():
    tool = _tool()
    dirs = tool.finished()
    rows = [r for d in dirs for r in tool.folder_rows(d)]
    short, full, headline = tool.tables(rows, [d.name for d in dirs])
    assert _between((ROOT / "README.md").read_text(), tool) == short
    assert _between((ROOT / "docs/results/README.md").read_text(), tool) == full
    assert set(tool.HEADLINE) <= {d.name for d in dirs}
    _agrees_with_reports(rows)
    assert tool.FIGURE.is_file() and tool.FIGURE.with_suffix(".pdf").is_file()
    fig = summary_figure(headline)
    assert len(fig.axes[0].get_yticklabels()) == len(forest_lines(headline))


def test_directories_without_claims_or_with_one_name_are_refused_by_name(tmp_path, capsys):
    d = _plain_dir(tmp_path / "none", "001", {"a": [0.5, 0.6]}, [])
    assert main(["summary", str(d), "--out", str(tmp_path / "s.png")]) == 2
    assert f"summary: no run directory with claims among {d} (a run directory without claims)" \
        in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()
    a, _ = _paper_a(tmp_path / "x" / "same")
    b = _paper_c(tmp_path / "y" / "same")
    assert main(["summary", str(a), str(b), "--out", str(tmp_path / "s.png")]) == 2
    assert f"two directories share a name ({a}, {b})" in capsys.readouterr().err


def test_paths_without_claims_among_others_are_left_out_by_name_not_dropped(tmp_path, capsys):
    """`sharpen summary docs/results/*` names files, benchmark folders and variance studies
    (no claims) beside the run directories: each is left out with its reason, on the terminal
    and in the table, never dropped without a word (hostile pass H) nor refusing the lot."""
    a, _ = _paper_a(tmp_path / "a")
    bare = _plain_dir(tmp_path / "bare", "001", {"a": [0.5, 0.6]}, [])
    (tmp_path / "README.md").write_text("not a run\n")
    bench = tmp_path / "bench-x"
    bench.mkdir()
    out = tmp_path / "s.png"
    paths = [str(a), str(bare), str(tmp_path / "README.md"), str(bench)]
    assert main(["summary", *paths, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert f"summary: left out {bare} (a run directory without claims)" in cap.err
    assert f"summary: left out {tmp_path / 'README.md'} (not a run directory" in cap.err
    assert f"summary: left out {bench} (not a run directory" in cap.err
    table = out.with_suffix(".md").read_text()
    assert table.rstrip().splitlines()[-1].startswith("Left out: ") and str(bare) in table
    assert {r.folder for r in summary_rows([a])} == {"a"}
    assert main(["summary", str(bare), str(bench), "--out", str(tmp_path / "t.png")]) == 2
    assert "no run directory with claims among" in capsys.readouterr().err


def test_a_row_without_an_estimate_on_the_axis_keeps_its_words_inside_the_axes(tmp_path):
    """A P> claim has a chance, not a difference in pp: its words stood from the zero line
    rightwards and ran over the n and verdict columns (hostile pass H)."""
    acc = {"base": [0.5, 0.6, 0.7], "a_rather_long_arm_name": [0.6, 0.7, 0.8]}
    claims = [{"claim": "wins", "arm": "a_rather_long_arm_name", "op": "P>", "than": "base",
               "threshold": 0.75}]
    rows = summary_rows([_plain_dir(tmp_path / "p", "002", acc, claims)])
    fig = summary_figure(rows)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    words = [t for t in ax.texts if t.get_text().startswith("P(a_rather")]
    assert len(words) == 1
    ext = words[0].get_window_extent()
    assert box.x0 <= ext.x0 and ext.x1 <= box.x1 + 0.5, (ext, box)
