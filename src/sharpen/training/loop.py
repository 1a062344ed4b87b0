"""The training loop and its declared hooks.

Techniques act only through four hooks (Composer-style events):
  on_epoch_start(state)             - change data, dropout, image size for this epoch
  on_batch(state, x, y) -> (x, y)   - transform a drawn batch (x float, normalised, on device)
  on_loss(state, loss, out, y) -> loss   - add auxiliary terms
  on_epoch_end(state, row)          - add columns to the epoch's metrics row
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sharpen.training.schedules import Constant, _Base, as_schedule


class Diverged(RuntimeError):
    def __init__(self, epoch: int, loss: float):
        super().__init__(f"loss became {loss} in epoch {epoch}")
        self.epoch, self.loss = epoch, loss


@dataclass
class Split:
    """One split held as uint8 images N×C×H×W and int64 labels, on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class TrainData:
    train: Split
    test: Split
    val: Split | None
    mean: Sequence[float]
    std: Sequence[float]


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: str = "sgd"
    lr: Any = 0.01  # number or schedule
    momentum: float = 0.9
    weight_decay: Any = 0.0  # number or schedule
    nesterov: bool = False
    lr_adaptive_threshold: float | None = None  # seed 004: halve if loss improved < 3 %
    lr_adaptive_factor: float = 0.5
    loss: str = "cross_entropy"
    eval_batch_size: int = 1000
    drop_last: bool = False
    task: Any = None  # a training.tasks task; None = classification with ``loss``
    # NHWC layout: oneDNN's CPU convs and cuDNN's tensor-core convs both prefer it
    # (sharpen bench train measures it against NCHW: docs/methods/speed-and-scale.md)
    channels_last: bool = True
    amp: str = "off"  # "bf16": autocast forward and loss to bfloat16 (weights stay fp32)
    compile: bool = False  # torch.compile the model (CPU: needs a C++ compiler)
    fused_optimizer: bool = True  # one fused kernel per step for SGD/Adam


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: TrainData
    settings: TrainSettings
    device: torch.device
    generator: torch.Generator
    seed: int = 0
    epoch: int = 0  # 0-based
    step: int = 0
    lr: float = 0.0
    # the training images in use this epoch: uint8, or float on the 0..255 scale (a curriculum
    # may swap in a blurred copy); batch_index holds the indices of the batch being trained
    train_x: torch.Tensor | None = None
    batch_index: torch.Tensor | None = None
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return self.settings.epochs

    @property
    def progress(self) -> float:
        return self.epoch / (self.epochs - 1) if self.epochs > 1 else 1.0


class Hook:
    """Base class: override any of the four events."""

    # True when on_batch treats every sample on its own and no event inspects one model's
    # weights, so the hook also serves many seeds stacked into one model (training.batched)
    seed_batchable = False

    def on_epoch_start(self, state: TrainState) -> None:
        pass

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def on_loss(self, state: TrainState, loss: torch.Tensor, out: torch.Tensor,
                y: torch.Tensor) -> torch.Tensor:
        return loss

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        pass

    # checkpointing: random generators and plain values are saved; tensors (caches such as
    # a blurred copy of the data) are not, and are rebuilt after a resume
    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in vars(self).items():
            if isinstance(v, torch.Generator):
                out[k] = ("generator", v.get_state())
            elif _plain(v):
                out[k] = ("value", v)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, (kind, v) in state.items():
            if kind == "generator":
                g = torch.Generator()
                g.set_state(v)
                setattr(self, k, g)
            else:
                setattr(self, k, v)


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, (str, int)) and _plain(x) for k, x in v.items())
    return False


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    lr0 = as_schedule(s.lr).value(0, s.epochs)
    wd0 = as_schedule(s.weight_decay).value(0, s.epochs)
    params = list(model.parameters())
    # The fused kernels do the same update in one pass over all parameters instead of a
    # Python loop of small ops per parameter.
    fused = s.fused_optimizer and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    kw = {"fused": True} if fused else {}
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr0, momentum=s.momentum, weight_decay=wd0,
                               nesterov=s.nesterov, **kw)
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr0, weight_decay=wd0, **kw)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {s.optimizer!r}")


def normalizer(mean: Sequence[float], std: Sequence[float], device: torch.device
               ) -> Callable[[torch.Tensor], torch.Tensor]:
    m = torch.tensor(mean, device=device).view(1, -1) * 255.0
    s = torch.tensor(std, device=device).view(1, -1) * 255.0

    def norm(x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)  # images N×C×H×W or signals N×C×L
        return (x.float() - m.view(shape)) / s.view(shape)

    return norm


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, norm: Callable, task: Any,
             batch_size: int, transform: Callable | None = None) -> dict[str, float]:
    """{"loss", "acc", and the task's extra metrics} over ``split`` in eval mode."""
    was = model.training
    model.eval()
    tot_loss, correct, n = 0.0, 0, len(split)
    extra: dict[str, list[int]] = {}
    for i in range(0, n, batch_size):
        x = norm(split.x[i:i + batch_size])
        if transform is not None:
            x = transform(x)
        y = split.y[i:i + batch_size]
        out = model(x)
        tot_loss += float(task.loss(out, y, reduction="sum"))
        correct += int(task.correct(out, y))
        for k, (c, t) in task.extra(out, y).items():
            e = extra.setdefault(k, [0, 0])
            e[0] += int(c)
            e[1] += t
    model.train(was)
    res = {"loss": tot_loss / max(n, 1), "acc": correct / max(n, 1)}
    res.update({k: c / max(t, 1) for k, (c, t) in extra.items()})
    return res


