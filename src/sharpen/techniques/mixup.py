"""Mixup (Zhang et al. 2018): train on convex combinations of two images and their
targets, x' = λ·x + (1 − λ)·x[π], y' = λ·y + (1 − λ)·y[π], λ ~ Beta(α, α) per batch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from sharpen import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def soft_targets(y: torch.Tensor, classes: int) -> torch.Tensor:
    """Labels N → one-hot N×K floats; soft targets pass through."""
    return y if y.dim() == 2 else F.one_hot(y, classes).float()


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with sample ``perm[n]``: λ·x + (1 − λ)·x[perm], same for soft
    targets y (N×K). Pixel and target totals are kept (perm is a permutation)."""
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def beta_draw(alpha: float, u: float) -> float:
    """λ ~ Beta(α, α) by inverting its CDF at a uniform u (seeded through u)."""
    from scipy.special import betaincinv

    return float(betaincinv(alpha, alpha, u))


def mix_targets_check(cfg: Any, where: str, key: str) -> None:
    if cfg.pairs is not None or cfg.loss != "cross_entropy":
        raise SharpenError(f"field {where}{key}: mixed targets need a classification task "
                           "with loss = 'cross_entropy' (not digit pairs, not nll)")


class Mixup(Technique):
    """Per seed and batch: with probability ``mixup_p`` draw λ ~ Beta(α, α) and a
    permutation from the seed's ``mixup`` stream and apply :func:`mixup`. Targets become
    soft (N×K); the classification loss is the cross-entropy against them."""

    name = "mixup"
    plan_columns = ("mixup_alpha", "mixup_p")

    class Config(BaseModel):
        mixup_alpha: ScheduleLike = Field(0.0, description="mixup: λ ~ Beta(α, α) (0 = off; "
                                          "0.2 to 1 are usual)")
        mixup_p: ScheduleLike = Field(1.0, description="mixup: probability per batch")

    def __init__(self, alpha: ScheduleLike, p: ScheduleLike = 1.0):
        self.alpha, self.p = as_schedule(alpha), as_schedule(p)

    @classmethod
    def from_config(cls, cfg: Any) -> Mixup | None:
        return None if cfg.mixup_alpha == 0 else cls(cfg.mixup_alpha, cfg.mixup_p)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.mixup_alpha, f"{where}mixup_alpha", cfg.epochs, lo=0.0)
        check_schedule(cfg.mixup_p, f"{where}mixup_p", cfg.epochs, lo=0.0, hi=1.0)
        if cfg.mixup_alpha != 0:
            mix_targets_check(cfg, where, "mixup_alpha")

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"mixup_alpha": float(self.alpha.value(epoch, epochs)),
                "mixup_p": float(self.p.value(epoch, epochs))}

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, p = state.now(self.alpha), state.now(self.p)
        y = soft_targets(y, state.data[0].num_classes())
        xs, ys = [], []
        for xe, ye, g in zip(state.per_seed(x).unbind(0), state.per_seed(y).unbind(0),
                             state.generators("mixup")):
            u = torch.rand(2, generator=g)
            perm = torch.randperm(len(xe), generator=g).to(x.device)
            if alpha > 0 and u[0] < p:
                xe, ye = mixup(xe, ye, beta_draw(alpha, float(u[1])), perm)
            xs.append(xe)
            ys.append(ye)
        return torch.cat(xs), torch.cat(ys)
