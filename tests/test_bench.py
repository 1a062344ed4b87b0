from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_train_benchmark_writes_the_required_ratios(tmp_path):
    from sharpen.bench import run_train_bench

    targets = tmp_path / "t.toml"
    targets.write_text("single_run_ratio = { at_least = 1e9 }\n"
                       "ten_seed_default_wall_ratio = { at_most = 1e9 }\n")
    out = run_train_bench(tmp_path / "b", quick=True, device="cpu", targets=targets,
                          log=lambda *_: None)
    res = json.loads((out / "benchmark.json").read_text())
    for key in ("single_run_ratio", "ten_seed_default_wall_ratio", "pairs_seeds_per_s_ratio",
                "flops_fraction_lenet5_stacked", "flops_fraction_cifar_net", "matmul_gflops"):
        assert res[key] > 0, key
    assert 0 < res["flops_fraction_lenet5_stacked"] < 1
    lenet = res["flops"][0]
    assert lenet["seeds"] == 10 and lenet["fraction"] == lenet["achieved_gflops"] / res["matmul_gflops"]
    assert all(r["ratio"] == pytest.approx(r["ours_img_s"] / r["canonical_img_s"])
               for r in res["throughput"] if r["reps"] == 1)
    ts = res["ten_seeds"]
    assert ts["ratio"] == ts["setups"][0]["seconds"] / ts["canonical_s"]
    for i in (0, 1):  # each set-up really ran 10 seeds through the runner, as its plan says
        d = out / f"ten-seeds-{i}"
        rows = list(csv.DictReader(open(d / "results.csv")))
        assert len(rows) == 10 and all(r["status"] == "ok" for r in rows)
        groups = json.loads((d / "config.json").read_text())["plan"]["arms"]["sharpening"]["groups"]
        size = {s: len(g) for g in groups for s in g}
        assert all(int(r["stacked_seeds"]) == size[int(r["seed"])] for r in rows)
        assert (max(size.values()) > 1) == (i == 0)  # the default stacks; stack_seeds = 1 not
    pp = res["pairs"]
    assert pp["ratio"] == pytest.approx(pp["setups"][0]["seeds_per_s"] / pp["setups"][1]["seeds_per_s"])
    # the targets file decides what is met, and by how much the rest is missed
    t = {r["key"]: r for r in res["targets"]}
    assert not t["single_run_ratio"]["met"]
    assert t["single_run_ratio"]["missed_by"] == pytest.approx((1e9 - res["single_run_ratio"]) / 1e9)
    assert t["ten_seed_default_wall_ratio"]["met"] and t["ten_seed_default_wall_ratio"]["missed_by"] is None
    assert "| `single_run_ratio` |" in (out / "report.md").read_text()


def test_bench_code_holds_no_targets_or_issue_numbers():
    import inspect

    import sharpen.bench.markdown as md
    import sharpen.bench.train as tr

    for mod in (tr, md):
        src = inspect.getsource(mod)
        assert "issue" not in src.lower() and "TARGETS" not in src


def test_the_training_benchmark_trains_what_the_bundled_experiments_ship():
    """bench/train.py reads its settings from the bundled files (issue 24), not a copy."""
    from sharpen.bench import train as bt
    from sharpen.experiments import load_experiment
    from sharpen.training.schedules import as_schedule

    lenet = load_experiment("sharpening-mnist").arms["sharpening"]
    nin = load_experiment("deblur-cifar10").arms["normal"]
    assert bt.LENET_SETTINGS == {"batch_size": lenet.batch_size, "optimizer": lenet.optimizer,
                                 "lr": lenet.lr}
    assert [as_schedule(bt.SHARPENING).value(e, 10) for e in range(10)] == \
        [lenet.blur_n.value(e, 10) for e in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert bt.NIN_SETTINGS == {"batch_size": nin.batch_size, "optimizer": "sgd", "lr": 0.01,
                               "momentum": nin.momentum, "weight_decay": nin.weight_decay}
    import inspect

    src = inspect.getsource(bt)
    assert '"lr": 1e-3' not in src and '"weight_decay": 1e-3' not in src  # no copied table


def test_bench_gpu_runs_its_measurements_on_the_cpu_at_quick_size(tmp_path, monkeypatch):
    """The GPU benchmark's code path, checked where CI can (its numbers mean nothing here);
    without CUDA and without --device it refuses in one line."""

    import torch

    from sharpen.bench.gpu import run_gpu_bench
    from sharpen.errors import SharpenError

    targets = Path(__file__).parents[1] / "benchmarks" / "gpu-targets.toml"
    out = run_gpu_bench(tmp_path / "b", "quick", "cpu", targets, log=lambda m: None)
    res = json.loads((out / "benchmark.json").read_text())
    for k in ("paper001_run_s", "paper001_stacked_s", "lenet_stacked_speedup",
              "fraction_of_matmul", "matmul_gflops"):
        assert res[k] > 0, k
    assert set(res["options"]["ratios_vs_default"]) == {"default", "loop", "grouped", "bf16",
                                                        "deterministic"}
    assert res["lenet_stacked_speedup"] == pytest.approx(
        res["lenet_one_at_a_time_s"] / res["lenet_stacked_s"])
    assert [t["key"] for t in res["targets"]] == ["paper001_run_s", "paper001_stacked_s",
                                                  "lenet_stacked_speedup"]
    md = (out / "report.md").read_text()
    assert "| paper 001 `normal` run, alone |" in md and "| grouped |" in md
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SharpenError, match="no CUDA device here"):
        run_gpu_bench(tmp_path / "c", "quick", None)
