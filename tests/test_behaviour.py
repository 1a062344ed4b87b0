"""What techniques and the trainer *do*, checked against independent computations.

Each test here was written against a planted bug that the rest of the suite missed (a
deblurring hook that counts a batch as blurred but returns it unchanged, an adaptive-lr rule
with another threshold, weight decay dropped from the optimizer, random erasing with another
area range, an unpickler that lets a dangerous global through, ...).
"""

from __future__ import annotations

import math
import pickle
import struct

import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats

from sharpen import SharpenError
from sharpen.data import synthetic
from sharpen.data.formats import safe_unpickle
from sharpen.imageops import box_blur, gaussian_blur
from sharpen.models import create_model
from sharpen.techniques import LrAdaptive, RandomErasing, RandomizedDeblur, random_erasing
from sharpen.training import Hook, Split, TrainData, TrainSettings, build_models, train
from sharpen.training.streams import generator


def _data(n: int = 128, n_test: int = 32) -> TrainData:
    x, y = synthetic("train", n=n)
    xt, yt = synthetic("test", n=n_test)
    return TrainData(Split(x, y), Split(xt, yt), None, (0.5,), (0.25,))


class _Tap(Hook):
    """Records the batches that pass it (placed before and after the hook under test)."""

    def __init__(self):
        self.xs: list[torch.Tensor] = []
        self.epochs: list[int] = []

    def on_batch(self, state, x, y):
        self.xs.append(x.detach().clone())
        self.epochs.append(state.epoch)
        return x, y


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
def test_randomized_deblur_blurs_exactly_the_drawn_batches_with_that_epochs_sigma(seeds):
    sigma = {"kind": "linear", "start": 2.0, "end": 0.5}
    before, after = _Tap(), _Tap()
    hook = RandomizedDeblur(sigma, p=0.5)
    epochs, bs, n = 3, 32, 128
    models = build_models(lambda: create_model("lenet5_dropout", dropout=0.0), seeds)
    train(models, _data(n), TrainSettings(epochs=epochs, batch_size=bs), seeds, [before, hook, after])
    # independently: each seed's β stream, one draw per batch; σ_e linear from 2.0 to 0.5
    betas = {s: generator(s, "deblur") for s in seeds}
    blurred = {s: 0 for s in seeds}
    for xb, xa, e in zip(before.xs, after.xs, before.epochs):
        sig = 2.0 + (0.5 - 2.0) * e / (epochs - 1)
        for k, s in enumerate(seeds):
            part = slice(k * bs, (k + 1) * bs)
            if float(torch.rand((), generator=betas[s])) <= 0.5:
                blurred[s] += 1
                assert torch.allclose(xa[part], gaussian_blur(xb[part], sig), atol=1e-5)
                assert not torch.allclose(xa[part], xb[part], atol=1e-3)
            else:
                assert torch.equal(xa[part], xb[part])
    assert hook.blurred_batches == [blurred[s] for s in seeds]
    assert 0 < sum(blurred.values()) < len(seeds) * epochs * (n // bs)


class _Loss(Hook):
    """Replaces each seed's epoch loss by a designed value; the gradient stays the real
    loss's (``loss * 0 + target`` would make it zero, and no weight would ever move)."""

    def __init__(self, per_seed: list[list[float]]):
        self.per_seed = per_seed

    def on_loss(self, state, loss, out, y):
        target = torch.tensor([v[state.epoch] for v in self.per_seed])
        return loss - loss.detach() + target


def test_adaptive_lr_halves_only_when_the_loss_improved_by_less_than_3_percent():
    # seed 0: improves 10 % (keep), 1 % (halve), 44 % (keep), 2 % (halve), worse (halve)
    # seed 1: improves 50 %, 20 %, 3.5 % (all keep), then 2.9 % (halve), 0 % (halve)
    losses = [[1.0, 0.9, 0.891, 0.5, 0.49, 0.5], [1.0, 0.5, 0.4, 0.386, 0.3748, 0.3748]]
    mult = [[1, 1, 1, 0.5, 0.5, 0.25], [1, 1, 1, 1, 1, 0.5]]
    s = TrainSettings(epochs=6, batch_size=64, lr=0.1)
    models = build_models(lambda: create_model("lenet5_dropout", dropout=0.0), [0, 1])
    out = train(models, _data(64), s, [0, 1], [_Loss(losses), LrAdaptive(0.03)])
    for k in range(2):
        assert [r["train_loss"] for r in out.rows[k]] == pytest.approx(losses[k])
        assert [r["lr"] for r in out.rows[k]] == pytest.approx([0.1 * m for m in mult[k]])


def test_one_sgd_step_with_weight_decay_matches_the_hand_computed_update():
    data = _data(64)
    lr, wd = 0.1, 0.05
    s = TrainSettings(epochs=1, batch_size=64, lr=lr, momentum=0.0, weight_decay=wd)
    (model,) = build_models(lambda: create_model("lenet5"), [0])
    ref = create_model("lenet5")
    ref.load_state_dict(model.state_dict())
    w0 = {k: v.clone() for k, v in ref.state_dict().items()}
    # the same batch by hand: normalised images, mean cross-entropy, its gradient
    x = (data.train.x.float() - 127.5) / 63.75
    F.cross_entropy(ref(x), data.train.y).backward()
    train(model, data, s, 0)
    after = model.state_dict()
    for name, p in ref.named_parameters():
        want = w0[name] - lr * (p.grad + wd * w0[name])
        assert torch.allclose(after[name], want, atol=2e-6), name
        # the decay term is far larger than the tolerance: dropping it would fail
        assert (lr * wd * w0[name]).abs().max() > 1e-4


def test_per_seed_lr_multipliers_scale_each_seeds_update():
    """Two stacked seeds whose lr differ (one halved by the adaptive rule) each take the step
    of their own lr: their weights equal their separate runs' (where one lr is the group's)."""
    losses = [[1.0, 0.99, 0.98], [1.0, 0.5, 0.25]]  # seed 0 halves after epoch 2, seed 1 not
    s = TrainSettings(epochs=3, batch_size=32, lr=0.1, momentum=0.9)
    models = build_models(lambda: create_model("lenet5"), [0, 1])
    stacked = train(models, _data(64), s, [0, 1], [_Loss(losses), LrAdaptive(0.03)])
    assert [r["lr"] for r in stacked.rows[0]] == pytest.approx([0.1, 0.1, 0.05])
    assert [r["lr"] for r in stacked.rows[1]] == pytest.approx([0.1, 0.1, 0.1])
    start = build_models(lambda: create_model("lenet5"), [0, 1])
    for k, seed in enumerate([0, 1]):
        moved = [(a - b).abs().max() for a, b in zip(models[k].parameters(),
                                                     start[k].parameters())]
        assert min(moved) > 1e-3  # the weights did train (a zero gradient once hid this)
        (alone,) = build_models(lambda: create_model("lenet5"), [seed])
        train(alone, _data(64), s, seed, [_Loss([losses[k]]), LrAdaptive(0.03)])
        for (name, a), b in zip(models[k].state_dict().items(), alone.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-5), (seed, name)


def test_random_erasing_defaults_are_the_seeds():
    from sharpen.experiments import RunConfig

    c = RunConfig()
    assert (c.erase_p, c.erase_area, c.erase_aspect) == (0.5, (0.02, 0.33), (0.3, 3.3))
    h = RandomErasing.from_config(RunConfig(random_erasing=True))
    assert (h.p, h.area, h.aspect) == (0.5, (0.02, 0.33), (0.3, 3.3))


def test_random_erasing_area_and_aspect_follow_their_uniform_laws():
    # 256 px and area ≤ 0.25: every first draw fits, so the laws are the uniforms (up to
    # whole-pixel rounding of h and w, well below what the test resolves)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1500, 1, 256, 256)
    _, boxes = random_erasing(x, p=1.0, area=(0.02, 0.25), aspect=(0.3, 3.3), generator=g)
    h, w = boxes[:, 2].double(), boxes[:, 3].double()
    area = h * w / 256**2
    log_aspect = torch.log(h / w)
    ks_a = stats.kstest(area.numpy(), stats.uniform(0.02, 0.23).cdf)
    ks_r = stats.kstest(log_aspect.numpy(), stats.uniform(math.log(0.3), math.log(3.3 / 0.3)).cdf)
    assert ks_a.pvalue > 1e-3 and ks_r.pvalue > 1e-3
    # the lowest uniform quantiles: 0.01 / 0.23 = 4.3 % of the areas lie below 0.03 (a lower
    # bound of 0.03 would leave none there); 1500 draws: ±0.5 % sd
    below = (area < 0.03).double().mean().item()
    assert 0.028 < below < 0.058
    assert stats.kstest(area.numpy(), stats.uniform(0.03, 0.22).cdf).pvalue < 0.01


DANGEROUS = [("os", "system"), ("posix", "system"), ("nt", "system"), ("builtins", "eval"),
             ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
             ("__builtin__", "eval"), ("subprocess", "Popen"), ("subprocess", "check_output"),
             ("shutil", "rmtree"), ("pickle", "loads"), ("functools", "partial"),
             ("numpy", "load"), ("numpy.lib.npyio", "load"), ("torch", "load"),
             ("webbrowser", "open"), ("runpy", "run_path")]


@pytest.mark.parametrize("module,name", DANGEROUS)
def test_the_unpickler_refuses_every_dangerous_global(tmp_path, module, name):
    marker = tmp_path / "ran"
    # protocol 0: GLOBAL module.name, then call it with one string argument (REDUCE)
    payload = f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()
    p = tmp_path / "batch"
    p.write_bytes(payload)
    with pytest.raises(SharpenError, match=rf"refused to load global {module}\.{name}"):
        safe_unpickle(p)
    assert not marker.exists()


def test_the_unpickler_refuses_stack_global_and_inst_too(tmp_path):
    p = tmp_path / "b"
    # protocol 4 STACK_GLOBAL ('os', 'system')
    body = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.")
    p.write_bytes(body)
    with pytest.raises(SharpenError, match="refused to load global os.system"):
        safe_unpickle(p)
    p.write_bytes(b"(S'true'\nios\nsystem\n.")  # INST
    with pytest.raises(SharpenError, match="refused to load global os.system"):
        safe_unpickle(p)
    p.write_bytes(pickle.dumps({b"x": [1, 2.5, b"z"]}, protocol=2))  # plain data still loads
    assert safe_unpickle(p) == {b"x": [1, 2.5, b"z"]}
    assert struct  # (struct is what corrupt pickles raise through)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("side", [28, 100])  # ≤ 96 px: matrix products; > 96 px: pooling
def test_box_blur_2d_odd_and_even_against_a_direct_windowed_mean(n, side):
    g = torch.Generator().manual_seed(n)
    x = torch.rand(2, 3, side, side + 3, generator=g, dtype=torch.float64)
    got = box_blur(x, n, padding="reflect").numpy()
    # scipy's uniform_filter: window origin 0 puts even windows at offsets −n/2 … n/2−1, as ours
    ref = ndimage.uniform_filter(x.numpy(), size=(1, 1, n, n), mode="mirror")
    assert got.shape == x.shape
    assert abs(got - ref).max() < 1e-9


SCIPY_MODE = {"reflect": "mirror", "replicate": "nearest", "zeros": "constant"}


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("shape,sigma", [((2, 3, 100, 104), 1.5),  # > 96 px: depthwise conv
                                         ((1, 2, 120, 5), 2.0),  # radius 8 > short side 5
                                         ((2, 3, 40, 44), 1.5)])  # ≤ 96 px: matrix products
def test_gaussian_blur_2d_on_both_paths_against_scipy(padding, shape, sigma):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = gaussian_blur(x, sigma, padding=padding).numpy()
    # reflect needs a pad smaller than the side: on an axis shorter than the radius it falls
    # back to replicate, per axis
    radius = int(4 * sigma + 0.5)
    modes = [SCIPY_MODE["replicate" if padding == "reflect" and radius >= side else padding]
             for side in shape[2:]]
    ref = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode=["nearest", "nearest",
                                  *modes], truncate=4.0)
    assert got.shape == x.shape and abs(got - ref).max() < 1e-9


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("length", [50, 130])
def test_gaussian_blur_1d_signals_against_scipy(padding, length):
    x = torch.rand(2, 3, length, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = gaussian_blur(x, 2.5, padding=padding).numpy()
    ref = ndimage.gaussian_filter1d(x.numpy(), 2.5, axis=-1, mode=SCIPY_MODE[padding], truncate=4.0)
    assert abs(got - ref).max() < 1e-9


def _fake_state(model: torch.nn.Module, epoch: int, epochs: int):
    from types import SimpleNamespace

    return SimpleNamespace(model=model, epoch=epoch, epochs=epochs, extra={})


def test_scheduled_dropout_sets_every_layer_per_epoch_on_a_progress_schedule():
    from sharpen.techniques.dropout import ScheduledDropout
    from sharpen.training.stack import SeededDropout

    model = torch.nn.Sequential(SeededDropout(0.5, False, 1), torch.nn.Linear(2, 2),
                                SeededDropout(0.1, True, 1))
    t = ScheduledDropout({"kind": "linear", "start": 0.0, "end": 0.4, "unit": "progress"})
    for epoch, want in ((0, 0.0), (2, 0.2), (4, 0.4)):  # progress epoch / (5 − 1)
        st = _fake_state(model, epoch, 5)
        t.on_epoch_start(st)
        assert [m.p for m in model if isinstance(m, SeededDropout)] == pytest.approx([want] * 2)
        assert st.extra == {"dropout": pytest.approx(want)}
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\), got 1.0 at epoch 3$"):
        ScheduledDropout(1.0).on_epoch_start(_fake_state(model, 2, 5))


