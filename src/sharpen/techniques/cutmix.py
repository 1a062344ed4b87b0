"""CutMix (Yun et al. 2019): paste a box from another image of the batch; the targets mix
in proportion to the pasted area."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, Field

from sharpen.techniques.mixup import BatchMixing
from sharpen.training.schedules import ScheduleLike


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


class CutMix(BatchMixing):
    """Per seed and batch: with probability ``cutmix_p`` draw λ ~ Beta(α, α), a centre and
    a permutation from the seed's ``cutmix`` stream and apply :func:`cutmix`."""

    name = "cutmix"
    alpha_key, p_key = "cutmix_alpha", "cutmix_p"
    plan_columns = ("cutmix_alpha", "cutmix_p")
    idle_at = {"cutmix_alpha": 0.0, "cutmix_p": 0.0}

    class Config(BaseModel):
        cutmix_alpha: ScheduleLike = Field(0.0, description="cutmix: λ ~ Beta(α, α) sets the "
                                           "box (0 = off; 1 is usual)")
        cutmix_p: ScheduleLike = Field(1.0, description="cutmix: probability per batch")

    def draw(self, g: torch.Generator, H: int, W: int) -> tuple[int, int]:
        return (int(torch.randint(0, H, (1,), generator=g)),
                int(torch.randint(0, W, (1,), generator=g)))

    def mix(self, x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor,
            drawn: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        H, W = x.shape[-2:]
        out, mixed, _ = cutmix(x, y, cutmix_box(lam, H, W, *drawn), perm)
        return out, mixed
