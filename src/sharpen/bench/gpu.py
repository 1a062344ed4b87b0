"""``sharpen bench gpu``: what a GPU does with our trainer, in one command (≤ 10 minutes).

Measured in one run, each ratio against a baseline timed in the same run: paper 001's
`normal` run at its full protocol (Figure 5 network, 15 epochs of 40,000 CIFAR-sized
images) alone and 9 of them stacked; LeNet-5, 10 seeds stacked against the same 10 one at
a time; each stacking strategy (loop, grouped); deterministic kernels on and off; bf16
autocast on and off; the training step's achieved FLOP/s as a fraction of the device's
matmul rate. The images are random uint8 tensors of the real shapes on the device: the
time of a step does not depend on the pixels, and the GPU machine need not hold CIFAR-10.

``--profile quick`` shrinks every size (for CI and ``--device cpu``: a check of the code
path, not a GPU number). Writes ``benchmark.json`` and ``report.md``; ``--targets
benchmarks/gpu-targets.toml`` sets the measured values beside the goals.
"""

from __future__ import annotations

import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from sharpen.bench.train import compare_targets, flops_fraction, matmul_gflops, read_targets
from sharpen.errors import SharpenError
from sharpen.io import atomic_write_json, atomic_write_text
from sharpen.models import create_model
from sharpen.training import Split, TrainData, TrainSettings, build_models, determinism, train

