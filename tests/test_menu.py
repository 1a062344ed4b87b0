"""The standard techniques (issue 16), each against an independent computation: explicit
indexing, hand sums, torch's own implementations, scipy; and what each does to a batch
inside the trainer. Stacked-seed equivalence: tests/test_stacking.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sharpen.experiments import RunConfig
from sharpen.techniques import (
    clip_grad_norm_per_seed,
    cutmix,
    cutout,
    hflip,
    mixup,
    random_crop,
    schedule_rows,
    smooth_loss,
    techniques_for,
)
from sharpen.techniques.crop import crop_offsets
from sharpen.techniques.cutmix import cutmix_box
from sharpen.techniques.cutout import cutout_centres
from sharpen.techniques.ema import EMA
from sharpen.techniques.mixup import beta_draw, soft_targets
from sharpen.techniques.smoothing import LabelSmoothing
from sharpen.training import Split, TrainData, TrainSettings, build_models, train
from sharpen.training.schedules import as_schedule
from sharpen.training.stack import stack_models

G = torch.Generator().manual_seed(0)


def _x(n: int = 6, c: int = 2, h: int = 7, w: int = 9) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=G)


# ------------------------------------------------------------------ per-image augmentations
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_random_crop_is_a_window_of_the_padded_image(mode):
    x, pad = _x(), 3
    off = crop_offsets(len(x), pad, 1.0, torch.Generator().manual_seed(1))
    got = random_crop(x, pad, off, mode)
    for n in range(len(x)):
        a = x[n].numpy()
        padded = np.pad(a, ((0, 0), (pad, pad), (pad, pad)),
                        mode="constant" if mode == "zeros" else "reflect")
        dy, dx = off[n].tolist()
        assert np.array_equal(got[n].numpy(), padded[:, dy:dy + 7, dx:dx + 9])
    centred = torch.full((len(x), 2), pad)
    assert torch.equal(random_crop(x, pad, centred, mode), x)  # offset (pad, pad): unchanged
    assert (crop_offsets(1000, pad, 0.0, G) == pad).all()  # p = 0: never moved
    o = crop_offsets(20000, pad, 1.0, G)
    assert o.min() == 0 and o.max() == 2 * pad  # the whole range is reachable


def test_hflip_mirrors_exactly_the_chosen_images():
    x = _x()
    flip = torch.tensor([True, False, True, True, False, False])
    got = hflip(x, flip)
    for n in range(len(x)):
        want = x[n][:, :, torch.arange(8, -1, -1)] if flip[n] else x[n]
        assert torch.equal(got[n], want)


def test_cutout_zeroes_the_clipped_square_and_nothing_else():
    x, size = _x() + 5.0, 4  # +5: no pixel is zero before
    centres = torch.tensor([[3, 4], [0, 0], [6, 8], [2, 7], [-20, -20], [5, 1]])
    got = cutout(x, size, centres)
    for n, (cy, cx) in enumerate(centres.tolist()):
        want = x[n].clone()
        for r in range(7):
            for c in range(9):
                if cy - 2 <= r < cy + 2 and cx - 2 <= c < cx + 2:
                    want[:, r, c] = 0
        assert torch.equal(got[n], want)
    c = cutout_centres(5000, 7, 9, size, 0.25, G)
    assert abs((c[:, 0] >= 0).float().mean().item() - 0.25) < 0.03  # p: the share cut


# -------------------------------------------------------------------------- batch mixing
def test_mixup_keeps_pixel_and_target_totals_and_mixes_by_lambda():
    x, y = _x(), torch.tensor([0, 1, 2, 2, 1, 0])
    t = soft_targets(y, 3)
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    lam = 0.3
    xm, tm = mixup(x, t, lam, perm)
    assert xm.sum().item() == pytest.approx(x.sum().item(), abs=1e-4)  # perm keeps the total
    assert torch.allclose(tm.sum(1), torch.ones(6))  # every target sums to 1
    assert torch.allclose(tm.sum(0), t.sum(0))  # per class, the label mass is kept
    n = 2  # by hand: sample 2 is 0.3 of itself and 0.7 of sample 5
    assert torch.allclose(xm[n], 0.3 * x[2] + 0.7 * x[5])
    assert torch.allclose(tm[n], torch.tensor([0.7, 0.0, 0.3]))


def test_beta_draws_follow_the_beta_law():
    from scipy import stats
    u = torch.rand(4000, generator=G)
    lam = [beta_draw(0.4, float(v)) for v in u]
    assert stats.kstest(lam, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3


def test_cutmix_pastes_the_box_and_mixes_targets_by_its_area():
    x, y = _x(h=8, w=10), torch.tensor([0, 1, 2, 3, 4, 5])
    t = soft_targets(y, 6)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    box = cutmix_box(0.7, 8, 10, cy=1, cx=9)  # clipped at the top and right borders
    top, left, bottom, right = box
    assert (top, bottom) == (0, 3) and (left, right) == (7, 10)  # √0.3: 4×5 box, clipped
    xm, tm, lam = cutmix(x, t, box, perm)
    area = (bottom - top) * (right - left)
    assert lam == pytest.approx(1 - area / 80)
    inside = torch.zeros(8, 10, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    for n in range(6):
        assert torch.equal(xm[n][:, inside], x[perm[n]][:, inside])
        assert torch.equal(xm[n][:, ~inside], x[n][:, ~inside])
        assert tm[n, y[n]] == pytest.approx(lam) and tm[n, y[perm[n]]] == pytest.approx(1 - lam)
    assert torch.allclose(tm.sum(1), torch.ones(6))


# ------------------------------------------------------------------------- loss and weights
@pytest.mark.parametrize("soft", [False, True])
def test_label_smoothing_equals_torch_cross_entropy_label_smoothing(soft):
    logits = torch.randn(8, 5, generator=G)
    y = torch.randint(0, 5, (8,), generator=G)
    target = torch.softmax(torch.randn(8, 5, generator=G), 1) if soft else y
    ce = F.cross_entropy(logits, target, reduction="none")
    want = F.cross_entropy(logits, target, label_smoothing=0.15, reduction="none")
    assert torch.allclose(smooth_loss(ce, logits, 0.15), want, atol=1e-6)
    # the hook, on a stacked loss of two seeds of four samples each
    state = SimpleNamespace(n_seeds=2, epoch=0, epochs=1, now=lambda s: 0.15)
    got = LabelSmoothing(0.15).on_loss(state, ce.view(2, 4).mean(1), logits, y)
    assert torch.allclose(got, want.view(2, 4).mean(1), atol=1e-6)


def test_ema_equals_torch_averaged_model_with_the_same_decay():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    ref = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=True)
    ema = EMA(0.8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = SimpleNamespace(model=model)
    for _ in range(5):
        loss = model(torch.randn(4, 1, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.on_step(state)
        ref.update_parameters(model)
    want = [*ref.module.parameters(), *ref.module.buffers()]
    assert len(want) == len(ema.avg)
    for a, b in zip(ema.avg, want):
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-6)


def test_ema_columns_come_from_the_averaged_weights():
    # decay close to 1 and a single step: the EMA is still the weights after step one, so
    # its test accuracy is that of the model after one step, not the final one
    data = _toy_data()
    s = TrainSettings(epochs=3, batch_size=400, optimizer="sgd", lr=0.5)  # one step an epoch
    ema = EMA(0.999999)
    rows = train(build_models(_toy_model, [0]), data, s, [0], hooks=[ema]).rows[0]
    one = train(build_models(_toy_model, [0]), data,
                TrainSettings(epochs=1, batch_size=400, optimizer="sgd", lr=0.5), [0]).rows[0]
    assert rows[-1]["ema_test_acc"] == one[0]["test_acc"]
    assert rows[-1]["ema_test_loss"] == pytest.approx(one[0]["test_loss"], rel=1e-4)
    assert rows[-1]["test_loss"] != pytest.approx(one[0]["test_loss"], rel=1e-3)  # raw moved on


def test_gradient_clipping_per_seed_equals_clip_grad_norm_on_each_model():
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
              for _ in range(3)]
    stacked = stack_models(models)
    xs = [torch.randn(5, 1, 6, 6) * scale for scale in (0.01, 1.0, 10.0)]  # seed 0 unclipped
    stacked(torch.cat(xs)).square().sum().backward()
    raw = sorted(float(torch.cat([p.grad[k].flatten() for p in stacked.parameters()]).norm())
                 for k in range(3))
    clip = (raw[0] + raw[1]) / 2  # seed 0 stays below it, the others are clipped
    norms = clip_grad_norm_per_seed(list(stacked.parameters()), clip, 3)
    for k, (m, x) in enumerate(zip(models, xs)):
        m(x).square().sum().backward()
        total = torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        assert norms[k] == pytest.approx(float(total), rel=1e-5)
        assert (float(total) < clip) == (k == 0)
        for name, p in m.named_parameters():
            sp = dict(stacked.named_parameters())[name]
            assert torch.allclose(sp.grad[k], p.grad, rtol=1e-5, atol=1e-7), name


# ------------------------------------------------------------------ optimizers and schedules
def _toy_data(n: int = 400) -> TrainData:
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (torch.rand(n, 1, 8, 8, generator=g) * 100 + y.view(-1, 1, 1, 1) * 80).to(torch.uint8)
    return TrainData(Split(x, y), Split(x[:100], y[:100]), None, (0.5,), (0.3,))


def _toy_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


class _LrLog:
    stacks = True

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def __getattr__(self, name):  # the other hooks: no-ops
        if name.startswith("on_"):
            return lambda state, *a: a[0:2] if name == "on_batch" else (a[0] if a else None)
        raise AttributeError(name)

    def on_before_step(self, state) -> None:
        self.lrs.append(state.optimizer.param_groups[0]["lr"])

    def state_dict(self):
        return {}


def test_warmup_ramps_the_lr_linearly_per_step_then_follows_the_schedule():
    log = _LrLog()
    s = TrainSettings(epochs=2, batch_size=50, optimizer="sgd", lr=0.2, warmup=1.5)
    train(build_models(_toy_model, [0]), _toy_data(), s, [0], hooks=[log])
    W = 12  # 1.5 epochs of 8 batches
    want = [0.2 * min(1.0, (k + 1) / W) for k in range(16)]
    assert log.lrs == pytest.approx(want)


def test_onecycle_per_step_follows_torch_onecyclelr():
    log = _LrLog()
    sched = {"kind": "onecycle", "peak": 0.1, "pct": 0.25, "per": "step"}
    s = TrainSettings(epochs=5, batch_size=20, optimizer="sgd", lr=sched)
    train(build_models(_toy_model, [0]), _toy_data(), s, [0], hooks=[log])
    total = 5 * 20
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=0.25,
                                              div_factor=25, final_div_factor=1e4)
    want = []
    for _ in range(total):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    # torch ends each phase one step earlier (it counts steps 0 … N−1): within one step
    step_size = max(abs(a - b) for a, b in zip(want, want[1:]))
    assert max(abs(a - b) for a, b in zip(log.lrs, want)) <= step_size * 1.05
    assert log.lrs[0] == pytest.approx(0.1 / 25) and max(log.lrs) == pytest.approx(0.1, rel=1e-3)
    assert log.lrs[-1] < 1e-4


def test_adamw_step_is_decoupled_weight_decay_by_hand():
    s = TrainSettings(epochs=1, batch_size=400, optimizer="adamw", lr=0.01, weight_decay=0.1)
    m = build_models(_toy_model, [0])[0]
    w0 = m[1].weight.detach().clone()
    train([m], _toy_data(), s, [0])
    # Adam's first step moves every weight by lr·sign(g) (m̂/√v̂ = ±1, up to eps); AdamW
    # first shrinks it by lr·wd: w1 = w0·(1 − lr·wd) − lr·sign(g)
    step = (w0 * (1 - 0.01 * 0.1) - m[1].weight.detach()).abs()
    assert torch.allclose(step, torch.full_like(step, 0.01), atol=1e-5)


def test_menu_keys_validate_and_show_in_the_schedule():
    cfg = RunConfig.model_validate(dict(
        dataset="synthetic", epochs=4, crop_pad=2, flip_p={"kind": "linear", "start": 0.0,
                                                           "end": 0.5},
        cutout_size=4, mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, ema_decay=0.99,
        grad_clip=1.0, blurpool=True))
    names = [t.name for t in techniques_for(cfg)]
    assert names[:1] == ["blurpool"] and {"crop", "flip", "cutout", "mixup", "cutmix",
                                          "label_smoothing", "grad_clip", "ema"} <= set(names)
    rows = schedule_rows(cfg)
    assert [r["flip_p"] for r in rows] == pytest.approx([0, 1 / 6, 2 / 6, 0.5])
    assert rows[0]["label_smoothing"] == 0.1 and rows[0]["mixup_alpha"] == 0.2
    assert (rows[0]["ema_decay"], rows[0]["grad_clip"], rows[0]["blurpool"]) == (0.99, 1.0, 1)
    assert as_schedule({"kind": "onecycle", "peak": 1.0}).value(0, 10) == pytest.approx(0.04)
    assert math.isclose(as_schedule({"kind": "onecycle", "peak": 1.0, "pct": 0.5}).value(5, 10), 1.0)


@pytest.mark.parametrize("key,value,match", [
    ("flip_p", 1.5, r"field 'flip_p': value 1.5 at epoch 1 is outside the allowed range \[0.0, 1.0\]"),
    ("label_smoothing", 1.0, r"field 'label_smoothing': value 1 at epoch 1 is outside"),
    ("cutout_size", 40, r"field cutout_size: 40 is larger than the image side \(28\)"),
    ("crop_pad", 30, r"field crop_pad: reflect padding needs a pad smaller than the image side"),
    ("mixup_alpha", -1, r"field 'mixup_alpha': value -1"),
    ("ema_decay", 1.0, r"field ema_decay: Input should be less than 1"),
    ("grad_clip", 0, r"field grad_clip: Input should be greater than 0"),
])
def test_bad_menu_values_name_the_field(tmp_path, key, value, match):
    from sharpen import SharpenError
    from sharpen.experiments import load_experiment
    p = tmp_path / "e.toml"
    p.write_text(f'name = "e"\ndataset = "synthetic"\nepochs = 2\n{key} = {value}\n')
    with pytest.raises(SharpenError, match=match):
        load_experiment(str(p))


def test_mixing_refuses_pair_tasks(tmp_path):
    from sharpen import SharpenError
    from sharpen.experiments import load_experiment
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\ndataset = "mnist-sample"\npairs = 100\nmodel = "sub_lenet5"\n'
                 "mixup_alpha = 0.2\n")
    with pytest.raises(SharpenError, match=r"field mixup_alpha: mixed targets need a "
                                           r"classification task"):
        load_experiment(str(p))


def test_sharpen_keys_lists_every_key_with_a_meaning_and_docs_keys_md_is_current(capsys):
    import re
    from pathlib import Path

    from sharpen.cli import main
    from sharpen.experiments.config import EXPERIMENT_KEYS, RUN_KEYS, key_table
    rows = key_table()
    from sharpen.experiments.config.schema import Claim
    claim_keys = {f"claims.{k}" for k in Claim.model_fields}  # a [[claims]] entry's keys
    assert {r["key"] for r in rows} == RUN_KEYS | EXPERIMENT_KEYS | claim_keys  # name, runs ...
    assert all(r["meaning"] for r in rows), [r["key"] for r in rows if not r["meaning"]]
    by = {r["key"]: r for r in rows}
    for k in ("crop_pad", "flip_p", "cutout_size", "mixup_alpha", "cutmix_alpha",
              "label_smoothing", "ema_decay", "grad_clip", "blurpool", "warmup"):
        assert k in by
    assert by["optimizer"]["type"] == "'sgd' | 'adam' | 'adamw'"
    assert by["lr"]["type"] == "number or schedule" and by["mixup_alpha"]["owner"] == "mixup"
    assert main(["keys", "--markdown"]) == 0
    table = capsys.readouterr().out
    for line in table.splitlines():  # a | inside a type or default must not split its cell
        assert len(re.split(r"(?<!\\)\|", line)) == 7, line
    assert main(["keys"]) == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())  # wrapped to the terminal at spaces
    assert "list[Claim]" in flat  # whole types
    assert "dict[str, dict[str, list[int | float] | int | float | str]]" in flat
    doc = (Path(__file__).parents[1] / "docs" / "keys.md").read_text()
    assert table in doc, "docs/keys.md is stale: regenerate it with sharpen keys --markdown"


@pytest.mark.skipif(__import__("shutil").which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("width", [80, 120])
def test_sharpen_keys_fits_the_terminal_and_never_cuts_a_word(tmp_path, width):
    """`sharpen keys` padded every type to the longest (55 columns): each line was ~150
    columns and the terminal wrapped it mid-word. In a real tmux pane of ``width``."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sharpen.experiments.config import key_table

    sharpen = shutil.which("sharpen", path=str(Path(sys.executable).parent))
    sock, done = f"sharpen-keys-{os.getpid()}-{width}", tmp_path / "done"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              timeout=20).stdout

    tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", "50",
         f"{sharpen} keys; touch {done}; sleep 60")
    try:
        t0 = time.time()
        while not done.exists() and time.time() - t0 < 60:
            time.sleep(0.2)
        assert done.exists()
        # -J joins a line the terminal wrapped: its length says whether it fit
        lines = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t").rstrip("\n").splitlines()
    finally:
        tmux("kill-server")
    assert lines and all(len(ln) <= width for ln in lines), max(lines, key=len)
    rows = key_table()
    keys = [ln.split()[0] for ln in lines if ln and not ln[0].isspace()]
    assert keys == [r["key"] for r in rows]  # each key starts its own block, in order
    flat = " ".join(" ".join(lines).split())
    for r in rows:  # every word of every type, default and meaning, whole
        assert " ".join(f"{r['type']}, default {r['default']}".split()) in flat, r["key"]
        assert " ".join(str(r["meaning"]).split()) in flat, r["key"]
