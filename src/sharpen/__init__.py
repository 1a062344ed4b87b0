"""sharpen: honest, repeatable experiments on how CNN image classifiers are trained."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from sharpen._version import __version__
from sharpen.errors import SharpenError

__all__ = ["SharpenError", "__version__", "load_model", "load_predictor"]


def load_model(seed_dir: str, device: str = "cpu") -> torch.nn.Module:
    """The trained model of one run folder (``<run dir>/runs/<arm>/seed-<s>``), saved with
    ``save_weights``; see :mod:`sharpen.experiments.weights`."""
    from sharpen.experiments.weights import load_model as _load  # lazy: start-up: torch

    return _load(seed_dir, device)


def load_predictor(seed_dir: str, device: str = "cpu") -> Any:
    """A trained run as one call from uint8 images to predicted classes, with the run's own
    preprocessing: ``sharpen.load_predictor(dir)(x_uint8)``; see
    :class:`sharpen.experiments.weights.Predictor`."""
    from sharpen.experiments.weights import load_predictor as _load  # lazy: start-up: torch

    return _load(seed_dir, device)
