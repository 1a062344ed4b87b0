"""Benchmarks: ``conv`` (the NumPy conv implementations of :mod:`sharpen.bench.numpy_conv`)
and ``train`` (our trainer against the canonical PyTorch loop). Each measures and writes
JSON; ``markdown`` renders the reports.

The names below load on first use (PEP 562): ``sharpen.bench.numpy_conv`` needs NumPy
only, not the trainer and torch that ``bench.train`` imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"run_conv_bench": "conv", "run_train_bench": "train", "compare_targets": "train"}

__all__ = ["run_conv_bench", "run_train_bench", "compare_targets"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"sharpen.bench.{_LAZY[name]}"), name)
