"""A user's own code, named in an experiment file or registered by an installed package.

``"package.module:attribute"`` targets are imported on demand (``model = "mynet:Net"``,
``hooks = [{ target = "mypkg.hooks:MyHook", args = {...} }]``). Installed packages can
register under entry-point groups ``sharpen.models`` (name → model factory),
``sharpen.techniques`` (a Technique subclass: its config keys join experiment files) and
``sharpen.datasets`` (name → a callable returning ``{"path": ..., "format": ...}``).
Errors say what was tried: the import, the attribute, callability.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from sharpen.errors import SharpenError


def is_target(name: Any) -> bool:
    return isinstance(name, str) and ":" in name and not name.startswith(("npz:", "imagefolder:"))


def load_target(target: str, what: str) -> Any:
    """Import ``package.module:attribute``; ``what`` names the key for the message."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise SharpenError(f"{what}: {target!r} is not of the form 'package.module:attribute'")
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise SharpenError(f"{what}: importing module {module!r} failed "
                           f"({type(exc).__name__}: {exc}); is it on sys.path / installed?") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SharpenError(f"{what}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SharpenError(f"{what}: {target!r} is a {type(obj).__name__}, not callable")
    return obj


@cache
def plugins(group: str) -> dict[str, Any]:
    """Objects registered by installed packages under an entry-point group."""
    out = {}
    for ep in entry_points(group=group):
        try:
            out[ep.name] = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise SharpenError(f"entry point {ep.name!r} in group {group!r} ({ep.value}) failed "
                               f"to load: {type(exc).__name__}: {exc}") from None
    return out
