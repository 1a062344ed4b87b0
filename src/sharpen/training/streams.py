"""Named random streams: every random draw of a run comes from its seed and a name.

A run with seed ``s`` draws its initialisation from stream ``(s, "init")``, its data order
from ``(s, "data_order")``, its dropout masks from ``(s, "dropout")`` and so on. Streams
are independent of each other (a technique that draws more numbers never shifts the data
order) and of how runs are scheduled: seed ``s`` draws the same numbers whether it trains
alone or stacked with nine other seeds, serially, in a worker process or on Ray.

Each stream either *follows* the run seed or is *pinned* (the run key ``vary`` lists the
streams that follow; :class:`Streams`). A pinned stream draws the same numbers for every
seed: from ``stream_seed(pin_seed, name)``, except ``split``, whose pinned seed is the
run key ``split_seed`` itself (the split every run directory made before ``vary`` existed
trained on). By default every stream follows the seed but ``split``: the training /
validation split and the ``train_size`` subset are one for all seeds, as they always were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# the streams the bundled trainer, data and techniques draw from (a user's technique may
# use any other name: a name is all a stream needs)
STREAMS = (
    "init",         # model initialisation (torch's global RNG, seeded before building)
    "data_order",   # the epoch permutation of the training split
    "dropout",      # dropout masks
    "split",        # which training images are held out for validation, and the
                    # train_size subset (pinned by default: split_seed)
    "pairs",        # digit pairs drawn for the run (papers 002, 004)
    "sharpen_mix",  # mixed sharpening: which samples come from the blurred copy
    "deblur",       # randomized deblurring: β per batch
    "erasing",      # random erasing: boxes and noise
    "crop",         # random crop: each image's window
    "flip",         # horizontal flip: which images are flipped
    "cutout",       # cutout: each image's patch
    "mixup",        # mixup: λ and the partner permutation, per batch
    "cutmix",       # cutmix: λ, the box and the partner permutation, per batch
)
ALL = "all"  # vary = "all": every stream follows the seed, a user's own ones too
PINNED_BY_DEFAULT = frozenset({"split"})


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for stream ``name`` of run seed ``seed`` (stable across versions)."""
    if not name or "/" in name:
        raise ValueError(f"a random stream needs a non-empty name without '/', got {name!r}")
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded for stream ``name`` of run seed ``seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))


def check_vary(vary: str | Sequence[str] | None) -> tuple[str, ...] | str | None:
    """``vary`` as stored: None (the default), "all", or the named streams in
    :data:`STREAMS` order; an unknown name, an empty list or another text is a ValueError
    that names the value and the allowed names."""
    allowed = f"allowed: {', '.join(STREAMS)}, or \"{ALL}\""
    if vary is None or vary == ALL:
        return vary
    if not isinstance(vary, (list, tuple)):
        raise ValueError(f"must be a list of stream names or \"{ALL}\" ({allowed})")
    bad = [v for v in vary if v not in STREAMS]
    if bad:
        raise ValueError(f"unknown random stream{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(map(repr, bad))} ({allowed})")
    if not vary:
        raise ValueError("an empty list pins every stream: every seed would train the very "
                         f"same run; name the streams that follow the seed ({allowed})")
    return tuple(s for s in STREAMS if s in vary)


@dataclass(frozen=True)
class Streams:
    """Which streams follow the run seed (``vary``) and what a pinned one draws from.

    ``vary``: None = every stream but ``split`` (today's default), "all", or the names that
    follow the seed (every other stream, a user's own ones too, is pinned)."""

    vary: str | Sequence[str] | None = None
    pin_seed: int = 0
    split_seed: int = 0

    def follows(self, name: str) -> bool:
        """True when stream ``name`` draws from the run seed, False when it is pinned."""
        if self.vary is None:
            return name not in PINNED_BY_DEFAULT
        return self.vary == ALL or name in self.vary

    def seed(self, seed: int, name: str) -> int:
        """The seed stream ``name`` of run seed ``seed`` draws from: its own, or the pinned
        one (the pinned split: ``split_seed`` as given, as every split before ``vary``)."""
        if self.follows(name):
            return stream_seed(seed, name)
        return int(self.split_seed) if name == "split" else stream_seed(self.pin_seed, name)

    def generator(self, seed: int, name: str, device: torch.device | str = "cpu"
                  ) -> torch.Generator:
        """A torch generator on ``device`` for stream ``name`` of run seed ``seed``."""
        return torch.Generator(device=device).manual_seed(self.seed(seed, name))

    @classmethod
    def of(cls, cfg: object) -> Streams:
        """The streams of a run configuration (its ``vary``, ``pin_seed``, ``split_seed``;
        absent ones at their defaults)."""
        return cls(getattr(cfg, "vary", None), int(getattr(cfg, "pin_seed", 0)),
                   int(getattr(cfg, "split_seed", 0)))

    def describe(self) -> str:
        """Which streams follow the seed and what the pinned ones draw from, in words (the
        report's header)."""
        if self.vary == ALL:
            return "every stream follows the seed (vary = \"all\")"
        follow = [s for s in STREAMS if self.follows(s)]
        pinned = [s for s in STREAMS if not self.follows(s)]
        fixed = ([f"split from split_seed {self.split_seed}"] if "split" in pinned else []) \
            + ([f"{'the rest ' if 'split' in pinned else ''}from pin_seed {self.pin_seed}"]
               if set(pinned) - {"split"} else [])
        return (f"follow the seed: {', '.join(follow)}; pinned: {', '.join(pinned)} "
                f"({', '.join(fixed)})")
