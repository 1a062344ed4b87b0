"""A convolutional layer from first principles (paper 003 §2), in NumPy only.

One interface, three implementations of the forward and backward pass for 4-D input
``x`` (batch, F_in, H, W) and 4-D kernels ``w`` (F_out, F_in, H_k, W_k), with bias,
stride, zero padding and dilation (each an int or an (h, w) pair):

``loops``
    explicit loops over batch, F_out and every output position, each a dot product of
    the receptive field with the kernel: simple to code, slow (the paper's first approach).
``im2col``
    serialisation: copy every receptive field into a column of a matrix, then one matrix
    product; fast, but the column matrix holds each input value up to H_k·W_k times.
    ``im2col_chunked`` is the memory-frugal variant: the same, one image at a time, so the
    column matrix is ``batch`` times smaller.
``correlate``
    the paper's own method: three loops over (batch, F_out, F_in) around a 2-D
    cross-correlation function; T = batch × F_out × F_in × T_function.

Like deep-learning frameworks, "convolution" here is cross-correlation (no kernel flip).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

IMPLS = ("loops", "im2col", "im2col_chunked", "correlate")
Pair = int | tuple[int, int]


def _pair(v: Pair, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or any(int(a) != a for a in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _geometry(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair, dilation: Pair):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got shapes {x.shape} and {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has F_in = {x.shape[1]} but w expects {w.shape[1]}")
    s, p, d = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"need stride >= 1, dilation >= 1, padding >= 0; got {s}, {d}, {p}")
    kh, kw = w.shape[2:]
    ekh, ekw = (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1  # effective (dilated) kernel size
    hp, wp = x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]
    if hp < ekh or wp < ekw:
        raise ValueError(f"padded input {hp}×{wp} is smaller than the dilated kernel {ekh}×{ekw}")
    ho, wo = (hp - ekh) // s[0] + 1, (wp - ekw) // s[1] + 1
    return s, p, d, (ho, wo)


def _pad(x: np.ndarray, p: tuple[int, int]) -> np.ndarray:
    if p == (0, 0):
        return x
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))


def _unpad(xp: np.ndarray, p: tuple[int, int]) -> np.ndarray:
    return xp[:, :, p[0]:xp.shape[2] - p[0], p[1]:xp.shape[3] - p[1]]


# ---------------------------------------------------------------- loops
def _loops_forward(x, w, b, s, p, d, out):
    xp = _pad(x, p)
    n, fo, (ho, wo) = x.shape[0], w.shape[0], out
    kh, kw = w.shape[2:]
    y = np.empty((n, fo, ho, wo), dtype=np.result_type(x, w))
    for i in range(n):
        for f in range(fo):
            for r in range(ho):
                for c in range(wo):
                    field = xp[i, :, r * s[0]:r * s[0] + (kh - 1) * d[0] + 1:d[0],
                               c * s[1]:c * s[1] + (kw - 1) * d[1] + 1:d[1]]
                    y[i, f, r, c] = np.sum(field * w[f]) + (b[f] if b is not None else 0.0)
    return y


def _loops_backward(dy, x, w, s, p, d):
    xp = _pad(x, p)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    n, fo, ho, wo = dy.shape
    kh, kw = w.shape[2:]
    for i in range(n):
        for f in range(fo):
            for r in range(ho):
                for c in range(wo):
                    rs = slice(r * s[0], r * s[0] + (kh - 1) * d[0] + 1, d[0])
                    cs = slice(c * s[1], c * s[1] + (kw - 1) * d[1] + 1, d[1])
                    g = dy[i, f, r, c]
                    dw[f] += g * xp[i, :, rs, cs]
                    dxp[i, :, rs, cs] += g * w[f]
    return _unpad(dxp, p), dw


# ---------------------------------------------------------------- im2col
def _windows(xp: np.ndarray, kh: int, kw: int, s, d, out) -> np.ndarray:
    """A strided view (N, F_in, H_k, W_k, H_out, W_out) of every receptive field; no copy."""
    n, c, _, _ = xp.shape
    sn, sc, sh, sw = xp.strides
    return as_strided(xp, (n, c, kh, kw, out[0], out[1]),
                      (sn, sc, sh * d[0], sw * d[1], sh * s[0], sw * s[1]), writeable=False)


def _im2col_forward(x, w, b, s, p, d, out):
    xp = np.ascontiguousarray(_pad(x, p))
    fo, fi, kh, kw = w.shape
    cols = _windows(xp, kh, kw, s, d, out).reshape(x.shape[0], fi * kh * kw, out[0] * out[1])
    y = np.matmul(w.reshape(fo, -1), cols)  # (N, F_out, H_out·W_out): one batched product
    if b is not None:
        y += b.reshape(1, -1, 1)
    return y.reshape(x.shape[0], fo, *out)


def _col2im(dcols: np.ndarray, xshape, kh, kw, s, d, out) -> np.ndarray:
    """Scatter-add the column gradients back onto the padded input (inverse of _windows)."""
    dxp = np.zeros(xshape, dtype=dcols.dtype)
    ho, wo = out
    for a in range(kh):
        for c in range(kw):
            dxp[:, :, a * d[0]:a * d[0] + s[0] * (ho - 1) + 1:s[0],
                c * d[1]:c * d[1] + s[1] * (wo - 1) + 1:s[1]] += dcols[:, :, a, c]
    return dxp


def _im2col_backward(dy, x, w, s, p, d):
    xp = np.ascontiguousarray(_pad(x, p))
    fo, fi, kh, kw = w.shape
    n, _, ho, wo = dy.shape
    cols = _windows(xp, kh, kw, s, d, (ho, wo)).reshape(n, fi * kh * kw, ho * wo)
    dy2 = dy.reshape(n, fo, ho * wo)
    dw = np.einsum("nfo,nko->fk", dy2, cols, optimize=True).reshape(w.shape)
    dcols = np.matmul(w.reshape(fo, -1).T, dy2).reshape(n, fi, kh, kw, ho, wo)
    return _unpad(_col2im(dcols, xp.shape, kh, kw, s, d, (ho, wo)), p), dw


def _chunked_forward(x, w, b, s, p, d, out):
    return np.concatenate([_im2col_forward(x[i:i + 1], w, b, s, p, d, out) for i in range(len(x))])


def _chunked_backward(dy, x, w, s, p, d):
    dx = np.empty_like(x)
    dw = np.zeros_like(w)
    for i in range(len(x)):
        dxi, dwi = _im2col_backward(dy[i:i + 1], x[i:i + 1], w, s, p, d)
        dx[i:i + 1] = dxi
        dw += dwi
    return dx, dw


# ---------------------------------------------------------------- correlate
def correlate2d(a: np.ndarray, k: np.ndarray, stride: Pair = 1, dilation: Pair = 1) -> np.ndarray:
    """Valid 2-D cross-correlation: out[i, j] = Σ_pq a[i·s + p·d, j·s + q·d] · k[p, q]."""
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    kh, kw = k.shape
    ekh, ekw = (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1
    win = sliding_window_view(a, (ekh, ekw))[::s[0], ::s[1], ::d[0], ::d[1]]
    return np.tensordot(win, k, axes=([2, 3], [0, 1]))


def _dilate(a: np.ndarray, f: tuple[int, int]) -> np.ndarray:
    if f == (1, 1):
        return a
    out = np.zeros(((a.shape[0] - 1) * f[0] + 1, (a.shape[1] - 1) * f[1] + 1), dtype=a.dtype)
    out[::f[0], ::f[1]] = a
    return out


def _correlate_forward(x, w, b, s, p, d, out):
    xp = _pad(x, p)
    n, fo, fi = x.shape[0], w.shape[0], w.shape[1]
    y = np.zeros((n, fo, *out), dtype=np.result_type(x, w))
    for i in range(n):
        for f in range(fo):
            for c in range(fi):
                y[i, f] += correlate2d(xp[i, c], w[f, c], s, d)
            if b is not None:
                y[i, f] += b[f]
    return y


def _correlate_backward(dy, x, w, s, p, d):
    xp = _pad(x, p)
    n, fo, ho, wo = dy.shape
    fi, kh, kw = w.shape[1:]
    ekh, ekw = (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1
    # rows/cols of the padded input that any output touches (a stride may leave a remainder)
    uh, uw = (ho - 1) * s[0] + ekh, (wo - 1) * s[1] + ekw
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(n):
        for f in range(fo):
            g = dy[i, f]
            gd = np.pad(_dilate(g, s), ((ekh - 1, ekh - 1), (ekw - 1, ekw - 1)))
            for c in range(fi):
                # dW[p,q] = Σ_ij g[i,j]·xp[i·s + p·d, j·s + q·d]: correlate xp with g, roles swapped
                dw[f, c] += correlate2d(xp[i, c, :uh, :uw], g, stride=d, dilation=s)
                # dX = full convolution of the stride-dilated g with the dilated kernel
                dxp[i, c, :uh, :uw] += correlate2d(gd, _dilate(w[f, c], d)[::-1, ::-1])
    return _unpad(dxp, p), dw


_FWD = {"loops": _loops_forward, "im2col": _im2col_forward, "im2col_chunked": _chunked_forward,
        "correlate": _correlate_forward}
_BWD = {"loops": _loops_backward, "im2col": _im2col_backward, "im2col_chunked": _chunked_backward,
        "correlate": _correlate_backward}


def _impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}")
    return impl


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: Pair = 1,
                   padding: Pair = 0, dilation: Pair = 1, impl: str = "im2col") -> np.ndarray:
    """y (batch, F_out, H_out, W_out) = x ⋆ w + b."""
    s, p, d, out = _geometry(x, w, stride, padding, dilation)
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
    return _FWD[_impl(impl)](x, w, b, s, p, d, out)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: Pair = 1,
                    padding: Pair = 0, dilation: Pair = 1, impl: str = "im2col"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of a scalar loss, given dy = ∂loss/∂y."""
    s, p, d, out = _geometry(x, w, stride, padding, dilation)
    if dy.shape != (x.shape[0], w.shape[0], *out):
        raise ValueError(f"dy must have shape {(x.shape[0], w.shape[0], *out)}, got {dy.shape}")
    dx, dw = _BWD[_impl(impl)](dy, x, w, s, p, d)
    return dx, dw, dy.sum(axis=(0, 2, 3))


