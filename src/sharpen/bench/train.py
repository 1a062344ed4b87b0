"""Our trainer against the canonical PyTorch loop, each ratio measured in one run.

What it measures (on ``--device``, CPU by default):

* ``single_run_ratio``: one LeNet-5 + dropout run with progressive sharpening (the
  sharpening-mnist settings) against the canonical ``Dataset``/``DataLoader`` loop with the
  blur as a per-sample transform; images/s of training, median of alternating repetitions.
* ``ten_seed_default_wall_ratio``: the same experiment with 10 seeds through
  ``run_experiment`` exactly as ``sharpen run`` does with no flags (the plan decides
  stacking and threads), evaluation and files included, against the canonical loop run
  ten times in a row.
* ``pairs_seeds_per_s_ratio``: paper 004's protocol (Sub_LeNet5 / _WS / _WS_AL, new pairs
  per seed) through the runner with its default plan against the same runs one at a time
  (``stack_seeds = 1``), seeds per second.
* ``flops_fraction_lenet5_stacked`` / ``flops_fraction_cifar_net``: FLOP/s of a training
  step (10 stacked LeNet-5 seeds; one seed-001 CIFAR net) over the fp32 matrix-multiply
  rate, measured as the best of several large products so that it is stable.
* the step with our layout/optimizer defaults and with bf16 against plain PyTorch, and the
  seed-001 CIFAR net with randomized deblurring against the canonical loop.

Targets are not part of the code: ``compare_targets`` checks the results against a file
(``benchmarks/train-targets.toml``) and says by how much each one is missed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import tomllib
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from sharpen.bench.markdown import train_markdown
from sharpen.data import get_spec, load
from sharpen.errors import SharpenError
from sharpen.experiments import load_experiment
from sharpen.experiments.backends import worker_context
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.runner import cpu_model, run_experiment
from sharpen.imageops import box_blur, gaussian_blur
from sharpen.io import atomic_write_json, atomic_write_text
from sharpen.models import create_model
from sharpen.rundir import CONFIG
from sharpen.techniques import ProgressiveSharpening, RandomizedDeblur
from sharpen.training import Split, TrainData, TrainSettings, build_models, train
from sharpen.training.loop import make_optimizer, stacked_for_training, training_forward
from sharpen.training.schedules import as_schedule


def _bundled_arm(name: str, arm: str) -> Any:
    return load_experiment(name).arms[arm]


# What the benchmark trains is what the bundled experiments ship, read from their files:
# sharpening-mnist's `sharpening` arm (paper 000) and deblur-cifar10's `normal` arm (paper 001)
_LENET = _bundled_arm("sharpening-mnist", "sharpening")
_NIN = _bundled_arm("deblur-cifar10", "normal")
LENET_SETTINGS = {"batch_size": _LENET.batch_size, "optimizer": _LENET.optimizer, "lr": _LENET.lr}
SHARPENING = _LENET.blur_n.model_dump()
NIN_SETTINGS = {"batch_size": _NIN.batch_size, "optimizer": _NIN.optimizer,
                # a 1-epoch benchmark: the step schedule's first value
                "lr": float(as_schedule(_NIN.lr).value(0, 1)), "momentum": _NIN.momentum,
                "weight_decay": _NIN.weight_decay}
# per profile: epochs of a LeNet run, repetitions of each ratio, seeds and epochs of seed
# 004's protocol, CIFAR images
PROFILES = {
    "quick": {"epochs": 2, "reps": 1, "ten_epochs": 1, "pair_seeds": 2, "pair_epochs": 1,
              "pairs": 200, "cifar": 1000, "step_reps": 3, "matmul": (1024,), "ten_images": 2000,
              "step_models": 2},
    "full": {"epochs": 6, "reps": 5, "ten_epochs": 4, "pair_seeds": 20, "pair_epochs": 5,
             "pairs": 1000, "cifar": 10000, "step_reps": 10, "matmul": (1024, 2048),
             "ten_images": 5000, "step_models": 3},
}


class PerSampleDataset(torch.utils.data.Dataset):
    """The canonical input pipeline: one image at a time, transformed in Python."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: Any, std: Any,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.x, self.y, self.transform = x, y, transform
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = (self.x[i].float() / 255 - self.mean) / self.std
        if self.transform is not None:
            img = self.transform(img[None])[0]
        return img, self.y[i]


