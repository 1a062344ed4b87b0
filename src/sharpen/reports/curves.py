"""Figures of a run directory's curves: one panel per metric, one line per arm with its
95 % band over seeds. PNG and PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sharpen.metrics import REGISTRY, get_metric
from sharpen.reports.claims import as_number as _num
from sharpen.reports.figures import arm_colors, integer_epochs, pyplot, save_figure
from sharpen.rundir import CURVES, METRICS, RunDir


def _metrics(run_dir: Path) -> dict[str, list[list[dict[str, str]]]]:
    per_arm: dict[str, list[list[dict[str, str]]]] = {}
    rd = RunDir(run_dir)
    for arm, seed, d in rd.seed_dirs():
        if (d / METRICS).exists():
            per_arm.setdefault(arm, []).append(rd.metrics(arm, seed))
    return per_arm


def curve_bands(runs: list[list[dict[str, str]]], key: str) -> tuple[Any, Any, Any, Any] | None:
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


def plot_curves(run_dir: Path, arm_order: list[str], keys: tuple[str, ...] | None = None,
                title: str = "", per_arm: dict[str, list[list[dict[str, str]]]] | None = None,
                path: Path | None = None) -> Path | None:
    """One panel per metric, one line per arm with its 95 % CI band (Student t over seeds);
    PNG and PDF. Default panels: test accuracy, validation accuracy (when there is a
    validation split), the generalization gap and the training loss. Accuracies are in %,
    as in the tables; the y range follows the means and bands are clipped to it (and to the
    metric's range), drawn lighter below 5 seeds; one legend, outside the panels."""
    plt = pyplot()
    per_arm = per_arm if per_arm is not None else _metrics(run_dir)
    if not per_arm:
        return None
    arms = [a for a in arm_order if a in per_arm] + [a for a in per_arm if a not in arm_order]
    keys = keys or tuple(m.column for m in REGISTRY.values() if m.curve == "always" or (
        m.curve == "any" and any(runs and runs[0] and _num(runs[0][0].get(m.column)) is not None
                                 for runs in per_arm.values())))
    colors = arm_colors(arms)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, key in zip(axes[0], keys):
        m_ = get_metric(key) if key in REGISTRY else None
        scale = 100.0 if m_ is not None and m_.percent else 1.0
        means = []
        for arm in arms:
            band = curve_bands(per_arm[arm], key)
            if band is None:
                continue
            ep, m, lo, hi = (band[0], *(scale * np.asarray(x) for x in band[1:]))
            n = len(per_arm[arm])
            if key.endswith("loss"):
                lo = np.maximum(lo, np.min(m) / 10)  # a band below 0 has no place on a log axis
            elif scale == 100.0 and m_ is not None and m_.lowest >= 0:  # the gap goes below 0
                lo, hi = np.clip(lo, 0, 100), np.clip(hi, 0, 100)
            (line,) = ax.plot(ep, m, color=colors[arm], linewidth=1.6,
                              marker="o" if len(ep) <= 3 else None, markersize=3)
            if n > 1:
                ax.fill_between(ep, lo, hi, color=colors[arm],
                                alpha=0.2 if n >= SMALL_N else 0.08, linewidth=0)
            handles.setdefault(arm, (line, n))
            means.append(m)
        label = m_.label if m_ is not None else key
        unit = " (%)" if scale == 100.0 else ""
        ax.set(xlabel="epoch", ylabel=label + unit, title=f"{label} (mean, 95 % CI)")
        if key.endswith("loss"):
            ax.set_yscale("log")
        lim = _limits(key, means)
        if lim is not None and lim[0] < lim[1]:
            ax.set_ylim(*lim)
        integer_epochs(ax)
        ax.grid(alpha=0.25, linewidth=0.5)
    if handles:
        ns = {n for _, n in handles.values()}
        labels = [f"{a} (n={n})" if len(ns) > 1 else a for a, (_, n) in handles.items()]
        head = f"n = {ns.pop()} seeds per arm" if len(ns) == 1 else "seeds per arm"
        fig.legend([h for h, _ in handles.values()], labels, loc="center left",
                   bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False, title=head,
                   title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path or run_dir / CURVES)
