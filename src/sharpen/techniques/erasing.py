"""Random erasing (Zhong et al. 2017; paper 003): one noise-filled box per image."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState


def random_erasing(x: torch.Tensor, p: float = 0.5, area: tuple[float, float] = (0.02, 0.33),
                   aspect: tuple[float, float] = (0.3, 3.3), generator: torch.Generator | None = None,
                   attempts: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase one random box per image with probability ``p``; fill it with N(0, 1) noise.

    Per image: area fraction ~ U(area), aspect ratio log-uniform in ``aspect``, box
    h = round(√(A·r)), w = round(√(A/r)); the first of ``attempts`` draws that fits is used
    (none fits: the image is left alone), position uniform. All images are handled at once
    on x's device. Returns (erased x, boxes N×4 as top, left, h, w; h = 0 where untouched).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not (0 < area[0] <= area[1] <= 1) or not (0 < aspect[0] <= aspect[1]):
        raise ValueError(f"need 0 < area_lo <= area_hi <= 1 and 0 < aspect_lo <= aspect_hi; "
                         f"got area {area}, aspect {aspect}")
    n, _, H, W = x.shape
    g = generator

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    apply = u(n) < p
    a = (area[0] + (area[1] - area[0]) * u(n, attempts)) * H * W
    r = torch.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * u(n, attempts))
    h = torch.sqrt(a * r).round().long()
    w = torch.sqrt(a / r).round().long()
    fits = (h >= 1) & (w >= 1) & (h < H) & (w < W)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    ok = apply & (first >= 0)
    pick = first.clamp(min=0).view(-1, 1)
    h, w = h.gather(1, pick).squeeze(1) * ok, w.gather(1, pick).squeeze(1) * ok
    top = (u(n) * (H - h + 1).float()).floor().long().clamp(max=H - 1)
    left = (u(n) * (W - w + 1).float()).floor().long().clamp(max=W - 1)
    boxes = torch.stack([top, left, h, w], 1)
    bd = boxes.to(x.device)
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    mask = ((rows >= bd[:, 0, None, None]) & (rows < (bd[:, 0] + bd[:, 2])[:, None, None])
            & (cols >= bd[:, 1, None, None]) & (cols < (bd[:, 1] + bd[:, 3])[:, None, None]))
    noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    return torch.where(mask.unsqueeze(1), noise, x), boxes


class RandomErasing(Technique):
    """Apply :func:`random_erasing` to every training batch (never at evaluation); each
    seed's images draw from that seed's ``erasing`` stream."""

    name = "erasing"

    class Config(BaseModel):
        # paper 003: p 0.5, area 0.02-0.33, aspect 0.3-3.3, noise fill
        random_erasing: bool = Field(False,
            description="paper 003's random erasing: one noise-filled box per training image")
        erase_p: float = Field(0.5, ge=0, le=1, description="random erasing: probability per image")
        erase_area: tuple[float, float] = Field((0.02, 0.33),
            description="random erasing: (min, max) share of the image area")
        erase_aspect: tuple[float, float] = Field((0.3, 3.3),
            description="random erasing: (min, max) aspect ratio, log-uniform")

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.33),
                 aspect: tuple[float, float] = (0.3, 3.3)):
        self.p, self.area, self.aspect = p, tuple(area), tuple(aspect)

    @classmethod
    def from_config(cls, cfg: Any) -> RandomErasing | None:
        if not cfg.random_erasing:
            return None
        return cls(cfg.erase_p, cfg.erase_area, cfg.erase_aspect)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        lo_a, hi_a = cfg.erase_area
        if not (0 < lo_a <= hi_a <= 1) or not (0 < cfg.erase_aspect[0] <= cfg.erase_aspect[1]):
            raise SharpenError(f"fields {where}erase_area / erase_aspect: need "
                               f"0 < lo <= hi <= 1 for the area and 0 < lo <= hi for the aspect; "
                               f"got {cfg.erase_area}, {cfg.erase_aspect}")

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        gens = state.generators("erasing")
        parts = [random_erasing(xe, self.p, self.area, self.aspect, g)[0]
                 for xe, g in zip(state.per_seed(x).unbind(0), gens)]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)), y
