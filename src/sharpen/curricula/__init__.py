"""Data curricula's pure batched operators (the techniques that schedule them live in
:mod:`sharpen.techniques`)."""

from sharpen.curricula.ops import box_blur, gaussian_blur, resize

__all__ = ["box_blur", "gaussian_blur", "resize"]