def _set_lr(opt: torch.optim.Optimizer, lr: float, wd: float | None) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
        if wd is not None:
            g["weight_decay"] = wd


def train(model: nn.Module, data: TrainData, settings: TrainSettings, seed: int,
          hooks: Sequence[Hook] = (), device: torch.device | str = "cpu",
          on_epoch: Callable[[dict[str, Any]], None] | None = None,
          eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
          on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
          resume: dict[str, Any] | None = None,
          ) -> list[dict[str, Any]]:
    """Train ``model`` and return one metrics row per epoch.

    Raises :class:`Diverged` when the loss becomes NaN/inf. Data order comes from a
    generator seeded with ``seed``; the caller seeds model initialisation.
    ``on_checkpoint`` receives, after every epoch, everything needed to continue exactly
    (weights, optimizer, every random generator, hook states, rows); passing that dict back
    as ``resume`` continues with the same numbers as an uninterrupted run.
    """
    device = torch.device(device)
    model.to(device).train()
    fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if settings.amp not in ("off", "bf16"):
        raise ValueError(f"amp must be 'off' or 'bf16', got {settings.amp!r}")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if settings.amp == "bf16" \
        else contextlib.nullcontext
    opt = make_optimizer(model, settings)
    fmodel = torch.compile(model) if settings.compile else model
    lr_s = as_schedule(settings.lr)
    wd_s = as_schedule(settings.weight_decay)
    wd_scheduled = not isinstance(wd_s, Constant)
    gen = torch.Generator().manual_seed(int(seed) + 7919)  # data order, independent of init
    norm = normalizer(data.mean, data.std, device)
    state = TrainState(model, opt, data, settings, device, gen, seed=int(seed), norm=norm)
    from sharpen.training.tasks import ClassificationTask

    task = settings.task or ClassificationTask(settings.loss)
    lr_mult, prev_loss = 1.0, None
    rows: list[dict[str, Any]] = []
    first = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["data_order"])
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        for h, hs in zip(hooks, resume["hooks"]):
            h.load_state_dict(hs)
        lr_mult, prev_loss, state.step = resume["lr_mult"], resume["prev_loss"], resume["step"]
        rows = list(resume["rows"])
        first = resume["epoch"]
    n = len(data.train)
    bs = settings.batch_size
    for epoch in range(first, settings.epochs):
        state.epoch = epoch
        state.train_x = data.train.x
        state.extra = {}
        state.lr = _sched_lr(lr_s, epoch, settings.epochs) * lr_mult
        _set_lr(opt, state.lr, wd_s.value(epoch, settings.epochs) if wd_scheduled else None)
        t0 = time.perf_counter()  # images/s counts a curriculum's per-epoch data preparation
        for h in hooks:
            h.on_epoch_start(state)
        perm = torch.randperm(n, generator=gen).to(device)
        stop = n - n % bs if settings.drop_last and n >= bs else n
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        extra: dict[str, list[Any]] = {}
        seen = 0
        for i in range(0, stop, bs):
            idx = perm[i:i + bs]
            state.batch_index = idx
            x, y = norm(state.train_x[idx]), data.train.y[idx]
            for h in hooks:
                x, y = h.on_batch(state, x, y)
            if x.dim() == 4:
                x = x.contiguous(memory_format=fmt)
            with autocast():
                out = fmodel(x)
                loss = task.loss(out, y)
            for h in hooks:
                loss = h.on_loss(state, loss, out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state.step += 1
            with torch.no_grad():  # accumulate on device: no sync per batch
                loss_sum += loss.detach() * len(y)
                correct += task.correct(out, y)
                for k, (c, t) in task.extra(out, y).items():
                    e = extra.setdefault(k, [torch.zeros((), dtype=torch.long, device=device), 0])
                    e[0] += c
                    e[1] += t
            seen += len(y)
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise Diverged(epoch + 1, train_loss)
        train_time = time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss,
                               "train_acc": int(correct) / max(seen, 1)}
        row.update({f"train_{k}": int(c) / max(t, 1) for k, (c, t) in extra.items()})
        splits = [("val", data.val)] if data.val is not None and len(data.val) else []
        for name, split in splits + [("test", data.test)]:
            ev = evaluate(model, split, norm, task, settings.eval_batch_size, eval_transform)
            row[f"{name}_loss"], row[f"{name}_acc"] = ev.pop("loss"), ev.pop("acc")
            row.update({f"{name}_{k}": v for k, v in ev.items()})
        ref = row.get("val_acc", row["test_acc"])
        row["gap"] = row["train_acc"] - ref
        row["lr"] = state.lr
        row["seconds"] = time.perf_counter() - t0
        row["images_per_s"] = seen / train_time if train_time > 0 else float("nan")
        row.update(state.extra)
        for h in hooks:
            h.on_epoch_end(state, row)
        if settings.lr_adaptive_threshold is not None:
            # seed 004: halve when the epoch loss improved by less than 3 % of the previous
            thr = settings.lr_adaptive_threshold
            if prev_loss is not None and (prev_loss - train_loss) < thr * prev_loss:
                lr_mult *= settings.lr_adaptive_factor
            prev_loss = train_loss
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if on_checkpoint is not None:
            on_checkpoint({
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "data_order": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "hooks": [h.state_dict() for h in hooks], "lr_mult": lr_mult,
                "prev_loss": prev_loss, "step": state.step, "rows": rows,
            })
    return rows


def _sched_lr(s: _Base, epoch: int, epochs: int) -> float:
    return float(s.value(epoch, epochs))
