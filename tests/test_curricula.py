from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from scipy import ndimage

from sharpen.data import load, synthetic, synthetic_waves
from sharpen.experiments import load_experiment
from sharpen.imageops import box_blur, gaussian_blur, resize
from sharpen.models import create_model
from sharpen.techniques import (
    ProgressiveResize,
    ProgressiveSharpening,
    RandomizedDeblur,
    ScheduledDropout,
    schedule_rows,
)
from sharpen.training import Hook, Split, TrainData, TrainSettings, train
from sharpen.training.schedules import as_schedule
from sharpen.training.stack import SeededDropout
from sharpen.training.streams import generator

SCIPY_MODE = {"reflect": "mirror", "replicate": "nearest", "zeros": "constant"}


def _mnist(n: int = 16) -> torch.Tensor:
    x, _ = load("mnist-sample", "test")
    return x[:n].float()


def _sliding_mean(img: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Direct windowed mean with explicit loops (the independent computation)."""
    lo, hi = n // 2, n - 1 - n // 2
    p = np.pad(img, ((lo, hi), (lo, hi)), mode={"reflect": "reflect", "replicate": "edge",
                                                "zeros": "constant"}[mode])
    out = np.empty_like(img, dtype=np.float64)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            out[i, j] = p[i:i + n, j:j + n].mean()
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
def test_box_blur_equals_direct_sliding_mean_on_real_mnist(n, mode):
    x = _mnist(3)
    y = box_blur(x, n, padding=mode)
    assert y.shape == x.shape
    for k in range(3):
        ref = _sliding_mean(x[k, 0].double().numpy(), n, mode)
        np.testing.assert_allclose(y[k, 0].numpy(), ref, atol=1e-4)


def test_box_blur_kernel_is_j_over_n_squared():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = box_blur(x, 3, padding="zeros")
    assert torch.allclose(y[0, 0, 3:6, 3:6], torch.full((3, 3), 1 / 9))
    assert y.sum().item() == pytest.approx(1.0)
    assert torch.equal(box_blur(x, 1), x)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.3])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
def test_gaussian_blur_matches_scipy(sigma, mode):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 17) * 255
    y = gaussian_blur(x, sigma, padding=mode)
    ref = ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma),
                                  mode=SCIPY_MODE[mode], truncate=4.0)
    np.testing.assert_allclose(y.numpy() / 255, ref / 255, atol=1e-5)


def test_gaussian_sigma_zero_is_identity_and_any_channels():
    x = torch.rand(3, 5, 8, 8)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    assert gaussian_blur(x, 1.0).shape == x.shape
    with pytest.raises(ValueError, match="sigma must be"):
        gaussian_blur(x, -1)


def test_ops_are_differentiable():
    x = torch.rand(2, 1, 10, 10, requires_grad=True)
    (box_blur(x, 3).sum() + gaussian_blur(x, 1.0).sum() + resize(x, 6).sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_resize_shapes_antialias_and_mean():
    x = torch.rand(4, 3, 32, 32)
    y = resize(x, 24)
    assert y.shape == (4, 3, 24, 24)
    assert y.mean().item() == pytest.approx(x.mean().item(), abs=2e-2)
    assert resize(x, 32) is x
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32)).remainder(2).float().expand(1, 1, 32, 32)
    # antialiased downscaling averages the checkerboard to grey instead of aliasing it
    assert resize(checker, 16).std().item() < 0.05


def test_1d_blur_along_time():
    x, _ = synthetic_waves("train", n=10)
    x = x.float()
    y = box_blur(x, 5, padding="replicate")
    ref = ndimage.uniform_filter1d(x.double().numpy(), 5, axis=-1, mode="nearest")
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-4)
    g = gaussian_blur(x, 2.0, padding="replicate")
    ref = ndimage.gaussian_filter1d(x.double().numpy(), 2.0, axis=-1, mode="nearest")
    np.testing.assert_allclose(g.numpy(), ref, atol=1e-3)


def test_seed_001_stepped_schedule_matches_the_text():
    exp = load_experiment("deblur-cifar10")
    rows = schedule_rows(exp.arms["proposed"])
    # paper 001: 24×24 epochs 1-2 γ 0.2; 26 e3-4 γ .25; 28 e5-6 γ .3; 30 e7-8 γ .35; 32 e9-15 γ .4
    sizes = [24, 24, 26, 26, 28, 28, 30, 30] + [32] * 7
    drops = [0.2, 0.2, 0.25, 0.25, 0.3, 0.3, 0.35, 0.35] + [0.4] * 7
    sig = [2, 2, 1.5, 1.5, 1, 1, 0.5, 0.5] + [0] * 7
    assert [r["image_size"] for r in rows] == sizes
    assert [r["dropout"] for r in rows] == pytest.approx(drops)
    assert [r["sigma"] for r in rows] == pytest.approx(sig)
    assert all(r["blur_p"] == 0.4 for r in rows)
    assert [r["lr"] for r in rows] == pytest.approx([0.01 * 0.9 ** (e // 2) for e in range(15)])
    normal = schedule_rows(exp.arms["normal"])
    assert all(r["dropout"] == 0.4 and "image_size" not in r for r in normal)


def test_algorithm_1_linear_values_at_ends_and_middle():
    exp = load_experiment("deblur-cifar10", profile="algorithm1")
    c = exp.arms["proposed"]
    N = c.epochs
    S, R, sig = (as_schedule(c.image_size), as_schedule(c.dropout), as_schedule(c.blur_sigma))
    for i in (0, N // 2, N - 1):
        assert S.value(i, N) == pytest.approx(24 + (32 - 24) * i / (N - 1))
        assert R.value(i, N) == pytest.approx(0.2 + (0.4 - 0.2) * i / (N - 1))
        assert sig.value(i, N) == pytest.approx(2 - 2 * i / (N - 1))


class _Spy(Hook):
    def __init__(self):
        self.shapes, self.dropouts, self.xs = [], [], []

    def on_batch(self, state, x, y):
        self.shapes.append(tuple(x.shape[-2:]))
        self.xs.append(x.detach().clone())
        return x, y

    def on_epoch_start(self, state):
        self.dropouts.append([m.p for m in state.model.modules() if isinstance(m, SeededDropout)])


def _tiny_data(n=256):
    x, y = synthetic("train", n=n)
    return TrainData(Split(x, y), Split(x[:64], y[:64]), None, (0.5,), (0.25,))


def test_dropout_and_size_change_during_training_without_rebuilding():
    torch.manual_seed(0)
    model = create_model("nin_cifar", in_channels=1)
    spy = _Spy()
    ids = {id(p) for p in model.parameters()}
    hooks = [ScheduledDropout({"kind": "step", "start": 0.2, "delta": 0.1, "every": 1, "max": 0.4}),
             ProgressiveResize({"kind": "step", "start": 20, "delta": 4, "every": 1, "max": 28}), spy]
    rows = train(model, _tiny_data(), TrainSettings(epochs=3, batch_size=128, lr=0.01), 0, hooks).rows[0]
    assert [s for s in spy.shapes[::2]] == [(20, 20), (24, 24), (28, 28)]
    assert spy.dropouts == [[0.2], [pytest.approx(0.3)], [pytest.approx(0.4)]]
    assert [r["image_size"] for r in rows] == [20, 24, 28]
    assert {id(p) for p in model.parameters()} == ids


def test_staged_sharpening_trains_on_the_blurred_copy_then_the_original():
    data = _tiny_data(128)
    spy = _Spy()
    sharp = ProgressiveSharpening({"kind": "step", "start": 3, "delta": -2, "every": 1, "min": 1})
    torch.manual_seed(0)
    rows = train(create_model("lenet5_dropout"), data, TrainSettings(epochs=2, batch_size=128), 0,
                 [sharp, spy]).rows[0]
    assert [r["blur_n"] for r in rows] == [3, 1]
    gen = generator(0, "data_order")
    perm0 = torch.randperm(128, generator=gen)
    norm = lambda t: (t.float() - 127.5) / 63.75  # noqa: E731
    expected0 = norm(box_blur(data.train.x.float(), 3).round())[perm0]  # a uint8 copy
    assert torch.allclose(spy.xs[0], expected0, atol=1e-5)
    perm1 = torch.randperm(128, generator=gen)
    assert torch.allclose(spy.xs[1], norm(data.train.x)[perm1], atol=1e-6)


def test_sharpening_copy_is_computed_once_per_stage(monkeypatch):
    calls = []
    orig = ProgressiveSharpening.blurred_copy

    def counting(self, x, n):
        calls.append(n)
        return orig(self, x, n)

    monkeypatch.setattr(ProgressiveSharpening, "blurred_copy", counting)
    sharp = ProgressiveSharpening({"kind": "step", "start": 5, "delta": -1, "every": 2, "min": 1})
    train(create_model("lenet5_dropout"), _tiny_data(128), TrainSettings(epochs=10, batch_size=32),
          0, [sharp])
    assert calls == [5, 4, 3, 2]


def test_mixed_mode_mixes_in_the_scheduled_proportion():
    data = _tiny_data(256)
    spy = _Spy()
    mix = ProgressiveSharpening(5, mode="mixed", mix={"kind": "linear", "start": 1.0, "end": 0.0})
    rows = train(create_model("lenet5_dropout"), data, TrainSettings(epochs=3, batch_size=256), 0,
                 [mix, spy]).rows[0]
    assert [r["blur_mix"] for r in rows] == [1.0, 0.5, 0.0]
    gen = generator(0, "data_order")
    norm = lambda t: (t.float() - 127.5) / 63.75  # noqa: E731
    blurred = norm(box_blur(data.train.x.float(), 5).round())
    sharp = norm(data.train.x)
    fractions = []
    for x in spy.xs:
        perm = torch.randperm(256, generator=gen)
        is_blur = (x - blurred[perm]).abs().flatten(1).max(1).values < 1e-5
        is_sharp = (x - sharp[perm]).abs().flatten(1).max(1).values < 1e-5
        assert bool((is_blur | is_sharp).all())
        fractions.append(is_blur.float().mean().item())
    assert fractions[0] == 1.0 and fractions[2] == 0.0 and 0.35 < fractions[1] < 0.65


def test_randomized_deblur_blurs_a_fraction_alpha_of_batches():
    hook = RandomizedDeblur(sigma=1.5, p=0.4)
    train(create_model("lenet5_dropout"), _tiny_data(256), TrainSettings(epochs=25, batch_size=16),
          0, [hook])
    frac = hook.blurred_batches[0] / (25 * 16)
    assert 0.34 < frac < 0.46  # 400 Bernoulli(0.4) draws: ±3 std


def test_1d_curriculum_with_conv1d_model():
    x, y = synthetic_waves("train", n=300)
    xt, yt = synthetic_waves("test", n=120)
    data = TrainData(Split(x, y), Split(xt, yt), None, (0.5,), (0.2,))
    torch.manual_seed(0)
    rows = train(create_model("conv1d_small"), data,
                 TrainSettings(epochs=8, batch_size=32, optimizer="adam", lr=3e-3), 0,
                 [ProgressiveSharpening({"kind": "step", "start": 7, "delta": -2, "every": 1, "min": 1})]
                 ).rows[0]
    assert [r["blur_n"] for r in rows] == [7, 5, 3, 1, 1, 1, 1, 1]
    assert rows[-1]["test_acc"] > 0.5  # 6 classes: chance is 0.17


def test_bad_curriculum_settings_name_the_field(tmp_path):
    from sharpen import SharpenError

    base = 'name = "x"\ndataset = "synthetic"\nepochs = 4\n'
    for extra, match in [
        ("blur_p = 1.5\nblur_sigma = 1.0", r"field 'blur_p': value 1.5"),
        ("blur_sigma = -1", r"field 'blur_sigma': value -1"),
        ("image_size = 40", r"field 'image_size': value 40 .* \[1, 28\]"),
        ("dropout = 1.0", r"field 'dropout': value 1 .* \[0.0, 1.0\)"),
        ("blur_n = { kind = 'step', start = 5, delta = -1, every = 2, begin = 9 }", r"field 'blur_n'"),
    ]:
        p = tmp_path / "c.toml"
        p.write_text(base + extra)
        with pytest.raises(SharpenError, match=match):
            load_experiment(str(p))


def test_schedule_of_a_grid_arm_takes_the_arms_name_and_prints_its_cells(capsys):
    """`sharpen schedule sharpening-map --arm sharpening` wanted a cell-expanded name
    (sharpening__blur_stages-1__stage_epochs-1) and listed all 18 of them."""
    from sharpen.cli import main
    from sharpen.techniques import schedule_rows

    exp = load_experiment("sharpening-map")
    cells = [c for c, v in exp.cells.items() if v["arm"] == "sharpening"]
    assert len(cells) == 9
    assert main(["schedule", "sharpening-map", "--arm", "sharpening", "--csv"]) == 0
    plan = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(dict.fromkeys(r["arm"] for r in plan)) == cells  # every cell, the grid's order
    for cell in cells:  # each cell's own plan (blur stages differ by cell)
        want = schedule_rows(exp.arms[cell])
        got = [r for r in plan if r["arm"] == cell]
        assert [float(r["blur_n"]) for r in got] == [w["blur_n"] for w in want]
    assert len({tuple(r["blur_n"] for r in plan if r["arm"] == c) for c in cells}) > 1
    assert main(["schedule", "sharpening-map", "--arm", cells[4]]) == 0  # one cell by name
    assert capsys.readouterr().out.startswith(f"arm {cells[4]}:")
    assert main(["schedule", "sharpening-map", "--arm", "sharpen"]) == 2
    err = capsys.readouterr().err
    assert "--arm 'sharpen': no arm 'sharpen' in sharpening-map; arms: baseline, sharpening (or " \
           "one grid cell by its name" in err and err.count("__") == 2


def test_schedule_cli_and_metrics_columns_agree(tmp_path, capsys):
    """`sharpen schedule` prints the plan each technique applies: the same values per epoch
    as every run writes into metrics.csv."""
    from sharpen.cli import main
    from sharpen.experiments import run_experiment

    assert main(["schedule", "deblur-cifar10", "--arm", "proposed", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "arm,epoch,dropout,image_size,sigma,blur_p,lr,weight_decay"
    assert lines[1].startswith("proposed,1,0.2,24,2.0,0.4,0.01") and len(lines) == 16
    exp = load_experiment("sharpening-mnist", profile="smoke", overrides=["epochs=3"])
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    assert main(["schedule", "sharpening-mnist", "--profile", "smoke", "--set", "epochs=3",
                 "--csv"]) == 0
    plan = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["arm"] for r in plan} == set(exp.arms)  # one valid CSV with every arm
    checked = 0
    for arm in exp.arms:
        mine = [r for r in plan if r["arm"] == arm]
        for seed in exp.seeds:
            rows = list(csv.DictReader(open(out / "runs" / arm / f"seed-{seed}" / "metrics.csv")))
            assert len(rows) == len(mine) == 3
            for p_row, m_row in zip(mine, rows):
                for k, v in p_row.items():
                    if k in ("arm", "weight_decay") or v == "":
                        continue
                    assert float(m_row[k]) == pytest.approx(float(v)), (arm, k)
                    checked += 1
    assert checked > 3 * len(exp.arms)
    for f in ("schedule.png", "blur_strip.png"):
        assert (out / f).read_bytes()[:4] == b"\x89PNG"
    assert "blur_strip.png" in (out / "report.md").read_text()


def test_a_data_figure_is_drawn_from_the_images_its_technique_wrote(tmp_path):
    """Issue 33: a technique writes its figure's images into the run directory
    (``<figure>.npz``: the first training image of classes 0-3 under each column) and
    reports draws the PNG from that file alone; a directory without it (made before the
    file existed) gets no new figure."""
    from sharpen.reports.curriculum import curriculum_figures
    from sharpen.techniques import write_figure_data

    f = tmp_path / "e.toml"
    f.write_text('name = "e"\ndataset = "mnist-sample"\nmodel = "lenet5"\nepochs = 4\n'
                 'padding = "zeros"\n[arms.base]\n'
                 '[arms.sharp]\nblur_n = { kind = "step", start = 5, delta = -2, every = 1, '
                 'min = 1 }\n[arms.deblur]\nblur_sigma = "decay"\nblur_sigma0 = 1.5\n')
    out = tmp_path / "run"
    out.mkdir()
    plans = write_figure_data(load_experiment(str(f)).arms, out)
    assert set(plans) == {"base", "sharp", "deblur"}
    x, y = load("mnist-sample", "train")
    first = np.stack([x[int(np.flatnonzero(y.numpy() == k)[0])].numpy() for k in range(4)])
    with np.load(out / "blur_strip.npz") as z:
        assert list(z["titles"]) == ["original", "kernel_1", "kernel_3", "kernel_5"]
        imgs = z["images"]
    assert imgs.shape == (4, 4, 1, 28, 28) and imgs.dtype == np.float32
    np.testing.assert_array_equal(imgs[0], first)
    np.testing.assert_array_equal(imgs[1], first)  # kernel 1: the sharp image
    for j, n in ((2, 3), (3, 5)):  # a direct windowed mean (the digits sit on black: any padding)
        ref = ndimage.uniform_filter(first.astype(np.float64), size=(1, 1, n, n),
                                     mode="constant")
        np.testing.assert_allclose(imgs[j], ref, atol=1e-3)
    with np.load(out / "sigma_strip.npz") as z:
        assert list(z["titles"]) == ["σ = 1.5", "σ = 1", "σ = 0"]
        np.testing.assert_array_equal(z["images"][2], first)  # σ = 0: the sharp image
    made = curriculum_figures(out, plans)
    assert [p.name for p in made] == ["schedule.png", "blur_strip.png", "sigma_strip.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in made)
    (out / "sigma_strip.npz").unlink()
    (out / "sigma_strip.png").unlink()
    assert [p.name for p in curriculum_figures(out, plans)] == ["schedule.png", "blur_strip.png"]
    assert curriculum_figures(out, {}) == []  # no curriculum arm: no schedule plot either
    assert write_figure_data({"base": load_experiment(str(f)).arms["base"]}, out) == {}
