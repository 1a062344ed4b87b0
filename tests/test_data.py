from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sharpen import SharpenError
from sharpen.data import load, split_indices, synthetic
from sharpen.data.catalog import CATALOG
from sharpen.data.formats import (
    read_cifar_batch,
    read_idx,
    safe_unpickle,
    write_cifar_batch,
    write_idx,
)
from tests.conftest import real_data_dir

rng = np.random.default_rng(0)


def _write_mnist_like(d: Path, n_train: int = 20, n_test: int = 10) -> tuple[np.ndarray, ...]:
    xs = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    ys = rng.integers(0, 10, n_train).astype(np.uint8)
    xt = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    yt = rng.integers(0, 10, n_test).astype(np.uint8)
    write_idx(d / "train-images-idx3-ubyte.gz", xs)
    write_idx(d / "train-labels-idx1-ubyte.gz", ys)
    write_idx(d / "t10k-images-idx3-ubyte.gz", xt)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", yt)
    return xs, ys, xt, yt


def test_idx_round_trip_and_load(tmp_path):
    xs, ys, xt, yt = _write_mnist_like(tmp_path)
    x, y = load("mnist", "train", root=tmp_path, verify=False)
    assert x.dtype == torch.uint8 and x.shape == (20, 1, 28, 28)
    assert y.dtype == torch.int64
    np.testing.assert_array_equal(x[:, 0].numpy(), xs)
    np.testing.assert_array_equal(y.numpy(), ys)
    x, y = load("fashion-mnist", "test", root=tmp_path, verify=False)
    np.testing.assert_array_equal(x[:, 0].numpy(), xt)


def test_idx_header_bytes_follow_the_spec(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "a.idx", a, compress=False)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x02" and raw[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"
    assert raw[12:] == bytes(range(6))
    f = np.linspace(-1, 1, 5).astype(np.float32)
    write_idx(tmp_path / "f.idx.gz", f)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx.gz"), f)


def test_search_order_env_then_cache(tmp_path, monkeypatch):
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "sharpen" / "mnist"
    cache.mkdir(parents=True)
    _, ys_cache, _, _ = _write_mnist_like(cache)
    x, y = load("mnist", "train", verify=False)
    np.testing.assert_array_equal(y.numpy(), ys_cache)
    env = tmp_path / "env"
    (env / "mnist").mkdir(parents=True)
    _, ys_env, _, _ = _write_mnist_like(env / "mnist")
    monkeypatch.setenv("SHARPEN_DATA", str(env))
    x, y = load("mnist", "train", verify=False)
    np.testing.assert_array_equal(y.numpy(), ys_env)  # $SHARPEN_DATA wins over the cache
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    _, ys_ex, _, _ = _write_mnist_like(explicit)
    x, y = load("mnist", "train", root=explicit, verify=False)
    np.testing.assert_array_equal(y.numpy(), ys_ex)


