"""What this machine is: the description a run records and a calibration is cached under.

Kept free of torch (the CLI's planning reads it before torch loads)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def cpu_model() -> str | None:
    """The CPU's model name (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def describe() -> dict[str, str | int]:
    """The machine as a timing depends on it: CPU model, cores, architecture, torch."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "?"
    return {"cpu": cpu_model() or platform.processor() or platform.machine(),
            "cores": os.cpu_count() or 1, "usable_cores": usable_cores(),
            "arch": platform.machine(), "system": platform.system(), "torch": torch_version}