def test_progressive_resize_plans_rounded_sides_and_resizes_every_batch():
    from types import SimpleNamespace

    from sharpen import SharpenError
    from sharpen.imageops import resize
    from sharpen.techniques.resizing import ProgressiveResize

    t = ProgressiveResize({"kind": "linear", "start": 16, "end": 28, "unit": "progress"})
    assert [t.plan(e, 5)["image_size"] for e in range(5)] == [16, 19, 22, 25, 28]
    st = _fake_state(torch.nn.Identity(), 1, 5)
    t.on_epoch_start(st)
    x = torch.rand(3, 1, 28, 28)
    got, _ = t.on_batch(st, x, torch.zeros(3))
    assert st.extra == {"image_size": 19} and torch.equal(got, resize(x, 19))
    cfg = SimpleNamespace(image_size={"kind": "step", "start": 20, "every": 1, "delta": 0.5},
                          epochs=3)
    with pytest.raises(SharpenError, match=r"field 'arms.a.image_size': value 20.5 at epoch 2 "
                                           r"must be an integer"):
        ProgressiveResize.check(cfg, "arms.a.", 28)


def _deblur_state(betas: list[float], epoch: int = 0, epochs: int = 3):
    from types import SimpleNamespace

    E = len(betas)
    return SimpleNamespace(epoch=epoch, epochs=epochs, n_seeds=E, extra={},
                           rand=lambda name: torch.tensor(betas),
                           per_seed=lambda x: x.view(E, -1, *x.shape[1:]))


