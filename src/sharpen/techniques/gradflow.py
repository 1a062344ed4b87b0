"""Diagnostics: per-layer gradient flow (paper 003's vanishing-gradient figure), per seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field
from torch import nn

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_csv
from sharpen.techniques.base import RunFigure, Technique
from sharpen.training.loop import TrainState
from sharpen.training.stack import StackedConv, StackedLinear

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, StackedConv, StackedLinear)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weights of conv and linear layers, input to output (biases and norms left out).

    On a stacked model each weight holds one slice per seed (leading dimension)."""
    return [(name, m.weight) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]


def gradient_flow(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable = nn.functional.cross_entropy) -> list[dict[str, Any]]:
    """Mean |∂loss/∂W| per weight layer for one batch (one plain model's current weights)."""
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    out = [{"layer": i, "name": n, "mean_abs_grad": float(w.grad.abs().mean()),
            "weight_norm": float(w.detach().norm())} for i, (n, w) in enumerate(weight_layers(model))]
    model.zero_grad(set_to_none=True)
    return out


class GradientFlow(Technique):
    """Record per seed and layer the mean |grad| (averaged over the epoch's steps) and the
    weight-update ratio ‖ΔW‖/‖W‖ (over the epoch) for the chosen epochs (1-based; empty =
    every epoch). ``records[e]`` holds seed e's rows."""

    name = "gradflow"
    run_files = ("gradflow.csv",)
    COLUMNS = ("epoch", "layer", "name", "mean_abs_grad", "update_ratio")
    run_figure = RunFigure(
        file="gradflow.csv", x="layer", y="mean_abs_grad", lines="epoch", png="gradflow.png",
        heading="Gradient flow (mean |∂loss/∂W| per layer, first seed of each arm)",
        alt="gradient flow", xlabel="layer (input → output)", ylabel="mean |grad|", log_y=True)

    class Config(BaseModel):
        # record per-layer gradient flow ([] = every epoch)
        grad_flow_epochs: list[int] | None = Field(None,
            description="epochs (1-based) whose per-layer mean |gradient| is recorded ([] = every epoch)")

    def __init__(self, epochs: Sequence[int] = ()):
        self.epochs = set(epochs)
        self.records: list[list[dict[str, Any]]] = []
        self._handles: list[Any] = []
        self._sums: list[torch.Tensor] = []
        self._counts: list[int] = []
        self._start: list[torch.Tensor] = []

    @classmethod
    def from_config(cls, cfg: Any) -> GradientFlow | None:
        return cls(cfg.grad_flow_epochs) if cfg.grad_flow_epochs is not None else None

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        for e in cfg.grad_flow_epochs or []:
            if not 1 <= e <= cfg.epochs:
                raise SharpenError(f"field {where}grad_flow_epochs: epoch {e} is outside "
                                   f"1..{cfg.epochs}")

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records}

    def write_run_files(self, seed_index: int, run_dir: Path) -> None:
        """Seed ``seed_index``'s rows as ``gradflow.csv`` (nothing when it recorded none)."""
        if seed_index < len(self.records) and self.records[seed_index]:
            atomic_write_csv(run_dir / "gradflow.csv", self.records[seed_index],
                             list(self.COLUMNS))

    def _on(self, state: TrainState) -> bool:
        return not self.epochs or (state.epoch + 1) in self.epochs

    def on_epoch_start(self, state: TrainState) -> None:
        if len(self.records) != state.n_seeds:
            self.records = [[] for _ in range(state.n_seeds)]
        self._start = []
        if not self._on(state):
            return
        layers = weight_layers(state.model)
        self._sums = [torch.zeros(state.n_seeds, dtype=torch.float64) for _ in layers]
        self._counts = [0 for _ in layers]
        self._start = [w.detach().clone() for _, w in layers]
        for i, (_, w) in enumerate(layers):
            self._handles.append(w.register_hook(self._grad_hook(i)))

    def _grad_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        def hook(g: torch.Tensor) -> None:
            # per seed, one reduction over its own slice (as alone: a reduction over all
            # seeds' rows splits across threads differently)
            self._sums[i] += torch.stack([r.abs().mean() for r in g.detach().unbind(0)]
                                         ).double().cpu()
            self._counts[i] += 1

        return hook

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if not self._start:
            return
        k = state.seed_index
        if self._handles:
            for h in self._handles:
                h.remove()
            self._handles = []
        mine = []
        for i, (name, w) in enumerate(weight_layers(state.model)):
            w0 = self._start[i][k]
            mine.append({
                "epoch": state.epoch + 1, "layer": i, "name": name,
                "mean_abs_grad": float(self._sums[i][k]) / max(self._counts[i], 1),
                "update_ratio": float((w.detach()[k] - w0).norm() / w0.norm().clamp(min=1e-12)),
            })
        self.records[k].extend(mine)
        row["grad_first_over_last"] = mine[0]["mean_abs_grad"] / max(mine[-1]["mean_abs_grad"], 1e-30)
