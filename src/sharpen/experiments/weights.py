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
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sharpen.data import get_spec
from sharpen.data.pairs import IMAGE_SHAPE, POOL
from sharpen.data.prepare import build_data, resize_u8
from sharpen.errors import SharpenError
from sharpen.experiments.build import build_model
from sharpen.experiments.config import RunConfig
from sharpen.io import atomic_write_bytes
from sharpen.rundir import CONFIG, WEIGHTS, RunDir
from sharpen.training.loop import Hook, TrainState
from sharpen.training.stack import seed_state_dict
from sharpen.training.tasks import PairTask


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
         epoch: int, mean: Any = None, std: Any = None) -> None:
    """The weights with what it takes to feed them: the training split's per-channel mean
    and std (fractions of 255) that every input was normalised with."""
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
                "arm": arm, "seed": seed, "which": which, "epoch": epoch,
                "mean": None if mean is None else [float(v) for v in mean],
                "std": None if std is None else [float(v) for v in std]}, buf)
    atomic_write_bytes(rdir / WEIGHTS, buf.getvalue())


def _seed_dir(path: Path) -> Path:
    """``path`` itself when it holds weights; a run directory names its seed folders."""
    if (path / WEIGHTS).is_file():
        return path
    if (path / CONFIG).is_file():
        found = [str(p.parent.relative_to(path)) for p in RunDir(path).run_files(WEIGHTS)]
        if found:
            raise SharpenError(f"{path} is a run directory; give one of its seed folders: "
                               + ", ".join(str(path / f) for f in found[:10])
                               + (f" (… {len(found) - 10} more)" if len(found) > 10 else ""))
        raise SharpenError(f"{path} is a run directory without saved weights; run it with "
                           "save_weights = \"final\" or \"best_val\"")
    return path


