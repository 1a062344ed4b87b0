"""Experiment files, the execution plan, jobs, backends and run directories.

The names below load on first use (PEP 562): the CLI reads the backend registry and the
bundled list without importing torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"Experiment": "config", "RunConfig": "config", "list_bundled": "config",
         "load_experiment": "config", "run_experiment": "runner"}

__all__ = ["Experiment", "RunConfig", "list_bundled", "load_experiment", "run_experiment"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
