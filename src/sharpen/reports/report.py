"""Build ``summary.json``, ``table.csv``, ``report.md`` and ``curves.png`` from a run dir."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from sharpen import SharpenError
from sharpen.io import atomic_write_csv, atomic_write_json, atomic_write_text, read_csv
from sharpen.reports.figures import pyplot, save_png

TABLE_COLUMNS = ["arm", "n", "ok", "diverged", "failed", "test_acc_mean", "test_acc_std",
                 "test_acc_best", "test_acc_worst", "best_epoch_acc_mean", "best_epoch_acc_std",
                 "val_acc_mean", "train_acc_mean", "digit_acc_mean", "gap_mean", "seconds_mean",
                 "params"]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _stats(xs: list[float]) -> tuple[float | None, float | None, float | None, float | None]:
    if not xs:
        return None, None, None, None
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return statistics.fmean(xs), sd, max(xs), min(xs)


def load_results(run_dir: Path) -> list[dict[str, Any]]:
    """Result rows from ``runs/*/seed-*/result.json`` (the source of truth)."""
    rows = []
    for p in sorted((run_dir / "runs").glob("*/seed-*/result.json")):
        rows.append(json.loads(p.read_text()))
    if not rows and (run_dir / "results.csv").exists():
        rows = read_csv(run_dir / "results.csv")
    return rows


def table_rows(results: list[dict[str, Any]], arm_order: list[str] | None = None) -> list[dict[str, Any]]:
    """Per arm: counts, mean/std/best/worst of final test accuracy (ok runs only)."""
    arms = arm_order or sorted({r["arm"] for r in results})
    out = []
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue
        ok = [r for r in rs if r.get("status") == "ok"]
        acc = [a for r in ok if (a := _num(r.get("test_acc"))) is not None]
        best = [a for r in ok if (a := _num(r.get("best_test_acc"))) is not None]
        gaps = [a for r in ok if (a := _num(r.get("gap"))) is not None]
        trains = [a for r in ok if (a := _num(r.get("train_acc"))) is not None]
        vals = [a for r in ok if (a := _num(r.get("val_acc"))) is not None]
        digits = [a for r in ok if (a := _num(r.get("digit_acc"))) is not None]
        secs = [a for r in ok if (a := _num(r.get("seconds"))) is not None]
        m, s, b, w = _stats(acc)
        bm, bs, _, _ = _stats(best)
        out.append({
            "arm": arm, "n": len(rs), "ok": len(ok),
            "diverged": sum(r.get("status") == "diverged" for r in rs),
            "failed": sum(r.get("status") == "failed" for r in rs),
            "test_acc_mean": m, "test_acc_std": s, "test_acc_best": b, "test_acc_worst": w,
            "best_epoch_acc_mean": bm, "best_epoch_acc_std": bs,
            "val_acc_mean": _stats(vals)[0], "digit_acc_mean": _stats(digits)[0],
            "train_acc_mean": _stats(trains)[0],
            "gap_mean": _stats(gaps)[0],
            "seconds_mean": _stats(secs)[0],
            "params": next((r.get("params") for r in rs if r.get("params")), None),
        })
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _secs(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _err(r: dict[str, Any]) -> dict[str, Any]:
    """The same row in test error: 1 − accuracy; best error is 1 − best accuracy."""
    flip = {k: (None if r[k] is None else 1 - r[k]) for k in ("test_acc_mean", "test_acc_best",
                                                              "test_acc_worst")}
    return {**r, **flip}


def markdown_table(rows: list[dict[str, Any]], keep_best: bool = False, error: bool = False) -> str:
    what = "test error %" if error else "test acc %"
    rows = [_err(r) for r in rows] if error else rows
    head = (f"| arm | runs (ok/div/fail) | {what} mean ± std | best | worst | val acc % | "
            "gap % | s/run | params |")
    digits = any(r.get("digit_acc_mean") is not None for r in rows)
    if digits:
        head += " digit acc % |"
    if keep_best:
        head += " best-epoch acc % (keep-best) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        pm = (f"{_pct(r['test_acc_mean'])} ± {_pct(r['test_acc_std'])}"
              if r["test_acc_mean"] is not None else "–")
        line = (f"| {r['arm']} | {r['n']} ({r['ok']}/{r['diverged']}/{r['failed']}) | {pm} | "
                f"{_pct(r['test_acc_best'])} | {_pct(r['test_acc_worst'])} | "
                f"{_pct(r['val_acc_mean'])} | {_pct(r['gap_mean'])} | "
                f"{_secs(r['seconds_mean'])} | "
                f"{r['params'] or '–'} |")
        if digits:
            line += f" {_pct(r.get('digit_acc_mean'))} |"
        if keep_best:
            line += (f" {_pct(r['best_epoch_acc_mean'])} ± {_pct(r['best_epoch_acc_std'])} |"
                     if r["best_epoch_acc_mean"] is not None else " – |")
        lines.append(line)
    return "\n".join(lines)


def published_table(published: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Ours beside the seed's numbers: ``[published.<arm>]`` tables of metric = value."""
    ours = {r["arm"]: r for r in rows}
    metric_map = {"test_acc": "test_acc_mean", "gap": "gap_mean", "seconds": "seconds_mean",
                  "best_test_acc": "best_epoch_acc_mean", "val_acc": "val_acc_mean",
                  "digit_acc": "digit_acc_mean", "train_acc": "train_acc_mean",
                  "test_error": "test_acc_mean", "test_error_best": "test_acc_best",
                  "test_error_worst": "test_acc_worst", "test_error_std": "test_acc_std"}
    lines = ["| arm | metric | published | ours |", "|---|---|---|---|"]
    for arm, vals in published.items():
        if not isinstance(vals, dict):
            continue
        for metric, val in vals.items():
            key = metric_map.get(metric, metric)
            mine = ours.get(arm, {}).get(key)
            if mine is not None and metric.startswith("test_error") and metric != "test_error_std":
                mine = 1 - mine
            fmt = (lambda v: f"{v:.1f}") if metric == "seconds" else _pct  # noqa: E731
            pub = fmt(val) if isinstance(val, (int, float)) else str(val)
            lines.append(f"| {arm} | {metric} | {pub} | {fmt(mine) if mine is not None else '–'} |")
    return "\n".join(lines)


