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
    # a key two techniques own (sharpening's and deblurring's `padding`) is inert only when
    # both are off: sharpening uses it although deblurring, which also owns it, is off
    assert "padding" in inert_keys(base) and "padding" not in inert_keys(sharp)


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


# ---- the twin rules one by one, on run folders written by hand (no training) ------------

def _fake(root, arm: str, seed: int, group, status: str = "ok", **extra) -> None:
    d = root / "runs" / arm / f"seed-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    res = {"status": status, "arm": arm, "seed": seed, "test_acc": 0.5 + seed / 100,
           **({"plan": {"group": list(group), "stack": len(group), "threads": 1}}
              if group is not None else {}), **extra}
    (d / "result.json").write_text(json.dumps(res))


def test_trained_group_needs_every_seed_finished_by_a_training_of_that_very_group(tmp_path):
    from sharpen.experiments.twins import trained_group
    from sharpen.rundir import RunDir

    rd = RunDir(tmp_path)
    for s in (0, 1):
        _fake(tmp_path, "a", s, (0, 1))
    assert trained_group(rd, "a", (0, 1))
    assert not trained_group(rd, "a", (0, 1, 2))  # seed 2 never ran
    assert not trained_group(rd, "b", (0, 1))  # nor did the arm
    _fake(tmp_path, "c", 0, (0, 1))
    _fake(tmp_path, "c", 1, (0, 1), status="diverged")  # diverged is finished: its numbers
    assert trained_group(rd, "c", (0, 1))
    _fake(tmp_path, "d", 0, (0, 1))
    _fake(tmp_path, "d", 1, (0, 1), status="failed")  # trained again on resume
    assert not trained_group(rd, "d", (0, 1))
    for s in (0, 1):  # stacked otherwise: other rounding, other numbers
        _fake(tmp_path, "e", s, (s,))
        _fake(tmp_path, "f", s, None)  # a record from before plans were written
        _fake(tmp_path, "g", s, (0, 1), twin_of="a")  # a copy is never a source
    assert not trained_group(rd, "e", (0, 1)) and trained_group(rd, "e", (0,))
    assert not trained_group(rd, "f", (0, 1))
    assert not trained_group(rd, "g", (0, 1))


def test_twin_key_ignores_only_the_inert_keys_and_names_the_group_and_its_training(tmp_path):
    from sharpen.experiments.twins import twin_key

    p = tmp_path / "g.toml"
    p.write_text(GRID)
    exp = load_experiment(str(p))
    b1, b2 = exp.arms["baseline__blur_stages-1"], exp.arms["baseline__blur_stages-2"]
    s1, s2 = exp.arms["sharpening__blur_stages-1"], exp.arms["sharpening__blur_stages-2"]
    entry = {"stack": 2, "threads": 1}
    assert twin_key(b1, entry, (0, 1)) == twin_key(b2, entry, (0, 1))
    assert twin_key(s1, entry, (0, 1)) != twin_key(s2, entry, (0, 1))
    assert twin_key(b1, entry, (0, 1)) != twin_key(s1, entry, (0, 1))
    assert twin_key(b1, entry, (0, 1)) != twin_key(b1, entry, (0, 2))
    assert twin_key(b1, entry, (0, 1)) != twin_key(b1, {"stack": 1, "threads": 1}, (0, 1))
    assert twin_key(b1, entry, (0, 1)) != twin_key(b1, {"stack": 2, "threads": 2}, (0, 1))
    assert twin_key(b1, entry, (0, 1)) != \
        twin_key(b1.model_copy(update={"lr": 0.004}), entry, (0, 1))
    key = json.loads(twin_key(b1, entry, (0, 1)))
    assert (key["seeds"], key["stack"], key["threads"]) == ([0, 1], 2, 1)
    assert "blur_stages" not in key["config"] and key["config"]["lr"] == 0.003


def test_copy_run_copies_the_files_and_relabels_the_result(tmp_path):
    from sharpen.experiments.twins import copy_run
    from sharpen.rundir import RunDir

    rd = RunDir(tmp_path)
    _fake(tmp_path, "base__k-1", 3, (3,), base_arm="base", grid_k=1, test_acc=0.75)
    src = rd.seed_dir("base__k-1", 3)
    (src / "metrics.csv").write_text("epoch,test_acc\n1,0.75\n")
    (src / "predictions.npz").write_bytes(b"\x00\x01binary")
    (src / "checkpoint.pt").write_bytes(b"a training's own state")
    dst = rd.seed_dir("base__k-2", 3)
    dst.mkdir(parents=True)
    (dst / "checkpoint.pt").write_bytes(b"a stale checkpoint of an unfinished training")
    res = copy_run(rd, "base__k-1", "base__k-2", 3, {"arm": "base", "k": 2})
    assert sorted(f.name for f in dst.iterdir()) == ["metrics.csv", "predictions.npz",
                                                    "result.json"]
    for f in ("metrics.csv", "predictions.npz"):
        assert (dst / f).read_bytes() == (src / f).read_bytes()
    on_disk = json.loads((dst / "result.json").read_text())
    assert on_disk == res
    assert res == {"status": "ok", "arm": "base__k-2", "seed": 3, "test_acc": 0.75,
                   "plan": {"group": [3], "stack": 1, "threads": 1}, "base_arm": "base",
                   "grid_k": 2, "twin_of": "base__k-1"}
    assert json.loads((src / "result.json").read_text())["arm"] == "base__k-1"  # untouched
    # outside a grid no cell labels are left behind
    res = copy_run(rd, "base__k-1", "plain", 3, None)
    assert "base_arm" not in res and "grid_k" not in res and res["arm"] == "plain"


