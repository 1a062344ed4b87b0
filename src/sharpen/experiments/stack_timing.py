"""The measurement behind ``sharpen calibrate``: a training step of an arm's model timed
at each stack size in :data:`SIZES` with every core busy, the choice cached
(:mod:`sharpen.experiments.calibration` keeps the cache the plan reads; this module
imports the plan, the trainer and the worker processes, so the plan does not import it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import torch

from sharpen.errors import SharpenError
from sharpen.experiments.backends import _worker_init, worker_context
from sharpen.experiments.build import input_shape, model_factory
from sharpen.experiments.calibration import (
    CACHE_FILE,
    Calibrated,
    cache_path,
    calibration_key,
    choose,
    store,
)
from sharpen.experiments.config import RunConfig
from sharpen.experiments.plan import not_calibrated_because, plan_threads, stack_blockers
from sharpen.machine import usable_cores
from sharpen.training import TrainSettings, build_models
from sharpen.training.loop import make_optimizer, stacked_for_training, training_forward

SIZES = (1, 2, 5, 10)  # stack sizes timed; the largest is the default (plan.MAX_STACK)
ROUNDS = 3  # each size timed once per round; rounds alternate the order (drift cancels)
WINDOW_S = 0.6  # seconds every process steps per timing, all of them at once
MAX_WINDOW_S = 60.0  # the driver waits 600 s for a timing; longer windows only cost time
MAX_ROUNDS = 100  # more only costs time (--rounds 10**9 allocated 8 GB per size up front)


def step_function(cfg: RunConfig, seeds: int) -> Callable[[], None]:
    """One training step of ``seeds`` stacked seeds of ``cfg``'s model, built and called as
    the trainer does (:func:`sharpen.training.loop.stacked_for_training`,
    :func:`~sharpen.training.loop.training_forward`: compiled, under bf16 autocast, when
    the configuration says so; they are in its calibration key), on a random batch."""
    s = TrainSettings.from_config(cfg)
    model = stacked_for_training(build_models(model_factory(cfg), list(range(seeds))), s)
    opt = make_optimizer(model, s)
    forward, autocast = training_forward(model, s)
    x = torch.randn(seeds * cfg.batch_size, *input_shape(cfg))
    if x.dim() == 4 and s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = _total(forward(x))
        loss.backward()
        opt.step()

    return step


def _total(out: Any) -> Any:
    """Every tensor of a model's output summed: a loss for timing, whatever the output."""
    if torch.is_tensor(out):
        return out.float().sum()
    items = out.values() if isinstance(out, dict) else out
    return sum((_total(v) for v in items), torch.zeros(()))


def _timing_process(cfg: RunConfig, sizes: Sequence[int], rounds: int, window: float,
                    threads: int, barrier: Any, results: Any, env: dict[str, str],
                    cwd: str, driver: int) -> None:
    """One of the processes that keep every core busy: per round and size, wait for the
    others, then step for ``window`` seconds and report the seed-steps done."""
    _worker_init(None, driver, env, cwd)
    torch.set_num_threads(threads)
    try:
        steps = {k: step_function(cfg, k) for k in sizes}
        for k in sizes:  # warm: the first steps allocate and pick kernels
            for _ in range(2):
                steps[k]()
        for r in range(rounds):
            for k in (sizes if r % 2 == 0 else list(reversed(sizes))):
                barrier.wait(timeout=600)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < window:
                    steps[k]()
                    n += 1
                results.put((r, k, n * k / (time.perf_counter() - t0)))
    except BaseException as exc:  # noqa: BLE001 - the driver names it
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}", 0.0))


def measure(cfg: RunConfig, sizes: Sequence[int] = SIZES, rounds: int = ROUNDS,
            window: float = WINDOW_S, processes: int | None = None) -> dict[int, list[float]]:
    """Seed-steps per second of ``cfg``'s training step at each stack size, summed over
    ``processes`` processes stepping at once (default: enough to busy every usable core
    at the plan's threads per job): {size: [rate of round 0, 1, ...]}."""
    threads = plan_threads(cfg)
    procs = processes or max(1, usable_cores() // threads)
    ctx, server = worker_context()
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_timing_process, daemon=True,
                           args=(cfg, list(sizes), rounds, window, threads, barrier, results,
                                 dict(os.environ), os.getcwd(), server))
               for _ in range(procs)]
    for w in workers:
        w.start()
    rates: dict[int, list[float]] = {k: [0.0] * rounds for k in sizes}
    try:
        for _ in range(procs * rounds * len(sizes)):
            r, k, rate = results.get(timeout=600)
            if r == "error":
                raise SharpenError(f"calibrating {cfg.model!r}: a timing process failed: {k}")
            rates[int(k)][int(r)] += rate
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
    return rates