def canonical_loop(model: torch.nn.Module, ds: PerSampleDataset, epochs: int, bs: int,
                   make_opt: Callable[[Any], torch.optim.Optimizer], seed: int,
                   epoch_transform: Callable[[int], Callable | None] | None = None,
                   device: torch.device | str = "cpu") -> float:
    """Train as a typical script does; returns images per second of training.

    ``epoch_transform(epoch)`` gives the per-sample transform of that epoch (a curriculum
    written the usual way: the Dataset's transform is swapped at the start of each epoch).
    """
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, generator=g)
    model.to(device)
    opt = make_opt(model.parameters())
    model.train()
    t0, seen = time.perf_counter(), 0
    for epoch in range(epochs):
        if epoch_transform is not None:
            ds.transform = epoch_transform(epoch)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - t0)


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def ours(model_name: str, data: TrainData, settings: TrainSettings, seed: int, hooks: list,
         device: torch.device | str = "cpu") -> float:
    """Our trainer, one seed; images per second of training (evaluation excluded)."""
    out = train(build_models(lambda: create_model(model_name), [seed]), data, settings, seed,
                hooks, device=device)
    rows = out.rows[0]
    secs = sum(len(data.train) / r["images_per_s"] for r in rows)
    return len(data.train) * len(rows) / secs


