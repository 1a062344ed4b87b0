"""Tasks: per-sample losses and decisions against F.* on hand-made outputs (written against
the mutants mutmut found alive in training/tasks.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sharpen.training.tasks import ClassificationTask, PairTask

Y = torch.tensor([[1, 2, 5], [0, 7, 3], [1, 4, 4], [0, 9, 1]])  # (target, digit₁, digit₂)


def _out(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"digits": torch.randn(4, 2, 10, generator=g), "compare": torch.randn(4, 2, generator=g),
            "compare_swapped": torch.randn(4, 2, generator=g)}


def _digits(d, y, fn=F.cross_entropy):
    return (fn(d[:, 0], y[:, 1], reduction="none") + fn(d[:, 1], y[:, 2], reduction="none")) / 2


def test_classification_losses_per_sample_and_soft_target_accuracy():
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(5, 3, generator=g), torch.tensor([0, 2, 1, 1, 0])
    ce = ClassificationTask()
    assert torch.allclose(ce.loss(out, y), F.cross_entropy(out, y, reduction="none"))
    logp = out.log_softmax(1)
    nll = ClassificationTask("nll")
    assert torch.allclose(nll.loss(logp, y), -logp[torch.arange(5), y])
    assert not torch.allclose(nll.loss(out, y), ce.loss(out, y))  # nll takes log-probabilities
    soft = F.one_hot(y, 3).float() * 0.7 + 0.1  # mixup-like targets: the argmax is the label
    assert ce.correct(out, soft).tolist() == (out.argmax(1) == y).tolist()
    assert ce.correct(out, y).tolist() == (out.argmax(1) == y).tolist()
    with pytest.raises(ValueError, match=r"^loss must be 'cross_entropy' or 'nll', got 'mse'$"):
        ClassificationTask("mse")


def test_pair_loss_terms_each_by_hand_with_default_weights():
    o, t = _out(), Y[:, 0]
    swapped = (Y[:, 2] <= Y[:, 1]).long()
    full = PairTask({"compare_loss": "ce", "aux": True, "asym": True}).loss(o, Y)
    want = (F.cross_entropy(o["compare"], t, reduction="none") + _digits(o["digits"], Y)
            + F.cross_entropy(o["compare_swapped"], swapped, reduction="none"))
    assert full.shape == (4,) and torch.allclose(full, want)  # weights 1 and 1 by default
    # NLL takes the model's digit output as log-probabilities, as it is: on unnormalised
    # scores it differs from cross-entropy (on normalised ones the two agree)
    nll = PairTask({"compare_loss": None, "aux": True, "digit_loss": "nll"}).loss(o, Y)
    assert torch.allclose(nll, _digits(o["digits"], Y, F.nll_loss))
    assert not torch.allclose(nll, _digits(o["digits"], Y))
    # a model that decides from its digits: the digit loss at weight 1 whatever aux_weight says
    dec = PairTask({"compare_loss": None, "decide_from_digits": True}, aux_weight=0.25).loss(o, Y)
    assert torch.allclose(dec, _digits(o["digits"], Y))
    # no compare loss asked for: the compare output is ignored; no asym: the swapped one too
    assert torch.allclose(PairTask({"compare_loss": None, "aux": True}).loss(o, Y),
                          _digits(o["digits"], Y))
    assert torch.allclose(PairTask({"compare_loss": "ce"}).loss(o, Y),
                          F.cross_entropy(o["compare"], t, reduction="none"))
    assert torch.equal(PairTask({"compare_loss": None}).loss(o, Y), torch.zeros(4))
    b = torch.tensor([[0.3], [-1.0], [2.0], [0.0]])
    bce = PairTask({"compare_loss": "bce"}).loss({"compare": b}, Y)
    assert torch.allclose(bce, F.binary_cross_entropy_with_logits(b.view(-1), t.float(),
                                                                   reduction="none"))


def test_pair_decisions_from_one_logit_two_logits_or_digits():
    one = PairTask({"compare_loss": "bce"})
    b = torch.tensor([[0.3], [-1.0], [0.0], [1e-6]])
    assert one.predict({"compare": b}).tolist() == [1, 0, 0, 1]  # a logit > 0 says "≤"
    two = PairTask({"compare_loss": "ce"})
    c = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 0.5], [3.0, 3.5]])
    assert two.predict({"compare": c}).tolist() == [1, 0, 1, 1]
    assert two.correct({"compare": c}, Y).tolist() == [True, True, True, False]
    assert two.extra({"compare": c}, Y) == {}
