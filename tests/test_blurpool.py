"""BlurPool as Zhang (2019) and the antialiased-cnns package build it (issue 24, item 2).

The reference here is the package's own recipe, written out in numpy: the filter of n taps
is the outer product of a hard-coded binomial row with itself over its sum; the input is
reflect-padded by [⌊(n−1)/2⌋, ⌈(n−1)/2⌉] on each side; the filter is correlated per channel
and the result sampled every ``stride`` pixels. AvgPool(s) is replaced by that BlurPool,
MaxPool(k, s) by MaxPool(k, 1) then BlurPool, a strided conv by the conv at stride 1, its
norm and activation, then BlurPool.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal
from torch import nn

from sharpen import SharpenError
from sharpen.experiments import load_experiment
from sharpen.models import count_parameters, create_model
from sharpen.techniques.blurpool import BlurPool2d, add_blurpool, blur_downsample

# antialiased-cnns' `get_filter` rows, as its source lists them
ROWS = {1: [1.], 2: [1., 1.], 3: [1., 2., 1.], 4: [1., 3., 3., 1.], 5: [1., 4., 6., 4., 1.],
        6: [1., 5., 10., 10., 5., 1.], 7: [1., 6., 15., 20., 15., 6., 1.]}


def reference_blurpool(x: np.ndarray, stride: int, taps: int) -> np.ndarray:
    """N×C×H×W → antialiased-cnns' BlurPool output, channel by channel with scipy."""
    a = np.array(ROWS[taps])
    filt = np.outer(a, a) / np.outer(a, a).sum()
    lo, hi = int((taps - 1) / 2), int(math.ceil((taps - 1) / 2))
    out = []
    for img in x:
        chans = []
        for ch in img:
            p = np.pad(ch, ((lo, hi), (lo, hi)), mode="reflect")
            chans.append(signal.correlate2d(p, filt, mode="valid")[::stride, ::stride])
        out.append(chans)
    return np.array(out)


