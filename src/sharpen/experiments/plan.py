"""The execution plan: which seeds of each arm train together, and with how many threads.

The plan is made from the configuration and this machine's core count when a run directory
is created, written into ``config.json`` and each ``result.json``, and reused when the
directory is resumed; a grown directory records the groups as they trained (its finished
seeds' groups and the new ones), never a regrouping that did not run.

Which seeds train together changes no number on the CPU: every kernel of a stacked step
is its seed's own call (:mod:`sharpen.training.stack`), so a seed's files are the same
alone, in a group of ten, with ``--runs 2`` or ``--runs 20`` and with any ``--arms``. What
does change float rounding is torch's intra-op thread count (it splits convolutions'
reductions differently), so ``threads = "auto"`` is one thread per job whatever the
machine, the runs or the arms, and the plan records it; the cores are used by running
groups side by side. ``--workers`` and ``--backend`` only decide *where* the groups run,
and the same command gives byte-identical ``results.csv`` serially, in worker processes
and on Ray. (On CUDA the default grouped convolutions and cuDNN's kernels are not
per-seed calls: there a seed's numbers may depend on its group, which each
``result.json`` records.)

Whether an arm's seeds may stack is declared by its model (probed once: every weight in a
stackable layer, a forward that treats samples independently) and by each technique
(``Technique.stacks``), and checked here, in :func:`stack_blockers`, only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sharpen.experiments.calibration import Calibrated, lookup

if TYPE_CHECKING:  # the name only: experiments.config's checks import this module
    from sharpen.experiments.config import RunConfig

# Ten stacked seeds fill a 2-core CPU's vector units for LeNet-sized models
# (`sharpen bench train` times it); every report needs 10-20 runs per arm.
MAX_STACK = 10
# torch threads per job under threads = "auto": fixed, because the thread count changes a
# seed's float rounding and must not follow the number of jobs (--runs, --arms)
AUTO_THREADS = 1


@dataclass(frozen=True)
class Group:
    """Seeds of one arm that train as one stacked model, in one job."""

    arm: str
    seeds: tuple[int, ...]


_PROBED: dict[str, str | None] = {}  # build.model_key → the stacking probe's answer


def stack_blockers(cfg: RunConfig) -> list[str]:
    """Why the seeds of ``cfg`` cannot train stacked, one reason per field; [] = they can.
    The model is probed as it will train (built by ``build_model``), once per model key."""
    # the CLI's parser reads backends → plan: torch loads only when a model is probed
    from sharpen.experiments.build import input_shape, model_factory, model_key  # lazy: start-up
    from sharpen.techniques import techniques_for  # lazy: start-up
    from sharpen.training.stack import stack_problem  # lazy: start-up

    why = [f"{t.name} (its hook does not stack)" for t in techniques_for(cfg) if not t.stacks]
    key = model_key(cfg)
    if key not in _PROBED:
        _PROBED[key] = stack_problem(model_factory(cfg), input_shape(cfg))
    if _PROBED[key]:
        why.append(f"model {cfg.model!r}: {_PROBED[key]}")
    return why


@dataclass(frozen=True)
class StackChoice:
    """How many seeds of an arm may train at once, why, and the calibration it came from."""

    size: int
    why: str
    calibrated: Calibrated | None = None


def stack_size(cfg: RunConfig, n_seeds: int) -> StackChoice:
    """The most seeds of this arm that may train at once, and why: the configuration's
    ``stack_seeds``; else 1 when something does not stack; else this machine's calibrated
    size for the arm's model (CPU only: :mod:`sharpen.experiments.calibration`); else
    :data:`MAX_STACK`."""
    if cfg.stack_seeds != "auto":
        return StackChoice(min(int(cfg.stack_seeds), n_seeds), "stack_seeds set in the configuration")
    why = stack_blockers(cfg)
    if why:
        return StackChoice(1, "not stackable: " + "; ".join(why))
    cal = None if not_calibrated_because(cfg) else lookup(cfg, plan_threads(cfg))
    if cal is not None:
        return StackChoice(min(cal.stack, MAX_STACK, n_seeds), f"auto: {cal.describe()}", cal)
    return StackChoice(min(MAX_STACK, n_seeds), f"auto: up to {MAX_STACK} seeds per group"
                       " (not calibrated on this machine: `sharpen calibrate` times it)")


def not_calibrated_because(cfg: RunConfig) -> str:
    """Why the plan never takes a calibrated stack size for ``cfg`` ("" when it may): only
    where the size cannot change a number, i.e. every stacked kernel is its seed's own call.
    ``stack_blockers`` is the caller's (it also decides stack_seeds = 1)."""
    from sharpen.experiments.build import resolve_device  # lazy: torch
    from sharpen.training.stack import resolve_strategy  # lazy: torch

    if cfg.stack_seeds != "auto":
        return (f"stack_seeds = {cfg.stack_seeds} is set, and the plan takes it as it is "
                "(the calibration serves stack_seeds = \"auto\")")
    device = resolve_device(cfg.device)
    if device.type != "cpu":
        return (f"on {cfg.device}: the calibration is for the CPU (on CUDA the stack size "
                "can change a seed's numbers)")
    if resolve_strategy(cfg.stack_conv, device) != "loop":
        return (f"stack_conv = {cfg.stack_conv!r}: one convolution serves a group's seeds, so "
                "the stack size can change a seed's numbers")
    return ""


