"""``sharpen compare DIR [DIR ...]``: one table across run directories and their arms.

Rows are ``arm`` (one directory) or ``dir/arm`` (several). For the chosen metric each row
gives n, mean, sample sd, the 95 % Student-t interval of the mean, best and worst, and its
comparison with a baseline row (default: the first directory's baseline arm, else its first
arm; rows keep each directory's arm order, the experiment file's): paired by seed where the
two share seeds (directories run with the same seeds pair up too), else Welch's unpaired
test, labelled. One grid directory pairs each cell with the baseline arm's run in the same
cell (``--baseline ARM`` picks the arm; a cell's full name compares every row with that
one run). Formats: Markdown, CSV, or a LaTeX ``tabular`` ready to ``\\input``. With
``--out`` the curves of the metric (per-epoch metrics only) are drawn per row with 95 %
bands, as PNG and PDF.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_text
from sharpen.metrics import get_metric
from sharpen.reports.claim_map import claim_maps, map_table
from sharpen.reports.claims import diff_in_range, fmt_value, load_runs, metric_of
from sharpen.reports.curves import plot_curves
from sharpen.reports.sequential import read_record
from sharpen.reports.stats import compare, describe
from sharpen.reports.tables import in_range
from sharpen.reports.terminal import base_arms_of
from sharpen.rundir import RunDir


def _rows_of(dirs: list[Path]) -> tuple[dict[str, dict[int, dict[str, float]]], dict[str, list],
                                        list[str], dict[str, str | None]]:
    values: dict[str, dict[int, dict[str, float]]] = {}
    curves: dict[str, list] = {}
    order: list[str] = []
    protocols: dict[str, str | None] = {}
    for d in dirs:
        rd = RunDir(d)
        cfg = rd.config()  # a clear error for a folder that is not a run directory
        runs = load_runs(d)
        vals = runs.values
        for arm in list(cfg.get("arms", {})) + [a for a in vals if a not in cfg.get("arms", {})]:
            if arm not in vals:
                continue
            label = arm if len(dirs) == 1 else f"{d.name}/{arm}"
            if label in values:
                raise SharpenError(f"two directories named {d.name} hold arm {arm}; rename one")
            order.append(label)
            values[label] = {s: v for s, v in vals[arm].items()}
            protocols[label] = runs.protocol.get(arm)
            curves[label] = [rows for s in sorted(vals[arm]) if (rows := rd.metrics(arm, s))]
    return values, curves, order, protocols


def compare_table(dirs: list[Path], metric: str = "test_acc", baseline: str | None = None
                  ) -> list[dict[str, Any]]:
    """One row per (directory, arm): summary of ``metric`` and the comparison with baseline,
    paired by seed only when both rows ran the same protocol (else Welch, labelled)."""
    get_metric(metric)  # a clear error for an unknown metric
    values, _, order, protocols = _rows_of([Path(d) for d in dirs])
    if not order:
        raise SharpenError("no finished runs in " + ", ".join(map(str, dirs)))
    # default: the first directory's baseline arm (its `baseline`, else its file's first arm)
    first = RunDir(dirs[0]).config().get("baseline")
    if first and len(dirs) > 1:
        first = f"{Path(dirs[0]).name}/{first}"
    cells = _cell_bases(dirs, order, baseline)
    base = baseline or (first if first in values else order[0])
    if cells is not None:
        return [_row(label, values, metric, cells.get(label), protocols, grid=True)
                for label in order]
    if base not in values:  # an arm's name across directories: the one row that holds it
        holders = [r for r in order if r.rpartition("/")[2] == base]
        if len(holders) > 1:
            raise SharpenError(f"--baseline {base!r}: {len(holders)} rows hold arm {base!r} "
                               f"({', '.join(holders)}); name one as DIR/ARM")
        if not holders:
            raise SharpenError(f"--baseline {base!r}: not a row; rows: {', '.join(order)}")
        base = holders[0]
    return [_row(label, values, metric, base, protocols) for label in order]


def _cell_bases(dirs: list[Path], order: list[str], baseline: str | None
                ) -> dict[str, str] | None:
    """One grid directory (and no --baseline naming one row): cell arm → the baseline arm's
    run in the same cell, the only run it pairs with (another cell's baseline differs in the
    grid's keys too). None otherwise: every row against one baseline row."""
    if len(dirs) != 1:
        return None
    cfg = RunDir(dirs[0]).config()
    cells = cfg.get("cells") or {}
    if not cells or (baseline is not None and baseline in cells):
        return None
    if baseline is not None and baseline not in {c["arm"] for c in cells.values()}:
        raise SharpenError(f"--baseline {baseline!r}: not an arm or a cell of the grid; arms: "
                           + ", ".join(dict.fromkeys(c["arm"] for c in cells.values())))
    return base_arms_of(cfg, order, baseline)


def _row(label: str, values: dict[str, dict[int, dict[str, float]]], metric: str,
         base: str | None, protocols: dict[str, str | None], grid: bool = False
         ) -> dict[str, Any]:
    """One row: ``label``'s summary and its comparison with ``base`` (none for the baseline
    itself; ``grid``: ``base`` is its cell's, None when that cell has no baseline run)."""
    mine = metric_of({"x": values[label]}, "x", metric)
    sm = in_range(get_metric(metric), describe(list(mine.values())))
    row: dict[str, Any] = {"row": label, "metric": metric, **sm}
    if grid and base is None:
        return {**row, "no_base": True}
    if base is None or label == base:
        return row
    pa, pb = protocols.get(label), protocols.get(base)
    same = pa is None or pb is None or pa == pb
    c = compare(mine, metric_of({"x": values[base]}, "x", metric), paired=same,
                why_unpaired="" if same else "different protocols")
    test = c.test + (f" ({c.why_unpaired})" if c.why_unpaired else "")
    lo, hi = diff_in_range(get_metric(metric), c.ci_low, c.ci_high)
    row.update(vs=base, diff=c.diff, diff_ci_low=lo, diff_ci_high=hi,
               p=c.p, p_exact=c.p_exact, test=test, effect=c.effect,
               effect_name=c.effect_name, n_used=c.n, left_out=c.left_out,
               no_spread=not c.spread, same_cell=grid)
    return row


def _cell(metric: str, v: float | None, diff: bool = False) -> str:
    return fmt_value(metric, v, diff) if v is not None else "n/a"


def heading(metric: str) -> str:
    """What the table compares: the metric, how it was selected, and a warning when on test."""
    m = get_metric(metric)
    text = f"Metric: {m.describe()}."
    if m.optimistic:
        text += (" It is chosen on the test set it is reported on, so every number below is "
                 "optimistic; prefer selected_test_acc (chosen on validation).")
    return text


def render(rows: list[dict[str, Any]], fmt: str = "md") -> str:
    metric = rows[0]["metric"]
    vs = next((r['vs'] for r in rows if 'vs' in r), rows[0]['row'])
    if any(r.get("same_cell") or r.get("no_base") for r in rows):  # a grid: each cell's own
        vs = "the baseline of its cell"
    head = ["row", "n", "mean", "sd", "95 % CI", "best", "worst", f"− {vs}", "diff 95 % CI",
            "pairs used (seeds left out)", "p (t)", "p (exact sign-flip)", "test", "effect size"]
    body = []
    for r in rows:
        ci = (f"[{_cell(metric, r['ci_low'])}, {_cell(metric, r['ci_high'])}]"
              if r["ci_low"] is not None else
              f"none: {r['n']} identical" if r.get("spread") is False else "n/a")
        if "vs" in r:
            dci = (f"[{_cell(metric, r['diff_ci_low'], True)}, {_cell(metric, r['diff_ci_high'], True)}]"
                   if r["diff_ci_low"] is not None else
                   f"none: {r['n_used']} identical differences" if r.get("no_spread") else "n/a")
            used = str(r["n_used"]) + (f" ({', '.join(map(str, r['left_out']))})"
                                       if r.get("left_out") else "")
            cmp_ = [_cell(metric, r["diff"], True), dci, used,
                    "n/a" if r["p"] is None else f"{r['p']:.3g}",
                    "n/a" if r.get("p_exact") is None else f"{r['p_exact']:.3g}", r["test"],
                    "n/a" if r["effect"] is None else f"{r['effect_name']} = {r['effect']:.2f}"]
        elif r.get("no_base"):
            cmp_ = ["n/a: no baseline run in its cell", "", "", "", "", "", ""]
        else:
            cmp_ = ["baseline", "", "", "", "", "", ""]
        body.append([r["row"], str(r["n"]), _cell(metric, r["mean"]),
                     "n/a" if r["sd"] is None else _cell(metric, r["sd"]).replace("+", ""), ci,
                     _cell(metric, r["best"]), _cell(metric, r["worst"]), *cmp_])
    if fmt == "md":
        lines = [heading(metric), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["metric", "row", "n", "mean", "sd", "ci_low", "ci_high", "best", "worst", "vs",
                    "diff", "diff_ci_low", "diff_ci_high", "n_used", "left_out", "p", "p_exact",
                    "test", "effect", "effect_name", "optimistic"])
        opt = get_metric(metric).optimistic
        for r in rows:
            w.writerow([metric, r["row"], r["n"], *(("" if r.get(k) is None else repr(r[k])) for k in (
                "mean", "sd", "ci_low", "ci_high", "best", "worst")),
                r.get("vs", ""), *(("" if r.get(k) is None else repr(r[k])) for k in (
                    "diff", "diff_ci_low", "diff_ci_high", "n_used")),
                " ".join(map(str, r.get("left_out") or [])),
                *(("" if r.get(k) is None else repr(r[k])) for k in ("p", "p_exact")),
                r.get("test", ""), "" if r.get("effect") is None else repr(r["effect"]),
                r.get("effect_name", ""), int(opt)])
        return buf.getvalue()
    if fmt == "latex":
        lines = ["% " + heading(metric), r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\hline",
                 " & ".join(_tex(h) for h in head) + r" \\", r"\hline"]
        lines += [" & ".join(_tex(c) for c in b) + r" \\" for b in body]
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise SharpenError(f"--format {fmt!r}: use md, csv or latex")


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "−": "$-$", "±": r"$\pm$"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def compare_dirs(dirs: list[str | Path], metric: str = "test_acc", baseline: str | None = None,
                 fmt: str = "md", out: str | Path | None = None) -> str:
    """The table as text; with ``out``, also ``out`` (the table) and ``out``.png/.pdf curves."""
    paths = [Path(d) for d in dirs]
    text = render(compare_table(paths, metric, baseline), fmt)
    if fmt == "md":  # a grid directory with claims: where in the grid each claim holds
        text += "".join(_claim_maps_text(p) for p in paths)
    if out is not None:
        out = Path(out)
        atomic_write_text(out, text)
        if get_metric(metric).per_epoch:
            _, curves, order, _ = _rows_of(paths)
            plot_curves(paths[0], order, keys=(metric,), per_arm=curves,
                        title=f"{metric.replace('_', ' ')}: " + ", ".join(p.name for p in paths),
                        path=out.with_suffix(".png"))
    return text


def _claim_maps_text(run_dir: Path) -> str:
    cfg = RunDir(run_dir).config()
    if not (cfg.get("cells") and cfg.get("claims")):
        return ""
    record = read_record(run_dir)
    how = "cells one Holm family per claim" if record is None else \
        "the sequential design's verdicts, each claim in each cell at α/m"
    parts = [f"\n## Claim maps of {run_dir} ({how})\n"]
    for cm in claim_maps(cfg, load_runs(run_dir), sequential=record):
        parts += [f"\n### {cm.claim['claim']}\n\n", map_table(cm), "\n"]
    return "".join(parts)


__all__ = ["compare_dirs", "compare_table", "render"]