class Conv2d:
    """A drop-in layer for a NumPy network: ``fprop``, ``bprop``, ``grads`` (MLP-course style)."""

    def __init__(self, f_in: int, f_out: int, kernel: Pair, stride: Pair = 1, padding: Pair = 0,
                 dilation: Pair = 1, impl: str = "im2col", rng: np.random.Generator | None = None):
        rng = rng or np.random.default_rng(0)
        kh, kw = _pair(kernel, "kernel")
        bound = np.sqrt(6.0 / (f_in * kh * kw + f_out * kh * kw))  # Glorot uniform
        self.w = rng.uniform(-bound, bound, (f_out, f_in, kh, kw))
        self.b = np.zeros(f_out)
        self.stride, self.padding, self.dilation, self.impl = stride, padding, dilation, _impl(impl)
        self._x: np.ndarray | None = None

    @property
    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]

    def fprop(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return conv2d_forward(x, self.w, self.b, self.stride, self.padding, self.dilation, self.impl)

    def bprop(self, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns dx and [dw, db] for the input of the last ``fprop``."""
        assert self._x is not None, "call fprop first"
        dx, dw, db = conv2d_backward(dy, self._x, self.w, self.stride, self.padding,
                                     self.dilation, self.impl)
        return dx, [dw, db]
