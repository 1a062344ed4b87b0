"""Every verdict at a glance, across run directories: one forest plot and one compact table.

Each claim of each directory is one row (a grid's claim: one row per cell), judged by the
very code that writes the directory's report: a plain directory's claims by
:func:`sharpen.reports.claims.claims_table` with its sequential decisions (as report.md's
claims section), a grid's by :func:`sharpen.reports.claim_map.claim_maps` (as its claim
maps). Nothing is parsed from report.md, so the summary cannot disagree with the reports.

The figure plots each row's effect (the claimed arm − what it is compared with, in the
claim's metric) with the interval the report shows beside it: 95 % for a difference, TOST's
90 % for ``~``, the repeated interval in a sequential map. The marker is coloured by verdict
(:data:`VERDICT_COLOURS`); a ``~`` claim's margin is a band, the paper's own effect a hollow
diamond (where it is of our protocol); n is written beside each row.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_text
from sharpen.metrics import get_metric, parse_amount
from sharpen.reports.claim_map import COLOURS, UNTESTED_COLOUR, _effect_text, claim_maps
from sharpen.reports.claims import ClaimResult, claims_table, load_runs
from sharpen.reports.figures import pyplot, save_figure
from sharpen.reports.report import _decisions
from sharpen.reports.sequential import read_record
from sharpen.rundir import CONFIG, REPORT, RunDir
from sharpen.verdicts import OPS, Outcome

# the claim maps' colours for the outcomes they share, so a cell reads the same in both
VERDICT_COLOURS = {**{o: COLOURS[o] for o in (Outcome.SUPPORTED, Outcome.NOT_SUPPORTED,
                                              Outcome.CONTRADICTED)},
                   Outcome.UNDECIDABLE: "#ff7f00", Outcome.UNTESTED: UNTESTED_COLOUR}
# a cell a sequential design left undecided (its verdict: not supported) apart from a fixed-n
# "not supported": the first ran out of its budget, the second never had one
UNDECIDED_COLOUR = "#984ea3"
LABEL_CHARS = 52  # a claim's text in the figure's row labels (the table has it whole)
SYMLOG_PP = 1.0  # linear within ±1 pp, logarithmic beyond: 0.3 pp and 25 pp on one axis


@dataclass
class SummaryRow:
    """One claim of one directory (a grid: in one cell), judged as its report judges it."""

    folder: str  # the run directory's name
    paper: str  # the paper's number ("000"), from config.json's ``paper``; "" if none
    claim: str
    cell: str  # "" or the grid cell: "blur_stages = 3, stage_epochs = 2"
    result: ClaimResult  # the verdict and numbers, from the report's own code
    estimate: str  # the effect with its interval, as the report prints it
    diff: float | None  # the effect (in the metric's stored unit: a fraction for %)
    low: float | None  # the interval the verdict rests on
    high: float | None
    interval: str  # which interval that is, as the report names it
    margin: float | None  # a ``~`` claim's tolerance
    report: Path  # the directory's report.md
    undecided: bool = False  # a sequential design left it undecided (verdict: not supported)

    @property
    def effect(self) -> str:
        """The effect with the interval its verdict rests on, short, and its metric:
        "−0.37 pp [−0.67, −0.07], test accuracy" (a report's claims mix metrics); the
        report's own estimate where it has no interval (no spread, an op this module does
        not know)."""
        m = get_metric(self.result.metric)
        if self.diff is None or self.low is None or self.high is None:
            return self.estimate
        unit = f" {m.diff_unit}" if m.diff_unit else ""
        lo, hi = (m.fmt(v, True).removesuffix(unit) for v in (self.low, self.high))
        which = "" if self.interval.startswith("95 %") else f" ({self.interval})"
        return f"{m.fmt(self.diff, True)} [{lo}, {hi}]{which}, {m.label}"

    @property
    def verdict(self) -> str:
        """The verdict as the report prints it (and, in a sequential map, the design's
        "undecided" that the report prints beside it)."""
        return str(self.result.verdict) + (" (undecided by the design)" if self.undecided else "")


def _paper(cfg: dict[str, Any]) -> str:
    m = re.match(r"\s*(\d+)", str(cfg.get("paper") or ""))
    return m.group(1) if m else ""


def _margin(claim: dict[str, Any], metric: str) -> float | None:
    op = OPS.get(claim.get("op", ""))  # an op this module does not know has no margin to draw
    if op is None or not op.margin or not claim.get("tolerance"):
        return None
    return parse_amount(claim["tolerance"], get_metric(metric))


def folder_rows(run_dir: str | Path) -> list[SummaryRow]:
    """Every claim of one run directory judged as its report judges it: one row per claim,
    a grid's per cell."""
    rd = RunDir(run_dir)
    cfg = rd.config()  # a clear error for a folder that is not a run directory
    runs = load_runs(rd.root)
    base = dict(folder=rd.root.name, paper=_paper(cfg), report=rd.root / REPORT)
    if cfg.get("cells"):
        return _map_rows(rd.root, cfg, runs, base)
    if not cfg.get("claims"):
        return []
    _, judged = claims_table(cfg["claims"], runs, cfg.get("published"), _decisions(rd.root), cfg)
    return [SummaryRow(**base, claim=r.claim, cell="", result=r,
                       estimate=r.estimate + (f" ({r.interval})" if r.interval else ""),
                       diff=r.diff, low=r.ci_low, high=r.ci_high, interval=r.interval,
                       margin=_margin(c, r.metric))
            for c, r in zip(cfg["claims"], judged)]


