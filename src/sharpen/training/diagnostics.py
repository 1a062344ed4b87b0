"""Diagnostics: per-layer gradient flow (seed 003's vanishing-gradient figure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from sharpen.training.loop import Hook, TrainState


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weights of conv and linear layers, input to output (biases and norms left out)."""
    return [(name, m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def gradient_flow(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable = nn.functional.cross_entropy) -> list[dict[str, Any]]:
    """Mean |∂loss/∂W| per weight layer for one batch (the model's current weights)."""
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    out = [{"layer": i, "name": n, "mean_abs_grad": float(w.grad.abs().mean()),
            "weight_norm": float(w.detach().norm())} for i, (n, w) in enumerate(weight_layers(model))]
    model.zero_grad(set_to_none=True)
    return out


class GradientFlow(Hook):
    """Record per-layer mean |grad| (averaged over the epoch's steps) and the weight-update
    ratio ‖ΔW‖/‖W‖ (over the epoch) for the chosen epochs (1-based; empty = every epoch)."""

    def __init__(self, epochs: Sequence[int] = ()):
        self.epochs = set(epochs)
        self.records: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._sums: dict[int, float] = {}
        self._steps = 0
        self._start: list[torch.Tensor] = []

    def _on(self, state: TrainState) -> bool:
        return not self.epochs or (state.epoch + 1) in self.epochs

    def on_epoch_start(self, state: TrainState) -> None:
        if not self._on(state):
            return
        layers = weight_layers(state.model)
        self._sums = {i: 0.0 for i in range(len(layers))}
        self._counts = {i: 0 for i in range(len(layers))}
        self._start = [w.detach().clone() for _, w in layers]
        for i, (_, w) in enumerate(layers):
            self._handles.append(w.register_hook(self._grad_hook(i)))

    def _grad_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        def hook(g: torch.Tensor) -> None:
            self._sums[i] += float(g.detach().abs().mean())
            self._counts[i] += 1

        return hook

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if not self._handles:
            return
        for h in self._handles:
            h.remove()
        self._handles = []
        for i, (name, w) in enumerate(weight_layers(state.model)):
            w0 = self._start[i]
            self.records.append({
                "epoch": state.epoch + 1, "layer": i, "name": name,
                "mean_abs_grad": self._sums[i] / max(self._counts[i], 1),
                "update_ratio": float((w.detach() - w0).norm() / w0.norm().clamp(min=1e-12)),
            })
        first = [r for r in self.records if r["epoch"] == state.epoch + 1]
        row["grad_first_over_last"] = first[0]["mean_abs_grad"] / max(first[-1]["mean_abs_grad"], 1e-30)
