"""Curriculum figures of an experiment: the schedule plot, the blurred-copies strip and the
σ strip, drawn from the techniques' own plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpen.data import get_spec


def curriculum_figures(exp: Any, out: Path) -> list[Path]:
    """The blurred-copies strip, the σ strip and the schedule plot, for curriculum arms."""
    from sharpen.data.prepare import load_cached
    from sharpen.reports.figures import blur_strip, schedule_plot, sigma_strip
    from sharpen.techniques import schedule_rows

    plans = {arm: schedule_rows(c) for arm, c in exp.arms.items()}
    cur = [c for c in exp.arms.values()
           if c.blur_n is not None or c.blur_sigma is not None or c.image_size is not None]
    if not cur:
        return []
    made = [schedule_plot(plans, out / "schedule.png")]
    c0 = cur[0]
    if get_spec(c0.dataset).format == "synthetic-waves" or len(get_spec(c0.dataset).shape) != 3:
        return made
    x, y = load_cached(c0, "train")
    pick = [int((y == k).nonzero()[0]) for k in range(min(4, int(y.max()) + 1)) if (y == k).any()]
    imgs = x[pick]
    ns = sorted({r["blur_n"] for rows in plans.values() for r in rows if "blur_n" in r} - {1},
                reverse=True)
    if ns:
        made.append(blur_strip(imgs, [1, *sorted(ns)], out / "blur_strip.png", c0.padding))
    sig = {r["sigma"] for rows in plans.values() for r in rows if "sigma" in r}
    if sig:
        sig = sorted(sig | {0.0}, reverse=True)  # the unblurred image as the last column
        made.append(sigma_strip(imgs, sig, out / "sigma_strip.png", c0.padding))
    return made
