"""Choices whose fastest value depends on the machine, measured once and cached with it.

One choice today: how many seeds of an arm one job stacks under ``stack_seeds = "auto"``.
On the CPU it changes no number (every kernel of a stacked step is its seed's own call:
:mod:`sharpen.experiments.plan`), only the time, and what is fastest is the machine's
business: a larger stack pays less Python and dispatch per seed, but its activations are
larger, and processes side by side share the caches and the memory bandwidth that the
memory-bound kernels (pooling, ReLU, copies) need, which one process timed alone cannot
see. So ``sharpen calibrate`` times a training step of the
arm's model at each size in :data:`sharpen.experiments.stack_timing.SIZES` **with every
core busy** (one process per core running the same size, started together behind a
barrier: :mod:`sharpen.experiments.stack_timing`, which the plan does not import) and
keeps the size with the most seed-steps per second (:func:`choose`); the plan then uses it
(:func:`lookup`) and records it in ``config.json``, each ``result.json`` and the report's
header.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_json
from sharpen.machine import describe

if TYPE_CHECKING:  # the name only: experiments.config's checks import the plan, which imports this
    from sharpen.experiments.config import RunConfig

# a size replaces the default only when its median rate beats the default's by this much
# and it is faster in every round: on a noisy VM one window can be 20 % off
MARGIN = 0.05
CACHE_FILE = "calibration.json"
VERSION = 1


def cache_path() -> Path:
    """Where this user's calibrations are kept."""
    if os.environ.get("SHARPEN_CACHE_DIR"):  # "~/x" quoted in a file is not the shell's
        return Path(os.environ["SHARPEN_CACHE_DIR"]).expanduser() / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sharpen" / CACHE_FILE


def machine_key(machine: dict[str, Any] | None = None) -> str:
    return json.dumps(machine or describe(), sort_keys=True)


_STRUCTURE: dict[str, str] = {}  # build.model_key → the built model's repr


def calibration_key(cfg: RunConfig, threads: int) -> str:
    """What a step's time depends on: the model as built (its layers and their sizes, so
    that ``mnist`` and ``mnist-sample``, or a default written out in ``model_args``, share
    one calibration), the input's shape, the batch, the step's settings and the threads
    each job gets (``plan.plan_threads``)."""
    from sharpen.experiments.build import input_shape, model_factory, model_key  # lazy: torch

    mk = model_key(cfg)
    if mk not in _STRUCTURE:
        _STRUCTURE[mk] = repr(model_factory(cfg)())
    return json.dumps({"model": _STRUCTURE[mk], "input": list(input_shape(cfg)),
                       "batch_size": cfg.batch_size, "optimizer": cfg.optimizer,
                       "channels_last": cfg.channels_last, "stack_conv": cfg.stack_conv,
                       "amp": cfg.amp, "compile": cfg.compile, "threads": threads},
                      sort_keys=True, default=str)


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
        # "up to": fewer seeds than that, or more cores than groups, make smaller groups
        return (f"calibrated on this machine {self.measured[:10]}: up to {self.stack} seed(s) "
                "per job"
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


def lookup(cfg: RunConfig, threads: int) -> Calibrated | None:
    """This machine's calibrated choice for ``cfg`` at ``threads`` per job, or None (not
    calibrated here)."""
    path = cache_path()
    if not path.exists():
        return None
    entry = _choices(path).get(calibration_key(cfg, threads))
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


def store(key: str, cal: Calibrated, about: dict[str, Any]) -> None:
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
