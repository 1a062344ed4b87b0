"""Many seeds of a small model trained at once, as one model.

Each seed keeps its own initialisation (``torch.manual_seed(seed)`` before building its
model, as a separate run does), its own data order (the same generator as ``train``) and
its own dropout masks. Optimizers act elementwise and the loss is the sum of the seeds'
own mean losses, so each seed's update equals its separate run's up to float rounding.

Two ways to stack the E models:

* ``wide`` (preferred): a model that is a chain of layers (LeNet-5, the seed-001 CIFAR
  net, plain VGG) becomes one *wide* model: each conv a grouped conv over E×C channels,
  each BatchNorm one E×C-channel BatchNorm, each linear layer a batched matrix product.
  Small convs then fill the vector units (``sharpen bench train`` times 8 LeNet-5 seeds
  against training them one after another).
* ``vmap``: any model without BatchNorm, through ``torch.func`` (``stack_module_state`` +
  ``vmap``); general, and timed by the same benchmark.

Hooks must declare ``seed_batchable = True`` (their batch transform treats every sample on
its own, so a batch holding several seeds' samples is fine).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sharpen.training.loop import (
    Hook,
    TrainData,
    TrainSettings,
    TrainState,
    _set_lr,
    make_optimizer,
    normalizer,
)
from sharpen.training.schedules import Constant, as_schedule

# modules that act per channel or per element: the same module serves the wide model
_SHARED = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Identity,
           nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.MaxPool2d, nn.AvgPool2d,
           nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


class NotBatchable(ValueError):
    """The model, hooks or settings cannot be trained as stacked seeds."""


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


class _WideLinear(nn.Module):
    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in layers]))  # E×in×out
        self.bias = (nn.Parameter(torch.stack([m.bias.detach()[None] for m in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: E×B×in
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class _Flatten(nn.Module):
    """(B, E·C, H, W) → (E, B, C·H·W), in the order ``nn.Flatten`` gives one seed."""

    def __init__(self, seeds: int):
        super().__init__()
        self.seeds = seeds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return x.reshape(b, self.seeds, -1).transpose(0, 1)


class WideModel(nn.Module):
    """E chain-structured models as one: input E×B×C×H×W, output E×B×K."""

    def __init__(self, models: Sequence[nn.Module], channels_last: bool = True):
        super().__init__()
        E = self.seeds = len(models)
        self.channels_last = channels_last
        chains = [_leaves(m) for m in models]
        layers: list[nn.Module] = []
        flat = False
        for group in zip(*chains):
            m = group[0]
            if isinstance(m, nn.Conv2d) and not flat:
                w = nn.Conv2d(E * m.in_channels, E * m.out_channels, m.kernel_size, m.stride,
                              m.padding, m.dilation, E * m.groups, m.bias is not None,
                              m.padding_mode)
                with torch.no_grad():
                    w.weight.copy_(torch.cat([g.weight for g in group]))
                    if m.bias is not None:
                        w.bias.copy_(torch.cat([g.bias for g in group]))
                layers.append(w)
            elif isinstance(m, nn.BatchNorm2d) and not flat:
                w = nn.BatchNorm2d(E * m.num_features, m.eps, m.momentum, m.affine,
                                   m.track_running_stats)
                with torch.no_grad():
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        if getattr(m, name) is not None:
                            getattr(w, name).copy_(torch.cat([getattr(g, name) for g in group]))
                layers.append(w)
            elif isinstance(m, nn.Flatten) and not flat and m.start_dim == 1 and m.end_dim == -1:
                layers.append(_Flatten(E))
                flat = True
            elif isinstance(m, nn.Linear) and flat:
                layers.append(_WideLinear(list(group)))
            elif isinstance(m, _SHARED):
                layers.append(copy.deepcopy(m))
            else:
                raise NotBatchable(f"layer {type(m).__name__} cannot be widened (supported: "
                                   "Conv2d, BatchNorm2d, Flatten, Linear, activations, pools, "
                                   "dropout)")
        if not flat:
            raise NotBatchable("the model has no Flatten before its classifier")
        self.layers = nn.Sequential(*layers)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, e * x.shape[2], *x.shape[3:])
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        return self.layers(h)

    def unwiden(self) -> list[list[torch.Tensor]]:
        """Per seed, its parameters in the original model's order and shapes."""
        out: list[list[torch.Tensor]] = [[] for _ in range(self.seeds)]
        for m in self.layers:
            for name, t in m.named_parameters(recurse=False):
                for e, part in enumerate(t.detach().chunk(self.seeds, 0)):
                    if isinstance(m, _WideLinear):
                        part = part[0].t() if name == "weight" else part[0, 0]
                    out[e].append(part.clone())
        return out