# sizes per profile: paper 001's protocol (full), or seconds (quick)
PROFILES = {
    "full": {"cifar": 40_000, "epochs": 15, "stack": 9, "lenet": 10_000, "lenet_epochs": 2,
             "lenet_seeds": 10, "step_reps": 20},
    "quick": {"cifar": 256, "epochs": 1, "stack": 2, "lenet": 256, "lenet_epochs": 1,
              "lenet_seeds": 2, "step_reps": 2},
}
TARGET_KEYS = ("paper001_run_s", "paper001_stacked_s", "lenet_stacked_speedup",
               "fraction_of_matmul")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _data(n: int, shape: tuple[int, ...], device: torch.device, seed: int = 0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    test = Split(x[: max(1, n // 10)], y[: max(1, n // 10)])
    return TrainData(Split(x, y), test, None, (0.5,) * shape[0], (0.25,) * shape[0], classes=10)


def _timed_train(model: str, seeds: list[int], data: TrainData, settings: TrainSettings,
                 device: torch.device, **model_kw: Any) -> float:
    """Wall seconds of one train() call (models built before the clock starts)."""
    models = build_models(lambda: create_model(model, **model_kw), seeds)
    _sync(device)
    t0 = time.perf_counter()
    train(models, data, settings, seeds, device=device)
    _sync(device)
    return time.perf_counter() - t0


def _nin_settings(epochs: int, **kw: Any) -> TrainSettings:
    # paper 001's SGD protocol (deblur-cifar10's `normal` arm)
    return TrainSettings(epochs=epochs, batch_size=128, optimizer="sgd",
                         lr={"kind": "step", "start": 0.01, "factor": 0.9, "every": 2},
                         momentum=0.9, weight_decay=1e-3, **kw)


NIN = {"dropout": 0.4, "in_channels": 3}  # paper 001's network's arguments


def run_gpu_bench(out: Path | None = None, profile: str = "full", device: str | None = None,
                  targets: Path | None = None, log: Any = print) -> Path:
    """Measure, write ``benchmark.json`` and ``report.md`` into ``out``; return ``out``."""
    dev = torch.device(device if device is not None else _cuda())
    if profile not in PROFILES:
        raise SharpenError(f"--profile {profile!r}: one of {', '.join(PROFILES)}")
    p = PROFILES[profile]
    if targets is not None:
        read_targets(Path(targets), TARGET_KEYS)
    out = Path(out) if out else Path("runs") / "bench-gpu" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    res = _machine(profile, dev)
    log(f"device: {res['device_name']} · torch {res['torch']}")
    res["matmul_gflops"] = matmul_gflops(dev, sizes=(1024,) if profile == "quick" else (2048, 4096))
    cifar = _data(p["cifar"], (3, 32, 32), dev)
    res.update(_paper001(p, cifar, dev, log))
    res.update(_lenet_stacked(p, dev, log))
    res["options"] = _options(p, cifar, dev)
    ff = flops_fraction("nin_cifar", (3, 32, 32), 128, res["matmul_gflops"], _nin_settings(1),
                        seeds=p["stack"], device=dev, reps=p["step_reps"], **NIN)
    res["fraction_of_matmul"] = ff["fraction"]
    res["step"] = ff
    if targets is not None:
        res["targets"] = compare_targets(res, Path(targets), TARGET_KEYS)
    atomic_write_json(out / "benchmark.json", res)
    atomic_write_text(out / "report.md", gpu_markdown(res))
    return out


def _cuda() -> str:
    """The default device, refused in one line where there is none."""
    if not torch.cuda.is_available():
        raise SharpenError("sharpen bench gpu: no CUDA device here; on a GPU machine run "
                           "it there, or give --device cpu --profile quick to check the "
                           "code path on the CPU (not a GPU number)")
    return "cuda"


def _machine(profile: str, dev: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "profile": profile, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
        or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "images": "random uint8 of the real shapes (speed does not depend on pixels)"}


def _paper001(p: dict[str, Any], cifar: TrainData, dev: torch.device, log: Any) -> dict[str, Any]:
    """Paper 001's normal run, alone and stacked."""
    res: dict[str, Any] = {}
    res["paper001_run_s"] = _timed_train("nin_cifar", [0], cifar, _nin_settings(p["epochs"]),
                                         dev, **NIN)
    res["paper001_stacked_s"] = _timed_train("nin_cifar", list(range(p["stack"])), cifar,
                                             _nin_settings(p["epochs"]), dev, **NIN)
    res["paper001_stacked_seeds"] = p["stack"]
    res["paper001_images_per_s"] = p["cifar"] * p["epochs"] / res["paper001_run_s"]
    res["paper001_stacked_images_per_s"] = p["stack"] * p["cifar"] * p["epochs"] / \
        res["paper001_stacked_s"]
    res["paper001_stacked_per_seed_ratio"] = res["paper001_run_s"] * p["stack"] / \
        res["paper001_stacked_s"]
    log(f"paper 001 run: {res['paper001_run_s']:.1f} s; {p['stack']} stacked: "
        f"{res['paper001_stacked_s']:.1f} s")
    return res


def _lenet_stacked(p: dict[str, Any], dev: torch.device, log: Any) -> dict[str, Any]:
    """LeNet-5: k seeds stacked against the same k one at a time."""
    mnist = _data(p["lenet"], (1, 28, 28), dev, seed=1)
    lenet = TrainSettings(epochs=p["lenet_epochs"], batch_size=128, optimizer="adam", lr=1e-3)
    k = p["lenet_seeds"]
    res: dict[str, Any] = {}
    res["lenet_stacked_s"] = _timed_train("lenet5_dropout", list(range(k)), mnist, lenet, dev)
    res["lenet_one_at_a_time_s"] = sum(_timed_train("lenet5_dropout", [s], mnist, lenet, dev)
                                       for s in range(k))
    res["lenet_stacked_speedup"] = res["lenet_one_at_a_time_s"] / res["lenet_stacked_s"]
    log(f"LeNet-5 × {k}: stacked {res['lenet_stacked_s']:.1f} s, one at a time "
        f"{res['lenet_one_at_a_time_s']:.1f} s ({res['lenet_stacked_speedup']:.1f}×)")
    return res


def _options(p: dict[str, Any], cifar: TrainData, dev: torch.device) -> dict[str, Any]:
    """The options, each against the default in the same run: stacked paper-001 epochs."""
    variants = {"loop": {"stack_conv": "loop"}, "grouped": {"stack_conv": "grouped"},
                "bf16": {"amp": "bf16"}}
    seeds = list(range(p["stack"]))
    _timed_train("nin_cifar", seeds, cifar, _nin_settings(1), dev, **NIN)  # warm
    base = _timed_train("nin_cifar", seeds, cifar, _nin_settings(1), dev, **NIN)
    opts: dict[str, Any] = {"default_s": base}
    for name, kw in variants.items():
        opts[f"{name}_s"] = _timed_train("nin_cifar", seeds, cifar, _nin_settings(1, **kw), dev,
                                         **NIN)
    with determinism.deterministic(True):
        opts["deterministic_s"] = _timed_train("nin_cifar", seeds, cifar, _nin_settings(1), dev,
                                               **NIN)
    opts["ratios_vs_default"] = {k.removesuffix("_s"): base / v for k, v in opts.items()
                                 if k.endswith("_s")}
    return opts


def gpu_markdown(res: dict[str, Any]) -> str:
    o = res["options"]
    lines = [f"# `sharpen bench gpu` ({res['profile']} profile)", "",
             f"{res['device_name']} · torch {res['torch']} · CUDA {res['cuda']} · cuDNN "
             f"{res['cudnn']} · matmul {res['matmul_gflops']:.0f} GFLOP/s (fp32). Images: "
             f"{res['images']}.", "",
             "| measurement | value |", "|---|---|",
             f"| paper 001 `normal` run, alone | {res['paper001_run_s']:.1f} s "
             f"({res['paper001_images_per_s']:,.0f} images/s) |",
             f"| {res['paper001_stacked_seeds']} such runs stacked | "
             f"{res['paper001_stacked_s']:.1f} s ({res['paper001_stacked_images_per_s']:,.0f} "
             f"images/s; {res['paper001_stacked_per_seed_ratio']:.1f}× the seeds per second "
             "of one) |",
             f"| LeNet-5 seeds stacked vs one at a time | {res['lenet_stacked_speedup']:.1f}× |",
             f"| training step FLOP/s / matmul FLOP/s | {100 * res['fraction_of_matmul']:.1f} % |",
             "", "One stacked epoch of paper 001's network, each option against the default "
             "in the same run (> 1: faster):", "",
             "| option | seconds | vs default |", "|---|---|---|"]
    for name, r in o["ratios_vs_default"].items():
        lines.append(f"| {name} | {o[name + '_s']:.2f} | {r:.2f}× |")
    if res.get("targets"):
        lines += ["", "| target | value | goal | met |", "|---|---|---|---|"]
        lines += [f"| {t['key']} | {t['value']:.3g} | {t['target']} | "
                  f"{'yes' if t['met'] else 'no'} |" for t in res["targets"]]
    return "\n".join(lines) + "\n"