def _metrics(run_dir: Path) -> dict[str, list[list[dict[str, str]]]]:
    per_arm: dict[str, list[list[dict[str, str]]]] = {}
    for p in sorted((run_dir / "runs").glob("*/seed-*/metrics.csv")):
        per_arm.setdefault(p.parent.parent.name, []).append(read_csv(p))
    return per_arm


def plot_curves(run_dir: Path, arm_order: list[str]) -> Path | None:
    plt = pyplot()
    import numpy as np

    per_arm = _metrics(run_dir)
    if not per_arm:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm in [a for a in arm_order if a in per_arm] + [a for a in per_arm if a not in arm_order]:
        runs = per_arm[arm]
        n = min(len(r) for r in runs)
        if n == 0:
            continue
        for ax, key in zip(axes, ("test_acc", "train_loss")):
            v = np.array([[float(r[i][key]) for i in range(n)] for r in runs])
            ep = np.arange(1, n + 1)
            m, s = v.mean(0), v.std(0)
            ax.plot(ep, m, label=f"{arm} (n={len(runs)})")
            ax.fill_between(ep, m - s, m + s, alpha=0.2)
    axes[0].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy (mean ± std)")
    axes[1].set(xlabel="epoch", ylabel="train loss", title="training loss (mean ± std)")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, run_dir / "curves.png", dpi=110)


