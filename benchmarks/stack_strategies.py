"""The CPU default of `stack_conv` (issue 26, item 3): one training step of stacked seeds
with the per-seed loop against the grouped convolution + BatchNorm, in the same run,
rounds interleaved (loop, grouped, loop, ...) so that drift hits both; median step time.

    python benchmarks/stack_strategies.py [--out docs/results/bench-stack-strategies]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sharpen.io import atomic_write_json, atomic_write_text
from sharpen.models import create_model
from sharpen.training.stack import StackedConv, stack_models

CASES = [  # model, input shape, seeds, batch per seed, model kwargs
    ("lenet5_dropout", (1, 28, 28), 10, 128, {}),
    ("nin_cifar", (3, 32, 32), 5, 128, {"in_channels": 3}),
    ("vgg08_bn", (3, 32, 32), 5, 100, {"in_channels": 3, "num_classes": 100}),
]


def step_time(name, shape, seeds, bs, kw, strategy, rounds=7, reps=5):
    torch.manual_seed(0)
    m = stack_models([create_model(name, **kw) for _ in range(seeds)], strategy)
    for mod in m.modules():
        if isinstance(mod, StackedConv):
            mod.channels_last_()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(seeds * bs, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (seeds * bs,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y, reduction="none").view(seeds, bs).mean(1).sum().backward()
        opt.step()

    for _ in range(2):
        step()

    def one_round():
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        return (time.perf_counter() - t0) / reps

    return one_round


def batchnorm_time(strategy: str, seeds: int = 5, shape=(100, 32, 32, 32), rounds: int = 7):
    """BatchNorm alone (training mode, forward + backward) over a VGG-sized activation."""
    from sharpen.training.stack import StackedBatchNorm

    bn = StackedBatchNorm([torch.nn.BatchNorm2d(shape[1]) for _ in range(seeds)],
                          grouped=strategy == "grouped").train()
    x = torch.randn(seeds * shape[0], *shape[1:], requires_grad=True)

    def one_round():
        t0 = time.perf_counter()
        for _ in range(5):
            bn(x).sum().backward()
        return (time.perf_counter() - t0) / 5

    return one_round


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/results/bench-stack-strategies"))
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    rows = []
    for name, shape, seeds, bs, kw in CASES:
        fns = {s: step_time(name, shape, seeds, bs, kw, s) for s in ("loop", "grouped")}
        times = {s: [] for s in fns}
        for _ in range(a.rounds):
            for s, fn in fns.items():
                times[s].append(fn())
        med = {s: statistics.median(t) for s, t in times.items()}
        rows.append({"model": name, "seeds": seeds, "batch_per_seed": bs,
                     "loop_ms": 1e3 * med["loop"], "grouped_ms": 1e3 * med["grouped"],
                     "grouped_speedup": med["loop"] / med["grouped"],
                     "rounds": a.rounds})
        print(f"{name}: loop {1e3 * med['loop']:.1f} ms, grouped {1e3 * med['grouped']:.1f} ms "
              f"({med['loop'] / med['grouped']:.2f}×)", flush=True)
    fns = {s: batchnorm_time(s) for s in ("loop", "grouped")}
    times = {s: [] for s in fns}
    for _ in range(a.rounds):
        for s, fn in fns.items():
            times[s].append(fn())
    med = {s: statistics.median(t) for s, t in times.items()}
    rows.append({"model": "BatchNorm2d alone (32 ch, 32×32)", "seeds": 5, "batch_per_seed": 100,
                 "loop_ms": 1e3 * med["loop"], "grouped_ms": 1e3 * med["grouped"],
                 "grouped_speedup": med["loop"] / med["grouped"], "rounds": a.rounds})
    print(f"BatchNorm alone: loop {1e3 * med['loop']:.1f} ms, grouped "
          f"{1e3 * med['grouped']:.1f} ms ({med['loop'] / med['grouped']:.2f}×)", flush=True)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in
                          Path("/proc/cpuinfo").read_text().splitlines()
                          if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out / "benchmark.json", {"environment": env, "rows": rows})
    md = ["# Stacked seeds on the CPU: per-seed loop vs grouped convolution + BatchNorm", "",
          f"{env['cpu']}, {env['cores']} cores, {env['threads']} torch threads, torch "
          f"{env['torch']}. One SGD training step (forward, backward, update) of stacked "
          f"seeds, channels_last; median of {a.rounds} interleaved rounds of 5 steps "
          "(`python benchmarks/stack_strategies.py`).", "",
          "| model | seeds × batch | loop ms | grouped ms | grouped speed-up |",
          "|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['seeds']} × {r['batch_per_seed']} | {r['loop_ms']:.1f} | "
           f"{r['grouped_ms']:.1f} | {r['grouped_speedup']:.2f}× |" for r in rows]
    atomic_write_text(a.out / "README.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
