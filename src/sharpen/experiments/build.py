"""The model of a run, built in one place: validation, planning, the stacking probe,
training and ``load_model`` all call :func:`build_model`.

Building is: create the registered (or the user's) model for the dataset's classes and
channels, let every technique of the run change it (``Technique.prepare_model``: BlurPool),
run one dry forward pass on a batch of two inputs of the run's shape — which materialises
lazy layers (``nn.LazyLinear``, ``nn.LazyConv2d``) exactly as the first training batch
would — and check the output. The dry pass runs in eval mode without gradients, so it
updates no BatchNorm statistic and draws no dropout mask: a model without lazy layers
leaves it with the same weights and the same random state as before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sharpen.data import get_spec
from sharpen.data.pairs import pair_input_shape
from sharpen.errors import SharpenError
from sharpen.models import create_model, list_models
from sharpen.techniques import TECHNIQUES, Technique, techniques_for

if TYPE_CHECKING:  # the name only: experiments.config's checks import this module
    from sharpen.experiments.config import RunConfig

DRY_BATCH = 2  # two inputs: a model that squeezes the batch dimension away shows it


def input_shape(cfg: RunConfig) -> tuple[int, ...]:
    """One input of this run as the model sees it (C×H×W, or C×L), from the dataset spec:
    resized by ``data_resize``, or a 2-image pair for the digit-pair task."""
    spec = get_spec(cfg.dataset)
    if cfg.pairs is not None:
        return pair_input_shape(spec.shape)
    shape = tuple(spec.shape)
    if cfg.data_resize is not None:
        shape = (shape[0], *[cfg.data_resize] * (len(shape) - 1))
    return shape


def output_classes(cfg: RunConfig) -> int:
    """Classes of the model's decision: 2 for a pair (which digit is smaller), else the
    dataset's classes."""
    return 2 if cfg.pairs is not None else get_spec(cfg.dataset).num_classes


def _check_output(cfg: RunConfig, out: Any, model: nn.Module, shape: tuple[int, ...]) -> None:
    batch = (DRY_BATCH, *shape)
    if cfg.pairs is not None:  # a pair model: a dict with per-image digit outputs
        digits = out.get("digits") if isinstance(out, dict) else None
        want = (DRY_BATCH, 2, get_spec(cfg.dataset).num_classes)
        if not torch.is_tensor(digits) or tuple(digits.shape) != want:
            got = tuple(digits.shape) if torch.is_tensor(digits) else type(out).__name__
            raise SharpenError(f"field model: {cfg.model!r} gives {got} for a batch of pairs of "
                               f"shape {batch}; a pair model returns a dict whose 'digits' has "
                               f"shape {want}")
        return
    want = (DRY_BATCH, output_classes(cfg))
    if not torch.is_tensor(out) or tuple(out.shape) != want:
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise SharpenError(f"field model: {cfg.model!r} gives output {got} for a batch of shape "
                           f"{batch}; expected logits of shape {want}")


def build_model(cfg: RunConfig, shape: tuple[int, ...] | None = None) -> nn.Module:
    """The run's model, ready to train: created, prepared by each technique, its lazy
    layers materialised on ``shape`` (default: :func:`input_shape`) and its output checked.
    A model that cannot be built or fails on the dry batch raises SharpenError naming
    ``field model`` (or the technique's field)."""
    shape = tuple(shape) if shape is not None else input_shape(cfg)
    try:
        model = create_model(cfg.model, num_classes=output_classes(cfg), in_channels=shape[0],
                             **cfg.model_args)
    except SharpenError as exc:
        raise SharpenError(f"field model: {exc}") from None
    if hasattr(model, "pair_outputs") != (cfg.pairs is not None):
        raise SharpenError(f"field model: {cfg.model!r} " + (
            "is a pair model; set pairs = N (e.g. 1000)" if cfg.pairs is None
            else "is not a pair model; pair models: " + ", ".join(list_models(task="pairs"))))
    for tech in techniques_for(cfg):
        if isinstance(tech, Technique):  # a user's hook does not change the model
            try:
                model = tech.prepare_model(model)
            except SharpenError as exc:
                raise SharpenError(f"{exc} (model {cfg.model!r})") from None
    was = model.training
    x = torch.zeros(DRY_BATCH, *shape)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward: say where, in one line
        raise SharpenError(f"field model: {cfg.model!r} fails on a batch of shape "
                           f"{tuple(x.shape)}: {type(exc).__name__}: {exc}") from None
    finally:
        model.train(was)
    _check_output(cfg, out, model, shape)
    return model


def model_factory(cfg: RunConfig) -> Callable[[], nn.Module]:
    """``build_model`` for this run as a no-argument factory (one call per seed: each
    builds under its own seed's initialisation stream)."""
    shape = input_shape(cfg)
    return lambda: build_model(cfg, shape)


def resolve_device(name: str) -> torch.device:
    """The configuration's device: "auto" is CUDA where there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_key(cfg: RunConfig) -> str:
    """The configuration fields a built model depends on (a cache key for the stacking
    probe): the model, its arguments, the input, and every key of a technique that
    prepares the model."""
    keys = {"model", "model_args", "dataset", "pairs", "data_resize"}
    for t in TECHNIQUES:
        if t.prepare_model is not Technique.prepare_model:
            keys |= set(t.Config.model_fields)
    return json.dumps({k: getattr(cfg, k) for k in sorted(keys)}, sort_keys=True, default=str)
