"""checkpoint.pt is one contract (sharpen.training.checkpoint.Checkpoint): the loop makes it,
the job saves and loads it. Here: the file holds the layout the code before the class wrote
(spelt out below, not taken from the class), such a file resumes to the numbers of an
uninterrupted training, older spellings still load, a damaged or format-1 file costs a
restart, and a newer sharpen's file is refused naming the file and its format."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from sharpen.cli import main
from sharpen.data import synthetic
from sharpen.errors import SharpenError
from sharpen.experiments import RunConfig
from sharpen.experiments.job import run_group
from sharpen.techniques import LrAdaptive, ScheduledDropout
from sharpen.training import Checkpoint, Split, TrainData, TrainSettings, build_models, train
from sharpen.training.checkpoint import UnusableCheckpoint

# the keys checkpoint.pt held at 376b05b (loop.py's on_checkpoint dict plus job.py's wall)
LAYOUT_376B05B = ("format", "seeds", "epoch", "model", "optimizer", "rng", "torch_rng",
                  "hooks", "lr_scale", "step", "rows", "diverged", "predictions", "wall")
SEEDS = [0, 1]
# warm-up over two epochs (per step, so the step count matters after a resume), a per-step
# lr schedule, dropout (a random stream) and hooks with state of their own
SETTINGS = dict(epochs=3, batch_size=16, lr={"kind": "linear", "start": 0.05, "end": 0.01,
                                             "per": "step"}, warmup=2.0)


def _data() -> TrainData:
    x, y = synthetic("train", n=64)
    xt, yt = synthetic("test", n=16)
    return TrainData(Split(x, y), Split(xt, yt), None, (0.5,), (0.25,))


def _small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 3, 5, stride=3), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(3 * 8 * 8, 10))


def _hooks() -> list:
    return [ScheduledDropout({"kind": "linear", "start": 0.1, "end": 0.4}), LrAdaptive(0.5)]


def _train(resume: Checkpoint | None = None, on_checkpoint=None):
    return train(build_models(_small, SEEDS), _data(), TrainSettings(**SETTINGS), SEEDS,
                 hooks=_hooks(), on_checkpoint=on_checkpoint, resume=resume)


def _after_epoch_1(tmp_path: Path) -> tuple[Path, object]:
    """The uninterrupted training, and checkpoint.pt as the job saves it after epoch 1."""
    path = tmp_path / "checkpoint.pt"

    def keep(ckpt: Checkpoint) -> None:
        if ckpt.epoch == 1:
            ckpt.save(path)

    return path, _train(on_checkpoint=keep)


def _rows(trained) -> list[list[dict]]:
    return [[{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]
            for rows in trained.rows]


def test_checkpoint_pt_holds_the_layout_of_the_code_before_and_resumes_exactly(tmp_path):
    path, full = _after_epoch_1(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == sorted(LAYOUT_376B05B) and raw["format"] == 2
    assert raw["seeds"] == SEEDS and raw["epoch"] == 1 and raw["step"] == 4
    resumed = _train(resume=Checkpoint.load(path))
    assert _rows(resumed) == _rows(full) and len(full.rows[0]) == 3
    for k in range(2):
        assert torch.equal(resumed.predictions[k]["test"], full.predictions[k]["test"])


def test_a_file_the_code_before_wrote_resumes_and_its_older_spellings_load(tmp_path):
    """The dict is built here key by key as 376b05b's loop and job built it (not by the class),
    also with the older name lr_mult and without seeds, predictions and wall."""
    path, full = _after_epoch_1(tmp_path)
    c = Checkpoint.load(path)
    old = {"format": 2, "seeds": SEEDS, "epoch": c.epoch, "model": c.model,
           "optimizer": c.optimizer, "rng": c.rng, "torch_rng": c.torch_rng, "hooks": c.hooks,
           "lr_scale": c.lr_scale, "step": c.step, "rows": c.rows, "diverged": c.diverged,
           "predictions": c.predictions, "wall": 2.5}
    older = {k: v for k, v in old.items() if k not in ("seeds", "predictions", "wall",
                                                         "lr_scale")}
    older["lr_mult"] = c.lr_scale
    for d, name in ((old, "old.pt"), (older, "older.pt")):
        torch.save(d, tmp_path / name)
        back = Checkpoint.load(tmp_path / name)
        assert back.wall == d.get("wall", 0.0) and back.seeds == d.get("seeds")
        assert _rows(_train(resume=back)) == _rows(full), name


def test_a_damaged_or_format_1_file_costs_a_restart_and_a_newer_one_is_refused(tmp_path):
    path, _ = _after_epoch_1(tmp_path)
    whole = torch.load(path, weights_only=True)
    cases = {"cut.pt": {k: v for k, v in whole.items() if k != "optimizer"},
             "list.pt": [1, 2], "format1.pt": {k: v for k, v in whole.items() if k != "format"}}
    for name, d in cases.items():
        torch.save(d, tmp_path / name)
    (tmp_path / "bytes.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    for name, why in (("cut.pt", "is unreadable"), ("list.pt", "is unreadable"),
                      ("bytes.pt", "is unreadable"),
                      ("format1.pt", "was written by an older sharpen (its optimizer state is "
                                     "not per seed)")):
        with pytest.raises(UnusableCheckpoint) as e:
            Checkpoint.load(tmp_path / name)
        assert str(e.value) == why, name
    torch.save({**whole, "format": 3}, tmp_path / "newer.pt")
    with pytest.raises(SharpenError, match=r"^.*newer\.pt: checkpoint format 3 was written by a "
                                           r"newer sharpen \(this one reads format 2\)"):
        Checkpoint.load(tmp_path / "newer.pt")


def _cfg() -> RunConfig:
    return RunConfig.model_validate(dict(dataset="synthetic", train_size=60, test_size=30,
                                         val_size=0, epochs=2, batch_size=30, model="lenet5",
                                         threads=1, device="cpu"))


def test_a_checkpoint_missing_a_field_trains_the_group_again_from_epoch_1(tmp_path, capsys):
    run = tmp_path / "seed-0"
    run.mkdir()
    torch.save({"format": 2, "seeds": [0], "epoch": 1, "rows": [[{"epoch": 1}]]},
               run / "checkpoint.pt")
    res = run_group(_cfg(), "a", [0], [run])[0]
    assert res["status"] == "ok" and res["epochs_done"] == 2
    assert f"sharpen: {run / 'checkpoint.pt'} is unreadable; training seeds [0] of arm 'a' " \
           "again from epoch 1" in capsys.readouterr().err
    with (run / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


def test_a_checkpoint_that_does_not_fit_its_run_trains_again_from_epoch_1(tmp_path, capsys,
                                                                          monkeypatch):
    """A checkpoint whose epoch lies beyond the run's epochs was resumed: the 2-epoch run
    finished 'ok' after the 1 epoch it held (epochs_done 1), silently; rows of other seeds
    were taken too. Either costs a restart, said."""
    kept, save = tmp_path / "kept.pt", Checkpoint.save

    def keep(ckpt: Checkpoint, path) -> None:
        save(ckpt, path)
        if ckpt.epoch == 1:
            save(ckpt, kept)

    monkeypatch.setattr(Checkpoint, "save", keep)
    straight = run_group(_cfg(), "a", [0], [tmp_path / "straight"])[0]
    monkeypatch.setattr(Checkpoint, "save", save)
    d = torch.load(kept, weights_only=True)
    for name, edit, why in [
            ("late", {"epoch": 5}, "holds epoch 5, outside this run's 1..2"),
            ("rows", {"rows": d["rows"] * 2}, "holds epoch rows ([1, 1]) that do not fit 1 "
                                              "seed(s) after epoch 1")]:
        run = tmp_path / name
        run.mkdir()
        torch.save({**d, **edit}, run / "checkpoint.pt")
        res = run_group(_cfg(), "a", [0], [run])[0]
        assert (res["status"], res["epochs_done"]) == ("ok", 2)
        assert res["test_acc"] == straight["test_acc"]
        assert f"sharpen: {run / 'checkpoint.pt'} {why}; training seeds [0] of arm 'a' again " \
               "from epoch 1" in capsys.readouterr().err


EXP = """name = "ck"
dataset = "synthetic"
train_size = 60
test_size = 30
val_size = 0
epochs = 2
batch_size = 30
model = "lenet5"
threads = 1
"""


def test_sharpen_run_refuses_a_newer_sharpens_checkpoint_naming_file_and_format(tmp_path,
                                                                                 capsys):
    """Resuming a format this sharpen does not know could only guess: the run stops with
    the file and its format named, and the file is kept for the sharpen that wrote it."""
    exp = tmp_path / "ck.toml"
    exp.write_text(EXP)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    seed = out / "runs" / "default" / "seed-0"
    (seed / "result.json").unlink()
    ckpt = seed / "checkpoint.pt"
    torch.save({"format": 3, "seeds": [0], "epoch": 1}, ckpt)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"sharpen: error: {ckpt}: checkpoint format 3 was written by a newer sharpen " \
           "(this one reads format 2)" in err, err
    assert ckpt.exists() and not (seed / "result.json").exists()
