"""Every source of randomness is a named stream that follows the run seed or is pinned
(issue 35, item 1): the key ``vary`` names the streams that follow; the rest draw the same
numbers for every seed (``split`` from ``split_seed``, the others from ``pin_seed``).

Checked on what each stream does to training, not on its plan: two stacked seeds trained
through the real loop see the same batches (after every technique's ``on_batch``), batch
order, model outputs or data when the stream is pinned, and different ones when it alone
follows the seed. The split stream changes which images are held out and nothing else
(a run with the split following seed s equals, file for file, a run whose pinned
``split_seed`` is that seed's split seed); stacked seeds with their own splits equal the
same seeds trained alone; and an old run directory resumes and rebuilds unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sharpen.cli import main
from sharpen.data import synthetic
from sharpen.training.streams import STREAMS, Streams, stream_seed

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "sharpen"
TIMING = {"seconds", "images_per_s"}


# --- the policy ------------------------------------------------------------------------

def test_a_pinned_stream_draws_the_same_numbers_for_every_seed_and_the_others_their_own():
    def draws(streams: Streams, seed: int, name: str) -> torch.Tensor:
        return torch.rand(16, generator=streams.generator(seed, name))

    default = Streams()
    for name in STREAMS:  # today's behaviour: every stream but split follows the seed
        same = torch.equal(draws(default, 0, name), draws(default, 1, name))
        assert same == (name == "split"), name
    assert default.seed(5, "split") == 0 and Streams(split_seed=7).seed(5, "split") == 7
    assert default.seed(5, "init") == stream_seed(5, "init")  # the documented hash, unchanged
    everything = Streams("all")
    assert all(everything.follows(s) for s in STREAMS + ("my_own_stream",))
    assert everything.seed(5, "split") == stream_seed(5, "split")
    for pinned in STREAMS:
        vary = [s for s in STREAMS if s != pinned]
        st = Streams(vary, pin_seed=11, split_seed=3)
        assert torch.equal(draws(st, 0, pinned), draws(st, 1, pinned)), pinned
        want = 3 if pinned == "split" else stream_seed(11, pinned)
        assert st.seed(0, pinned) == st.seed(9, pinned) == want
        for other in vary:
            assert not torch.equal(draws(st, 0, other), draws(st, 1, other)), (pinned, other)
    # a list pins a user's own stream too; "all" lets it follow
    assert not Streams(["init"]).follows("my_own_stream")


def test_every_stream_the_bundled_code_draws_from_is_a_documented_stream():
    """Read from the source: generators("x"), rand("x"), .generator(seed, "x"),
    .seed(s, "x") in the trainer, the data and the bundled techniques, and the streams the
    batch-mixing techniques draw from under their own name."""
    from sharpen.techniques.mixup import BatchMixing

    pat = re.compile(r'(?:generators|rand)\(\s*"(\w+)"|\.(?:generator|seed)\([^,()]+,\s*"(\w+)"')
    drawn = {}
    for d in ("techniques", "training", "data"):
        for p in sorted((SRC / d).rglob("*.py")):
            for m in pat.finditer(p.read_text()):
                drawn.setdefault(next(n for n in m.groups() if n), p.name)
    drawn.update({c.name: "mixup.py" for c in BatchMixing.__subclasses__()})
    assert {"data_order", "dropout", "init", "split", "pairs", "flip", "crop", "cutout",
            "mixup", "cutmix", "sharpen_mix", "deblur", "erasing"} <= set(drawn)
    for name, where in drawn.items():
        assert name in STREAMS, f"{where} draws from stream {name!r}, not in STREAMS"


@pytest.mark.parametrize("value, said", [
    ('["init", "spilt"]', "unknown random stream 'spilt'"),
    ('"init"', 'must be a list of stream names or "all"'),
    ("[]", "an empty list pins every stream"),
])
def test_vary_refuses_an_unknown_stream_naming_the_key_the_value_and_the_names(
        tmp_path, capsys, value, said):
    exp = tmp_path / "e.toml"
    exp.write_text(f'name = "e"\ndataset = "mnist-sample"\nepochs = 1\nvary = {value}\n'
                   '[arms.a]\nmodel = "lenet5"\n')
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{exp}: field vary: {said}" in err and "data_order" in err and '"all"' in err, err
    assert not (tmp_path / "o" / "runs").exists()


def test_the_protocol_fingerprint_of_a_default_arm_is_the_one_it_always_was():
    from sharpen.experiments.config import RunConfig
    from sharpen.rundir import PROTOCOL_KEYS, fingerprint

    arm = json.loads(RunConfig(train_size=100, val_size=20).model_dump_json())
    old = hashlib.sha256(json.dumps({k: arm.get(k) for k in PROTOCOL_KEYS},
                                    sort_keys=True).encode()).hexdigest()[:12]
    assert fingerprint(arm) == old
    assert fingerprint({**arm, "vary": ["init"]}) == old  # the split is still the pinned one
    assert fingerprint({**arm, "vary": ["split"]}) != old  # seeds hold out their own images
    assert fingerprint({**arm, "vary": "all"}) == fingerprint({**arm, "vary": ["split"]})


# --- what each stream does to training, through the loop ---------------------------------

# stream -> (run keys that make something draw from it, model, what to look at)
LOOP_STREAMS: dict[str, tuple[dict[str, Any], str, str]] = {
    "data_order": ({}, "lenet5", "index"),
    "init": ({}, "lenet5", "out"),
    "dropout": ({}, "lenet5_dropout", "out"),
    "sharpen_mix": ({"blur_n": 5, "blur_mode": "mixed", "blur_mix": 0.5}, "lenet5", "batch"),
    "deblur": ({"blur_sigma": 1.5, "blur_p": 0.5}, "lenet5", "batch"),
    "erasing": ({"random_erasing": True, "erase_p": 0.5}, "lenet5", "batch"),
    "crop": ({"crop_pad": 2, "crop_p": 0.5}, "lenet5", "batch"),
    "flip": ({"flip_p": 0.5}, "lenet5", "batch"),
    "cutout": ({"cutout_size": 8, "cutout_p": 0.5}, "lenet5", "batch"),
    "mixup": ({"mixup_alpha": 1.0, "mixup_p": 0.5}, "lenet5", "batch"),
    "cutmix": ({"cutmix_alpha": 1.0, "cutmix_p": 0.5}, "lenet5", "batch"),
}
# what else a look depends on (pinned too when the stream is, so the look shows it alone)
ALSO = {"index": set(), "batch": {"data_order"}, "out": {"data_order", "init", "dropout"}}


def _observe(keys: dict[str, Any], model: str, vary: list[str] | str) -> dict[str, list]:
    """Two seeds stacked, one epoch of 8 batches of identical data: per seed, every batch's
    indices, images and targets after every hook, and the model's output."""
    from sharpen.experiments.config import RunConfig
    from sharpen.models import create_model
    from sharpen.techniques import techniques_for
    from sharpen.training import Hook, Split, TrainData, TrainSettings, build_models, train

    cfg = RunConfig.model_validate({"dataset": "synthetic", "epochs": 1, "batch_size": 8,
                                    "model": model, "vary": vary, **keys})
    x, y = synthetic("train", n=64)
    xt, yt = synthetic("test", n=20)
    data = TrainData(Split(x, y), Split(xt, yt), None, (0.5,), (0.25,), classes=10)
    seen: dict[str, list] = {"index": [], "batch": [], "out": []}

    class Look(Hook):
        stacks = True

        def on_batch(self, state, xb, yb):
            seen["index"].append(state.batch_index.clone())
            seen["batch"].append((state.per_seed(xb).clone(), state.per_seed(yb).clone()))
            return xb, yb

        def on_loss(self, state, loss, out, yb):
            seen["out"].append(state.per_seed(out.detach()).clone())
            return loss

    seeds = [0, 1]
    models = build_models(lambda: create_model(model), seeds, Streams.of(cfg))
    train(models, data, TrainSettings.from_config(cfg), seeds,
          hooks=[*techniques_for(cfg), Look()])
    return seen


