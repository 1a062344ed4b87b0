"""Where a many-seed job spends its time: ``sharpen bench profile``.

Two cases, each run through the runner exactly as ``sharpen run`` runs it, but with its
jobs one after another in this process (``backend = "serial"``) under ``torch.profiler``:

* ``sharpening``: sharpening-mnist's `sharpening` arm (LeNet-5 + dropout, progressive
  sharpening), 10 seeds in the default plan's groups (stacked, one thread per job);
* ``pairs``: paper 004's protocol (Sub_LeNet5 / _WS / _WS_AL on new digit pairs per seed).

The trainer marks its phases (:mod:`sharpen.training.phases`: data, forward, loss,
backward, optimizer, bookkeeping, evaluation, files, set-up); each phase's time is split
by what ran inside it, from the operators' own (self) times:

* ``conv/matmul kernels``: convolution and matrix-product kernels, forward and backward;
* ``other kernels``: every other operator that touches data (element-wise, pooling,
  dropout, reductions, copies, the optimizer's fused kernels);
* ``dispatch``: operators that only make views or call another operator (``conv2d`` →
  ``convolution`` → ``_convolution``, ``unbind``, ``view``): the price of a call;
* ``autograd``: the backward engine's own bookkeeping around each node;
* ``Python``: the phase's time in no operator at all (the interpreter, the module calls).

Time outside every phase is the runner's (planning, the schedule, writing the report).
The profiler adds its own cost per operator, so the profiled wall is also given beside an
unprofiled one; the shares are what counts.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from sharpen.bench.train import LENET_SETTINGS, SHARPENING, _cpu_name, _quiet_stderr
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.runner import run_experiment
from sharpen.experiments.stack_timing import step_function
from sharpen.io import atomic_write_json, atomic_write_text
from sharpen.training.phases import PHASES, PREFIX

COMPUTE_OPS = frozenset({
    "aten::mkldnn_convolution", "aten::convolution_backward", "aten::mm", "aten::addmm",
    "aten::bmm", "aten::baddbmm", "aten::cudnn_convolution", "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward", "aten::thnn_conv2d", "aten::mkldnn_convolution_backward"})
# operators that make a view, read metadata or only call another operator: their self
# time is the cost of a call, not of work on data
DISPATCH_OPS = frozenset({
    "aten::conv2d", "aten::conv1d", "aten::convolution", "aten::_convolution", "aten::linear",
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::unbind", "aten::select",
    "aten::slice", "aten::unflatten", "aten::as_strided", "aten::t", "aten::transpose",
    "aten::expand", "aten::chunk", "aten::split", "aten::split_with_sizes", "aten::detach",
    "detach", "aten::alias", "aten::empty", "aten::empty_like", "aten::empty_strided",
    "aten::resize_", "aten::unsqueeze", "aten::squeeze", "aten::flatten", "aten::permute",
    "aten::contiguous", "aten::to", "aten::lift_fresh", "aten::result_type",
    "aten::is_nonzero", "aten::numpy_T", "aten::expand_as", "aten::view_as", "aten::narrow",
    "aten::max_pool2d", "aten::dropout", "aten::cross_entropy_loss", "aten::log_softmax",
    "aten::binary_cross_entropy_with_logits", "aten::batch_norm", "aten::_batch_norm_impl_index",
    "aten::matmul", "aten::set_", "aten::zero_", "aten::squeeze_",
    "aten::unsqueeze_", "aten::_unsafe_view", "aten::unsafe_split", "aten::type_as",
    "aten::is_same_size", "aten::_has_compatible_shallow_copy_type", "aten::requires_grad_"})
CATEGORIES = ("conv/matmul kernels", "other kernels", "dispatch", "autograd", "Python")
OUTSIDE = "runner (outside every phase)"
PROFILED_RUNS = 10
TOP_OPS = 14  # operators listed by their own time (phase ranges left out)

PROFILES = {
    "quick": {"epochs": 1, "images": 1000, "seeds": 4, "pair_seeds": 4, "pairs": 200,
              "pair_epochs": 1, "sweep_steps": 1},
    "full": {"epochs": 4, "images": 5000, "seeds": 10, "pair_seeds": 20, "pairs": 1000,
             "pair_epochs": 5, "sweep_steps": 5},
}


def category(name: str) -> str:
    """The category of an operator's self time (see the module docstring)."""
    if name in COMPUTE_OPS:
        return "conv/matmul kernels"
    if name.startswith("autograd::") or name.endswith(("Backward0", "Backward1")) \
            or name.startswith("torch::autograd"):
        return "autograd"
    if name in DISPATCH_OPS:
        return "dispatch"
    return "other kernels"