def _map_rows(root: Path, cfg: dict[str, Any], runs: Any, base: dict[str, Any]
              ) -> list[SummaryRow]:
    """A grid's claims, cell by cell, from its claim maps (the report's own)."""
    out = []
    for cm in claim_maps(cfg, runs, sequential=read_record(root)):
        m = get_metric(cm.claim.get("metric", "test_acc"))
        for c in cm.cells:
            lo, hi = (c.rci_low, c.rci_high) if c.sequential else (c.ci_low, c.ci_high)
            if lo is not None and hi is not None and not (math.isfinite(lo) and math.isfinite(hi)):
                lo = hi = None  # a look that spends no α bounds nothing
            out.append(SummaryRow(
                **base, claim=cm.claim["claim"],
                cell=", ".join(f"{a} = {c.point[a]}" for a in cm.axes), result=c.result,
                estimate=_effect_text(m, c),
                diff=c.diff, low=lo, high=hi, margin=_margin(cm.claim, m.name),
                interval="repeated CI" if c.sequential else "95 %, unadjusted",
                undecided=c.sequential and not c.decided_at))
    return out


def summary_rows(run_dirs: list[str | Path]) -> list[SummaryRow]:
    """Every directory's rows, grouped by paper (:func:`arrange`)."""
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise SharpenError("summary: give one or more run directories")
    by_dir = {d: folder_rows(d) for d in dirs}
    rows = [r for d in dirs for r in by_dir[d]]
    bare = [d for d in dirs if not by_dir[d]]
    if bare:  # nothing to draw for them: say so, not an empty figure or a folder dropped
        raise SharpenError(f"summary: no claims in {', '.join(map(str, bare))}"
                           + (" (leave it out: the others have claims)" if rows else "")
                           + "; a run directory's claims come from its experiment's "
                           "[[claims]] (sharpen report DIR --claims-from FILE records them in "
                           "an older one)")
    if len({d.name for d in dirs}) < len(dirs):  # rows are told apart by the folder's name
        raise SharpenError("summary: two directories share a name ("
                           + ", ".join(str(d) for d in dirs if [x.name for x in dirs]
                                       .count(d.name) > 1) + "); give each its own")
    return arrange(rows, [d.name for d in dirs])


def arrange(rows: list[SummaryRow], folders: list[str]) -> list[SummaryRow]:
    """The rows of ``folders`` grouped by paper (its number's order; directories without
    one last), each paper's directories in the order of ``folders``."""
    order = {f: i for i, f in enumerate(folders)}
    return sorted((r for r in rows if r.folder in order),
                  key=lambda r: (r.paper == "", r.paper, order[r.folder]))


# --- the table ---------------------------------------------------------------------------------

def _link(report: Path, base: Path | None) -> str:
    path = report if base is None else Path(_relative(report, base))
    return f"[{report.parent.name}]({path.as_posix()})"


def _relative(p: Path, base: Path) -> str:
    return os.path.relpath(p.resolve(), base.resolve())


