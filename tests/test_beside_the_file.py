"""An experiment file's own code and data sit beside it (issue 34 D): `model = "mynet:Net"`
finds mynet.py in the file's folder and a relative dataset path is the file's, wherever
`sharpen` is started from, in worker processes too."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from sharpen.experiments.config.loading import beside_the_file

SHARPEN = str(Path(sys.executable).with_name("sharpen"))

MYNET = textwrap.dedent("""
    from torch import nn

    def Net(num_classes=10, in_channels=1, width=4):
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(4 * width, num_classes))
""")


def _project(tmp_path: Path) -> Path:
    """project/exp.toml, project/mynet.py and project/data/mine.npz (3 brightness classes)."""
    proj = tmp_path / "project"
    (proj / "data").mkdir(parents=True)
    (proj / "mynet.py").write_text(MYNET)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (rng.integers(0, 80, (300, 10, 10)) + 80 * y[:, None, None]).astype(np.uint8)
    np.savez(proj / "data" / "mine.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:],
             y_test=y[240:])
    (proj / "exp.toml").write_text(textwrap.dedent("""
        name = "beside"
        runs = 2
        epochs = 1
        batch_size = 20
        val_size = 20
        model = "mynet:Net"
        dataset = { path = "data/mine.npz", format = "npz" }
        [arms.a]
        [arms.b]
        lr = 0.02
    """))
    return proj


def test_own_model_and_relative_data_are_found_beside_the_file_from_another_folder(tmp_path):
    proj = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([SHARPEN, "run", str(proj / "exp.toml"), "--out", "out", "--quiet",
                        "--backend", "processes", "--workers", "2"], cwd=elsewhere, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = elsewhere / "out"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arms"]["a"]["dataset"] == f"npz:{(proj / 'data' / 'mine.npz').resolve()}"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert {int(r["params"]) for r in rows} == {4 * 9 + 4 + 16 * 3 + 3}  # mynet.Net, 3 classes


def test_a_run_directory_of_an_own_model_continues_from_another_folder(tmp_path):
    """`sharpen run DIR` for a model beside its experiment file: the folder was not put on
    the import path (ModuleNotFoundError: No module named 'mynet'), and config.json named
    the file relative to where it had been run."""
    proj = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([SHARPEN, "run", "exp.toml", "--out", str(elsewhere / "out"), "--runs",
                        "1", "--quiet", "--workers", "1"], cwd=proj, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = elsewhere / "out"
    assert json.loads((out / "config.json").read_text())["source"] == str(proj / "exp.toml")
    r = subprocess.run([SHARPEN, "run", "out", "--runs", "2", "--quiet", "--workers", "1"],
                       cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(x["arm"], x["seed"], x["status"]) for x in rows] == [
        ("a", "0", "ok"), ("a", "1", "ok"), ("b", "0", "ok"), ("b", "1", "ok")]


def test_only_the_files_relative_paths_move(tmp_path):
    folder = tmp_path / "f"
    raw = {"dataset": {"path": "d.npz", "format": "npz"}, "data_dir": "data",
           "arms": {"x": {"dataset": "imagefolder:pics"}, "y": {"dataset": "mnist"}},
           "profiles": {"p": {"data_dir": "/abs/data", "dataset": {"path": "~/d.npz"}}},
           "model": "mynet:Net"}
    out = beside_the_file(raw, folder)
    assert out["dataset"] == {"path": str(folder / "d.npz"), "format": "npz"}
    assert out["data_dir"] == str(folder / "data")
    assert out["arms"] == {"x": {"dataset": f"imagefolder:{folder / 'pics'}"},
                           "y": {"dataset": "mnist"}}  # a catalog name is not a path
    assert out["profiles"]["p"] == {"data_dir": "/abs/data", "dataset": {"path": "~/d.npz"}}
    assert out["model"] == "mynet:Net" and str(folder) in sys.path