def breakdown(events: Any) -> dict[str, dict[str, float]]:
    """Seconds per phase and category from a profiler's events (a phase's own time, in no
    operator, is ``Python``; time in no phase is the runner's)."""
    out: dict[str, dict[str, float]] = {}

    def add(ph: str, cat: str, us: float) -> None:
        row = out.setdefault(ph, dict.fromkeys(CATEGORIES, 0.0))
        row[cat] += us / 1e6

    def walk(ev: Any, ph: str) -> None:
        if ev.name.startswith(PREFIX):
            ph = ev.name[len(PREFIX):]
            add(ph, "Python", ev.self_cpu_time_total)
        elif ph == OUTSIDE and not ev.name.startswith("aten::") and ev.cpu_parent is None:
            add(ph, "Python", ev.self_cpu_time_total)
        else:
            add(ph, category(ev.name), ev.self_cpu_time_total)
        for child in ev.cpu_children:
            walk(child, ph)

    for ev in events:
        if ev.cpu_parent is None:
            walk(ev, OUTSIDE)
    return out


def _phase_order(rows: dict[str, dict[str, float]]) -> list[str]:
    known = [p for p in PHASES if p in rows]
    return known + sorted(p for p in rows if p not in PHASES and p != OUTSIDE) \
        + ([OUTSIDE] if OUTSIDE in rows else [])


