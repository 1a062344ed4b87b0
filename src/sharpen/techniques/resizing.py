"""Paper 001: progressive resizing — train on images resized to ``image_size`` per epoch."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.imageops import resize
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


class ProgressiveResize(Technique):
    """Evaluation stays at full size (the network is fully convolutional)."""

    name = "resizing"
    plan_columns = ("image_size",)
    stage_columns = ("image_size",)
    stage_rank = 1  # beside a blur curriculum (paper 001), the blur's σ names the stages

    class Config(BaseModel):
        # paper 001: training image side per epoch
        image_size: ScheduleLike | None = Field(None,
            description="paper 001: side of the training images per epoch (progressive resizing)")

    def __init__(self, size: ScheduleLike):
        self.size = as_schedule(size)
        self._s = 0

    @classmethod
    def from_config(cls, cfg: Any) -> ProgressiveResize | None:
        return cls(cfg.image_size) if cfg.image_size is not None else None

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        if cfg.image_size is not None:
            check_schedule(cfg.image_size, f"{where}image_size", cfg.epochs, lo=1, hi=side, integer=True)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"image_size": int(round(self.size.value(epoch, epochs)))}

    def on_epoch_start(self, state: TrainState) -> None:
        values = self.plan(state.epoch, state.epochs)
        self._s = values["image_size"]
        state.extra.update(values)

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return resize(x, self._s), y