def test_randomized_deblur_from_config_uses_its_padding_and_checks_its_probability():
    from types import SimpleNamespace

    from sharpen import SharpenError

    cfg = SimpleNamespace(blur_sigma=2.0, blur_p=1.0, padding="zeros", epochs=3)
    t = RandomizedDeblur.from_config(cfg)
    st = _deblur_state([0.3, 0.9, 0.1])
    t.on_epoch_start(st)
    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    got, _ = t.on_batch(st, x, torch.zeros(6))  # every seed hit: the whole batch at once
    assert torch.allclose(got, gaussian_blur(x, 2.0, padding="zeros"))
    from sharpen.training.schedules import as_schedule

    t.p = as_schedule(0.5)  # now seeds 0 and 2 only (β 0.3, 0.1 ≤ 0.5)
    t.on_epoch_start(st)
    got, _ = t.on_batch(st, x, torch.zeros(6))
    want = x.clone()
    for e in (0, 2):
        want[2 * e:2 * e + 2] = gaussian_blur(x[2 * e:2 * e + 2], 2.0, padding="zeros")
    assert torch.allclose(got, want) and t.blurred_batches == [2, 1, 2]
    assert RandomizedDeblur(1.0).plan(0, 3)["blur_p"] == 1.0  # by default every batch
    with pytest.raises(SharpenError, match=r"field 'blur_p': value -0.1 at epoch 1 is outside "
                                           r"the allowed range \[0.0, 1.0\]"):
        RandomizedDeblur.check(SimpleNamespace(blur_sigma=1.0, blur_p=-0.1, epochs=3), "", 28)


