"""Markdown reports of the benchmarks: measuring lives in conv.py and train.py, writing here."""

from __future__ import annotations

from typing import Any


def _speed(r: float) -> str:
    return f"{r:.1f}× faster" if r >= 1 else f"{1 / r:.1f}× slower"


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def conv_markdown(profile: str, fits: list[dict[str, Any]], base_rows: dict[str, Any],
                  rows: list[dict[str, Any]], seconds: float, base: dict[str, int],
                  predicted: dict[str, Any]) -> str:
    """The conv benchmark's report.md: ``base`` is its base point, ``predicted`` the
    exponents the paper's formulas predict (both from bench/conv.py, which measures)."""
    BASE, PREDICTED = base, predicted  # noqa: N806 - the benchmark's constants, by name

    lines = [f"# NumPy conv implementations ({profile} profile, {seconds:.0f} s)", "",
             f"Base point: {BASE} (F_in = F_out = channels, padding k//2, float64).", "",
             "## Speed at the base point (measured in this run)", "",
             "| impl | forward ms | backward ms | fwd peak MiB | bwd peak MiB |", "|---|---|---|---|---|"]
    for impl, r in base_rows.items():
        mf = "–" if r["mem_fwd"] != r["mem_fwd"] else f"{r['mem_fwd'] / 2**20:.2f}"
        mb = "–" if r["mem_bwd"] != r["mem_bwd"] else f"{r['mem_bwd'] / 2**20:.2f}"
        lines.append(f"| {impl} | {1e3 * r['t_fwd']:.2f} | {1e3 * r['t_bwd']:.2f} | {mf} | {mb} |")
    lines.append("")
    ratios = []
    for num, den in (("loops", "im2col"), ("correlate", "im2col"), ("im2col", "torch"),
                     ("loops", "correlate")):
        if num in base_rows and den in base_rows:
            a, b = base_rows[num], base_rows[den]
            ratios.append(f"- {den} vs {num}: {_speed(a['t_fwd'] / b['t_fwd'])} forward, "
                          f"{_speed(a['t_bwd'] / b['t_bwd'])} backward")
    lines += ratios + ["", "## Fitted exponents (log-log slope) vs the paper's formulas", "",
                       "| variable | impl | time fwd | time bwd | seed T | mem fwd | seed S_fwd | "
                       "mem bwd | seed S_bwd |", "|---|---|---|---|---|---|---|---|---|"]
    for f in fits:
        v = f["variable"]
        lines.append(f"| {v} | {f['impl']} | {_f(f['time_fwd'])} | {_f(f['time_bwd'])} | "
                     f"{PREDICTED['time'][v]} | {_f(f['mem_fwd'])} | {PREDICTED['mem_fwd'][v]} | "
                     f"{_f(f['mem_bwd'])} | {PREDICTED['mem_bwd'][v]} |")
    lines += ["", "Memory is the peak of NumPy allocations during one call (tracemalloc), "
              "outputs and temporaries included; PyTorch's is not traced."]
    # crossover: smallest size where im2col beats correlate, per variable
    cross = []
    for var in {r["variable"] for r in rows}:
        pts = sorted({r["value"] for r in rows if r["variable"] == var})
        for v in pts:
            t = {r["impl"]: r["t_fwd"] + r["t_bwd"] for r in rows
                 if r["variable"] == var and r["value"] == v}
            if "im2col" in t and "correlate" in t and t["correlate"] < t["im2col"]:
                cross.append(f"- {var} = {v}: correlate beats im2col "
                             f"({1e3 * t['correlate']:.2f} vs {1e3 * t['im2col']:.2f} ms)")
    lines += ["", "## Where correlate beats im2col (forward + backward)", ""]
    lines += sorted(cross) or ["- nowhere in this sweep"]
    return "\n".join(lines) + "\n"




