"""Named phases of a job for the profiler (``sharpen bench profile``).

``phase("backward")`` is a ``torch.profiler`` range while a profiler records and a shared
no-op context otherwise (one flag read per phase, ~0.1 µs), so the trainer carries its own
map of where time goes without paying for it in normal runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

# every phase a job marks, in the order a step meets them; the profile reports them so
PHASES = ("setup: data", "setup: models", "data", "forward", "loss", "backward", "optimizer",
          "bookkeeping", "evaluation", "files: metrics", "files: checkpoint", "files: results")
PREFIX = "sharpen::"
_OFF = contextlib.nullcontext()


def phase(name: str) -> contextlib.AbstractContextManager[Any]:
    """A profiler range named ``sharpen::<name>`` while one records, else nothing."""
    if torch._C._autograd._profiler_enabled():
        return torch.profiler.record_function(PREFIX + name)
    return _OFF
