"""Regularisers that act on batches: random erasing (Zhong et al. 2017; seed 003)."""

from __future__ import annotations

import math

import torch

from sharpen.training.loop import Hook, TrainState


def random_erasing(x: torch.Tensor, p: float = 0.5, area: tuple[float, float] = (0.02, 0.33),
                   aspect: tuple[float, float] = (0.3, 3.3), generator: torch.Generator | None = None,
                   attempts: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase one random box per image with probability ``p``; fill it with N(0, 1) noise.

    Per image: area fraction ~ U(area), aspect ratio log-uniform in ``aspect``, box
    h = round(√(A·r)), w = round(√(A/r)); the first of ``attempts`` draws that fits is used
    (none fits: the image is left alone), position uniform. All images are handled at once
    on x's device. Returns (erased x, boxes N×4 as top, left, h, w; h = 0 where untouched).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not (0 < area[0] <= area[1] <= 1) or not (0 < aspect[0] <= aspect[1]):
        raise ValueError(f"need 0 < area_lo <= area_hi <= 1 and 0 < aspect_lo <= aspect_hi; "
                         f"got area {area}, aspect {aspect}")
    n, _, H, W = x.shape
    g = generator

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    apply = u(n) < p
    a = (area[0] + (area[1] - area[0]) * u(n, attempts)) * H * W
    r = torch.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * u(n, attempts))
    h = torch.sqrt(a * r).round().long()
    w = torch.sqrt(a / r).round().long()
    fits = (h >= 1) & (w >= 1) & (h < H) & (w < W)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    ok = apply & (first >= 0)
    pick = first.clamp(min=0).view(-1, 1)
    h, w = h.gather(1, pick).squeeze(1) * ok, w.gather(1, pick).squeeze(1) * ok
    top = (u(n) * (H - h + 1).float()).floor().long().clamp(max=H - 1)
    left = (u(n) * (W - w + 1).float()).floor().long().clamp(max=W - 1)
    boxes = torch.stack([top, left, h, w], 1)
    bd = boxes.to(x.device)
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    mask = ((rows >= bd[:, 0, None, None]) & (rows < (bd[:, 0] + bd[:, 2])[:, None, None])
            & (cols >= bd[:, 1, None, None]) & (cols < (bd[:, 1] + bd[:, 3])[:, None, None]))
    noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    return torch.where(mask.unsqueeze(1), noise, x), boxes


class RandomErasing(Hook):
    """Apply :func:`random_erasing` to every training batch (never at evaluation)."""

    seed_batchable = True  # acts on each sample on its own

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.33),
                 aspect: tuple[float, float] = (0.3, 3.3)):
        self.p, self.area, self.aspect = p, tuple(area), tuple(aspect)
        self._gen: torch.Generator | None = None

    def on_epoch_start(self, state: TrainState) -> None:
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(state.seed * 1_000_003 + 3)

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return random_erasing(x, self.p, self.area, self.aspect, self._gen)[0], y
