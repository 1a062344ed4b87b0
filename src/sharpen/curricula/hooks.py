"""Curricula as thin training hooks: each only decides *when* and *how much*, from the
epoch's schedule values, and calls a pure operator from :mod:`sharpen.curricula.ops`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sharpen.curricula.ops import box_blur, gaussian_blur, resize
from sharpen.training.loop import Hook, TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule


def _aug_generator(state: TrainState, salt: int) -> torch.Generator:
    # augmentation randomness comes from the run seed, independent of data order and init
    return torch.Generator().manual_seed(state.seed * 1_000_003 + salt)


class ScheduledDropout(Hook):
    """Set the rate of every Dropout module each epoch (no model rebuild)."""

    seed_batchable = True  # acts on each sample on its own

    def __init__(self, rate: ScheduleLike):
        self.rate = as_schedule(rate)

    def on_epoch_start(self, state: TrainState) -> None:
        p = float(self.rate.value(state.epoch, state.epochs))
        if not 0 <= p < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {p} at epoch {state.epoch + 1}")
        for m in state.model.modules():
            if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d)):
                m.p = p
        state.extra["dropout"] = p


class ProgressiveSharpening(Hook):
    """Seed 000: train on box-blurred copies, most blurred first, ending on the original.

    ``blur_n`` is the kernel size per epoch (e.g. a step schedule 5 → 1). In ``staged`` mode
    the whole training set is swapped for its blurred copy, computed once per stage on the
    device. In ``mixed`` mode (the seed's future scope) each batch takes a fraction
    ``mix`` of its samples from the blurred copy and the rest from the original.
    """

    seed_batchable = True  # acts on each sample on its own

    def __init__(self, blur_n: ScheduleLike, mode: str = "staged", mix: ScheduleLike = 0.5,
                 padding: str = "reflect", chunk: int = 1024):
        if mode not in ("staged", "mixed"):
            raise ValueError(f"mode must be 'staged' or 'mixed', got {mode!r}")
        self.blur_n, self.mode, self.mix = as_schedule(blur_n), mode, as_schedule(mix)
        self.padding, self.chunk = padding, chunk
        self._n: int | None = None
        self._copy: torch.Tensor | None = None
        self._p = 0.0
        self._gen: torch.Generator | None = None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n = None  # the blurred copy is not checkpointed: rebuild it at the next epoch

    def blurred_copy(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``x`` blurred with kernel_n, in chunks on x's device, in x's dtype.

        A uint8 dataset gets a uint8 copy (rounded to the nearest level, as when blurred
        copies of a dataset are saved as images): batches are then gathered from it at
        exactly the cost of the original, which keeps the curriculum free per batch.
        """
        out = torch.empty_like(x)
        for i in range(0, len(x), self.chunk):
            y = box_blur(x[i:i + self.chunk].float(), n, self.padding)
            # chunks of ~1k images keep the float copy in the CPU cache
            out[i:i + self.chunk] = y.round_().clamp_(0, 255) if x.dtype == torch.uint8 else y
        return out

    def on_epoch_start(self, state: TrainState) -> None:
        n = int(round(self.blur_n.value(state.epoch, state.epochs)))
        if n != self._n:
            self._n = n
            self._copy = None if n == 1 else self.blurred_copy(state.data.train.x, n)
        if self.mode == "staged":
            if self._copy is not None:
                state.train_x = self._copy
        else:
            self._p = float(self.mix.value(state.epoch, state.epochs))
            state.extra["blur_mix"] = self._p
            if self._gen is None:
                self._gen = _aug_generator(state, 1)
        state.extra["blur_n"] = n

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode != "mixed" or self._copy is None or self._p <= 0:
            return x, y
        assert state.batch_index is not None and state.norm is not None and self._gen is not None
        take = (torch.rand(len(y), generator=self._gen) < self._p).to(x.device)
        blurred = state.norm(self._copy[state.batch_index])
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.where(take.view(shape), blurred, x), y


class ProgressiveResize(Hook):
    """Seed 001: train on images resized to ``size`` (per epoch); eval stays at full size."""

    seed_batchable = True  # acts on each sample on its own

    def __init__(self, size: ScheduleLike):
        self.size = as_schedule(size)
        self._s = 0

    def on_epoch_start(self, state: TrainState) -> None:
        self._s = int(round(self.size.value(state.epoch, state.epochs)))
        state.extra["image_size"] = self._s

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return resize(x, self._s), y


class RandomizedDeblur(Hook):
    """Seed 001, Algorithm 1: each batch is Gaussian-blurred with σ_i with probability α."""

    def __init__(self, sigma: ScheduleLike, p: ScheduleLike = 1.0, padding: str = "reflect"):
        self.sigma, self.p, self.padding = as_schedule(sigma), as_schedule(p), padding
        self._sigma = self._p = 0.0
        self._gen: torch.Generator | None = None
        self.blurred_batches = 0

    def on_epoch_start(self, state: TrainState) -> None:
        self._sigma = float(self.sigma.value(state.epoch, state.epochs))
        self._p = float(self.p.value(state.epoch, state.epochs))
        if self._gen is None:
            self._gen = _aug_generator(state, 2)
        state.extra["sigma"], state.extra["blur_p"] = self._sigma, self._p

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._gen is not None
        beta = float(torch.rand((), generator=self._gen))  # drawn every batch: fixed stream
        if self._sigma > 0 and beta <= self._p:
            self.blurred_batches += 1
            return gaussian_blur(x, self._sigma, self.padding), y
        return x, y


def hooks_from_config(cfg: Any) -> list[Hook]:
    """The hooks a RunConfig asks for, in a fixed order: dropout, sharpening, resize, deblur."""
    hooks: list[Hook] = []
    if cfg.dropout is not None:
        hooks.append(ScheduledDropout(cfg.dropout))
    if cfg.blur_n is not None:
        hooks.append(ProgressiveSharpening(cfg.blur_n, cfg.blur_mode, cfg.blur_mix, cfg.padding))
    if cfg.image_size is not None:
        hooks.append(ProgressiveResize(cfg.image_size))
    if cfg.blur_sigma is not None:
        hooks.append(RandomizedDeblur(cfg.blur_sigma, cfg.blur_p, cfg.padding))
    return hooks
