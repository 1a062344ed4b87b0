"""Budget curves for grids ("Show your work", Dodge et al. 2019): the expected best
validation accuracy a researcher would report after trying n cells of the grid, for
n = 1 … N, with its spread, per arm.

Each cell is one hyper-parameter setting, scored by its mean validation accuracy over
seeds (selection on validation; on test only when there is none, marked optimistic). With
the N scores sorted, v₍₁₎ ≤ … ≤ v₍N₎:

* Dodge et al. draw the n settings *with* replacement: P(max = v₍ᵢ₎) = (i/N)ⁿ − ((i−1)/N)ⁿ.
* Tang et al. (2020) point out that drawing n *distinct* settings of the N tried is what a
  grid search does, and that the with-replacement estimator is biased low for n near N;
  the unbiased one is P(max = v₍ᵢ₎) = C(i−1, n−1) / C(N, n). The two differ most at n = N,
  where Tang's is exactly the best cell.

The spread is the standard deviation of the maximum under the same law.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sharpen.metrics import timing_keys
from sharpen.reports.claims import metric_of
from sharpen.reports.figures import pyplot, save_figure
from sharpen.rundir import BUDGET

TIMINGS = timing_keys()


def max_law(values: Sequence[float], n: int, replace: bool) -> tuple[np.ndarray, np.ndarray]:
    """The sorted values and P(the best of n draws is each one)."""
    v = np.sort(np.asarray(values, dtype=float))
    N = len(v)
    if not 1 <= n <= (N if not replace else n):
        raise ValueError(f"n = {n} draws from {N} values{'' if replace else ' without replacement'}")
    i = np.arange(1, N + 1)
    if replace:
        p = (i / N) ** n - ((i - 1) / N) ** n
    else:
        p = np.array([math.comb(k - 1, n - 1) for k in i], dtype=float) / math.comb(N, n)
    return v, p


def expected_max(values: Sequence[float], n: int, replace: bool = False) -> tuple[float, float]:
    """(expected best, its standard deviation) of n settings drawn from ``values``."""
    v, p = max_law(values, n, replace)
    e = float((p * v).sum())
    return e, float(math.sqrt(max((p * (v - e) ** 2).sum(), 0.0)))


@dataclass
class BudgetCurve:
    arm: str
    metric: str  # val_acc, or test_acc when the runs have no validation split (optimistic)
    cells: int
    points: list[dict[str, float]]  # n, expected and sd (Tang), expected and sd (Dodge)


def one_configuration(cfg: dict[str, Any], results: Sequence[dict[str, Any]],
                      values: dict[str, dict[int, dict[str, float]]] | None = None
                      ) -> list[str]:
    """The base arms whose grid cells are twin copies of one configuration (the grid's keys
    do not touch the arm, e.g. the baseline of a blur grid): every cell is linked to the
    others, through runs copied from a twin cell of the same arm (``twin_of``, written only
    when the configurations agree but for keys nothing reads), or (a directory trained
    before twins were copied) through at least 2 shared seeds whose every metric, losses
    included, is the same number in both cells (``values``: :class:`Runs`'s). Their cells
    differ by seed subsets alone, so no cell is "chosen" and no budget curve is drawn."""
    cells = cfg.get("cells") or {}
    parent = {d: d for d in cells}

    def root(d: str) -> str:
        while parent[d] != d:
            d = parent[d]
        return d

    for r in results:
        a, b = r.get("arm"), r.get("twin_of")
        if a in cells and b in cells and cells[a]["arm"] == cells[b]["arm"]:
            parent[root(a)] = root(b)
    for a, b in itertools.combinations(cells, 2):
        va, vb = (values or {}).get(a, {}), (values or {}).get(b, {})
        shared = set(va) & set(vb)
        if cells[a]["arm"] == cells[b]["arm"] and len(shared) >= 2 and \
                all(_outcome(va[s]) == _outcome(vb[s]) for s in shared):
            parent[root(a)] = root(b)
    out = []
    for arm in dict.fromkeys(c["arm"] for c in cells.values()):
        mine = [d for d, c in cells.items() if c["arm"] == arm]
        if len(mine) > 1 and len({root(d) for d in mine}) == 1:
            out.append(arm)
    return out


def _outcome(v: dict[str, float]) -> dict[str, float]:
    """A run's numbers without its timings (which differ between identical runs)."""
    return {k: x for k, x in v.items() if k not in TIMINGS}


def budget_curves(cfg: dict[str, Any], runs: Any, skip: Sequence[str] = ()
                  ) -> list[BudgetCurve]:
    """One curve per base arm of a grid directory, over its cells' mean validation accuracy
    (none for the arms in ``skip``: :func:`one_configuration`)."""
    out = []
    arms = [a for a in dict.fromkeys(c["arm"] for c in cfg.get("cells", {}).values())
            if a not in skip]
    for arm in arms:
        cells = [d for d, c in cfg["cells"].items() if c["arm"] == arm]
        metric = "val_acc" if any(metric_of(runs.values, d, "val_acc") for d in cells) \
            else "test_acc"
        scores = [float(np.mean(list(v.values()))) for d in cells
                  if (v := metric_of(runs.values, d, metric))]
        if not scores:
            continue
        pts = []
        for n in range(1, len(scores) + 1):
            e, s = expected_max(scores, n, replace=False)
            ed, sd = expected_max(scores, n, replace=True)
            pts.append({"n": n, "expected": e, "sd": s, "dodge": ed, "dodge_sd": sd})
        out.append(BudgetCurve(arm, metric, len(scores), pts))
    return out


def budget_section(run_dir: Path, cfg: dict[str, Any], runs: Any,
                   results: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The report's budget-curve section for a grid directory (figure drawn into it); an
    arm whose cells are copies of one configuration (``results``' ``twin_of``) is left out."""
    twins = one_configuration(cfg, results, runs.values)
    curves = budget_curves(cfg, runs, skip=twins)
    if not curves or max(c.cells for c in curves) < 2:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for c in curves:
        n = [p["n"] for p in c.points]
        e = np.array([p["expected"] for p in c.points]) * 100
        s = np.array([p["sd"] for p in c.points]) * 100
        (line,) = ax.plot(n, e, marker="o", label=c.arm)
        # an accuracy's band stays inside 0–100 % (a best near 100 % with a wide sd ran past)
        ax.fill_between(n, np.clip(e - s, 0, 100), np.clip(e + s, 0, 100),
                        color=line.get_color(), alpha=0.15)
    metric = curves[0].metric
    ax.set(xlabel="grid cells tried (n)", ylabel=f"expected best {metric} %")
    ax.legend(fontsize=7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    png = save_figure(fig, run_dir / BUDGET)
    opt = "" if metric == "val_acc" else " (no validation split: scored on test, optimistic)"
    lines = ["## Budget curves: the expected best cell after trying n of them", "",
             f"Each cell scored by its mean {metric} over seeds{opt}; the expected best of n "
             "distinct cells drawn at random (Tang et al. 2020, unbiased), ± its standard "
             "deviation; Dodge et al. (2019) draw with replacement, which runs low near n = N "
             "(docs/methods/statistics.md)." + _twins_text(twins), "",
             "| arm | n | expected best % | sd | Dodge et al. % |", "|---|---|---|---|---|"]
    for c in curves:
        for p in c.points:
            lines.append(f"| {c.arm} | {p['n']} | {100 * p['expected']:.2f} | "
                         f"{100 * p['sd']:.2f} | {100 * p['dodge']:.2f} |")
    return lines + ["", f"![budget curves]({png.name})", ""]


def _twins_text(twins: Sequence[str]) -> str:
    if not twins:
        return ""
    return (f" No curve for {', '.join(twins)}: {'its' if len(twins) == 1 else 'their'} cells "
            "are twin copies of one configuration (the grid's keys do not change it), so its "
            "cells differ by their seeds alone and trying more of them finds nothing better.")