def test_find_twin_returns_another_arm_with_the_key_that_trained_the_group(tmp_path):
    from sharpen.experiments.twins import find_twin
    from sharpen.rundir import RunDir

    rd = RunDir(tmp_path)
    for s in (0, 1):
        _fake(tmp_path, "a", s, (0, 1))
        _fake(tmp_path, "b", s, (0, 1))
    keys = {"a": lambda seeds: f"K{seeds}", "b": lambda seeds: f"K{seeds}",
            "c": lambda seeds: f"K{seeds}", "x": lambda seeds: f"X{seeds}"}
    assert find_twin(rd, "K(0, 1)", "c", (0, 1), keys) == "a"  # the first in order
    assert find_twin(rd, "K(0, 1)", "a", (0, 1), keys) == "b"  # never itself
    assert find_twin(rd, "K(0, 1)", "a", (0, 1), {"a": keys["a"]}) is None
    assert find_twin(rd, "X(0, 1)", "c", (0, 1), keys) is None  # x has that key, never ran
    assert find_twin(rd, "K(0, 2)", "c", (0, 2), keys) is None  # a and b ran (0, 1) only
    assert find_twin(rd, "K(0, 1)", "c", (0, 1), {"x": keys["x"], "b": keys["b"]}) == "b"


# ---- a trainer key is never inert, even one a plugin technique's Config re-declares ---------

PLUGIN = '''
from pydantic import BaseModel, Field
from sharpen.techniques import Technique

class Brighten(Technique):
    name = "brighten"
    plan_columns = ("brighten",)

    class Config(BaseModel):
        brighten: float = Field(0.0, description="add this to every training pixel")
        batch_size: int = Field(64, description="re-declared: the trainer's key")

    def __init__(self, amount):
        self.amount = amount

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.brighten) if cfg.brighten else None

    def plan(self, epoch, epochs):
        return {"brighten": self.amount}

    def on_batch(self, state, x, y):
        return x + self.amount, y
'''

BATCHES = """
name = "batches"
dataset = "synthetic"
train_size = 100
test_size = 40
epochs = 1
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 1
runs = 1
model = "lenet5_dropout"
brighten = 0.0  # the plugin's own key, off: the file is refused if the plugin is not loaded

[arms.b50]
batch_size = 50

[arms.b100]
batch_size = 100
"""


def test_arms_of_different_batch_sizes_are_never_twins_whatever_a_plugin_declares(tmp_path):
    """A plugin technique (registered by entry point, off in both arms) whose Config
    re-declares ``batch_size``: the arms still differ in a key the trainer reads, so b100
    trains; it is not b50's numbers copied (issue 32)."""
    import os
    import subprocess
    import sys

    pkg = tmp_path / "pkg"
    (pkg / "userpkg_plugin-0.1.dist-info").mkdir(parents=True)
    (pkg / "userpkg_tech.py").write_text(PLUGIN)
    (pkg / "userpkg_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: userpkg-plugin\nVersion: 0.1\n")
    (pkg / "userpkg_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[sharpen.techniques]\nbrighten = userpkg_tech:Brighten\n")
    p, out = tmp_path / "b.toml", tmp_path / "r"
    p.write_text(BATCHES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(pkg), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                        "--quiet", "--workers", "1"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "the same run as" not in r.stdout
    res = {a: json.loads((out / "runs" / a / "seed-0" / "result.json").read_text())
           for a in ("b50", "b100")}
    assert "twin_of" not in res["b100"] and "twin_of" not in res["b50"]
    assert "Twin runs" not in (out / "report.md").read_text()
    # trained: b100 takes one step per epoch where b50 takes two, so their losses differ
    assert res["b100"]["train_loss"] != res["b50"]["train_loss"]


def test_a_key_no_enabled_technique_reads_is_warned_but_a_grids_axis_is_not(tmp_path, capsys):
    """`erase_p` without `random_erasing` trains the plain arm again (and is copied from it):
    said on stderr, naming the arm and the key; the grid's own axis on its baseline is not."""
    from sharpen.cli import main

    p = tmp_path / "e.toml"
    p.write_text(GRID.replace('grid = { blur_stages = [1, 2] }\n', "epochs = 1\n")
                 .replace("epochs = 3\n", "")
                 .replace('[arms.sharpening]\nblur_n = "stages"\nstage_epochs = 1\n',
                          "[arms.erase]\nerase_p = 0.9\n"))
    assert main(["run", str(p), "--out", str(tmp_path / "r"), "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if "nothing in its training reads it" in ln]
    assert len(warned) == 1 and "arm 'erase' sets erase_p = 0.9 (erasing is off)" in warned[0]
    q = tmp_path / "g.toml"
    q.write_text(GRID)
    assert main(["run", str(q), "--out", str(tmp_path / "g"), "--quiet", "--workers", "1"]) == 0
    assert "nothing in its training reads it" not in capsys.readouterr().err
