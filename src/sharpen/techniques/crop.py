"""Random crop with padding (the standard CIFAR augmentation): pad, then cut a random
window of the original size from each image."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState
from sharpen.training.schedules import ScheduleLike, as_schedule, check_schedule


def random_crop(x: torch.Tensor, pad: int, offsets: torch.Tensor,
                mode: str = "reflect") -> torch.Tensor:
    """Pad N×C×H×W images by ``pad`` on every side and cut window n at ``offsets[n]`` =
    (dy, dx), each in [0, 2·pad]; offsets (pad, pad) give the image back unchanged.
    ``mode``: "reflect" or "zeros" (zero after normalisation: the dataset mean)."""
    if pad == 0:
        return x
    n, _, H, W = x.shape
    if mode == "zeros":
        padded = F.pad(x, (pad, pad, pad, pad))
    elif mode == "reflect":
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    else:
        raise ValueError(f"mode must be 'reflect' or 'zeros', got {mode!r}")
    off = offsets.to(x.device)
    rows = (off[:, 0:1] + torch.arange(H, device=x.device)).view(n, 1, H, 1)
    cols = (off[:, 1:2] + torch.arange(W, device=x.device)).view(n, 1, 1, W)
    bi = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    ci = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[bi, ci, rows, cols]


def crop_offsets(n: int, pad: int, p: float, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """N×2 window offsets: uniform in [0, 2·pad] with probability p, else (pad, pad)."""
    off = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    keep = torch.rand(n, generator=generator) >= p
    off[keep] = pad
    return off


class RandomCrop(Technique):
    """Apply :func:`random_crop` to training batches; each seed draws its windows from its
    own ``crop`` stream."""

    name = "crop"
    plan_columns = ("crop_p",)
    idle_at = {"crop_p": 0.0}

    class Config(BaseModel):
        crop_pad: int = Field(0, ge=0, description="random crop: pad by this many pixels, "
                              "cut a random window of the original size (0 = off)")
        crop_p: ScheduleLike = Field(1.0, description="random crop: share of images cropped")
        crop_mode: Literal["reflect", "zeros"] = Field(
            "reflect", description="random crop: padding, reflected or zeros (the mean)")

    def __init__(self, pad: int, p: ScheduleLike = 1.0, mode: str = "reflect"):
        if pad < 1:
            raise ValueError(f"pad must be >= 1, got {pad}")
        self.pad, self.p, self.mode = pad, as_schedule(p), mode

    @classmethod
    def from_config(cls, cfg: Any) -> RandomCrop | None:
        return cls(cfg.crop_pad, cfg.crop_p, cfg.crop_mode) if cfg.crop_pad else None

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        check_schedule(cfg.crop_p, f"{where}crop_p", cfg.epochs, lo=0.0, hi=1.0)
        if cfg.crop_pad and cfg.crop_mode == "reflect" and cfg.crop_pad >= side:
            raise SharpenError(f"field {where}crop_pad: reflect padding needs a pad smaller "
                               f"than the image side ({side}); got {cfg.crop_pad}")

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"crop_p": float(self.p.value(epoch, epochs))}

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        p = state.now(self.p)
        B = x.shape[0] // state.n_seeds
        off = torch.cat([crop_offsets(B, self.pad, p, g) for g in state.generators("crop")])
        return random_crop(x, self.pad, off, self.mode), y
