"""BlurPool (Zhang 2019, "Making convolutional networks shift-invariant again"):
low-pass filter before every downsampling inside the network. Seed 000 blurs the data;
BlurPool blurs the feature maps, a natural pair to compare."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from sharpen.techniques.base import Technique

_TAPS = (1.0, 2.0, 1.0)  # binomial filter; 2-D kernel = outer product / 16


def blur_downsample(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """Each channel convolved with [1, 2, 1] ⊗ [1, 2, 1] / 16 (reflect padding 1), then
    sampled every ``stride`` pixels: the anti-aliased downsampling of BlurPool."""
    t = torch.tensor(_TAPS, dtype=x.dtype, device=x.device)
    k = (t[:, None] * t[None, :]) / t.sum() ** 2
    C = x.shape[1]
    w = k.expand(C, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w, stride=stride, groups=C)


class BlurPool2d(nn.Module):
    """:func:`blur_downsample` as a layer (no weights: the filter is a constant)."""

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur_downsample(x, self.stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def add_blurpool(model: nn.Module) -> nn.Module:
    """Anti-alias every downsampling layer, in place: MaxPool2d(k, s) becomes
    MaxPool2d(k, 1) → BlurPool2d(s) (MaxBlurPool), a strided Conv2d becomes the same conv
    with stride 1 → BlurPool2d(s). Parameters and output shapes are unchanged for even
    sizes and odd. Returns the model."""
    for m in list(model.modules()):
        for attr, child in list(m.named_children()):
            new: nn.Module | None = None
            if isinstance(child, nn.MaxPool2d):
                s = child.stride if isinstance(child.stride, int) else child.stride[0]
                if s > 1:  # same output size: ⌊(H' − 1)/s⌋ + 1 with H' the stride-1 size
                    new = nn.Sequential(nn.MaxPool2d(child.kernel_size, 1, child.padding,
                                                     child.dilation, ceil_mode=child.ceil_mode),
                                        BlurPool2d(s))
            elif isinstance(child, nn.Conv2d) and max(child.stride) > 1:
                s = child.stride[0]
                child.stride = (1, 1)
                new = nn.Sequential(child, BlurPool2d(s))
            if new is not None:
                setattr(m, attr, new)
    return model


class BlurPool(Technique):
    """Build the model with :func:`add_blurpool` applied."""

    name = "blurpool"
    plan_columns = ("blurpool",)

    class Config(BaseModel):
        blurpool: bool = Field(False, description="anti-aliased downsampling in the model "
                               "(BlurPool after every max-pool and strided conv)")

    @classmethod
    def from_config(cls, cfg: Any) -> BlurPool | None:
        return cls() if cfg.blurpool else None

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"blurpool": 1}

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return add_blurpool(model)