def calibrate(cfgs: Iterable[RunConfig], sizes: Sequence[int] = SIZES, rounds: int = ROUNDS,
              window: float = WINDOW_S, log: Callable[[str], None] = print
              ) -> list[dict[str, Any]]:
    """Time every distinct model and step of ``cfgs`` (CPU ones) and cache each choice for
    this machine; returns one row per configuration timed."""
    if sorted(set(sizes)) != list(sizes) or sizes[0] < 1 or len(sizes) < 2:
        raise SharpenError(f"sizes {list(sizes)}: give two or more increasing stack sizes ≥ 1")
    # nan passes `window <= 0` and times no step (a rate of 0); a window past the
    # driver's wait for a timing (600 s) ends in queue.Empty: both are the flag's error
    if not 1 <= rounds <= MAX_ROUNDS or not 0 < window <= MAX_WINDOW_S:
        raise SharpenError(f"--rounds {rounds}, --window {window}: need 1 ≤ rounds ≤ "
                           f"{MAX_ROUNDS} and 0 < window ≤ {MAX_WINDOW_S:g} seconds")
    if rounds < ROUNDS:
        log(f"note: with --rounds {rounds} (< {ROUNDS}) a choice other than the default can "
            "rest on one noisy timing (it changes no number, only the time)")
    todo: dict[str, RunConfig] = {}
    for cfg in cfgs:
        skip = _not_planned(cfg)
        if skip:
            log(f"skipped {cfg.model}: {skip}")
            continue
        todo.setdefault(calibration_key(cfg, plan_threads(cfg)), cfg)
    if not todo:
        return []
    with _measuring(log):
        return _calibrate_each(todo, sizes, rounds, window, log)


def _not_planned(cfg: RunConfig) -> str:
    """Why the plan would never use a calibration of ``cfg`` ("" when it would): timing it
    would print a choice that no run takes."""
    said = not_calibrated_because(cfg)
    if said:
        return said
    why = stack_blockers(cfg)
    return ("its seeds train one per job (not stackable: " + "; ".join(why) + ")") if why else ""


def _calibrate_each(todo: dict[str, RunConfig], sizes: Sequence[int], rounds: int,
                    window: float, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for key, cfg in todo.items():
        t0 = time.perf_counter()
        rates = measure(cfg, sizes, rounds, window)
        k = choose(rates)
        med = {s: statistics.median(v) for s, v in rates.items()}
        cal = Calibrated(k, datetime.now().isoformat(timespec="seconds"),
                         max(1, _procs(cfg)), med)
        store(key, cal, {"model": cfg.model, "batch_size": cfg.batch_size,
                          "rounds": {str(s): [round(x, 2) for x in v] for s, v in rates.items()}})
        rows.append({"model": cfg.model, "batch_size": cfg.batch_size, "stack": k,
                     "rates": med, "processes": cal.processes,
                     "seconds": time.perf_counter() - t0})
        log(f"{cfg.model} (batch {cfg.batch_size}, {cal.processes} processes busy): "
            + ", ".join(f"{s}: {v:.0f}" for s, v in med.items())
            + f" seed-steps/s → {cal.describe()} ({rows[-1]['seconds']:.0f} s)")
    if rows:
        log(f"cached in {cache_path()}")
    return rows


def _procs(cfg: RunConfig) -> int:
    return max(1, usable_cores() // plan_threads(cfg))


@contextlib.contextmanager
def _measuring(log: Callable[[str], None]) -> Iterator[None]:
    """One calibration at a time per cache: two at once would each time their steps with
    the cores shared by twice the processes, and cache what the other one's load made of
    them. A second one waits, and says so."""
    path = cache_path()
    try:  # before minutes of timing, not after them
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.parent / (CACHE_FILE + ".measuring.lock"), "a")  # noqa: SIM115
    except OSError as exc:
        raise SharpenError(f"{path.parent}: cannot keep calibrations there ({exc}); set "
                           "SHARPEN_CACHE_DIR to a writable folder") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting: another `sharpen calibrate` is timing on this machine (timings taken "
                "at the same time would share the cores)")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


