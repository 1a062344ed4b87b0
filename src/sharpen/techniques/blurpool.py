"""BlurPool (Zhang 2019, "Making convolutional networks shift-invariant again"):
low-pass filter before every downsampling inside the network, as the ``antialiased-cnns``
package builds it. Paper 000 blurs the data; BlurPool blurs the feature maps, a natural
pair to compare."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from sharpen.errors import SharpenError
from sharpen.techniques.base import Technique

# A filter of n taps is row n − 1 of Pascal's triangle, as in antialiased-cnns ("Tri-3" is
# [1, 2, 1], the package's default "Bin-4" is [1, 3, 3, 1]); 3 is our default because it
# was our MaxPool numbers' filter before AvgPool and strided convs were anti-aliased too.
MAX_TAPS = 7
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Hardtanh, nn.Softplus)
_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)


def blur_filter(taps: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """The taps×taps low-pass filter: the outer product of binomial row ``taps − 1`` with
    itself, divided by its sum (so a constant image stays constant)."""
    row = torch.tensor([math.comb(taps - 1, k) for k in range(taps)], dtype=dtype, device=device)
    k = row[:, None] * row[None, :]
    return k / k.sum()


def blur_downsample(x: torch.Tensor, stride: int = 2, taps: int = 3) -> torch.Tensor:
    """Each channel convolved with the binomial filter (:func:`blur_filter`), reflect-padded
    by ⌊(taps − 1)/2⌋ before and ⌈(taps − 1)/2⌉ after in each direction, then sampled every
    ``stride`` pixels: antialiased-cnns' BlurPool (one tap is plain subsampling)."""
    if taps == 1:
        return x[:, :, ::stride, ::stride]
    lo, hi = (taps - 1) // 2, taps // 2
    C = x.shape[1]
    w = blur_filter(taps, x.dtype, x.device).expand(C, 1, taps, taps)
    return F.conv2d(F.pad(x, (lo, hi, lo, hi), mode="reflect"), w, stride=stride, groups=C)


class BlurPool2d(nn.Module):
    """:func:`blur_downsample` as a layer (no weights: the filter is a constant)."""

    def __init__(self, stride: int = 2, taps: int = 3):
        super().__init__()
        self.stride, self.taps = stride, taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur_downsample(x, self.stride, self.taps)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, taps={self.taps}"


def _stride(layer: nn.Module) -> int:
    s = layer.stride
    return s if isinstance(s, int) else max(s)


def add_blurpool(model: nn.Module, taps: int = 3) -> int:
    """Anti-alias every downsampling layer of ``model`` in place (Zhang 2019, section 3;
    antialiased-cnns); returns how many layers changed (0: nothing to anti-alias).

    MaxPool2d(k, s) → MaxPool2d(k, 1) · Blur(s); AvgPool2d(k, s) → Blur(s); a Conv2d of
    stride s → the conv at stride 1, and Blur(s) after its activation (Conv → [norm] →
    ReLU → Blur) where the model shows that activation as the next layers of an
    ``nn.Sequential``. A strided conv whose activation is applied in ``forward`` (invisible
    here) is blurred right after the conv. Each replacement takes its layer's place (a
    nested Sequential), so parameter names and counts are unchanged; output sizes are
    unchanged wherever the pooled map's side is even."""
    changed = 0
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, attr in enumerate(names):
            m = parent._modules[attr]
            if isinstance(m, nn.MaxPool2d) and _stride(m) > 1:
                parent._modules[attr] = nn.Sequential(
                    nn.MaxPool2d(m.kernel_size, 1, m.padding, m.dilation, ceil_mode=m.ceil_mode),
                    BlurPool2d(_stride(m), taps))
            elif isinstance(m, nn.AvgPool2d) and _stride(m) > 1:
                parent._modules[attr] = BlurPool2d(_stride(m), taps)
            elif isinstance(m, nn.Conv2d) and _stride(m) > 1:
                s, m.stride = _stride(m), (1, 1)
                j = i + 1  # past the conv's norm, to its activation, if the sequence shows it
                if isinstance(parent, nn.Sequential):
                    while j < len(names) and isinstance(parent._modules[names[j]], _NORMS):
                        j += 1
                act = parent._modules[names[j]] if isinstance(parent, nn.Sequential) and \
                    j < len(names) else None
                if isinstance(act, _ACTIVATIONS):
                    parent._modules[names[j]] = nn.Sequential(act, BlurPool2d(s, taps))
                else:
                    parent._modules[attr] = nn.Sequential(m, BlurPool2d(s, taps))
            else:
                continue
            changed += 1
    return changed


class BlurPool(Technique):
    """Build the model with :func:`add_blurpool` applied."""

    name = "blurpool"
    plan_columns = ("blurpool",)

    class Config(BaseModel):
        blurpool: bool = Field(False, description="anti-aliased downsampling in the model: "
                               "every max-pool, average-pool and strided conv blurs first")
        blurpool_taps: int = Field(3, ge=1, le=MAX_TAPS, description="blurpool: filter size "
                                   "(binomial taps: 3 = [1, 2, 1], 4 = [1, 3, 3, 1])")

    def __init__(self, taps: int = 3):
        self.taps = taps

    @classmethod
    def from_config(cls, cfg: Any) -> BlurPool | None:
        return cls(cfg.blurpool_taps) if cfg.blurpool else None

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        return {"blurpool": 1}

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if not add_blurpool(model, self.taps):
            raise SharpenError("field blurpool: the model has no downsampling layer to "
                               "anti-alias (MaxPool2d, AvgPool2d or Conv2d with stride > 1); "
                               "remove blurpool = true")
        return model
