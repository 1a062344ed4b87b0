"""Many seeds of a small model trained at once as one batched model (torch.func + vmap).

Each seed keeps its own initialisation (``torch.manual_seed(seed)`` before building its
model, as a separate run does), its own data order (the same generator as ``train``) and
its own dropout masks; the E models' parameters are stacked and one vmapped forward /
backward / optimizer step serves all of them. Optimizers act elementwise, so each seed's
update equals its separate run's. Models with BatchNorm are not supported (running
statistics are buffers updated in place).
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
from torch.func import functional_call, stack_module_state, vmap

from sharpen.training.loop import TrainData, TrainSettings, normalizer
from sharpen.training.schedules import as_schedule


def train_seeds(make_model: Callable[[], nn.Module], data: TrainData, settings: TrainSettings,
                seeds: Sequence[int], device: torch.device | str = "cpu") -> list[list[dict[str, Any]]]:
    """Train one model per seed, all at once; returns per-seed lists of epoch rows."""
    device = torch.device(device)
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(make_model().to(device))
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules()):
        raise ValueError("batched seeds do not support BatchNorm models")
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    E = len(seeds)

    def fwd(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    train_fwd = vmap(fwd, randomness="different")
    eval_fwd = vmap(fwd, in_dims=(0, 0, None))
    plist = list(params.values())
    lr_s = as_schedule(settings.lr)
    if settings.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(plist, lr=lr_s.value(0, settings.epochs))
    else:
        opt = torch.optim.SGD(plist, lr=lr_s.value(0, settings.epochs), momentum=settings.momentum)
    gens = [torch.Generator().manual_seed(int(s) + 7919) for s in seeds]  # as train()
    norm = normalizer(data.mean, data.std, device)
    n, bs = len(data.train), settings.batch_size
    rows: list[list[dict[str, Any]]] = [[] for _ in seeds]
    for epoch in range(settings.epochs):
        lr = lr_s.value(epoch, settings.epochs)
        for g in opt.param_groups:
            g["lr"] = lr
        base.train()
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        loss_sum = torch.zeros(E, device=device)
        correct = torch.zeros(E, device=device)
        for i in range(0, n, bs):
            idx = perms[:, i:i + bs]  # E×B: every seed its own batch
            x, y = norm(data.train.x[idx.reshape(-1)]), data.train.y[idx]
            out = train_fwd(params, buffers, x.view(E, -1, *x.shape[1:]))  # E×B×K
            per_seed = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(E, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_seed.sum().backward()  # seeds do not share parameters: each gets its own grad
            opt.step()
            with torch.no_grad():
                loss_sum += per_seed.detach() * y.shape[1]
                correct += (out.argmax(-1) == y).sum(1)
        train_time = time.perf_counter() - t0
        base.eval()
        with torch.no_grad():
            tl, tc = torch.zeros(E, device=device), torch.zeros(E, device=device)
            for i in range(0, len(data.test), settings.eval_batch_size):
                xt = norm(data.test.x[i:i + settings.eval_batch_size])
                yt = data.test.y[i:i + settings.eval_batch_size]
                o = eval_fwd(params, buffers, xt)
                tl += F.cross_entropy(o.flatten(0, 1), yt.repeat(E), reduction="none").view(E, -1).sum(1)
                tc += (o.argmax(-1) == yt).sum(1)
        for e in range(E):
            tr_loss = float(loss_sum[e]) / n
            rows[e].append({"epoch": epoch + 1, "train_loss": tr_loss,
                            "train_acc": float(correct[e]) / n,
                            "test_loss": float(tl[e]) / len(data.test),
                            "test_acc": float(tc[e]) / len(data.test), "lr": lr,
                            "seconds": time.perf_counter() - t0,
                            "images_per_s": n * E / train_time,
                            "diverged": not math.isfinite(tr_loss)})
    return rows
