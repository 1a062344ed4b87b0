"""Cutout (DeVries & Taylor 2017): zero a square patch at a random centre of each image."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def cutout(x: torch.Tensor, size: int, centres: torch.Tensor) -> torch.Tensor:
    """Zero (after normalisation: the dataset mean) a ``size``×``size`` square centred at
    ``centres[n]`` = (cy, cx) of image n, clipped at the borders; a centre of (-size, -size)
    or further out leaves the image alone. Rows cy − size//2 … cy − size//2 + size − 1."""
    n, _, H, W = x.shape
    c = centres.to(x.device)
    top, left = c[:, 0] - size // 2, c[:, 1] - size // 2
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + size).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + size).view(n, 1, 1)))
    return x.masked_fill(mask.unsqueeze(1), 0.0)


def cutout_centres(n: int, H: int, W: int, size: int, p: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """N×2 centres uniform over the image with probability p, else far outside it."""
    cy = torch.randint(0, H, (n,), generator=generator)
    cx = torch.randint(0, W, (n,), generator=generator)
    off = torch.rand(n, generator=generator) >= p
    c = torch.stack([cy, cx], 1)
    c[off] = -2 * size - max(H, W)
    return c


class Cutout(Technique):
    """Apply :func:`cutout` to training batches; each seed draws from its ``cutout`` stream."""

    name = "cutout"
    plan_columns = ("cutout_p",)
    idle_at = {"cutout_p": 0.0}

    class Config(BaseModel):
        cutout_size: int = Field(0, ge=0, description="cutout: side of the zeroed square "
                                 "in pixels (0 = off)")
        cutout_p: ScheduleLike = Field(1.0, description="cutout: probability per image")

    def __init__(self, size: int, p: ScheduleLike = 1.0):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size, self.p = size, as_schedule(p)

    @classmethod
    def from_config(cls, cfg: Any) -> Cutout | None:
        return cls(cfg.cutout_size, cfg.cutout_p) if cfg.cutout_size else None

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.cutout_p, f"{where}cutout_p", cfg.epochs, lo=0.0, hi=1.0)
        if cfg.cutout_size > side:
            raise SharpenError(f"field {where}cutout_size: {cfg.cutout_size} is larger than "
                               f"the image side ({side})")

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"cutout_p": float(self.p.value(epoch, epochs))}

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        p = state.now(self.p)
        B, H, W = x.shape[0] // state.n_seeds, x.shape[-2], x.shape[-1]
        c = torch.cat([cutout_centres(B, H, W, self.size, p, g)
                       for g in state.generators("cutout")])
        return cutout(x, self.size, c), y
