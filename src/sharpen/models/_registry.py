"""Models register by name and build with ``create_model(name, **kw)`` (timm style)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from sharpen.errors import SharpenError
from sharpen.plugins import is_target, load_target, plugins

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PAPERS: dict[str, str] = {}  # name → the paper ("000" … "004") it is built from
_TASKS: dict[str, str] = {}  # name → "classify" (logits) or "pairs" (a digit-pair model)
_INPUTS: dict[str, tuple[int, ...]] = {}  # name → the input shape its defaults take
TASKS = ("classify", "pairs")


def register_model(name: str | None = None, paper: str = "", task: str = "classify",
                   input_shape: tuple[int, ...] | None = None) -> Callable:
    """Decorator: register a model factory under ``name`` (default: the function name);
    ``paper``: the paper (source report) it is built from; ``task``: what its output means;
    ``input_shape``: the C×H×W (or C×L) input its defaults are built for (timm's
    ``input_size``), which the tests over the registry feed it."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} registered twice")
        _MODELS[key] = fn
        _PAPERS[key], _TASKS[key] = paper, task
        if input_shape is not None:
            _INPUTS[key] = tuple(input_shape)
        return fn

    return deco


def _plugin_models() -> None:
    for name, fn in plugins("sharpen.models").items():
        _MODELS.setdefault(name, fn)


def list_models(task: str | None = None) -> list[str]:
    """Registered names (built in, and installed packages' ``sharpen.models`` entry points),
    of one ``task`` if given; ``"package.module:factory"`` targets are accepted besides."""
    _plugin_models()
    return sorted(k for k in _MODELS if task is None or _TASKS.get(k, "classify") == task)


def model_input(name: str) -> tuple[int, ...] | None:
    """The input shape (without the batch) a registered model's defaults are built for."""
    return _INPUTS.get(name)


def model_paper(name: str) -> str:
    """The paper a registered model is built from ("" for none)."""
    return _PAPERS.get(name, "")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    if is_target(name):  # a user's factory: offered num_classes / in_channels if it takes them
        fn = load_target(name, f"model {name!r}")
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        open_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kw = {k: v for k, v in kwargs.items()
              if open_kw or k in params or k not in ("num_classes", "in_channels")}
        try:
            model = fn(**kw)
        except TypeError as exc:
            raise SharpenError(f"model {name!r}: calling it with {sorted(kw)} failed: {exc}") from None
        if not isinstance(model, nn.Module):
            raise SharpenError(f"model {name!r}: returned {type(model).__name__}, not a torch nn.Module")
        return model
    _plugin_models()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"unknown model {name!r}{hint}; valid names: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise SharpenError(_bad_arguments(name, _MODELS[name], kwargs, exc)) from None


# what sharpen passes every model itself: never the user's to name in an error
_GIVEN = ("num_classes", "in_channels")


def _bad_arguments(name: str, fn: Callable[..., nn.Module], kwargs: dict[str, Any],
                   exc: TypeError) -> str:
    """A model that refused its arguments: the ones it does not take (from model_args; not
    num_classes / in_channels, which sharpen passes every model), and the ones it does."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    own = [k for k, p in params.items() if k not in _GIVEN
           and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    open_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [] if open_kw or not params else [k for k in kwargs if k not in params]
    if unknown:
        close = difflib.get_close_matches(unknown[0], own, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"model {name!r} takes no argument {', '.join(map(repr, unknown))} "
                f"(model_args){hint}; its arguments: {', '.join(own) or '(none)'}")
    mine = sorted(k for k in kwargs if k not in _GIVEN)
    return f"model {name!r}: building it with model_args {mine} failed: {exc}"


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
