"""Trained weights in a run directory (``save_weights``) and the one call that loads them.

``save_weights = "final"`` keeps each seed's weights after the last epoch,
``"best_val"`` those of its epoch of best validation accuracy (earliest on ties), in
``runs/<arm>/seed-<s>/weights.pt``. ``sharpen.load_model(seed_dir)`` rebuilds the model
from the directory's config.json and loads them::

    model = sharpen.load_model("runs/quickstart/20260101-120000/runs/lenet5/seed-0")
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sharpen import SharpenError
from sharpen.io import atomic_write_bytes
from sharpen.rundir import CONFIG, WEIGHTS
from sharpen.training.loop import Hook, TrainState
from sharpen.training.stack import seed_state_dict


class BestValWeights(Hook):
    """Keep each seed's weights at its best validation accuracy so far."""

    stacks = True

    def __init__(self, seeds: int):
        self.best: list[float] = [-1.0] * seeds
        self.epoch: list[int] = [0] * seeds
        self.weights: list[dict[str, torch.Tensor] | None] = [None] * seeds

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        k = state.seed_index
        if row.get("val_acc") is not None and row["val_acc"] > self.best[k]:
            self.best[k], self.epoch[k] = row["val_acc"], row["epoch"]
            self.weights[k] = {n: t.cpu() for n, t in seed_state_dict(state.model, k).items()}

    def state_dict(self) -> dict[str, Any]:  # checkpointed: a resumed run keeps its best
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.epoch, self.weights = state["best"], state["epoch"], state["weights"]


def save(rdir: Path, state_dict: dict[str, torch.Tensor], arm: str, seed: int, which: str,
         epoch: int) -> None:
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
                "arm": arm, "seed": seed, "which": which, "epoch": epoch}, buf)
    atomic_write_bytes(rdir / WEIGHTS, buf.getvalue())


def load_model(seed_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of one run: ``<run dir>/runs/<arm>/seed-<s>`` (in eval mode)."""
    from sharpen.experiments.config import RunConfig
    from sharpen.experiments.job import model_factory

    seed_dir = Path(seed_dir)
    path = seed_dir / WEIGHTS
    if not path.is_file():
        raise SharpenError(f"{path}: no saved weights; run with save_weights = \"final\" or "
                           "\"best_val\"")
    cfg_path = seed_dir.parent.parent.parent / CONFIG
    if not cfg_path.is_file():
        raise SharpenError(f"{cfg_path}: not found; give a run's folder "
                           "<run dir>/runs/<arm>/seed-<s>")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    arms = json.loads(cfg_path.read_text())["arms"]
    if saved["arm"] not in arms:
        raise SharpenError(f"{path}: arm {saved['arm']!r} is not in {cfg_path}")
    model = model_factory(RunConfig.model_validate(arms[saved["arm"]]))()
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
