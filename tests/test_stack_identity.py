"""A seed's files do not depend on what trains beside it (issue 32, item 8).

Through ``sharpen run``: a seed trained alone, in stacks of 2, 5 and 10, in a directory
grown from ``--runs 2`` to ``--runs 5``, and with ``--arms`` naming one arm gives the same
``metrics.csv`` (every column but the wall-clock ``seconds`` and ``images_per_s``), the same
bytes of ``predictions.npz``, and the same ``result.json`` but for its timings and the
record of how it ran (``plan``, ``stacked_seeds``), which is checked to name the group the
seed really trained in. The arms cover what rounds differently when batched: LeNet-5 (tanh,
SGD with momentum), LeNet-5 + dropout with Adam, mixed sharpening and crop/flip
augmentation (per-seed random streams), and the CIFAR net (BatchNorm, dropout, gradient
clipping, randomized deblurring). Evaluation chunks of 7 images leave a 4-image chunk and
the training split a 4-image batch: the small-batch kernels are exercised too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from sharpen.cli import main

EXP = """
name = "ident"
dataset = "mnist-sample"
train_size = 100
val_size = 30
test_size = 60
eval_batch_size = 70
epochs = 2
batch_size = 32
runs = 2

[arms.lenet5]
model = "lenet5"
optimizer = "sgd"
lr = 0.05

[arms.sharpening]
model = "lenet5_dropout"
optimizer = "adam"
lr = 0.003
blur_n = 5
blur_mode = "mixed"
blur_mix = { kind = "linear", start = 0.8, end = 0.2 }
crop_pad = 2
flip_p = 0.5

[arms.nin]
model = "nin_cifar"
optimizer = "sgd"
lr = 0.05
weight_decay = 0.0005
grad_clip = 1.0
blur_sigma = { kind = "linear", start = 1.5, end = 0.0 }
blur_p = 0.5
"""
ARMS = ("lenet5", "sharpening", "nin")
TIMING = {"seconds", "images_per_s"}  # wall clock: differs between any two trainings
HOW = {"plan", "stacked_seeds"}  # how the seed ran: checked against its group instead


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """The report's figures cost seconds per invocation and say nothing about a seed."""
    from sharpen.reports import curriculum, report

    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)
    monkeypatch.setattr(curriculum, "curriculum_figures", lambda *a, **k: [])


def _run(exp: Path, out: Path, *args: str) -> None:
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--workers", "1", *args]) == 0


def _files(run: Path) -> dict[str, Any]:
    res = json.loads((run / "result.json").read_text())
    assert res["status"] == "ok", res
    with (run / "metrics.csv").open(newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]
    return {"result.json": {k: v for k, v in res.items() if k not in TIMING | HOW},
            "metrics.csv": rows, "predictions.npz": (run / "predictions.npz").read_bytes()}


def _group(run: Path) -> list[int]:
    res = json.loads((run / "result.json").read_text())
    assert res["stacked_seeds"] == len(res["plan"]["group"])
    return res["plan"]["group"]


def test_a_seed_gives_the_same_files_alone_stacked_grown_and_with_fewer_arms(tmp_path):
    exp = tmp_path / "ident.toml"
    exp.write_text(EXP)
    for s in (1, 4):  # each seed alone: a one-seed experiment starting at it
        _run(exp, tmp_path / f"alone-{s}", "--runs", "1", "--set", f"seed={s}")
    _run(exp, tmp_path / "stack10", "--runs", "10", "--set", "stack_seeds=10")
    _run(exp, tmp_path / "stack5", "--runs", "5", "--set", "stack_seeds=5")
    grown = tmp_path / "grown"  # --runs 2 (one group of 2), then grown to 5 seeds
    _run(exp, grown, "--runs", "2", "--set", "stack_seeds=3")
    _run(exp, grown, "--runs", "5", "--set", "stack_seeds=3")
    _run(exp, tmp_path / "one-arm", "--runs", "5", "--arms", "nin")

    where = {"stack10": ARMS, "stack5": ARMS, "grown": ARMS, "one-arm": ("nin",)}
    groups = {"stack10": {1: list(range(10)), 4: list(range(10))},
              "stack5": {1: list(range(5)), 4: list(range(5))},
              "grown": {1: [0, 1], 4: [3, 4]},  # seed 2 trains alone: its group's rest ran
              "one-arm": {}}
    compared = 0
    for s in (1, 4):
        for arm in ARMS:
            ref = _files(tmp_path / f"alone-{s}" / "runs" / arm / f"seed-{s}")
            assert ref["predictions.npz"] and len(ref["metrics.csv"]) == 2
            assert _group(tmp_path / f"alone-{s}" / "runs" / arm / f"seed-{s}") == [s]
            for name, arms in where.items():
                if arm not in arms:
                    continue
                run = tmp_path / name / "runs" / arm / f"seed-{s}"
                got = _files(run)
                for what in ref:
                    assert got[what] == ref[what], f"{arm} seed {s}: {what} {name} ≠ alone"
                if s in groups[name]:
                    assert _group(run) == groups[name][s], (name, arm, s)
                compared += 1
    assert compared == 2 * (3 * len(ARMS) + 1)
    # the seeds really differ (each its own initialisation and streams)
    one = tmp_path / "stack10" / "runs" / "nin"
    assert _files(one / "seed-1")["metrics.csv"] != _files(one / "seed-4")["metrics.csv"]


