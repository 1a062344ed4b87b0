"""The training loop's parts, each against a direct computation: normalisation per seed,
the optimizer it builds, the per-seed gathers and streams, and what reaches the model
(layout, autocast, compilation, seeded dropout). Small enough for mutation testing."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sharpen.data import synthetic
from sharpen.training import (
    Checkpoint,
    Hook,
    Split,
    TrainData,
    TrainSettings,
    build_models,
    loop,
    train,
)
from sharpen.training.schedules import as_schedule
from sharpen.training.stack import stack_models
from sharpen.training.streams import generator, stream_seed

CPU = torch.device("cpu")


def _data(n: int = 64, n_test: int = 16, seed: int = 0, channels: int = 1) -> TrainData:
    x, y = synthetic("train", n=n + seed * 16)
    xt, yt = synthetic("test", n=n_test)
    x, xt = x[-n:].repeat(1, channels, 1, 1), xt.repeat(1, channels, 1, 1)
    return TrainData(Split(x, y[-n:]), Split(xt, yt), None, (0.5,) * channels,
                     (0.25,) * channels)


def _small(channels: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 3, 5, stride=3), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(3 * 8 * 8, 10))


def _settings(**kw) -> TrainSettings:
    return TrainSettings(**{"epochs": 1, "batch_size": 32, "lr": 0.05, **kw})


@pytest.mark.parametrize("shape", [(6, 2, 3, 3), (6, 2, 5)])
def test_normalizer_uses_each_seeds_mean_and_std_on_the_0_255_scale(shape):
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stats = [SimpleNamespace(mean=(0.1, 0.2), std=(0.3, 0.4)),
             SimpleNamespace(mean=(0.5, 0.6), std=(0.7, 0.8)),
             SimpleNamespace(mean=(0.1, 0.2), std=(0.7, 0.8)),  # seed 0's mean, other std
             SimpleNamespace(mean=(0.5, 0.6), std=(0.3, 0.4))]  # seed 0's std, other mean
    for datas in ([stats[0], stats[1]], [stats[1], stats[1]], [stats[0], stats[2]],
                  [stats[0], stats[3]]):
        got = loop.normalizer(datas, CPU)(x)
        assert got.dtype == torch.float32 and got.shape == x.shape
        want = torch.empty(shape, dtype=torch.float64)
        for r in range(shape[0]):  # seed-major: rows 0-2 are seed 0's, 3-5 seed 1's
            d = datas[r // 3]
            for c in range(2):
                want[r, c] = (x[r, c].double() - 255 * d.mean[c]) / (255 * d.std[c])
        assert torch.allclose(got.double(), want, atol=1e-5)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW)])
@pytest.mark.parametrize("fused", [True, False])
def test_make_optimizer_starts_at_each_schedules_first_value(name, cls, fused):
    lr = {"kind": "step", "start": 0.2, "factor": 0.5, "every": 1}
    wd = {"kind": "linear", "start": 0.01, "end": 0.03}
    s = _settings(epochs=3, optimizer=name, lr=lr, weight_decay=wd, momentum=0.7, nesterov=True,
                  fused_optimizer=fused)
    model = stack_models([_small(), _small()])
    opt = loop.make_optimizer(model, s)
    assert type(opt.inner) is cls
    g = opt.param_groups[0]
    assert g["lr"] == pytest.approx(0.2) and g["weight_decay"] == pytest.approx(0.01)
    # each seed's slice of every stacked parameter, stepped as a tensor of its own
    assert len(g["params"]) == 2 * len(list(model.parameters()))
    assert [tuple(v.shape) for v in g["params"][:2]] == [tuple(model[0].weight.shape[1:])] * 2
    assert bool(g["fused"]) is fused  # CPU float parameters: the fused kernel when asked for
    if name == "sgd":
        assert g["momentum"] == 0.7 and g["nesterov"] is True
    as_schedule(lr)  # the test's schedules are valid ones
    with pytest.raises(ValueError, match=r"optimizer must be 'sgd', 'adam' or 'adamw', got 'lion'"):
        loop.make_optimizer(model, _settings(optimizer="lion"))
    with pytest.raises(ValueError, match="needs a stacked model"):  # slicing a plain one's
        loop.make_optimizer(_small(), s)  # weights by rows would be silently wrong


def test_each_seed_is_stepped_as_its_own_run_whatever_its_stack():
    """The fused kernels round a vector's tail unlike its body: 156 elements (LeNet-5's
    first conv) leave a tail, so a stacked E×156 tensor stepped whole gives some seed other
    bits than its own run (seen for SGD with momentum and weight decay); stepped per slice
    every seed equals its run alone."""
    torch.manual_seed(0)
    E, n = 10, 156
    start = torch.randn(E, 1, n)
    grads = [torch.randn(E, 1, n) for _ in range(5)]
    s = _settings(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)

    def stepped(rows: slice) -> torch.Tensor:
        lin = stack_models([nn.Sequential(nn.Linear(n, 1, bias=False))] * (rows.stop - rows.start))
        with torch.no_grad():
            lin[0].weight.copy_(start[rows])
        opt = loop.make_optimizer(lin, s)
        for g in grads:
            lin[0].weight.grad = g[rows].clone()
            opt.step()
        return lin[0].weight.detach()

    stacked = stepped(slice(0, E))
    for e in range(E):
        assert torch.equal(stacked[e], stepped(slice(e, e + 1))[0]), e


def test_set_lr_sets_every_group_and_weight_decay_only_when_given():
    a, b = nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, weight_decay=0.5)
    loop._set_lr(opt, 0.3, None)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.3, 0.5), (0.3, 0.5)]
    loop._set_lr(opt, 0.2, 0.01)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.2, 0.01), (0.2, 0.01)]


def test_seed_value_picks_a_seeds_entry_from_lists_and_tuples_only():
    assert loop._seed_value([3, 4], 1) == 4 and loop._seed_value((3, 4), 0) == 3
    assert loop._seed_value(5.0, 1) == 5.0 and loop._seed_value("ab", 1) == "ab"


def _state(seeds: list[int]) -> loop.TrainState:
    model = nn.Linear(1, 1)
    return loop.TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), [], _settings(),
                           CPU, seeds)


def test_gather_takes_each_seeds_rows_from_its_own_images():
    st = _state([0, 1])
    a, b = torch.arange(10) * 10, torch.arange(10) * 100
    idx = torch.tensor([[1, 3, 5], [0, 2, 9]])
    assert st.gather([a, b], idx).tolist() == [10, 30, 50, 0, 200, 900]
    assert st.gather([a, a], idx).tolist() == [10, 30, 50, 0, 20, 90]


def test_generators_are_each_seeds_named_stream_made_once():
    st = _state([3, 4])
    gens = st.generators("noise")
    assert st.generators("noise") is gens and st.generators("noise", "cpu") is gens
    for g, s in zip(gens, [3, 4]):
        assert torch.equal(torch.rand(5, generator=g),
                           torch.rand(5, generator=generator(s, "noise", CPU)))
    assert not torch.equal(st.rand("other", 5)[0], st.rand("other", 5)[1])  # per seed


def test_now_reads_a_schedule_per_step_or_per_epoch():
    st = _state([0])
    st.settings = _settings(epochs=4)
    st.epoch, st.batch, st.batches = 1, 2, 4
    probe = lambda per: SimpleNamespace(per=per, value=lambda t, n: t * 10 + n)  # noqa: E731
    assert st.now(probe("step")) == 1.5 * 10 + 4 and st.now(probe("epoch")) == 10 + 4


def test_plain_values_are_what_a_hook_checkpoints():
    for v in (None, True, 3, 2.5, "x", [1, (2, "a")], {"a": [1.0], 2: None}):
        assert loop._plain(v), v
    for v in (torch.zeros(1), [1, torch.zeros(1)], {"a": object()}, {(1, 2): 1}, {1.5: 1},
              object()):
        assert not loop._plain(v), v


def test_build_models_initialises_each_from_its_seeds_init_stream():
    models = build_models(_small, [7, 8])
    for m, s in zip(models, [7, 8]):
        torch.manual_seed(stream_seed(s, "init"))
        want = _small()
        for a, b in zip(m.parameters(), want.parameters()):
            assert torch.equal(a, b)
    assert not torch.equal(models[0][0].weight, models[1][0].weight)


class _See(Hook):
    """Records what the model receives and returns, and what the state holds."""

    def __init__(self):
        self.channels_last, self.contiguous, self.out_dtypes, self.eval_transform = [], [], [], []

    def on_epoch_start(self, state):
        def pre(_, args):
            x = args[0]
            self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last))
            self.contiguous.append(x.is_contiguous())
        state.model.register_forward_pre_hook(pre)
        self.eval_transform.append(state.eval_transform)

    def on_loss(self, state, loss, out, y):
        self.out_dtypes.append(out.dtype)
        return loss


@pytest.mark.parametrize("channels_last", [True, False])
def test_batches_reach_the_model_in_the_chosen_memory_layout(channels_last):
    see = _See()
    # three channels: a one-channel NCHW tensor is channels-last too
    train(build_models(lambda: _small(3), [0]), _data(channels=3),
          _settings(channels_last=channels_last), 0, [see])
    assert see.channels_last[:2] == [channels_last] * 2  # the two training batches
    assert see.contiguous[:2] == [not channels_last] * 2


@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16), ("off", torch.float32)])
def test_amp_autocasts_the_forward_to_bf16_only_when_asked(amp, dtype):
    see = _See()
    train(build_models(_small, [0]), _data(), _settings(amp=amp), 0, [see])
    assert see.out_dtypes == [dtype, dtype]
    with pytest.raises(ValueError, match=r"amp must be 'off' or 'bf16', got 'fp16'"):
        train(build_models(_small, [0]), _data(), _settings(amp="fp16"), 0)


def test_compile_wraps_the_stacked_model_only_when_asked(monkeypatch):
    seen = []

    modes = []

    def fake_compile(model, mode=None):
        seen.append(model)
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = train(build_models(_small, [0]), _data(), _settings(compile=False), 0)
    assert seen == []
    out = train(build_models(_small, [0]), _data(), _settings(compile=True), 0)
    assert len(seen) == 1 and seen[0] is out.model and modes == [None]
    train(build_models(_small, [0]), _data(), _settings(compile="reduce-overhead"), 0)
    assert modes == [None, "reduce-overhead"]


def test_a_compiled_step_gives_the_eager_numbers_on_the_cpu():
    """torch.compile in reduce-overhead mode (CUDA graphs on a GPU; inductor's C++ on the
    CPU): the same losses as eager, to float tolerance."""
    rows = {}
    for mode in (False, "reduce-overhead"):
        out = train(build_models(_small, [0]), _data(), _settings(epochs=2, compile=mode), 0)
        rows[mode] = out.rows[0]
    for a, b in zip(rows[False], rows["reduce-overhead"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)


def test_eval_transform_is_in_the_state_and_applied_to_evaluation_only():
    see = _See()
    flip = lambda x: x.flip(-1)  # noqa: E731
    plain = train(build_models(_small, [0]), _data(), _settings(), 0)
    flipped = train(build_models(_small, [0]), _data(), _settings(), 0, [see],
                    eval_transform=flip)
    assert see.eval_transform == [flip]
    a, b = plain.rows[0][0], flipped.rows[0][0]
    assert a["train_loss"] == b["train_loss"] and a["test_loss"] != b["test_loss"]


def test_dropout_masks_come_from_each_seeds_stream_not_the_global_generator():
    rows = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        rows.append(train(build_models(_small, [0]), _data(), _settings(), 0).rows[0][0])
    assert rows[0]["train_loss"] == rows[1]["train_loss"]
    # and the dropout is real: without it the loss differs
    nodrop = lambda: nn.Sequential(*[m for m in _small() if not isinstance(m, nn.Dropout)])  # noqa: E731
    plain = train(build_models(nodrop, [0]), _data(), _settings(), 0).rows[0][0]
    assert plain["train_loss"] != rows[0]["train_loss"]


def test_stacked_seeds_with_their_own_data_equal_their_separate_runs():
    datas = [_data(seed=0), _data(seed=1)]
    assert not torch.equal(datas[0].train.x, datas[1].train.x)
    stacked = train(build_models(_small, [0, 1]), datas, _settings(epochs=2), [0, 1])
    for k in range(2):
        alone = train(build_models(_small, [k]), datas[k], _settings(epochs=2), k)
        for a, b in zip(stacked.rows[k], alone.rows[0]):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["test_acc"] == b["test_acc"]


def test_the_loops_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^3 models for 2 seeds$"):
        train(build_models(_small, [0, 1, 2]), _data(), _settings(), [0, 1])
    with pytest.raises(ValueError, match=r"^stacked seeds need training splits of one size$"):
        train(build_models(_small, [0, 1]), [_data(64), _data(32)], _settings(), [0, 1])
    seed_1: list[Checkpoint] = []
    train(build_models(_small, [1]), _data(), _settings(), 1, on_checkpoint=seed_1.append)
    with pytest.raises(ValueError, match=r"^checkpoint of seeds \[1\] cannot resume seeds \[0\]$"):
        train(build_models(_small, [0]), _data(), _settings(), 0, resume=seed_1[0])
    with pytest.raises(loop.Diverged, match=r"^loss became nan in epoch 1$") as e:
        train(build_models(_small, [0]), _data(), _settings(lr=1e30), 0)
    assert e.value.epoch == 1 and e.value.loss != e.value.loss


def test_num_classes_is_given_or_one_more_than_the_largest_label():
    d = _data()
    assert d.num_classes() == int(d.train.y.max()) + 1 == 10
    d.classes = 12
    assert d.num_classes() == 12


class _Steps(Hook):
    """Per optimizer step: batch size, the group's lr and weight decay, the epoch's batches."""

    def __init__(self):
        self.sizes, self.lrs, self.wds, self.batches, self.first_index = [], [], [], [], []

    def on_batch(self, state, x, y):
        self.sizes.append(x.shape[0])
        if state.batch == 0:
            self.first_index.append(state.batch_index.clone())
        return x, y

    def on_before_step(self, state):
        g = state.optimizer.param_groups[0]
        self.lrs.append(g["lr"])
        self.wds.append(g["weight_decay"])
        self.batches.append(state.batches)


@pytest.mark.parametrize("n,drop_last,sizes", [(70, True, [32, 32]), (70, False, [32, 32, 6]),
                                               (20, True, [20]), (64, True, [32, 32])])
def test_drop_last_drops_only_a_short_final_batch(n, drop_last, sizes):
    st = _Steps()
    train(build_models(_small, [0]), _data(n), _settings(drop_last=drop_last), 0, [st])
    assert st.sizes == sizes
    assert st.batches == [len(sizes)] * len(sizes) and all(type(b) is int for b in st.batches)


def test_warmup_ramps_over_its_rounded_steps_and_never_below_one():
    st = _Steps()  # 0.5 epoch of 4 batches: 2 warm-up steps
    train(build_models(_small, [0]), _data(128), _settings(lr=0.1, warmup=0.5), 0, [st])
    assert st.lrs == pytest.approx([0.05, 0.1, 0.1, 0.1])
    st = _Steps()  # 0.1 epoch rounds to 0 steps: one step, at the full lr
    train(build_models(_small, [0]), _data(128), _settings(lr=0.1, warmup=0.1), 0, [st])
    assert st.lrs == pytest.approx([0.1] * 4)


def test_a_weight_decay_schedule_reaches_the_optimizer_per_epoch_or_per_step():
    st = _Steps()
    wd = {"kind": "linear", "start": 0.01, "end": 0.03}
    train(build_models(_small, [0]), _data(64), _settings(epochs=3, weight_decay=wd), 0, [st])
    assert st.wds == pytest.approx([0.01, 0.01, 0.02, 0.02, 0.03, 0.03])
    st = _Steps()
    per_step = {**wd, "per": "step"}
    train(build_models(_small, [0]), _data(64), _settings(epochs=3, weight_decay=per_step), 0,
          [st])
    want = [as_schedule(per_step).value(e + b / 2, 3) for e in range(3) for b in range(2)]
    assert st.wds == pytest.approx(want) and want[1] != want[0]


def test_data_order_and_dropout_draw_from_each_seeds_named_streams():
    """The stream names fix every published number: renaming one changes them all."""
    st = _Steps()

    class Streams(Hook):
        def on_epoch_start(self, state):
            if state.epoch == 0:  # nothing drawn yet
                self.dropout = [g.get_state() for g in state.rng[("dropout", "cpu")]]

    streams = Streams()
    train(build_models(_small, [3, 4]), _data(64), _settings(), [3, 4], [streams, st])
    for k, seed in enumerate([3, 4]):
        perm = torch.randperm(64, generator=generator(seed, "data_order", CPU))
        assert torch.equal(st.first_index[0][k], perm[:32])
        assert torch.equal(streams.dropout[k], generator(seed, "dropout", CPU).get_state())


def test_when_every_seed_diverges_training_stops_and_says_why_for_each():
    out = train(build_models(_small, [0, 1]), _data(), _settings(epochs=3, lr=1e30), [0, 1])
    assert out.diverged == ["loss became nan in epoch 1"] * 2 and out.rows == [[], []]


def test_a_checkpoint_resumes_to_the_uninterrupted_numbers_even_without_its_seed_list():
    s = _settings(epochs=3, lr={"kind": "linear", "start": 0.05, "end": 0.01})
    full = train(build_models(_small, [0, 1]), _data(), s, [0, 1])
    saved = []

    def keep(ckpt):  # as the job does: serialised at once (it holds live tensors)
        buf = io.BytesIO()
        torch.save(ckpt.to_dict(), buf)
        saved.append(buf.getvalue())

    train(build_models(_small, [0, 1]), _data(), s, [0, 1], on_checkpoint=keep)
    ckpt = torch.load(io.BytesIO(saved[0]), weights_only=True)  # after epoch 1
    del ckpt["seeds"]  # a checkpoint written before seeds were recorded
    resumed = train(build_models(_small, [0, 1]), _data(), s, [0, 1],
                    resume=Checkpoint.from_dict(ckpt))
    for a, b in zip(resumed.rows, full.rows):
        assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    # the per-image predictions of the last epoch: equal, and the test accuracy they imply
    for k in range(2):
        assert torch.equal(resumed.predictions[k]["test"], full.predictions[k]["test"])
        y = _data().test.y
        assert (full.predictions[k]["test"] == y).float().mean().item() == pytest.approx(
            full.rows[k][-1]["test_acc"])
    # killed after the last epoch's checkpoint, before the results: nothing left to train,
    # the predictions come back from the checkpoint
    last = Checkpoint.from_dict(torch.load(io.BytesIO(saved[-1]), weights_only=True))
    done = train(build_models(_small, [0, 1]), _data(), s, [0, 1], resume=last)
    assert torch.equal(done.predictions[1]["test"], full.predictions[1]["test"])


class _Counted:
    """Classification plus a made-up extra metric: per sample, how many of 'predicted
    right' and 'y is even' hold, out of 2 (as a pair task counts its two digits)."""

    def __init__(self):
        from sharpen.training.tasks import ClassificationTask

        self.base = ClassificationTask()
        self.loss, self.correct = self.base.loss, self.base.correct

    def extra(self, out, y):
        return {"div": ((out.argmax(1) == y).long() + (y % 2 == 0).long(), 2)}


