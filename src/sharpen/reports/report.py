"""Build ``summary.json``, ``table.csv``, ``report.md`` and ``curves.png`` from a run dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sharpen import SharpenError
from sharpen.io import atomic_write_csv, atomic_write_json, atomic_write_text, read_csv
from sharpen.reports.claims import as_number as _num
from sharpen.reports.claims import claims_table, fmt_value, metric_of, run_values
from sharpen.reports.figures import arm_colors, integer_epochs, pyplot, save_figure
from sharpen.reports.stats import against_published, compare, summary

TABLE_COLUMNS = ["arm", "n", "ok", "diverged", "failed", "test_acc_mean", "test_acc_std",
                 "test_acc_ci_low", "test_acc_ci_high", "test_acc_best", "test_acc_worst",
                 "selected_test_acc_mean", "selected_test_acc_ci_low", "selected_test_acc_ci_high",
                 "best_epoch_acc_mean", "best_epoch_acc_std", "val_acc_mean", "train_acc_mean",
                 "digit_acc_mean", "gap_mean", "gap_ci_low", "gap_ci_high", "seconds_mean",
                 "params"]


def load_results(run_dir: Path) -> list[dict[str, Any]]:
    """Result rows from ``runs/*/seed-*/result.json`` (the source of truth)."""
    rows = []
    for p in sorted((run_dir / "runs").glob("*/seed-*/result.json")):
        rows.append(json.loads(p.read_text()))
    if not rows and (run_dir / "results.csv").exists():
        rows = read_csv(run_dir / "results.csv")
    return rows


def table_rows(results: list[dict[str, Any]], arm_order: list[str] | None = None,
               values: dict[str, dict[int, dict[str, float]]] | None = None) -> list[dict[str, Any]]:
    """Per arm: counts; n, mean, sd, 95 % CI, best, worst of final test accuracy (ok runs);
    with ``values`` (run_values of the directory) the test accuracy at the epoch chosen on
    validation accuracy too."""
    arms = arm_order or sorted({r["arm"] for r in results})
    out = []
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue
        ok = [r for r in rs if r.get("status") == "ok"]

        def col(key: str, ok: list[dict[str, Any]] = ok) -> list[float]:
            return [a for r in ok if (a := _num(r.get(key))) is not None]

        acc, gap = summary(col("test_acc")), summary(col("gap"))
        best = summary(col("best_test_acc"))
        sel = summary(list(metric_of(values, arm, "selected_test_acc").values()) if values else [])
        out.append({
            "arm": arm, "n": len(rs), "ok": len(ok),
            "diverged": sum(r.get("status") == "diverged" for r in rs),
            "failed": sum(r.get("status") == "failed" for r in rs),
            "test_acc_n": acc["n"], "test_acc_mean": acc["mean"], "test_acc_std": acc["sd"],
            "test_acc_ci_low": acc["ci_low"], "test_acc_ci_high": acc["ci_high"],
            "test_acc_best": acc["best"], "test_acc_worst": acc["worst"],
            "selected_test_acc_mean": sel["mean"], "selected_test_acc_ci_low": sel["ci_low"],
            "selected_test_acc_ci_high": sel["ci_high"],
            "best_epoch_acc_mean": best["mean"], "best_epoch_acc_std": best["sd"],
            "val_acc_mean": summary(col("val_acc"))["mean"],
            "digit_acc_mean": summary(col("digit_acc"))["mean"],
            "train_acc_mean": summary(col("train_acc"))["mean"],
            "gap_mean": gap["mean"], "gap_ci_low": gap["ci_low"], "gap_ci_high": gap["ci_high"],
            "seconds_mean": summary(col("seconds"))["mean"],
            "params": next((r.get("params") for r in rs if r.get("params")), None),
        })
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _secs(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _sd(v: float | None) -> str:
    return "n/a" if v is None else _pct(v)


def _ci(lo: float | None, hi: float | None) -> str:
    return "n/a" if lo is None or hi is None else f"[{_pct(lo)}, {_pct(hi)}]"


def _err(r: dict[str, Any]) -> dict[str, Any]:
    """The same row in test error: 1 − accuracy; best error is 1 − best accuracy."""
    flip = {k: (None if r[k] is None else 1 - r[k]) for k in (
        "test_acc_mean", "test_acc_best", "test_acc_worst", "test_acc_ci_low", "test_acc_ci_high",
        "selected_test_acc_mean", "selected_test_acc_ci_low", "selected_test_acc_ci_high")}
    # 1 − x reverses an interval's ends
    flip["test_acc_ci_low"], flip["test_acc_ci_high"] = flip["test_acc_ci_high"], flip["test_acc_ci_low"]
    flip["selected_test_acc_ci_low"], flip["selected_test_acc_ci_high"] = (
        flip["selected_test_acc_ci_high"], flip["selected_test_acc_ci_low"])
    return {**r, **flip}


def markdown_table(rows: list[dict[str, Any]], keep_best: bool = False, error: bool = False) -> str:
    """n, mean, sd, 95 % CI (Student t), best, worst of the final test metric per arm; the
    test metric at the epoch chosen on validation where there is a validation split; the
    best test epoch (selection on test, optimistic) under ``keep_best``."""
    what = "test error %" if error else "test acc %"
    rows = [_err(r) for r in rows] if error else rows
    selected = any(r.get("selected_test_acc_mean") is not None for r in rows)
    head = (f"| arm | runs (ok/div/fail) | {what} mean | sd | 95 % CI | best | worst |")
    if selected:
        head += f" {what} at best-val epoch (95 % CI) |"
    head += " val acc % | gap % | s/run | params |"
    digits = any(r.get("digit_acc_mean") is not None for r in rows)
    if digits:
        head += " digit acc % |"
    if keep_best:
        head += " best test epoch acc % (selected on test: optimistic) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        best, worst = r["test_acc_best"], r["test_acc_worst"]  # after _err: best error
        line = (f"| {r['arm']} | {r['n']} ({r['ok']}/{r['diverged']}/{r['failed']}) | "
                f"{_pct(r['test_acc_mean'])} | {_sd(r['test_acc_std'])} | "
                f"{_ci(r['test_acc_ci_low'], r['test_acc_ci_high'])} | {_pct(best)} | {_pct(worst)} |")
        if selected:
            line += (f" {_pct(r['selected_test_acc_mean'])} "
                     f"{_ci(r['selected_test_acc_ci_low'], r['selected_test_acc_ci_high'])} |")
        line += (f" {_pct(r['val_acc_mean'])} | {_pct(r['gap_mean'])} | "
                 f"{_secs(r['seconds_mean'])} | {r['params'] or '–'} |")
        if digits:
            line += f" {_pct(r.get('digit_acc_mean'))} |"
        if keep_best:
            line += (f" {_pct(r['best_epoch_acc_mean'])} ± {_sd(r['best_epoch_acc_std'])} |"
                     if r["best_epoch_acc_mean"] is not None else " – |")
        lines.append(line)
    return "\n".join(lines)


def paired_table(values: dict[str, dict[int, dict[str, float]]], arms: list[str], baseline: str,
                 metric: str = "test_acc") -> str:
    """Each arm against ``baseline`` on ``metric``, per seed (paired t) or, without common
    seeds, unpaired (Welch); mean difference with its 95 % CI, p-value, effect size."""
    lines = [f"| arm − {baseline} | n | mean difference | 95 % CI | p | test | effect size |",
             "|---|---|---|---|---|---|---|"]
    base = metric_of(values, baseline, metric)
    for arm in arms:
        if arm == baseline:
            continue
        c = compare(metric_of(values, arm, metric), base)
        p = "n/a" if c["p"] is None else f"{c['p']:.3g}"
        eff = "n/a" if c["effect"] is None else f"{c['effect_name']} = {c['effect']:.2f}"
        lines.append(f"| {arm} | {c['n']} | {fmt_value(metric, c['diff'], True)} | "
                     f"[{fmt_value(metric, c['ci_low'], True)}, {fmt_value(metric, c['ci_high'], True)}] | "
                     f"{p} | {c['test']} | {eff} |")
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


def curve_bands(runs: list[list[dict[str, str]]], key: str) -> tuple[Any, Any, Any, Any] | None:
    """Epochs, mean and 95 % t interval of ``key`` over runs (common epochs only)."""
    import numpy as np

    n = min((len(r) for r in runs), default=0)
    if n == 0 or any(_num(r[i].get(key)) is None for r in runs for i in range(n)):
        return None
    v = np.array([[float(r[i][key]) for i in range(n)] for r in runs])
    m = v.mean(0)
    if len(runs) > 1:
        from scipy import stats

        half = stats.t.ppf(0.975, len(runs) - 1) * v.std(0, ddof=1) / np.sqrt(len(runs))
    else:
        half = np.zeros_like(m)
    return np.arange(1, n + 1), m, m - half, m + half


CURVE_LABELS = {"test_acc": "test accuracy", "val_acc": "validation accuracy",
                "train_acc": "training accuracy", "gap": "generalization gap",
                "train_loss": "training loss", "test_loss": "test loss", "val_loss": "validation loss"}


def plot_curves(run_dir: Path, arm_order: list[str], keys: tuple[str, ...] | None = None,
                title: str = "", per_arm: dict[str, list[list[dict[str, str]]]] | None = None,
                path: Path | None = None) -> Path | None:
    """One panel per metric, one line per arm with its 95 % CI band (Student t over seeds);
    PNG and PDF. Default metrics: validation accuracy (test accuracy without a validation
    split), the generalization gap and the training loss."""
    plt = pyplot()
    per_arm = per_arm if per_arm is not None else _metrics(run_dir)
    if not per_arm:
        return None
    arms = [a for a in arm_order if a in per_arm] + [a for a in per_arm if a not in arm_order]
    has_val = any(runs and runs[0] and _num(runs[0][0].get("val_acc")) is not None
                  for runs in per_arm.values())
    keys = keys or ((("val_acc",) if has_val else ("test_acc",)) + ("gap", "train_loss"))
    colors = arm_colors(arms)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm in arms:
            band = curve_bands(per_arm[arm], key)
            if band is None:
                continue
            ep, m, lo, hi = band
            ax.plot(ep, m, color=colors[arm], label=f"{arm} (n={len(per_arm[arm])})")
            ax.fill_between(ep, lo, hi, color=colors[arm], alpha=0.18, linewidth=0)
        ax.set(xlabel="epoch", ylabel=CURVE_LABELS.get(key, key),
               title=f"{CURVE_LABELS.get(key, key)} (mean, 95 % CI)")
        if key.endswith("loss"):
            ax.set_yscale("log")
        integer_epochs(ax)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path or run_dir / "curves.png")


def summarize(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise SharpenError(f"{run_dir} is not a run directory (no config.json)")
    cfg = json.loads(cfg_path.read_text())
    results = load_results(run_dir)
    arms = list(cfg.get("arms", {}))
    values = run_values(run_dir)
    out = {"experiment": cfg.get("name"), "profile": cfg.get("profile"),
           "seeds": [cfg.get("seed", 0) + i for i in range(cfg.get("runs", 1))],
           "arms": table_rows(results, arms, values), "n_results": len(results),
           "confidence_interval": "95 %, Student t over seeds"}
    if cfg.get("claims") and not cfg.get("cells"):
        out["claims"] = claims_table(cfg["claims"], values)[1]
    return out


def provenance(run_dir: Path) -> dict[str, Any]:
    """What made the runs: from history.json, every invocation's wall time, commit, machine."""
    path = Path(run_dir) / "history.json"
    hist = json.loads(path.read_text()) if path.exists() else []
    done = [h for h in hist if "wall_s" in h]
    return {"invocations": len(hist), "unfinished": len(hist) - len(done),
            "wall_s": round(sum(h["wall_s"] for h in done), 1),
            "commits": list(dict.fromkeys(h["commit"] for h in hist if h.get("commit"))),
            "dirty": any(h.get("dirty") for h in hist),
            "machines": list(dict.fromkeys(h["machine"] for h in hist if h.get("machine")))}


