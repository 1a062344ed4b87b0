"""The per-epoch plan of every scheduled quantity of a run, computed without training."""

from __future__ import annotations

from typing import Any

from sharpen.training.schedules import as_schedule

PLAN_COLUMNS = ["epoch", "image_size", "sigma", "blur_p", "blur_n", "blur_mix", "dropout", "lr",
                "weight_decay"]


def schedule_rows(cfg: Any) -> list[dict[str, Any]]:
    """One row per epoch (numbered from 1) with the scheduled quantities that apply to ``cfg``.

    With ``lr_adaptive`` the lr shown is the schedule before any adaptive halving, which
    depends on the losses and is known only after training (see metrics.csv).
    """
    items: dict[str, Any] = {}
    if cfg.image_size is not None:
        items["image_size"] = cfg.image_size
    if cfg.blur_sigma is not None:
        items["sigma"], items["blur_p"] = cfg.blur_sigma, cfg.blur_p
    if cfg.blur_n is not None:
        items["blur_n"] = cfg.blur_n
        if cfg.blur_mode == "mixed":
            items["blur_mix"] = cfg.blur_mix
    if cfg.dropout is not None:
        items["dropout"] = cfg.dropout
    items["lr"] = cfg.lr
    if not isinstance(cfg.weight_decay, (int, float)) or cfg.weight_decay:
        items["weight_decay"] = cfg.weight_decay
    rows = []
    for e in range(cfg.epochs):
        row: dict[str, Any] = {"epoch": e + 1}
        for k, s in items.items():
            v = as_schedule(s).value(e, cfg.epochs)
            row[k] = int(round(v)) if k in ("image_size", "blur_n") else v
        rows.append(row)
    return rows
