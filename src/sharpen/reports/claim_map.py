"""Claim maps: where in a grid a claim holds.

A grid experiment's claims name its base arms ("sharpening beats baseline"); every cell of
the grid (one value per axis) holds one run of each base arm per seed. A claim map judges
the claim in every cell — paired within the cell, by the same code as a report's claims —
with the cells as one Holm family per claim (a map of 9 cells is 9 looks at one question),
and draws the verdicts as a heat map: one square per cell, coloured by verdict, labelled
with the cell's effect and interval, its axes the grid's keys.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpen.metrics import get_metric
from sharpen.reports.claims import ClaimResult, Runs, _prejudge, judge_family
from sharpen.reports.stats import CONTRADICTED, NOT_SUPPORTED, SUPPORTED

COLOURS = {SUPPORTED: "#4daf4a", CONTRADICTED: "#e41a1c", NOT_SUPPORTED: "#bdbdbd"}
UNTESTED_COLOUR = "#ffffff"


@dataclass
class MapCell:
    """One cell of a claim map: the axis values, the claim judged there, its numbers."""

    point: dict[str, Any]
    result: ClaimResult
    diff: float | None = None  # the effect (arm − than) in the metric's unit
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass
class ClaimMap:
    claim: dict[str, Any]
    axes: list[str]
    cells: list[MapCell]

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
    return axes, by


def claim_maps(cfg: dict[str, Any], runs: Runs, alpha: float = 0.05) -> list[ClaimMap]:
    """Every claim of a grid experiment judged in every cell; the cells of one claim are
    one Holm family. A cell without a run of the claim's arms is left out of the family."""
    axes, by = _cell_arms(cfg)
    if not axes:
        return []
    points = [p for p in itertools.product(*cfg["grid"].values()) if tuple(p) in by]
    maps = []
    for claim in cfg.get("claims") or []:
        names = [claim["arm"]] + ([claim["than"]] if isinstance(claim.get("than"), str)
                                  else list(claim.get("than") or []))
        per, where = [], []
        for p in points:
            m = by[tuple(p)]
            if not all(a in m for a in names):
                continue
            than = claim.get("than")
            per.append({**claim, "arm": m[claim["arm"]],
                        "than": m[than] if isinstance(than, str)
                        else [m[x] for x in than] if than else than})
            where.append(dict(zip(axes, p)))
        results = judge_family(per, runs, alpha=alpha, sensitivity=False) if per else []
        cells = []
        for c, point, r in zip(per, where, results):
            _, comp = _prejudge(c, runs)
            cells.append(MapCell(point, r, getattr(comp, "diff", None),
                                 getattr(comp, "ci_low", None), getattr(comp, "ci_high", None)))
        maps.append(ClaimMap(claim, axes, cells))
    return maps


def map_table(cm: ClaimMap) -> str:
    """One row per cell: the axis values, the effect with its interval, p, Holm p, verdict."""
    m = get_metric(cm.claim.get("metric", "test_acc"))
    head = "| " + " | ".join(cm.axes) + " | effect [95 % CI] | n | p | Holm p | verdict |"
    lines = [head, "|" + "---|" * (len(cm.axes) + 5)]
    for c in cm.cells:
        r = c.result
        eff = "–" if c.diff is None else (
            f"{m.fmt(c.diff, True)}" + ("" if c.ci_low is None else
                                        f" [{m.fmt(c.ci_low, True)}, {m.fmt(c.ci_high, True)}]"))
        p = "–" if r.p is None else f"{r.p:.3g}"
        pa = "–" if r.p_adj is None else f"{r.p_adj:.3g}"
        lines.append("| " + " | ".join(str(c.point[a]) for a in cm.axes) +
                     f" | {eff} | {r.n} | {p} | {pa} | **{r.verdict}** |")
    return "\n".join(lines)


def map_figure(cm: ClaimMap) -> Any:
    """The heat map as a matplotlib figure: x the first axis, y the second (if any), one
    panel per value of any further axes; each square coloured by verdict and labelled with
    the effect and its interval."""
    from matplotlib.patches import Patch

    from sharpen.reports.figures import pyplot

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
            colour = COLOURS.get(c.result.verdict, UNTESTED_COLOUR)
            ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=colour,
                                       edgecolor="white", linewidth=2))
            text = "–" if c.diff is None else m.fmt(c.diff, True)
            if c.ci_low is not None:
                text += f"\n[{m.fmt(c.ci_low, True)}, {m.fmt(c.ci_high, True)}]"
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
    fig.suptitle(cm.claim["claim"] + f" ({m.label}, cells one Holm family)", fontsize=9,
                 y=1.08)
    return fig


def map_section(run_dir: Path, cfg: dict[str, Any], runs: Runs) -> list[str]:
    """The report's claim-map section for a grid directory (figures drawn into it)."""
    from sharpen.reports.figures import save_figure

    maps = claim_maps(cfg, runs)
    if not maps:
        return []
    parts = ["## Claim maps: where each claim holds in the grid", "",
             "Each claim judged in every cell of the grid, paired within the cell; the cells "
             "of one claim are one Holm family at 5 % (docs/methods/statistics.md).", ""]
    for k, cm in enumerate(maps, 1):
        png = save_figure(map_figure(cm), run_dir / f"claim_map_{k}.png")
        held = [c for c in cm.cells if c.result.verdict == SUPPORTED]
        where = ("supported in no cell" if not held else "supported in " + "; ".join(
            ", ".join(f"{a} = {c.point[a]}" for a in cm.axes) for c in held))
        parts += [f"### {cm.claim['claim']}", "", f"{where.capitalize()}.", "", map_table(cm),
                  "", f"![claim map {k}]({png.name})", ""]
    return parts
