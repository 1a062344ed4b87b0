"""Gradient clipping by global norm, per seed: what ``torch.nn.utils.clip_grad_norm_``
does to one model, done to each seed of a stacked model."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState


def clip_grad_norm_per_seed(params: list[torch.nn.Parameter], max_norm: float, seeds: int
                            ) -> torch.Tensor:
    """Scale each seed's gradients so that their global L2 norm is at most ``max_norm``.

    Every stacked parameter holds one slice per seed along dim 0, so seed e's norm is the
    root of the sum of squares of the e-th slices. The scale is min(1, max_norm/(norm +
    1e-6)), torch's rule. Returns the norms before clipping (one per seed).

    Each seed's sums run over its own slices, one reduction each, as when the seed trains
    alone: a reduction over all seeds' rows at once splits the work (and rounds)
    differently with the stack size and the thread count.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(seeds)
    sq = torch.stack([torch.stack([g[e].detach().float().pow(2).sum() for g in grads]).sum()
                      for e in range(seeds)])
    norms = sq.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype).view(-1, *[1] * (g.dim() - 1)))
    return norms


class GradClip(Technique):
    """Clip each seed's gradient norm to ``grad_clip`` before every optimizer step; the
    epoch's largest pre-clip norm is reported as ``grad_norm_max``."""

    name = "grad_clip"
    plan_columns = ("grad_clip",)

    class Config(BaseModel):
        grad_clip: float | None = Field(None, gt=0, description="clip each seed's global "
                                        "gradient norm to this before every step (None = off)")

    def __init__(self, max_norm: float):
        if max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        self.max_norm = max_norm

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"grad_clip": self.max_norm}

    @classmethod
    def from_config(cls, cfg: Any) -> GradClip | None:
        return None if cfg.grad_clip is None else cls(cfg.grad_clip)

    def on_epoch_start(self, state: TrainState) -> None:
        super().on_epoch_start(state)
        self._peak = torch.zeros(state.n_seeds)

    def on_before_step(self, state: TrainState) -> None:
        params = [p for p in state.model.parameters() if p.dim() >= 1]
        norms = clip_grad_norm_per_seed(params, self.max_norm, state.n_seeds)
        self._peak = torch.maximum(self._peak, norms.detach().cpu())

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        row["grad_norm_max"] = float(self._peak[state.seed_index])
