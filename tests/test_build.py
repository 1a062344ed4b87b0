"""One model builder for validation, planning, the stacking probe, training and loading
(issue 24, item 1): a user's lazy layers, a model that cannot stack, the output check."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from sharpen import SharpenError
from sharpen.experiments import load_experiment, run_experiment
from sharpen.experiments.build import build_model, input_shape
from sharpen.experiments.plan import make_plan, stack_blockers
from sharpen.experiments.weights import load_model

USER = textwrap.dedent('''
    import torch
    from torch import nn

    def lazy_mlp(num_classes=10, in_channels=1):
        # the issue's model: it crashed in the stacking probe before anything trained
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(32), nn.ReLU(), nn.Linear(32, 10))

    def lazy_cnn(num_classes=10, in_channels=1):
        return nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Dropout(0.2), nn.Flatten(), nn.LazyLinear(16), nn.ReLU(),
                             nn.Linear(16, num_classes))

    class Scaled(nn.Module):  # a weight outside any layer the stacker knows
        def __init__(self, num_classes=10, in_channels=1):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.body(x) * self.scale
''')


@pytest.fixture
def lazypkg(tmp_path, monkeypatch):
    (tmp_path / "lazypkg.py").write_text(USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _file(tmp_path, body: str, name: str = "e.toml"):
    p = tmp_path / name
    p.write_text('name = "lazy"\ndataset = "synthetic"\ntrain_size = 160\nval_size = 40\n'
                 'test_size = 80\nruns = 3\nepochs = 2\nbatch_size = 40\noptimizer = "adam"\n'
                 'lr = 0.003\nthreads = 1\ncheckpoint = false\n' + body)
    return p


def _rows(d):
    return list(csv.DictReader(open(d / "metrics.csv")))


@pytest.mark.parametrize("model", ["lazypkg:lazy_mlp", "lazypkg:lazy_cnn"])
def test_a_lazy_user_model_trains_stacked_and_alone_with_equal_results(lazypkg, tmp_path, model):
    exp = load_experiment(str(_file(tmp_path, f'model = "{model}"\nsave_weights = "final"\n')))
    cfg = exp.arms["default"]
    assert stack_blockers(cfg) == []  # the probe builds it as training does: it stacks
    built = build_model(cfg)
    assert not any(isinstance(p, torch.nn.parameter.UninitializedParameter)
                   for p in built.parameters())  # materialised by the dry pass
    outs = {}
    for k in (3, 1):
        e = load_experiment(str(_file(tmp_path, f'model = "{model}"\nsave_weights = "final"\n'
                                                f"stack_seeds = {k}\n", f"e{k}.toml")))
        assert {len(g) for g in make_plan(e, cores=1)["arms"]["default"]["groups"]} == {k}
        outs[k], res = run_experiment(e, tmp_path / f"s{k}", quiet=True, workers=1)
        assert [r["status"] for r in res] == ["ok"] * 3
        assert {r["stacked_seeds"] for r in res} == {k}
    for s in range(3):
        a, b = (_rows(outs[k] / "runs" / "default" / f"seed-{s}") for k in (3, 1))
        assert len(a) == len(b) == 2
        for ra, rb in zip(a, b):
            for c in ("train_loss", "val_loss", "test_loss"):
                assert float(ra[c]) == pytest.approx(float(rb[c]), rel=2e-4), c
            for c in ("train_acc", "val_acc", "test_acc"):
                assert float(ra[c]) == pytest.approx(float(rb[c]), abs=0.011), c
    # the seeds differ, and a saved lazy model loads through the same builder
    assert _rows(outs[3] / "runs/default/seed-0")[-1]["train_loss"] != \
        _rows(outs[3] / "runs/default/seed-1")[-1]["train_loss"]
    m = load_model(outs[1] / "runs" / "default" / "seed-0")
    x = torch.randn(4, *input_shape(cfg))
    assert m(x).shape == (4, 10)


def test_a_model_that_cannot_stack_says_why_in_one_line(lazypkg, tmp_path):
    p = _file(tmp_path, 'model = "lazypkg:Scaled"\nstack_seeds = 2\n')
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(lazypkg)})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "field stack_seeds: these seeds cannot be stacked: model 'lazypkg:Scaled': module " \
           "(model) (Scaled) holds parameters of its own" in lines[0]
    # under "auto" the plan says the same and trains the seeds one by one
    exp = load_experiment(str(_file(tmp_path, 'model = "lazypkg:Scaled"\n', "auto.toml")))
    arm = make_plan(exp, cores=1)["arms"]["default"]
    assert arm["stack"] == 1 and "holds parameters of its own" in arm["why"]


def test_input_shape_comes_from_the_dataset_spec():
    from sharpen.experiments import RunConfig

    assert input_shape(RunConfig(dataset="cifar10")) == (3, 32, 32)
    assert input_shape(RunConfig(dataset="mnist", data_resize=20)) == (1, 20, 20)
    assert input_shape(RunConfig(dataset="mnist", model="direct_ws", pairs=10)) == (2, 14, 14)
    with pytest.raises(SharpenError, match="digit pairs need a 1×28×28 dataset .* not 3×32×32"):
        input_shape(RunConfig(dataset="cifar10", model="direct_ws", pairs=10))


def test_the_built_model_has_the_techniques_change_and_the_run_s_classes():
    from sharpen.experiments import RunConfig
    from sharpen.techniques.blurpool import BlurPool2d

    cfg = RunConfig(dataset="cifar10", model="vgg08", blurpool=True, blurpool_taps=4)
    m = build_model(cfg)
    assert sum(isinstance(x, BlurPool2d) for x in m.modules()) == 3
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # cifar10's classes, not vgg's 100
    assert m.training  # the dry pass leaves the mode as it was


def test_the_dry_pass_changes_no_weight_and_no_random_state():
    from sharpen.experiments import RunConfig
    from sharpen.models import create_model

    cfg = RunConfig(dataset="mnist", model="lenet5_dropout")
    torch.manual_seed(7)
    built = build_model(cfg)
    after = torch.get_rng_state()
    torch.manual_seed(7)
    plain = create_model("lenet5_dropout", num_classes=10, in_channels=1)
    assert torch.equal(after, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                  plain.state_dict().values()))


def test_a_wrong_output_or_pair_mismatch_names_the_model_field(lazypkg, tmp_path):
    p = _file(tmp_path, 'model = "direct_ws"\n')
    with pytest.raises(SharpenError, match=r"field model: 'direct_ws' is a pair model; set pairs"):
        load_experiment(str(p))
    p = tmp_path / "p.toml"
    p.write_text('name = "p"\ndataset = "mnist-sample"\nmodel = "lenet5"\npairs = 10\n')
    with pytest.raises(SharpenError, match=r"field model: 'lenet5' is not a pair model; pair "
                                           r"models: direct_al, direct_alws"):
        load_experiment(str(p))