def adopt_claims(run_dir: Path, experiment: str) -> None:
    """Record an experiment file's claims (and baseline) in ``run_dir``'s config.json, for
    directories made before the file had them; the report is then rebuilt from the
    directory alone, as always."""
    from sharpen.experiments import load_experiment

    exp = load_experiment(experiment)
    cfg_path = Path(run_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["claims"] = [c.model_dump() for c in exp.claims]
    if exp.baseline is not None:
        cfg["baseline"] = exp.baseline
    atomic_write_json(cfg_path, cfg)


def write_report(run_dir: Path, baseline: str | None = None) -> Path:
    """(Re)build every report file of ``run_dir`` from the files in it alone; ``baseline``
    overrides the experiment's baseline arm for the paired comparisons."""

    run_dir = Path(run_dir)
    summary = summarize(run_dir)  # raises a clear error if this is not a run directory
    cfg = json.loads((run_dir / "config.json").read_text())
    env = {}
    if (run_dir / "environment.json").exists():
        env = json.loads((run_dir / "environment.json").read_text())
    summary["environment"] = env
    summary["provenance"] = prov = provenance(run_dir)
    atomic_write_json(run_dir / "summary.json", summary)
    rows = summary["arms"]
    atomic_write_csv(run_dir / "table.csv", rows, TABLE_COLUMNS)
    arms = list(cfg.get("arms", {}))
    keep_best = any(a.get("keep_best") for a in cfg.get("arms", {}).values())
    values = run_values(run_dir)
    title = f"{cfg.get('name')}" + (f" (profile {cfg['profile']})" if cfg.get("profile") else "")
    png = plot_curves(run_dir, arms, title=title)
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
    has_val = any(a.get("val_size") for a in arms_cfg)
    parts += [f"Data: {'; '.join(data)} · epochs: {', '.join(map(str, epochs))}", ""]
    parts += [f"Seeds: {summary['seeds']} · results: {summary['n_results']} runs · "
              f"torch {env.get('torch', '?')} on {env.get('cuda') or env.get('processor', '?')} "
              f"({env.get('cpu_count', '?')} cores)", ""]
    if prov["invocations"]:
        parts += [f"Wall time: {prov['wall_s'] / 60:.1f} min over {prov['invocations']} "
                  f"invocation(s)" + (f" ({prov['unfinished']} stopped before the end, not "
                                      "counted)" if prov["unfinished"] else "")
                  + f" · commit {', '.join(c[:10] for c in prov['commits']) or 'unknown'}"
                  + (" with uncommitted changes" if prov["dirty"] else "")
                  + f" · {'; '.join(prov['machines'])}", ""]
    parts += ["## Results (final epoch)", "",
              "Mean, sample sd and the 95 % confidence interval of the mean (Student t over "
              "seeds; n/a for one run) of the final epoch. "
              + ("Selection happens on validation: the \"at best-val epoch\" column is the test "
                 "accuracy at each run's epoch of best validation accuracy."
                 if has_val else "This experiment has no validation split, so any choice of "
                 "epoch or cell is made on test (optimistic).")
              + (" The keep-best column is the best test epoch: selected on test, optimistic."
                 if keep_best else ""), "",
              markdown_table(rows, keep_best, bool(cfg.get("report_error"))), ""]
    present = [a for a in arms if a in values]
    if len(present) > 1 and not cfg.get("cells"):
        base = baseline or cfg.get("baseline") or present[0]
        if baseline is None and base not in present:  # the file's baseline arm was not run
            base = present[0]
        if base not in present:
            raise SharpenError(f"baseline {base!r} is not an arm with results; arms: "
                               f"{', '.join(present)}")
        metric = "test_error" if cfg.get("report_error") else "test_acc"
        parts += [f"## Paired comparisons with `{base}` ({metric.replace('_', ' ')}, final epoch)",
                  "", "Arms share their seeds (initialisation, data order and split), so each "
                  "arm is compared with the baseline seed by seed: the mean per-seed difference, "
                  "its 95 % t interval, the paired t-test's p-value (scipy.stats.ttest_rel) and "
                  "Cohen's d_z. Without common seeds: Welch's unpaired t-test and Hedges' g.", "",
                  paired_table(values, present, base, metric), ""]
    if len(present) > 1 and not cfg.get("cells"):
        from sharpen.reports.curriculum import stage_jumps

        md, jumps = stage_jumps(run_dir, base)
        if jumps:
            parts += [f"## The curve at each stage start (paired with `{base}`)", "",
                      "Where a curriculum arm's stage changes (its plan column in metrics.csv), "
                      "the change of test accuracy from the epoch before, minus the baseline's "
                      "change over the same epochs, per seed: the seed's \"curve climbs when "
                      "each sharper stage begins\", judged from the 95 % interval.", "", md, ""]
    if cfg.get("claims") and not cfg.get("cells"):  # a grid's arms are cells, not the claims'
        md, _ = claims_table(cfg["claims"], values)
        parts += ["## Claims", "", "Each claim of the seed as a checkable statement; verdict from "
                  "the 95 % interval: supported (it lies wholly on the claimed side), not "
                  "supported (it includes no difference), contradicted (wholly on the other "
                  "side).", "", md, ""]
    if cfg.get("cells"):
        grid_md, grid_rows = grid_table(cfg, load_results(run_dir), values)
        atomic_write_csv(run_dir / "grid.csv", grid_rows, list(grid_rows[0]) if grid_rows else [])
        chosen = "validation" if has_val else "test (no validation split: optimistic)"
        parts += [f"## Grid: mean test accuracy % per cell (95 % CI over seeds; the cell chosen on "
                  f"{chosen} per arm in bold)", "", grid_md, ""]
    for axis, md in published_grid_tables(cfg, values):
        parts += [f"## Ours beside the seed's {axis} grid, cell by cell", "",
                  "Our mean test accuracy % with its 95 % CI beside the seed's mean. The seed "
                  "gives no spread, so a cell agrees when the difference lies within "
                  "t·s·√(2/n), the interval of a difference of two means of n runs with our "
                  "sd s (docs/methods/statistics.md).", "", md, ""]
    if cfg.get("published") and not cfg.get("cells"):
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
    return save_figure(fig, run_dir / "gradflow.png")


def grid_table(cfg: dict[str, Any], results: list[dict[str, Any]],
               values: dict[str, dict[int, dict[str, float]]] | None = None
               ) -> tuple[str, list[dict[str, Any]]]:
    """Seed 004's layout: one row per grid cell, one column per base arm, mean test accuracy
    with its 95 % CI; the best cell of each arm chosen on mean validation accuracy (on test
    only when there is no validation split)."""
    cells = cfg["cells"]
    axes = list(cfg.get("grid", {}))
    base_arms = list(dict.fromkeys(c["arm"] for c in cells.values()))
    points = list(dict.fromkeys(tuple(c[a] for a in axes) for c in cells.values()))
    by: dict[tuple, dict[str, Any]] = {}
    for derived, c in cells.items():
        rs = [r for r in results if r.get("arm") == derived]
        ok = [a for r in rs if r.get("status") == "ok" and (a := _num(r.get("test_acc"))) is not None]
        vals = [a for r in rs if r.get("status") == "ok" and (a := _num(r.get("val_acc"))) is not None]
        div = sum(r.get("status") == "diverged" for r in rs)
        sm = summary(ok)
        by[(tuple(c[a] for a in axes), c["arm"])] = {
            "mean": sm["mean"], "std": sm["sd"], "lo": sm["ci_low"], "hi": sm["ci_high"],
            "n": len(ok), "div": div, "val": summary(vals)["mean"] if vals else None}
    best = {}
    for arm in base_arms:
        cand = [(e["val"] if e["val"] is not None else e["mean"], p) for p in points
                if (e := by.get((p, arm), {})) and e.get("mean") is not None]
        if cand:
            best[arm] = max(cand, key=lambda t: t[0])[1]
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
                txt = f"{100 * e['mean']:.2f} {_ci(e['lo'], e['hi'])}"
                if e["div"]:
                    txt += f" ({e['div']} diverged)"
                if best.get(arm) == p:
                    txt = f"**{txt}**"
            cellstrs.append(txt)
            row[arm] = None if e is None else e["mean"]
            row[f"{arm}_ci_low"] = None if e is None else e["lo"]
            row[f"{arm}_ci_high"] = None if e is None else e["hi"]
            row[f"{arm}_val"] = None if e is None else e["val"]
        rows.append(row)
        lines.append("| " + " | ".join(str(v) for v in p) + " | " + " | ".join(cellstrs) + " |")
    return "\n".join(lines), rows


def published_grid_tables(cfg: dict[str, Any], values: dict[str, dict[int, dict[str, float]]]
                          ) -> list[tuple[str, str]]:
    """For each grid axis the seed published (``[published_grid.<axis>]``): our cell means
    beside the seed's, cell by cell, with an agreement verdict and each arm's best value."""
    out = []
    cells = cfg.get("cells") or {}
    for axis, table in (cfg.get("published_grid") or {}).items():
        if axis not in (cfg.get("grid") or {}):
            continue
        arms = [a for a in table if a != "values"]
        lines = [f"| {axis} | arm | ours % [95 % CI] | published % | ours − published | "
                 "verdict |", "|---|---|---|---|---|---|"]
        agree = total = 0
        best_ours: dict[str, tuple[float, Any]] = {}
        for i, v in enumerate(table["values"]):
            if isinstance(v, float) and v.is_integer() and v >= 1:
                v = int(v)  # a batch size read back as 50.0 prints as 50
            for arm in arms:
                derived = next((d for d, c in cells.items() if c["arm"] == arm
                                and isinstance(c.get(axis), (int, float))
                                and abs(c[axis] - v) <= 1e-12 * max(1.0, abs(v))), None)
                xs = [r["test_acc"] for r in values.get(derived, {}).values()
                      if r.get("test_acc") is not None] if derived else []
                pub = table[arm][i]
                if not xs:
                    lines.append(f"| {v} | {arm} | – | {_pct(pub)} | – | not run |")
                    continue
                a = against_published(xs, pub)
                total += 1
                agree += a["verdict"] == "agrees"
                if arm not in best_ours or a["mean"] > best_ours[arm][0]:
                    best_ours[arm] = (a["mean"], v)
                half = "–" if a["half"] is None else f"{100 * a['half']:.2f}"
                lines.append(f"| {v} | {arm} | {_pct(a['mean'])} {_ci(a['ci_low'], a['ci_high'])}"
                             f" | {_pct(pub)} | {100 * a['diff']:+.2f} ± {half} | "
                             f"{a['verdict']} |")
        lines += ["", f"Agreement: {agree} of {total} cells."]
        for arm in arms:
            if arm in best_ours:
                pv = table["values"][max(range(len(table[arm])), key=table[arm].__getitem__)]
                lines.append(f"- {arm}: our best {axis} {best_ours[arm][1]} (mean on test), "
                             f"the seed's table's best {pv}.")
        out.append((axis, "\n".join(lines)))
    return out
