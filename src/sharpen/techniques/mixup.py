"""Mixup (Zhang et al. 2018): train on convex combinations of two images and their
targets, x' = λ·x + (1 − λ)·x[π], y' = λ·y + (1 − λ)·y[π], λ ~ Beta(α, α) per batch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def soft_targets(y: torch.Tensor, classes: int) -> torch.Tensor:
    """Labels N → one-hot N×K floats; soft targets pass through."""
    return y if y.dim() == 2 else F.one_hot(y, classes).float()


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with sample ``perm[n]``: λ·x + (1 − λ)·x[perm], same for soft
    targets y (N×K). Pixel and target totals are kept (perm is a permutation)."""
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def beta_draw(alpha: float, u: float) -> float:
    """λ ~ Beta(α, α) by inverting its CDF at a uniform u (seeded through u)."""
    from scipy.special import betaincinv  # lazy: heavy: scipy.special (~0.55 s), for mixup alone

    return float(betaincinv(alpha, alpha, u))


def mix_targets_check(cfg: Any, where: str, key: str) -> None:
    if cfg.pairs is not None or cfg.loss != "cross_entropy":
        raise SharpenError(f"field {where}{key}: mixed targets need a classification task "
                           "with loss = 'cross_entropy' (not digit pairs, not nll)")


class BatchMixing(Technique):
    """What mixup and CutMix share: α and p schedules, soft targets, and per seed and batch
    the draws u (apply? and λ through the Beta CDF) and a permutation from the seed's own
    stream. A subclass names its keys and says how one seed's batch is mixed."""

    alpha_key = p_key = ""

    def __init__(self, alpha: ScheduleLike, p: ScheduleLike = 1.0):
        self.alpha, self.p = as_schedule(alpha), as_schedule(p)

    @classmethod
    def from_config(cls, cfg: Any) -> BatchMixing | None:
        a = getattr(cfg, cls.alpha_key)
        return None if a == 0 else cls(a, getattr(cfg, cls.p_key))

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        a = getattr(cfg, cls.alpha_key)
        check_schedule(a, f"{where}{cls.alpha_key}", cfg.epochs, lo=0.0)
        check_schedule(getattr(cfg, cls.p_key), f"{where}{cls.p_key}", cfg.epochs, lo=0.0, hi=1.0)
        if a != 0:
            mix_targets_check(cfg, where, cls.alpha_key)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {self.alpha_key: float(self.alpha.value(epoch, epochs)),
                self.p_key: float(self.p.value(epoch, epochs))}

    def draw(self, g: torch.Generator, H: int, W: int) -> Any:
        """Draws of the mix beyond u and the permutation (made before the permutation)."""
        return None

    def mix(self, x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor,
            drawn: Any) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, p = state.now(self.alpha), state.now(self.p)
        y = soft_targets(y, state.data[0].num_classes())
        H, W = x.shape[-2:]
        xs, ys = [], []
        for xe, ye, g in zip(state.per_seed(x).unbind(0), state.per_seed(y).unbind(0),
                             state.generators(self.name)):
            u = torch.rand(2, generator=g)
            drawn = self.draw(g, H, W)
            perm = torch.randperm(len(xe), generator=g).to(x.device)
            if alpha > 0 and u[0] < p:
                xe, ye = self.mix(xe, ye, beta_draw(alpha, float(u[1])), perm, drawn)
            xs.append(xe)
            ys.append(ye)
        return torch.cat(xs), torch.cat(ys)


class Mixup(BatchMixing):
    """Per seed and batch: with probability ``mixup_p`` draw λ ~ Beta(α, α) and a
    permutation from the seed's ``mixup`` stream and apply :func:`mixup`. Targets become
    soft (N×K); the classification loss is the cross-entropy against them."""

    name = "mixup"
    alpha_key, p_key = "mixup_alpha", "mixup_p"
    plan_columns = ("mixup_alpha", "mixup_p")
    idle_at = {"mixup_alpha": 0.0, "mixup_p": 0.0}

    class Config(BaseModel):
        mixup_alpha: ScheduleLike = Field(0.0, description="mixup: λ ~ Beta(α, α) (0 = off; "
                                          "0.2 to 1 are usual)")
        mixup_p: ScheduleLike = Field(1.0, description="mixup: probability per batch")

    def mix(self, x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor,
            drawn: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return mixup(x, y, lam, perm)