def test_randomized_deblur_at_sigma_zero_counts_no_batch_and_plans_in_progress_units():
    t = RandomizedDeblur({"kind": "linear", "start": 2.0, "end": 0.0, "unit": "progress"},
                         {"kind": "linear", "start": 1.0, "end": 0.5, "unit": "progress"})
    assert [t.plan(e, 5) for e in (0, 2, 4)] == [{"sigma": 2.0, "blur_p": 1.0},
                                                 {"sigma": 1.0, "blur_p": 0.75},
                                                 {"sigma": 0.0, "blur_p": 0.5}]
    st = _deblur_state([0.0, 0.2], epoch=4, epochs=5)
    t.on_epoch_start(st)
    x = torch.rand(4, 1, 8, 8)
    got, _ = t.on_batch(st, x, torch.zeros(4))
    assert got is x and t.blurred_batches == [0, 0] and st.extra == {"sigma": 0.0, "blur_p": 0.5}


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_blurred_copy_in_chunks_against_scipy_rounded_for_uint8_only(padding):
    from sharpen.techniques.sharpening import blurred_copy

    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (7, 1, 10, 10), generator=g, dtype=torch.uint8)
    ref = ndimage.uniform_filter(x.double().numpy(), size=(1, 1, 3, 3),
                                 mode={"reflect": "mirror", "zeros": "constant"}[padding])
    got = blurred_copy(x, 3, padding, chunk=3)  # 7 images in chunks of 3: 3 + 3 + 1
    assert got.dtype == torch.uint8 and torch.equal(got, torch.from_numpy(ref).round().to(torch.uint8))
    xf = x.float()
    gotf = blurred_copy(xf, 3, padding, chunk=3)
    assert gotf.dtype == torch.float32 and abs(gotf.double().numpy() - ref).max() < 1e-4
    assert not torch.equal(gotf, gotf.round())  # floats are not rounded
    if padding == "reflect":
        assert torch.equal(blurred_copy(x, 3), got)  # the default padding


