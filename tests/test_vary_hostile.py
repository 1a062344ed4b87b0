"""Hostile pass on ``vary`` and the features around it (issues 35, 37): each test is one
way a user got a silent wrong answer, checked against the files the runs wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sharpen.cli import main


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's figures cost seconds per invocation and say nothing here."""
    from sharpen.reports import curriculum, report

    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)
    monkeypatch.setattr(curriculum, "curriculum_figures", lambda *a, **k: [])

PAIRS_EXP = """
name = "p"
dataset = "mnist-sample"
pairs = 40
pairs_test = 60
epochs = 1
batch_size = 20
optimizer = "adam"
model = "sub_lenet5"
lr = 0.01

[arms.base]
[arms.pinned]
vary = ["init", "data_order", "dropout"]
"""


def test_an_arm_with_pinned_pairs_is_not_paired_image_by_image_with_one_whose_pairs_follow(
        tmp_path: Path, no_figures: None) -> None:
    """Seed 1 of an arm whose digit pairs are pinned tests on other pairs than seed 1 of the
    default arm (its pairs follow the seed): McNemar compared predictions on different
    images and the paired t-test called them 'the same images'. Different protocols now."""
    exp = tmp_path / "exp.toml"
    exp.write_text(PAIRS_EXP)
    out = tmp_path / "r"
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--workers", "1",
                 "--runs", "2"]) == 0
    labels = {a: np.load(out / "runs" / a / "seed-1" / "predictions.npz")["test_label"]
              for a in ("base", "pinned")}
    assert (labels["base"] != labels["pinned"]).any()  # the truth: other test images
    report = (out / "report.md").read_text()
    paired = report.split("## Paired comparisons")[1].split("##")[0]
    row = next(ln for ln in paired.splitlines() if ln.startswith("| pinned |"))
    assert "Welch" in row and "different protocols" in row, row
    assert "Image by image" not in report  # no McNemar over different images


def test_the_fingerprint_tells_pinned_pairs_and_their_pin_seed_apart() -> None:
    from sharpen.rundir import PROTOCOL_KEYS, fingerprint

    arm = {"dataset": "mnist", "pairs": 100, "epochs": 1}
    default = fingerprint(arm)
    assert default == fingerprint({k: arm.get(k) for k in PROTOCOL_KEYS})  # as it always was
    assert fingerprint({**arm, "vary": "all"}) == default  # pairs follow the seed
    assert fingerprint({**arm, "vary": ["pairs", "init"]}) == default
    pinned = fingerprint({**arm, "vary": ["init"]})
    assert pinned != default
    assert fingerprint({**arm, "vary": ["init"], "pin_seed": 3}) != pinned  # other pairs
    assert fingerprint({**arm, "vary": ["init"], "pin_seed": 0}) == pinned
