"""Paper 000: progressive sharpening — train on box-blurred copies, most blurred first."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from sharpen.errors import SharpenError
from sharpen.imageops import box_blur
from sharpen.techniques.base import BlurPadding, Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def blurred_copy(x: torch.Tensor, n: int, padding: str = "reflect", chunk: int = 1024) -> torch.Tensor:
    """``x`` box-blurred with kernel ``n``, in chunks on x's device, in x's dtype.

    A uint8 dataset gets a uint8 copy (rounded to the nearest level, as when blurred copies
    of a dataset are saved as images): batches are then gathered from it at exactly the
    cost of the original, which keeps the curriculum free per batch.
    """
    out = torch.empty_like(x)
    for i in range(0, len(x), chunk):
        y = box_blur(x[i:i + chunk].float(), n, padding)
        # chunks of ~1k images keep the float copy in the CPU cache
        out[i:i + chunk] = y.round_().clamp_(0, 255) if x.dtype == torch.uint8 else y
    return out


class ProgressiveSharpening(Technique):
    """``blur_n`` is the kernel size per epoch (e.g. a step schedule 5 → 1). ``staged``
    swaps the whole training set for its blurred copy, computed once per stage on the
    device and shared by every seed that shares the data. ``mixed`` (the paper's future
    scope) takes a fraction ``blur_mix`` of each batch from the blurred copy; which samples,
    each seed draws from its own ``sharpen_mix`` stream.
    """

    name = "sharpening"
    plan_columns = ("blur_n", "blur_mix")
    stage_columns = ("blur_n",)
    data_figure = ("blur_strip.png", "Blurred copies (paper 000)")
    idle_at = {"blur_n": 1, "blur_mix": 0.0}  # mixed mode: a share of 0 blurs nothing

    class Config(BlurPadding):
        # paper 000: box-blur kernel size per epoch (1 = sharp)
        blur_n: ScheduleLike | Literal["stages"] | None = Field(None,
            description="paper 000: box-blur kernel size of the training data per epoch (1 = "
            "sharp), or 'stages': blur_stages stages of stage_epochs epochs each")
        # blur_n = "stages": K stages, kernel 2K+1, 2K−1, …, 3, each stage_epochs long, then sharp
        blur_stages: int = Field(3, ge=1, description="blur_n = 'stages': blurred stages K "
                                 "(kernels 2K+1, 2K−1, …, 3), then sharp")
        stage_epochs: int = Field(1, ge=1,
            description="blur_n = 'stages': epochs of each blurred stage")
        blur_mode: Literal["staged", "mixed"] = Field("staged",
            description="paper 000: staged (whole epoch blurred) or mixed (part of every batch)")
        # mixed mode: fraction of each batch from the blurred copy
        blur_mix: ScheduleLike = Field(0.5,
            description="paper 000 mixed mode: share of each batch taken from the blurred copy")

    def __init__(self, blur_n: ScheduleLike, mode: str = "staged", mix: ScheduleLike = 0.5,
                 padding: str = "reflect", chunk: int = 1024):
        if mode not in ("staged", "mixed"):
            raise ValueError(f"mode must be 'staged' or 'mixed', got {mode!r}")
        self.blur_n, self.mode, self.mix = as_schedule(blur_n), mode, as_schedule(mix)
        self.padding, self.chunk = padding, chunk
        self._n: int | None = None
        self._copies: list[torch.Tensor] | None = None
        self._p = 0.0

    @classmethod
    def figure_images(cls, images: torch.Tensor, plans: dict[str, list[dict[str, Any]]],
                      cfg: Any) -> tuple[list[str], torch.Tensor] | None:
        """The original, then one column per kernel size any arm's plan uses (the sharp
        kernel_1 first)."""
        ns = {r["blur_n"] for rows in plans.values() for r in rows if "blur_n" in r} - {1}
        if not ns:
            return None
        kernels, x = [1, *sorted(ns)], images.float()
        return (["original"] + [f"kernel_{n}" for n in kernels],
                torch.stack([x] + [box_blur(x, n, cfg.padding) for n in kernels]))

    @staticmethod
    def schedule_of(cfg: Any) -> Any:
        """The run's kernel-size schedule: ``blur_n`` itself, or for ``blur_n = "stages"``
        the step schedule 2K+1 → 3 in K stages of ``stage_epochs`` epochs, then 1."""
        if cfg.blur_n != "stages":
            return cfg.blur_n
        return {"kind": "step", "start": 2 * cfg.blur_stages + 1, "delta": -2,
                "every": cfg.stage_epochs, "min": 1}

    @classmethod
    def from_config(cls, cfg: Any) -> ProgressiveSharpening | None:
        if cfg.blur_n is None:
            return None
        return cls(cls.schedule_of(cfg), cfg.blur_mode, cfg.blur_mix, cfg.padding)

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        if cfg.blur_n == "stages" and cfg.blur_stages * cfg.stage_epochs >= cfg.epochs:
            raise SharpenError(f"field {where}blur_stages: {cfg.blur_stages} stages of "
                               f"{cfg.stage_epochs} epoch(s) leave no sharp epoch in "
                               f"epochs = {cfg.epochs}; give more epochs or fewer stages")
        if cfg.blur_n is not None:
            check_schedule(as_schedule(cls.schedule_of(cfg)), f"{where}blur_n", cfg.epochs,
                           lo=1, hi=side, integer=True)
            if cfg.blur_mode == "mixed":
                check_schedule(cfg.blur_mix, f"{where}blur_mix", cfg.epochs, lo=0.0, hi=1.0)

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        out: dict[str, Any] = {"blur_n": int(round(self.blur_n.value(epoch, epochs)))}
        if self.mode == "mixed":
            out["blur_mix"] = float(self.mix.value(epoch, epochs))
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n = None  # the blurred copy is not checkpointed: rebuild it at the next epoch

    def blurred_copy(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return blurred_copy(x, n, self.padding, self.chunk)

    def on_epoch_start(self, state: TrainState) -> None:
        values = self.plan(state.epoch, state.epochs)
        n = values["blur_n"]
        if n != self._n:
            self._n = n
            self._copies = None
            if n != 1:
                made: dict[int, torch.Tensor] = {}  # one copy per distinct dataset
                for d in state.data:
                    if id(d.train.x) not in made:
                        made[id(d.train.x)] = self.blurred_copy(d.train.x, n)
                self._copies = [made[id(d.train.x)] for d in state.data]
        if self.mode == "staged" and self._copies is not None:
            state.train_x = list(self._copies)
        self._p = values.get("blur_mix", 0.0)
        state.extra.update(values)

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode != "mixed" or self._copies is None or self._p <= 0:
            return x, y
        assert state.batch_index is not None and state.norm is not None
        take = (state.rand("sharpen_mix", state.batch_index.shape[1]) < self._p).reshape(-1)
        blurred = state.norm(state.gather(self._copies, state.batch_index))
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.where(take.to(x.device).view(shape), blurred, x), y