def _mix_state(data_x: torch.Tensor, n_seeds: int, draws: torch.Tensor, epoch: int = 0,
               epochs: int = 2):
    from types import SimpleNamespace

    d = SimpleNamespace(train=SimpleNamespace(x=data_x))
    names: list[str] = []

    def rand(name, n):
        names.append(name)
        return draws

    st = SimpleNamespace(epoch=epoch, epochs=epochs, data=[d] * n_seeds, extra={}, train_x=None,
                         rand=rand, norm=lambda t: t.float(),
                         gather=lambda copies, idx: torch.cat([c[i] for c, i in zip(copies, idx)]))
    return st, names


def test_mixed_sharpening_takes_exactly_the_drawn_samples_from_one_shared_copy():
    from sharpen.techniques.sharpening import ProgressiveSharpening, blurred_copy

    data = torch.randint(0, 256, (6, 1, 8, 8), generator=torch.Generator().manual_seed(4),
                         dtype=torch.uint8)
    t = ProgressiveSharpening({"kind": "piecewise", "points": [(0, 3), (1, 1)]}, mode="mixed",
                              mix=0.5, padding="zeros")
    made = []
    t.blurred_copy = lambda x, n: made.append(n) or blurred_copy(x, n, "zeros")
    draws = torch.tensor([[0.2, 0.5, 0.9], [0.7, 0.1, 0.49999]])  # seed-major, 2 seeds × 3
    st, names = _mix_state(data, 2, draws)
    t.on_epoch_start(st)
    assert made == [3] and st.extra == {"blur_n": 3, "blur_mix": 0.5}  # one copy, shared
    st.batch_index = torch.tensor([[0, 1, 2], [3, 4, 5]])
    x = data.float()
    got, _ = t.on_batch(st, x, torch.zeros(6))
    assert names == ["sharpen_mix"]
    blurred = blurred_copy(data, 3, "zeros").float()
    take = [True, False, False, False, True, True]  # draw < 0.5 (0.5 itself is not taken)
    for i, tk in enumerate(take):
        assert torch.equal(got[i], blurred[i] if tk else x[i]), i
    st2, _ = _mix_state(data, 2, draws, epoch=1)  # blur_n 1: sharp, nothing to mix
    t.on_epoch_start(st2)
    st2.batch_index = st.batch_index
    assert t.on_batch(st2, x, torch.zeros(6))[0] is x


