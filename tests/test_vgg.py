from __future__ import annotations

import math

import pytest
import torch

from sharpen.models import create_model, list_models
from sharpen.techniques import GradientFlow, RandomErasing, gradient_flow, random_erasing, weight_layers

VGGS = [m for m in list_models() if m.startswith("vgg")]


def _count(m, cls):
    return sum(isinstance(x, cls) for x in m.modules())


@pytest.mark.parametrize("name,convs", [("vgg08", 7), ("vgg38", 37)])
def test_conv_and_linear_counts(name, convs):
    m = create_model(name)
    assert _count(m, torch.nn.Conv2d) == convs and _count(m, torch.nn.Linear) == 1
    assert all(c.out_channels == 32 and c.kernel_size == (3, 3) and c.stride == (1, 1)
               and c.padding == (1, 1) for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    assert _count(m, torch.nn.AvgPool2d) == 3 and _count(m, torch.nn.LeakyReLU) == convs


def test_variant_flags():
    assert _count(create_model("vgg38_bn"), torch.nn.BatchNorm2d) == 37
    assert _count(create_model("vgg38"), torch.nn.BatchNorm2d) == 0
    res = create_model("vgg38_res")
    assert sum(getattr(b, "residual", False) for b in res.modules()) == 15  # 3 stages × 5 blocks


@pytest.mark.parametrize("name", VGGS)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (3, 13, 11)])
def test_every_vgg_forward_backward_all_parameters(name, shape):
    torch.manual_seed(0)
    m = create_model(name, num_classes=10, in_channels=shape[0], dropout=0.5)
    out = m(torch.randn(4, *shape))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


def test_plain_vgg38_gradients_vanish_and_bn_res_fixes_it():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 100, (32,))
    ratio = {}
    for name in ("vgg08", "vgg38", "vgg38_bn_res"):
        torch.manual_seed(0)
        g = gradient_flow(create_model(name), x, y)
        ratio[name] = g[0]["mean_abs_grad"] / g[-1]["mean_abs_grad"]
    assert ratio["vgg38"] < 1e-3  # first layer orders of magnitude below the last
    assert ratio["vgg38_bn_res"] > 100 * ratio["vgg38"]
    assert ratio["vgg08"] > 100 * ratio["vgg38"]


def test_gradient_flow_hook_records_chosen_epochs():
    from sharpen.data import synthetic
    from sharpen.training import Split, TrainData, TrainSettings, train

    x, y = synthetic("train", n=64)
    data = TrainData(Split(x, y), Split(x[:16], y[:16]), None, (0.5,), (0.25,))
    hook = GradientFlow([1, 3])
    m = create_model("vgg08", num_classes=10, in_channels=1)
    rows = train(m, data, TrainSettings(epochs=3, batch_size=32, optimizer="adam", lr=1e-3), 0,
                 [hook]).rows[0]
    n_layers = len(weight_layers(m))
    recs = hook.records[0]  # seed 0's records
    assert {r["epoch"] for r in recs} == {1, 3} and len(recs) == 2 * n_layers
    assert all(r["mean_abs_grad"] > 0 and r["update_ratio"] > 0 for r in recs)
    assert "grad_first_over_last" in rows[0] and "grad_first_over_last" not in rows[1]


def test_random_erasing_touches_only_its_box():
    g = torch.Generator().manual_seed(0)
    x = torch.full((64, 3, 32, 32), 7.0)
    out, boxes = random_erasing(x, p=1.0, generator=g)
    for i in range(64):
        t, left, h, w = boxes[i].tolist()
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[t:t + h, left:left + w] = True
        assert torch.all(out[i][:, ~inside] == 7.0)  # nothing outside the box changes
        if h:
            assert 0 <= t and t + h <= 32 and 0 <= left and left + w <= 32
            assert (out[i][:, inside] != 7.0).float().mean() > 0.99  # random fill


def test_random_erasing_respects_p_and_ranges_over_many_draws():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(4000, 1, 32, 32)
    _, boxes = random_erasing(x, p=0.5, generator=g)
    erased = boxes[:, 2] > 0
    assert abs(erased.float().mean().item() - 0.5) < 0.03  # 4000 draws: ±3.9 std
    b = boxes[erased].float()
    area = b[:, 2] * b[:, 3] / (32 * 32)
    aspect = b[:, 2] / b[:, 3]
    # rounding h and w to whole pixels widens the ranges slightly at the edges
    assert area.min() >= 0.02 * 0.7 and area.max() <= 0.33 * 1.2
    assert aspect.min() >= 0.3 * 0.8 and aspect.max() <= 3.3 * 1.25
    assert area.mean().item() == pytest.approx((0.02 + 0.33) / 2, abs=0.03)
    # log-uniform aspect: about half the boxes are taller than wide
    assert abs((aspect > 1).float().mean().item() - 0.5) < 0.06
    assert math.isclose(random_erasing(x[:10], p=0.0)[0].abs().sum().item(), 0.0)


def test_random_erasing_hook_draws_each_seed_from_its_own_stream():
    from sharpen.training import TrainSettings, TrainState
    from sharpen.training.streams import generator

    def state(seeds):
        return TrainState(None, None, [], TrainSettings(1, 8), torch.device("cpu"), seeds)

    x = torch.zeros(8, 3, 16, 16)
    one = RandomErasing(p=1.0).on_batch(state([3]), x[:4], None)[0]
    two = RandomErasing(p=1.0).on_batch(state([3, 4]), x, None)[0]
    assert torch.equal(two[:4], one)  # seed 3's images: the same alone or stacked
    assert not torch.equal(two[4:], one)
    ref = random_erasing(x[:4], 1.0, generator=generator(3, "erasing"))[0]
    assert torch.equal(one, ref)  # and they come from seed 3's "erasing" stream