def train_markdown(res: dict[str, Any]) -> str:
    """The training benchmark's report.md, from its benchmark.json."""
    m = res["machine"]
    md = [f"# sharpen bench train ({res['profile']} profile, device {res['device']}, "
          f"{res['seconds']:.0f} s)", "",
          f"{m['processor']}, {m['cpus']} cores, {m['device']}, torch {res['versions']['torch']}, "
          f"Python {res['versions']['python']}", "",
          *(["**Quick profile: a smoke check of the benchmark itself.** Its runs are a few "
             "seconds long, so start-up costs (data loading, process and model set-up) weigh "
             "as much as training and its ratios are not those of the full profile (the "
             "10-seed wall ratio reads about 2.6 here and 0.5 in the full profile); quote "
             "only `--profile full`.", ""] if res.get("profile") == "quick" else []),
          "| case | epochs × images | ours img/s | canonical img/s | ratio (median of reps) |",
          "|---|---|---|---|---|"]
    md += [f"| {r['case']} | {r['epochs']} × {r['images']} | {r['ours_img_s']:.0f} | "
           f"{r['canonical_img_s']:.0f} | {r['ratio']:.2f} ({r['reps']}) |" for r in res["throughput"]]
    md += ["", f"fp32 matmul (best of several 1024² and 2048² products): {res['matmul_gflops']:.1f} "
               "GFLOP/s", "",
           "| training step | seeds | GFLOP/step | GFLOP/s | of matmul rate | conv+matmul share of "
           "step time | conv+matmul kernels' GFLOP/s | of matmul rate |",
           "|---|---|---|---|---|---|---|---|"]
    md += [f"| {f['model']}, batch {f['batch']} | {f['seeds']} | {f['step_gflop']:.3f} | "
           f"{f['achieved_gflops']:.1f} | {100 * f['fraction']:.1f} % | "
           f"{100 * f['compute_kernel_time_share']:.0f} % | {f['compute_kernel_gflops']:.1f} | "
           f"{100 * f['compute_kernel_fraction']:.0f} % |" for f in res["flops"]]
    md += ["", "| training step | plain PyTorch img/s (NCHW, for-loop Adam) | ours img/s "
               "(channels_last, fused Adam) | ours / plain | + bf16 autocast img/s | bf16 / ours |",
           "|---|---|---|---|---|---|"]
    md += [f"| {r['model']}, batch {r['batch']} | {r['plain_img_s']:.0f} | {r['ours_img_s']:.0f} | "
           f"{r['ours_vs_plain']:.2f} | {r['bf16_img_s']:.0f} | {r['bf16_vs_ours']:.2f} |"
           for r in res["step_options"]]
    ts, pp = res["ten_seeds"], res["pairs"]
    md += ["",
           f"10-seed sharpening experiment ({ts['epochs']} epochs each, evaluation and files "
           "included): " + ", ".join(f"{w['setup']} {w['seconds']:.1f} s" for w in ts["setups"])
           + f"; canonical loop ×10 {ts['canonical_s']:.1f} s; wall-time ratio, default plan: "
           f"{ts['ratio']:.2f} (one job per seed: {ts['ratio_one_job_per_seed']:.2f})", "",
           f"Paper 004's protocol ({pp['dataset']}, {pp['pairs']} pairs, {pp['seeds']} seeds × 3 "
           f"models, {pp['epochs']} epochs): " + ", ".join(
               f"{w['setup']} {w['seconds']:.1f} s ({w['seeds_per_s']:.2f} seeds/s)"
               for w in pp["setups"]) + f"; seeds/s ratio {pp['ratio']:.2f}"]
    said = ts["setups"][0].get("plan")
    if said:  # older benchmark.json files do not say
        md += ["", f"The default plan's stacking for the 10 seeds: {said['groups']} job(s) of up to "
                   f"{said['stack']} seeds ({said['why']})."]
    if "targets" in res:
        md += ["", "| measure | value | target | met | missed by |", "|---|---|---|---|---|"]
        md += [f"| `{t['key']}` | {t['value']:.3g} | {t['target']} | {'yes' if t['met'] else 'no'} | "
               + ("–" if t["met"] else f"{100 * t['missed_by']:.0f} %") + " |" for t in res["targets"]]
    return "\n".join(md) + "\n"