def summarize(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise SharpenError(f"{run_dir} is not a run directory (no config.json)")
    cfg = json.loads(cfg_path.read_text())
    results = load_results(run_dir)
    arms = list(cfg.get("arms", {}))
    return {"experiment": cfg.get("name"), "profile": cfg.get("profile"),
            "seeds": [cfg.get("seed", 0) + i for i in range(cfg.get("runs", 1))],
            "arms": table_rows(results, arms), "n_results": len(results)}


def write_report(run_dir: Path) -> Path:
    """(Re)build every report file of ``run_dir`` from the files in it alone."""

    run_dir = Path(run_dir)
    summary = summarize(run_dir)  # raises a clear error if this is not a run directory
    cfg = json.loads((run_dir / "config.json").read_text())
    env = {}
    if (run_dir / "environment.json").exists():
        env = json.loads((run_dir / "environment.json").read_text())
    summary["environment"] = env
    atomic_write_json(run_dir / "summary.json", summary)
    rows = summary["arms"]
    atomic_write_csv(run_dir / "table.csv", rows, TABLE_COLUMNS)
    arms = list(cfg.get("arms", {}))
    keep_best = any(a.get("keep_best") for a in cfg.get("arms", {}).values())
    png = plot_curves(run_dir, arms)
    parts = [f"# {cfg.get('name')}" + (f" (profile `{cfg['profile']}`)" if cfg.get("profile") else ""),
             "", cfg.get("description", "").strip(), ""]
    if cfg.get("seed_paper"):
        parts += [f"Reproduces: {cfg['seed_paper']}", ""]
    arms_cfg = list(cfg.get("arms", {}).values())
    data = sorted({f"{a['dataset']}" + (f" from {a['data_dir']}" if a.get("data_dir") else "")
                   + (f", {a['pairs']} pairs" if a.get("pairs") else "")
                   + (f", train subset {a['train_size']}" if a.get("train_size") else "")
                   + (f", val {a['val_size']}" if a.get("val_size") else "")
                   + (f", test {a['test_size']}" if a.get("test_size") else "")
                   for a in arms_cfg})
    epochs = sorted({a["epochs"] for a in arms_cfg})
    parts += [f"Data: {'; '.join(data)} · epochs: {', '.join(map(str, epochs))}", ""]
    parts += [f"Seeds: {summary['seeds']} · results: {summary['n_results']} runs · "
              f"torch {env.get('torch', '?')} on {env.get('cuda') or env.get('processor', '?')} "
              f"({env.get('cpu_count', '?')} cores)", "",
              "## Results (final epoch"
              + ("; keep-best column = best test epoch, optimistic" if keep_best else "") + ")",
              "", markdown_table(rows, keep_best, bool(cfg.get("report_error"))), ""]
    if cfg.get("cells"):
        grid_md, grid_rows = grid_table(cfg, load_results(run_dir))
        atomic_write_csv(run_dir / "grid.csv", grid_rows, list(grid_rows[0]) if grid_rows else [])
        parts += ["## Grid: mean test accuracy % per cell (± std over seeds; best per arm in bold)",
                  "", grid_md, ""]
    if cfg.get("published"):
        parts += ["## Ours beside the published numbers", "",
                  published_table(cfg["published"], rows), ""]
    if cfg.get("notes"):
        parts += ["## Notes", "", cfg["notes"].strip(), ""]
    if png:
        parts += ["## Curves", "", f"![curves]({png.name})", ""]
    gf = plot_gradflow(run_dir, arms)
    if gf:
        parts += ["## Gradient flow (mean |∂loss/∂W| per layer, first seed of each arm)", "",
                  f"![gradient flow]({gf.name})", ""]
    for f, title in (("schedule.png", "Schedules"), ("blur_strip.png", "Blurred copies (seed 000)"),
                     ("sigma_strip.png", "Gaussian blur at each σ of the schedule (seed 001)")):
        if (run_dir / f).exists():
            parts += [f"## {title}", "", f"![{f}]({f})", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(parts))
    return run_dir / "report.md"


def plot_gradflow(run_dir: Path, arm_order: list[str]) -> Path | None:
    """Per-layer mean |grad| against layer index, one panel per arm, one line per epoch."""
    files = {p.parent.parent.name: p for p in sorted((run_dir / "runs").glob("*/seed-*/gradflow.csv"))}
    arms = [a for a in arm_order if a in files]
    if not arms:
        return None
    plt = pyplot()

    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.2), squeeze=False,
                             sharey=True)
    for ax, arm in zip(axes[0], arms):
        rows = read_csv(files[arm])
        for ep in sorted({int(r["epoch"]) for r in rows}):
            rs = [r for r in rows if int(r["epoch"]) == ep]
            ax.semilogy([int(r["layer"]) for r in rs], [float(r["mean_abs_grad"]) for r in rs],
                        label=f"epoch {ep}")
        ax.set(title=arm, xlabel="layer (input → output)")
    axes[0][0].set_ylabel("mean |grad|")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, run_dir / "gradflow.png")


def grid_table(cfg: dict[str, Any], results: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Seed 004's layout: one row per grid cell, one column per base arm, mean test accuracy."""
    cells = cfg["cells"]
    axes = list(cfg.get("grid", {}))
    base_arms = list(dict.fromkeys(c["arm"] for c in cells.values()))
    points = list(dict.fromkeys(tuple(c[a] for a in axes) for c in cells.values()))
    by: dict[tuple, dict[str, Any]] = {}
    for derived, c in cells.items():
        rs = [r for r in results if r.get("arm") == derived]
        ok = [a for r in rs if r.get("status") == "ok" and (a := _num(r.get("test_acc"))) is not None]
        div = sum(r.get("status") == "diverged" for r in rs)
        m, s, _, _ = _stats(ok)
        by[(tuple(c[a] for a in axes), c["arm"])] = {"mean": m, "std": s, "n": len(ok), "div": div}
    best = {}
    for arm in base_arms:
        vals = [(by[(p, arm)]["mean"], p) for p in points if by.get((p, arm), {}).get("mean") is not None]
        if vals:
            best[arm] = max(vals)[1]
    head = "| " + " | ".join(axes) + " | " + " | ".join(base_arms) + " |"
    lines = [head, "|" + "---|" * (len(axes) + len(base_arms))]
    rows = []
    for p in points:
        cellstrs, row = [], dict(zip(axes, p))
        for arm in base_arms:
            e = by.get((p, arm))
            if e is None or e["mean"] is None:
                txt = "diverged" if e and e["div"] else "–"
            else:
                txt = f"{100 * e['mean']:.2f} ± {100 * e['std']:.2f}"
                if e["div"]:
                    txt += f" ({e['div']} diverged)"
                if best.get(arm) == p:
                    txt = f"**{txt}**"
            cellstrs.append(txt)
            row[arm] = None if e is None else e["mean"]
        rows.append(row)
        lines.append("| " + " | ".join(str(v) for v in p) + " | " + " | ".join(cellstrs) + " |")
    return "\n".join(lines), rows
