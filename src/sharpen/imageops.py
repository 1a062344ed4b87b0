"""Batched image/signal operators: pure tensor functions, any batch and channel count.

Inputs are float tensors N×C×H×W (images) or N×C×L (1-D signals), on any device. Outputs
have the input's size, except ``resize``. All are differentiable (built from conv/pool/
interpolate), so they can also sit inside a model.

Padding: ``"reflect"`` by default (OpenCV's BORDER_REFLECT_101, also the default of
``cv2.blur``/``cv2.GaussianBlur``): it keeps the local mean at the border, so a blurred
image does not darken (zeros) or smear its edge pixel (replicate). ``"replicate"``,
``"zeros"`` and ``"circular"`` are also accepted.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

PADDINGS = ("reflect", "replicate", "zeros", "circular")


def _check(x: torch.Tensor, padding: str) -> None:
    if x.dim() not in (3, 4):
        raise ValueError(f"expected N×C×L or N×C×H×W, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}; call .float() first")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def _pad(x: torch.Tensor, lo: int, hi: int, padding: str) -> torch.Tensor:
    """Pad the spatial dims by (lo before, hi after) each."""
    if lo == 0 and hi == 0:
        return x
    pads = (lo, hi) * (x.dim() - 2)
    if padding == "zeros":
        return F.pad(x, pads)
    if padding == "reflect" and max(lo, hi) >= min(x.shape[2:]):
        padding = "replicate"  # reflect needs the pad to be smaller than the side
    return F.pad(x, pads, mode=padding)


def box_blur(x: torch.Tensor, n: int, padding: str = "reflect") -> torch.Tensor:
    """Convolve each channel with kernel_n = J_n / n² (paper 000); ``n = 1`` is the identity.

    Odd n is centred. Even n has no centre: the window covers offsets −n/2 … n/2−1, i.e.
    it sits half a pixel up-left of the output pixel (OpenCV's anchor convention).
    """
    _check(x, padding)
    n = int(n)
    if n < 1:
        raise ValueError(f"box blur size n must be >= 1, got {n}")
    if n == 1:
        return x
    lo, hi = n // 2, n - 1 - n // 2
    if max(x.shape[2:]) <= _MATMUL_MAX_SIDE:
        # J_n/n² is separable: one small dense matrix per axis (padding folded in), applied
        # as batched matrix products; several times faster than pooling on CPU
        mode = padding
        if mode == "reflect" and max(lo, hi) >= min(x.shape[2:]):
            mode = "replicate"  # as _pad: reflect needs the pad to be smaller than the side
        taps = (1.0 / n,) * n
        bw = _conv_matrix(x.shape[-1], taps, lo, mode, x.device, x.dtype)
        if x.dim() == 3:
            return x @ bw
        bh = _conv_matrix(x.shape[-2], taps, lo, mode, x.device, x.dtype)
        return bh.T @ (x @ bw)
    xp = _pad(x, lo, hi, padding)
    if x.dim() == 4:
        return F.avg_pool2d(xp, n, stride=1)
    return F.avg_pool1d(xp, n, stride=1)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device=None, dtype=None) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``int(truncate·σ + 0.5)`` (as scipy.ndimage)."""
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / float(sigma)) ** 2)
    return (k / k.sum()).to(dtype or torch.float32)


def gaussian_blur(x: torch.Tensor, sigma: float, padding: str = "reflect",
                  truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` px; ``sigma = 0`` is the identity."""
    _check(x, padding)
    sigma = float(sigma)
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if sigma == 0:
        return x
    if max(x.shape[2:]) <= _MATMUL_MAX_SIDE:
        # small images: the separable blur as two small dense matrices (padding folded in),
        # one batched matrix product per axis; ~5× faster than depthwise conv on CPU
        bw = _blur_matrix(x.shape[-1], sigma, truncate, padding, x.device, x.dtype)
        if x.dim() == 3:
            return x @ bw
        bh = _blur_matrix(x.shape[-2], sigma, truncate, padding, x.device, x.dtype)
        return bh.T @ (x @ bw)
    k = gaussian_kernel1d(sigma, truncate, x.device, x.dtype)
    r, c = (len(k) - 1) // 2, x.shape[1]
    if x.dim() == 3:
        return F.conv1d(_pad(x, r, r, padding), k.view(1, 1, -1).expand(c, 1, -1), groups=c)
    # pad each axis just before its pass, so reflect padding can fall back per axis
    y = F.conv2d(_pad_axis(x, r, -1, padding), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(_pad_axis(y, r, -2, padding), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


_MATMUL_MAX_SIDE = 96


@functools.lru_cache(maxsize=64)
def _blur_matrix(m: int, sigma: float, truncate: float, padding: str, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """B (m×m) with  signal @ B  = the padded 1-D Gaussian blur of a length-m signal."""
    k = gaussian_kernel1d(sigma, truncate, device, torch.float64)
    r = (len(k) - 1) // 2
    mode = padding
    if mode == "reflect" and r >= m:
        mode = "replicate"
    return _conv_matrix(m, tuple(k.tolist()), r, mode, device, dtype)


@functools.lru_cache(maxsize=64)
def _conv_matrix(m: int, taps: tuple[float, ...], lo: int, padding: str, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """B (m×m) with  signal @ B  = the padded 1-D correlation with ``taps`` (offsets −lo…)."""
    k = torch.tensor(taps, device=device, dtype=torch.float64)
    hi = len(taps) - 1 - lo
    eye = torch.eye(m, device=device, dtype=torch.float64).view(m, 1, m)  # m unit signals
    pads = (lo, hi)
    padded = F.pad(eye, pads) if padding == "zeros" else F.pad(eye, pads, mode=padding)
    return F.conv1d(padded, k.view(1, 1, -1)).view(m, m).to(dtype)  # row i: blur of e_i


def _pad_axis(x: torch.Tensor, r: int, axis: int, padding: str) -> torch.Tensor:
    pads = (r, r, 0, 0) if axis == -1 else (0, 0, r, r)
    if padding == "zeros":
        return F.pad(x, pads)
    mode = padding
    if mode == "reflect" and r >= x.shape[axis]:
        mode = "replicate"
    return F.pad(x, pads, mode=mode)


def resize(x: torch.Tensor, size: int | tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize to ``size`` (int: square); antialiased when downscaling."""
    if x.dim() != 4:
        raise ValueError(f"resize expects N×C×H×W, got shape {tuple(x.shape)}")
    hw = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
    if min(hw) < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if hw == tuple(x.shape[-2:]):
        return x
    down = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False,
                         antialias=antialias and down)
