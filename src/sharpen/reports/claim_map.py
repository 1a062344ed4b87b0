"""Claim maps: where in a grid a claim holds.

A grid experiment's claims name its base arms ("sharpening beats baseline"); every cell of
the grid (one value per axis) holds one run of each base arm per seed. A claim map judges
the claim in every cell — paired within the cell, by the same code as a report's claims —
with the cells as one Holm family per claim (a map of 9 cells is 9 looks at one question),
and draws the verdicts as a heat map: one square per cell, coloured by verdict, labelled
with the cell's effect and interval, its axes the grid's keys.

A directory grown by ``--until-decided`` (a ``sequential.json``) gets the sequential
design's verdicts instead: there the seeds of a cell depended on its earlier looks, so a
fixed-n test at the last look is no longer valid, while the design's own decisions are
(each claim in each cell at α/m with alpha spending). The Holm p stays beside them, marked
as the fixed-n number it is.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpen.metrics import get_metric
from sharpen.reports.claims import (
    ClaimResult,
    Runs,
    _prejudge,
    _stated_effect,
    diff_in_range,
    fmt_detectable,
    judge_family,
)
from sharpen.reports.figures import pyplot, save_figure
from sharpen.reports.sequential import (
    SequentialPlan,
    _decided_at,
    normal_model_note,
    read_record,
)
from sharpen.reports.stats import format_p, repeated_ci, seeds_needed
from sharpen.rundir import CLAIM_MAP
from sharpen.verdicts import NOT_SUPPORTED, SUPPORTED, Outcome, Verdict, get_op

COLOURS = {Outcome.SUPPORTED: "#4daf4a", Outcome.CONTRADICTED: "#e41a1c",
           Outcome.NOT_SUPPORTED: "#bdbdbd"}
UNTESTED_COLOUR = "#ffffff"


@dataclass
class MapCell:
    """One cell of a claim map: the axis values, the claim judged there, its numbers."""

    point: dict[str, Any]
    result: ClaimResult
    diff: float | None = None  # the effect (arm − than) in the metric's unit
    ci_low: float | None = None
    ci_high: float | None = None
    sequential: bool = False  # the verdict is the sequential design's
    decided_at: int | None = None  # the look (seeds per arm) that decided it, if one did
    # sequential: the repeated confidence interval at the cell's last look, valid under the
    # design (ci_low/ci_high stay the naive 95 % interval, for the record)
    rci_low: float | None = None
    rci_high: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ClaimMap:
    claim: dict[str, Any]
    axes: list[str]
    cells: list[MapCell]
    # a best/worst claim's rivals, as base arms: in each cell, that cell's runs of them
    rivals: list[str] = field(default_factory=list)

    def grid(self) -> tuple[list[Any], list[Any]]:
        """The values of the first two axes, in grid order (one row when there is one)."""
        xs = list(dict.fromkeys(c.point[self.axes[0]] for c in self.cells))
        ys = list(dict.fromkeys(c.point[self.axes[1]] for c in self.cells)) \
            if len(self.axes) > 1 else [None]
        return xs, ys


def _cell_arms(cfg: dict[str, Any]) -> tuple[list[str], dict[tuple, dict[str, str]]]:
    """The grid's axes and, per point (tuple of axis values), base arm → the cell's arm."""
    axes = list(cfg.get("grid", {}))
    by: dict[tuple, dict[str, str]] = {}
    for derived, c in cfg.get("cells", {}).items():
        by.setdefault(tuple(c[a] for a in axes), {})[c["arm"]] = derived
    # the file's arms that --arms left out have no cells here, yet stay a best/worst claim's
    # rivals: named as their cell would be, without runs (the claim is untested, named)
    for point, arms in by.items():
        for base in cfg.get("arm_order") or []:
            if base not in arms:
                arms[base] = base + "".join(f"__{a}-{v}" for a, v in zip(axes, point))
    return axes, by


def cell_of(cfg: dict[str, Any], arm: str) -> dict[str, str]:
    """Base arm → the cell's arm, for the cell that holds the cell arm ``arm`` (as the
    directory's config.json records the grid: every arm that ran there)."""
    axes, by = _cell_arms(cfg)
    return by[tuple(cfg["cells"][arm][a] for a in axes)]


