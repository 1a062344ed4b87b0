"""E models of one architecture as one module: the stacked model the trainer always trains.

The batch is *seed-major*: E·B samples, seed e's B samples at rows e·B … (e+1)·B − 1. The
model's own ``forward`` runs unchanged on that batch; only its leaf modules that hold
weights (and dropout, whose masks are per seed) are swapped for stacked versions holding E
copies of their parameters, each applied to its own seed's rows. Everything else in a
forward — activations, pooling, residual additions, slicing a pair into its two digits,
``flatten(1)`` — acts on each sample on its own, so it serves E seeds as it serves one.
That is why BatchNorm, residual and pair models stack (BatchNorm keeps per-seed statistics)
and why a plain run is E = 1 of the same code.

Convolutions and BatchNorm have two strategies (``stack_conv``): ``"loop"`` runs one call
per seed on a contiguous slice, ``"grouped"`` moves the seeds onto the channel axis and runs
one grouped convolution (groups × E) and one BatchNorm over E·C channels: the same
arithmetic, no Python loop over seeds, one kernel launch instead of E (what a GPU needs).
``"auto"`` picks grouped on CUDA and the loop on the CPU, where the loop measured faster
(oneDNN's grouped kernels are slow for small channel counts; ``sharpen bench train``).
Linear layers run one matrix product per seed.

Stacked equals alone, bit for bit, on the CPU (the default ``loop``): every layer with
weights calls its kernel once per seed on that seed's rows, exactly the call the seed makes
when it trains alone (E = 1), the loss is computed from each seed's own rows
(:func:`sharpen.training.loop.seed_losses`: an element-wise kernel's scalar tail rounds
sigmoid, SiLU, ELU, softplus and mish differently from its vector body, and over all E·B
rows which of a seed's rows fall in the tail depends on E), and everything else acts on
each sample on its own. A user's model with such activations inside (or a layer whose
kernel rounds a seed's rows by where they sit in the stack) fails :func:`stack_problem`'s
bit-for-bit probe and trains one seed per job. A
batched kernel would not do: a batched matrix product (bmm) or a reduction over all seeds'
rows chooses its kernel, and its split across threads, from the whole batch's shape, and
rounds a seed's rows differently with E (measured: bmm with 2 threads on 6- or 7-row
batches). The trainer does the rest per seed too (:mod:`sharpen.training.loop`: the
optimizer steps each seed's slice as a tensor of its own, evaluation chunks have one size
for every E). ``"grouped"`` (and any CUDA kernel) is not a per-seed call: there a seed's
numbers may depend on its stack partners.

A model stacks when every weight sits in a supported leaf module and its forward treats
samples independently; :func:`stack_problem` checks both with a probe and says why not.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class NotStackable(ValueError):
    """The model cannot be trained as stacked seeds (the message says which layer, and why)."""


class Stacked(nn.Module):
    """Base of the stacked leaf modules; ``seeds`` copies, seed-major batch."""

    seeds: int

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.shape[0] % self.seeds:
            raise RuntimeError(f"a stacked batch of {x.shape[0]} rows does not split into "
                               f"{self.seeds} seeds")
        return x.unflatten(0, (self.seeds, -1)).unbind(0)

    def seed_parameters(self, e: int) -> dict[str, torch.Tensor]:
        """Seed ``e``'s parameters and buffers under the original module's names."""
        out = {k: v[e] for k, v in self.named_parameters(recurse=False)}
        out.update({k: v[e] for k, v in self.named_buffers(recurse=False)
                    if k != "num_batches_tracked"})
        return out


def _stack(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    if tensors[0] is None:
        return None
    return torch.stack([t.detach() for t in tensors])


class StackedLinear(Stacked):
    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.seeds = len(layers)
        self.in_features, self.out_features = layers[0].in_features, layers[0].out_features
        self.weight = nn.Parameter(_stack([m.weight for m in layers]))  # E×out×in
        b = _stack([m.bias for m in layers])
        self.bias = nn.Parameter(b) if b is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one matrix product per seed, each the call its seed makes alone: a batched product
        # (bmm) picks its kernel and thread split from all seeds' shapes together
        ws = self.weight.unbind(0)
        bs = self.bias.unbind(0) if self.bias is not None else (None,) * self.seeds
        if self.seeds == 1:
            return F.linear(x, ws[0], bs[0])
        return torch.cat([F.linear(xe, w, b) for xe, w, b in zip(self._split(x), ws, bs)])


STRATEGIES = ("auto", "loop", "grouped")


def resolve_strategy(strategy: str, device: torch.device | str) -> str:
    """``auto`` → grouped on CUDA, the per-seed loop elsewhere."""
    if strategy not in STRATEGIES:
        raise ValueError(f"stack_conv must be one of {STRATEGIES}, got {strategy!r}")
    if strategy != "auto":
        return strategy
    return "grouped" if torch.device(device).type == "cuda" else "loop"


def _to_channels(x: torch.Tensor, seeds: int) -> torch.Tensor:
    """Seed-major E·B×C×… → B×(E·C)×… (seed e's channels at e·C … (e+1)·C − 1)."""
    xe = x.unflatten(0, (seeds, -1))
    return xe.transpose(0, 1).reshape(xe.shape[1], seeds * xe.shape[2], *xe.shape[3:])


def _from_channels(y: torch.Tensor, seeds: int) -> torch.Tensor:
    """B×(E·C)×… → seed-major E·B×C×…"""
    ye = y.unflatten(1, (seeds, -1))
    return ye.transpose(0, 1).reshape(seeds * y.shape[0], ye.shape[2], *y.shape[2:])


class StackedConv(Stacked):
    """Conv1d / Conv2d / ConvTranspose2d with E weights: one call per seed, or one grouped
    call (``grouped``; Conv1d/Conv2d with zero padding)."""

    def __init__(self, layers: Sequence[nn.Module], grouped: bool = False):
        super().__init__()
        self.seeds = len(layers)
        t = layers[0]
        self.grouped = grouped and isinstance(t, (nn.Conv1d, nn.Conv2d)) \
            and t.padding_mode == "zeros" and not isinstance(t.padding, str)
        # hyper-parameters only (kept out of the module tree: no parameters, no state_dict)
        object.__setattr__(self, "template", copy.deepcopy(layers[0]).to("meta"))
        self.weight = nn.Parameter(_stack([m.weight for m in layers]))
        b = _stack([m.bias for m in layers])
        self.bias = nn.Parameter(b) if b is not None else None

    def channels_last_(self) -> None:
        """Store each seed's 2-D conv weight in channels_last order (oneDNN then skips a
        reorder per call): strides of a 5-D tensor whose every slice is channels_last."""
        w = self.weight
        if w.dim() != 5:
            return
        E, O, I, kh, kw = w.shape
        t = torch.empty_strided(w.shape, (O * I * kh * kw, I * kh * kw, 1, kw * I, I),
                                dtype=w.dtype, device=w.device)
        t.copy_(w.detach())
        self.weight = nn.Parameter(t, requires_grad=w.requires_grad)

    def _one(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        t = self.template
        if isinstance(t, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, w, b, t.stride, t.padding, t.output_padding, t.groups,
                                      t.dilation)
        return t._conv_forward(x, w, b)

    def _all(self, x: torch.Tensor) -> torch.Tensor:
        """Every seed in one grouped convolution: seeds on the channel axis."""
        t, E = self.template, self.seeds
        w = self.weight.reshape(E * self.weight.shape[1], *self.weight.shape[2:])
        b = self.bias.reshape(-1) if self.bias is not None else None
        conv = F.conv2d if isinstance(t, nn.Conv2d) else F.conv1d
        y = conv(_to_channels(x, E), w, b, t.stride, t.padding, t.dilation, t.groups * E)
        return _from_channels(y, E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grouped and self.seeds > 1:
            if x.shape[0] % self.seeds:
                raise RuntimeError(f"a stacked batch of {x.shape[0]} rows does not split into "
                                   f"{self.seeds} seeds")
            return self._all(x)
        # unbind: one backward node stacks the seeds' gradients (E selects would each
        # scatter into a zero E×… tensor, summed)
        ws = self.weight.unbind(0)
        bs = self.bias.unbind(0) if self.bias is not None else (None,) * self.seeds
        if self.seeds == 1:
            return self._one(x, ws[0], bs[0])
        return torch.cat([self._one(xe, w, b) for xe, w, b in zip(self._split(x), ws, bs)])


class StackedBatchNorm(Stacked):
    """BatchNorm1d/2d with per-seed weights and per-seed batch and running statistics: one
    call per seed, or one call over E·C channels (``grouped``)."""

    def __init__(self, layers: Sequence[nn.modules.batchnorm._BatchNorm], grouped: bool = False):
        super().__init__()
        m = layers[0]
        self.grouped = grouped
        self.seeds = len(layers)
        self.eps, self.momentum, self.track = m.eps, m.momentum, m.track_running_stats
        w, b = _stack([x.weight for x in layers]), _stack([x.bias for x in layers])
        self.weight = nn.Parameter(w) if w is not None else None
        self.bias = nn.Parameter(b) if b is not None else None
        if self.track:
            self.register_buffer("running_mean", _stack([x.running_mean for x in layers]).clone())
            self.register_buffer("running_var", _stack([x.running_var for x in layers]).clone())
            self.register_buffer("num_batches_tracked", m.num_batches_tracked.detach().clone())
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or not self.track
        if self.grouped and self.seeds > 1:
            if x.shape[0] % self.seeds:
                raise RuntimeError(f"a stacked batch of {x.shape[0]} rows does not split into "
                                   f"{self.seeds} seeds")
            # views of the E×C buffers: batch_norm updates the running statistics in place
            y = F.batch_norm(
                _to_channels(x, self.seeds),
                self.running_mean.view(-1) if self.track else None,
                self.running_var.view(-1) if self.track else None,
                self.weight.reshape(-1) if self.weight is not None else None,
                self.bias.reshape(-1) if self.bias is not None else None,
                use_batch, factor, self.eps)
            return _from_channels(y, self.seeds)
        parts = []
        ws = self.weight.unbind(0) if self.weight is not None else (None,) * self.seeds
        bs = self.bias.unbind(0) if self.bias is not None else (None,) * self.seeds
        for e, xe in enumerate(self._split(x) if self.seeds > 1 else (x,)):
            rm = self.running_mean[e] if self.track else None
            rv = self.running_var[e] if self.track else None
            parts.append(F.batch_norm(xe, rm, rv, ws[e], bs[e], use_batch, factor, self.eps))
        return parts[0] if self.seeds == 1 else torch.cat(parts)


class SeededDropout(Stacked):
    """Dropout (element-wise or channel-wise) whose masks come from each seed's own stream.

    ``bind`` gives it one generator per seed; without one it falls back to torch's global
    generator (a model used outside the trainer).
    """

    def __init__(self, p: float, channels: bool, seeds: int):
        super().__init__()
        self.p, self.channels, self.seeds = float(p), channels, seeds
        self.generators: list[torch.Generator] | None = None

    def bind(self, generators: list[torch.Generator] | None) -> None:
        self.generators = generators

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = list(x.shape)
        if self.channels:  # Dropout2d / Dropout1d: one draw per (sample, channel)
            shape = shape[:2] + [1] * (len(shape) - 2)
        per_seed = [shape[0] // self.seeds] + shape[1:]
        keep = 1.0 - self.p
        gens = self.generators or [None] * self.seeds
        masks = [torch.empty(per_seed, device=x.device, dtype=x.dtype).bernoulli_(keep, generator=g)
                 for g in gens]
        mask = masks[0] if self.seeds == 1 else torch.cat(masks)
        return x * mask.div_(keep)


_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def _stacked_leaf(name: str, group: list[nn.Module], grouped: bool = False) -> nn.Module | None:
    m = group[0]
    if isinstance(m, _DROPOUT):
        return SeededDropout(m.p, not isinstance(m, nn.Dropout), len(group))
    if isinstance(m, nn.Linear):
        return StackedLinear(group)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
        return StackedConv(group, grouped)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return StackedBatchNorm(group, grouped)
    if next(m.parameters(recurse=False), None) is None and next(m.buffers(recurse=False), None) is None:
        return None  # activations, pools, flatten: act on each sample, kept as they are
    raise NotStackable(f"layer {name or '(model)'} ({type(m).__name__}) holds weights of a kind "
                       "that cannot be stacked (supported: Linear, Conv1d, Conv2d, "
                       "ConvTranspose2d, BatchNorm1d/2d)")


def stack_models(models: Sequence[nn.Module], strategy: str = "loop") -> nn.Module:
    """E models of one architecture → one module over a seed-major batch of E·B samples;
    ``strategy`` "loop" or "grouped" for convolutions and BatchNorm (module docstring).

    Shared submodules (weight sharing) stay shared. Raises :class:`NotStackable` naming
    the layer when a model holds weights outside the supported leaf modules.
    """
    models = list(models)
    template = copy.deepcopy(models[0])
    done: dict[int, nn.Module] = {}
    for name, mod in list(template.named_modules()):
        if list(mod.children()):
            if next(mod.parameters(recurse=False), None) is not None:
                raise NotStackable(f"module {name or '(model)'} ({type(mod).__name__}) holds "
                                   "parameters of its own, outside a supported layer")
            continue
        if id(mod) in done:
            continue
        group = [m.get_submodule(name) for m in models]
        new = _stacked_leaf(name, group, strategy == "grouped")
        done[id(mod)] = new if new is not None else mod
        if new is None:
            continue
        if not name:
            raise NotStackable("the model is a single layer; wrap it in nn.Sequential")
        parent_name, _, attr = name.rpartition(".")
        template.get_submodule(parent_name)._modules[attr] = new
    for k, _p in template.named_parameters():
        owner = template.get_submodule(k.rpartition(".")[0])
        if not isinstance(owner, Stacked):
            raise NotStackable(f"parameter {k} is not in a stackable layer")
    template.seeds = len(models)
    return template


def bind_dropout(model: nn.Module, generators: list[torch.Generator] | None) -> None:
    for m in model.modules():
        if isinstance(m, SeededDropout):
            m.bind(generators)


def seed_state_dict(model: nn.Module, e: int) -> dict[str, torch.Tensor]:
    """Seed ``e``'s weights under the original model's names (loadable into one model)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, Stacked):
            for k, v in m.seed_parameters(e).items():
                out[f"{name}.{k}" if name else k] = v.detach().clone()
            if isinstance(m, StackedBatchNorm) and m.track:
                out[f"{name}.num_batches_tracked"] = m.num_batches_tracked.detach().clone()
    return out


def _leaves_out(out: Any) -> list[torch.Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _leaves_out(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _leaves_out(o)]
    raise NotStackable(f"the model returns {type(out).__name__}, not tensors")


@torch.no_grad()
def stack_problem(factory: Any, input_shape: tuple[int, ...], seeds: int = 2) -> str | None:
    """None when models from ``factory()`` stack; else why not (the layer, or the forward).

    The probe stacks ``seeds`` differently initialised models and checks, in eval mode,
    that seed e's rows of the stacked output equal model e's output on its own inputs: a
    forward that mixes samples of a batch (or a layer we cannot stack) is caught here; then
    that they are equal bit for bit, and so are its parameters' gradients: a seed's
    numbers must not depend on its stack partners (:func:`_rounding_problem`).
    """
    g = torch.Generator().manual_seed(0)
    models = []
    for k in range(seeds):
        torch.manual_seed(1000 + k)
        try:
            models.append(factory().eval())
        except Exception as exc:  # noqa: BLE001 - the reason, in one line
            return f"it cannot be built ({type(exc).__name__}: {exc})"
    try:
        stacked = stack_models(models).eval()
    except NotStackable as exc:
        return str(exc)
    xs = [torch.randn(3, *input_shape, generator=g) for _ in models]
    try:
        got = _leaves_out(stacked(torch.cat(xs)))
    except (RuntimeError, ValueError) as exc:
        return f"its forward does not run on a stacked batch ({exc})"
    want = [_leaves_out(m(x)) for m, x in zip(models, xs)]
    for i, g_t in enumerate(got):
        ref = torch.cat([w[i] for w in want])
        if g_t.shape != ref.shape or not torch.allclose(g_t, ref, rtol=1e-4, atol=1e-5):
            return "its forward mixes the samples of a batch (a stacked batch gives other outputs)"
    return _rounding_problem(models, stacked, xs, g)


def _rounding_problem(models: list[nn.Module], stacked: nn.Module, xs: list[torch.Tensor],
                      g: torch.Generator) -> str | None:
    """Why a seed's outputs or gradients in the stack differ from alone in any bit, or None.

    An element-wise kernel computes the last numel mod (2 × vector width) elements of a
    tensor with its scalar function; for sigmoid, SiLU, ELU, softplus or mish that rounds
    differently from the vector body, and which of a seed's elements are in the tail
    depends on how many seeds share the tensor. The probe's 3 rows per seed give most
    layers a tail (3 × features is a multiple of 16 only when the features are)."""
    E = len(models)
    with torch.enable_grad():
        got = _leaves_out(stacked(torch.cat(xs)))
        rs = [torch.randn(t.shape, generator=g) for t in got]
        sum(((t * r).sum() for t, r in zip(got, rs)), torch.zeros(())).backward()
        for e, (m, x) in enumerate(zip(models, xs)):
            outs = _leaves_out(m(x))
            sum(((o * r.chunk(E)[e]).sum() for o, r in zip(outs, rs)), torch.zeros(())).backward()
            if not all(torch.equal(t.chunk(E)[e], o) for t, o in zip(got, outs)):
                return _ROUNDING + " (its outputs)"
            alone = dict(m.named_parameters())
            for name, p in stacked.named_parameters():
                q = alone.get(name)
                if p.grad is not None and q is not None and q.grad is not None \
                        and not torch.equal(p.grad[e], q.grad):
                    return _ROUNDING + f" (the gradient of {name})"
    return None


_ROUNDING = ("a seed's numbers in a stack differ from its numbers alone in the last bits: an "
             "element-wise function inside the model (sigmoid, SiLU, ELU, softplus, mish, …) "
             "rounds the tail of a tensor differently, and which of a seed's values fall in "
             "that tail depends on the seeds beside it")
