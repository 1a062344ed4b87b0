"""Figures of a run directory's curves: one panel per metric, one line per arm with its
95 % band over seeds, and the gradient-flow panels. PNG and PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpen.io import read_csv
from sharpen.reports.claims import as_number as _num
from sharpen.reports.figures import arm_colors, integer_epochs, pyplot, save_figure
from sharpen.rundir import RunDir


def _metrics(run_dir: Path) -> dict[str, list[list[dict[str, str]]]]:
    per_arm: dict[str, list[list[dict[str, str]]]] = {}
    rd = RunDir(run_dir)
    for arm, seed, d in rd.seed_dirs():
        if (d / "metrics.csv").exists():
            per_arm.setdefault(arm, []).append(rd.metrics(arm, seed))
    return per_arm


def curve_bands(runs: list[list[dict[str, str]]], key: str) -> tuple[Any, Any, Any, Any] | None:
    """Epochs, mean and 95 % t interval of ``key`` over runs (common epochs only)."""
    import numpy as np

    n = min((len(r) for r in runs), default=0)
    if n == 0 or any(_num(r[i].get(key)) is None for r in runs for i in range(n)):
        return None
    v = np.array([[float(r[i][key]) for i in range(n)] for r in runs])
    m = v.mean(0)
    if len(runs) > 1:
        from scipy import stats

        half = stats.t.ppf(0.975, len(runs) - 1) * v.std(0, ddof=1) / np.sqrt(len(runs))
    else:
        half = np.zeros_like(m)
    return np.arange(1, n + 1), m, m - half, m + half


CURVE_LABELS = {"test_acc": "test accuracy", "val_acc": "validation accuracy",
                "train_acc": "training accuracy", "gap": "generalization gap",
                "train_loss": "training loss", "test_loss": "test loss", "val_loss": "validation loss"}


def plot_curves(run_dir: Path, arm_order: list[str], keys: tuple[str, ...] | None = None,
                title: str = "", per_arm: dict[str, list[list[dict[str, str]]]] | None = None,
                path: Path | None = None) -> Path | None:
    """One panel per metric, one line per arm with its 95 % CI band (Student t over seeds);
    PNG and PDF. Default metrics: validation accuracy (test accuracy without a validation
    split), the generalization gap and the training loss."""
    plt = pyplot()
    per_arm = per_arm if per_arm is not None else _metrics(run_dir)
    if not per_arm:
        return None
    arms = [a for a in arm_order if a in per_arm] + [a for a in per_arm if a not in arm_order]
    has_val = any(runs and runs[0] and _num(runs[0][0].get("val_acc")) is not None
                  for runs in per_arm.values())
    keys = keys or ((("val_acc",) if has_val else ("test_acc",)) + ("gap", "train_loss"))
    colors = arm_colors(arms)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm in arms:
            band = curve_bands(per_arm[arm], key)
            if band is None:
                continue
            ep, m, lo, hi = band
            ax.plot(ep, m, color=colors[arm], label=f"{arm} (n={len(per_arm[arm])})")
            ax.fill_between(ep, lo, hi, color=colors[arm], alpha=0.18, linewidth=0)
        ax.set(xlabel="epoch", ylabel=CURVE_LABELS.get(key, key),
               title=f"{CURVE_LABELS.get(key, key)} (mean, 95 % CI)")
        if key.endswith("loss"):
            ax.set_yscale("log")
        integer_epochs(ax)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path or run_dir / "curves.png")


def plot_gradflow(run_dir: Path, arm_order: list[str]) -> Path | None:
    """Per-layer mean |grad| against layer index, one panel per arm, one line per epoch."""
    files: dict[str, Path] = {}
    for arm, _, d in RunDir(run_dir).seed_dirs():
        if arm not in files and (d / "gradflow.csv").exists():
            files[arm] = d / "gradflow.csv"  # the first seed of each arm
    arms = [a for a in arm_order if a in files]
    if not arms:
        return None
    plt = pyplot()

    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.2), squeeze=False,
                             sharey=True)
    for ax, arm in zip(axes[0], arms):
        rows = read_csv(files[arm])
        for ep in sorted({int(r["epoch"]) for r in rows}):
            rs = [r for r in rows if int(r["epoch"]) == ep]
            ax.semilogy([int(r["layer"]) for r in rs], [float(r["mean_abs_grad"]) for r in rs],
                        label=f"epoch {ep}")
        ax.set(title=arm, xlabel="layer (input → output)")
    axes[0][0].set_ylabel("mean |grad|")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, run_dir / "gradflow.png")


