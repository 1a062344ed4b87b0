"""Techniques: each owns its config keys, their validation, whether it stacks across seeds,
and its per-epoch plan (the plan the hook applies and ``sharpen schedule`` prints).

Adding a technique: write its file (a :class:`Technique` subclass) and add it to
``TECHNIQUES`` below; its keys then appear in experiment files, in validation, in
``sharpen schedule`` and in stacked-seed planning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpen.data import get_spec
from sharpen.data.prepare import load_cached
from sharpen.errors import SharpenError
from sharpen.io import atomic_write_npz
from sharpen.plugins import load_target, plugins
from sharpen.techniques.base import RunFigure, Technique
from sharpen.techniques.blurpool import BlurPool, add_blurpool, blur_downsample
from sharpen.techniques.crop import RandomCrop, random_crop
from sharpen.techniques.cutmix import CutMix, cutmix
from sharpen.techniques.cutout import Cutout, cutout
from sharpen.techniques.deblur import RandomizedDeblur
from sharpen.techniques.dropout import ScheduledDropout
from sharpen.techniques.ema import EMA
from sharpen.techniques.erasing import RandomErasing, random_erasing
from sharpen.techniques.flip import HorizontalFlip, hflip
from sharpen.techniques.gradclip import GradClip, clip_grad_norm_per_seed
from sharpen.techniques.gradflow import GradientFlow, gradient_flow, weight_layers
from sharpen.techniques.lr_adaptive import LrAdaptive
from sharpen.techniques.mixup import Mixup, mixup
from sharpen.techniques.resizing import ProgressiveResize
from sharpen.techniques.sharpening import ProgressiveSharpening, blurred_copy
from sharpen.techniques.smoothing import LabelSmoothing, smooth_loss
from sharpen.training.loop import Hook
from sharpen.training.schedules import as_schedule

# the registry, in the order hooks run: model changes, dropout, curricula, per-image
# augmentations, batch mixing, loss terms, gradient and weight handling, the lr, diagnostics
TECHNIQUES: tuple[type[Technique], ...] = (
    BlurPool, ScheduledDropout, ProgressiveSharpening, ProgressiveResize, RandomizedDeblur,
    RandomCrop, HorizontalFlip, RandomErasing, Cutout, Mixup, CutMix, LabelSmoothing,
    GradClip, EMA, LrAdaptive, GradientFlow,
)


def _plugin_techniques() -> tuple[type[Technique], ...]:
    """Techniques installed packages register under the ``sharpen.techniques`` entry point."""
    out = []
    for name, cls in plugins("sharpen.techniques").items():
        if not (isinstance(cls, type) and issubclass(cls, Technique)):
            raise SharpenError(f"entry point {name!r} in group 'sharpen.techniques' is "
                               f"{cls!r}, not a sharpen Technique subclass")
        out.append(cls)
    return tuple(out)


TECHNIQUES = TECHNIQUES + _plugin_techniques()


def user_hooks(cfg: Any) -> list[Any]:
    """The ``hooks = [{ target = "pkg.mod:MyHook", args = {...} }]`` of a run, built."""
    out = []
    for i, spec in enumerate(getattr(cfg, "hooks", None) or []):
        where = f"field hooks[{i}]"
        cls = load_target(spec.target, where)
        try:
            hook = cls(**spec.args)
        except TypeError as exc:
            raise SharpenError(f"{where}: {spec.target}(**{spec.args}) failed: {exc}") from None
        if not isinstance(hook, Hook):
            raise SharpenError(f"{where}: {spec.target} built a {type(hook).__name__}; a hook "
                               "must subclass sharpen.training.Hook")
        if not getattr(hook, "name", ""):
            hook.name = spec.target
        out.append(hook)
    return out


def techniques_for(cfg: Any) -> list[Technique]:
    """Every technique a run configuration asks for, in registry order, then its own hooks."""
    return [t for cls in TECHNIQUES if (t := cls.from_config(cfg)) is not None] + user_hooks(cfg)


def idle_warnings(arms: dict[str, Any]) -> list[str]:
    """One line per (arm, technique) whose plan leaves every epoch unchanged: a technique
    the file asks for that does nothing in this run (a curriculum squeezed into too few
    epochs, a probability scheduled to 0)."""
    out = []
    for arm, cfg in arms.items():
        for t in techniques_for(cfg):
            if isinstance(t, Technique) and (keys := t.idle(cfg.epochs)):
                where = ", ".join(f"{k} = {t.idle_at[k]!r}" for k in keys)
                out.append(f"arm {arm!r}: {t.name or type(t).__name__} does nothing in this run: "
                           f"its plan has {where} in every one of its {cfg.epochs} epoch(s) "
                           f"(see `sharpen schedule ... --arm {arm}`)")
    return out


def plan_columns() -> list[str]:
    cols = ["epoch"]
    for cls in TECHNIQUES:
        cols.extend(cls.plan_columns)
    return cols + ["lr", "weight_decay"]


def schedule_rows(cfg: Any) -> list[dict[str, Any]]:
    """One row per epoch (numbered from 1): each technique's plan, then lr and weight decay.

    With ``lr_adaptive`` the lr shown is the schedule before any adaptive halving, which
    depends on the losses and is known only after training (see metrics.csv).
    """
    techs = techniques_for(cfg)
    lr, wd = as_schedule(cfg.lr), as_schedule(cfg.weight_decay)
    show_wd = not isinstance(cfg.weight_decay, (int, float)) or cfg.weight_decay
    rows = []
    for e in range(cfg.epochs):
        row: dict[str, Any] = {"epoch": e + 1}
        for t in techs:
            if isinstance(t, Technique):  # a user hook has no plan
                row.update(t.plan(e, cfg.epochs))
        row["lr"] = float(lr.value(e, cfg.epochs))
        if show_wd:
            row["weight_decay"] = float(wd.value(e, cfg.epochs))
        rows.append(row)
    return rows


def write_figure_data(arms: dict[str, Any], out: Path) -> dict[str, list[dict[str, Any]]]:
    """The numbers of the curriculum figures, for an experiment with a curriculum arm (one
    whose technique declares ``stage_columns``): every arm's per-epoch plan, returned (the
    schedule plot's), and each ``data_figure``'s images of one training image per class
    (the first four classes) under those plans, written into ``out`` as its
    ``data_figure_npz`` (:func:`sharpen.reports.curriculum.curriculum_figures` draws them).
    {} without a curriculum arm."""
    plans = {arm: schedule_rows(c) for arm, c in arms.items()}
    cur = [c for c in arms.values()
           if any(getattr(t, "stage_columns", ()) for t in techniques_for(c))]
    if not cur:
        return {}
    c0 = cur[0]
    if get_spec(c0.dataset).format == "synthetic-waves" or len(get_spec(c0.dataset).shape) != 3:
        return plans
    x, y = load_cached(c0, "train")
    pick = [int((y == k).nonzero()[0]) for k in range(min(4, int(y.max()) + 1)) if (y == k).any()]
    for tech in TECHNIQUES:
        if tech.data_figure is not None:
            made = tech.figure_images(x[pick], plans, c0)
            if made is not None:
                titles, images = made
                atomic_write_npz(Path(out) / tech.data_figure_npz(),
                                 {"titles": titles, "images": images.float().cpu().numpy()})
    return plans


__all__ = ["TECHNIQUES", "user_hooks", "idle_warnings", "Technique", "techniques_for",
           "schedule_rows", "plan_columns", "write_figure_data", "RunFigure",
           "ScheduledDropout", "ProgressiveSharpening", "ProgressiveResize", "RandomizedDeblur",
           "RandomErasing", "GradientFlow", "LrAdaptive", "random_erasing", "gradient_flow", "weight_layers",
           "blurred_copy", "BlurPool", "add_blurpool", "blur_downsample", "RandomCrop",
           "random_crop", "CutMix", "cutmix", "Cutout", "cutout", "EMA", "HorizontalFlip", "hflip",
           "GradClip", "clip_grad_norm_per_seed", "Mixup", "mixup", "LabelSmoothing",
           "smooth_loss"]