def _profile_case(label: str, exp: Experiment, out: Path, steps: int,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The case unprofiled (default plan: worker processes; and serial), then profiled
    serially: its walls and its phase × category table."""
    walls = {}
    for how, kw in (("default plan", {}), ("serial, this process", {"backend": "serial"})):
        d = out / f"{label}-{how.split(',')[0].replace(' ', '-')}"
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        run_experiment(exp, d, quiet=True, **kw)
        walls[how] = time.perf_counter() - t0
    d = out / f"{label}-profiled"
    shutil.rmtree(d, ignore_errors=True)
    # at most 10 seeds per arm under the profiler: the groups the default plan trains
    # (one of 10 per arm, each the size of its 20-seed plan's) in a few GB of events
    sub = exp.model_copy(update={"runs": min(exp.runs, PROFILED_RUNS)})
    t0 = time.perf_counter()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        run_experiment(sub, d, quiet=True, backend="serial")
    walls["serial, profiled"] = time.perf_counter() - t0
    rows = breakdown(prof.events())
    total = sum(sum(r.values()) for r in rows.values())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:TOP_OPS]
    ops = [{"op": e.key, "category": category(e.key), "calls": e.count,
            "seconds": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / 1e6 / total} for e in top
           if not e.key.startswith(PREFIX)]
    table = [{"phase": p, "seconds": sum(rows[p].values()),
              "share": sum(rows[p].values()) / total,
              **{c: rows[p][c] for c in CATEGORIES}} for p in _phase_order(rows)]
    cats = {c: sum(r[c] for r in rows.values()) / total for c in CATEGORIES}
    for d in out.glob(f"{label}-*"):
        shutil.rmtree(d, ignore_errors=True)
    log(f"  {label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items()))
    return {"case": label, "walls": walls, "profiled_seconds": total,
            "steps": steps * sub.runs // exp.runs, "profiled_runs": len(exp.arms) * sub.runs,
            "phases": table, "categories": cats, "top_ops": ops,
            "runs": len(exp.arms) * exp.runs,
            "arms": {a: {"model": c.model, "batch_size": c.batch_size, "epochs": c.epochs}
                     for a, c in exp.arms.items()}}


def stack_sweep(cfg: RunConfig, sizes: tuple[int, ...] = (1, 2, 5, 10), steps: int = 4,
                threads: int = 1) -> dict[str, Any]:
    """Milliseconds per seed of a training step of ``cfg``'s model with E stacked seeds,
    for each E in ``sizes``, on ``threads`` threads (the plan's), in this process alone
    (``sharpen calibrate`` times the same step with every core busy). On the CPU the stack
    size changes no number, only the time."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    per_seed = {}
    try:
        for E in sizes:
            step = step_function(cfg, E)
            for _ in range(2):
                step()
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                best = min(best, (time.perf_counter() - t0) / steps)
            per_seed[E] = 1000 * best / E
    finally:
        torch.set_num_threads(before)
    fastest = min(per_seed, key=per_seed.get)
    return {"model": cfg.model, "batch_size": cfg.batch_size, "threads": threads,
            "ms_per_seed_step": per_seed, "fastest": fastest,
            "vs_ten": per_seed[max(sizes)] / per_seed[fastest]}


def sharpening_case(p: dict[str, Any]) -> tuple[Experiment, int]:
    cfg = RunConfig(dataset="mnist-sample", model="lenet5_dropout", epochs=p["epochs"],
                    blur_n=SHARPENING, train_size=p["images"], test_size=1000, checkpoint=True,
                    **LENET_SETTINGS)
    steps = p["seeds"] * p["epochs"] * -(-p["images"] // 128)
    return Experiment(name="profile-sharpening", runs=p["seeds"], arms={"sharpening": cfg}), steps


def pairs_case(p: dict[str, Any]) -> tuple[Experiment, int]:
    arms = {m: RunConfig(dataset="mnist-sample", model=m, batch_size=bs, pairs=p["pairs"],
                         epochs=p["pair_epochs"], optimizer="adam", lr=0.01, checkpoint=True)
            for m, bs in (("sub_lenet5", 250), ("sub_lenet5_ws", 100), ("sub_lenet5_ws_al", 50))}
    steps = p["pair_seeds"] * p["pair_epochs"] * sum(-(-p["pairs"] // c.batch_size)
                                                      for c in arms.values())
    return Experiment(name="profile-pairs", runs=p["pair_seeds"], arms=arms), steps


def run_profile_bench(out: Path | None = None, quick: bool = True,
                      log: Callable[[str], None] = print) -> Path:
    """Profile both cases; write ``profile.json`` and ``report.md`` into ``out``."""
    p = PROFILES["quick" if quick else "full"]
    out = Path(out) if out else Path("runs") / "bench-profile" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "processor": _cpu_name(), "threads": torch.get_num_threads()},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "profile": "quick" if quick else "full", "cases": []}
    t0 = time.perf_counter()
    for label, make in (("sharpening", sharpening_case), ("pairs", pairs_case)):
        exp, steps = make(p)
        res["cases"].append(_profile_case(label, exp, out, steps, log))
        res["cases"][-1]["stack_sweep"] = [stack_sweep(c, steps=p["sweep_steps"])
                                           for c in exp.arms.values()]
    res["seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "profile.json", res)
    md = profile_markdown(res)
    atomic_write_text(out / "report.md", md)
    log(md)
    return out


def profile_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"# sharpen bench profile ({res['profile']} profile, {res['seconds']:.0f} s)", "",
             f"{m['processor']}, {m['cpus']} cores, torch {res['versions']['torch']}, "
             f"Python {res['versions']['python']}", ""]
    for c in res["cases"]:
        arms = ", ".join(f"{a} (batch {v['batch_size']}, {v['epochs']} epochs)"
                         for a, v in c["arms"].items())
        lines += [f"## {c['case']}: {c['runs']} runs, {arms}", "",
                  "Unprofiled: " + ", ".join(f"{k} {v:.1f} s" for k, v in c["walls"].items()
                                             if "profiled" not in k)
                  + f"; profiled serially ({c['profiled_runs']} runs, {c['steps']} training "
                  f"steps of one seed) {c['walls']['serial, profiled']:.1f} s.", "",
                  "| phase | s | share | " + " | ".join(CATEGORIES) + " |",
                  "|---|---|---|" + "---|" * len(CATEGORIES)]
        for r in c["phases"]:
            lines.append(f"| {r['phase']} | {r['seconds']:.2f} | {100 * r['share']:.1f} % | "
                         + " | ".join(f"{100 * r[k] / c['profiled_seconds']:.1f} %"
                                      for k in CATEGORIES) + " |")
        lines.append("| **all** | " + f"{c['profiled_seconds']:.2f} | 100 % | "
                     + " | ".join(f"**{100 * c['categories'][k]:.1f} %**" for k in CATEGORIES)
                     + " |")
        lines += ["", "A training step's time per seed by stack size (one thread, ms; the stack "
                  "size changes no number on the CPU):", "",
                  "| model | batch | " + " | ".join(f"E = {e}" for e in
                                                    c["stack_sweep"][0]["ms_per_seed_step"])
                  + " | fastest | E = 10 / fastest |",
                  "|---|---|" + "---|" * (len(c["stack_sweep"][0]["ms_per_seed_step"]) + 2)]
        lines += [f"| {w['model']} | {w['batch_size']} | "
                  + " | ".join(f"{v:.2f}" for v in w["ms_per_seed_step"].values())
                  + f" | {w['fastest']} | {w['vs_ten']:.2f} |" for w in c["stack_sweep"]]
        lines += ["", "Operators by their own time (all phases):", "",
                  "| operator | category | calls | s | share |", "|---|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['category']} | {o['calls']} | {o['seconds']:.2f} | "
                  f"{100 * o['share']:.1f} % |" for o in c["top_ops"]]
        lines.append("")
    return "\n".join(lines) + "\n"
