"""Deterministic mode (issue 26, item 2): the flag, what it sets and restores, what it
records; on the CPU a deterministic run gives the numbers of a default one."""

from __future__ import annotations

import csv
import os

import pytest
import torch

from sharpen.experiments import RunConfig
from sharpen.experiments.job import run_group
from sharpen.training import determinism


def test_auto_is_on_for_cuda_only():
    assert RunConfig().deterministic == "auto"
    assert determinism.resolve("auto", "cuda") is True
    assert determinism.resolve("auto", "cuda:1") is True
    assert determinism.resolve("auto", "cpu") is False
    assert determinism.resolve(True, "cpu") is True and determinism.resolve(False, "cuda") is False


def test_the_mode_is_set_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with determinism.deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert torch.backends.cudnn.deterministic is False


@pytest.mark.parametrize("model", ["lenet5_dropout", "vgg08_bn"])
def test_a_deterministic_cpu_run_trains_and_equals_the_default_one(tmp_path, model):
    base = dict(dataset="synthetic", train_size=120, test_size=60, epochs=2, batch_size=40,
                optimizer="adam", lr=3e-3, checkpoint=False, threads=1, device="cpu",
                model=model, model_args={"width": 8} if model.startswith("vgg") else {})
    rows, res = {}, {}
    for det in (False, True):
        d = tmp_path / str(det)
        (res[det],) = run_group(RunConfig(**base, deterministic=det), "a", [0], [d])
        rows[det] = list(csv.DictReader(open(d / "metrics.csv")))
    assert res[True]["status"] == "ok" and res[True]["deterministic"] is True
    assert res[False]["deterministic"] is False
    for a, b in zip(rows[False], rows[True]):
        assert {k: v for k, v in a.items() if k not in ("seconds", "images_per_s")} == \
            {k: v for k, v in b.items() if k not in ("seconds", "images_per_s")}
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the job


def test_the_report_says_which_mode_ran(tmp_path):
    from sharpen.experiments import load_experiment, run_experiment

    p = tmp_path / "e.toml"
    p.write_text('name = "e"\ndataset = "synthetic"\ntrain_size = 80\ntest_size = 40\n'
                 'epochs = 1\nruns = 2\nthreads = 1\ndeterministic = true\n')
    out, _ = run_experiment(load_experiment(str(p)), tmp_path / "r", quiet=True, workers=1)
    assert "· deterministic kernels: on" in (out / "report.md").read_text()
