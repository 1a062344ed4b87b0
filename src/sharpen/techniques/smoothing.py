"""Label smoothing (Szegedy et al. 2016): cross-entropy against (1 − ε)·target + ε/K."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per sample, the cross-entropy against the uniform target: −mean_k log softmax."""
    return -F.log_softmax(logits.float(), dim=1).mean(1)


def smooth_loss(ce: torch.Tensor, logits: torch.Tensor, eps: float) -> torch.Tensor:
    """Smoothed cross-entropy from the plain one: (1 − ε)·CE + ε·CE(uniform), per sample —
    what ``F.cross_entropy(logits, y, label_smoothing=ε)`` computes, for hard or soft y."""
    return (1 - eps) * ce + eps * uniform_cross_entropy(logits)


class LabelSmoothing(Technique):
    """Smooth the training loss (never the evaluation loss) by ``label_smoothing`` ε."""

    name = "label_smoothing"
    plan_columns = ("label_smoothing",)
    idle_at = {"label_smoothing": 0.0}

    class Config(BaseModel):
        label_smoothing: ScheduleLike = Field(0.0, description="label smoothing ε of the "
                                              "training loss (0 = off; 0.1 is usual)")

    def __init__(self, eps: ScheduleLike):
        self.eps = as_schedule(eps)

    @classmethod
    def from_config(cls, cfg: Any) -> LabelSmoothing | None:
        return None if cfg.label_smoothing == 0 else cls(cfg.label_smoothing)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.label_smoothing, f"{where}label_smoothing", cfg.epochs, lo=0.0,
                       hi=1.0, hi_open=True)
        if cfg.label_smoothing != 0 and (cfg.pairs is not None or cfg.loss != "cross_entropy"):
            raise SharpenError(f"field {where}label_smoothing: needs a classification task "
                               "with loss = 'cross_entropy' (not digit pairs, not nll)")

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"label_smoothing": float(self.eps.value(epoch, epochs))}

    def on_loss(self, state: TrainState, loss: torch.Tensor, out: Any, y: torch.Tensor
                ) -> torch.Tensor:
        # the per-seed mean of smooth_loss, from the per-seed mean cross-entropy
        eps = state.now(self.eps)
        u = uniform_cross_entropy(out).view(state.n_seeds, -1).mean(1)
        return (1 - eps) * loss + eps * u