def _x(n=2, c=3, h=12, w=12, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("taps", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("stride", [2, 3])
def test_blur_downsample_is_antialiased_cnns_blurpool(taps, stride):
    x = _x(h=13, w=12)
    got = blur_downsample(x, stride, taps).double().numpy()
    assert np.allclose(got, reference_blurpool(x.double().numpy(), stride, taps), atol=1e-5)


def test_avgpool_becomes_blurpool_and_lenet5_outputs_change():
    torch.manual_seed(0)
    plain = create_model("lenet5_dropout").eval()
    blurred = create_model("lenet5_dropout").eval()
    blurred.load_state_dict(plain.state_dict())  # the same weights
    assert add_blurpool(blurred) == 2
    assert [type(m) for m in blurred.features] == [nn.Conv2d, nn.ReLU, BlurPool2d, nn.Conv2d,
                                                   nn.ReLU, BlurPool2d]
    # names and counts of the parameters are unchanged: weights load across the two
    assert list(plain.state_dict()) == list(blurred.state_dict())
    assert count_parameters(plain) == count_parameters(blurred)
    x = _x(n=4, c=1, h=28, w=28)
    with torch.no_grad():
        act = torch.relu(plain.features[0](x)).double().numpy()  # 24×24, even: same sizes
        got = blurred.features[:3](x).double().numpy()
        assert np.allclose(got, reference_blurpool(act, 2, 3), atol=1e-5)
        a, b = plain(x), blurred(x)
    assert a.shape == b.shape == (4, 10)
    assert (a - b).abs().max() > 1e-3  # BlurPool acts on LeNet-5 (it was a no-op before)


@pytest.mark.parametrize("name", ["vgg08", "vgg08_bn", "vgg38_bn_res"])
def test_vgg_outputs_change_and_each_pool_is_the_reference(name):
    torch.manual_seed(0)
    plain = create_model(name, width=8).eval()
    blurred = create_model(name, width=8).eval()
    blurred.load_state_dict(plain.state_dict())
    pools = sum(isinstance(m, nn.AvgPool2d) for m in plain.modules())
    assert pools >= 2 and add_blurpool(blurred, taps=4) == pools
    assert not any(isinstance(m, nn.AvgPool2d) for m in blurred.modules())
    x = _x(n=3, c=3, h=32, w=32)
    with torch.no_grad():
        # the feature maps change (the global average of the last one hides most of it)
        a, b = plain.features(x), blurred.features(x)
        assert a.shape == b.shape and (a - b).abs().max() > 0.01 * a.abs().max()
        assert not torch.allclose(plain(x), blurred(x), rtol=1e-6, atol=1e-7)
    seen = []  # every BlurPool2d's output is the reference filter of its input
    for m in blurred.modules():
        if isinstance(m, BlurPool2d):
            m.register_forward_hook(lambda mod, i, o: seen.append((i[0], o)))
    with torch.no_grad():
        blurred(x)
    assert len(seen) == pools
    for i, o in seen:
        assert np.allclose(o.double().numpy(), reference_blurpool(i.double().numpy(), 2, 4),
                           atol=1e-5)


def test_maxpool_becomes_max_at_stride_one_then_blur():
    pool = nn.Sequential(nn.MaxPool2d(2))
    assert add_blurpool(pool) == 1
    x = _x(h=12, w=12)
    max1 = torch.nn.functional.max_pool2d(x, 2, 1).double().numpy()
    assert np.allclose(pool(x).double().numpy(), reference_blurpool(max1, 2, 3), atol=1e-5)


def test_strided_conv_blurs_after_its_norm_and_activation():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    net = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten()).eval()
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    ref[0].load_state_dict(conv.state_dict())
    assert add_blurpool(net) == 1
    x = _x(h=16, w=16)
    with torch.no_grad():
        # Conv(stride 1) → BN → ReLU → Blur(2): the blur after the activation
        want = reference_blurpool(ref(x).double().numpy(), 2, 3).reshape(2, -1)
        assert np.allclose(net(x).double().numpy(), want, atol=1e-5)
        # not the old placement (blur before the ReLU)
        before = torch.relu(torch.from_numpy(reference_blurpool(
            ref[1](ref[0](x)).double().numpy(), 2, 3))).reshape(2, -1).numpy()
        assert not np.allclose(net(x).double().numpy(), before, atol=1e-3)


def test_strided_conv_without_visible_activation_is_blurred_after_the_conv():
    class Net(nn.Module):  # the activation is applied in forward: not visible to add_blurpool
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    torch.manual_seed(0)
    net = Net()
    w = {k: v.clone() for k, v in net.state_dict().items()}
    assert add_blurpool(net) == 1
    x = _x(c=1, h=10, w=10)
    with torch.no_grad():
        full = torch.nn.functional.conv2d(x, w["conv.weight"], w["conv.bias"], padding=1)
        want = np.maximum(reference_blurpool(full.double().numpy(), 2, 3), 0)
        assert np.allclose(net(x).double().numpy(), want, atol=1e-5)


def test_blurpool_true_on_a_model_with_nothing_to_antialias_is_refused(tmp_path, monkeypatch):
    (tmp_path / "flatnet.py").write_text(
        "from torch import nn\n"
        "def net(num_classes=10, in_channels=1):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\ndataset = "synthetic"\nmodel = "flatnet:net"\nblurpool = true\n')
    with pytest.raises(SharpenError, match=r"e\.toml: field blurpool: the model has no "
                                           r"downsampling layer to anti-alias .* \(model 'flatnet:net'\)"):
        load_experiment(str(p))
    p.write_text('name = "e"\ndataset = "synthetic"\nmodel = "flatnet:net"\n')
    load_experiment(str(p))  # the same model without blurpool is fine


def test_blurpool_taps_out_of_range_names_the_field(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\nblurpool = true\nblurpool_taps = 9\n')
    with pytest.raises(SharpenError, match=r"field blurpool_taps: .*less than or equal to 7"):
        load_experiment(str(p))


@pytest.mark.parametrize("name,shape", [("nin_cifar", (3, 32, 32)), ("vgg08", (3, 32, 32)),
                                        ("lenet5", (1, 28, 28)), ("sub_lenet5", (2, 14, 14)),
                                        ("direct_alws", (2, 14, 14)), ("shres_ws", (2, 14, 14))])
def test_every_bundled_2d_model_keeps_its_parameters_and_output_shapes(name, shape):
    plain = create_model(name, num_classes=10, in_channels=shape[0])
    blurred = create_model(name, num_classes=10, in_channels=shape[0])
    assert add_blurpool(blurred) >= 1
    assert list(plain.state_dict()) == list(blurred.state_dict())
    x = torch.randn(2, *shape)
    a, b = plain.eval()(x), blurred.eval()(x)
    if isinstance(a, dict):
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    else:
        assert a.shape == b.shape
