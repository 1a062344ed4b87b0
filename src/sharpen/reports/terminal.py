"""What the terminal shows of a run directory: the compact per-arm table and one line per
claim's verdict. report.md holds everything (its per-arm table is 13 columns wide and wraps
below 160); the terminal gets what fits in 80 columns and says where the rest is.

Both are read from the directory by the report's own functions (:func:`summarize`, the
claim maps), so the terminal and report.md cannot disagree: the table and the claims from
the summary.json the report just wrote (its claims judged once, there).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from sharpen.metrics import get_metric
from sharpen.reports.claim_map import claim_maps
from sharpen.reports.claims import Runs, load_runs
from sharpen.reports.report import baseline_of, summarize
from sharpen.reports.sequential import read_record
from sharpen.reports.stats import format_p
from sharpen.reports.tables import terminal_table
from sharpen.rundir import REPORT, SUMMARY, RunDir
from sharpen.verdicts import Outcome

# the notes of a claims-table row that say what its verdict rests on, shown beside it
_RESTS_ON = ("decided by the sequential design", "undecided by the sequential design",
             "the fixed-n Holm test says", "rests on the normal model", "no spread")


def base_arms_of(cfg: dict[str, Any], arms: list[str], baseline: str | None) -> dict[str, str]:
    """arm → the arm its Δ is taken from: report.md's baseline; in a grid the baseline
    arm's run in the same cell."""
    cells = cfg.get("cells") or {}
    if not cells:
        return {a: baseline_of(cfg, arms, baseline) for a in arms} if arms else {}
    order = list(dict.fromkeys(c["arm"] for c in cells.values()))
    base = baseline or cfg.get("baseline") or (cfg.get("arm_order") or order)[0]
    at = {tuple(v for k, v in c.items() if k != "arm"): a for a, c in cells.items()
          if c["arm"] == base and a in arms}
    out = {}
    for a in arms:
        b = at.get(tuple(v for k, v in cells.get(a, {}).items() if k != "arm"))
        if b is not None:
            out[a] = b
    return out


def _claim_line(c: dict[str, Any]) -> str:
    """One claim of a report: verdict, claim, the number it rests on (estimate [95 % CI]
    and Holm p, or the sequential design's decision), and what its verdict rests on."""
    rests = [n for n in c.get("notes") or [] if n.startswith(_RESTS_ON)]
    seq = any(n.startswith(_RESTS_ON[:3]) for n in rests)
    est = c.get("estimate") or "–"
    number = est if est != "–" else "no estimate"
    interval = c.get("interval") or ""
    if est != "–" and interval and not interval.startswith("95 %"):
        # a `~` claim's interval is TOST's 90 %: unlabelled it read as the others' 95 %
        number += f" ({interval})"
    if not seq and c.get("p_adj") is not None:
        number += f", Holm p {format_p(c['p_adj'], 2, '–', sci_below=0.001)}"
    why = "; ".join(n.split(":")[0] if n.startswith("rests on") else n for n in rests)
    if c.get("verdict") == Outcome.UNTESTED and c.get("notes"):
        why = c["notes"][0]
    return f"{c['verdict']}: {c['claim']} ({number}" + (f"; {why})" if why else ")")


def _map_line(cm: Any) -> str:
    """One grid claim: its verdicts counted over the cells and the range of its effects."""
    counts: dict[str, int] = {}
    for cell in cm.cells:
        counts[str(cell.result.verdict)] = counts.get(str(cell.result.verdict), 0) + 1
    m = get_metric(cm.claim.get("metric", "test_acc"))
    diffs = [c.diff for c in cm.cells if c.diff is not None]
    span = f"; effects {m.fmt(min(diffs), True)} to {m.fmt(max(diffs), True)}" if diffs else ""
    said = ", ".join(f"{v} in {k}" for v, k in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"{cm.claim['claim']}: {said or 'no cell'} of {len(cm.cells)} cells{span} "
            f"(per cell: {REPORT}'s claim map)")


def verdict_lines(run_dir: Path, cfg: dict[str, Any], runs: Runs,
                  claims: list[dict[str, Any]] | None) -> list[str]:
    """One line per claim (``claims``: :func:`summarize`'s, for a grid-less directory)."""
    if cfg.get("cells"):
        return [_map_line(cm) for cm in claim_maps(cfg, runs, sequential=read_record(run_dir))]
    return [_claim_line(c) for c in claims or []]


def _summary(run_dir: Path, runs: Runs) -> dict[str, Any]:
    """summary.json as the report wrote it just before (every caller prints after building
    the report: judging the claims again cost seconds at the end of every run); the
    directory's summary computed now where it has none or an unreadable one."""
    try:
        s = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return summarize(run_dir, runs)
    return s if isinstance(s, dict) and "arms" in s else summarize(run_dir, runs)


def summary_text(run_dir: Path, baseline: str | None = None, width: int | None = None) -> str:
    """The compact table, then the claims' verdicts, one line each (wrapped to ``width``
    with a hanging indent on a terminal; whole lines in a pipe)."""
    run_dir = Path(run_dir)
    cfg = RunDir(run_dir).config()
    runs = load_runs(run_dir)
    s = _summary(run_dir, runs)
    rows = [r for r in s["arms"] if r["n"]]
    if cfg.get("cells"):  # cell by cell, each cell's baseline beside its other arms
        points = {a: tuple(v for k, v in c.items() if k != "arm")
                  for a, c in cfg["cells"].items()}
        first = list(dict.fromkeys(points.values()))
        rows.sort(key=lambda r: first.index(points[r["arm"]]) if r["arm"] in points else -1)
    arms = [r["arm"] for r in rows if r.get("test_acc_n")]
    parts = [terminal_table(rows, base_arms_of(cfg, arms, baseline),
                            bool(cfg.get("report_error")), cfg.get("cells"))]
    lines = verdict_lines(run_dir, cfg, runs, s.get("claims"))
    if lines:
        what = ("each over the grid's cells" if cfg.get("cells") else
                "verdict: claim (the number it rests on)")
        parts += ["", f"claims ({what}; every number in {REPORT}):"]
        for ln in lines:
            parts.append(textwrap.fill(ln, width, initial_indent="  ", subsequent_indent="    ",
                                       break_long_words=False, break_on_hyphens=False)
                         if width else "  " + ln)
    return "\n".join(parts)