def _check_chain(model: nn.Module, shape: tuple[int, ...]) -> None:
    """A model is a chain when running its leaf modules in order reproduces its output."""
    probe = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    was = model.training
    model.eval()
    with torch.no_grad():
        ref = model(probe)
        if not torch.is_tensor(ref):
            model.train(was)
            raise NotBatchable("the model's output is not one tensor of logits")
        h = probe
        try:
            for m in _leaves(model):
                h = m(h)
        except RuntimeError:  # shapes do not line up: forward does more than the chain
            h = None
    model.train(was)
    if h is None or h.shape != ref.shape or not torch.allclose(h, ref, rtol=1e-4, atol=1e-5):
        raise NotBatchable(f"{type(model).__name__} is not a plain chain of layers (it has "
                           "branches or functional ops in forward)")


class _Vmapped(nn.Module):
    """Any BatchNorm-free model through torch.func: input E×B×..., output E×B×K."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        from torch.func import functional_call, stack_module_state, vmap

        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules()):
            raise NotBatchable("vmap stacking does not support BatchNorm models")
        params, buffers = stack_module_state(list(models))
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v)
                                        for k, v in params.items()})
        self._names = list(params)
        self._buffers_stacked = buffers
        self.base = copy.deepcopy(models[0]).to("meta")

        def fwd(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        self._train = vmap(fwd, randomness="different")
        self._eval = vmap(fwd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = {n: self.params[n.replace(".", "__")] for n in self._names}
        f = self._train if self.training else self._eval
        return f(p, self._buffers_stacked, x)


def stack_models(models: Sequence[nn.Module], input_shape: tuple[int, ...],
                 impl: str = "auto", channels_last: bool = True) -> nn.Module:
    """E models → one module mapping E×B×input to E×B×K (``wide`` or ``vmap``)."""
    if impl not in ("auto", "wide", "vmap"):
        raise ValueError(f"impl must be 'auto', 'wide' or 'vmap', got {impl!r}")
    if impl in ("auto", "wide"):
        try:
            _check_chain(models[0], input_shape)
            return WideModel(models, channels_last)
        except NotBatchable:
            if impl == "wide":
                raise
    return _Vmapped(models)


def check_hooks(hooks: Sequence[Hook]) -> None:
    bad = [type(h).__name__ for h in hooks if not getattr(h, "seed_batchable", False)]
    if bad:
        raise NotBatchable(f"hooks {bad} cannot run on stacked seeds (their batch transform "
                           "is not per sample, or they inspect one model)")


def train_seeds(make_model: Callable[[], nn.Module], data: TrainData, settings: TrainSettings,
                seeds: Sequence[int], hooks: Sequence[Hook] = (),
                device: torch.device | str = "cpu", impl: str = "auto",
                on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
                ) -> tuple[list[list[dict[str, Any]]], list[str | None]]:
    """Train one model per seed, all at once.

    Returns per-seed lists of epoch rows (the columns of :func:`train`) and, per seed, None
    or the divergence message; a diverged seed stops recording and the others go on.
    ``on_epoch(k, row)`` is called for seed index ``k`` after every epoch.
    """
    device = torch.device(device)
    s = settings
    if s.lr_adaptive_threshold is not None:
        raise NotBatchable("the adaptive learning rate differs per seed; run seeds separately")
    if s.task is not None or s.loss not in ("cross_entropy", "nll"):
        raise NotBatchable("stacked seeds support classification tasks only")
    if s.compile or s.amp != "off":
        raise NotBatchable("stacked seeds support neither compile nor amp")
    check_hooks(hooks)
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(make_model().to(device))
    E = len(seeds)
    shape = tuple(data.train.x.shape[1:])
    model = stack_models(models, shape, impl, s.channels_last)
    if isinstance(model, WideModel):  # its layers were built on the CPU (vmap keeps the base
        model.to(device)              # model on the meta device: it must not move)
    model.train()
    opt = make_optimizer(model, s)
    lr_s, wd_s = as_schedule(s.lr), as_schedule(s.weight_decay)
    wd_scheduled = not isinstance(wd_s, Constant)
    gens = [torch.Generator().manual_seed(int(seed) + 7919) for seed in seeds]  # as train()
    torch.manual_seed(int(seeds[0]))  # dropout masks of the stacked model
    norm = normalizer(data.mean, data.std, device)
    state = TrainState(model, opt, data, s, device, torch.Generator().manual_seed(0),
                       seed=int(seeds[0]), norm=norm)
    fn = F.cross_entropy if s.loss == "cross_entropy" else F.nll_loss
    n, bs = len(data.train), s.batch_size
    rows: list[list[dict[str, Any]]] = [[] for _ in seeds]
    diverged: list[str | None] = [None] * E
    for epoch in range(s.epochs):
        state.epoch, state.train_x, state.extra = epoch, data.train.x, {}
        state.lr = float(lr_s.value(epoch, s.epochs))
        _set_lr(opt, state.lr, wd_s.value(epoch, s.epochs) if wd_scheduled else None)
        t0 = time.perf_counter()
        for h in hooks:
            h.on_epoch_start(state)
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        stop = n - n % bs if s.drop_last and n >= bs else n
        loss_sum = torch.zeros(E, device=device)
        correct = torch.zeros(E, dtype=torch.long, device=device)
        seen = 0
        for i in range(0, stop, bs):
            idx = perms[:, i:i + bs].reshape(-1)  # every seed its own batch, seed-major
            state.batch_index = idx
            x, y = norm(state.train_x[idx]), data.train.y[idx]
            for h in hooks:
                x, y = h.on_batch(state, x, y)
            b = len(y) // E
            out = model(x.view(E, b, *x.shape[1:]))  # E×B×K
            per_seed = fn(out.flatten(0, 1), y, reduction="none").view(E, b).mean(1)
            opt.zero_grad(set_to_none=True)
            per_seed.sum().backward()  # no shared parameters: each seed gets its own gradient
            opt.step()
            state.step += 1
            with torch.no_grad():
                loss_sum += per_seed.detach() * b
                correct += (out.argmax(-1) == y.view(E, b)).sum(1)
            seen += b
        train_time = time.perf_counter() - t0
        evals = {}
        splits = [("val", data.val)] if data.val is not None and len(data.val) else []
        for name, split in splits + [("test", data.test)]:
            # E seeds see every image: keep E × chunk near eval_batch_size (activations in cache)
            evals[name] = _evaluate(model, split, norm, fn, E, max(1, s.eval_batch_size // E))
        for k in range(E):
            if diverged[k] is not None:
                continue
            tr_loss = float(loss_sum[k]) / max(seen, 1)
            if not math.isfinite(tr_loss):
                diverged[k] = f"loss became {tr_loss} in epoch {epoch + 1}"
                continue
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": tr_loss,
                                   "train_acc": int(correct[k]) / max(seen, 1)}
            for name, (el, ea) in evals.items():
                row[f"{name}_loss"], row[f"{name}_acc"] = float(el[k]), float(ea[k])
            row["gap"] = row["train_acc"] - row.get("val_acc", row["test_acc"])
            row["lr"] = state.lr
            row["seconds"] = time.perf_counter() - t0
            row["images_per_s"] = seen * E / train_time if train_time > 0 else float("nan")
            row.update(state.extra)
            for h in hooks:
                h.on_epoch_end(state, row)
            rows[k].append(row)
            if on_epoch is not None:
                on_epoch(k, row)
        if all(d is not None for d in diverged):
            break
    return rows, diverged


@torch.no_grad()
def _evaluate(model: nn.Module, split: Any, norm: Callable, fn: Callable, E: int,
              batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    was = model.training
    model.eval()
    tl = torch.zeros(E, dtype=torch.float64)  # as evaluate(): sums in double precision
    tc = torch.zeros(E, dtype=torch.long)
    n = len(split)
    for i in range(0, n, batch_size):
        x = norm(split.x[i:i + batch_size])
        y = split.y[i:i + batch_size]
        out = model(x.unsqueeze(0).expand(E, *x.shape))  # every seed sees the same images
        tl += fn(out.flatten(0, 1), y.repeat(E), reduction="none").view(E, -1).sum(1).cpu().double()
        tc += (out.argmax(-1) == y).sum(1).cpu()
    model.train(was)
    return tl / max(n, 1), tc.double() / max(n, 1)
