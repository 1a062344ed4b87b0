"""Choices whose fastest value depends on the machine, measured once and cached with it.

One choice today: how many seeds of an arm one job stacks under ``stack_seeds = "auto"``.
On the CPU it changes no number (every kernel of a stacked step is its seed's own call:
:mod:`sharpen.experiments.plan`), only the time, and what is fastest is the machine's
business: a larger stack pays less Python and dispatch per seed, but its activations are
larger, and processes side by side share the caches and the memory bandwidth that the
memory-bound kernels (pooling, ReLU, copies) need, which one process timed alone cannot
see. So ``sharpen calibrate`` times a training step of the
arm's model at each size in :data:`SIZES` **with every core busy** (one process per core
running the same size, started together behind a barrier) and keeps the size with the
most seed-steps per second; the plan then uses it (:func:`lookup`) and records it in
``config.json``, each ``result.json`` and the report's header.

The cache is one JSON file (``$SHARPEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sharpen``, else
``~/.cache/sharpen``) that holds an entry per machine (CPU model, cores, architecture,
torch: :func:`sharpen.machine.describe`), so a home directory shared by a cluster's
machines keeps each machine's own answer. A configuration not calibrated on this machine
plans with the default (:data:`sharpen.experiments.plan.MAX_STACK`) and says so. CUDA runs
never use it: there the stack size can change a seed's numbers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_json
from sharpen.machine import describe

if TYPE_CHECKING:  # the name only: experiments.config's checks import the plan, which imports this
    from sharpen.experiments.config import RunConfig

SIZES = (1, 2, 5, 10)  # stack sizes timed; the largest is the default (plan.MAX_STACK)
ROUNDS = 3  # each size timed once per round; rounds alternate the order (drift cancels)
WINDOW_S = 0.6  # seconds every process steps per timing, all of them at once
MAX_WINDOW_S = 60.0  # the driver waits 600 s for a timing; longer windows only cost time
# a size replaces the default only when its median rate beats the default's by this much
# and it is faster in every round: on a noisy VM one window can be 20 % off
MARGIN = 0.05
CACHE_FILE = "calibration.json"
VERSION = 1


def cache_path() -> Path:
    """Where this user's calibrations are kept."""
    if os.environ.get("SHARPEN_CACHE_DIR"):
        return Path(os.environ["SHARPEN_CACHE_DIR"]) / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sharpen" / CACHE_FILE


def machine_key(machine: dict[str, Any] | None = None) -> str:
    return json.dumps(machine or describe(), sort_keys=True)


def plan_threads(cfg: RunConfig) -> int:
    from sharpen.experiments.plan import AUTO_THREADS  # the plan imports this module

    return AUTO_THREADS if cfg.threads == "auto" else int(cfg.threads)


def calibration_key(cfg: RunConfig) -> str:
    """What a step's time depends on: the built model (``build.model_key``), the batch, the
    step's settings and the threads each job gets."""
    from sharpen.experiments.build import model_key  # lazy: the plan reads keys without torch

    return json.dumps({"model": json.loads(model_key(cfg)), "batch_size": cfg.batch_size,
                       "optimizer": cfg.optimizer, "channels_last": cfg.channels_last,
                       "stack_conv": cfg.stack_conv, "amp": cfg.amp, "compile": cfg.compile,
                       "threads": plan_threads(cfg)}, sort_keys=True, default=str)


@dataclass(frozen=True)
class Calibrated:
    """This machine's measured choice for one configuration's model and step."""

    stack: int  # the most seeds one job stacks
    measured: str  # when (ISO date and time)
    processes: int  # how many ran at once (every core busy)
    rates: dict[int, float]  # median seed-steps per second over all processes, per size

    def describe(self) -> str:
        default = max(self.rates)
        gain = self.rates.get(self.stack, 0.0) / self.rates[default]
        return (f"calibrated on this machine {self.measured[:10]}: {self.stack} seed(s) per job"
                + ("" if self.stack == default or not gain else
                   f", {gain:.2f}× the seed-steps/s of {default} with {self.processes} "
                   "processes busy"))

    def record(self) -> dict[str, Any]:
        """What a plan, a ``result.json`` and a report keep of it."""
        return {"stack": self.stack, "measured": self.measured, "processes": self.processes,
                "seed_steps_per_s": {str(k): round(v, 2) for k, v in self.rates.items()}}


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": VERSION, "machines": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SharpenError(f"{path}: cannot be read ({exc}); delete it (it only caches "
                           "`sharpen calibrate`'s timings) and calibrate again") from None
    if not isinstance(data, dict) or data.get("version") != VERSION \
            or not isinstance(data.get("machines"), dict):
        raise SharpenError(f"{path}: not a sharpen calibration file of version {VERSION}; "
                           "delete it and run `sharpen calibrate` again")
    return data


def _choices(path: Path) -> dict[str, Any]:
    """This machine's entries in the cache file (key → entry), checked to be a mapping."""
    mine = _read(path)["machines"].get(machine_key(), {})
    choices = mine.get("choices", {}) if isinstance(mine, dict) else None
    if not isinstance(choices, dict):
        raise SharpenError(f"{path}: this machine's entry is not {{\"machine\": ..., "
                           "\"choices\": {...}}; delete the file and run `sharpen calibrate` "
                           "again")
    return choices