def _same_for_both_seeds(seen: dict[str, list], look: str) -> bool:
    def rows(k: int) -> list[torch.Tensor]:
        out = []
        for item in seen[look]:
            out += [t[k] for t in item] if isinstance(item, tuple) else [item[k]]
        return out

    return all(torch.equal(a, b) for a, b in zip(rows(0), rows(1), strict=True))


@pytest.mark.parametrize("stream", list(LOOP_STREAMS))
def test_a_pinned_stream_does_the_same_to_both_seeds_and_alone_following_it_tells_them_apart(
        stream):
    keys, model, look = LOOP_STREAMS[stream]
    also = ALSO[look] - {stream}
    # pinned: every other stream follows the seed (but those the look also depends on)
    pinned = _observe(keys, model, [s for s in STREAMS if s != stream and s not in also])
    assert _same_for_both_seeds(pinned, look), f"{stream} pinned, yet the seeds differ"
    if look != "out":  # the others really follow: the two seeds' models differ
        assert not _same_for_both_seeds(pinned, "out")
    alone = _observe(keys, model, [stream])  # the only stream that follows the seed
    assert not _same_for_both_seeds(alone, look), f"{stream} follows the seed, yet no effect"


# --- the split stream, through sharpen run -------------------------------------------------

SPLIT_EXP = """
name = "split"
dataset = "mnist-sample"
train_size = 100
val_size = 30
test_size = 60
eval_batch_size = 70
epochs = 1
batch_size = 32

[arms.a]
model = "lenet5_dropout"
optimizer = "sgd"
lr = 0.05
crop_pad = 2
"""


