"""What each named dataset is: files, known-good md5s, mirrors, shape and classes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str  # a key of formats.READERS (files), or "synthetic" / "synthetic-waves"
    shape: tuple[int, ...]  # C×H×W for images, C×L for signals
    num_classes: int
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # split -> file names
    md5: dict[str, frozenset[str]] = field(default_factory=dict)  # file -> known-good md5s
    mirrors: tuple[str, ...] = ()
    archive: str = ""  # CIFAR: the archive that unpacks into folder
    folder: str = ""  # CIFAR: the extracted folder
    system_dirs: tuple[str, ...] = ()
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    note: str = ""

    def needed(self, split: str) -> tuple[str, ...]:
        return self.files[split]


def _m(*s: str) -> frozenset[str]:
    return frozenset(s)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

CATALOG: dict[str, DatasetSpec] = {}


def _add(spec: DatasetSpec) -> None:
    CATALOG[spec.name] = spec


_add(DatasetSpec(
    "mnist", "idx", (1, 28, 28), 10, _IDX_FILES,
    md5={
        "train-images-idx3-ubyte.gz": _m("f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": _m("d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": _m("9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": _m("ec29112dd5afa0611ce80d1b7f02629c"),
    },
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    mean=(0.1307,), std=(0.3081,),
))

# Fashion-MNIST: upstream .gz md5 first, then Debian's recompressed .gz (dataset-fashion-mnist)
# and the md5 of the decompressed bytes, which both forms share.
_add(DatasetSpec(
    "fashion-mnist", "idx", (1, 28, 28), 10, _IDX_FILES,
    md5={
        "train-images-idx3-ubyte.gz": _m("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                         "cf8536b0aa1a6ac5fa3f23001093305c",
                                         "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte.gz": _m("25c81989df183df01b3e8a0aad5dffbe",
                                         "10bea18fdb374794d4bb42e356e600c9",
                                         "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte.gz": _m("bef4ecab320f06d8554ea6380940ec79",
                                        "f78720b4224f21cce2f2ccf2d7a94c9a",
                                        "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte.gz": _m("bb300cfdad3c16e7a12a480ee83cd310",
                                        "0d30e22e447f3c33dab9ed536400ac01",
                                        "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    mean=(0.2860,), std=(0.3530,),
))

# CIFAR: official md5s of the extracted batches, plus a known lossless rebuild of CIFAR-10
# (same pixels and order, no b'filenames' key) that is distributed as .tar.xz for offline use.
_add(DatasetSpec(
    "cifar10", "cifar10", (3, 32, 32), 10,
    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    md5={
        "data_batch_1": _m("c99cafc152244af753f735de768cd75f", "5e33220a24316795cd9db03e9d623fac"),
        "data_batch_2": _m("d4bba439e000b95fd0a9bffe97cbabec", "ce2830e1b06f019b3d5f9bc3dc7719a7"),
        "data_batch_3": _m("54ebc095f3ab1f0389bbae665268c751", "c38f47107c6db55de23a8df3cb17a7b0"),
        "data_batch_4": _m("634d18415352ddfa80567beed471001a", "e5a6945c8b4b1ebe37b05f99ce0f1fae"),
        "data_batch_5": _m("482c414d41f54cd18b22e5b47cb7c3cb", "0bd451ab092745f6ef858758cf0a051e"),
        "test_batch": _m("40351d587109b95175f43aff81a1287e", "516dde860aa4f449d200af792b6c0bb8"),
        "cifar-10-python.tar.gz": _m("c58f30108f718f92721af3b95e74349a"),
        "cifar-10-python.tar.xz": _m("d9070a9b83b17fd589f8b1e368a67ab1"),
    },
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    archive="cifar-10-python.tar.gz", folder="cifar-10-batches-py",
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
))

_add(DatasetSpec(
    "cifar100", "cifar100", (3, 32, 32), 100,
    files={"train": ("train",), "test": ("test",)},
    md5={
        "train": _m("16019d7e3df5f24257cddd939b257f8d"),
        "test": _m("f0ef6b0ae62326f3e7ffdfab6717acfc"),
        "cifar-100-python.tar.gz": _m("eb9058c3a382ffc7106e4002c42a8d85"),
    },
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    archive="cifar-100-python.tar.gz", folder="cifar-100-python",
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
))

_add(DatasetSpec(
    "mnist-sample", "bundled", (1, 28, 28), 10,
    files={
        "train": ("mnist-sample-train-images-idx3-ubyte.gz", "mnist-sample-train-labels-idx1-ubyte.gz"),
        "test": ("mnist-sample-t10k-images-idx3-ubyte.gz", "mnist-sample-t10k-labels-idx1-ubyte.gz"),
    },
    md5={
        "mnist-sample-train-images-idx3-ubyte.gz": _m("1a54233315197a24a0cbc6ae1e275dcd"),
        "mnist-sample-train-labels-idx1-ubyte.gz": _m("d48ecf79f092ade81d4796c76a88600c"),
        "mnist-sample-t10k-images-idx3-ubyte.gz": _m("2239c6362ceda931ea175f424b6128d8"),
        "mnist-sample-t10k-labels-idx1-ubyte.gz": _m("637689c4a1ac9353e867e9d1eca302b7"),
    },
    mean=(0.1307,), std=(0.3081,),
    note="5,000 real MNIST training images (500 per class) and the first 5,000 official "
         "test images, shipped inside the package for the offline first run",
))

_add(DatasetSpec(
    "synthetic", "synthetic", (1, 28, 28), 10,
    mean=(0.5,), std=(0.25,),
    note="deterministic 10-class shifted-template images for tests (no files)",
))

_add(DatasetSpec(
    "synthetic-waves", "synthetic-waves", (1, 128), 6,
    mean=(0.5,), std=(0.2,),
    note="1-D signals, 6 classes (sine, square, triangle, sawtooth, sine+3rd harmonic, "
         "amplitude-modulated sine), random frequency 2-6 cycles, phase, amplitude, noise; "
         "3,000 train / 1,200 test, quantised to uint8",
))


# images in each catalog set's train and test splits, known before loading: a run checks its
# data-size keys against them before it prints or trains anything (a user's dataset: when
# it loads). tests/test_data.py loads each set it can and compares.
SIZES: dict[str, tuple[int, int]] = {
    "mnist": (60000, 10000), "fashion-mnist": (60000, 10000), "cifar10": (50000, 10000),
    "cifar100": (50000, 10000), "mnist-sample": (5000, 5000), "synthetic": (2000, 500),
    "synthetic-waves": (3000, 1200)}