class _Batches(Hook):
    """Each batch's per-seed mean loss, correct count, labels and indices, as the hooks see them."""

    def __init__(self):
        self.loss, self.correct, self.y, self.index, self.batch = [], [], [], [], []

    def on_loss(self, state, loss, out, y):
        E = state.n_seeds
        self.loss.append(loss.detach().double())
        self.correct.append((out.argmax(1) == y).view(E, -1).sum(1))
        self.y.append(y.clone())
        self.index.append(state.batch_index.clone())
        self.batch.append(state.batch)
        return loss


def test_epoch_metrics_are_the_size_weighted_sums_of_what_each_batch_saw():
    datas = [_data(70, seed=0), _data(70, seed=1)]
    see = _Batches()
    s = _settings(epochs=2, task=_Counted())
    t0 = time.perf_counter()
    out = train(build_models(_small, [0, 1]), datas, s, [0, 1], [see])
    wall = time.perf_counter() - t0
    per_epoch = 3  # batches of 32, 32, 6
    assert see.batch == [0, 1, 2] * 2 and all(type(b) is int for b in see.batch)
    for e in range(2):
        sl = slice(e * per_epoch, (e + 1) * per_epoch)
        sizes = [ix.shape[1] for ix in see.index[sl]]
        assert sizes == [32, 32, 6]
        for k in range(2):
            row = out.rows[k][e]
            # the labels a hook receives are seed k's rows at seed k's drawn indices
            for ix, y in zip(see.index[sl], see.y[sl]):
                b = ix.shape[1]
                assert torch.equal(y[k * b:(k + 1) * b], datas[k].train.y[ix[k]])
            want_loss = sum(float(l[k]) * b for l, b in zip(see.loss[sl], sizes)) / 70
            assert row["train_loss"] == pytest.approx(want_loss, rel=1e-6)
            assert row["train_acc"] == sum(int(c[k]) for c in see.correct[sl]) / 70
            y = datas[k].train.y  # every image once per epoch
            right = sum(int(c[k]) for c in see.correct[sl])
            assert row["train_div"] == (right + int((y % 2 == 0).sum())) / 140
            # images/s counts the epoch's training images over its training time
            assert 0 < row["seconds"] < wall and row["images_per_s"] >= 70 * 2 / row["seconds"]


