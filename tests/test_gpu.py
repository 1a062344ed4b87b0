"""The GPU suite (issue 26, item 1): ``pytest -m gpu`` on a machine with CUDA; skipped
cleanly everywhere else (CI has no GPU). Each test is the CPU suite's question asked on the
device: stacked = separate per seed, the same numbers run to run (deterministic mode), bf16
and channels_last train, a resumed run equals an uninterrupted one, the data stays on the
device as uint8 with no host copy per batch, and every bundled smoke profile runs."""

from __future__ import annotations

import csv

import pytest
import torch

from sharpen.experiments import RunConfig, list_bundled, load_experiment, run_experiment
from sharpen.experiments.job import run_group
from tests.test_stacking import CASES, SEEDS, _assert_same, _metrics

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _cuda(case: dict, **kw) -> RunConfig:
    return RunConfig.model_validate({**case, "device": "cuda", **kw})


@pytest.mark.parametrize("case", list(CASES))
def test_each_stacked_seed_equals_its_separate_run_on_cuda(case, tmp_path):
    cfg = _cuda(CASES[case])
    dirs = [tmp_path / "stacked" / f"seed-{s}" for s in SEEDS]
    assert all(r["status"] == "ok" for r in run_group(cfg, "a", SEEDS, dirs))
    for s, d in zip(SEEDS, dirs):
        alone = tmp_path / "alone" / f"seed-{s}"
        run_group(cfg, "a", [s], [alone])
        _assert_same(_metrics(d), _metrics(alone))


@pytest.mark.parametrize("strategy", ["loop", "grouped"])
def test_the_same_command_gives_the_same_numbers_on_cuda(tmp_path, strategy):
    cfg = _cuda(CASES["nin_cifar+crop+flip+cutout+mixup+smoothing+ema+adamw"],
                deterministic=True, stack_conv=strategy)
    runs = []
    for k in range(2):
        d = tmp_path / str(k)
        run_group(cfg, "a", SEEDS, [d / f"seed-{s}" for s in SEEDS])
        runs.append([_metrics(d / f"seed-{s}") for s in SEEDS])
    strip = [[[{c: v for c, v in r.items() if c not in ("seconds", "images_per_s")} for r in m]
              for m in run] for run in runs]
    assert strip[0] == strip[1]


@pytest.mark.parametrize("amp,channels_last", [("bf16", True), ("off", True), ("bf16", False)])
def test_bf16_and_channels_last_train_on_cuda(tmp_path, amp, channels_last):
    cfg = _cuda(CASES["vgg38_bn_res+erasing+gradflow"], amp=amp, channels_last=channels_last)
    (res,) = run_group(cfg, "a", [0], [tmp_path / "r"])
    assert res["status"] == "ok" and res["train_loss"] == res["train_loss"]  # not NaN


def test_a_resumed_cuda_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    import sharpen.experiments.job as job

    cfg = _cuda(CASES["lenet5_dropout+staged"], checkpoint=True, deterministic=True)
    whole = tmp_path / "whole"
    run_group(cfg, "a", SEEDS, [whole / f"seed-{s}" for s in SEEDS])
    cut = tmp_path / "cut"
    write = job.atomic_write_bytes

    def stop_after_the_first_checkpoint(path, data):
        write(path, data)
        if path.name == "checkpoint.pt":
            raise KeyboardInterrupt  # killed right after epoch 1 was saved

    monkeypatch.setattr(job, "atomic_write_bytes", stop_after_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_group(cfg, "a", SEEDS, [cut / f"seed-{s}" for s in SEEDS])
    monkeypatch.undo()
    assert (cut / f"seed-{SEEDS[0]}" / "checkpoint.pt").exists()
    run_group(cfg, "a", SEEDS, [cut / f"seed-{s}" for s in SEEDS])
    for s in SEEDS:
        _assert_same(_metrics(cut / f"seed-{s}"), _metrics(whole / f"seed-{s}"))


def test_the_data_stays_on_the_device_as_uint8_without_host_copies(tmp_path):
    from torch.profiler import ProfilerActivity, profile

    from sharpen.data.prepare import build_group_data

    cfg = _cuda(CASES["lenet5_dropout+staged"])
    (data,) = build_group_data(cfg, torch.device("cuda"), [0])
    assert data.train.x.is_cuda and data.train.x.dtype == torch.uint8
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run_group(cfg, "a", [0], [tmp_path / "r"])
    copies = [e for e in prof.key_averages() if "Memcpy HtoD" in e.key]
    n_batches = -(-cfg.train_size // cfg.batch_size) * cfg.epochs
    assert sum(e.count for e in copies) < n_batches  # not one host copy per batch


@pytest.mark.parametrize("name", list_bundled())
def test_every_bundled_smoke_profile_runs_on_cuda(name, tmp_path):
    exp = load_experiment(name, profile="smoke", overrides=["device=cuda"])
    out, results = run_experiment(exp, tmp_path / name, quiet=True, workers=1)
    assert all(r["status"] == "ok" for r in results), results
    assert csv.DictReader(open(out / "results.csv"))
