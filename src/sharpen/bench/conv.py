"""``sharpen bench conv``: time and peak memory of the NumPy conv implementations.

One variable (batch, channels, image size, kernel size) grows while the others stay at a
base point; for each implementation the forward and backward pass are timed (best of
``repeats``) and their peak NumPy memory is traced. Log-log slopes (fitted exponents) are
printed beside the exponents that paper 003's formulas predict:
    T = batch × F_out × F_in × T_function,   T_function ∝ H_out·W_out·H_k·W_k
    S_forward = batch × F_out × H_out × W_out,   S_backward = batch × F_in × H_in × W_in
PyTorch's conv2d (time only; its allocator is not traced) is the anchor.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sharpen.bench.markdown import conv_markdown
from sharpen.bench.numpy_conv import conv2d_backward, conv2d_forward
from sharpen.io import atomic_write_csv, atomic_write_json, atomic_write_text
from sharpen.reports.figures import pyplot, save_png

BASE = {"batch": 8, "channels": 8, "image": 16, "kernel": 3}
SWEEPS = {
    "quick": {"batch": [2, 4, 8, 16, 32], "channels": [2, 4, 8, 16, 32], "image": [8, 16, 32, 48],
              "kernel": [1, 3, 5, 7]},
    "full": {"batch": [2, 4, 8, 16, 32, 64], "channels": [2, 4, 8, 16, 32, 64],
             "image": [8, 16, 32, 64, 96], "kernel": [1, 3, 5, 7, 9]},
}
# exponents predicted by the paper's formulas (channels = F_in = F_out grow together;
# image = side H = W with padding k//2 so H_out = H; kernel = side k)
PREDICTED = {
    "time": {"batch": 1, "channels": 2, "image": 2, "kernel": 2},
    "mem_fwd": {"batch": 1, "channels": 1, "image": 2, "kernel": 0},
    "mem_bwd": {"batch": 1, "channels": 1, "image": 2, "kernel": 0},
}
LOOPS_BUDGET = {"quick": 60_000, "full": 400_000}  # max output positions×F_out for `loops`
IMPLS = ("loops", "correlate", "im2col", "im2col_chunked", "torch")


def _inputs(batch: int, channels: int, image: int, kernel: int, rng: np.random.Generator):
    x = rng.standard_normal((batch, channels, image, image))
    w = rng.standard_normal((channels, channels, kernel, kernel))
    b = rng.standard_normal(channels)
    return x, w, b, kernel // 2


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _peak(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def measure(impl: str, x, w, b, pad: int, repeats: int) -> dict[str, float]:
    if impl == "torch":
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))

        def fwd():
            return torch.nn.functional.conv2d(xt, wt, bt, padding=pad)

        for _ in range(3):  # oneDNN builds its kernels on the first calls of a shape
            y = fwd()
        dy = torch.ones_like(y)
        repeats = max(repeats, 5)

        def bwd():
            torch.autograd.grad(y, (xt, wt, bt), dy, retain_graph=True)

        return {"t_fwd": _best_time(fwd, repeats), "t_bwd": _best_time(bwd, repeats),
                "mem_fwd": float("nan"), "mem_bwd": float("nan")}
    y = conv2d_forward(x, w, b, padding=pad, impl=impl)
    dy = np.ones_like(y)
    return {
        "t_fwd": _best_time(lambda: conv2d_forward(x, w, b, padding=pad, impl=impl), repeats),
        "t_bwd": _best_time(lambda: conv2d_backward(dy, x, w, padding=pad, impl=impl), repeats),
        "mem_fwd": float(_peak(lambda: conv2d_forward(x, w, b, padding=pad, impl=impl))),
        "mem_bwd": float(_peak(lambda: conv2d_backward(dy, x, w, padding=pad, impl=impl))),
    }


def _slope(xs: list[float], ys: list[float]) -> float | None:
    pts = [(a, c) for a, c in zip(xs, ys) if c == c and c > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def run_conv_bench(profile: str = "quick", out: Path | None = None, repeats: int | None = None,
                   log=print) -> Path:
    if profile not in SWEEPS:
        raise ValueError(f"profile must be one of {sorted(SWEEPS)}, got {profile!r}")
    reps = repeats or (2 if profile == "quick" else 3)
    out = Path(out) if out else Path("runs") / "bench-conv" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for var, values in SWEEPS[profile].items():
        for v in values:
            cfg = {**BASE, var: v}
            x, w, b, pad = _inputs(**cfg, rng=rng)
            positions = cfg["batch"] * cfg["channels"] * cfg["image"] ** 2
            for impl in IMPLS:
                if impl == "loops" and positions > LOOPS_BUDGET[profile]:
                    continue
                m = measure(impl, x, w, b, pad, 1 if impl == "loops" else reps)
                rows.append({"variable": var, "value": v, "impl": impl, **cfg, **m})
            log(f"  {var}={v}: done ({time.perf_counter() - t_start:.0f}s)")
    cols = ["variable", "value", "impl", "batch", "channels", "image", "kernel",
            "t_fwd", "t_bwd", "mem_fwd", "mem_bwd"]
    atomic_write_csv(out / "measurements.csv", rows, cols)

    fits = []
    for var in SWEEPS[profile]:
        for impl in IMPLS:
            rs = [r for r in rows if r["variable"] == var and r["impl"] == impl]
            if len(rs) < 2:
                continue
            xs = [r["value"] for r in rs]
            fits.append({"variable": var, "impl": impl, "points": len(rs),
                         "time_fwd": _slope(xs, [r["t_fwd"] for r in rs]),
                         "time_bwd": _slope(xs, [r["t_bwd"] for r in rs]),
                         "mem_fwd": _slope(xs, [r["mem_fwd"] for r in rs]),
                         "mem_bwd": _slope(xs, [r["mem_bwd"] for r in rs])})
    x, w, b, pad = _inputs(**BASE, rng=rng)  # the base point, every implementation
    base_rows = {impl: measure(impl, x, w, b, pad, 1 if impl == "loops" else reps) for impl in IMPLS}
    md = conv_markdown(profile, fits, base_rows, rows, time.perf_counter() - t_start, BASE,
                       PREDICTED)
    atomic_write_text(out / "report.md", md)
    atomic_write_json(out / "summary.json", {"profile": profile, "base": BASE, "fits": fits,
                                             "base_point": base_rows})
    _plots(rows, out)
    log(md)
    return out


def _plots(rows, out: Path) -> None:
    plt = pyplot()

    for var in dict.fromkeys(r["variable"] for r in rows):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for impl in IMPLS:
            rs = [r for r in rows if r["variable"] == var and r["impl"] == impl]
            if not rs:
                continue
            xs = [r["value"] for r in rs]
            axes[0].loglog(xs, [r["t_fwd"] + r["t_bwd"] for r in rs], "o-", label=impl)
            if impl != "torch":
                axes[1].loglog(xs, [max(r["mem_fwd"], r["mem_bwd"]) / 2**20 for r in rs], "o-",
                               label=impl)
        axes[0].set(xlabel=var, ylabel="forward + backward s", title=f"time vs {var}")
        axes[1].set(xlabel=var, ylabel="peak MiB", title=f"peak memory vs {var}")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        save_png(fig, out / f"conv_{var}.png", dpi=90)

