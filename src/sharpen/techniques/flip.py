"""Horizontal flip: mirror each image left-right with probability p."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Images n of N×C×H×W with ``flip[n]`` true, mirrored along the width."""
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


class HorizontalFlip(Technique):
    """Apply :func:`hflip` to training batches; each seed draws from its ``flip`` stream."""

    name = "flip"
    plan_columns = ("flip_p",)
    idle_at = {"flip_p": 0.0}

    class Config(BaseModel):
        flip_p: ScheduleLike = Field(0.0, description="horizontal flip: probability per "
                                     "image (0 = off; 0.5 is the usual)")

    def __init__(self, p: ScheduleLike = 0.5):
        self.p = as_schedule(p)

    @classmethod
    def from_config(cls, cfg: Any) -> HorizontalFlip | None:
        return None if cfg.flip_p == 0 else cls(cfg.flip_p)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.flip_p, f"{where}flip_p", cfg.epochs, lo=0.0, hi=1.0)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"flip_p": float(self.p.value(epoch, epochs))}

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        p = state.now(self.p)
        B = x.shape[0] // state.n_seeds
        flip = torch.cat([torch.rand(B, generator=g) < p for g in state.generators("flip")])
        return hflip(x, flip), y