def _cells_text(rows: list[SummaryRow]) -> tuple[str, str, str]:
    """A grid claim's cells in one row: verdicts counted, the range of effects, of n."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    verdict = ", ".join(f"**{v}** in {k}" for v, k in counts.items()) + f" of {len(rows)} cells"
    m = get_metric(rows[0].result.metric)
    diffs = [r.diff for r in rows if r.diff is not None]
    effect = (f"{m.fmt(min(diffs), True)} to {m.fmt(max(diffs), True)} over the cells, "
              f"{m.label}"
              if diffs else "–")
    ns = [r.result.n for r in rows]
    return verdict, effect, f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}"


def summary_table(rows: list[SummaryRow], link_base: Path | None = None,
                  cells: bool = False) -> str:
    """The compact Markdown table: paper, claim, verdict, effect [CI], n, link to the report
    (relative to ``link_base``, the folder the table is written in). A grid's claim is one
    row, its cells counted by verdict; ``cells``: one row per cell instead."""
    lines = ["| paper | claim | verdict | effect [95 % CI unless named] | n | report |",
             "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[SummaryRow]] = {}
    for r in rows:
        groups.setdefault((r.folder, r.claim if r.cell and not cells else id(r)), []).append(r)
    for g in groups.values():
        r = g[0]
        paper = r.paper or "–"
        link = _link(r.report, link_base)
        if r.cell and not cells:
            verdict, effect, n = _cells_text(g)
            lines.append(f"| {paper} | {_md(r.claim)} (each cell of the grid) | {verdict} | "
                         f"{effect} | {n} | {link} |")
            continue
        claim = _md(r.claim) + (f" — {r.cell}" if r.cell else "")
        lines.append(f"| {paper} | {claim} | **{r.verdict}** | {_md(r.effect)} | "
                     f"{r.result.n} | {link} |")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


# --- the figure --------------------------------------------------------------------------------

@dataclass
class _Line:
    """One line of the forest: a paper's directory (a heading), a grid claim (a heading of
    its cells) or a row with a marker."""

    label: str
    kind: str  # "folder" | "claim" | "row"
    row: SummaryRow | None = None


def _short(text: str, n: int = LABEL_CHARS) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def forest_lines(rows: list[SummaryRow]) -> list[_Line]:
    """The forest's lines top to bottom: each directory's heading, then its claims; a grid
    claim's heading, then one line per cell."""
    out: list[_Line] = []
    folder, claim = None, None
    for r in rows:
        if r.folder != folder:
            folder, claim = r.folder, None
            out.append(_Line((f"paper {r.paper} · " if r.paper else "") + r.folder, "folder"))
        if r.cell:
            if r.claim != claim:
                claim = r.claim
                out.append(_Line(_short(r.claim) + ", per cell:", "claim"))
            out.append(_Line("    " + _short(r.cell, LABEL_CHARS - 4), "row", r))
        else:
            out.append(_Line(_short(r.claim), "row", r))
    return out


def _pp(r: SummaryRow, v: float | None) -> float | None:
    """A value of the row's metric on the figure's axis (pp); None off it."""
    m = get_metric(r.result.metric)
    return None if v is None or not m.percent else m.scale(v)


def _draw_row(ax: Any, y: float, r: SummaryRow) -> None:
    """One row: the margin band, the interval, the marker coloured by verdict, the paper's
    effect; a row without an estimate on the axis says so in words."""
    colour = (UNDECIDED_COLOUR if r.undecided
              else VERDICT_COLOURS.get(r.result.verdict.outcome, UNTESTED_COLOUR))
    x, lo, hi = _pp(r, r.diff), _pp(r, r.low), _pp(r, r.high)
    if r.margin is not None and _pp(r, r.margin) is not None:
        tol = _pp(r, r.margin)
        ax.fill_between([-tol, tol], y - 0.4, y + 0.4, color="#9ecae1", alpha=0.6, lw=0)
    if x is None:  # from the axes' left edge (at 0 a long one ran over n and the verdict)
        ax.text(0.01, y, _short(r.estimate, 52), fontsize=7, va="center", ha="left",
                style="italic", color="#555555", transform=ax.get_yaxis_transform(),
                clip_on=True, gid="estimate")
        return
    if lo is not None and hi is not None:
        ax.plot([lo, hi], [y, y], color="#333333", lw=1.3, solid_capstyle="butt", gid="interval")
    ax.plot([x], [y], marker="o", ms=6.5, mfc=colour, mec="black", mew=0.6, ls="none",
            gid="verdict")
    eff = _pp(r, r.result.effect)
    if eff is not None and not r.result.effect_not_comparable:
        ax.plot([eff], [y], marker="D", ms=5, mfc="none", mec="#08519c", mew=1.0, ls="none",
                gid="paper")


def _limits(rows: list[SummaryRow]) -> float:
    xs = [abs(v) for r in rows for v in (_pp(r, r.diff), _pp(r, r.low), _pp(r, r.high),
                                         _pp(r, r.margin), _pp(r, r.result.effect))
          if v is not None and math.isfinite(v)]
    return max([3.0, *xs]) * 1.15


