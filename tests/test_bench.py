from __future__ import annotations

import json


def test_train_benchmark_writes_the_required_ratios(tmp_path):
    from sharpen.bench_train import run_train_bench

    out = run_train_bench(tmp_path / "b", quick=True, log=lambda *_: None)
    res = json.loads((out / "benchmark.json").read_text())
    for key in ("single_run_ratio", "ten_seed_wall_ratio", "flops_fraction_lenet5",
                "flops_fraction_cifar_net", "matmul_gflops", "machine", "versions"):
        assert key in res, key
    assert res["matmul_gflops"] > 0 and 0 < res["flops_fraction_lenet5"] < 1
    assert {r["case"].split(",")[0] for r in res["throughput"]} == {"lenet5_dropout", "nin_cifar"}
    assert all(r["ratio"] == r["ours_img_s"] / r["canonical_img_s"] for r in res["throughput"])
    assert "Targets missed" in (out / "report.md").read_text()
    assert [r["model"] for r in res["step_options"]] == ["lenet5_dropout", "nin_cifar", "vgg08"]
    for r in res["step_options"]:
        assert r["ours_vs_plain"] == r["ours_img_s"] / r["plain_img_s"]
    ts = res["ten_seeds"]
    assert [w["stack_seeds"] for w in ts["setups"]] == [1, 5, 5]
    assert ts["ratio"] == min(w["seconds"] for w in ts["setups"]) / ts["canonical_s"]
    for i in range(3):  # each set-up really ran the 10 seeds through the runner
        results = (out / f"ten-seeds-{i}" / "results.csv").read_text().splitlines()
        assert len(results) == 11 and all(",ok," in line for line in results[1:])
    fb = res["flops_bf16_cifar_net"]  # the bf16 step is compared with both matmul rates
    assert res["matmul_gflops_bf16"] > 0
    assert fb["fraction_of_bf16_matmul"] == fb["achieved_gflops"] / res["matmul_gflops_bf16"]
    f = res["flops"][1]
    assert 0 < f["compute_kernel_time_share"] < 1 and f["compute_kernel_gflops"] > f["achieved_gflops"]
