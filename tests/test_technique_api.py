"""Each technique owns all of itself (issue 24, item 5): tests over the registry."""

from __future__ import annotations

import pytest

from sharpen.experiments import RunConfig
from sharpen.techniques import TECHNIQUES, Technique
from sharpen.techniques.base import BlurPadding
from sharpen.training import TrainSettings


@pytest.mark.parametrize("tech", TECHNIQUES, ids=lambda t: t.name)
def test_every_declaration_has_its_implementation(tech):
    assert set(tech.stage_columns) <= set(tech.plan_columns), "a stage is a plan column"
    if tech.run_files:
        assert tech.write_run_files is not Technique.write_run_files
    if tech.data_figure is not None:
        assert tech.figure_images.__func__ is not Technique.figure_images.__func__
    if tech.run_figure is not None:
        assert tech.run_figure.file in tech.run_files, "its figure reads one of its files"
    assert set(tech.idle_at) <= set(tech.plan_columns)


def test_keys_shared_by_techniques_are_declared_once():
    owners = [t.name for t in TECHNIQUES if "padding" in t.Config.model_fields]
    assert owners == ["sharpening", "deblur"]
    assert all(issubclass(t.Config, BlurPadding) for t in TECHNIQUES if t.name in owners)
    # every other key belongs to exactly one technique
    seen: dict[str, str] = {}
    for t in TECHNIQUES:
        for k in t.Config.model_fields:
            if k not in BlurPadding.model_fields:
                assert k not in seen, f"{k} declared by {seen.get(k)} and {t.name}"
                seen[k] = t.name


def test_train_settings_read_every_trainer_key_by_name():
    cfg = RunConfig(epochs=7, batch_size=33, optimizer="adamw", lr=0.2, warmup=1.5,
                    momentum=0.5, weight_decay=0.01, nesterov=True, loss="nll",
                    eval_batch_size=99, channels_last=False, amp="bf16", compile=True,
                    fused_optimizer=False)
    s = TrainSettings.from_config(cfg)
    for k in ("epochs", "batch_size", "optimizer", "lr", "warmup", "momentum", "weight_decay",
              "nesterov", "loss", "eval_batch_size", "channels_last", "amp", "compile",
              "fused_optimizer"):
        assert getattr(s, k) == getattr(cfg, k), k
    assert s.task is None and s.drop_last is False  # not keys of a file


def test_lr_adaptive_is_a_technique_of_the_registry_built_from_its_keys():
    from sharpen.techniques import LrAdaptive, techniques_for

    assert techniques_for(RunConfig()) == []
    (t,) = techniques_for(RunConfig(lr_adaptive=True, lr_adaptive_threshold=0.1,
                                    lr_adaptive_factor=0.25))
    assert isinstance(t, LrAdaptive) and (t.threshold, t.factor) == (0.1, 0.25) and t.stacks


def test_blur_stages_and_sigma_decay_are_the_schedules_they_name(tmp_path):
    from sharpen.errors import SharpenError
    from sharpen.experiments import load_experiment
    from sharpen.techniques import ProgressiveSharpening, RandomizedDeblur, schedule_rows
    from sharpen.training.schedules import as_schedule

    c = RunConfig(blur_n="stages", blur_stages=3, stage_epochs=2, epochs=8)
    assert [r["blur_n"] for r in schedule_rows(c)] == [7, 7, 5, 5, 3, 3, 1, 1]
    # the same as writing the step schedule out by hand, and what the hook applies
    hand = as_schedule({"kind": "step", "start": 7, "delta": -2, "every": 2, "min": 1})
    tech = ProgressiveSharpening.from_config(c)
    assert [tech.plan(e, 8)["blur_n"] for e in range(8)] == [hand.value(e, 8) for e in range(8)]
    d = RunConfig(blur_sigma="decay", blur_sigma0=1.0, epochs=6)
    assert [r["sigma"] for r in schedule_rows(d)] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    assert RandomizedDeblur.from_config(RunConfig(blur_sigma="decay")).plan(0, 4)["sigma"] == 2.0
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\ndataset = "synthetic"\nepochs = 6\nblur_n = "stages"\n'
                 'blur_stages = 3\nstage_epochs = 2\n')
    with pytest.raises(SharpenError, match=r"field blur_stages: 3 stages of 2 epoch\(s\) leave "
                                           r"no sharp epoch in epochs = 6"):
        load_experiment(str(p))
