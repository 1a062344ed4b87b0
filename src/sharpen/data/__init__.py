"""Datasets by name, as one uint8 tensor N×C×H×W plus int64 labels.

``load(name, split, root=None, verify=True)`` is the whole public reader interface; the
training loop batches these tensors by index permutation on the device.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from sharpen.data.catalog import CATALOG, DatasetSpec
from sharpen.data.formats import READERS, safe_extract
from sharpen.data.pairs import make_pairs
from sharpen.data.sources import cache_dir, candidate_dirs, download, find_files, md5_file
from sharpen.data.user import content_hash, is_user, load_user, source_name, user_spec
from sharpen.errors import SharpenError
from sharpen.plugins import plugins

SAMPLE_DIR = Path(__file__).parent / "sample"
SPLITS = ("train", "test")

__all__ = ["load", "list_datasets", "get_spec", "fetch", "verify_files", "split_indices",
           "check_val_size",
           "synthetic", "synthetic_waves", "make_pairs", "DatasetSpec"]


def list_datasets() -> list[str]:
    return sorted(CATALOG)


def _plugin_name(name: str) -> str:
    """An installed package's dataset (entry point ``sharpen.datasets``: a callable giving
    {"path": ..., "format": ...}) → its canonical npz:/imagefolder: name."""
    if name in CATALOG or ":" in name:
        return name
    fn = plugins("sharpen.datasets").get(name)
    return source_name(fn()) if fn is not None else name


def get_spec(name: str) -> DatasetSpec:
    name = _plugin_name(name)
    if is_user(name):  # npz:<path> or imagefolder:<path>, a user's own data
        return user_spec(name)
    if name not in CATALOG:
        close = difflib.get_close_matches(name, list_datasets(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"unknown dataset {name!r}{hint}; valid names: "
                           f"{', '.join(list_datasets())}, "
                           "or a table { path = \"...\", format = \"npz\" | \"imagefolder\" }")
    return CATALOG[name]


def user_data_hash(name: str) -> tuple[str, str] | None:
    """A user's own data (an .npz, an image folder, a plugin's): its canonical name and the
    sha256 of its content (:func:`sharpen.data.user.content_hash`); None for the catalog's
    sets, whose files are checked against their md5s."""
    name = _plugin_name(name)
    return (name, content_hash(name)) if is_user(name) else None


def load(name: str, split: str, root: str | os.PathLike[str] | None = None,
         verify: bool = True, download_ok: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images uint8 N×C×H×W, labels int64 N)`` for ``split`` in ``train``/``test``."""
    name = _plugin_name(name)
    spec = get_spec(name)
    if split not in SPLITS:
        raise SharpenError(f"unknown split {split!r} for {name}; valid: {', '.join(SPLITS)}")
    if spec.format == "user":
        return load_user(name, split)
    if spec.format == "synthetic":
        return synthetic(split)
    if spec.format == "synthetic-waves":
        return synthetic_waves(split)
    if spec.format == "bundled":
        folder = SAMPLE_DIR
    else:
        folder = locate(spec, split, root, download_ok=download_ok)
    paths = [folder / f for f in spec.needed(split)]
    if verify and spec.md5:
        for p in paths:
            check_md5(spec, p)
    images, labels = READERS[spec.format](paths)
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise SharpenError(
            f"{paths[-1]}: labels must lie in 0..{spec.num_classes - 1}, "
            f"found {int(labels.min())}..{int(labels.max())}"
        )
    return (torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
            torch.from_numpy(labels.astype(np.int64)))


def check_md5(spec: DatasetSpec, path: Path) -> None:
    good = spec.md5.get(path.name)
    if not good:
        return
    got = md5_file(path)
    if got in good:
        return
    if path.suffix == ".gz":  # e.g. a recompressed copy: compare the decompressed bytes too
        try:
            if hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest() in good:
                return
        except (OSError, EOFError):
            pass
    raise SharpenError(
        f"checksum mismatch for {path}: expected md5 {' or '.join(sorted(good))}, got {got}. "
        "If this is a deliberate subset or rebuild, load it with verify=False "
        "(config: verify = false, CLI: --no-verify)"
    )


def _where_to_put(spec: DatasetSpec, split: str, dirs: list[Path]) -> str:
    files = spec.needed(split)
    if spec.folder:  # an extracted folder holds both splits: name every file it needs
        every = [f for s in SPLITS for f in spec.needed(s)]
        what = f"{spec.folder}/{{{','.join(every)}}} (or {spec.archive})"
    else:
        what = ", ".join(files)
    return (f"dataset {spec.name!r} ({split}) not found and could not be downloaded. "
            f"Put {what} into one of: {', '.join(str(d) for d in dirs)} "
            f"(or set ${'SHARPEN_DATA'}, or pass an explicit data directory)")


