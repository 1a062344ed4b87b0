from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from functools import partial
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
    safe_extract,
    safe_unpickle,
    write_cifar_batch,
    write_idx,
)
from sharpen.data.sources import download
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


def test_verify_rejects_unknown_md5_naming_file(tmp_path):
    _write_mnist_like(tmp_path)
    msg = r"checksum mismatch for .*train-images-idx3-ubyte.gz.*expected md5 f68b3c2d"
    with pytest.raises(SharpenError, match=msg):
        load("mnist", "train", root=tmp_path, verify=True)


def test_truncated_gz_names_file(tmp_path):
    _write_mnist_like(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(SharpenError, match="train-images-idx3-ubyte.gz.*truncated"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_wrong_magic_names_file(tmp_path):
    _write_mnist_like(tmp_path)
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 40))
    with pytest.raises(SharpenError, match="train-labels-idx1-ubyte.gz: wrong IDX magic"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_count_mismatch_and_wrong_dims(tmp_path):
    _write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(SharpenError, match="20 images but .* 7 labels"):
        load("mnist", "train", root=tmp_path, verify=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((20, 2), np.uint8))
    with pytest.raises(SharpenError, match="2 dimensions, expected 1"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_offline_missing_says_which_files_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPEN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SharpenError) as e:
        load("mnist", "train")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "nowhere") in msg and "sharpen" in msg


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


class _Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "pwned"
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil(str(target)), b"labels": [1]}, protocol=2))
    with pytest.raises(SharpenError, match="refused to load global"):
        safe_unpickle(p)
    assert not target.exists()
    p.write_bytes(pickle.dumps({b"data": b"\x00" * 10, b"labels": [1, 2]})[:-5])
    with pytest.raises(SharpenError, match="truncated or corrupt pickle"):
        safe_unpickle(p)


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


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_tar_extraction_refuses_unsafe_paths(tmp_path, bad):
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as t:
        info = tarfile.TarInfo(bad)
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(SharpenError, match="refused unsafe member path"):
        safe_extract(arc, dest)
    assert not (tmp_path / "evil.txt").exists() and not Path("/abs/evil.txt").exists()
    assert list(dest.iterdir()) == []


def test_tar_extraction_refuses_links(tmp_path):
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(SharpenError, match="links and devices are not allowed"):
        safe_extract(arc, tmp_path)


def test_split_indices_seeded_disjoint_and_complete():
    tr, va = split_indices(100, 20, seed=3)
    assert len(tr) == 80 and len(va) == 20
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(100))
    tr2, va2 = split_indices(100, 20, seed=3)
    assert torch.equal(va, va2)
    assert not torch.equal(va, split_indices(100, 20, seed=4)[1])
    with pytest.raises(SharpenError, match="val_size"):
        split_indices(10, 10, 0)


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


class _Handler(http.server.SimpleHTTPRequestHandler):
    cut_after: int | None = None

    def log_message(self, *a):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        path = Path(self.directory) / self.path.lstrip("/")
        data = path.read_bytes()
        start = 0
        rng_h = self.headers.get("Range")
        if rng_h:
            start = int(rng_h.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if _Handler.cut_after is not None and not rng_h:
            self.wfile.write(body[: _Handler.cut_after])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)


def test_download_atomic_resume_and_md5(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    payload = os.urandom(300_000)
    (srv_dir / "f.bin").write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(srv_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    dest = tmp_path / "dl" / "f.bin"
    try:
        _Handler.cut_after = 100_000
        with pytest.raises(SharpenError, match="cut off"):
            download(url, dest, [md5], progress=False, timeout=5)
        assert not dest.exists()  # never a partial file under the final name
        part = dest.with_name("f.bin.part")
        assert 0 < part.stat().st_size < len(payload)
        _Handler.cut_after = None
        download(url, dest, [md5], progress=False, timeout=5)  # resumes with Range
        assert dest.read_bytes() == payload and not part.exists()
        with pytest.raises(SharpenError, match="checksum mismatch for g.bin.*expected md5 0{32}"):
            download(url, tmp_path / "dl" / "g.bin", ["0" * 32], progress=False, timeout=5)
        assert not (tmp_path / "dl" / "g.bin").exists()
    finally:
        server.shutdown()


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
