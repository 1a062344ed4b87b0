"""A training's checkpoint: everything a stopped :func:`~sharpen.training.loop.train` needs to
continue with the numbers of an uninterrupted one (weights, optimizer, every random stream,
hook states, the rows so far).

The loop makes one after every epoch (``on_checkpoint``) and takes one back (``resume``);
the job saves it as its group's ``checkpoint.pt`` (:func:`sharpen.rundir.checkpoint_path`)
and loads it when a killed run is started again. Both go through this class: the file's
keys are its fields, spelt here alone.

On disk it is a ``torch.save``'d dict of the fields plus ``format``, the layout's version:

- format 1 (no ``format`` key): written before the optimizer stepped each seed's slice; its
  optimizer state is per stacked parameter, so it cannot resume (the job trains again).
- format 2 (today's): the fields below. Read too: ``lr_mult`` (the older name of
  ``lr_scale``) and a dict without ``seeds``, ``predictions`` or ``wall`` (written before
  they were recorded).

A format above :attr:`Checkpoint.FORMAT` was written by a newer sharpen: loading it is an
error naming the file and the format, never a guess.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch

from sharpen.errors import SharpenError
from sharpen.io import atomic_write_bytes


class UnusableCheckpoint(ValueError):
    """A checkpoint that cannot resume but costs only a restart (damaged, or of format 1).
    Its message completes "<file> ...": why the training starts again from epoch 1."""


@dataclass
class Checkpoint:
    """One group's training state after ``epoch`` epochs (seed-major lists: one per seed)."""

    FORMAT: ClassVar[int] = 2

    seeds: list[int] | None  # the group's seeds (None: written before they were recorded)
    epoch: int  # epochs done: training goes on with the next
    model: dict[str, torch.Tensor]  # the stacked model's state dict
    optimizer: dict[str, Any]  # the SeedOptimizer's (per-seed slices) state dict
    rng: dict[tuple[str, str], list[torch.Tensor]]  # (stream, device type) → per-seed states
    torch_rng: torch.Tensor  # torch's global CPU generator
    hooks: list[dict[str, Any]]  # each hook's state_dict, in the order of the hooks
    lr_scale: list[float]  # per seed, the multiplier of the scheduled lr
    step: int  # optimizer steps done
    rows: list[list[dict[str, Any]]]  # per seed, its epoch rows so far
    diverged: list[str | None]  # per seed, None or why it diverged
    predictions: list[dict[str, torch.Tensor]] = field(default_factory=list)  # last epoch's
    wall: float = 0.0  # seconds the job had trained when it saved this (its clock, not torch's)

    def to_dict(self) -> dict[str, Any]:
        """The dict ``checkpoint.pt`` holds (tensors are the live ones: save it at once)."""
        return {"format": self.FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls, d: Any, source: str | Path = "a checkpoint") -> Checkpoint:
        """The checkpoint a dict read back from ``source`` (named in the errors) holds."""
        if not isinstance(d, dict):
            raise UnusableCheckpoint("is unreadable")
        fmt = d.get("format", 1)
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > cls.FORMAT:
            raise SharpenError(f"{source}: checkpoint format {fmt} was written by a newer "
                               f"sharpen (this one reads format {cls.FORMAT}); update sharpen "
                               "to resume it, or delete the file to train again from epoch 1")
        if fmt != cls.FORMAT:
            raise UnusableCheckpoint("was written by an older sharpen (its optimizer state is "
                                     "not per seed)")
        d = {"seeds": None, **d, "lr_scale": d.get("lr_scale") or d.get("lr_mult")}  # (older)
        known = {f.name for f in fields(cls)}
        try:
            ckpt = cls(**{k: v for k, v in d.items() if k in known})
        except TypeError:  # a field missing: a file cut short or not ours
            raise UnusableCheckpoint("is unreadable") from None
        if ckpt.lr_scale is None:
            raise UnusableCheckpoint("is unreadable")
        return ckpt

    def save(self, path: str | Path) -> None:
        """Write it to ``path`` atomically (the old file stays whole if this is killed)."""
        buf = io.BytesIO()
        torch.save(self.to_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """The checkpoint in ``path``, on the CPU. :class:`UnusableCheckpoint` when it cannot
        resume (damaged, or of format 1); :class:`SharpenError` when a newer sharpen wrote it."""
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - bit rot, a copy cut short: only costs a restart
            raise UnusableCheckpoint("is unreadable") from None
        return cls.from_dict(d, path)
