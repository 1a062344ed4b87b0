"""Models register by name and build with ``create_model(name, **kw)`` (timm style)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from sharpen import SharpenError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_SEEDS: dict[str, str] = {}


def register_model(name: str | None = None, seed: str = "") -> Callable:
    """Decorator: register a model factory under ``name`` (default: the function name)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} registered twice")
        _MODELS[key] = fn
        _SEEDS[key] = seed
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_seed(name: str) -> str:
    return _SEEDS.get(name, "")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"unknown model {name!r}{hint}; valid names: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise SharpenError(f"model {name!r}: bad keyword arguments {sorted(kwargs)}: {exc}") from exc


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