def test_sharpening_checks_and_configuration():
    from types import SimpleNamespace

    from sharpen import SharpenError
    from sharpen.techniques.sharpening import ProgressiveSharpening

    with pytest.raises(ValueError, match=r"^mode must be 'staged' or 'mixed', got 'both'$"):
        ProgressiveSharpening(3, mode="both")
    cfg = SimpleNamespace(blur_n=3, blur_mode="mixed", blur_mix=0.5, padding="zeros", epochs=2)
    assert ProgressiveSharpening.from_config(cfg).padding == "zeros"

    def bad(match, **kw):
        with pytest.raises(SharpenError, match=match):
            ProgressiveSharpening.check(SimpleNamespace(**{**vars(cfg), **kw}), "arms.a.", 28)

    bad(r"field 'arms.a.blur_n': value 0 at epoch 1 is outside the allowed range \[1, 28\]",
        blur_n=0)
    bad(r"'arms.a.blur_n': value 29 at epoch 1 is outside the allowed range \[1, 28\]", blur_n=29)
    bad(r"'arms.a.blur_n': value 2.5 at epoch 1 must be an integer",
        blur_n={"kind": "step", "start": 2.5, "every": 1, "delta": 0.5})
    bad(r"'arms.a.blur_mix': value 1.5 at epoch 1 is outside the allowed range \[0.0, 1.0\]",
        blur_mix=1.5)
    bad(r"'arms.a.blur_mix': value -0.5 at epoch 1 is outside", blur_mix=-0.5)
    ProgressiveSharpening.check(SimpleNamespace(**{**vars(cfg), "blur_mode": "staged",
                                                   "blur_mix": 1.5}), "", 28)  # not used
    p = ProgressiveSharpening({"kind": "linear", "start": 5, "end": 1, "unit": "progress"})
    assert [p.plan(e, 5)["blur_n"] for e in range(5)] == [5, 4, 3, 2, 1]


def _erasing_by_hand(x, p, area, aspect, seed, attempts=10):
    """random_erasing's documented law, one image at a time in plain Python, from the same
    draws in the same order (apply, areas, aspects, top, left, noise)."""
    g = torch.Generator().manual_seed(seed)
    n, _, H, W = x.shape
    apply = torch.rand(n, generator=g).tolist()
    ua = torch.rand(n, attempts, generator=g).tolist()
    ur = torch.rand(n, attempts, generator=g).tolist()
    ut = torch.rand(n, generator=g).tolist()
    ul = torch.rand(n, generator=g).tolist()
    noise = torch.randn(x.shape, generator=g)
    out, boxes = x.clone(), []
    for i in range(n):
        h = w = 0
        if apply[i] < p:
            for k in range(attempts):
                a = (area[0] + (area[1] - area[0]) * ua[i][k]) * H * W
                r = math.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * ur[i][k])
                hh, ww = round(math.sqrt(a * r)), round(math.sqrt(a / r))
                if 1 <= hh < H and 1 <= ww < W:
                    h, w = hh, ww
                    break
        top = min(math.floor(ut[i] * (H - h + 1)), H - 1)
        left = min(math.floor(ul[i] * (W - w + 1)), W - 1)
        out[i, :, top:top + h, left:left + w] = noise[i, :, top:top + h, left:left + w]
        boxes.append([top, left, h, w])
    return out, boxes


