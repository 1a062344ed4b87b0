"""Stacking strategies (issue 26, item 3): the grouped convolution and BatchNorm (seeds on
the channel axis, one call) equal the per-seed loop to float tolerance for every stackable
bundled model, in outputs, gradients, BatchNorm statistics and a few training steps."""

from __future__ import annotations

import pytest
import torch

from sharpen.experiments import RunConfig
from sharpen.models import create_model, list_models
from sharpen.training import Split, TrainData, TrainSettings, build_models, train
from sharpen.training.stack import StackedBatchNorm, StackedConv, resolve_strategy, stack_models

SHAPES = {"conv1d_small": (1, 64)}


def _shape(name: str) -> tuple[int, ...]:
    if name in SHAPES:
        return SHAPES[name]
    if name.startswith(("direct", "shres", "sub_")):
        return (2, 14, 14)
    return (1, 28, 28) if name.startswith("lenet") else (3, 32, 32)


def _kw(name: str) -> dict:
    kw: dict = {}
    if name.startswith(("lenet5_dropout", "nin_cifar", "conv1d")):
        kw["dropout"] = 0.0  # dropout masks are random per call: compare the arithmetic
    if name.startswith("vgg"):
        kw.update(width=8, num_classes=10)
    if name == "nin_cifar" or name.startswith("vgg"):
        kw["in_channels"] = 3
    return kw


def _out(y):
    return y if torch.is_tensor(y) else torch.cat([v.flatten() for _, v in sorted(y.items())])


@pytest.mark.parametrize("name", list_models())
def test_grouped_equals_the_loop_for_every_bundled_model(name):
    torch.manual_seed(0)
    models = [create_model(name, **_kw(name)) for _ in range(3)]
    loop = stack_models(models, "loop").train()
    grouped = stack_models(models, "grouped").train()
    grouped.load_state_dict(loop.state_dict())
    assert any(getattr(m, "grouped", False) for m in grouped.modules()) or not any(
        isinstance(m, (StackedConv, StackedBatchNorm)) for m in grouped.modules())
    x = torch.randn(3 * 8, *_shape(name), generator=torch.Generator().manual_seed(1))
    # float32: the same to rounding (38 BatchNorm layers amplify it: a loose tolerance)
    a, b = _out(loop(x)), _out(grouped(x))
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * float(a.abs().max()))
    # float64 (fresh stacks: the float32 pass moved the running statistics): the same
    # arithmetic, so the same numbers to 1e-9, gradients and statistics too
    loop = stack_models(models, "loop").train().double()
    grouped = stack_models(models, "grouped").train().double()
    grouped.load_state_dict(loop.state_dict())
    a, b = _out(loop(x.double())), _out(grouped(x.double()))
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    a.square().sum().backward()
    b.square().sum().backward()
    for (k, p), q in zip(loop.named_parameters(), grouped.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-8, atol=1e-12), k
    for (k, u), v in zip(loop.named_buffers(), grouped.buffers()):  # BatchNorm's running stats
        assert torch.allclose(u.double(), v.double(), rtol=1e-9, atol=1e-12), k


def test_grouped_training_follows_the_loop_and_each_seed_its_own_run():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 10, (200,), generator=g)
    x = (torch.rand(200, 1, 28, 28, generator=g) * 120 + y.view(-1, 1, 1, 1) * 12).to(torch.uint8)
    data = TrainData(Split(x[:160], y[:160]), Split(x[160:], y[160:]), None, (0.3,), (0.3,))
    rows = {}
    for strategy in ("loop", "grouped"):
        s = TrainSettings(epochs=2, batch_size=40, optimizer="adam", lr=3e-3,
                          stack_conv=strategy)
        models = build_models(lambda: create_model("vgg08_bn", width=8, num_classes=10,
                                                   in_channels=1), [0, 1, 2])
        rows[strategy] = train(models, data, s, [0, 1, 2]).rows
    for a, b in zip(rows["loop"], rows["grouped"]):
        for ra, rb in zip(a, b):
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-3)
            assert ra["test_acc"] == pytest.approx(rb["test_acc"], abs=0.03)


def test_the_strategy_is_a_key_resolved_by_device():
    assert RunConfig().stack_conv == "auto"
    assert TrainSettings.from_config(RunConfig(stack_conv="grouped")).stack_conv == "grouped"
    assert resolve_strategy("auto", "cpu") == "loop"
    assert resolve_strategy("auto", "cuda") == "grouped"
    assert resolve_strategy("loop", "cuda") == "loop"
    with pytest.raises(ValueError, match="stack_conv must be one of"):
        resolve_strategy("vmap", "cpu")
