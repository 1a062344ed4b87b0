"""Figures of curricula: the blurred-copies strip (paper 000), the σ strip (paper 001) and the
schedule plot. Written as PNG, atomically."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sharpen.io import atomic_write_bytes


def pyplot():  # noqa: ANN201 - matplotlib's pyplot module, headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {a: cmap(i % cmap.N) for i, a in enumerate(arms)}


def integer_epochs(ax: Any) -> None:
    """Whole-number epoch ticks, however short the run."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _show(ax: Any, img: torch.Tensor) -> None:
    img = img.float().clamp(0, 255) / 255
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def blur_strip(images: torch.Tensor, kernel_sizes: Sequence[int], path: Path,
               padding: str = "reflect") -> Path:
    """Paper 000's figure: each row an image, columns the original then kernel_n for each n."""
    from sharpen.imageops import box_blur

    plt = pyplot()
    cols = ["original"] + [f"kernel_{n}" for n in kernel_sizes]
    fig, axes = plt.subplots(len(images), len(cols), figsize=(1.4 * len(cols), 1.4 * len(images)),
                             squeeze=False)
    x = images.float()
    for j, title in enumerate(cols):
        y = x if j == 0 else box_blur(x, kernel_sizes[j - 1], padding)
        for i in range(len(images)):
            _show(axes[i][j], y[i])
        axes[0][j].set_title(title, fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def sigma_strip(images: torch.Tensor, sigmas: Sequence[float], path: Path,
                padding: str = "reflect") -> Path:
    """Paper 001's figure: images Gaussian-blurred at each σ of the schedule."""
    from sharpen.imageops import gaussian_blur

    plt = pyplot()
    fig, axes = plt.subplots(len(images), len(sigmas), figsize=(1.4 * len(sigmas), 1.4 * len(images)),
                             squeeze=False)
    x = images.float()
    for j, s in enumerate(sigmas):
        y = gaussian_blur(x, s, padding)
        for i in range(len(images)):
            _show(axes[i][j], y[i])
        axes[0][j].set_title(f"σ = {s:g}", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def schedule_plot(plans: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """One panel per scheduled quantity, one line per arm, against epoch."""
    plt = pyplot()
    keys = [k for k in ("image_size", "sigma", "blur_n", "blur_mix", "dropout", "lr")
            if any(k in r for rows in plans.values() for r in rows)]
    colors = arm_colors(list(plans))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for arm, rows in plans.items():
            pts = [(r["epoch"], r[k]) for r in rows if k in r]
            if pts:
                ax.step(*zip(*pts), where="post", label=arm, color=colors[arm])
        ax.set(title=k, xlabel="epoch")
        integer_epochs(ax)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_png(fig, path)
