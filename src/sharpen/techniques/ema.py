"""An exponential moving average of the weights (Polyak averaging), evaluated in place of
the raw weights at the end of every epoch and reported as its own columns."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState, evaluate


def ema_update(avg: list[torch.Tensor], current: list[torch.Tensor], decay: float) -> None:
    """avg ← decay·avg + (1 − decay)·current, in place (floating-point tensors; others
    are copied)."""
    with torch.no_grad():
        for a, c in zip(avg, current):
            if a.is_floating_point():
                a.lerp_(c, 1 - decay)
            else:
                a.copy_(c)


class EMA(Technique):
    """After every step: average the weights (and BatchNorm statistics) with ``ema_decay``;
    the first step starts the average at the weights themselves (as
    ``torch.optim.swa_utils.AveragedModel`` does). Stacked seeds average their own
    weights: every stacked tensor holds one slice per seed. Adds ``ema_val_acc``,
    ``ema_val_loss``, ``ema_test_acc``, ``ema_test_loss``."""

    name = "ema"
    plan_columns = ("ema_decay",)

    class Config(BaseModel):
        ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of the weights "
                                        "with this decay per step, evaluated as ema_* columns "
                                        "(None = off; 0.99 to 0.9999 are usual)")

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.avg: list[torch.Tensor] | None = None
        self._evals: tuple[int, dict[str, list[dict[str, float]]]] | None = None

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"ema_decay": self.decay}

    @classmethod
    def from_config(cls, cfg: Any) -> EMA | None:
        return None if cfg.ema_decay is None else cls(cfg.ema_decay)

    @staticmethod
    def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def on_step(self, state: TrainState) -> None:
        current = [t.detach() for t in self._tensors(state.model)]
        if self.avg is None:
            self.avg = [t.clone() for t in current]
        else:
            if self.avg[0].device != current[0].device:  # resumed from a CPU checkpoint
                self.avg = [a.to(c.device) for a, c in zip(self.avg, current)]
            ema_update(self.avg, current, self.decay)

    def _evaluate(self, state: TrainState) -> dict[str, list[dict[str, float]]]:
        live = self._tensors(state.model)
        saved = [t.detach().clone() for t in live]
        with torch.no_grad():
            for t, a in zip(live, self.avg or saved):
                t.copy_(a)
        try:
            return {name: evaluate(state.model, sp, state.norm, state.task,
                                   state.settings.eval_batch_size, state.eval_transform)
                    for name, sp in state.eval_splits()}
        finally:
            with torch.no_grad():
                for t, s in zip(live, saved):
                    t.copy_(s)

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if self._evals is None or self._evals[0] != state.epoch:  # once per epoch, all seeds
            self._evals = (state.epoch, self._evaluate(state))
        for name, per_seed in self._evals[1].items():
            row[f"ema_{name}_acc"] = per_seed[state.seed_index]["acc"]
            row[f"ema_{name}_loss"] = per_seed[state.seed_index]["loss"]

    def state_dict(self) -> dict[str, Any]:
        # the average is state, not a cache: a resumed run continues it exactly
        return {"decay": self.decay, "avg": None if self.avg is None
                else [a.detach().cpu().clone() for a in self.avg]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, avg = state["decay"], state["avg"]
        self.avg = None if avg is None else [a.clone() for a in avg]
        self._evals = None