@pytest.mark.parametrize("shape,p,area,aspect", [
    ((40, 3, 12, 20), 0.5, (0.02, 0.33), (0.3, 3.3)),  # the paper's defaults, not square
    ((40, 1, 3, 4), 0.9, (0.3, 0.9), (0.5, 2.0)),  # tiny images: many boxes never fit
    ((10, 2, 8, 8), 1.0, (0.25, 0.25), (1.0, 1.0)),  # a fixed 4×4 box: equal bounds allowed
    ((40, 1, 12, 20), 1.0, (0.05, 0.1), (0.05, 0.1)),  # flat boxes: one row high
    ((40, 1, 12, 20), 1.0, (0.05, 0.1), (10.0, 20.0)),  # tall boxes: one column wide
    ((40, 1, 3, 4), 1.0, (0.4, 1.0), (0.5, 2.0)),  # some images fit a box, some never do
    ((8, 1, 3, 4), 1.0, (0.95, 1.0), (1.0, 1.0)),  # no box ever fits: nothing is erased
])
def test_random_erasing_equals_a_per_image_loop_of_its_law(shape, p, area, aspect):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(9))
    got, boxes = random_erasing(x, p, area, aspect, torch.Generator().manual_seed(5))
    want, want_boxes = _erasing_by_hand(x, p, area, aspect, 5)
    assert boxes.tolist() == want_boxes and torch.equal(got, want)
    hs = [b[2] for b in want_boxes]
    if area == (0.05, 0.1):  # the thin boxes really occur
        assert 1 in (hs if aspect[0] < 1 else [b[3] for b in want_boxes])
    if area == (0.4, 1.0):
        assert 0 in hs and any(hs)
    if area == (0.95, 1.0):
        assert not any(hs) and torch.equal(got, x)
    if shape == (40, 3, 12, 20):  # defaults: the same call without arguments
        d, db = random_erasing(x, generator=torch.Generator().manual_seed(5))
        assert torch.equal(d, got) and torch.equal(db, boxes)


@pytest.mark.parametrize("kw,match", [
    ({"p": 1.5}, r"^p must be in \[0, 1\], got 1.5$"), ({"p": -0.1}, "p must be in"),
    ({"area": (0.0, 0.3)}, "need 0 < area_lo"), ({"area": (0.3, 0.2)}, "need 0 < area_lo"),
    ({"area": (0.2, 1.5)}, r"got area \(0.2, 1.5\), aspect \(0.3, 3.3\)$"),
    ({"aspect": (0.0, 1.0)}, "0 < aspect_lo <= aspect_hi"), ({"aspect": (2.0, 1.0)}, "aspect_lo"),
])
def test_random_erasing_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        random_erasing(torch.rand(2, 1, 8, 8), **kw)


def test_random_erasing_boundaries_are_allowed_and_the_technique_passes_its_settings():
    from types import SimpleNamespace

    x = torch.rand(4, 1, 8, 8)
    random_erasing(x, 0.0, (1.0, 1.0), (1.0, 1.0))  # the closed ends of every range
    assert RandomErasing().p == 0.5 and RandomErasing().area == (0.02, 0.33)
    cfg = SimpleNamespace(random_erasing=True, erase_p=0.7, erase_area=(0.1, 0.2),
                          erase_aspect=(0.5, 2.0))
    t = RandomErasing.from_config(cfg)
    assert (t.p, t.area, t.aspect) == (0.7, (0.1, 0.2), (0.5, 2.0))
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    st = SimpleNamespace(generators=lambda name: gens if name == "erasing" else None,
                         per_seed=lambda b: b.view(2, -1, *b.shape[1:]))
    xb = torch.rand(6, 1, 8, 8)
    got, _ = t.on_batch(st, xb, torch.zeros(6))
    want = torch.cat([random_erasing(xb[3 * e:3 * e + 3], 0.7, (0.1, 0.2), (0.5, 2.0),
                                     torch.Generator().manual_seed(s))[0]
                      for e, s in enumerate((1, 2))])
    assert torch.equal(got, want)


@pytest.mark.parametrize("area,aspect,ok", [
    ((0.02, 0.33), (0.3, 3.3), True), ((0.3, 0.3), (1.0, 1.0), True), ((0.5, 1.0), (1, 2), True),
    ((0.0, 0.3), (0.3, 3.3), False), ((0.4, 0.3), (0.3, 3.3), False), ((0.2, 1.1), (1, 2), False),
    ((0.2, 0.3), (0.0, 3.3), False), ((0.2, 0.3), (3.3, 0.3), False),
])
def test_random_erasing_config_check_names_both_fields(area, aspect, ok):
    from types import SimpleNamespace

    from sharpen import SharpenError

    cfg = SimpleNamespace(erase_area=area, erase_aspect=aspect)
    if ok:
        RandomErasing.check(cfg, "arms.e.", 32)
    else:
        with pytest.raises(SharpenError, match=r"^fields arms.e.erase_area / erase_aspect: need "
                                               r"0 < lo <= hi <= 1 for the area and 0 < lo <= hi "
                                               r"for the aspect; got "):
            RandomErasing.check(cfg, "arms.e.", 32)