def in_cell(claim: dict[str, Any], arms: dict[str, str]) -> dict[str, Any] | None:
    """The claim about base arms as it reads in one cell (``arms``: base arm → the cell's
    arm): every arm renamed to the cell's. A ``best``/``worst`` claim without ``than`` gets
    the cell's other arms as its rivals: in a cell "best" is best among that cell's arms,
    never against another cell's (whose runs the directory also holds). None when the claim
    cannot be judged in the cell: it names an arm the cell lacks, or has no rival there."""
    than = claim.get("than")
    if get_op(claim["op"]).rivals and claim.get("value") is None and not than:
        than = [a for a in arms if a != claim["arm"]]
        if not than:
            return None
    names = [claim["arm"]] + ([than] if isinstance(than, str) else list(than or []))
    if not all(a in arms for a in names):
        return None
    return {**claim, "arm": arms[claim["arm"]],
            "than": arms[than] if isinstance(than, str) else
            [arms[t] for t in than] if than else than}


def _unit_point(key: str) -> dict[str, str]:
    """A sequential unit's key ("blur_stages=1, stage_epochs=2") as axis → value text."""
    return dict(part.split("=", 1) for part in key.split(", ") if "=" in part)


def claim_maps(cfg: dict[str, Any], runs: Runs, alpha: float = 0.05,
               sequential: dict[str, Any] | None = None) -> list[ClaimMap]:
    """Every claim of a grid experiment judged in every cell; the cells of one claim are
    one Holm family. A cell without a run of the claim's arms is left out of the family.
    ``sequential``: the directory's sequential record, whose decisions become the verdicts."""
    axes, by = _cell_arms(cfg)
    if not axes:
        return []
    points = [p for p in itertools.product(*cfg["grid"].values()) if tuple(p) in by]
    units = [(_unit_point(k), u) for k, u in ((sequential or {}).get("units") or {}).items()]
    plan = SequentialPlan.from_dict(sequential["plan"]) if sequential else None
    maps = []
    for i, claim in enumerate(cfg.get("claims") or []):
        per, where = [], []
        for p in points:
            c = in_cell(claim, by[tuple(p)])
            if c is None:  # the cell lacks one of the claim's arms: not in the family
                continue
            per.append(c)
            where.append(dict(zip(axes, p)))
        results = judge_family(per, runs, alpha=alpha, sensitivity=False) if per else []
        # the paper's effect, stated for the base arms: the n that would settle each cell
        effect = _stated_effect(claim, cfg.get("published") or {},
                                claim.get("metric") or "test_acc")
        cells = []
        for c, point, r in zip(per, where, results):
            _, comp = _prejudge(c, runs)
            cell = MapCell(point, r, getattr(comp, "diff", None),
                           *diff_in_range(get_metric(r.metric), getattr(comp, "ci_low", None),
                                          getattr(comp, "ci_high", None)))
            unit = next((u for up, u in units
                         if up == {a: str(v) for a, v in point.items()}), None)
            if unit is not None and plan is not None:
                _sequential_cell(cell, comp, plan, unit["decisions"].get(str(i)), claim["op"])
            else:
                r.effect = effect if get_op(claim["op"]).difference else None
                r.n_needed = seeds_needed(r.effect, r.sd, alpha / max(len(per), 1))
                cell.notes = list(r.notes)
            cells.append(cell)
        rivals = [] if not get_op(claim["op"]).rivals else list(dict.fromkeys(
            cfg["cells"][t]["arm"] if t in cfg["cells"] else t.split("__")[0]
            for c in per for t in c.get("than") or []))
        maps.append(ClaimMap(claim, axes, cells, rivals))
    return maps


def _sequential_cell(cell: MapCell, comp: Any, plan: SequentialPlan,
                     d: dict[str, Any] | None, op: str) -> None:
    """A cell of a sequential directory: the design's verdict, the repeated confidence
    interval at its last look (valid at whatever look it stopped: Jennison & Turnbull),
    whether the decision rests on the normal model, and what an undecided cell rules out."""
    r = cell.result
    cell.sequential, cell.decided_at = True, d["n"] if d else None
    # undecided is "not supported" where the cell was tested; a cell with no values (its
    # seeds all failed) stays untested, as at fixed n, not a verdict on nothing
    r.verdict = Verdict(Outcome(d["verdict"])) if d else \
        r.verdict if r.verdict.outcome is Outcome.UNTESTED else NOT_SUPPORTED
    if getattr(comp, "paired", False) and comp.spread and comp.sd and comp.n >= 2:
        cell.rci_low, cell.rci_high = diff_in_range(get_metric(r.metric), *repeated_ci(
            comp.diff, comp.sd, comp.n, plan.threshold_reached(comp.n)))
    if d:
        exact = r.p_exact if r.n == d["n"] else None  # the exact p at the deciding n
        note = normal_model_note(d["n"], _decided_at(op, d), exact)
        cell.notes = [note] if note else []
    else:
        cell.notes = [rules_out(get_metric(cell.result.metric), cell.rci_low, cell.rci_high)]