def _entry(path: Path, entry: Any) -> Calibrated:
    """A cached entry read back, or an error naming the file, the field and the value (a
    hand-edited stack of 0 or "two" must not plan, nor crash the plan)."""
    field = "the entry"
    try:
        field = "stack"
        stack = entry["stack"]
        if isinstance(stack, bool) or not isinstance(stack, int) or stack < 1:
            raise ValueError
        field = "seed_steps_per_s"
        rates = {int(k): float(v) for k, v in entry["seed_steps_per_s"].items()}
        if not rates or min(rates) < 1 or not all(v > 0 for v in rates.values()):
            raise ValueError
        field = "processes"
        processes = int(entry["processes"])
        field = "measured"
        return Calibrated(stack, str(entry["measured"]), processes, rates)
    except (KeyError, TypeError, ValueError, AttributeError):
        got = entry.get(field, "(missing)") if isinstance(entry, dict) else entry
        raise SharpenError(
            f"{path}: {field} = {json.dumps(got, default=str)[:80]} in a calibration of "
            f"{entry.get('model', '?') if isinstance(entry, dict) else '?'}: need stack an "
            "integer ≥ 1 and seed_steps_per_s {size: rate > 0}; fix it, or run `sharpen "
            "calibrate --forget` and calibrate again") from None


def lookup(cfg: RunConfig) -> Calibrated | None:
    """This machine's calibrated choice for ``cfg``, or None (not calibrated here)."""
    path = cache_path()
    if not path.exists():
        return None
    entry = _choices(path).get(calibration_key(cfg))
    return None if entry is None else _entry(path, entry)


def choose(rates: dict[int, list[float]], margin: float = MARGIN) -> int:
    """The size to stack: the default (the largest), unless another size's median rate
    beats it by ``margin`` and it was faster in every round (rates[k][r]: round r's)."""
    default = max(rates)
    best, best_rate = default, statistics.median(rates[default])
    for k, rs in rates.items():
        ratios = [a / b for a, b in zip(rs, rates[default])]
        med = statistics.median(rs)
        if k != default and min(ratios) > 1 and statistics.median(ratios) >= 1 + margin \
                and med > best_rate:
            best, best_rate = k, med
    return best


# --- the measurement -------------------------------------------------------------------------

def step_function(cfg: RunConfig, seeds: int) -> Callable[[], None]:
    """One training step of ``seeds`` stacked seeds of ``cfg``'s model, built and called as
    the trainer does (:func:`sharpen.training.loop.stacked_for_training`,
    :func:`~sharpen.training.loop.training_forward`: compiled, under bf16 autocast, when
    the configuration says so; they are in its calibration key), on a random batch."""
    import torch  # lazy: the plan reads the cache without torch

    from sharpen.experiments.build import input_shape, model_factory
    from sharpen.training import TrainSettings, build_models
    from sharpen.training.loop import make_optimizer, stacked_for_training, training_forward

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
    import torch

    if torch.is_tensor(out):
        return out.float().sum()
    items = out.values() if isinstance(out, dict) else out
    return sum((_total(v) for v in items), torch.zeros(()))


def _timing_process(cfg: RunConfig, sizes: Sequence[int], rounds: int, window: float,
                    threads: int, barrier: Any, results: Any, env: dict[str, str],
                    cwd: str, driver: int) -> None:
    """One of the processes that keep every core busy: per round and size, wait for the
    others, then step for ``window`` seconds and report the seed-steps done."""
    from sharpen.experiments.backends import _worker_init

    _worker_init(None, driver, env, cwd)
    import torch

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
    from sharpen.experiments.backends import worker_context
    from sharpen.machine import usable_cores

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
    if rounds < 1 or not 0 < window <= MAX_WINDOW_S:
        raise SharpenError(f"--rounds {rounds}, --window {window}: need rounds ≥ 1 and "
                           f"0 < window ≤ {MAX_WINDOW_S:g} seconds")
    todo: dict[str, RunConfig] = {}
    for cfg in cfgs:
        skip = _not_planned(cfg)
        if skip:
            log(f"skipped {cfg.model}: {skip}")
            continue
        todo.setdefault(calibration_key(cfg), cfg)
    if not todo:
        return []
    with _measuring(log):
        return _calibrate_each(todo, sizes, rounds, window, log)


def _not_planned(cfg: RunConfig) -> str:
    """Why the plan would never use a calibration of ``cfg`` ("" when it would): timing it
    would print a choice that no run takes."""
    from sharpen.experiments.job import resolve_device  # lazy: torch
    from sharpen.experiments.plan import stack_blockers  # lazy: the plan imports this module

    if resolve_device(cfg.device).type != "cpu":
        return (f"on {cfg.device}: the calibration is for the CPU (on CUDA the stack size "
                "can change a seed's numbers)")
    if cfg.stack_seeds != "auto":
        return (f"stack_seeds = {cfg.stack_seeds} is set, and the plan takes it as it is "
                "(the calibration serves stack_seeds = \"auto\")")
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
        _store(key, cal, {"model": cfg.model, "batch_size": cfg.batch_size,
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
    from sharpen.machine import usable_cores

    return max(1, usable_cores() // plan_threads(cfg))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the cache's lock file while it is read and written (two calibrations at once
    each keep the other's entries)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / (CACHE_FILE + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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


def _store(key: str, cal: Calibrated, about: dict[str, Any]) -> None:
    path = cache_path()
    with _locked(path):
        data = _read(path)
        entry = data["machines"].setdefault(machine_key(), {"machine": describe(), "choices": {}})
        entry["choices"][key] = {**cal.record(), **about}
        atomic_write_json(path, data)


def forget() -> bool:
    """Drop this machine's calibrations (True when there were any)."""
    path = cache_path()
    if not path.exists():
        return False
    with _locked(path):
        data = _read(path)
        had = data["machines"].pop(machine_key(), None) is not None
        atomic_write_json(path, data)
    return had


def stored() -> list[dict[str, Any]]:
    """This machine's calibrations as stored (one dict per configuration)."""
    path = cache_path()
    if not path.exists():
        return []
    entries = list(_choices(path).values())
    for entry in entries:
        _entry(path, entry)  # a damaged one is named here, not a KeyError in --show
    return entries
