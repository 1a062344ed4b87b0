"""Named random streams: every random draw of a run comes from its seed and a name.

A run with seed ``s`` draws its initialisation from stream ``(s, "init")``, its data order
from ``(s, "data_order")``, its dropout masks from ``(s, "dropout")`` and so on. Streams
are independent of each other (a technique that draws more numbers never shifts the data
order) and of how runs are scheduled: seed ``s`` draws the same numbers whether it trains
alone or stacked with nine other seeds, serially, in a worker process or on Ray.
"""

from __future__ import annotations

import hashlib

import torch

# the streams the bundled trainer and techniques draw from (a user's technique may use any
# other name: a name is all a stream needs)
STREAMS = (
    "init",         # model initialisation (torch's global RNG, seeded before building)
    "data_order",   # the epoch permutation of the training split
    "dropout",      # dropout masks
    "pairs",        # digit pairs drawn for the run (seeds 002, 004)
    "sharpen_mix",  # mixed sharpening: which samples come from the blurred copy
    "deblur",       # randomized deblurring: β per batch
    "erasing",      # random erasing: boxes and noise
)


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for stream ``name`` of run seed ``seed`` (stable across versions)."""
    if not name or "/" in name:
        raise ValueError(f"a random stream needs a non-empty name without '/', got {name!r}")
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded for stream ``name`` of run seed ``seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))
