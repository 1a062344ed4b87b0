"""Figures drawn from a run directory's files: the image strips of the techniques' data
figures (the blurred copies of paper 000, the σ strip of paper 001: ``<figure>.npz``), the
schedule plot and the panels of a technique's ``run_figure`` (gradient flow). Written as
PNG, atomically."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sharpen.io import atomic_write_bytes, read_csv
from sharpen.rundir import RunDir
from sharpen.techniques.base import RunFigure


def pyplot():  # noqa: ANN201 - matplotlib's pyplot module, headless
    import matplotlib  # lazy: heavy: matplotlib loads when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy: after use("Agg"), when a figure is drawn

    return plt


def save_png(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG and write it atomically; close the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")  # a legend outside the axes
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """PNG at ``path`` and a vector PDF beside it (no timestamps: rebuilds are byte-identical)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"CreationDate": None, "ModDate": None},
                bbox_inches="tight")
    atomic_write_bytes(Path(path).with_suffix(".pdf"), buf.getvalue())
    return save_png(fig, path, dpi)


def arm_colors(arms: Sequence[str]) -> dict[str, Any]:
    """One colour per arm by its place in the experiment's arm list: the same in every
    figure of a report (tab10, then tab20 for more arms)."""
    import matplotlib  # lazy: heavy: matplotlib loads when a figure is drawn

    cmap = matplotlib.colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {a: cmap(i % cmap.N) for i, a in enumerate(arms)}


def epoch_axis(ax: Any, last: int, spans: bool = False) -> None:
    """Whole-number epoch ticks, however short the run. A run of one epoch, or ``spans``
    (each epoch drawn as a step from e − ½ to e + ½), gets half an epoch of room on each
    side, so the first and the last epoch are not on the frame (and one epoch's ticks are
    not 0.945 … 1.050)."""
    from matplotlib.ticker import MaxNLocator  # lazy: heavy: matplotlib loads when a figure is drawn

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if spans or last <= 1:
        ax.set_xlim(0.5, max(last, 1) + 0.5)


def plain_log_ticks(ax: Any) -> None:
    """A log y axis labelled with plain numbers ("2", "0.6", "2.25"), not "2×10⁰": the
    ticks matplotlib chooses to label (minor ones too when the range spans under a
    decade or two), written with ``:g``."""
    from matplotlib.ticker import LogFormatter  # lazy: heavy: matplotlib loads when a figure is drawn

    class Plain(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _show(ax: Any, img: torch.Tensor) -> None:
    img = img.float().clamp(0, 255) / 255
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def image_strip(npz: Path, path: Path) -> Path:
    """A technique's data figure from the images it wrote (``Technique.figure_images``):
    each row an image, each column one of the titled columns."""
    with np.load(npz, allow_pickle=False) as z:
        titles, images = [str(t) for t in z["titles"]], torch.from_numpy(z["images"])
    plt = pyplot()
    n = images.shape[1]
    fig, axes = plt.subplots(n, len(titles), figsize=(1.4 * len(titles), 1.4 * n), squeeze=False)
    for j, title in enumerate(titles):
        for i in range(n):
            _show(axes[i][j], images[j][i])
        axes[0][j].set_title(title, fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def run_figure_section(fig_spec: RunFigure, run_dir: Path, arms: list[str]) -> list[str]:
    """A technique's ``run_figure``: one panel per arm (its first seed holding the file),
    drawn into ``run_dir``, and the report's lines showing it; [] when no run has the file."""
    files: dict[str, Path] = {}
    for arm, _, d in RunDir(run_dir).seed_dirs():
        if arm not in files and (d / fig_spec.file).exists():
            files[arm] = d / fig_spec.file  # the first seed of each arm
    shown = [a for a in arms if a in files]
    if not shown:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.2), squeeze=False,
                             sharey=True)
    for ax, arm in zip(axes[0], shown):
        rows = read_csv(files[arm])
        for v in sorted({int(r[fig_spec.lines]) for r in rows}):
            rs = [r for r in rows if int(r[fig_spec.lines]) == v]
            (ax.semilogy if fig_spec.log_y else ax.plot)(
                [int(r[fig_spec.x]) for r in rs], [float(r[fig_spec.y]) for r in rs],
                label=f"{fig_spec.lines} {v}")
        ax.set(title=arm, xlabel=fig_spec.xlabel)
    axes[0][0].set_ylabel(fig_spec.ylabel)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    png = save_figure(fig, run_dir / fig_spec.png)
    return [f"## {fig_spec.heading}", "", f"![{fig_spec.alt}]({png.name})", ""]


def same_plans(plans: dict[str, list[dict[str, Any]]], key: str) -> dict[str, list[str]]:
    """Arms whose plan of ``key`` is the same at every epoch, grouped (the first arm of each
    group → the group, in the plans' order); arms without ``key`` are left out."""
    groups: dict[str, list[str]] = {}
    for arm, rows in plans.items():
        pts = [(r["epoch"], r[k]) for r in rows for k in (key,) if k in r]
        if pts:
            groups.setdefault(repr(pts), []).append(arm)
    return {g[0]: g for g in groups.values()}


def group_label(group: list[str]) -> str:
    """The name of a line several arms share: the arm's own for one; for cells of one arm
    the arm, the grid values all of them share, and how many ('deblur__blur_sigma0-3.0,
    3 cells'); else the arms, or the first and how many more when they are many."""
    if len(group) == 1:
        return group[0]
    parts = [a.split("__") for a in group]
    if all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
        common = [seg for seg in parts[0][1:] if all(seg in p[1:] for p in parts)]
        return f"{'__'.join([parts[0][0], *common])}, {len(group)} cells"
    names = ", ".join(group)
    return names if len(names) <= 40 else f"{group[0]} and {len(group) - 1} more"


def schedule_plot(plans: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """One panel per scheduled quantity, one line per distinct plan against epoch: arms
    (a grid's cells) with the same plan share one line, labelled with how many; each epoch
    is a step from e − ½ to e + ½, so the last epoch has its width; lines drawn earlier are
    wider, so one another covers still shows at its edges."""
    plt = pyplot()
    keys = [k for k in ("image_size", "sigma", "blur_n", "blur_mix", "dropout", "lr")
            if any(k in r for rows in plans.values() for r in rows)]
    colors = arm_colors(list(plans))
    last = max((r["epoch"] for rows in plans.values() for r in rows), default=1)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, k in zip(axes[0], keys):
        groups = same_plans(plans, k)
        for i, (first, group) in enumerate(groups.items()):
            pts = [(r["epoch"], r[k]) for r in plans[first] if k in r]
            xs = [e - 0.5 for e, _ in pts] + [pts[-1][0] + 0.5]
            ys = [v for _, v in pts] + [pts[-1][1]]
            width = 1.3 + 2.2 * (len(groups) - 1 - i) / max(len(groups) - 1, 1)
            label = f"every arm ({len(plans)})" if len(group) == len(plans) > 1 else \
                group_label(group)
            ax.step(xs, ys, where="post", label=label,
                    color=colors[first], linewidth=width)
        has = sum(len(g) for g in groups.values())
        ax.set(title=k if has == len(plans) else f"{k} ({has} of {len(plans)} arms; the "
               "others have none)", xlabel="epoch")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.margins(y=0.12)
        epoch_axis(ax, last, spans=True)
        ax.grid(alpha=0.25, linewidth=0.5)
    fig.tight_layout()
    for ax in axes[0]:  # under each panel, after the layout (which would shrink the panel
        # for it): a legend of many cells on the panel would cover its steps
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.22), frameon=False)
    return save_png(fig, path)
