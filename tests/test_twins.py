"""Twin runs: an arm a grid's keys do not touch is trained once per group of seeds and copied
into the other cells; the copies must be the numbers a training gives, and arms the keys do
change must never be copied."""

from __future__ import annotations

import json

import pytest

from sharpen.experiments import load_experiment
from sharpen.experiments.runner import run_experiment
from sharpen.experiments.twins import inert_keys
from sharpen.io import read_csv

GRID = """
name = "twins"
dataset = "synthetic"
train_size = 80
test_size = 40
val_size = 0
epochs = 3
batch_size = 40
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 2
runs = 2
model = "lenet5_dropout"
grid = { blur_stages = [1, 2] }

[arms.baseline]

[arms.sharpening]
blur_n = "stages"
stage_epochs = 1
"""


def _numbers(out, arm: str, seed: int) -> tuple[dict, list[dict]]:
    d = out / "runs" / arm / f"seed-{seed}"
    res = json.loads((d / "result.json").read_text())
    keep = {k: res[k] for k in ("test_acc", "train_acc", "train_loss", "test_loss", "gap",
                                "epochs_done", "plan", "status")}
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
            for r in read_csv(d / "metrics.csv")]
    return keep, rows


def test_inert_keys_are_those_of_techniques_that_are_off(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text(GRID)
    exp = load_experiment(str(p))
    base = exp.arms["baseline__blur_stages-1"]
    sharp = exp.arms["sharpening__blur_stages-1"]
    assert {"blur_n", "blur_stages", "stage_epochs"} <= inert_keys(base)
    assert not {"blur_n", "blur_stages", "stage_epochs"} & inert_keys(sharp)
    assert not {"lr", "epochs", "model", "batch_size"} & inert_keys(base)


@pytest.mark.parametrize("how", ["one invocation", "cell by cell"])
def test_a_twin_is_copied_and_equals_its_own_training(tmp_path, how):
    p = tmp_path / "g.toml"
    p.write_text(GRID)
    out = tmp_path / "grid"
    exp = load_experiment(str(p))
    if how == "one invocation":
        run_experiment(exp, out, quiet=True, workers=1)
    else:  # the --until-decided way: each cell its own invocation, the twin already on disk
        for k in (1, 2):
            arms = {a: c for a, c in exp.arms.items() if a.endswith(f"-{k}")}
            run_experiment(exp.model_copy(update={
                "arms": arms, "cells": {a: exp.cells[a] for a in arms}}), out, quiet=True,
                workers=1)
    copied = json.loads((out / "runs" / "baseline__blur_stages-2" / "seed-0" /
                         "result.json").read_text())
    assert copied["twin_of"] == "baseline__blur_stages-1"
    assert copied["arm"] == "baseline__blur_stages-2" and copied["grid_blur_stages"] == 2
    assert copied["base_arm"] == "baseline"
    assert "Twin runs: 2 of the results are copies of runs a twin arm trained" in \
        (out / "report.md").read_text()
    # the arm the grid changes trained in both cells, and differs between them
    for k in (1, 2):
        res = json.loads((out / "runs" / f"sharpening__blur_stages-{k}" / "seed-0" /
                          "result.json").read_text())
        assert "twin_of" not in res
    assert _numbers(out, "sharpening__blur_stages-1", 0) != \
        _numbers(out, "sharpening__blur_stages-2", 0)
    # an independent training of the second cell's baseline alone gives the copied numbers
    alone = exp.model_copy(update={"arms": {"baseline__blur_stages-2":
                                            exp.arms["baseline__blur_stages-2"]},
                                   "cells": {"baseline__blur_stages-2":
                                             exp.cells["baseline__blur_stages-2"]}})
    run_experiment(alone, tmp_path / "alone", quiet=True, workers=1)
    for seed in (0, 1):
        assert _numbers(out, "baseline__blur_stages-2", seed) == \
            _numbers(tmp_path / "alone", "baseline__blur_stages-2", seed)
    assert "twin_of" not in json.loads((tmp_path / "alone" / "runs" / "baseline__blur_stages-2"
                                        / "seed-0" / "result.json").read_text())
    # results.csv does not tell a copy from a training
    rows = {r["arm"]: r for r in read_csv(out / "results.csv") if r["seed"] == "0"}
    a, b = rows["baseline__blur_stages-1"], rows["baseline__blur_stages-2"]
    assert {k: v for k, v in a.items() if k not in ("arm", "grid_blur_stages")} == \
        {k: v for k, v in b.items() if k not in ("arm", "grid_blur_stages")}


def test_a_copied_run_is_never_the_source_of_another_copy_and_resume_keeps_it(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text(GRID.replace("blur_stages = [1, 2]", "blur_stages = [1, 2, 3]")
                 .replace("epochs = 3", "epochs = 4"))
    exp = load_experiment(str(p))
    out = tmp_path / "grid"
    run_experiment(exp, out, quiet=True, workers=1)
    for k in (2, 3):
        res = json.loads((out / "runs" / f"baseline__blur_stages-{k}" / "seed-1" /
                          "result.json").read_text())
        assert res["twin_of"] == "baseline__blur_stages-1"
    before = (out / "results.csv").read_text()
    run_experiment(exp, out, quiet=True, workers=1)  # a resume: everything finished
    assert (out / "results.csv").read_text() == before
