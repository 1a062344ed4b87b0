"""Figures of a run directory's curves: one panel per metric, one line per arm with its
95 % band over seeds. PNG and PDF.

What a panel cannot show is said, in the figure and in the report (:func:`curve_notes`):
an arm with no finished run to draw (all diverged, failed or corrupt), runs left out of an
arm's mean, and arms whose curves are identical (a grid's twin cells), drawn once."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sharpen.metrics import REGISTRY, get_metric
from sharpen.reports.claims import as_number as _num
from sharpen.reports.figures import (
    arm_colors,
    epoch_axis,
    group_label,
    plain_log_ticks,
    pyplot,
    save_figure,
)
from sharpen.rundir import CURVES, RunDir

Runs = list[list[dict[str, str]]]  # per seed: its metrics.csv rows


@dataclass
class CurveData:
    """The curves of a directory: each arm's finished runs, and per arm the runs that gave
    no curve by status ("diverged": 3)."""

    per_arm: dict[str, Runs]
    lost: dict[str, dict[str, int]] = field(default_factory=dict)


def curve_data(run_dir: Path) -> CurveData:
    """The metrics.csv rows of every run that finished ok (a diverged run stops early and
    would cut the arm's band to its epochs; a run still training is not drawn)."""
    rd = RunDir(run_dir)
    data = CurveData({})
    for r in rd.runs():
        if r.status == "ok":
            data.per_arm.setdefault(r.arm, []).append(r.rows or rd.metrics(r.arm, r.seed))
        else:
            lost = data.lost.setdefault(r.arm, {})
            lost[r.status] = lost.get(r.status, 0) + 1
    return data


def curve_bands(runs: Runs, key: str) -> tuple[Any, Any, Any, Any] | None:
    """Epochs, mean and 95 % t interval of ``key`` over runs (common epochs only)."""
    n = min((len(r) for r in runs), default=0)
    if n == 0 or any(_num(r[i].get(key)) is None for r in runs for i in range(n)):
        return None
    v = np.array([[float(r[i][key]) for i in range(n)] for r in runs])
    m = v.mean(0)
    if len(runs) > 1:
        half = stats.t.ppf(0.975, len(runs) - 1) * v.std(0, ddof=1) / np.sqrt(len(runs))
    else:
        half = np.zeros_like(m)
    return np.arange(1, n + 1), m, m - half, m + half


SMALL_N = 5  # below this many seeds a 95 % band is wide: drawn lighter, the mean leads


def panel_keys(per_arm: dict[str, Runs]) -> tuple[str, ...]:
    """The default panels: the registry's curves drawn always, and those the runs hold."""
    return tuple(m.column for m in REGISTRY.values() if m.curve == "always" or (
        m.curve == "any" and any(runs and runs[0] and _num(runs[0][0].get(m.column)) is not None
                                 for runs in per_arm.values())))


def shared_curves(per_arm: dict[str, Runs], arms: list[str], keys: tuple[str, ...]
                  ) -> dict[str, list[str]]:
    """Arms whose runs hold the same numbers on every panel's metric, seed for seed (a
    grid's twin cells: one training copied into each): the first arm of each group → the
    group, in ``arms``' order. An arm alone is a group of one."""
    groups: dict[str, list[str]] = {}
    for arm in arms:
        sig = json.dumps([[[r.get(k) for k in keys] for r in run] for run in per_arm[arm]])
        groups.setdefault(sig, []).append(arm)
    return {g[0]: g for g in groups.values()}


def shared_label(group: list[str]) -> str:
    """A drawn-once group's legend entry: 'base, 3 cells (same runs)' for cells of one arm
    (:func:`~sharpen.reports.figures.group_label`)."""
    return group[0] if len(group) == 1 else f"{group_label(group)} (same runs)"


def curve_notes(data: CurveData, arms: list[str], keys: tuple[str, ...] | None = None
                ) -> list[str]:
    """What the curves figure does not show as lines, one sentence each: arms with no
    curve, runs left out of an arm's mean, identical arms drawn once."""
    order = [a for a in arms if a in data.per_arm or a in data.lost] + \
        [a for a in list(data.per_arm) + list(data.lost) if a not in arms]
    order = list(dict.fromkeys(order))
    notes = []
    for arm in order:
        lost = data.lost.get(arm)
        if not lost:
            continue
        how = ", ".join(f"{n} {status}" for status, n in lost.items())
        ok, total = len(data.per_arm.get(arm, [])), sum(lost.values())
        if ok:
            notes.append(f"{arm}: the mean of its {ok} runs that ended ok; {how} not drawn")
        elif len(lost) == 1:
            notes.append(f"{arm}: no curve: {'its one run' if total == 1 else f'all {total} runs'} "
                         f"{next(iter(lost))}")
        else:
            notes.append(f"{arm}: no curve: none of its {total} runs ended ok ({how})")
    drawn = [a for a in order if a in data.per_arm]
    keys = keys or panel_keys(data.per_arm)
    for group in shared_curves(data.per_arm, drawn, keys).values():
        if len(group) > 1:
            notes.append(f"{', '.join(group)}: the same numbers in every run (twin copies, "
                         "or arms that train alike), "
                         f"drawn once as '{shared_label(group)}'")
    return notes


def _limits(key: str, lines: list[Any]) -> tuple[float, float] | None:
    """The y range of a panel from its mean lines (not its bands), padded; a % metric
    stays inside 0–100 (the gap may go below 0), a loss above 0."""
    if not lines:
        return None
    lo = float(min(np.min(m) for m in lines))
    hi = float(max(np.max(m) for m in lines))
    if key.endswith("loss"):
        lo, hi = max(lo, 1e-12), max(hi, 1e-12)
        f = max((hi / lo) ** 0.12, 1.05)  # pad a tenth of the span, in log space
        return lo / f, hi * f
    pad = max(0.15 * (hi - lo), 0.5)
    lo, hi = lo - pad, hi + pad
    m = REGISTRY.get(key)
    if m is not None and m.percent and m.lowest >= 0:
        lo, hi = max(lo, 0.0), min(hi, 100.0)
    return lo, hi


@dataclass
class _Arm:
    """One line of the figure: its label, colour, runs and place among one-epoch points."""

    label: str
    color: Any
    runs: Runs
    offset: float = 0.0  # x shift of a one-epoch point, so the arms' bars stand apart


def _draw(ax: Any, arm: _Arm, key: str, m_: Any) -> tuple[Any, Any] | None:
    """One arm on one panel: its mean with the 95 % band (a point with its interval as an
    error bar when the runs have one epoch); the mean and the artist for the legend, or
    None when the runs lack the metric."""
    band = curve_bands(arm.runs, key)
    if band is None:
        return None
    scale = 100.0 if m_ is not None and m_.percent else 1.0
    ep, m, lo, hi = (band[0], *(scale * np.asarray(x) for x in band[1:]))
    n = len(arm.runs)
    if key.endswith("loss"):
        lo = np.maximum(lo, np.min(m) / 10)  # a band below 0 has no place on a log axis
    elif scale == 100.0 and m_ is not None:  # inside the metric's range (a gap: ±100 %)
        lo, hi = np.clip(lo, 100 * m_.lowest, 100), np.clip(hi, 100 * m_.lowest, 100)
    if len(ep) == 1:  # a band over one epoch has no width: a point and its error bar,
        # inside the panel's y range (the interval is all there is to see)
        bar = ax.errorbar(ep + arm.offset, m, yerr=[m - lo, hi - m], color=arm.color,
                          marker="o", markersize=4, capsize=3, linewidth=1.4, label=arm.label)
        return np.concatenate([lo, m, hi]), bar
    (line,) = ax.plot(ep, m, color=arm.color, linewidth=1.6, marker="o" if len(ep) <= 3 else None,
            markersize=3, label=arm.label)
    if n > 1:
        ax.fill_between(ep, lo, hi, color=arm.color, alpha=0.2 if n >= SMALL_N else 0.08,
                        linewidth=0)
    return m, line


def _lines(per_arm: dict[str, Runs], arm_order: list[str], keys: tuple[str, ...]
           ) -> list[_Arm]:
    """The figure's lines: identical arms once; one-epoch arms spread apart on the x axis."""
    arms = [a for a in arm_order if a in per_arm] + [a for a in per_arm if a not in arm_order]
    colors = arm_colors(arms)
    out = [_Arm(shared_label(g), colors[first], per_arm[first])
           for first, g in shared_curves(per_arm, arms, keys).items()]
    if all(len(a.runs) and min(len(r) for r in a.runs) == 1 for a in out) and len(out) > 1:
        for i, a in enumerate(out):
            a.offset = 0.3 * (i / (len(out) - 1) - 0.5)
    return out


def _legend(fig: Any, handles: dict[str, tuple[Any, int]], data: CurveData,
            notes: list[str]) -> None:
    """One legend outside the panels, titled with the seeds per arm, an arm with no curve
    named in it too; below the panels the notes."""
    ns = {n for _, n in handles.values()}
    labels = [f"{a} (n={n})" if len(ns) > 1 else a for a, (_, n) in handles.items()]
    head = f"n = {ns.pop()} seeds per arm" if len(ns) == 1 else "seeds per arm"
    artists = [h for h, _ in handles.values()]
    for arm, lost in data.lost.items():
        if arm not in data.per_arm:  # an empty line: the arm's name, marked, in the legend
            (h,) = fig.axes[0].plot([], [], color="#a00000", marker="x", linestyle="none")
            artists.append(h)
            labels.append(f"{arm}: no curve ({', '.join(f'{n} {s}' for s, n in lost.items())})")
    if artists:
        fig.legend(artists, labels, loc="center left",
                   bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False, title=head,
                   title_fontsize=8)
    if notes:  # wrapped to the panels' width (≈ 13 characters an inch at 8 pt), or
        # panel and legend for a figure of one panel
        width = max(int(13 * fig.get_figwidth()), 110)
        fig.text(0.0, -0.02, "\n".join(textwrap.fill(n, width, subsequent_indent="  ",
                                                     break_on_hyphens=False)
                                       for n in notes),
                 fontsize=8, ha="left", va="top", color="#444444")


def plot_curves(run_dir: Path, arm_order: list[str], keys: tuple[str, ...] | None = None,
                title: str = "", per_arm: dict[str, Runs] | None = None,
                path: Path | None = None, data: CurveData | None = None) -> Path | None:
    """One panel per metric, one line per arm with its 95 % CI band (Student t over seeds);
    PNG and PDF. Default panels: test accuracy, validation accuracy (when there is a
    validation split), the generalization gap and the training loss. Accuracies are in %,
    as in the tables; the y range follows the means and bands are clipped to it (and to the
    metric's range), drawn lighter below 5 seeds; one legend, outside the panels; under the
    panels, what the lines do not show (:func:`curve_notes`). Arms with identical runs are
    drawn once; runs of one epoch are points with error bars."""
    if data is None:  # ``data``: the directory's curves when the caller has read them
        data = curve_data(run_dir) if per_arm is None else CurveData(per_arm)
    if not data.per_arm and not data.lost:
        return None
    keys = keys or panel_keys(data.per_arm)
    lines = _lines(data.per_arm, arm_order, keys)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    handles: dict[str, tuple[Any, int]] = {}
    for ax, key in zip(axes[0], keys):
        m_ = get_metric(key) if key in REGISTRY else None
        means = []
        for a in lines:
            if (drawn := _draw(ax, a, key, m_)) is not None:
                means.append(drawn[0])
                handles.setdefault(a.label, (drawn[1], len(a.runs)))
        label = m_.label if m_ is not None else key
        unit = " (%)" if m_ is not None and m_.percent else ""
        ax.set(xlabel="epoch", ylabel=label + unit, title=f"{label} (mean, 95 % CI)")
        if key.endswith("loss"):
            ax.set_yscale("log")
            plain_log_ticks(ax)
        lim = _limits(key, means)
        if lim is not None and lim[0] < lim[1]:
            ax.set_ylim(*lim)
        epoch_axis(ax, max((len(r) for a in lines for r in a.runs), default=1))
        ax.grid(alpha=0.25, linewidth=0.5)
    _legend(fig, handles, data, curve_notes(data, arm_order, keys))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path or run_dir / CURVES)