class Predictor:
    """A trained run as a function from uint8 images to predicted classes.

    ``predictor(x)``: x is uint8 (or any number in 0..255) N×C×H×W, or N×H×W for one
    channel; returns the N predicted classes. ``predictor.logits(x)`` gives the raw outputs.
    Inputs are resized as the run's data was (``data_resize``) and normalised with the
    training split's mean and std stored beside the weights.

    A digit-pair run takes N pairs of two digits: N×2×28×28 (0..255), average-pooled to
    N×2×14×14 as the run's pairs were, or N×2×14×14 already pooled; it returns 1 where
    digit₁ ≤ digit₂.
    """

    def __init__(self, model: nn.Module, mean: Any, std: Any, resize: int | None = None,
                 task: Any = None, device: str | torch.device = "cpu", pairs: bool = False,
                 shape: tuple[int, ...] | None = None):
        self.model, self.resize, self.task, self.pairs = model, resize, task, pairs
        self.shape = shape  # one image as the run's dataset gave it (C×H×W, C×L); None: any
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device) * 255.0

    def _pairs_in(self, x: torch.Tensor) -> torch.Tensor:
        """N×2×28×28 digit pairs pooled to the N×2×14×14 the pair model takes (as
        :func:`sharpen.data.pairs.make_pairs` pools them); N×2×14×14 as given."""
        side = IMAGE_SHAPE[1] // POOL
        if x.dim() == 4 and x.shape[1] == 2 and tuple(x.shape[2:]) == IMAGE_SHAPE[1:]:
            return F.avg_pool2d(x.float(), POOL)
        if x.dim() == 4 and tuple(x.shape[1:]) == (2, side, side):
            return x
        raise SharpenError(f"digit pairs of shape {tuple(x.shape)}: expected N×2×28×28 (two "
                           f"digits per pair, 0..255) or N×2×{side}×{side} (pooled as the "
                           "run's pairs were)")

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 1000) -> Any:
        x = torch.as_tensor(x)
        if self.pairs:
            x = self._pairs_in(x)
        elif self.mean.numel() == 1 and x.dim() == (len(self.shape) if self.shape else 3):
            x = x.unsqueeze(1)  # one channel, given without its axis
        if not self.pairs and (x.dim() < 3 or x.shape[1] != self.mean.numel() or (
                self.shape is not None and tuple(x.shape[1:]) != self.shape)):
            # another size reached the model's first linear layer as a raw shape error
            want = "×".join(map(str, self.shape)) if self.shape else f"{self.mean.numel()}×H×W"
            raise SharpenError(f"images of shape {tuple(x.shape)}: expected N×{want} uint8 "
                               "(0..255), as the run's dataset gave them")
        if not len(x):
            raise SharpenError("no images given (N = 0)")
        if x.is_floating_point() and float(x.max()) <= 1.0 and float(x.min()) >= 0.0 and x.numel():
            raise SharpenError("images look like floats in 0..1; give uint8 images (0..255) — "
                               "the predictor normalises them itself")
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(self.device)
            if self.resize is not None:
                xb = resize_u8(xb.to(torch.uint8), self.resize)
            tail = (1,) * (xb.dim() - 2)
            xb = (xb.float() - self.mean.view(1, -1, *tail)) / self.std.view(1, -1, *tail)
            outs.append(self.model(xb))
        if isinstance(outs[0], dict):
            return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        return torch.cat(outs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        return self.task.predict(out) if self.task is not None else out.argmax(1)


def load_predictor(seed_dir: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The trained run of ``seed_dir`` as a :class:`Predictor` (uint8 images → classes)."""
    seed_dir = _seed_dir(Path(seed_dir))
    model = load_model(seed_dir, device)
    saved = _load_weights(seed_dir / WEIGHTS)
    cfg = RunConfig.model_validate(
        json.loads((seed_dir.parent.parent.parent / CONFIG).read_text())["arms"][saved["arm"]])
    mean, std = saved.get("mean"), saved.get("std")
    if mean is None or std is None:  # weights saved before the preprocessing was
        data = build_data(cfg, torch.device("cpu"), saved["seed"])
        mean, std = data.mean, data.std
    task = None
    if cfg.pairs is not None:
        task = PairTask(model.pair_outputs, cfg.aux_weight, cfg.asym_weight)
    return Predictor(model, mean, std, cfg.data_resize, task, device, cfg.pairs is not None,
                     tuple(get_spec(cfg.dataset).shape))


def _load_weights(path: Path) -> dict[str, Any]:
    """weights.pt as saved; a cut or damaged file is one line that names it (torch says
    only 'PytorchStreamReader failed reading zip archive')."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        why = str(exc).split(". ")[0] if str(exc) else type(exc).__name__  # torch's 1st line
        raise SharpenError(f"{path}: cannot be read ({why}); the file is cut short or damaged: "
                           f"copy it again, or delete the folder {path.parent} and re-run its "
                           "experiment into the same --out to train this seed again") from None
    if not isinstance(saved, dict) or "state_dict" not in saved or "arm" not in saved:
        raise SharpenError(f"{path}: not weights saved by sharpen (no state_dict and arm)")
    return saved


def load_model(seed_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of one run: ``<run dir>/runs/<arm>/seed-<s>`` (in eval mode)."""
    seed_dir = _seed_dir(Path(seed_dir))
    path = seed_dir / WEIGHTS
    if not path.is_file():
        raise SharpenError(f"{path}: no saved weights; run with save_weights = \"final\" or "
                           "\"best_val\"")
    cfg_path = seed_dir.parent.parent.parent / CONFIG
    if not cfg_path.is_file():
        raise SharpenError(f"{cfg_path}: not found; give a run's folder "
                           "<run dir>/runs/<arm>/seed-<s>")
    saved = _load_weights(path)
    arms = json.loads(cfg_path.read_text())["arms"]
    if saved["arm"] not in arms:
        raise SharpenError(f"{path}: arm {saved['arm']!r} is not in {cfg_path}")
    model = build_model(RunConfig.model_validate(arms[saved["arm"]]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