@pytest.fixture
def no_figures(monkeypatch):
    """The report's figures cost seconds per invocation and say nothing about a seed."""
    from sharpen.reports import curriculum, report

    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)
    monkeypatch.setattr(curriculum, "curriculum_figures", lambda *a, **k: [])


def _run(exp: Path, out: Path, *args: str) -> None:
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--workers", "1", *args]) == 0


def _files(run: Path) -> dict[str, Any]:
    with (run / "metrics.csv").open(newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]
    return {"metrics.csv": rows, "predictions.npz": (run / "predictions.npz").read_bytes()}


def _held_out(run: Path) -> np.ndarray:
    with np.load(run / "predictions.npz") as z:
        return {k: z[k] for k in z.files}


def test_the_split_stream_changes_which_images_are_held_out_and_nothing_else(tmp_path):
    from sharpen.data import load
    from sharpen.data.prepare import build_data
    from sharpen.experiments.config import RunConfig

    cfg = RunConfig.model_validate({"dataset": "mnist-sample", "train_size": 100,
                                    "val_size": 30, "test_size": 60, "split_seed": 4,
                                    "vary": ["split"]})
    d0, d1 = (build_data(cfg, torch.device("cpu"), s) for s in (0, 1))
    pinned = [build_data(cfg.model_copy(update={"vary": None}), torch.device("cpu"), s)
              for s in (0, 1)]
    # pinned (the default): both seeds hold today's split, computed here by hand
    x, y = load("mnist-sample", "train")
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(4))[:130].sort().values
    perm = torch.randperm(130, generator=torch.Generator().manual_seed(4))
    for d in pinned:
        assert torch.equal(d.val.x, x[keep][perm[:30].sort().values])
        assert torch.equal(d.train.x, x[keep][perm[30:].sort().values])
    # following the seed: each seed its own subset and validation images, the same test set
    assert not torch.equal(d0.val.x, d1.val.x) and not torch.equal(d0.train.x, d1.train.x)
    for d in (d0, d1):
        assert torch.equal(d.test.x, pinned[0].test.x) and torch.equal(d.test.y, pinned[0].test.y)
        assert (len(d.train), len(d.val)) == (100, 30)
    # ... drawn as the pinned split is, from the seed's split stream
    s1 = stream_seed(1, "split")
    by_hand = build_data(cfg.model_copy(update={"vary": None, "split_seed": s1}),
                         torch.device("cpu"), 0)
    assert torch.equal(by_hand.val.x, d1.val.x) and torch.equal(by_hand.train.y, d1.train.y)


def test_pinned_digit_pairs_are_the_same_pairs_for_every_seed():
    from sharpen.data.prepare import build_data, uses_seed
    from sharpen.experiments.config import RunConfig

    base = {"dataset": "mnist-sample", "pairs": 60, "pairs_test": 40, "val_size": 20,
            "model": "sub_lenet5_ws_al"}
    def same(vary: Any) -> list[bool]:  # seeds 0 and 1: the same train, val, test pairs?
        cfg = RunConfig.model_validate({**base, "vary": vary})
        assert uses_seed(cfg)
        d0, d1 = (build_data(cfg, torch.device("cpu"), s) for s in (0, 1))
        return [torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
                for a, b in ((d0.train, d1.train), (d0.val, d1.val), (d0.test, d1.test))]

    assert same([s for s in STREAMS if s not in ("pairs", "split")]) == [True] * 3
    assert same(["pairs"]) == same(None) == [False] * 3
    # the same pairs drawn, held out differently: the split follows the seed
    assert same([s for s in STREAMS if s != "pairs"]) == [False, False, True]


