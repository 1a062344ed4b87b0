"""Deterministic mode: the same command gives the same numbers on a GPU too.

On the CPU, torch's kernels give the same result for the same thread count (the plan fixes
it), so nothing needs setting. On CUDA some kernels race (atomic adds in backward passes,
cuDNN's autotuned algorithm choice, cuBLAS's split workspaces); deterministic mode asks
torch for deterministic kernels (an error names any op that has none), pins cuBLAS's
workspace (``CUBLAS_WORKSPACE_CONFIG``) and turns cuDNN autotuning off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

CUBLAS = ":4096:8"  # the workspace setting torch documents for deterministic cuBLAS


def resolve(setting: bool | str, device: torch.device | str) -> bool:
    """``auto`` → on for CUDA, off elsewhere; a bool as given."""
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return bool(setting)


@contextlib.contextmanager
def deterministic(on: bool) -> Iterator[None]:
    """Within: torch's deterministic mode as asked; restored after (a worker process runs
    many jobs)."""
    before: dict[str, Any] = {
        "algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_det": torch.backends.cudnn.deterministic,
        "cudnn_bench": torch.backends.cudnn.benchmark,
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    if on:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = before["cublas"] or CUBLAS
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False if on else before["cudnn_bench"]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before["algorithms"])
        torch.backends.cudnn.deterministic = before["cudnn_det"]
        torch.backends.cudnn.benchmark = before["cudnn_bench"]
        if before["cublas"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = before["cublas"]
