"""What a model's output means: the loss and the accuracy metrics of a task.

Every method works per sample (the trainer reduces per seed over a stacked batch):
``loss`` returns N losses, ``correct`` N 0/1 values, ``extra`` per metric N counts and how
many items each sample holds; ``predict`` (optional) the N predicted classes, which each
run stores per image (predictions.npz). ``ClassificationTask`` is the default (logits N×K, labels N).
``PairTask`` is the digit-pair comparison of papers 002/004: targets N×3 = (1 if digit₁ ≤
digit₂, digit₁, digit₂) and a pair model's output dict with any of ``compare`` (N×2
logits or N×1 logit), ``digits`` (N×2×10 logits or log-probabilities) and
``compare_swapped`` (the model run on the swapped pair, for the asymmetry loss).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class ClassificationTask:
    metrics: tuple[str, ...] = ()

    def __init__(self, loss: str = "cross_entropy"):
        if loss not in ("cross_entropy", "nll"):
            raise ValueError(f"loss must be 'cross_entropy' or 'nll', got {loss!r}")
        self.fn = F.cross_entropy if loss == "cross_entropy" else F.nll_loss

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # y: labels N, or soft targets N×K (mixup, cutmix: cross-entropy against them)
        return self.fn(out.float(), y, reduction="none")

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out.argmax(1)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.predict(out) == (y.argmax(1) if y.dim() == 2 else y)

    def extra(self, out: Any, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
        return {}


class PairTask:
    """Comparison loss (+ auxiliary digit loss, + asymmetry loss) for pair models.

    The model says what it produces through ``model.pair_outputs``: ``compare_loss`` in
    {"ce", "bce", None}, ``aux`` (digit losses on), ``asym`` (swapped-pair loss on),
    ``digit_loss`` in {"ce", "nll"} and ``decide_from_digits`` (the comparison is argmax
    digit₁ ≤ argmax digit₂, as in paper 004's Sub_LeNet5_WS_AL).
    """

    metrics = ("digit_acc",)

    def __init__(self, spec: dict[str, Any], aux_weight: float = 1.0, asym_weight: float = 1.0):
        self.spec, self.aux_weight, self.asym_weight = spec, aux_weight, asym_weight

    def _cmp_loss(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.spec["compare_loss"] == "bce":
            return F.binary_cross_entropy_with_logits(logits.view(-1), t.float(), reduction="none")
        return F.cross_entropy(logits, t, reduction="none")

    def _digit_loss(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fn = F.nll_loss if self.spec.get("digit_loss") == "nll" else F.cross_entropy
        d = d.float()
        return (fn(d[:, 0], y[:, 1], reduction="none") + fn(d[:, 1], y[:, 2], reduction="none")) / 2

    def loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        t = y[:, 0]
        total = torch.zeros(len(y), device=y.device)
        if self.spec.get("compare_loss") and "compare" in out:
            total = total + self._cmp_loss(out["compare"], t)
        if "digits" in out and (self.spec.get("aux") or self.spec.get("decide_from_digits")):
            w = 1.0 if self.spec.get("decide_from_digits") else self.aux_weight
            total = total + w * self._digit_loss(out["digits"], y)
        if self.spec.get("asym") and "compare_swapped" in out:
            swapped = (y[:, 2] <= y[:, 1]).long()  # the true target of the swapped pair
            total = total + self.asym_weight * self._cmp_loss(out["compare_swapped"], swapped)
        return total

    def predict(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.spec.get("decide_from_digits"):
            d = out["digits"].argmax(-1)
            return (d[:, 0] <= d[:, 1]).long()
        c = out["compare"]
        return (c.view(-1) > 0).long() if c.shape[-1] == 1 else c.argmax(1)

    def correct(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return self.predict(out) == y[:, 0]

    def extra(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
        if "digits" not in out:
            return {}
        d = out["digits"].argmax(-1)
        return {"digit_acc": ((d == y[:, 1:]).sum(1), 2)}
