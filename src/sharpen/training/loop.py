"""The training loop, for one seed or many at once, and its declared hooks.

``train`` trains E ≥ 1 seeds of one configuration as one stacked model
(:mod:`sharpen.training.stack`): a plain run is E = 1 of the same code. Per seed it keeps
its own initialisation (the caller builds one model per seed, see :func:`build_models`),
data (pairs are drawn per seed), data order, dropout masks and every other random draw
(named streams, :mod:`sharpen.training.streams`), its own loss (the stacked loss is the
sum of the seeds' mean losses, so each seed's gradient is its own), metrics, learning-rate
multiplier (``state.lr_scale``: the lr_adaptive technique sets it per seed) and divergence:
a seed whose loss becomes NaN stops recording and the others go on.

On the CPU a seed's numbers are the same bits whatever trains beside it (alone, or stacked
with any others): each layer calls its kernel per seed (:mod:`~sharpen.training.stack`),
each seed's loss comes from its own rows (:func:`seed_losses`), the optimizer steps each
seed's slice as its own tensor (:class:`SeedOptimizer`), every
seed is evaluated in chunks of one size whatever the stack (:data:`EVAL_SEEDS`), and
techniques reduce per seed (gradient clipping's norms) and blur each seed's batch with its
own call (randomized deblurring's matrix products). The thread count is not
covered: torch splits a convolution's reductions by it, so the plan fixes it
(:mod:`sharpen.experiments.plan`). ``tests/test_stack_identity.py`` checks it through
``sharpen run``.

Techniques act only through six hooks (Composer-style events):
  on_epoch_start(state)              - change data, dropout, image size for this epoch
  on_batch(state, x, y) -> (x, y)    - transform a drawn batch (seed-major, normalised)
  on_loss(state, loss, out, y) -> loss   - loss: one value per seed; add auxiliary terms
  on_before_step(state)              - gradients are ready: clip or inspect them
  on_step(state)                     - the weights were just updated: average them
  on_epoch_end(state, row)           - once per seed (``state.seed_index``): add columns

Learning rate and weight decay follow their schedules per epoch, or per step when a
schedule says ``per = "step"`` or ``warmup`` is set (a linear ramp over the first steps).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from sharpen.training.checkpoint import Checkpoint
from sharpen.training.phases import phase
from sharpen.training.schedules import as_schedule
from sharpen.training.stack import (
    StackedConv,
    bind_dropout,
    resolve_strategy,
    seed_state_dict,
    stack_models,
)
from sharpen.training.streams import Streams
from sharpen.training.tasks import ClassificationTask


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
    classes: int | None = None  # classification: number of classes (soft targets need it)

    def num_classes(self) -> int:
        return self.classes if self.classes is not None else int(self.train.y.max()) + 1


@dataclass
class TrainSettings:
    """The trainer's own settings. Each field has the name of its experiment-file key, so
    :meth:`from_config` reads them by name (nothing is copied by hand)."""

    epochs: int
    batch_size: int
    optimizer: str = "sgd"  # sgd, adam, adamw (decoupled weight decay)
    lr: Any = 0.01  # number or schedule
    warmup: float = 0.0  # epochs (fractions allowed) of linear lr warm-up, applied per step
    momentum: float = 0.9
    weight_decay: Any = 0.0  # number or schedule
    nesterov: bool = False
    loss: str = "cross_entropy"
    eval_batch_size: int = 1000
    drop_last: bool = False
    task: Any = None  # a training.tasks task; None = classification with ``loss``
    # NHWC layout: oneDNN's CPU convs and cuDNN's tensor-core convs both prefer it
    # (sharpen bench train measures it against NCHW: docs/methods/speed-and-scale.md)
    channels_last: bool = True
    amp: str = "off"  # "bf16": autocast forward and loss to bfloat16 (weights stay fp32)
    # torch.compile the model (CPU: needs a C++ compiler); a mode string is compile's mode:
    # "reduce-overhead" captures the step with CUDA graphs where shapes are static
    compile: bool | str = False
    fused_optimizer: bool = True  # one fused kernel per step for SGD/Adam
    stack_conv: str = "auto"  # stacked convs/BatchNorm: loop, grouped, or auto (by device)
    vary: Any = None  # the streams that follow the seed (training.streams.Streams)
    pin_seed: int = 0  # what the pinned ones draw from

    @classmethod
    def from_config(cls, cfg: Any, **extra: Any) -> TrainSettings:
        """The settings a run configuration gives: every field of the same name."""
        names = [f.name for f in fields(cls) if hasattr(cfg, f.name)]
        return cls(**{n: getattr(cfg, n) for n in names}, **extra)


@dataclass
class TrainState:
    """What hooks see. Batches are seed-major: seed e's rows are e·B … (e+1)·B − 1."""

    model: nn.Module
    optimizer: Any  # a SeedOptimizer (torch's optimizer over per-seed slices)
    data: list[TrainData]  # one per seed (the same object when the seeds share their data)
    settings: TrainSettings
    device: torch.device
    seeds: list[int]
    epoch: int = 0  # 0-based
    step: int = 0
    lr: float = 0.0  # the schedule's lr this epoch (before per-seed multipliers)
    # per seed, the training images in use this epoch: uint8, or float on the 0..255 scale
    # (a curriculum may swap in a blurred copy); batch_index holds each seed's batch indices
    train_x: list[torch.Tensor] = field(default_factory=list)
    batch_index: torch.Tensor | None = None  # E×B
    seed_index: int = 0  # in on_epoch_end: the seed whose row is being finished
    batch: int = 0  # index of the batch within the epoch
    batches: int = 1  # batches per epoch
    task: Any = None  # what the output means (training.tasks): loss and accuracy
    eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    # this epoch's reported values: a number (every seed) or a list with one value per seed
    extra: dict[str, Any] = field(default_factory=dict)
    rng: dict[tuple[str, str], list[torch.Generator]] = field(default_factory=dict)
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    # per seed, a multiplier of the scheduled lr (a technique may change a seed's: lr_adaptive)
    lr_scale: list[float] = field(default_factory=list)

    def eval_splits(self) -> list[tuple[str, list[Split]]]:
        """The splits every epoch is evaluated on, per seed: validation (when held out),
        then test. The loop and any technique that evaluates (EMA) ask here."""
        d = self.data
        val = [("val", [x.val for x in d])] if d[0].val is not None and len(d[0].val) else []
        return val + [("test", [x.test for x in d])]

    @property
    def epochs(self) -> int:
        return self.settings.epochs

    @property
    def t(self) -> float:
        """Training time in epochs, fractional within an epoch (for per-step schedules)."""
        return self.epoch + self.batch / max(self.batches, 1)

    def now(self, schedule: Any) -> float:
        """A schedule's value at this point: per epoch, or per step if it says so."""
        return float(schedule.value(self.t if schedule.per == "step" else self.epoch,
                                    self.epochs))

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def progress(self) -> float:
        return self.epoch / (self.epochs - 1) if self.epochs > 1 else 1.0

    def generators(self, name: str, device: torch.device | str = "cpu") -> list[torch.Generator]:
        """One generator per seed for the named stream (created once, checkpointed)."""
        dev = torch.device(device)
        key = (name, dev.type)
        if key not in self.rng:
            streams = Streams(self.settings.vary, self.settings.pin_seed)
            self.rng[key] = [streams.generator(s, name, dev) for s in self.seeds]
        return self.rng[key]

    def rand(self, name: str, *shape: int) -> torch.Tensor:
        """E×shape uniform draws on the CPU, row e from seed e's stream ``name``."""
        return torch.stack([torch.rand(tuple(shape), generator=g) for g in self.generators(name)])

    def per_seed(self, x: torch.Tensor) -> torch.Tensor:
        """A seed-major batch viewed as E×B×…"""
        return x.unflatten(0, (self.n_seeds, -1))

    def gather(self, images: Sequence[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Rows ``index[e]`` of seed e's ``images[e]``, seed-major (one gather when shared)."""
        if all(im is images[0] for im in images):
            return images[0][index.reshape(-1)]
        return torch.cat([im[i] for im, i in zip(images, index)])


class Hook:
    """Base class: override any of the four events."""

    # True when every event treats each seed of a stacked batch on its own (per-sample
    # transforms, per-seed random streams): then the hook serves stacked seeds too
    stacks = False

    def on_epoch_start(self, state: TrainState) -> None:
        """Called before an epoch's batches are drawn."""

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform a normalised seed-major training batch."""
        return x, y

    def on_loss(self, state: TrainState, loss: torch.Tensor, out: Any, y: torch.Tensor
                ) -> torch.Tensor:
        """Add terms to the per-seed losses (a tensor of E values)."""
        return loss

    def on_before_step(self, state: TrainState) -> None:
        """Called after backward, before the optimizer step (gradients are ready)."""

    def on_step(self, state: TrainState) -> None:
        """Called after the optimizer step (the weights were just updated)."""

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        """Add columns to seed ``state.seed_index``'s metrics row."""

    # checkpointing: plain values are saved; tensors (caches such as a blurred copy of the
    # data) are not, and are rebuilt after a resume. Random generators live in state.rng.
    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if _plain(v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, (str, int)) and _plain(x) for k, x in v.items())
    return False


def build_models(factory: Callable[[], nn.Module], seeds: Sequence[int],
                 streams: Streams | None = None) -> list[nn.Module]:
    """One model per seed, each initialised from its seed's ``init`` stream (or the pinned
    one, when ``streams`` pins it)."""
    streams = streams or Streams()
    models = []
    for s in seeds:
        torch.manual_seed(streams.seed(s, "init"))
        models.append(factory())
    return models


class SeedOptimizer:
    """A torch optimizer over every seed's slice of each stacked parameter, stepped as a
    tensor of its own.

    The fused (and foreach) kernels round an element differently in a vector's body than in
    its tail, and split long tensors across threads by their length: over an E×… stacked
    tensor, seed e's elements would sit elsewhere than in its own run's tensor and be
    rounded differently. Stepping each seed's slice — a view of the stacked storage, laid
    out as that seed's tensor is when it trains alone — gives every seed the same update
    whatever trains beside it. ``param_groups``, ``zero_grad``, ``step`` and the state
    dict are the wrapped optimizer's.
    """

    def __init__(self, params: Sequence[torch.Tensor], seeds: int,
                 make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]):
        self.params = list(params)
        self.slices = [[p.detach()[e] for e in range(seeds)] for p in self.params]
        self.inner = make([v for per_seed in self.slices for v in per_seed])

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    @property
    def state(self) -> Any:
        return self.inner.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p, views in zip(self.params, self.slices):
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()
            for v in views:
                v.grad = None

    def step(self) -> None:
        for p, views in zip(self.params, self.slices):
            g = p.grad
            for e, v in enumerate(views):
                v.grad = None if g is None else g[e]
        self.inner.step()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def make_optimizer(model: nn.Module, s: TrainSettings) -> SeedOptimizer:
    """The optimizer of a stacked model (:func:`~sharpen.training.stack.stack_models`), as
    a :class:`SeedOptimizer` over its seeds' slices."""
    if not isinstance(getattr(model, "seeds", None), int):
        raise ValueError("make_optimizer needs a stacked model (stack_models), whose every "
                         "parameter holds one slice per seed")
    lr0 = as_schedule(s.lr).value(0, s.epochs)
    wd0 = as_schedule(s.weight_decay).value(0, s.epochs)
    params = list(model.parameters())
    # The fused kernels do the same update in one pass over all parameters instead of a
    # Python loop of small ops per parameter.
    fused = s.fused_optimizer and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    kw = {"fused": True} if fused else {}
    if s.optimizer == "sgd":
        def make(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
            return torch.optim.SGD(ps, lr=lr0, momentum=s.momentum, weight_decay=wd0,
                                   nesterov=s.nesterov, **kw)
    elif s.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if s.optimizer == "adam" else torch.optim.AdamW

        def make(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
            return cls(ps, lr=lr0, weight_decay=wd0, **kw)
    else:
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {s.optimizer!r}")
    return SeedOptimizer(params, model.seeds, make)


def normalizer(datas: Sequence[TrainData], device: torch.device
               ) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (seed-major, 0..255) → (x − mean) / std with each seed's own mean and std."""
    m = torch.tensor([list(d.mean) for d in datas], device=device) * 255.0  # E×C
    s = torch.tensor([list(d.std) for d in datas], device=device) * 255.0
    shared = bool((m == m[0]).all() and (s == s[0]).all())

    def norm(x: torch.Tensor) -> torch.Tensor:
        tail = (1,) * (x.dim() - 2)  # images N×C×H×W or signals N×C×L
        if shared:
            return (x.float() - m[0].view(1, -1, *tail)) / s[0].view(1, -1, *tail)
        xe = x.float().unflatten(0, (len(datas), -1))
        return ((xe - m.view(len(datas), 1, -1, *tail)) / s.view(len(datas), 1, -1, *tail)).flatten(0, 1)

    return norm


def _seed_rows(out: Any, seeds: int) -> list[Any]:
    """A seed-major model output (tensor, or dict / list / tuple of them) as one view per seed."""
    if torch.is_tensor(out):
        return list(out.chunk(seeds))
    if isinstance(out, dict):
        parts = {k: _seed_rows(v, seeds) for k, v in out.items()}
        return [{k: parts[k][e] for k in out} for e in range(seeds)]
    if isinstance(out, (list, tuple)):
        parts = [_seed_rows(v, seeds) for v in out]
        return [type(out)(p[e] for p in parts) for e in range(seeds)]
    return [out] * seeds


def seed_losses(task: Any, out: Any, y: torch.Tensor, seeds: int) -> torch.Tensor:
    """The task's per-sample losses, each seed's from calls on its own rows (seed-major).

    An element-wise kernel leaves the last numel mod (2 × vector width) elements of its
    tensor to its scalar function, and for sigmoid (BCE-with-logits' backward), SiLU, ELU,
    softplus, mish the scalar (std::exp) and vectorized (Sleef) results differ in the last
    bit: over the E·B stacked rows, which of a seed's rows are in that tail depends on E.
    """
    if seeds == 1:
        return task.loss(out, y)
    return torch.cat([task.loss(o, ye) for o, ye in zip(_seed_rows(out, seeds), y.chunk(seeds))])


# evaluation chunks are sized for this many stacked seeds (the plan's most, ten), for every
# stack size: a seed's chunks, and so its rounding, never depend on its stack partners
EVAL_SEEDS = 10


@torch.no_grad()
def evaluate(model: nn.Module, splits: Sequence[Split], norm: Callable, task: Any,
             batch_size: int, transform: Callable | None = None,
             predictions: list[torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Per seed, {"loss", "acc", and the task's extra metrics} over its split, in eval mode.

    ``predictions``: an empty list that receives, per seed, the predicted class of every
    image of its split (int16, on the CPU): the per-image record behind the accuracy.

    Seeds that share a split see the same images (repeated across the stacked batch).
    Each seed is evaluated in chunks of ``batch_size // EVAL_SEEDS`` images whatever its
    stack size (a kernel may round a row differently in a batch of another size: a
    one-row chunk is a matrix-vector product), so a forward holds at most ``batch_size``
    images when ten seeds stack and a seed's numbers do not depend on how many seeds were
    evaluated with it.
    """
    E = len(splits)
    was = model.training
    model.eval()
    shared = all(s is splits[0] for s in splits)
    n = len(splits[0])
    chunk = max(1, batch_size // EVAL_SEEDS)
    tot_loss = torch.zeros(E, dtype=torch.float64)
    correct = torch.zeros(E, dtype=torch.long)
    extra: dict[str, list[Any]] = {}
    preds: list[torch.Tensor] = []
    for i in range(0, n, chunk):
        if shared:
            xb, yb = splits[0].x[i:i + chunk], splits[0].y[i:i + chunk]
            x = xb.unsqueeze(0).expand(E, *xb.shape).flatten(0, 1)
            y = yb.unsqueeze(0).expand(E, *yb.shape).flatten(0, 1)
        else:
            x = torch.cat([s.x[i:i + chunk] for s in splits])
            y = torch.cat([s.y[i:i + chunk] for s in splits])
        x = norm(x)
        if transform is not None:
            x = transform(x)
        out = model(x)
        tot_loss += seed_losses(task, out, y, E).view(E, -1).double().sum(1).cpu()
        correct += task.correct(out, y).view(E, -1).sum(1).cpu()
        if predictions is not None and hasattr(task, "predict"):  # a task may not classify
            preds.append(task.predict(out).view(E, -1).to(torch.int16).cpu())
        for k, (c, per) in task.extra(out, y).items():
            e = extra.setdefault(k, [torch.zeros(E, dtype=torch.long), 0])
            e[0] += c.view(E, -1).sum(1).cpu()
            e[1] += per * (len(y) // E)
    model.train(was)
    if predictions is not None and preds:
        predictions.extend(t.clone() for t in torch.cat(preds, 1).unbind(0))
    res = []
    for k in range(E):
        r = {"loss": float(tot_loss[k]) / max(n, 1), "acc": int(correct[k]) / max(n, 1)}
        r.update({name: int(c[k]) / max(t, 1) for name, (c, t) in extra.items()})
        res.append(r)
    return res


@dataclass
class Trained:
    """What :func:`train` returns: per seed its epoch rows and None or why it diverged."""

    model: nn.Module  # the stacked model; the models passed in hold each seed's final weights
    rows: list[list[dict[str, Any]]]
    diverged: list[str | None]
    # per seed, {split: predicted class of every image} at the last epoch evaluated
    predictions: list[dict[str, torch.Tensor]] = field(default_factory=list)


def train(models: nn.Module | Sequence[nn.Module], data: TrainData | Sequence[TrainData],
          settings: TrainSettings, seeds: int | Sequence[int], hooks: Sequence[Hook] = (),
          device: torch.device | str = "cpu",
          on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
          eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
          on_checkpoint: Callable[[Checkpoint], None] | None = None,
          resume: Checkpoint | None = None) -> Trained:
    """Train one model per seed, all at once, and return every seed's epoch rows.

    ``models`` holds one model per seed (build them with :func:`build_models`); ``data``
    one TrainData, or one per seed. ``on_epoch(k, row)`` is called for seed index k after
    every epoch. ``on_checkpoint`` receives, after every epoch, a :class:`Checkpoint` of
    everything needed to continue exactly (weights, optimizer, every random stream, hook
    states, rows; its tensors are the live ones: save it at once); passing it back as
    ``resume`` continues with the same numbers as an uninterrupted run. With one seed, a
    NaN loss raises :class:`Diverged`; with several, the seed is marked diverged and the
    others go on.
    """
    seeds, models, datas = _per_seed(models, data, seeds)
    run = _build(models, datas, settings, seeds, torch.device(device), eval_transform)
    state, s = run.state, settings
    record = _Record.fresh(len(seeds)) if resume is None else _restore(run, hooks, resume)
    n, bs = len(datas[0].train), s.batch_size
    stop = n - n % bs if s.drop_last and n >= bs else n  # images drawn per epoch
    state.batches = -(-stop // bs)
    lr = _LrSchedule.of(s, state.batches)
    for epoch in range(record.epoch, s.epochs):
        if all(d is not None for d in record.diverged):
            break
        _start_epoch(state, epoch)
        scale = lr.apply(state)
        # the clock starts: images/s counts a curriculum's per-epoch data preparation
        tally = _EpochTally.start(state.lr, len(seeds), state.device)
        for h in hooks:
            h.on_epoch_start(state)
        with phase("data"):
            order = torch.stack([torch.randperm(n, generator=g)
                                 for g in state.generators("data_order")]).to(state.device)
        for i in range(0, stop, bs):
            state.batch = i // bs
            if lr.per_step and i:
                scale = lr.apply(state)
            idx = order[:, i:i + bs]  # E×b: each seed's images in this batch
            with phase("data"):
                x, y = _draw_batch(run, hooks, idx)
            loss, out = _step(run, hooks, x, y, scale)
            with phase("bookkeeping"):
                tally.add(state.task, loss, out, y, idx.shape[1])
        tally.stop()
        with phase("evaluation"):
            evals, record.predictions = _evaluate_epoch(run)
        with phase("files: metrics"):
            _record_epoch(run, hooks, record, tally, evals, on_epoch)
        if on_checkpoint is not None:
            with phase("files: checkpoint"):
                on_checkpoint(_checkpoint(run, hooks, record))
    with torch.no_grad():  # each seed's model ends holding its trained weights
        for e, m in enumerate(models):
            m.to(state.device).load_state_dict(seed_state_dict(run.model, e))
    return Trained(run.model, record.rows, record.diverged, record.predictions)


# --- the phases of train, in the order it calls them -----------------------------------------

def _per_seed(models: nn.Module | Sequence[nn.Module], data: TrainData | Sequence[TrainData],
              seeds: int | Sequence[int]
              ) -> tuple[list[int], list[nn.Module], list[TrainData]]:
    """The seeds, their models and their data as lists of one length (checked)."""
    seed_list = [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]
    model_list = [models] if isinstance(models, nn.Module) else list(models)
    E = len(seed_list)
    if len(model_list) != E:
        raise ValueError(f"{len(model_list)} models for {E} seeds")
    datas = [data] * E if isinstance(data, TrainData) else list(data)
    if len({len(d.train) for d in datas}) != 1:
        raise ValueError("stacked seeds need training splits of one size")
    return seed_list, model_list, datas


def stacked_for_training(models: Sequence[nn.Module], s: TrainSettings,
                         device: torch.device | str = "cpu") -> nn.Module:
    """The seeds' models stacked as :func:`train` trains them (its conv strategy for the
    device, NHWC convolutions when ``channels_last``), on ``device``, in train mode."""
    device = torch.device(device)
    model = stack_models(models, resolve_strategy(s.stack_conv, device)).to(device).train()
    if s.channels_last:
        for m in model.modules():
            if isinstance(m, StackedConv):
                m.channels_last_()
    return model


def training_forward(model: nn.Module, s: TrainSettings, device: torch.device | str = "cpu"
                     ) -> tuple[Callable[[torch.Tensor], Any],
                                Callable[[], contextlib.AbstractContextManager[Any]]]:
    """How :func:`train` calls the stacked model: the model or ``torch.compile``'s wrapper
    of it (``compile``), and the context its forward and loss run in (bf16 autocast under
    ``amp = "bf16"``, else nothing). A step timed without them is another step."""
    device = torch.device(device)
    forward = (torch.compile(model, mode=s.compile) if isinstance(s.compile, str)
               else torch.compile(model)) if s.compile else model
    return forward, ((lambda: torch.autocast(device.type, dtype=torch.bfloat16))
                     if s.amp == "bf16" else contextlib.nullcontext)


@dataclass
class _Run:
    """The parts of one training every phase shares, built once by :func:`_build`."""

    model: nn.Module  # the stacked model (stack_models)
    forward: Callable[[torch.Tensor], Any]  # the model, or torch.compile's wrapper of it
    opt: SeedOptimizer
    state: TrainState  # what hooks see (it holds the model, optimizer, data, task, norm)
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]  # bf16, or nothing
    memory_format: torch.memory_format  # of a batch of images (NHWC when channels_last)


def _build(models: list[nn.Module], datas: list[TrainData], s: TrainSettings,
           seeds: list[int], device: torch.device,
           eval_transform: Callable[[torch.Tensor], torch.Tensor] | None) -> _Run:
    """The seeds' models stacked into one on ``device``, its optimizer and the state."""
    if s.amp not in ("off", "bf16"):
        raise ValueError(f"amp must be 'off' or 'bf16', got {s.amp!r}")
    model = stacked_for_training(models, s, device)
    opt = make_optimizer(model, s)
    forward, autocast = training_forward(model, s, device)
    state = TrainState(model, opt, datas, s, device, seeds, norm=normalizer(datas, device),
                       task=s.task or ClassificationTask(s.loss), eval_transform=eval_transform)
    bind_dropout(model, state.generators("dropout", device))
    state.lr_scale = [1.0] * len(seeds)
    return _Run(model, forward, opt, state, autocast,
                torch.channels_last if s.channels_last else torch.contiguous_format)


@dataclass
class _Record:
    """What training has produced so far: per seed its rows, None or why it diverged, and
    its predictions at the last epoch evaluated; ``epoch``: the epochs done."""

    rows: list[list[dict[str, Any]]]
    diverged: list[str | None]
    predictions: list[dict[str, torch.Tensor]]
    epoch: int

    @classmethod
    def fresh(cls, seeds: int) -> _Record:
        return cls([[] for _ in range(seeds)], [None] * seeds, [], 0)


def _restore(run: _Run, hooks: Sequence[Hook], ckpt: Checkpoint) -> _Record:
    """Put a checkpoint's state back (model, optimizer, random streams, hooks, lr scales,
    step) and return its record: training goes on after its epoch."""
    state = run.state
    if ckpt.seeds is not None and ckpt.seeds != state.seeds:
        raise ValueError(f"checkpoint of seeds {ckpt.seeds} cannot resume seeds {state.seeds}")
    run.model.load_state_dict(ckpt.model)
    run.opt.load_state_dict(ckpt.optimizer)
    for (name, dev), states in ckpt.rng.items():
        for g, st in zip(state.generators(name, dev if dev != "cuda" else state.device),
                         states):
            g.set_state(st)
    torch.set_rng_state(ckpt.torch_rng)
    for h, hs in zip(hooks, ckpt.hooks):
        h.load_state_dict(hs)
    state.lr_scale = list(ckpt.lr_scale)
    state.step = ckpt.step
    return _Record([list(r) for r in ckpt.rows], list(ckpt.diverged),
                   list(ckpt.predictions), ckpt.epoch)


@dataclass
class _LrSchedule:
    """The learning rate and weight decay of each step: the schedules × a linear warm-up."""

    lr: Any  # schedules (training.schedules)
    weight_decay: Any
    warm_steps: int  # 0: no warm-up
    const_wd: bool  # a plain number: the optimizer keeps the one it was built with

    @classmethod
    def of(cls, s: TrainSettings, batches: int) -> _LrSchedule:
        warm = max(1, round(s.warmup * batches)) if s.warmup > 0 else 0
        return cls(as_schedule(s.lr), as_schedule(s.weight_decay), warm,
                   isinstance(s.weight_decay, (int, float)))

    @property
    def per_step(self) -> bool:
        """Set again before every step (else once per epoch)."""
        return bool(self.warm_steps) or self.lr.per == "step" or self.weight_decay.per == "step"

    def apply(self, state: TrainState) -> torch.Tensor | None:
        """Put this step's lr and weight decay into the optimizer (``state.lr``: the
        schedule's); returns each seed's update scale when their ``lr_scale``s differ."""
        warm = min(1.0, (state.step + 1) / self.warm_steps) if self.warm_steps else 1.0
        state.lr = state.now(self.lr) * warm
        mult = state.lr_scale
        uniform = all(m == mult[0] for m in mult)
        # per-seed lr multipliers: step with lr 1 and scale each seed's update (SGD, Adam
        # and AdamW updates are linear in lr); one multiplier for all: the group lr carries it
        _set_lr(state.optimizer, state.lr * mult[0] if uniform else 1.0,
                None if self.const_wd else state.now(self.weight_decay))
        return None if uniform else torch.tensor([state.lr * m for m in mult],
                                                 device=state.device)


def _set_lr(opt: SeedOptimizer, lr: float, wd: float | None) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
        if wd is not None:
            g["weight_decay"] = wd


def _start_epoch(state: TrainState, epoch: int) -> None:
    """Reset what hooks may have changed last epoch: the images in use, reported values."""
    state.epoch = epoch
    state.train_x = [d.train.x for d in state.data]
    state.extra = {}
    state.batch = 0


@dataclass
class _EpochTally:
    """One epoch's training numbers, summed on the device (no sync per batch), its clock
    and the lr of its first step."""

    lr: float
    loss_sum: torch.Tensor  # per seed, Σ batch mean loss × batch size
    correct: torch.Tensor
    extra: dict[str, list[Any]]  # a task's extra metric → [per-seed counts, items]
    seen: int = 0  # images per seed
    t0: float = 0.0
    train_time: float = 0.0

    @classmethod
    def start(cls, lr: float, seeds: int, device: torch.device) -> _EpochTally:
        return cls(lr, torch.zeros(seeds, device=device),
                   torch.zeros(seeds, dtype=torch.long, device=device), {},
                   t0=time.perf_counter())

    @torch.no_grad()
    def add(self, task: Any, loss: torch.Tensor, out: Any, y: torch.Tensor, b: int) -> None:
        """Count a batch of ``b`` images per seed (``loss``: its E mean losses)."""
        E = loss.shape[0]
        self.loss_sum += loss.detach().float() * b
        self.correct += task.correct(out, y).view(E, b).sum(1)
        for k, (c, per) in task.extra(out, y).items():
            e = self.extra.setdefault(k, [torch.zeros_like(self.correct), 0])
            e[0] += c.view(E, b).sum(1)
            e[1] += per * b
        self.seen += b

    def stop(self) -> None:
        self.train_time = time.perf_counter() - self.t0


def _draw_batch(run: _Run, hooks: Sequence[Hook], idx: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed-major images and targets of the batch ``idx`` (E×b), normalised and through the
    hooks' ``on_batch``."""
    state = run.state
    state.batch_index = idx
    datas = state.data
    x = state.norm(state.gather(state.train_x, idx))
    y = datas[0].train.y[idx.reshape(-1)] if all(d.train.y is datas[0].train.y for d in datas) \
        else state.gather([d.train.y for d in datas], idx)
    for h in hooks:
        x, y = h.on_batch(state, x, y)
    if x.dim() == 4:
        x = x.contiguous(memory_format=run.memory_format)
    return x, y


def _step(run: _Run, hooks: Sequence[Hook], x: torch.Tensor, y: torch.Tensor,
          scale: torch.Tensor | None) -> tuple[torch.Tensor, Any]:
    """One optimizer step on a batch; returns the seeds' losses (after ``on_loss``) and the
    model's output. ``scale``: each seed's lr, when their lr scales differ."""
    state, opt = run.state, run.opt
    with run.autocast():
        with phase("forward"):
            out = run.forward(x)
        with phase("loss"):
            per_sample = seed_losses(state.task, out, y, state.n_seeds)
    with phase("loss"):
        loss = per_sample.view(state.n_seeds, -1).mean(1)
        for h in hooks:
            loss = h.on_loss(state, loss, out, y)
    with phase("backward"):
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # seeds share no weights: each gets its own gradient
    with phase("optimizer"):
        for h in hooks:
            h.on_before_step(state)
        if scale is None:
            opt.step()
        else:  # the optimizer stepped with lr 1: each seed's update is scaled by its own lr
            before = [p.detach().clone() for p in run.model.parameters()]
            opt.step()
            with torch.no_grad():
                for p, p0 in zip(run.model.parameters(), before):
                    p.copy_(p0 + (p - p0) * scale.view(-1, *[1] * (p.dim() - 1)))
        for h in hooks:
            h.on_step(state)
    state.step += 1
    return loss, out


def _evaluate_epoch(run: _Run) -> tuple[dict[str, list[dict[str, float]]],
                                        list[dict[str, torch.Tensor]]]:
    """Every seed on every split it is evaluated on (:meth:`TrainState.eval_splits`): its
    numbers per split, and its predicted class of every image per split."""
    state = run.state
    preds: dict[str, list[torch.Tensor]] = {}
    evals = {name: evaluate(run.model, sp, state.norm, state.task,
                            state.settings.eval_batch_size, state.eval_transform,
                            predictions=preds.setdefault(name, []))
             for name, sp in state.eval_splits()}
    return evals, [{name: p[k] for name, p in preds.items() if p} for k in range(state.n_seeds)]


def _record_epoch(run: _Run, hooks: Sequence[Hook], record: _Record, tally: _EpochTally,
                  evals: dict[str, list[dict[str, float]]],
                  on_epoch: Callable[[int, dict[str, Any]], None] | None) -> None:
    """Each seed's row of the epoch, through the hooks' ``on_epoch_end``, into the record;
    a seed whose training loss is not finite diverges instead (with one seed: raises)."""
    state = run.state
    E, epoch = state.n_seeds, state.epoch
    losses = tally.loss_sum.double().cpu() / max(tally.seen, 1)
    for k in range(E):
        if record.diverged[k] is not None:
            continue
        train_loss = float(losses[k])
        if not math.isfinite(train_loss):
            if E == 1:
                raise Diverged(epoch + 1, train_loss)
            record.diverged[k] = str(Diverged(epoch + 1, train_loss))
            continue
        row = _seed_row(state, k, train_loss, tally, evals)
        state.seed_index = k
        for h in hooks:
            h.on_epoch_end(state, row)
        record.rows[k].append(row)
        if on_epoch is not None:
            on_epoch(k, row)
    record.epoch = epoch + 1


def _seed_row(state: TrainState, k: int, train_loss: float, tally: _EpochTally,
              evals: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Seed k's numbers of the epoch (before the hooks add theirs), in metrics.csv's order."""
    seen = max(tally.seen, 1)
    row: dict[str, Any] = {"epoch": state.epoch + 1, "train_loss": train_loss,
                           "train_acc": int(tally.correct[k]) / seen}
    row.update({f"train_{name}": int(c[k]) / max(t, 1) for name, (c, t) in tally.extra.items()})
    for name, ev in evals.items():
        r = dict(ev[k])
        row[f"{name}_loss"], row[f"{name}_acc"] = r.pop("loss"), r.pop("acc")
        row.update({f"{name}_{m}": v for m, v in r.items()})
    row["gap"] = row["train_acc"] - row.get("val_acc", row["test_acc"])
    row["lr"] = tally.lr * state.lr_scale[k]
    row["seconds"] = time.perf_counter() - tally.t0
    row["images_per_s"] = (tally.seen * state.n_seeds / tally.train_time if tally.train_time > 0
                           else float("nan"))
    row.update({name: _seed_value(v, k) for name, v in state.extra.items()})
    return row


def _seed_value(v: Any, k: int) -> Any:
    return v[k] if isinstance(v, (list, tuple)) else v


def _checkpoint(run: _Run, hooks: Sequence[Hook], record: _Record) -> Checkpoint:
    """Everything needed to go on after ``record.epoch`` epochs with the same numbers."""
    state = run.state
    return Checkpoint(
        seeds=state.seeds, epoch=record.epoch, model=run.model.state_dict(),
        optimizer=run.opt.state_dict(),
        rng={key: [g.get_state() for g in gs] for key, gs in state.rng.items()},
        torch_rng=torch.get_rng_state(), hooks=[h.state_dict() for h in hooks],
        lr_scale=state.lr_scale, step=state.step, rows=record.rows,
        diverged=record.diverged, predictions=record.predictions)
