"""CutMix (Yun et al. 2019): paste a box from another image of the batch; the targets mix
in proportion to the pasted area."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.techniques.mixup import beta_draw, mix_targets_check, soft_targets
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def cutmix_box(lam: float, H: int, W: int, cy: int, cx: int) -> tuple[int, int, int, int]:
    """The box (top, left, bottom, right) of side ratio √(1 − λ) centred at (cy, cx),
    clipped to the image (the reference implementation's rule)."""
    r = math.sqrt(1.0 - lam)
    ch, cw = int(H * r), int(W * r)
    top, bottom = min(max(cy - ch // 2, 0), H), min(max(cy + ch // 2, 0), H)
    left, right = min(max(cx - cw // 2, 0), W), min(max(cx + cw // 2, 0), W)
    return top, left, bottom, right


def cutmix(x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int],
           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste ``box`` of image ``perm[n]`` into image n; soft targets (N×K) mix by the
    pasted share of pixels: y' = λ·y + (1 − λ)·y[perm], λ = 1 − box area / image area.
    Returns (x', y', λ)."""
    top, left, bottom, right = box
    H, W = x.shape[-2:]
    out = x.clone()
    out[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (H * W)
    return out, lam * y + (1 - lam) * y[perm], lam


class CutMix(Technique):
    """Per seed and batch: with probability ``cutmix_p`` draw λ ~ Beta(α, α), a centre and
    a permutation from the seed's ``cutmix`` stream and apply :func:`cutmix`."""

    name = "cutmix"
    plan_columns = ("cutmix_alpha", "cutmix_p")

    class Config(BaseModel):
        cutmix_alpha: ScheduleLike = Field(0.0, description="cutmix: λ ~ Beta(α, α) sets the "
                                           "box (0 = off; 1 is usual)")
        cutmix_p: ScheduleLike = Field(1.0, description="cutmix: probability per batch")

    def __init__(self, alpha: ScheduleLike, p: ScheduleLike = 1.0):
        self.alpha, self.p = as_schedule(alpha), as_schedule(p)

    @classmethod
    def from_config(cls, cfg: Any) -> CutMix | None:
        return None if cfg.cutmix_alpha == 0 else cls(cfg.cutmix_alpha, cfg.cutmix_p)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.cutmix_alpha, f"{where}cutmix_alpha", cfg.epochs, lo=0.0)
        check_schedule(cfg.cutmix_p, f"{where}cutmix_p", cfg.epochs, lo=0.0, hi=1.0)
        if cfg.cutmix_alpha != 0:
            mix_targets_check(cfg, where, "cutmix_alpha")

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"cutmix_alpha": float(self.alpha.value(epoch, epochs)),
                "cutmix_p": float(self.p.value(epoch, epochs))}

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, p = state.now(self.alpha), state.now(self.p)
        y = soft_targets(y, state.data[0].num_classes())
        H, W = x.shape[-2:]
        xs, ys = [], []
        for xe, ye, g in zip(state.per_seed(x).unbind(0), state.per_seed(y).unbind(0),
                             state.generators("cutmix")):
            u = torch.rand(2, generator=g)
            cy = int(torch.randint(0, H, (1,), generator=g))
            cx = int(torch.randint(0, W, (1,), generator=g))
            perm = torch.randperm(len(xe), generator=g).to(x.device)
            if alpha > 0 and u[0] < p:
                box = cutmix_box(beta_draw(alpha, float(u[1])), H, W, cy, cx)
                xe, ye, _ = cutmix(xe, ye, box, perm)
            xs.append(xe)
            ys.append(ye)
        return torch.cat(xs), torch.cat(ys)
