"""Shared fixtures. Real data comes from $SHARPEN_TEST_DATA (set by .ci/run); tests that
need it skip cleanly where it is absent."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

REAL = os.environ.get("SHARPEN_TEST_DATA")


def real_data_dir() -> Path:
    if not REAL or not Path(REAL).is_dir():
        pytest.skip("real data not available (set SHARPEN_TEST_DATA to the shared data folder)")
    return Path(REAL)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    """No test may read or write the user's real home: a local Ray (`ray.init()`) writes a
    token to ~/.ray/auth_token and turns on token authentication for every later head that
    finds one, so a test run would change how the user's next cluster behaves."""
    before = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if before is None:
        os.environ.pop("HOME", None)
    else:
        os.environ["HOME"] = before


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test may read or write the user's real cache or download anything."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SHARPEN_DATA", raising=False)
    monkeypatch.delenv("SHARPEN_CACHE_DIR", raising=False)  # calibrations: none, unless a test makes one
    monkeypatch.setenv("SHARPEN_OFFLINE", "1")


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """Real MNIST under the standard names: the 5k training subset + the official test set."""
    src = real_data_dir() / "mnist"
    d = tmp_path_factory.mktemp("mnist")
    shutil.copy(src / "train-5k-images-idx3-ubyte.gz", d / "train-images-idx3-ubyte.gz")
    shutil.copy(src / "train-5k-labels-idx1-ubyte.gz", d / "train-labels-idx1-ubyte.gz")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(src / f, d / f)
    return d


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory) -> Path:
    """The real CIFAR-10, extracted once per test session (about 10 s)."""
    arc = real_data_dir() / "cifar10" / "cifar-10-python.tar.xz"
    d = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(arc) as t:
        t.extractall(d, filter="data")
    return d


@pytest.fixture
def mixer_model(monkeypatch) -> str:
    """Register, for one test, a model whose forward mixes the samples of a batch."""
    import torch

    from sharpen.models import _registry

    class MixerNet(torch.nn.Module):
        def __init__(self, num_classes: int = 10, in_channels: int = 1):
            super().__init__()
            self.fc = torch.nn.Linear(784, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1) - x.flatten(1).mean(0))

    monkeypatch.setitem(_registry._MODELS, "test_mixer_model", MixerNet)
    return "test_mixer_model"
