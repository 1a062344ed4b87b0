"""Paper 003's VGG family: a healthy VGG-08 and a broken VGG-38, with the fixes.

entry conv → 3 stages, each of B conv blocks (conv, LeakyReLU, conv, LeakyReLU) and a
dimension-reduction block (conv, LeakyReLU, avgpool ÷2, conv, LeakyReLU) → global average
pool → linear. 32 channels, 3×3 kernels, stride 1, padding 1. Convolutions: 1 + 3·(2B + 2),
so B = 0 gives VGG-08 (7 conv + 1 FC) and B = 5 gives VGG-38 (37 conv + 1 FC).

Options: ``batch_norm`` puts BatchNorm before every activation (entry block included, as
the paper describes), ``residual`` wraps each conv block in an identity shortcut
(x + F(x)), ``dropout`` is applied to the features before the final linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from sharpen.models._registry import register_model


def _conv_act(c: int, cin: int, bn: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, c, 3, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c))
    layers.append(nn.LeakyReLU(0.01))
    return layers


class ConvBlock(nn.Module):
    def __init__(self, c: int, bn: bool, residual: bool):
        super().__init__()
        self.body = nn.Sequential(*_conv_act(c, c, bn), *_conv_act(c, c, bn))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ReductionBlock(nn.Module):
    def __init__(self, c: int, bn: bool):
        super().__init__()
        self.body = nn.Sequential(*_conv_act(c, c, bn), nn.AvgPool2d(2), *_conv_act(c, c, bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class VGG(nn.Module):
    def __init__(self, blocks: int, num_classes: int = 100, in_channels: int = 3, width: int = 32,
                 stages: int = 3, batch_norm: bool = False, residual: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = list(_conv_act(width, in_channels, batch_norm))
        for _ in range(stages):
            layers += [ConvBlock(width, batch_norm, residual) for _ in range(blocks)]
            layers.append(ReductionBlock(width, batch_norm))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))


_VARIANTS = {  # name: (blocks, batch_norm, residual)
    "vgg08": (0, False, False),
    "vgg38": (5, False, False),
    "vgg38_bn": (5, True, False),
    "vgg38_res": (5, False, True),
    "vgg38_bn_res": (5, True, True),
    "vgg08_bn": (0, True, False),
}


def _make(name: str, blocks: int, bn: bool, res: bool) -> None:
    def factory(num_classes: int = 100, in_channels: int = 3, dropout: float = 0.0,
                width: int = 32) -> nn.Module:
        return VGG(blocks, num_classes, in_channels, width, 3, bn, res, dropout)

    factory.__name__ = name
    factory.__doc__ = (f"Paper 003 VGG, {blocks} conv blocks per stage"
                       f"{', BatchNorm' if bn else ''}{', residual' if res else ''}.")
    register_model(name, paper="003", input_shape=(3, 32, 32))(factory)


for _name, (_b, _bn, _res) in _VARIANTS.items():
    _make(_name, _b, _bn, _res)
