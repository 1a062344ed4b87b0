"""A user's own data, named in an experiment file:

    dataset = { path = "data/mine.npz", format = "npz" }        # x_train, y_train, x_test, y_test
    dataset = { path = "data/pets", format = "imagefolder" }    # <path>/<split>/<class>/*.png

Both become one uint8 tensor N×C×H×W and int64 labels, like the built-in sets. The table is
turned into a name, ``"npz:<absolute path>"`` or ``"imagefolder:<absolute path>"``, which is
what config.json records and what every process resolves again. An image folder without a
``test`` folder gets a seeded 1/6 of each class's images as its test split (seed 0,
recorded in the name as ``#test=seeded``); images are read with Pillow (grey ``L`` or
``RGB``) and must share one size. Mean and std come from the training images.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sharpen.data.catalog import DatasetSpec
from sharpen.errors import SharpenError

FORMATS = ("npz", "imagefolder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def source_name(value: Any) -> Any:
    """A dataset table {path, format} → its canonical name; other values pass through."""
    if not isinstance(value, dict):
        return value
    unknown = set(value) - {"path", "format"}
    if unknown or "path" not in value:
        raise ValueError("a dataset table needs path = \"...\" and format = \"npz\" or "
                         f"\"imagefolder\" (got keys {sorted(value)})")
    fmt = value.get("format") or ("npz" if str(value["path"]).endswith(".npz") else "imagefolder")
    if fmt not in FORMATS:
        raise ValueError(f"dataset format must be 'npz' or 'imagefolder', got {fmt!r}")
    return f"{fmt}:{Path(value['path']).expanduser().resolve()}"


def is_user(name: str) -> bool:
    return isinstance(name, str) and name.split(":", 1)[0] in FORMATS and ":" in name


def _npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SharpenError(f"dataset {path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise SharpenError(f"dataset {path}: not a readable .npz file ({exc})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise SharpenError(f"dataset {path}: missing arrays {missing}; an .npz dataset holds "
                           "x_train, y_train, x_test, y_test")
    return arrays


def _as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise SharpenError(f"{where}: images must be uint8 (0..255), got {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # N×H×W×C → N×C×H×W
    if x.ndim == 4:
        return x
    raise SharpenError(f"{where}: images must be N×H×W, N×H×W×C or N×C×H×W, got {x.shape}")


def _folder(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from PIL import Image  # lazy: optional: Pillow (a matplotlib dependency), image folders alone

    if not path.is_dir():
        raise SharpenError(f"dataset {path}: no such folder")
    split_dirs = {s: path / s for s in ("train", "test") if (path / s).is_dir()}
    roots = split_dirs or {"all": path}
    classes = sorted({c.name for r in roots.values() for c in r.iterdir() if c.is_dir()})
    if not classes:
        raise SharpenError(f"dataset {path}: no class folders; expected "
                           f"{path}/train/<class>/*.png (or {path}/<class>/*.png)")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, root in roots.items():
        xs, ys, shape = [], [], None
        for label, c in enumerate(classes):
            for f in sorted((root / c).iterdir()) if (root / c).is_dir() else []:
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    with Image.open(f) as im:
                        mode = "L" if im.mode in ("L", "1", "I;16", "I", "LA") else "RGB"
                        a = np.asarray(im.convert(mode))
                except OSError as exc:
                    raise SharpenError(f"{f}: not a readable image ({exc})") from None
                a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
                if shape is not None and a.shape != shape:
                    raise SharpenError(f"{f}: size {a.shape} differs from the folder's "
                                       f"first image {shape}; resize the images to one size")
                shape = a.shape
                xs.append(a)
                ys.append(label)
        if not xs:
            raise SharpenError(f"dataset {root}: no images ({', '.join(IMAGE_SUFFIXES)})")
        out[split] = (np.stack(xs).astype(np.uint8), np.array(ys, dtype=np.int64))
    if "all" in out:  # no test folder: a seeded sixth of every class is the test split
        x, y = out.pop("all")
        rng = np.random.default_rng(0)
        test = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            test[rng.permutation(idx)[: max(1, len(idx) // 6)]] = True
        out = {"train": (x[~test], y[~test]), "test": (x[test], y[test])}
    if "test" not in out:
        raise SharpenError(f"dataset {path}: has train/ but no test/ folder")
    return out


def _stamp(name: str) -> tuple[Any, ...]:
    """What says the data on disk changed (size and mtime of the .npz, or of every file of
    the folder): the cache of :func:`_arrays` is keyed on it, so one process (a notebook, a
    test) that runs twice reads data edited in between, never its first read."""
    p = Path(name.split(":", 1)[1])
    try:
        if p.is_file():
            return (p.stat().st_size, p.stat().st_mtime_ns)
        return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                     for f in sorted(p.rglob("*")) if f.is_file())
    except OSError:
        return ()


def _arrays(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _read_arrays(name, _stamp(name))


def content_hash(name: str) -> str:
    """sha256 of the data's images and labels as training sees them (both splits, shapes
    and dtypes too): a run directory records it, and a resume on data whose content changed
    is refused (a re-saved file with the same arrays is the same data)."""
    return _hash_arrays(name, _stamp(name))


@lru_cache(maxsize=8)
def _hash_arrays(name: str, stamp: tuple[Any, ...]) -> str:
    h = hashlib.sha256()
    for split, (x, y) in sorted(_read_arrays(name, stamp).items()):
        for a in (x, y):
            h.update(f"{split}:{a.dtype.str}:{a.shape};".encode())
            h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


@lru_cache(maxsize=8)
def _read_arrays(name: str, stamp: tuple[Any, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    del stamp  # the cache's key alone
    fmt, path = name.split(":", 1)
    p = Path(path)
    if fmt == "npz":
        a = _npz(p)
        out = {s: (_as_nchw(a[f"x_{s}"], f"{p}: x_{s}"), a[f"y_{s}"].astype(np.int64).ravel())
               for s in ("train", "test")}
    else:
        out = _folder(p)
    for s, (x, y) in out.items():
        if len(x) != len(y):
            raise SharpenError(f"dataset {p}: {s} has {len(x)} images but {len(y)} labels")
        if y.size and y.min() < 0:
            raise SharpenError(f"dataset {p}: {s} labels must be >= 0")
    if out["train"][0].shape[1:] != out["test"][0].shape[1:]:
        raise SharpenError(f"dataset {p}: train images {out['train'][0].shape[1:]} and test "
                           f"images {out['test'][0].shape[1:]} differ in shape")
    return out


def user_spec(name: str) -> DatasetSpec:
    arrays = _arrays(name)
    x, y = arrays["train"]
    classes = int(max(y.max(), arrays["test"][1].max())) + 1
    xf = x.astype(np.float64) / 255.0
    axes = (0, 2, 3)
    return DatasetSpec(name, "user", tuple(int(d) for d in x.shape[1:]), classes,
                       mean=tuple(float(v) for v in xf.mean(axes)),
                       std=tuple(max(float(v), 1e-6) for v in xf.std(axes)))


def load_user(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _arrays(name)[split]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
