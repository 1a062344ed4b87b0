"""Digit pairs (papers 002 and 004; the public EPFL deep-learning course protocol).

Average-pool the 28×28 digits by 2 to 14×14; draw a random permutation; the first 2N
images make N pairs (images 2i and 2i+1). Input N×2×14×14, classes N×2, target 1 if
digit₁ ≤ digit₂. Train pairs come from the training split, test pairs from the test split,
with a fresh draw for every run seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sharpen.errors import SharpenError

# the pairs are built from 1×28×28 digits, average-pooled by 2: each pair is 2×14×14
IMAGE_SHAPE = (1, 28, 28)
POOL = 2


def pair_input_shape(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The model input of one pair made from images of ``image_shape`` (2×14×14 from
    MNIST-shaped digits); a SharpenError for any other image shape."""
    if tuple(image_shape) != IMAGE_SHAPE:
        raise SharpenError("digit pairs need a 1×28×28 dataset (mnist, fashion-mnist, "
                           f"mnist-sample), not {'×'.join(map(str, image_shape))}")
    side = IMAGE_SHAPE[1] // POOL
    return (2, side, side)


def make_pairs(images: torch.Tensor, labels: torch.Tensor, n: int,
               generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input float N×2×14×14 on the 0..255 scale, target int64 N, classes int64 N×2)``."""
    if images.dim() != 4:
        raise SharpenError(f"digit pairs need N×1×28×28 images, got {tuple(images.shape)}")
    shape = pair_input_shape(tuple(images.shape[1:]))
    if 2 * n > len(images):
        raise SharpenError(f"{n} pairs need {2 * n} images, the split has only {len(images)}")
    pick = torch.randperm(len(images), generator=generator)[: 2 * n]
    small = F.avg_pool2d(images[pick].float(), POOL)  # 2N×1×14×14
    classes = labels[pick].view(n, 2).long()
    target = (classes[:, 0] <= classes[:, 1]).long()
    return small.view(n, *shape), target, classes


def pair_targets(target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The N×3 label tensor the trainer carries: (target, digit₁, digit₂)."""
    return torch.cat([target[:, None], classes], 1)
