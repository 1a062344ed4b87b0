"""Paper 001's CIFAR-10 network (its Figure 5), and a small 1-D conv net for signals."""

from __future__ import annotations

import torch
from torch import nn

from sharpen.models._registry import register_model


def _conv(cin: int, cout: int, k: int, bn: bool) -> list[nn.Module]:
    # 3×3 convs: conv + BatchNorm + ReLU (no conv bias: BN's shift replaces it); 1×1: conv + ReLU
    if bn:
        return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True)]


class NinCifar(nn.Module):
    """conv3×3 16 · maxpool · conv3×3 32 · conv1×1 16 · conv3×3 32 · maxpool · conv3×3 64 ·
    conv1×1 32 · conv3×3 64 · conv1×1 10 · dropout · global avgpool (· softmax in the loss).

    Fully convolutional, so it takes any input size ≥ 4 (progressive resizing). As the paper
    says, the 1×1 convs, the last one included, are followed by ReLU only.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.4,
                 final_relu: bool = True):
        super().__init__()
        layers = [*_conv(in_channels, 16, 3, True), nn.MaxPool2d(2),
                  *_conv(16, 32, 3, True), *_conv(32, 16, 1, False), *_conv(16, 32, 3, True),
                  nn.MaxPool2d(2),
                  *_conv(32, 64, 3, True), *_conv(64, 32, 1, False), *_conv(32, 64, 3, True),
                  nn.Conv2d(64, num_classes, 1)]
        if final_relu:
            layers.append(nn.ReLU(inplace=True))
        layers += [nn.Dropout(dropout), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model(paper="001", input_shape=(3, 32, 32))
def nin_cifar(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.4,
              final_relu: bool = True) -> nn.Module:
    """Paper 001's Figure 5 network (50,186 parameters for 10 classes)."""
    return NinCifar(num_classes, in_channels, dropout, final_relu)


class Conv1dNet(nn.Module):
    """Three conv1d blocks + global average pool + linear: a small classifier for signals."""

    def __init__(self, num_classes: int = 6, in_channels: int = 1, width: int = 16,
                 dropout: float = 0.2):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, w, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(w, 2 * w, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(2 * w, 4 * w, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model(paper="000", input_shape=(1, 128))
def conv1d_small(num_classes: int = 6, in_channels: int = 1, width: int = 16,
                 dropout: float = 0.2) -> nn.Module:
    """1-D conv classifier for the sharpening curriculum on time series (paper 000's future scope)."""
    return Conv1dNet(num_classes, in_channels, width, dropout)
