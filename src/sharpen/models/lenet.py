"""LeNet-5 family (paper 000).

``lenet5_dropout`` is the paper's Keras summary exactly: conv 5×5 1→6 (156), avgpool,
conv 5×5 6→16 (2,416), avgpool, flatten 256, dense 120 (30,840), dropout, dense 84
(10,164), dropout, dense 10 (850) = 44,426 parameters on 28×28 input. Keras' default
activation for Conv2D/Dense in such summaries is stated nowhere in the paper; we use ReLU on
the hidden layers (tanh via ``activation="tanh"``).

``lenet5`` is the classic LeCun et al. (1998) network as usually re-implemented on 28×28
MNIST: conv 5×5 pad 2 1→6, avgpool, conv 5×5 6→16, avgpool, 400→120→84→10, tanh,
61,706 parameters; it is the paper's baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from sharpen.models._registry import register_model

_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 dropout: float = 0.0, pad_first: bool = False, activation: str = "relu"):
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {activation!r}")
        act = _ACTS[activation]
        pad = 2 if pad_first else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
        )
        side = ((input_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet-5 needs input_size >= {16 - 2 * pad}, got {input_size}")
        # Dropout modules are kept even at p=0 so a schedule can change p during training.
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), act(), nn.Dropout(dropout),
            nn.Linear(120, 84), act(), nn.Dropout(dropout), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(paper="000", input_shape=(1, 28, 28))
def lenet5_dropout(num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                   dropout: float = 0.5, activation: str = "relu") -> nn.Module:
    """Paper 000's LeNet-5 + dropout (44,426 parameters on 1×28×28)."""
    return LeNet5(num_classes, in_channels, input_size, dropout, False, activation)


@register_model(paper="000", input_shape=(1, 28, 28))
def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
           activation: str = "tanh") -> nn.Module:
    """Classic LeNet-5 baseline (LeCun et al. 1998), no dropout (61,706 parameters)."""
    return LeNet5(num_classes, in_channels, input_size, 0.0, True, activation)