class _NaNFrom(Hook):
    """Makes seed 0's loss NaN from epoch 2 on (its gradient too)."""

    def on_loss(self, state, loss, out, y):
        if state.epoch >= 1:
            loss = loss + torch.tensor([float("nan"), 0.0])
        return loss


def test_a_diverging_seed_stops_recording_while_the_next_goes_on():
    out = train(build_models(_small, [0, 1]), _data(), _settings(epochs=3), [0, 1], [_NaNFrom()])
    assert out.diverged == ["loss became nan in epoch 2", None]
    assert [len(r) for r in out.rows] == [1, 3]


class _Extra(Hook):
    """Reports a per-seed list, a number for every seed, and a designed loss."""

    def __init__(self, losses: list[float] | None = None):
        self.losses = losses

    def on_epoch_start(self, state):
        state.extra["per_seed"] = [10 + state.epoch, 20 + state.epoch]
        state.extra["shared"] = 0.5

    def on_loss(self, state, loss, out, y):
        if self.losses is None:
            return loss
        return loss - loss.detach() + self.losses[state.epoch]  # value designed, gradient real


def test_on_epoch_gets_each_seeds_row_with_its_extra_values_and_checkpoints_name_the_seeds():
    seen, ckpts = [], []
    out = train(build_models(_small, [0, 1]), _data(), _settings(epochs=2), [0, 1], [_Extra()],
                on_epoch=lambda k, row: seen.append((k, row)),
                on_checkpoint=lambda ckpt: ckpts.append((ckpt.seeds, ckpt.epoch)))
    assert [(k, r["epoch"]) for k, r in seen] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert [r for _, r in seen] == [out.rows[0][0], out.rows[1][0], out.rows[0][1],
                                    out.rows[1][1]]
    assert [(r["per_seed"], r["shared"]) for _, r in seen] == [(10, 0.5), (20, 0.5), (11, 0.5),
                                                               (21, 0.5)]
    assert ckpts == [([0, 1], 1), ([0, 1], 2)]