def test_sharpening_rebuilds_its_blurred_copy_after_a_resume():
    from sharpen.techniques.sharpening import ProgressiveSharpening, blurred_copy

    data = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    t = ProgressiveSharpening(3)
    made = []
    t.blurred_copy = lambda x, n: made.append(n) or blurred_copy(x, n)
    st, _ = _mix_state(data, 1, torch.zeros(1, 4))
    t.on_epoch_start(st)
    t.on_epoch_start(st)  # same stage: the copy is kept
    assert made == [3]
    t.load_state_dict(t.state_dict())  # a resumed run: the copy is not in the checkpoint
    t.on_epoch_start(st)
    assert made == [3, 3] and torch.equal(st.train_x[0], blurred_copy(data, 3))


@pytest.mark.parametrize("shape,n", [((2, 1, 5, 40), 12), ((2, 1, 5, 100), 12),
                                     ((1, 2, 6, 30), 13), ((2, 1, 5, 100), 11)])  # pad == side
def test_box_blur_wider_than_the_image_falls_back_to_replicate_on_both_paths(shape, n):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    got = box_blur(x, n, padding="reflect").numpy()
    ref = ndimage.uniform_filter(x.numpy(), size=(1, 1, n, n), mode="nearest")
    assert abs(got - ref).max() < 1e-9


def test_gaussian_kernel_and_radius_equal_to_the_side():
    from sharpen.imageops import gaussian_kernel1d

    k = gaussian_kernel1d(1.5)  # scipy's default truncation: radius int(4σ + 0.5) = 6
    t = torch.arange(-6, 7, dtype=torch.float64)
    ref = torch.exp(-t**2 / (2 * 1.5**2))
    assert len(k) == 13 and torch.allclose(k.double(), ref / ref.sum(), atol=1e-7)
    x = torch.rand(1, 1, 7, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = gaussian_blur(x, 1.75, padding="reflect").numpy()  # radius 7 == the short side
    ref2 = ndimage.gaussian_filter(x.numpy(), (0, 0, 1.75, 1.75), truncate=4.0,
                                   mode=["nearest", "nearest", "nearest", "mirror"])
    assert abs(got - ref2).max() < 1e-9


def test_resize_antialiases_when_either_side_shrinks_and_checks_its_input():
    from sharpen.imageops import resize

    x = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    for hw, aa in (((10, 40), True), ((40, 15), True), ((40, 60), False), ((10, 15), True),
                   ((40, 25), True)):  # only the width shrinks, to more than the height
        want = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=aa)
        assert torch.equal(resize(x, hw), want), hw
    assert torch.equal(resize(x, 10), F.interpolate(x, size=(10, 10), mode="bilinear",
                                                    antialias=True))
    assert resize(x, (20, 30)) is x and resize(x, 1).shape == (2, 3, 1, 1)
    assert torch.equal(resize(x, (10, 15), antialias=False),
                       F.interpolate(x, size=(10, 15), mode="bilinear", antialias=False))
    with pytest.raises(ValueError, match=r"^resize expects N×C×H×W, got shape \(3, 20, 30\)$"):
        resize(x[0], 10)
    with pytest.raises(ValueError, match=r"^size must be >= 1, got \(0, 5\)$"):
        resize(x, (0, 5))


def test_blur_argument_errors_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"^expected N×C×L or N×C×H×W, got shape \(4, 4\)$"):
        gaussian_blur(torch.rand(4, 4), 1.0)
    with pytest.raises(TypeError, match=r"^expected a floating-point tensor, got torch.uint8; "
                                        r"call .float\(\) first$"):
        box_blur(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 3)
    with pytest.raises(ValueError, match=r"^padding must be one of .*got 'wrap'$"):
        box_blur(torch.rand(1, 1, 4, 4), 3, padding="wrap")
    with pytest.raises(ValueError, match=r"^box blur size n must be >= 1, got 0$"):
        box_blur(torch.rand(1, 1, 4, 4), 0)


def test_mixed_sharpening_takes_half_of_each_batch_by_default():
    from sharpen.techniques.sharpening import ProgressiveSharpening

    assert ProgressiveSharpening(3, mode="mixed").plan(0, 3) == {"blur_n": 3, "blur_mix": 0.5}
    assert ProgressiveSharpening(3).plan(0, 3) == {"blur_n": 3}
