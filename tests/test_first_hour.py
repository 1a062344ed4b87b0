"""A newcomer's first hour: what a short run, a pipe or a typo shows them."""

from __future__ import annotations

import pytest

from sharpen.experiments import load_experiment, run_experiment
from sharpen.techniques import idle_warnings


def test_a_curriculum_squeezed_into_one_epoch_is_reported_as_doing_nothing(tmp_path, capsys):
    exp = load_experiment("sharpening-mnist", "smoke", [
        "dataset=synthetic", "epochs=1", 'arms.sharpening.blur_n={kind="linear", start=5, end=1}'])
    lines = idle_warnings(exp.arms)
    assert any(ln.startswith("arm 'sharpening': sharpening does nothing in this run: its plan "
                             "has blur_n = 1 in every one of its 1 epoch(s)") for ln in lines)
    run_experiment(exp, tmp_path / "r", quiet=True)
    err = capsys.readouterr().err
    assert err.count("sharpen: warning: arm 'sharpening': sharpening does nothing") == 1
    # the same schedule over 5 epochs acts: no warning
    longer = load_experiment("sharpening-mnist", "smoke", [
        "dataset=synthetic", "epochs=5", 'arms.sharpening.blur_n={kind="linear", start=5, end=1}'])
    assert not [ln for ln in idle_warnings(longer.arms) if "'sharpening'" in ln]


@pytest.mark.parametrize("key,value", [("flip_p", '{kind="step", start=0.0, delta=0.5, every=3}'),
                                       ("label_smoothing", "0.0"),
                                       ("crop_pad", "4"), ("blur_sigma", "0.0")])
def test_other_techniques_scheduled_to_nothing_are_named(key, value):
    sets = ["dataset=synthetic", "epochs=2", f"{key}={value}"]
    if key == "crop_pad":
        sets.append("crop_p=0.0")
    exp = load_experiment("quickstart", "smoke", sets)
    lines = idle_warnings(exp.arms)
    if key in ("crop_pad", "blur_sigma", "flip_p"):
        assert lines and all("does nothing in this run" in ln for ln in lines), lines
    else:  # label_smoothing = 0 is off: nothing to warn about
        assert lines == []
