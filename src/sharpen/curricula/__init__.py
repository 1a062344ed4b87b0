"""Data curricula: pure batched operators plus thin hooks that schedule them."""

from sharpen.curricula.hooks import (
    ProgressiveResize,
    ProgressiveSharpening,
    RandomizedDeblur,
    ScheduledDropout,
    hooks_from_config,
)
from sharpen.curricula.ops import box_blur, gaussian_blur, resize

__all__ = ["box_blur", "gaussian_blur", "resize", "ProgressiveSharpening", "ProgressiveResize",
           "RandomizedDeblur", "ScheduledDropout", "hooks_from_config"]
