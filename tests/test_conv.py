from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpen.bench.numpy_conv import IMPLS, Conv2d, conv2d_backward, conv2d_forward, correlate2d

# (batch, F_in, F_out, H, W, kh, kw, stride, padding, dilation)
SHAPES = [
    (2, 3, 4, 9, 8, 3, 3, 1, 0, 1),
    (2, 3, 2, 11, 10, 3, 3, 2, 1, 1),  # stride 2 + padding
    (2, 2, 3, 12, 11, 3, 3, 1, 2, 2),  # dilation 2
    (3, 2, 3, 6, 7, 1, 1, 1, 0, 1),  # 1×1
    (2, 3, 2, 9, 10, 2, 4, 1, 1, 1),  # non-square kernel
    (1, 1, 2, 8, 8, 3, 3, 1, 1, 1),  # F_in = 1, batch = 1
    (2, 2, 2, 10, 9, 3, 2, (2, 1), (1, 0), (1, 2)),  # per-axis stride/padding/dilation
]
IDS = [f"b{s[0]}-fi{s[1]}-k{s[5]}x{s[6]}-s{s[7]}-p{s[8]}-d{s[9]}" for s in SHAPES]


def _case(shape, seed=0):
    n, fi, fo, h, w, kh, kw, s, p, d = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, fi, h, w)), rng.standard_normal((fo, fi, kh, kw)),
            rng.standard_normal(fo), s, p, d)


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_matches_pytorch_forward_and_autograd(impl, shape):
    x, w, b, s, p, d = _case(shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p, dilation=d)
    dy = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    y = conv2d_forward(x, w, b, s, p, d, impl=impl)
    dx, dw, db = conv2d_backward(dy, x, w, s, p, d, impl=impl)
    assert y.shape == tuple(yt.shape)
    assert _rel(y, yt.detach().numpy()) < 1e-10
    assert _rel(dx, xt.grad.numpy()) < 1e-10
    assert _rel(dw, wt.grad.numpy()) < 1e-10
    assert _rel(db, bt.grad.numpy()) < 1e-10


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_matches_central_finite_differences(impl, shape):
    x, w, b, s, p, d = _case(shape, seed=2)
    y0 = conv2d_forward(x, w, b, s, p, d, impl=impl)
    dy = np.random.default_rng(3).standard_normal(y0.shape)
    dx, dw, db = conv2d_backward(dy, x, w, s, p, d, impl=impl)

    def loss(xx, ww, bb):
        return float(np.sum(conv2d_forward(xx, ww, bb, s, p, d, impl="im2col") * dy))

    eps = 1e-6
    rng = np.random.default_rng(4)
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = np.zeros(12)
        ana = np.zeros(12)
        for k, flat in enumerate(rng.choice(arr.size, size=12, replace=arr.size < 12)):
            idx = np.unravel_index(flat, arr.shape)
            old = arr[idx]
            arr[idx] = old + eps
            up = loss(x, w, b)
            arr[idx] = old - eps
            down = loss(x, w, b)
            arr[idx] = old
            num[k], ana[k] = (up - down) / (2 * eps), grad[idx]
        assert _rel(ana, num) < 1e-6


def test_correlate2d_definition():
    a = np.arange(25.0).reshape(5, 5)
    k = np.array([[1.0, 0.0], [0.0, -1.0]])
    out = correlate2d(a, k)
    assert out.shape == (4, 4) and np.all(out == -6.0)  # a[i,j] - a[i+1,j+1] = -6
    assert correlate2d(a, np.ones((2, 2)), stride=2, dilation=2).shape == (2, 2)
    assert correlate2d(a, np.ones((2, 2)), dilation=2)[0, 0] == a[0, 0] + a[0, 2] + a[2, 0] + a[2, 2]


def test_bad_arguments_are_explained():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 3, 3, 3))
    with pytest.raises(ValueError, match="F_in = 2 but w expects 3"):
        conv2d_forward(x, w)
    with pytest.raises(ValueError, match="impl must be one of loops, im2col"):
        conv2d_forward(x, np.zeros((3, 2, 3, 3)), impl="fft")
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv2d_forward(x, np.zeros((3, 2, 3, 3)), dilation=3)


def test_tiny_numpy_network_trains_identically_with_every_impl():
    """Conv2d as a drop-in layer: conv → ReLU → global mean → linear → softmax, plain SGD."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8))
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(int)
    losses = {}
    for impl in IMPLS:
        conv = Conv2d(1, 4, 3, padding=1, impl=impl, rng=np.random.default_rng(1))
        lin = np.random.default_rng(2).standard_normal((4, 2)) * 0.1
        hist = []
        for _ in range(60):
            h = conv.fprop(x)
            a = np.maximum(h, 0)
            g = a.mean(axis=(2, 3))
            z = g @ lin
            pz = np.exp(z - z.max(1, keepdims=True))
            pz /= pz.sum(1, keepdims=True)
            hist.append(-np.log(pz[np.arange(16), y]).mean())
            dz = pz.copy()
            dz[np.arange(16), y] -= 1
            dz /= 16
            dlin = g.T @ dz
            dg = dz @ lin.T
            da = np.broadcast_to(dg[:, :, None, None] / 64, a.shape)
            dh = da * (h > 0)
            _, (dw, db) = conv.bprop(dh)
            conv.w -= 2.0 * dw
            conv.b -= 2.0 * db
            lin -= 2.0 * dlin
        losses[impl] = hist
    ref = losses["im2col"]
    assert ref[-1] < 0.8 * ref[0]
    for impl, hist in losses.items():
        np.testing.assert_allclose(hist, ref, rtol=1e-9, err_msg=impl)


def test_conv_benchmark_writes_table_fits_and_plots(tmp_path, monkeypatch):
    import sharpen.bench.conv as bench

    monkeypatch.setitem(bench.SWEEPS, "quick", {"batch": [1, 2, 4], "kernel": [1, 3]})
    out = bench.run_conv_bench("quick", tmp_path / "b", repeats=1, log=lambda *_: None)
    md = (out / "report.md").read_text()
    assert "im2col vs loops:" in md and "faster forward" in md and "| batch | correlate |" in md
    for f in ("measurements.csv", "summary.json", "conv_batch.png", "conv_kernel.png"):
        assert (out / f).exists(), f
    import json

    fits = json.loads((out / "summary.json").read_text())["fits"]
    mem = next(f for f in fits if f["variable"] == "batch" and f["impl"] == "im2col")["mem_fwd"]
    assert 0.7 < mem < 1.3  # the column matrix grows linearly with the batch