def _cifar_tree(root: Path, folder: str, names: dict[str, int], key: bytes, classes: int):
    d = root / folder
    d.mkdir(parents=True)
    made = {}
    for name, n in names.items():
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, classes, n)
        extra = {b"coarse_labels": [int(v) // 5 for v in y]} if key == b"fine_labels" else {}
        write_cifar_batch(d / name, x, y, key, extra)
        made[name] = (x, y)
    return made


def test_cifar10_round_trip_from_extracted_and_from_tar_gz(tmp_path):
    names = {f"data_batch_{i}": 4 for i in range(1, 6)} | {"test_batch": 3}
    made = _cifar_tree(tmp_path / "src", "cifar-10-batches-py", names, b"labels", 10)
    x, y = load("cifar10", "train", root=tmp_path / "src", verify=False)
    assert x.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(x[4:8].numpy(), made["data_batch_2"][0])
    np.testing.assert_array_equal(y[:4].numpy(), made["data_batch_1"][1])
    # the same files as the official tar.gz: extracted safely on first use
    arc_dir = tmp_path / "arc"
    arc_dir.mkdir()
    with tarfile.open(arc_dir / "cifar-10-python.tar.gz", "w:gz") as t:
        t.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    xt, yt = load("cifar10", "test", root=arc_dir, verify=False)
    np.testing.assert_array_equal(xt.numpy(), made["test_batch"][0])
    assert (arc_dir / "cifar-10-batches-py" / "test_batch").is_file()


def test_cifar100_reader_on_official_format(tmp_path):
    made = _cifar_tree(tmp_path, "cifar-100-python", {"train": 7, "test": 5}, b"fine_labels", 100)
    x, y = load("cifar100", "train", root=tmp_path, verify=False)
    assert x.shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(y.numpy(), made["train"][1])
    np.testing.assert_array_equal(x.numpy(), made["train"][0])


def test_cifar_pixel_layout_is_rrr_ggg_bbb(tmp_path):
    img = np.zeros((1, 3, 32, 32), np.uint8)
    img[0, 0, 0, 1] = 7  # red, row 0, column 1
    img[0, 2, 1, 0] = 9  # blue, row 1, column 0
    write_cifar_batch(tmp_path / "b", img, [3])
    raw = pickle.loads((tmp_path / "b").read_bytes())[b"data"]
    assert raw.shape == (1, 3072) and raw.dtype == np.uint8
    assert raw[0, 1] == 7 and raw[0, 2048 + 32] == 9
    x, _ = read_cifar_batch(tmp_path / "b", b"labels")
    np.testing.assert_array_equal(x, img)


def test_split_indices_seeded_disjoint_and_complete():
    tr, va = split_indices(100, 20, seed=3)
    assert len(tr) == 80 and len(va) == 20
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(100))
    tr2, va2 = split_indices(100, 20, seed=3)
    assert torch.equal(va, va2)
    assert not torch.equal(va, split_indices(100, 20, seed=4)[1])
    with pytest.raises(SharpenError, match="val_size"):
        split_indices(10, 10, 0)


def test_a_val_size_beyond_the_training_set_names_the_field_like_the_others(tmp_path, capsys):
    from sharpen.cli import main

    assert main(["run", "quickstart", "--set", "dataset=synthetic", "--set", "val_size=100000",
                 "--set", "epochs=1", "--runs", "1", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "r")]) == 2
    out = capsys.readouterr()  # was "val_size must be in [0, 1999] for a training set of 2000"
    assert ("error: field val_size: must be in [0, 1999] (a training set of 2000 images keeps "
            "one or more to train on); got 100000") in out.err
    # said before anything is printed or trained (it came after "running 1 job")
    assert out.out == "" and not (tmp_path / "r").exists()


@pytest.mark.parametrize("sets", [["val_size=2000"], ["train_size=1990", "val_size=20"]])
def test_data_sizes_are_checked_before_a_run_or_a_sequential_design_starts(tmp_path, capsys,
                                                                          monkeypatch, sets):
    """val_size (or train_size + val_size) beyond a catalog set's training split is refused
    before a job is planned, with the message the split itself gives (no job runs)."""
    from sharpen.cli import main
    from sharpen.data import prepare

    monkeypatch.setattr(prepare, "build_data", lambda *a, **k: pytest.fail("a job ran"))
    base = ["--set", "dataset=synthetic", "--set", "epochs=1", *(x for s in sets
                                                               for x in ("--set", s))]
    for extra in ([], ["--until-decided", "--spend-anyway", "--step", "2"]):
        out = tmp_path / f"r{len(extra)}"
        assert main(["run", "quickstart", *base, *extra, "--workers", "1", "--out",
                     str(out)]) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and not out.exists(), cap.out
        assert ("val_size: must be in [0, 1999]" if len(sets) == 1 else
                "train_size 1990 + val_size 20 exceeds the 2000 training images") in cap.err