def test_a_run_whose_split_follows_the_seed_equals_one_with_that_split_pinned(tmp_path, no_figures):
    """vary = "all" differs from the default by the split alone: seed 3 with the split
    following the seed trains, file for file, as seed 3 with the split pinned to seed 3's
    split seed. The report says what varied."""
    exp = tmp_path / "e.toml"
    exp.write_text(SPLIT_EXP)
    _run(exp, tmp_path / "all", "--runs", "1", "--set", "seed=3", "--set", 'vary="all"')
    _run(exp, tmp_path / "pinned", "--runs", "1", "--set", "seed=3",
         "--set", f"split_seed={stream_seed(3, 'split')}")
    _run(exp, tmp_path / "default", "--runs", "1", "--set", "seed=3")
    run = Path("runs") / "a" / "seed-3"
    assert _files(tmp_path / "all" / run) == _files(tmp_path / "pinned" / run)
    assert _files(tmp_path / "all" / run) != _files(tmp_path / "default" / run)
    report = (tmp_path / "all" / "report.md").read_text()
    assert "Random streams: every stream follows the seed" in report
    assert "Random streams" not in (tmp_path / "default" / "report.md").read_text()


def test_stacked_seeds_with_their_own_splits_equal_the_same_seeds_alone(tmp_path, no_figures):
    exp = tmp_path / "e.toml"
    exp.write_text(SPLIT_EXP + 'vary = ["split", "init", "data_order", "dropout", "crop"]\n')
    _run(exp, tmp_path / "stack", "--runs", "3", "--set", "stack_seeds=3")
    res = json.loads((tmp_path / "stack" / "runs" / "a" / "seed-2" / "result.json").read_text())
    assert res["stacked_seeds"] == 3
    held = []
    for s in range(3):
        _run(exp, tmp_path / f"alone-{s}", "--runs", "1", "--set", f"seed={s}")
        run = Path("runs") / "a" / f"seed-{s}"
        assert _files(tmp_path / "stack" / run) == _files(tmp_path / f"alone-{s}" / run), s
        held.append(_held_out(tmp_path / "stack" / run))
    # each seed held out its own validation images (their labels' order tells them apart)
    # and was tested on the same test images
    assert not np.array_equal(held[0]["val_label"], held[1]["val_label"])
    assert np.array_equal(held[0]["test_label"], held[2]["test_label"])


def test_an_old_run_directory_resumes_and_rebuilds_unchanged(tmp_path, monkeypatch):
    """A folder made before ``vary`` existed: `sharpen run DIR` takes it for the same
    configuration (the default vary is what it trained with: a changed default would be
    refused as another configuration), finds every run finished and trains none, and its
    report then rebuilds byte for byte (as every folder of docs/results: test_stats)."""
    from sharpen.reports import curriculum, report

    old = ROOT / "docs" / "results" / "pairs-sublenet-quick"  # pairs: per-seed data
    copy = tmp_path / old.name
    shutil.copytree(old, copy)
    cfg = json.loads((old / "config.json").read_text())
    assert all("vary" not in a and "pin_seed" not in a for a in cfg["arms"].values())
    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)  # seconds, no number
    monkeypatch.setattr(curriculum, "curriculum_figures", lambda *a, **k: [])
    assert main(["run", str(copy), "--quiet", "--workers", "1"]) == 0
    assert (copy / "results.csv").read_bytes() == (old / "results.csv").read_bytes()
    for r in sorted((old / "runs").glob("*/*/*")):
        assert (copy / r.relative_to(old)).read_bytes() == r.read_bytes(), r
    monkeypatch.undo()
    report.write_report(copy)
    assert (copy / "table.csv").read_bytes() == (old / "table.csv").read_bytes()

    def said(d: Path) -> tuple[list[str], dict[str, Any]]:  # but this invocation's record
        lines = [ln for ln in (d / "report.md").read_text().splitlines()
                 if not ln.startswith("Wall time:")]
        summary = json.loads((d / "summary.json").read_text())
        return lines, {k: v for k, v in summary.items() if k not in ("environment", "provenance")}

    assert said(copy) == said(old)