def rules_out(m: Any, lo: float | None, hi: float | None) -> str:
    """What an undecided cell's repeated interval rules out: every effect beyond the
    larger of its ends ("no effect beyond ±0.45 pp"), at the design's level."""
    if lo is None or hi is None:
        return "no repeated interval (no spread in the differences, or unpaired arms)"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "rules out nothing yet (its last look spends no α)"
    bound = m.fmt(max(abs(lo), abs(hi)), True).lstrip("+")
    return (f"no effect beyond ±{bound} at the design's level (repeated CI "
            f"[{m.fmt(lo, True)}, {m.fmt(hi, True)}])")


def _effect_text(m: Any, c: MapCell) -> str:
    """The cell's effect with its interval: the repeated one in a sequential map."""
    if c.diff is None:  # a chance claim has no difference: its P with interval instead
        return c.result.estimate if get_op(c.result.op).chance else "–"
    lo, hi = (c.rci_low, c.rci_high) if c.sequential else (c.ci_low, c.ci_high)
    if lo is None or hi is None:
        return m.fmt(c.diff, True)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{m.fmt(c.diff, True)} [−∞, +∞]"
    return f"{m.fmt(c.diff, True)} [{m.fmt(lo, True)}, {m.fmt(hi, True)}]"


def map_table(cm: ClaimMap) -> str:
    """One row per cell: the axis values, the effect with its interval, p (t and exact),
    Holm p, verdict and notes; at fixed n also the smallest effect n detects and the n that
    would settle the paper's effect, in a sequential map the design's decision instead."""
    m = get_metric(cm.claim.get("metric", "test_acc"))
    seq = any(c.sequential for c in cm.cells)
    head = "| " + " | ".join(cm.axes) + (
        " | effect [repeated CI, valid under the design] | n | p (t / exact) | "
        "Holm p (fixed n) | sequential design | verdict | notes |" if seq else
        " | effect [95 % CI, unadjusted] | n | p (t / exact) | Holm p | detectable at n "
        "(80 %) | n for the paper's effect | verdict | notes |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]  # one per header cell
    for c in cm.cells:
        r = c.result
        p = f"{format_p(r.p, 3, '–')} / {format_p(r.p_exact, 3, '–')}"
        pa = "–" if r.p_adj is None else f"{r.p_adj:.3g}"
        if seq:
            mid = (f"decided at n = {c.decided_at}" if c.decided_at else
                   "undecided" if c.sequential else "–")
        else:
            mde = fmt_detectable(m, r.mde)
            mid = mde + " | " + ("–" if r.effect is None else
                                 f"{r.n_needed or '–'} for {m.fmt(r.effect, True)}")
        lines.append("| " + " | ".join(str(c.point[a]) for a in cm.axes) +
                     f" | {_effect_text(m, c)} | {r.n} | {p} | {pa} | {mid} | **{r.verdict}** | "
                     f"{'; '.join(c.notes) or '–'} |")
    return "\n".join(lines)


def map_figure(cm: ClaimMap) -> Any:
    """The heat map as a matplotlib figure: x the first axis, y the second (if any), one
    panel per value of any further axes; each square coloured by verdict and labelled with
    the effect and its interval."""
    from matplotlib.patches import Patch  # lazy: heavy: matplotlib loads when a figure is drawn

    plt = pyplot()
    m = get_metric(cm.claim.get("metric", "test_acc"))
    rest = cm.axes[2:]
    panels = list(dict.fromkeys(tuple(c.point[a] for a in rest) for c in cm.cells)) or [()]
    xs, ys = cm.grid()
    fig, axs = plt.subplots(1, len(panels), figsize=(1.6 + 1.5 * len(xs) * len(panels),
                                                     1.4 + 0.9 * len(ys)), squeeze=False)
    for ax, panel in zip(axs[0], panels):
        for c in cm.cells:
            if tuple(c.point[a] for a in rest) != panel:
                continue
            i = xs.index(c.point[cm.axes[0]])
            j = ys.index(c.point[cm.axes[1]]) if len(cm.axes) > 1 else 0
            colour = COLOURS.get(c.result.verdict.outcome, UNTESTED_COLOUR)
            ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=colour,
                                       edgecolor="white", linewidth=2))
            text = _effect_text(m, c).replace(" [", "\n[")
            text += f"\nn = {c.result.n}"  # the seeds this cell's verdict rests on
            ax.text(i, j, text, ha="center", va="center", fontsize=7)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_xlabel(cm.axes[0])
        if len(cm.axes) > 1:
            ax.set_yticks(range(len(ys)), [str(v) for v in ys])
            ax.set_ylabel(cm.axes[1])
        else:
            ax.set_yticks([])
        if rest:
            ax.set_title(", ".join(f"{a} = {v}" for a, v in zip(rest, panel)), fontsize=8)
    handles = [Patch(facecolor=v, label=k) for k, v in COLOURS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    how = ("sequential design, each cell at α/m, repeated CIs" if any(c.sequential for c in cm.cells) else
           "cells one Holm family")
    fig.suptitle(cm.claim["claim"] + f" ({m.label}, {how})", fontsize=9, y=1.08)
    return fig


def sequential_rules_out(cfg: dict[str, Any], runs: Runs, record: dict[str, Any] | None
                         ) -> dict[tuple[str, int], str]:
    """For each claim a sequential design left undecided, by (unit key, claim index): what
    its repeated interval rules out (:func:`rules_out`); a grid's from its claim maps."""
    if not record:
        return {}
    out: dict[tuple[str, int], str] = {}
    units = record.get("units") or {}
    if cfg.get("cells"):
        keys = {tuple(sorted(_unit_point(k).items())): k for k in units}
        for i, cm in enumerate(claim_maps(cfg, runs, sequential=record)):
            for c in cm.cells:
                key = keys.get(tuple(sorted((a, str(v)) for a, v in c.point.items())))
                if key is not None and c.sequential and not c.decided_at:
                    out[(key, i)] = "; ".join(c.notes)
        return out
    plan = SequentialPlan.from_dict(record["plan"])
    for i, claim in enumerate(cfg.get("claims") or []):
        r, comp = _prejudge(claim, runs)
        cell = MapCell({}, r)
        for key, u in units.items():
            if str(i) not in u.get("decisions", {}):
                _sequential_cell(cell, comp, plan, None, claim["op"])
                out[(key, i)] = "; ".join(cell.notes)
    return out


def map_section(run_dir: Path, cfg: dict[str, Any], runs: Runs) -> list[str]:
    """The report's claim-map section for a grid directory (figures drawn into it)."""
    record = read_record(run_dir)
    maps = claim_maps(cfg, runs, sequential=record)
    if not maps:
        return []
    how = ("the cells of one claim are one Holm family at 5 % (docs/methods/statistics.md)."
           " The intervals are 95 % per cell, unadjusted for the cells; a verdict the t-test "
           "reaches but the exact sign-flip test cannot is marked *rests on the normal model*; "
           "\"detectable at n\" is the smallest true difference the cell's n finds with 80 % "
           "power at the family's strictest level (statsmodels `TTestPower`), \"n for the "
           "paper's effect\" the seeds that would take."
           if record is None else
           "the verdicts are the sequential design's (each claim in each cell tested at α/m "
           "with alpha spending, valid under optional stopping: see \"Decided with the fewest "
           "seeds\" below); a cell it left undecided is not supported, and its repeated "
           "interval says what it rules out. Each interval is the repeated confidence interval "
           "at the cell's last look (Jennison & Turnbull: the estimate ± that look's boundary "
           "on the t scale × its standard error, at the design's level α/m), which covers the "
           "true effect with probability ≥ 1 − α/m at whatever look the cell stopped; the "
           "naive 95 % interval would not. A decision the exact sign-flip test could not reach "
           "at that look is marked *rests on the normal model*. The Holm p over the "
           "cells at their last look is shown for reference only: once the seeds of a cell "
           "depended on its earlier looks, a fixed-n test is no longer valid.")
    parts = ["## Claim maps: where each claim holds in the grid", "",
             "Each claim judged in every cell of the grid, paired within the cell; " + how, ""]
    for k, cm in enumerate(maps, 1):
        png = save_figure(map_figure(cm), run_dir / CLAIM_MAP.format(k))
        held = [c for c in cm.cells if c.result.verdict == SUPPORTED]
        where = ("supported in no cell" if not held else "supported in " + "; ".join(
            ", ".join(f"{a} = {c.point[a]}" for a in cm.axes) for c in held))
        if not cm.cells:  # not "supported in no cell": it was judged nowhere
            where = ("judged in no cell: no cell of this grid holds runs of every arm the "
                     "claim names (and, for best/worst, of a rival)")
        against = (f" Judged in each cell against that cell's {', '.join(cm.rivals)}."
                   if cm.rivals else "")
        parts += [f"### {cm.claim['claim']}", "", f"{where.capitalize()}.{against}", "",
                  map_table(cm),
                  "", f"![claim map {k}]({png.name})", ""]
    return parts
