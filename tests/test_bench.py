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