def plan_threads(cfg: RunConfig) -> int:
    """Torch threads per job: the configuration's, or :data:`AUTO_THREADS` under "auto"."""
    return AUTO_THREADS if cfg.threads == "auto" else int(cfg.threads)


def make_plan(exp: Any, cores: int | None = None) -> dict[str, Any]:
    """{"cores": C, "arms": {arm: {"stack": K, "why": ..., "threads": T, "groups": [[seeds]]}}}
    (and "calibrated": the calibration's record, when this machine's chose K).

    Seeds are split, in seed order, into near-equal groups of at most K. Under "auto" an
    arm gets enough groups that the experiment's groups can occupy every core (one
    process per core beats intra-op threads for these small models: `sharpen bench train`
    measures both), and ``threads = "auto"`` gives each job one thread: a thread count
    taken from the jobs (cores ÷ jobs) would change a seed's rounding with ``--runs`` and
    ``--arms``. A group's members depend only on the configuration and this core count,
    never on which runs finished earlier.
    """
    cores = cores or max(1, os.cpu_count() or 1)
    seeds = list(exp.seeds)
    n_arms = max(1, len(exp.arms))
    arms: dict[str, Any] = {}
    for arm, cfg in exp.arms.items():
        choice = stack_size(cfg, len(seeds))
        k = choice.size
        n_groups = -(-len(seeds) // max(k, 1))
        if cfg.stack_seeds == "auto" and k > 1:  # spread over the cores this arm may use
            n_groups = max(n_groups, min(len(seeds), -(-cores // n_arms)))
        size, extra = divmod(len(seeds), n_groups)
        groups, i = [], 0
        for g in range(n_groups):
            m = size + (1 if g < extra else 0)
            groups.append(seeds[i:i + m])
            i += m
        arms[arm] = {"stack": max(len(g) for g in groups), "why": choice.why, "groups": groups}
        if choice.calibrated is not None:
            arms[arm]["calibrated"] = choice.calibrated.record()
    for arm, cfg in exp.arms.items():
        arms[arm]["threads"] = plan_threads(cfg)
    return {"cores": cores, "arms": arms}


def same_seeds(plan: dict[str, Any], other: dict[str, Any]) -> bool:
    """True when two plans group the same arms' same seeds (a recorded plan can be reused)."""
    def seeds(p: dict[str, Any]) -> dict[str, list[int]]:
        return {a: sorted(s for g in v["groups"] for s in g) for a, v in p["arms"].items()}

    return seeds(plan) == seeds(other)


def groups_of(plan: dict[str, Any]) -> list[Group]:
    return [Group(arm, tuple(g)) for arm, a in plan["arms"].items() for g in a["groups"]]
