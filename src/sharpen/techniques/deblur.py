"""Paper 001, Algorithm 1: randomized deblurring — each batch Gaussian-blurred with σ_e
with probability α_e."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from sharpen.imageops import gaussian_blur
from sharpen.techniques.base import BlurPadding, Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


class RandomizedDeblur(Technique):
    """Each seed draws its β per batch from its own ``deblur`` stream (one draw every
    batch, blurred or not, so the stream never depends on σ); its batch is blurred when
    σ > 0 and β ≤ α. ``blurred_batches`` counts, per seed, the batches blurred so far."""

    name = "deblur"
    plan_columns = ("sigma", "blur_p")
    stage_columns = ("sigma",)
    data_figure = ("sigma_strip.png", "Gaussian blur at each σ of the schedule (paper 001)")
    idle_at = {"sigma": 0.0, "blur_p": 0.0}

    class Config(BlurPadding):
        # paper 001: Gaussian σ per epoch
        blur_sigma: ScheduleLike | Literal["decay"] | None = Field(None,
            description="paper 001: Gaussian blur σ of training batches per epoch (0 = sharp), "
            "or 'decay': blur_sigma0, then −0.5 every 2 epochs down to 0 (the paper's)")
        # blur_sigma = "decay": the paper's schedule from this start (a grid can vary it)
        blur_sigma0: float = Field(2.0, gt=0, description="blur_sigma = 'decay': the first "
                                   "σ (the paper's 2.0), then −0.5 every 2 epochs down to 0")
        # paper 001: probability α that a batch is blurred
        blur_p: ScheduleLike = Field(1.0,
            description="paper 001: probability α that a training batch is blurred")

    def __init__(self, sigma: ScheduleLike, p: ScheduleLike = 1.0, padding: str = "reflect"):
        self.sigma, self.p, self.padding = as_schedule(sigma), as_schedule(p), padding
        self._sigma = self._p = 0.0
        self.blurred_batches: list[int] = []

    @classmethod
    def figure_images(cls, images: torch.Tensor, plans: dict[str, list[dict[str, Any]]],
                      cfg: Any) -> tuple[list[str], torch.Tensor] | None:
        """One column per σ any arm's plan uses, largest first, the sharp image last."""
        sig = {r["sigma"] for rows in plans.values() for r in rows if "sigma" in r}
        if not sig:
            return None
        sigmas, x = sorted(sig | {0.0}, reverse=True), images.float()
        return ([f"σ = {s:g}" for s in sigmas],
                torch.stack([gaussian_blur(x, s, cfg.padding) for s in sigmas]))

    @staticmethod
    def schedule_of(cfg: Any) -> Any:
        """The run's σ schedule: ``blur_sigma`` itself, or for ``"decay"`` the paper's step
        schedule from ``blur_sigma0`` (−0.5 every 2 epochs, down to 0)."""
        if cfg.blur_sigma != "decay":
            return cfg.blur_sigma
        return {"kind": "step", "start": cfg.blur_sigma0, "delta": -0.5, "every": 2, "min": 0.0}

    @classmethod
    def from_config(cls, cfg: Any) -> RandomizedDeblur | None:
        if cfg.blur_sigma is None:
            return None
        return cls(cls.schedule_of(cfg), cfg.blur_p, cfg.padding)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        if cfg.blur_sigma is not None:
            check_schedule(as_schedule(cls.schedule_of(cfg)), f"{where}blur_sigma", cfg.epochs,
                           lo=0.0)
            check_schedule(cfg.blur_p, f"{where}blur_p", cfg.epochs, lo=0.0, hi=1.0)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"sigma": float(self.sigma.value(epoch, epochs)),
                "blur_p": float(self.p.value(epoch, epochs))}

    def on_epoch_start(self, state: TrainState) -> None:
        values = self.plan(state.epoch, state.epochs)
        self._sigma, self._p = values["sigma"], values["blur_p"]
        if len(self.blurred_batches) != state.n_seeds:
            self.blurred_batches = [0] * state.n_seeds
        state.extra.update(values)

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        beta = state.rand("deblur")  # E draws, one per seed: fixed streams
        hit = [e for e in range(state.n_seeds) if self._sigma > 0 and float(beta[e]) <= self._p]
        if not hit:
            return x, y
        for e in hit:
            self.blurred_batches[e] += 1
        # each seed's batch blurred by its own call, the one it makes training alone: the
        # blur's matrix products take all rows of a call as one batch, and a product's
        # rounding may depend on its row count
        parts = [gaussian_blur(xe, self._sigma, self.padding) if e in hit else xe
                 for e, xe in enumerate(state.per_seed(x).unbind(0))]
        return (parts[0] if state.n_seeds == 1 else torch.cat(parts)), y