def test_adaptive_lr_keeps_the_lr_at_exactly_the_threshold():
    """"Less than 3 %" is strict: an improvement of exactly the threshold keeps the lr
    (binary-exact values: 1 → 0.96875 is 3.125 %)."""
    from sharpen.techniques import LrAdaptive

    s = _settings(epochs=4, lr=0.1)
    out = train(build_models(_small, [0]), _data(), s, 0,
                [_Extra([1.0, 0.96875, 0.96, 0.5]), LrAdaptive(0.03125)])
    assert [r["train_loss"] for r in out.rows[0]][:2] == [1.0, 0.96875]
    assert [r["lr"] for r in out.rows[0]] == pytest.approx([0.1, 0.1, 0.1, 0.05])


class _AllRight(_Counted):
    """Every prediction counts as right, and one extra count per sample."""

    def __init__(self):
        super().__init__()
        self.correct = lambda out, y: torch.ones_like(y, dtype=torch.bool)

    def extra(self, out, y):
        return {"one": (torch.ones_like(y), 1)}


def test_a_one_image_training_split_reports_that_images_loss_and_accuracy():
    see = _Batches()
    out = train(build_models(_small, [0]), _data(1), _settings(task=_AllRight()), 0, [see])
    row = out.rows[0][0]
    assert row["train_loss"] == pytest.approx(float(see.loss[0][0]), rel=1e-6)
    assert row["train_acc"] == 1.0 and row["train_one"] == 1.0