def matmul_gflops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                  sizes: tuple[int, ...] = (1024, 2048), rounds: int = 5) -> float:
    """The best rate of several large square products: a stable ceiling for FLOP/s."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        torch.mm(a, b)
        _sync(device)
        reps = max(2, int(4e9 / (2 * n**3)))
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            _sync(device)
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()


_COMPUTE_OPS = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::mm",
                "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_convolution",
                "aten::cudnn_convolution"}


def flops_fraction(name: str, shape: tuple[int, ...], bs: int, peak_gflops: float,
                   settings: TrainSettings, seeds: int = 1, device: torch.device | str = "cpu",
                   reps: int = 10, **model_kw: Any) -> dict[str, Any]:
    """Achieved FLOP/s of our training step for ``seeds`` stacked models, over ``peak``.

    FLOPs are counted on one plain model and multiplied by the seeds (the stacked step does
    each seed's work once); time is the stacked step's, as the trainer runs it.
    """
    torch.manual_seed(0)
    flops = seeds * step_flops(create_model(name, **model_kw), torch.randn(bs, *shape),
                               torch.randint(0, 10, (bs,)))
    # built and called as the trainer does (its conv strategy for the device: grouped on CUDA)
    m = stacked_for_training([create_model(name, **model_kw) for _ in range(seeds)], settings,
                             device)
    forward, ctx = training_forward(m, settings, device)
    fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
    opt = make_optimizer(m, settings)
    x = torch.randn(seeds * bs, *shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (seeds * bs,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = F.cross_entropy(forward(x), y, reduction="none").view(seeds, bs).mean(1).sum()
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    times = []
    for _ in range(5):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        _sync(device)
        times.append((time.perf_counter() - t0) / reps)
    step_s = min(times)  # the least disturbed round, as the matmul ceiling
    rate = flops / step_s / 1e9
    # where the time goes: the FLOP-carrying kernels (conv, matmul) vs everything else
    # (BatchNorm, ReLU, pooling, dropout, optimizer: memory-bound, nearly no FLOPs)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            step()
    total = compute = 0.0
    for ev in prof.key_averages():
        total += ev.self_cpu_time_total
        if ev.key in _COMPUTE_OPS:
            compute += ev.self_cpu_time_total
    share = compute / total if total else float("nan")
    kernel_rate = flops / (step_s * share) / 1e9 if share else float("nan")
    return {"model": name, "seeds": seeds, "batch": bs, "step_gflop": flops / 1e9,
            "achieved_gflops": rate, "fraction": rate / peak_gflops,
            "compute_kernel_time_share": share, "compute_kernel_gflops": kernel_rate,
            "compute_kernel_fraction": kernel_rate / peak_gflops}


def step_options(reps: int = 5, device: torch.device | str = "cpu",
                 log: Callable[[str], None] = print, models: int = 3) -> list[dict[str, Any]]:
    """Training-step images/s of our defaults and options against plain PyTorch defaults.

    plain: NCHW, for-loop optimizer (what ``torch.optim`` gives on a CPU); ours: channels_last
    + fused optimizer (the trainer's defaults); bf16: ours + ``amp = "bf16"`` autocast.
    Measured alternately, median of 3 rounds.
    """
    cases = [("lenet5_dropout", (1, 28, 28), 128, {}), ("nin_cifar", (3, 32, 32), 128, {}),
             ("vgg08", (3, 32, 32), 100, {"num_classes": 100})][:models]
    out = []
    dev = torch.device(device)
    for name, shape, bs, kw in cases:
        steps = {}
        for label, cl, fused, bf16 in (("plain", False, False, False), ("ours", True, True, False),
                                       ("bf16", True, True, True)):
            torch.manual_seed(0)
            fmt = torch.channels_last if cl else torch.contiguous_format
            m = create_model(name, **kw).to(dev, memory_format=fmt)
            opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=fused or None)
            x = torch.randn(bs, *shape, device=dev).contiguous(memory_format=fmt)
            y = torch.randint(0, 10, (bs,), device=dev)
            ctx = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 \
                else contextlib.nullcontext

            def step(m=m, opt=opt, x=x, y=y, ctx=ctx) -> None:
                opt.zero_grad(set_to_none=True)
                with ctx():
                    loss = F.cross_entropy(m(x), y)
                loss.backward()
                opt.step()

            step()
            steps[label] = step
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(3):
            for k, step in steps.items():
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(reps):
                    step()
                _sync(dev)
                times[k].append((time.perf_counter() - t0) / reps)
        rate = {k: bs / statistics.median(v) for k, v in times.items()}
        row = {"model": name, "batch": bs, **{f"{k}_img_s": v for k, v in rate.items()},
               "ours_vs_plain": rate["ours"] / rate["plain"],
               "bf16_vs_ours": rate["bf16"] / rate["ours"]}
        log(f"  {name}: plain {rate['plain']:.0f} img/s, ours {rate['ours']:.0f} "
            f"({row['ours_vs_plain']:.2f}×), bf16 {rate['bf16']:.0f} ({row['bf16_vs_ours']:.2f}×)")
        out.append(row)
    return out


def _sharpening_transform(epochs: int) -> Callable[[int], Callable | None]:
    """For the canonical loop: the per-sample box blur of each epoch of SHARPENING."""
    sharp = as_schedule(SHARPENING)

    def of_epoch(e: int) -> Callable | None:
        n = int(round(sharp.value(e, epochs)))
        return None if n == 1 else (lambda t: box_blur(t, n))

    return of_epoch


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=LENET_SETTINGS["lr"])


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=NIN_SETTINGS["lr"], momentum=NIN_SETTINGS["momentum"],
                           weight_decay=NIN_SETTINGS["weight_decay"])


def _cpu_name() -> str:
    return cpu_model() or platform.processor() or platform.machine()


def _fresh(d: Path) -> Path:
    """An empty directory: a timed experiment must never resume (it would skip its runs)."""
    shutil.rmtree(d, ignore_errors=True)
    return d


def ten_seeds_default(out: Path, x: torch.Tensor, y: torch.Tensor, epochs: int, device: str,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """sharpening-mnist's `sharpening` arm, 10 seeds, through the runner with no flags (its
    default plan), vs the canonical loop ×10; and the same with one job per seed."""
    spec = get_spec("mnist-sample")
    walls = []
    # both setups find the workers' fork server running and the report's modules imported:
    # else the first one timed pays alone what a process pays once (the server's start,
    # ~1.9 s on the 2-core VM, tools/measure_worker_import.py; matplotlib and the report,
    # ~2.5 s), and on the same plan the first of two runs took 20.7 s, the second 15.5 s
    worker_context()
    warm = RunConfig(dataset="mnist-sample", model="lenet5_dropout", epochs=1, train_size=256,
                     test_size=100, checkpoint=False, device=device, **LENET_SETTINGS)
    run_experiment(Experiment(name="bench-warm-up", runs=2, arms={"warm-up": warm}),
                   _fresh(out / "warm-up"), quiet=True)
    shutil.rmtree(out / "warm-up")
    for label, overrides in (("default", {}), ("stack_seeds = 1", {"stack_seeds": 1})):
        cfg = RunConfig(dataset="mnist-sample", model="lenet5_dropout", epochs=epochs,
                        blur_n=SHARPENING, test_size=1000, checkpoint=False, device=device,
                        train_size=len(y), **LENET_SETTINGS, **overrides)
        exp = Experiment(name="bench-10-seeds", runs=10, arms={"sharpening": cfg})
        d = _fresh(out / f"ten-seeds-{len(walls)}")
        t0 = time.perf_counter()
        run_experiment(exp, d, quiet=True)
        walls.append({"setup": label, "seconds": time.perf_counter() - t0,
                      "plan": _plan_said(d, "sharpening")})
    t0 = time.perf_counter()
    for s in range(10):
        torch.manual_seed(s)
        canonical_loop(create_model("lenet5_dropout"), PerSampleDataset(x, y, spec.mean, spec.std),
                       epochs, LENET_SETTINGS["batch_size"], _adam, s, _sharpening_transform(epochs),
                       device)
    canon = time.perf_counter() - t0
    log("  10 seeds: " + ", ".join(f"{w['setup']} {w['seconds']:.1f} s" for w in walls)
        + f"; canonical ×10 {canon:.1f} s (no evaluation)")
    return {"epochs": epochs, "setups": walls, "canonical_s": canon,
            "ratio": walls[0]["seconds"] / canon, "ratio_one_job_per_seed": walls[1]["seconds"] / canon}


def _plan_said(d: Path, arm: str) -> dict[str, Any]:
    """The stack size a timed run's plan chose, and why (a calibration, or the default)."""
    entry = json.loads((d / CONFIG).read_text())["plan"]["arms"][arm]
    return {"stack": entry["stack"], "groups": len(entry["groups"]), "why": entry["why"]}


def pairs_protocol(out: Path, seeds: int, epochs: int, pairs: int, device: str,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Paper 004's three models, ``seeds`` seeds each, default plan vs one run at a time."""
    try:
        load("mnist", "train", verify=False, download_ok=False)
        dataset = "mnist"
    except Exception:  # noqa: BLE001 - the bundled sample is always there
        dataset = "mnist-sample"
    arms = {m: {"model": m, "batch_size": bs} for m, bs in
            (("sub_lenet5", 250), ("sub_lenet5_ws", 100), ("sub_lenet5_ws_al", 50))}
    walls = []
    worker_context()  # running before the default's timing, as for the ten seeds
    for label, overrides in (("default", {}), ("one at a time", {"stack_seeds": 1})):
        exp = Experiment(name="bench-pairs", runs=seeds, arms={
            a: RunConfig(dataset=dataset, pairs=pairs, epochs=epochs, optimizer="adam", lr=0.01,
                         checkpoint=False, device=device, verify=False, **kw, **overrides)
            for a, kw in arms.items()})
        d = _fresh(out / f"pairs-{len(walls)}")
        t0 = time.perf_counter()
        run_experiment(exp, d, quiet=True, workers=None if label == "default" else 1)
        walls.append({"setup": label, "seconds": time.perf_counter() - t0,
                      "seeds_per_s": 3 * seeds / (time.perf_counter() - t0),
                      "plan": {a: _plan_said(d, a) for a in arms}})
    log(f"  paper 004 protocol ({dataset}, {pairs} pairs, {seeds} seeds × 3 models, {epochs} "
        "epochs): " + ", ".join(f"{w['setup']} {w['seconds']:.1f} s" for w in walls))
    return {"dataset": dataset, "pairs": pairs, "seeds": seeds, "epochs": epochs, "setups": walls,
            "ratio": walls[0]["seeds_per_s"] / walls[1]["seeds_per_s"]}


@contextlib.contextmanager
def _quiet_stderr() -> Any:
    """Silence the profiler's own C-level lines (``USDT: ... profiler_start``) on fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_train_bench(out: Path | None = None, quick: bool = True, device: str = "cpu",
                    targets: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Measure everything listed in the module docstring in one run; write benchmark.json
    and report.md into ``out``. Each ours/canonical pair is measured ``reps`` times,
    alternating, and the median ratio is reported, so a slow spell of a shared machine does
    not favour either side."""
    if targets is not None:
        read_targets(targets)  # a bad file fails now, not after minutes of measuring
    prof = PROFILES["quick" if quick else "full"]
    dev = torch.device(device)
    out = Path(out) if out else Path("runs") / "bench-train" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "processor": _cpu_name(), "threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "profile": "quick" if quick else "full", "device": str(dev)}
    t_start = time.perf_counter()
    x, y = load("mnist-sample", "train")
    res.update(_throughput(prof, dev, x, y, log))
    res.update(_flops(prof, dev, log))
    res["step_options"] = step_options(1 if quick else 5, dev, log, prof["step_models"])
    n10 = prof["ten_images"]
    res["ten_seeds"] = ten_seeds_default(out, x[:n10], y[:n10], prof["ten_epochs"], str(dev), log)
    res["ten_seed_default_wall_ratio"] = res["ten_seeds"]["ratio"]
    res["pairs"] = pairs_protocol(out, prof["pair_seeds"], prof["pair_epochs"], prof["pairs"],
                                  str(dev), log)
    res["pairs_seeds_per_s_ratio"] = res["pairs"]["ratio"]
    res["seconds"] = time.perf_counter() - t_start
    if targets is not None:
        res["targets"] = compare_targets(res, targets)
    atomic_write_json(out / "benchmark.json", res)
    md = train_markdown(res)
    atomic_write_text(out / "report.md", md)
    log(md)
    return out


def _throughput(prof: dict[str, Any], dev: torch.device, x: torch.Tensor, y: torch.Tensor,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Ours against the canonical loop, images/s: LeNet-5 sharp and with progressive
    sharpening (``single_run_ratio``), and seed 001's CIFAR net with randomized deblurring."""
    spec = get_spec("mnist-sample")
    tx, ty = load("mnist-sample", "test")
    data = TrainData(Split(x.to(dev), y.to(dev)), Split(tx[:1000].to(dev), ty[:1000].to(dev)), None,
                     spec.mean, spec.std)
    lenet = TrainSettings(epochs=prof["epochs"], **LENET_SETTINGS)
    rows: list[dict[str, Any]] = []
    pair = functools.partial(_pair, rows, prof["reps"], dev, log)
    pair("lenet5_dropout, sharp", "lenet5_dropout", data,
         PerSampleDataset(x, y, spec.mean, spec.std), lenet, _adam, lambda: [])
    single = pair(
        "lenet5_dropout, progressive sharpening 5→1", "lenet5_dropout", data,
        PerSampleDataset(x, y, spec.mean, spec.std), lenet, _adam,
        lambda: [ProgressiveSharpening(SHARPENING)], _sharpening_transform(prof["epochs"]))
    cdata, cds = _cifar(prof["cifar"], dev, log)
    pair("nin_cifar, randomized deblur σ=2 α=0.4", "nin_cifar", cdata, cds,
         TrainSettings(epochs=1, **NIN_SETTINGS), _sgd, lambda: [RandomizedDeblur(2.0, 0.4)])
    return {"single_run_ratio": single, "throughput": rows}


def _pair(rows: list[dict[str, Any]], reps: int, dev: torch.device, log: Callable[[str], None],
          label: str, model: str, d: TrainData, ds: PerSampleDataset, settings: TrainSettings,
          make_opt: Callable, hooks: Callable[[], list], epoch_transform: Any = None) -> float:
    """Ours and the canonical loop ``reps`` times, alternating; the median ratio (a row of
    ``rows``)."""
    a, b = [], []
    for _ in range(reps):
        a.append(ours(model, d, settings, 0, hooks(), dev))
        torch.manual_seed(0)
        b.append(canonical_loop(create_model(model), ds, settings.epochs, settings.batch_size,
                                make_opt, 0, epoch_transform, dev))
    ratio = statistics.median(p / q for p, q in zip(a, b))
    rows.append({"case": label, "ours_img_s": statistics.median(a),
                 "canonical_img_s": statistics.median(b), "ratio": ratio, "reps": reps,
                 "epochs": settings.epochs, "images": len(d.train)})
    log(f"  {label}: ours {statistics.median(a):.0f} img/s, canonical "
        f"{statistics.median(b):.0f} img/s, ratio {ratio:.2f} (median of {reps})")
    return ratio


def _cifar(n: int, dev: torch.device,
           log: Callable[[str], None]) -> tuple[TrainData, PerSampleDataset]:
    """``n`` CIFAR-10 images (synthetic ones of the shape where CIFAR-10 is not here), for our
    trainer and for the canonical loop with paper 001's blur coin per sample."""
    try:
        cx, cy = load("cifar10", "train", verify=False, download_ok=False)
        cifar = (cx[:n], cy[:n])
    except Exception:  # noqa: BLE001 - CIFAR-10 is optional for this benchmark
        log("  (CIFAR-10 not found: the seed-001 net is measured on synthetic 3×32×32 data)")
        g = torch.Generator().manual_seed(0)
        cifar = (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (n,), generator=g))
    cs = get_spec("cifar10")
    cdata = TrainData(Split(cifar[0].to(dev), cifar[1].to(dev)),
                      Split(cifar[0][:500].to(dev), cifar[1][:500].to(dev)), None, cs.mean, cs.std)
    coin = torch.Generator().manual_seed(1)

    def blur_some(t: torch.Tensor) -> torch.Tensor:
        # per sample, σ=2 with probability 0.4: the per-sample version of paper 001's batch coin
        return gaussian_blur(t, 2.0) if torch.rand((), generator=coin) < 0.4 else t

    return cdata, PerSampleDataset(cifar[0], cifar[1], cs.mean, cs.std, blur_some)


def _flops(prof: dict[str, Any], dev: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    """The fp32 matmul rate, and the FLOP/s of a training step (10 stacked LeNet-5 seeds; one
    seed-001 CIFAR net) as a fraction of it."""
    peak = matmul_gflops(dev, sizes=prof["matmul"])
    lenet = TrainSettings(epochs=prof["epochs"], **LENET_SETTINGS)
    fl = flops_fraction("lenet5_dropout", (1, 28, 28), 128, peak, lenet, seeds=10, device=dev,
                        reps=prof["step_reps"])
    fc = flops_fraction("nin_cifar", (3, 32, 32), 128, peak, TrainSettings(epochs=1, **NIN_SETTINGS),
                        device=dev, reps=prof["step_reps"])
    for f in (fl, fc):
        log(f"  {f['model']} × {f['seeds']} seed(s): step {f['achieved_gflops']:.1f} GFLOP/s = "
            f"{100 * f['fraction']:.1f} % of fp32 matmul {peak:.1f} GFLOP/s")
    return {"matmul_gflops": peak, "flops_fraction_lenet5_stacked": fl["fraction"],
            "flops_fraction_cifar_net": fc["fraction"], "flops": [fl, fc]}


# the measured values a targets file may name
TARGET_KEYS = ("single_run_ratio", "ten_seed_default_wall_ratio", "pairs_seeds_per_s_ratio",
               "flops_fraction_lenet5_stacked", "flops_fraction_cifar_net", "matmul_gflops")


def read_targets(path: Path, keys: tuple[str, ...] = TARGET_KEYS) -> dict[str, dict[str, float]]:
    """A targets file, checked before anything is measured (a bad one must not fail after
    minutes): every key a measured value, every target ``{ at_least = v }`` or
    ``{ at_most = v }``."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SharpenError(f"--targets {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SharpenError(f"--targets {path}: cannot be read ({exc})") from None
    for key, t in spec.items():
        if key not in keys:
            raise SharpenError(f"{path}: target {key!r} names no measured value; values: "
                               f"{', '.join(keys)}")
        if not isinstance(t, dict) or len(t) != 1 or not ({"at_least", "at_most"} & set(t)) \
                or not isinstance(next(iter(t.values())), (int, float)):
            raise SharpenError(f"{path}: target {key!r} must be {{ at_least = number }} or "
                               f"{{ at_most = number }}, got {t!r}")
    return spec


def compare_targets(res: dict[str, Any], path: Path,
                    keys: tuple[str, ...] = TARGET_KEYS) -> list[dict[str, Any]]:
    """Each target of a TOML file (``key = { at_least = v }`` or ``{ at_most = v }``) against
    the measured value, with how far it is missed (as a fraction of the target)."""
    spec = read_targets(path, keys)
    rows = []
    for key, t in spec.items():
        v = float(res[key])
        if "at_least" in t:
            goal, ok = float(t["at_least"]), v >= float(t["at_least"])
            short = (goal - v) / goal
            rel = "≥"
        else:
            goal, ok = float(t["at_most"]), v <= float(t["at_most"])
            short = (v - goal) / goal
            rel = "≤"
        rows.append({"key": key, "value": v, "target": f"{rel} {goal:g}", "met": ok,
                     "missed_by": None if ok else short})
    return rows