def test_a_grown_directory_records_the_groups_that_trained(tmp_path):
    """``--runs 2`` then ``--runs 5`` with stacks of up to 3: seeds 0-1 trained as one
    group, then 2 (the rest of the planned [0, 1, 2]) and [3, 4]. config.json and each
    result.json say so, not the regrouping [[0, 1, 2], [3, 4]] that never ran; a third
    invocation finds everything done and keeps that record."""
    exp = tmp_path / "ident.toml"
    exp.write_text(EXP.replace("epochs = 2", "epochs = 1"))
    out = tmp_path / "grown"
    for runs in ("2", "5", "5"):
        _run(exp, out, "--runs", runs, "--set", "stack_seeds=3", "--arms", "lenet5")
        plan = json.loads((out / "config.json").read_text())["plan"]["arms"]["lenet5"]
        want = [[0, 1]] if runs == "2" else [[0, 1], [2], [3, 4]]
        assert plan["groups"] == want
        for g in want:
            for s in g:
                assert _group(out / "runs" / "lenet5" / f"seed-{s}") == g
        assert plan["threads"] == 1


def test_stacked_equals_alone_with_two_threads_too():
    """An explicit ``threads = 2`` is the user's choice of rounding; within it a seed still
    does not depend on its partners: every matrix product is its seed's own call (a batched
    one splits 6- and 7-row products across threads by the whole stack's shape). The last
    training batch holds 6 images per seed and the last evaluation chunk 2."""
    import torch

    from sharpen.data import synthetic
    from sharpen.models import create_model
    from sharpen.training import Split, TrainData, TrainSettings, build_models, train

    x, y = synthetic("train", n=206)
    xt, yt = synthetic("test", n=107)
    data = TrainData(Split(x, y), Split(xt, yt), None, (0.5,), (0.25,))
    settings = TrainSettings(epochs=1, batch_size=40, optimizer="sgd", lr=0.05,
                             eval_batch_size=70)

    def rows(seeds: list[int]) -> list[list[dict[str, Any]]]:
        models = build_models(lambda: create_model("lenet5"), seeds)
        out = train(models, data, settings, seeds)
        return [[{k: v for k, v in r.items() if k not in TIMING} for r in rs] for rs in out.rows]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stacked = rows(list(range(10)))
        for k in (0, 9):
            assert stacked[k] == rows([k])[0], f"seed {k}"
    finally:
        torch.set_num_threads(before)


def test_a_checkpoint_of_the_older_format_trains_again_from_epoch_1(tmp_path, capsys):
    """Its optimizer state is per stacked parameter, not per seed slice: loading it into the
    per-seed optimizer would pair momentum buffers with the wrong tensors."""
    import torch

    from sharpen.experiments import RunConfig
    from sharpen.experiments.job import run_group

    cfg = RunConfig.model_validate(dict(dataset="synthetic", train_size=60, test_size=30,
                                        val_size=0, epochs=2, batch_size=30, model="lenet5",
                                        threads=1, device="cpu"))
    run = tmp_path / "seed-0"
    run.mkdir()
    torch.save({"seeds": [0], "epoch": 1, "rows": [[{"epoch": 1}]]}, run / "checkpoint.pt")
    res = run_group(cfg, "a", [0], [run])[0]
    assert res["status"] == "ok" and res["epochs_done"] == 2
    assert "written by an older sharpen" in capsys.readouterr().err
    with (run / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]  # trained, not resumed