def test_a_test_size_beyond_the_test_split_is_refused_not_cut(tmp_path, capsys, monkeypatch):
    """test_size 600 of synthetic's 500 test images was cut to 500 without a word (the
    report said 600 images); refused before a job, and when the data loads (an unchecked
    copy, a user's set, pairs) with the size allowed."""
    from sharpen.cli import main
    from sharpen.data import prepare
    from sharpen.experiments.config import RunConfig

    monkeypatch.setattr(prepare, "build_data", lambda *a, **k: pytest.fail("a job ran"))
    out = tmp_path / "r"
    assert main(["run", "quickstart", "--set", "dataset=synthetic", "--set", "test_size=600",
                 "--set", "epochs=1", "--workers", "1", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and not out.exists()
    assert "test_size 600 exceeds the 500 test images of synthetic; allowed: 1 … 500" in cap.err
    monkeypatch.undo()
    for kw, n in (({"verify": False}, 500), ({"pairs": 40, "pairs_test": 30}, 30)):
        cfg = RunConfig(dataset="synthetic", test_size=n + 1, epochs=1, **kw)
        with pytest.raises(SharpenError, match=f"test_size {n + 1} exceeds the {n} test"):
            prepare.build_data(cfg, torch.device("cpu"))
        cfg = RunConfig(dataset="synthetic", test_size=n, epochs=1, **kw)
        assert len(prepare.build_data(cfg, torch.device("cpu")).test) == n


def test_a_size_error_among_several_arms_names_the_arm(tmp_path, capsys):
    """Two arms, one asking for more validation images than the set has: the early check
    named the field and value, not which arm (the file may set val_size per arm)."""
    from sharpen.cli import main

    p = tmp_path / "two.toml"
    p.write_text('name = "two"\ndataset = "synthetic"\nepochs = 1\nruns = 1\n'
                 '[arms.small]\nval_size = 10\n[arms.huge]\nval_size = 5000\n')
    assert main(["run", str(p), "--workers", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "arm 'huge': field val_size: must be in [0, 1999]" in err and "got 5000" in err


def test_the_catalogs_split_sizes_are_the_loaded_ones():
    """The sizes a run checks before loading (catalog.SIZES) against the sets loaded (the
    real MNIST, Fashion-MNIST and CIFAR-10 ones: the real-data tests below)."""
    from sharpen.data.catalog import SIZES

    assert set(SIZES) == set(CATALOG)
    for name in ("synthetic", "synthetic-waves", "mnist-sample"):
        assert SIZES[name] == (len(load(name, "train")[1]), len(load(name, "test")[1]))


def test_synthetic_is_deterministic_and_balanced():
    x, y = synthetic("train")
    x2, y2 = synthetic("train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (2000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [200] * 10


def test_bundled_sample_is_real_mnist_and_verified():
    x, y = load("mnist-sample", "train")  # verify=True against the shipped md5s
    assert x.shape == (5000, 1, 28, 28) and torch.bincount(y).tolist() == [500] * 10
    xt, yt = load("mnist-sample", "test")
    assert xt.shape == (5000, 1, 28, 28)
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test set's start
    size = sum(p.stat().st_size for p in (Path(__file__).parents[1] / "src/sharpen/data/sample").glob("*.gz"))
    assert size <= 2 * 1024 * 1024


# ---- real data (skips where $SHARPEN_TEST_DATA is absent) --------------------------------

def test_real_mnist_test_set_verified():
    d = real_data_dir() / "mnist"
    x, y = load("mnist", "test", root=d, verify=True)
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).sum() == 10000
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


def test_real_fashion_mnist_debian_md5_accepted():
    d = real_data_dir() / "fashion-mnist"
    x, y = load("fashion-mnist", "train", root=d, verify=True)
    assert x.shape == (60000, 1, 28, 28) and torch.bincount(y).tolist() == [6000] * 10
    assert abs(x.float().mean().item() / 255 - CATALOG["fashion-mnist"].mean[0]) < 1e-3


def test_real_cifar10_order_and_means(cifar10_dir):
    xt, yt = load("cifar10", "test", root=cifar10_dir, verify=True)
    assert yt[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    x, y = load("cifar10", "train", root=cifar10_dir, verify=True)
    assert x.shape == (50000, 3, 32, 32)
    means = (x.float() / 255).mean(dim=(0, 2, 3)).tolist()
    assert means == pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-4)


def test_numpy_array_pickles_load_without_running_numpy_code(tmp_path):
    x = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": x, b"labels": [1, 2, 3]}, protocol=2))
    d = safe_unpickle(p)
    np.testing.assert_array_equal(d[b"data"], x)
    f = np.arange(6, dtype=">f8").reshape(2, 3)
    p.write_bytes(pickle.dumps({b"f": f}, protocol=2))
    np.testing.assert_array_equal(safe_unpickle(p)[b"f"], f)
    p.write_bytes(pickle.dumps({b"o": np.array([{}, 1], dtype=object)}, protocol=2))
    with pytest.raises(SharpenError, match="unsafe pickle"):
        safe_unpickle(p)
