"""Scheduled dropout: the rate of every Dropout module, per epoch (no model rebuild)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule
from sharpen.training.stack import SeededDropout


class ScheduledDropout(Technique):
    name = "dropout"
    plan_columns = ("dropout",)

    class Config(BaseModel):
        # rate of every Dropout module, per epoch
        dropout: ScheduleLike | None = Field(None,
            description="rate of every Dropout layer per epoch (overrides the model's)")

    def __init__(self, rate: ScheduleLike):
        self.rate = as_schedule(rate)

    @classmethod
    def from_config(cls, cfg: Any) -> ScheduledDropout | None:
        return cls(cfg.dropout) if cfg.dropout is not None else None

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        if cfg.dropout is not None:
            check_schedule(cfg.dropout, f"{where}dropout", cfg.epochs, lo=0.0, hi=1.0, hi_open=True)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"dropout": float(self.rate.value(epoch, epochs))}

    def on_epoch_start(self, state: TrainState) -> None:
        values = self.plan(state.epoch, state.epochs)
        p = values["dropout"]
        if not 0 <= p < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {p} at epoch {state.epoch + 1}")
        for m in state.model.modules():
            if isinstance(m, SeededDropout):
                m.p = p
        state.extra.update(values)