def locate(spec: DatasetSpec, split: str, root: str | os.PathLike[str] | None,
           download_ok: bool = True) -> Path:
    """The folder holding ``spec``'s files for ``split``, extracting or downloading them."""
    dirs = candidate_dirs(spec.name, root, spec.system_dirs)
    needed = spec.needed(split)
    if spec.folder:  # CIFAR: extracted folder, or an archive to extract
        hit = find_files([d / spec.folder for d in dirs], needed)
        if hit:
            return hit
        for d in dirs:
            for arc in (spec.archive, spec.archive.replace(".tar.gz", ".tar.xz")):
                if (d / arc).is_file():
                    return _extract(spec, d / arc, d)
    else:
        hit = find_files(dirs, needed)
        if hit:
            return hit
    if not download_ok or os.environ.get("SHARPEN_OFFLINE"):
        raise SharpenError(_where_to_put(spec, split, dirs))
    target = Path(root).expanduser() if root is not None else cache_dir() / spec.name
    try:
        if spec.folder:
            arc = _download_any(spec, spec.archive, target)
            return _extract(spec, arc, target)
        for f in needed:
            if not (target / f).is_file():
                _download_any(spec, f, target)
        return target
    except SharpenError as exc:
        raise SharpenError(f"{_where_to_put(spec, split, dirs)}. Last error: {exc}") from exc


def _download_any(spec: DatasetSpec, filename: str, target: Path) -> Path:
    last: Exception | None = None
    for mirror in spec.mirrors:
        try:
            return download(mirror + filename, target / filename, spec.md5.get(filename, ()))
        except SharpenError as exc:
            last = exc
    raise SharpenError(str(last) if last else f"no mirror for {filename}")


def _extract(spec: DatasetSpec, archive: Path, beside: Path) -> Path:
    dest = beside if os.access(beside, os.W_OK) else cache_dir() / spec.name
    if (dest / spec.folder).is_dir():
        return dest / spec.folder
    dest.mkdir(parents=True, exist_ok=True)
    safe_extract(archive, dest)
    if not (dest / spec.folder).is_dir():
        raise SharpenError(f"{archive} does not contain the folder {spec.folder}/")
    return dest / spec.folder


def fetch(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Make sure both splits are present (downloading if needed); return their folders."""
    spec = get_spec(name)
    if spec.format in ("synthetic", "synthetic-waves", "bundled"):
        return [SAMPLE_DIR] if spec.format == "bundled" else []
    return [locate(spec, s, root) for s in SPLITS]


def verify_files(name: str, root: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """Check every file of ``name`` against its known-good md5s; return (path, md5) pairs."""
    spec = get_spec(name)
    out = []
    for split in SPLITS if spec.files else ():
        folder = SAMPLE_DIR if spec.format == "bundled" else locate(spec, split, root, download_ok=False)
        for f in spec.needed(split):
            check_md5(spec, folder / f)
            out.append((folder / f, md5_file(folder / f)))
    return out


def check_val_size(n: int, val_size: int) -> None:
    """``val_size`` must leave a training set of ``n`` images one or more to train on."""
    if not 0 <= val_size < n:
        raise SharpenError(f"field val_size: must be in [0, {n - 1}] (a training set of {n} "
                           f"images keeps one or more to train on); got {val_size}")


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, val) split of ``range(n)``; ``val_size`` images go to validation."""
    check_val_size(n, val_size)
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def synthetic(split: str, n: int | None = None, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten classes of smooth random templates, each image shifted by up to ±3 px plus noise.

    Deterministic (fixed seeds), learnable in a few epochs, 2,000 train / 500 test images.
    """
    n = n if n is not None else (2000 if split == "train" else 500)
    g = torch.Generator().manual_seed(12345)
    coarse = torch.rand(10, 1, 7, 7, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                                align_corners=False).clamp(0, 1)
    gs = torch.Generator().manual_seed(1 if split == "train" else 2)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=gs)]
    shifts = torch.randint(-3, 4, (n, 2), generator=gs)
    imgs = templates[labels]
    rows = [torch.roll(imgs[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
            for i in range(n)]
    x = torch.stack(rows) + 0.15 * torch.randn(n, 1, size, size, generator=gs)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.int64)


def synthetic_waves(split: str, n: int | None = None, length: int = 128
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """A documented 1-D task: classify the waveform shape of a noisy periodic signal.

    Classes: 0 sine, 1 square, 2 triangle, 3 sawtooth, 4 sine + 0.3·3rd harmonic,
    5 amplitude-modulated sine. Frequency 2–6 cycles per window, random phase, amplitude
    0.6–1, Gaussian noise σ 0.15; values mapped from [−2, 2] to uint8. The classes differ in
    their sharp features (edges, corners), which is what a blur curriculum hides first.
    """
    n = n if n is not None else (3000 if split == "train" else 1200)
    g = torch.Generator().manual_seed(101 if split == "train" else 202)
    y = torch.arange(n) % 6
    y = y[torch.randperm(n, generator=g)]
    t = torch.linspace(0, 1, length + 1)[:-1].view(1, -1)
    f = 2 + 4 * torch.rand(n, 1, generator=g)
    ph = torch.rand(n, 1, generator=g)
    amp = 0.6 + 0.4 * torch.rand(n, 1, generator=g)
    u = (f * t + ph) % 1.0  # phase in cycles
    s = torch.sin(2 * torch.pi * u)
    waves = torch.stack([
        s,
        torch.sign(s),
        1 - 4 * (u - 0.5).abs(),
        2 * u - 1,
        (s + 0.3 * torch.sin(6 * torch.pi * u)) / 1.2,
        s * (0.55 + 0.45 * torch.sin(2 * torch.pi * (t + ph))),
    ])  # 6×n×L
    x = amp * waves[y, torch.arange(n)] + 0.15 * torch.randn(n, length, generator=g)
    q = ((x.clamp(-2, 2) + 2) / 4 * 255).round().to(torch.uint8)
    return q.view(n, 1, length), y.to(torch.int64)
