from __future__ import annotations

import pytest
import torch

from sharpen import SharpenError
from sharpen.models import count_parameters, create_model, list_models, model_input

# every registered classifier, at the input its registration states (a new model needs no
# line here); the digit-pair models are tested in tests/test_pairs.py
INPUTS = {n: model_input(n) for n in list_models("classify")}
PAIRS = set(list_models("pairs"))


def test_registry_lists_foundation_models():
    assert {"lenet5", "lenet5_dropout"} <= set(list_models())


def test_lenet5_dropout_matches_seed_000_table():
    m = create_model("lenet5_dropout")
    assert count_parameters(m) == 44_426
    per_layer = [p.numel() for p in m.parameters()]
    # weights+bias of conv(156), conv(2,416), dense(30,840), dense(10,164), dense(850)
    pairs = [per_layer[i] + per_layer[i + 1] for i in range(0, len(per_layer), 2)]
    assert pairs == [156, 2416, 30840, 10164, 850]
    x = torch.zeros(2, 1, 28, 28)
    feats = m.features(x)
    assert feats.shape == (2, 16, 4, 4)  # flatten 256 as in the paper


def test_classic_lenet5_count():
    # conv 1→6 5×5 pad 2 (156), conv 6→16 (2,416), 400→120 (48,120), 120→84 (10,164), 84→10 (850)
    assert count_parameters(create_model("lenet5")) == 156 + 2416 + 48120 + 10164 + 850


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    shape = INPUTS[name]
    m = create_model(name, num_classes=7, in_channels=shape[0])
    x = torch.randn(3, *shape)
    out = m(x)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got no gradient"


def test_every_registered_model_is_covered():
    assert set(list_models()) == set(INPUTS) | PAIRS
    missing = sorted(n for n, shape in INPUTS.items() if shape is None)
    assert not missing, f"register these with input_shape=(C, H, W): {missing}"
    assert PAIRS >= {n for n in list_models() if n.startswith(("direct", "shres", "sub_"))}


def test_unknown_model_lists_valid_names():
    with pytest.raises(SharpenError, match=r"unknown model 'lenet6'.*did you mean 'lenet5'.*valid names"):
        create_model("lenet6")


def test_lenet_other_sizes_and_channels():
    m = create_model("lenet5_dropout", in_channels=3, input_size=32)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_nin_cifar_follows_figure_5_and_takes_any_size():
    m = create_model("nin_cifar")
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (16, 3), (32, 3), (16, 1), (32, 3), (64, 3), (32, 1), (64, 3), (10, 1)]
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert len(bns) == 5  # one per 3×3 conv, none after 1×1 convs
    assert sum(isinstance(mod, torch.nn.MaxPool2d) for mod in m.modules()) == 2
    # conv weights (3×3 no bias, 1×1 with bias) + BN affine
    expected = (27 * 16 + 16 * 9 * 32 + (32 * 16 + 16) + 16 * 9 * 32 + 32 * 9 * 64
                + (64 * 32 + 32) + 32 * 9 * 64 + (64 * 10 + 10)) + 2 * (16 + 32 + 32 + 64 + 64)
    assert count_parameters(m) == expected == 50_186
    m.eval()
    for side in (24, 26, 32, 17):
        assert m(torch.randn(2, 3, side, side)).shape == (2, 10)
