"""sharpen bench profile: the trainer's phases and the time split by what ran in them."""

from __future__ import annotations

import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from sharpen.bench.profile import CATEGORIES, OUTSIDE, breakdown, category
from sharpen.training.phases import PHASES, phase


def test_a_phase_costs_nothing_without_a_profiler_and_is_a_range_with_one():
    off = phase("forward")
    assert off is phase("backward")  # the one shared no-op context
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with phase("forward"):
            torch.ones(3).add_(1)
    names = [e.name for e in prof.events()]
    assert "sharpen::forward" in names


def test_operators_fall_in_the_categories_the_report_names():
    assert category("aten::mkldnn_convolution") == "conv/matmul kernels"
    assert category("aten::convolution_backward") == "conv/matmul kernels"
    assert category("aten::addmm") == "conv/matmul kernels"
    assert category("aten::conv2d") == "dispatch"  # only calls convolution
    assert category("aten::unbind") == "dispatch"
    assert category("aten::relu") == "other kernels"
    assert category("aten::_fused_adam_") == "other kernels"
    assert category("autograd::engine::evaluate_function: ConvolutionBackward0") == "autograd"
    assert category("ConvolutionBackward0") == "autograd"


def test_the_breakdown_adds_up_to_the_profiled_time_phase_by_phase():
    """Every microsecond the profiler saw lands in exactly one (phase, category): the sum
    equals the top-level events' total, and each phase's sum its ranges' total."""
    x = torch.randn(64, 1, 28, 28)
    conv = torch.nn.Conv2d(1, 6, 5)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            with phase("forward"):
                y = torch.relu(conv(x)).sum()
            with phase("backward"):
                y.backward()
        torch.ones(10).mul_(2)  # outside every phase
    events = prof.events()
    rows = breakdown(events)
    top = sum(e.cpu_time_total for e in events if e.cpu_parent is None)
    assert sum(sum(r.values()) for r in rows.values()) * 1e6 == \
        pytest.approx(top, rel=1e-9)
    for name in ("forward", "backward"):
        ranges = sum(e.cpu_time_total for e in events if e.name == "sharpen::" + name)
        assert sum(rows[name].values()) * 1e6 == pytest.approx(ranges, rel=1e-9)
    assert rows["forward"]["conv/matmul kernels"] > 0 and rows["forward"]["other kernels"] > 0
    assert rows["backward"]["conv/matmul kernels"] > 0  # convolution_backward
    assert set(rows[OUTSIDE]) == set(CATEGORIES) and rows[OUTSIDE]["other kernels"] > 0


def test_the_quick_profile_runs_both_cases_through_the_runner(tmp_path):
    from sharpen.bench.profile import run_profile_bench

    out = run_profile_bench(tmp_path / "p", quick=True, log=lambda *_: None)
    res = json.loads((out / "profile.json").read_text())
    assert [c["case"] for c in res["cases"]] == ["sharpening", "pairs"]
    for c in res["cases"]:
        phases = [r["phase"] for r in c["phases"]]
        # the trainer's phases a plain run meets, in the trainer's order, then the runner
        for ph in ("setup: data", "data", "forward", "loss", "backward", "optimizer",
                   "evaluation", "files: metrics", "files: checkpoint", "files: results"):
            assert ph in phases, (c["case"], ph)
        assert phases == sorted(phases, key=lambda p: (PHASES + (OUTSIDE,)).index(p))
        assert sum(r["share"] for r in c["phases"]) == pytest.approx(1)
        assert sum(c["categories"].values()) == pytest.approx(1)
        assert set(c["walls"]) == {"default plan", "serial, this process", "serial, profiled"}
        ops = c["top_ops"]
        assert ops and all(not o["op"].startswith("sharpen::") for o in ops)
        assert [o["seconds"] for o in ops] == sorted((o["seconds"] for o in ops), reverse=True)
        assert any(o["category"] == "conv/matmul kernels" for o in ops)
        for w in c["stack_sweep"]:  # every arm's model timed at each stack size
            ms = w["ms_per_seed_step"]
            assert list(ms) == ["1", "2", "5", "10"] and all(v > 0 for v in ms.values())
            assert ms[str(w["fastest"])] == min(ms.values())
    assert [w["model"] for w in res["cases"][1]["stack_sweep"]] == [
        "sub_lenet5", "sub_lenet5_ws", "sub_lenet5_ws_al"]
    md = (out / "report.md").read_text()
    assert "| forward |" in md and "conv/matmul kernels" in md


def test_sharpen_bench_profile_is_the_command(tmp_path, monkeypatch, capsys):
    import sharpen.bench.profile as bp
    from sharpen.cli import main

    seen = {}

    def fake(out, quick=True, log=print):
        seen.update(out=out, quick=quick)
        return tmp_path

    monkeypatch.setattr(bp, "run_profile_bench", fake)
    assert main(["bench", "profile", "--profile", "full", "--out", str(tmp_path / "p")]) == 0
    assert seen == {"out": str(tmp_path / "p"), "quick": False}
    assert f"benchmark directory: {tmp_path}" in capsys.readouterr().out
