"""A user's own data (an .npz, an image folder) edited between two invocations into one run
directory: the runs on the new content would be pooled with the old ones in every table,
silently. The directory records the content's hash; a resume on other content is refused in
one line naming the data, whether the experiment file or the directory is run; the same
arrays saved again are the same data."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sharpen.cli import main
from sharpen.data import user_data_hash

MYNET = textwrap.dedent("""
    from torch import nn

    def Net(num_classes=10, in_channels=1, width=4):
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(4 * width, num_classes))
""")


def _data(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    return (rng.integers(0, 80, (n, 8, 8)) + 80 * y[:, None, None]).astype(np.uint8), y


def _save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])


def _project(tmp_path: Path, dataset: str) -> Path:
    (tmp_path / "mynet.py").write_text(MYNET)
    (tmp_path / "exp.toml").write_text(textwrap.dedent(f"""
        name = "mine"
        runs = 1
        epochs = 1
        batch_size = 30
        val_size = 10
        threads = 1
        model = "mynet:Net"
        dataset = {dataset}
        [arms.a]
    """))
    return tmp_path / "exp.toml"


@pytest.fixture
def sharpen(tmp_path, monkeypatch, capsys):
    """`sharpen ARGS...` in this process, from tmp_path: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # mynet.py for `sharpen run DIR` too

    def call(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([*args, "--quiet", "--workers", "1"])
        return code, capsys.readouterr().err

    return call


def _seeds(out: Path) -> list[int]:
    with open(out / "results.csv") as f:
        return [int(r["seed"]) for r in csv.DictReader(f)]


def test_an_edited_npz_is_refused_and_the_same_arrays_saved_again_are_not(tmp_path, sharpen):
    x, y = _data()
    npz = tmp_path / "mine.npz"
    _save_npz(npz, x, y)
    exp = _project(tmp_path, '{ path = "mine.npz", format = "npz" }')
    assert sharpen("run", str(exp), "--out", "out") == (0, "")
    out = tmp_path / "out"
    name, digest = user_data_hash(f"npz:{npz.resolve()}") or ("", "")
    recorded = json.loads((out / "config.json").read_text())["data_hashes"]
    assert recorded == {name: digest}
    # the same arrays in a new file (another mtime, compressed): the same data, it grows
    np.savez_compressed(npz, x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    assert sharpen("run", str(exp), "--out", "out", "--runs", "2") == (0, "")
    assert _seeds(out) == [0, 1]
    # three training labels changed: refused from the file and from the directory alike
    y2 = y.copy()
    y2[:3] = (y2[:3] + 1) % 3
    _save_npz(npz, x, y2)
    now = (user_data_hash(name) or ("", ""))[1]
    assert now != digest
    for args in (["run", str(exp), "--out", "out", "--runs", "3"], ["run", "out", "--runs", "3"]):
        assert sharpen(*args) == (2, (
            f"sharpen: error: dataset {npz.resolve()} changed since out trained on it (its "
            f"images and labels hashed {digest[:12]} then, {now[:12]} now): runs on the two "
            "would be pooled in one table. Restore the data as it was, or use another --out "
            "for the new data\n"))
        assert _seeds(out) == [0, 1] and not (out / "runs" / "a" / "seed-2").exists()
    assert json.loads((out / "config.json").read_text())["data_hashes"] == {name: digest}


def test_an_image_changed_in_a_folder_is_refused(tmp_path, sharpen):
    from PIL import Image

    x, y = _data(60)
    pics = tmp_path / "pics"
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        (pics / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(pics / f"c{label}" / f"{i:03d}.png")
    exp = _project(tmp_path, '{ path = "pics", format = "imagefolder" }')
    assert sharpen("run", str(exp), "--out", "out") == (0, "")
    first = sorted((pics / "c0").iterdir())[0]  # one pixel of one image, as many files
    a = np.asarray(Image.open(first)).copy()
    a[0, 0] ^= 1
    Image.fromarray(a).save(first)
    code, err = sharpen("run", "out", "--runs", "2")
    assert code == 2 and err.startswith(
        f"sharpen: error: dataset {pics.resolve()} changed since out trained on it"), err
    assert _seeds(tmp_path / "out") == [0]


def test_a_plugin_dataset_pointed_at_other_data_is_refused(tmp_path, sharpen, monkeypatch):
    """A package's dataset (entry point sharpen.datasets) keeps its name in config.json when
    the package points it at other data: compared under that name."""
    from sharpen import data as sharpen_data

    x, y = _data()
    _save_npz(tmp_path / "one.npz", x, y)
    _save_npz(tmp_path / "two.npz", x, (y + 1) % 3)
    where = {"path": str(tmp_path / "one.npz"), "format": "npz"}
    monkeypatch.setattr(sharpen_data, "plugins", lambda group: {"mine": lambda: dict(where)})
    exp = _project(tmp_path, '"mine"')
    assert sharpen("run", str(exp), "--out", "out") == (0, "")
    where["path"] = str(tmp_path / "two.npz")
    code, err = sharpen("run", str(exp), "--out", "out", "--runs", "2")
    assert code == 2 and err.startswith(
        "sharpen: error: dataset mine changed since out trained on it"), err
    assert _seeds(tmp_path / "out") == [0]
