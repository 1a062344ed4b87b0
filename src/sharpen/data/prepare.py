"""From a run configuration to the tensors a run trains on: load (cached per process),
subset, split, resize, draw digit pairs — once, on the training device.

The ``train_size`` subset and the training/validation split come from the ``split`` stream
(:class:`~sharpen.training.streams.Streams`): pinned by default, i.e. drawn from
``split_seed`` for every seed, as always; with ``vary`` naming ``split`` each run seed holds
out its own validation images and draws its own subset: the loaded dataset is cached once
per process and each seed gathers its own rows, a copy of its training and validation
images per seed (measured: 10 seeds of full CIFAR-10 with val_size 10000 hold 1.5 GB, of a
5,000-image subset 37 MB). The test set never depends on the seed and is one object shared
by the seeds (digit pairs aside: they are drawn per seed from the ``pairs`` stream)."""

from __future__ import annotations

from typing import Any

import torch

from sharpen.data import check_val_size, get_spec, load, split_indices
from sharpen.data.catalog import SIZES
from sharpen.data.pairs import make_pairs, pair_targets
from sharpen.errors import SharpenError
from sharpen.imageops import resize
from sharpen.training.loop import Split, TrainData
from sharpen.training.streams import Streams

_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def load_cached(cfg: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``load`` for a config's dataset, kept for the life of the process (jobs reuse it)."""
    key = (cfg.dataset, split, cfg.data_dir, cfg.verify)
    if key not in _CACHE:
        _CACHE[key] = load(cfg.dataset, split, root=cfg.data_dir, verify=cfg.verify)
    return _CACHE[key]


def check_test_size(cfg: Any, n_test: int) -> None:
    """``test_size`` against a test split of ``n_test`` images: cutting a 10,000-image
    split to its first 20,000 would quietly test on fewer images than the file says."""
    if cfg.test_size is not None and cfg.test_size > n_test:
        raise SharpenError(f"test_size {cfg.test_size} exceeds the {n_test} test images of "
                           f"{cfg.dataset}" + (" pairs (pairs_test, or pairs)" if cfg.pairs
                                               is not None else "")
                           + f"; allowed: 1 … {n_test}, or leave it out for all of them")


def check_sizes(cfg: Any, n: int) -> None:
    """``train_size`` and ``val_size`` against a training split of ``n`` images (digit
    pairs draw their own: nothing to check), with the messages the split gives."""
    if cfg.pairs is not None:
        return
    if cfg.train_size is not None:
        if cfg.train_size + cfg.val_size > n:
            raise SharpenError(f"train_size {cfg.train_size} + val_size {cfg.val_size} exceeds "
                               f"the {n} training images of {cfg.dataset}")
    elif cfg.val_size:
        check_val_size(n, cfg.val_size)


def check_data_sizes(arms: dict[str, Any]) -> None:
    """Each arm's data-size keys against its catalog set's training split, before a run
    prints or trains anything (it said "running N jobs", then every job failed). A user's
    dataset, or a catalog set read without its md5 check (it may be another copy), is
    checked when it loads."""
    failed: dict[str, str] = {}
    for arm, cfg in arms.items():
        if cfg.dataset in SIZES and cfg.verify:
            try:
                check_sizes(cfg, SIZES[cfg.dataset][0])
                check_test_size(cfg, (cfg.pairs_test or cfg.pairs) if cfg.pairs is not None
                                else SIZES[cfg.dataset][1])
            except SharpenError as exc:
                failed[arm] = str(exc)
    if failed:
        arm, why = next(iter(failed.items()))
        # the same error in every arm (a --set for all of them): the field says it all;
        # else say whose it is (a file may set sizes per arm, a grid per cell)
        same = len(failed) == len(arms) and len(set(failed.values())) == 1
        raise SharpenError(why if same else f"arm {arm!r}: {why}")


def resize_u8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images resized once (bilinear with antialiasing), rounded back to uint8."""
    parts = [resize(x[i:i + chunk].float(), size).round().clamp(0, 255).to(torch.uint8)
             for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else x


def build_data(cfg: Any, device: torch.device, seed: int = 0, test: Split | None = None
               ) -> TrainData:
    """Load, subset and split the dataset for ``cfg``; tensors move to ``device`` once.

    With ``pairs`` the splits are digit pairs drawn from run ``seed``'s ``pairs`` stream;
    the subset and the validation split come from its ``split`` stream (which, pinned, is
    ``split_seed`` whatever the seed; see :func:`uses_seed`). ``test``: the test split
    another seed of the same configuration built (not for pairs), shared instead of
    built again."""
    spec = get_spec(cfg.dataset)
    streams = Streams.of(cfg)
    x, y = load_cached(cfg, "train")
    tx, ty = load_cached(cfg, "test")
    mean, std = spec.mean, spec.std
    if cfg.pairs is not None:
        g = streams.generator(seed, "pairs")  # new pairs for every run seed
        x, t, c = make_pairs(x, y, cfg.pairs + cfg.val_size, g)
        y = pair_targets(t, c)
        tx, t, c = make_pairs(tx, ty, cfg.pairs_test or cfg.pairs, g)
        ty = pair_targets(t, c)
        if cfg.pair_normalize == "train":
            mean, std = ((x.mean() / 255).item(),), ((x.std() / 255).item(),)
    split_seed = streams.seed(seed, "split")  # pinned: cfg.split_seed, as it always was
    g = torch.Generator().manual_seed(split_seed)
    check_sizes(cfg, len(y))
    if cfg.train_size is not None and cfg.pairs is None:
        keep = torch.randperm(len(y), generator=g)[: cfg.train_size + cfg.val_size].sort().values
        x, y = x[keep], y[keep]
    val = None
    if cfg.val_size:
        tr, va = split_indices(len(y), cfg.val_size, split_seed)
        val = Split(x[va].to(device), y[va].to(device))
        x, y = x[tr], y[tr]
    if cfg.test_size is not None:
        check_test_size(cfg, len(ty))
        tx, ty = tx[: cfg.test_size], ty[: cfg.test_size]
    if cfg.data_resize is not None:
        x = resize_u8(x, cfg.data_resize)
        if test is None:
            tx = resize_u8(tx, cfg.data_resize)
        if val is not None:
            val = Split(resize_u8(val.x, cfg.data_resize), val.y)
    return TrainData(Split(x.to(device), y.to(device)),
                     test if test is not None else Split(tx.to(device), ty.to(device)), val,
                     mean, std, classes=None if cfg.pairs is not None else spec.num_classes)


def uses_seed(cfg: Any) -> bool:
    """True when each run seed gets its own data: digit pairs, or a ``split`` stream that
    follows the seed where there is a split to draw (``val_size`` or ``train_size``)."""
    if cfg.pairs is not None:
        return True
    splits = bool(cfg.val_size) or cfg.train_size is not None
    return splits and Streams.of(cfg).follows("split")


def build_group_data(cfg: Any, device: torch.device, seeds: list[int]) -> list[TrainData]:
    """One TrainData per seed; seeds that share their data share one object (one copy), and
    seeds with their own split share the test split."""
    if cfg.pairs is not None:
        return [build_data(cfg, device, s) for s in seeds]
    if not uses_seed(cfg):
        shared = build_data(cfg, device)
        return [shared] * len(seeds)
    first = build_data(cfg, device, seeds[0])
    return [first] + [build_data(cfg, device, s, first.test) for s in seeds[1:]]