def summary_figure(rows: list[SummaryRow]) -> Any:
    """The forest plot as a matplotlib figure (see the module's docstring)."""
    plt = pyplot()
    lines = forest_lines(rows)
    fig, ax = plt.subplots(figsize=(8.0, 1.3 + 0.2 * len(lines)))
    fig.subplots_adjust(left=0.43, right=0.80, top=1 - 0.75 / (1.3 + 0.2 * len(lines)),
                        bottom=0.55 / (1.3 + 0.2 * len(lines)))
    ys = [-i for i in range(len(lines))]
    for y, ln in zip(ys, lines):
        if ln.row is not None:
            _draw_row(ax, y, ln.row)
            ax.text(1.02, y, f"{ln.row.result.n}", transform=ax.get_yaxis_transform(),
                    fontsize=8, va="center", ha="left")
            ax.text(1.09, y, ln.row.verdict.replace(" (undecided by the design)",
                                                    " (undecided)"),
                    transform=ax.get_yaxis_transform(), fontsize=7.5, va="center", ha="left")
        elif ln.kind == "folder" and y != 0:
            ax.axhline(y + 0.5, color="#cccccc", lw=0.8)
    ax.axvline(0, color="black", lw=0.9)
    lim = _limits(rows)
    ax.set_xscale("symlog", linthresh=SYMLOG_PP, linscale=0.6)
    ax.set_xlim(-lim, lim)
    ticks = [t for t in (-30, -10, -3, -1, 0, 1, 3, 10, 30) if abs(t) <= lim]
    ax.set_xticks(ticks, [f"{t:+g}" if t else "0" for t in ticks], fontsize=8)
    ax.set_ylim(ys[-1] - 0.6, 0.6)
    ax.set_yticks(ys, [ln.label for ln in lines], fontsize=8)
    for lab, ln in zip(ax.get_yticklabels(), lines):
        lab.set_fontweight("bold" if ln.kind == "folder" else "normal")
        lab.set_fontstyle("italic" if ln.kind == "claim" else "normal")
    ax.tick_params(axis="y", length=0)
    ax.text(1.02, 0.6, "n", transform=ax.get_yaxis_transform(), fontsize=8, va="bottom",
            weight="bold")
    ax.text(1.09, 0.6, "verdict", transform=ax.get_yaxis_transform(), fontsize=8,
            va="bottom", weight="bold")
    ax.set_xlabel("effect: the claim's arm − what it is compared with (pp; linear within "
                  "±1 pp, log beyond)", fontsize=8)
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    _legend(fig)
    return fig


def _legend(fig: Any) -> None:
    from matplotlib.lines import Line2D  # lazy: heavy: matplotlib loads when a figure is drawn
    from matplotlib.patches import Patch  # lazy: heavy: as above

    handles = [Line2D([], [], marker="o", ls="none", mfc=c, mec="black", mew=0.6, ms=6.5,
                      label=str(o.value)) for o, c in VERDICT_COLOURS.items()]
    handles.insert(3, Line2D([], [], marker="o", ls="none", mfc=UNDECIDED_COLOUR, mec="black",
                             mew=0.6, ms=6.5, label="undecided by the design"))
    handles += [Line2D([], [], color="#333333", lw=1.3, label="interval the verdict rests on"),
                Line2D([], [], marker="D", ls="none", mfc="none", mec="#08519c", ms=5,
                       label="the paper's effect"),
                Patch(color="#9ecae1", alpha=0.6, label="~ claim's margin")]
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=7.5, frameon=False,
               bbox_to_anchor=(0.5, 1.0))


def sort_out(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """The run directories among ``paths`` that have claims, and a note for each other path
    (``sharpen summary docs/results/*`` names files, benchmarks and variance studies too)."""
    keep, notes = [], []
    for p in map(Path, paths):
        if not (p / CONFIG).is_file():
            notes.append(f"{p} (not a run directory: no {CONFIG})")
        elif not RunDir(p).config().get("claims"):
            notes.append(f"{p} (a run directory without claims)")
        else:
            keep.append(p)
    return keep, notes


def write_summary(run_dirs: list[str | Path], out: Path
                  ) -> tuple[list[SummaryRow], str, list[str]]:
    """The figure at ``out`` (PNG, and PDF beside it) and the table beside it (``.md``, its
    links relative to its folder); returns the rows, the table and what was left out (each
    path and why: also the table's last line, so no folder goes missing without a word)."""
    dirs, left_out = sort_out(run_dirs)
    if not dirs:
        raise SharpenError("summary: no run directory with claims among "
                           + (", ".join(left_out) or "no paths") + "; a run directory's claims "
                           "come from its experiment's [[claims]] (sharpen report DIR "
                           "--claims-from FILE records them in an older one)")
    rows = summary_rows(dirs)
    out = Path(out).with_suffix(".png")
    save_figure(summary_figure(rows), out, dpi=100)
    table = summary_table(rows, out.parent)
    if left_out:
        table += "\n\nLeft out: " + "; ".join(left_out) + "."
    atomic_write_text(out.with_suffix(".md"), table + "\n")
    return rows, table, left_out
