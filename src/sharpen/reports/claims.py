"""Per-run values of every metric, read from a run directory, and claims judged on them.

A claim is a checkable statement written in an experiment file::

    [[claims]]
    claim = "proposed has a smaller generalization gap than progressive"
    seed_says = "gap 4.37 % vs 5.82 %"
    arm = "proposed"
    op = "<"                # ">", "<", "~" (equal within ± tolerance), "best", "worst"
    than = "progressive"    # another arm (paired by seed), or a list for best/worst
    metric = "gap"          # any metric of run_values; default test_acc
    # value = 0.15          # instead of `than`: the arm's mean against a fixed number

Verdicts come from the 95 % interval (:func:`sharpen.reports.stats.verdict`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sharpen.io import read_csv
from sharpen.reports.stats import (
    CONTRADICTED,
    NOT_SUPPORTED,
    SUPPORTED,
    UNTESTED,
    compare,
    summary,
    verdict,
)

# metrics whose values are fractions shown in percent (differences in percentage points)
PERCENT = {"test_acc", "val_acc", "train_acc", "gap", "digit_acc", "test_error",
           "selected_test_acc", "best_test_acc", "selected_val_acc"}
METRICS = ["test_acc", "val_acc", "selected_test_acc", "selected_val_acc", "best_test_acc",
           "gap", "train_acc", "train_loss", "test_loss", "val_loss", "digit_acc", "test_error",
           "seconds"]


def as_number(v: Any) -> float | None:
    """A finite float, or None (empty CSV cells, NaN, inf, text)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def run_values(run_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """{arm: {seed: {metric: value}}} for every finished ``ok`` run, from its files alone.

    Final-epoch metrics come from metrics.csv; ``selected_test_acc`` is the test accuracy
    at the epoch of best validation accuracy (earliest on ties), ``selected_val_acc`` that
    validation accuracy; without a validation split both are absent. ``best_test_acc`` is
    the best test epoch: selection on test, optimistic.
    """
    out: dict[str, dict[int, dict[str, float]]] = {}
    for res_path in sorted(Path(run_dir).glob("runs/*/seed-*/result.json")):
        res = json.loads(res_path.read_text())
        if res.get("status") != "ok":
            continue
        mpath = res_path.parent / "metrics.csv"
        rows = read_csv(mpath) if mpath.exists() else []
        vals: dict[str, float] = {}
        if rows:
            last = rows[-1]
            for k in ("test_acc", "val_acc", "gap", "train_acc", "train_loss", "test_loss",
                      "val_loss", "test_digit_acc"):
                v = as_number(last.get(k))
                if v is not None:
                    vals["digit_acc" if k == "test_digit_acc" else k] = v
            tests = [as_number(r.get("test_acc")) for r in rows]
            if all(t is not None for t in tests):
                vals["best_test_acc"] = max(tests)  # type: ignore[type-var]
            vs = [as_number(r.get("val_acc")) for r in rows]
            if rows and all(v is not None for v in vs):
                best = max(range(len(rows)), key=lambda i: (vs[i], -i))
                vals["selected_val_acc"] = vs[best]  # type: ignore[assignment]
                if tests[best] is not None:
                    vals["selected_test_acc"] = tests[best]  # type: ignore[assignment]
        else:  # no per-epoch file: what result.json says
            for k in ("test_acc", "val_acc", "gap", "train_acc", "train_loss", "test_loss",
                      "digit_acc", "best_test_acc"):
                v = as_number(res.get(k))
                if v is not None:
                    vals[k] = v
        if "test_acc" in vals:
            vals["test_error"] = 1 - vals["test_acc"]
        sec = as_number(res.get("seconds"))
        if sec is not None:
            vals["seconds"] = sec
        out.setdefault(res_path.parent.parent.name, {})[int(res["seed"])] = vals
    return out


def metric_of(values: dict[str, dict[int, dict[str, float]]], arm: str, metric: str
              ) -> dict[int, float]:
    return {s: v[metric] for s, v in values.get(arm, {}).items() if metric in v}


def fmt_value(metric: str, v: float | None, diff: bool = False) -> str:
    if v is None:
        return "–"
    if metric in PERCENT:
        return f"{100 * v:+.2f} pp" if diff else f"{100 * v:.2f} %"
    return f"{v:+.4g}" if diff else f"{v:.4g}"


def judge(claim: dict[str, Any], values: dict[str, dict[int, dict[str, float]]]) -> dict[str, Any]:
    """The claim's estimate, interval, verdict and the n it rests on."""
    metric = claim.get("metric", "test_acc")
    arm, op = claim["arm"], claim["op"]
    mine = metric_of(values, arm, metric)
    base = {"claim": claim["claim"], "seed_says": claim.get("seed_says", ""), "metric": metric}
    if not mine:
        return {**base, "estimate": "–", "verdict": f"untested (no {metric} for {arm})", "n": 0,
                "test": ""}
    if claim.get("value") is not None:
        sm = summary(list(mine.values()))
        v0 = float(claim["value"])
        lo = None if sm["ci_low"] is None else sm["ci_low"] - v0
        hi = None if sm["ci_high"] is None else sm["ci_high"] - v0
        est = (f"{arm}: {fmt_value(metric, sm['mean'])} "
               f"[{fmt_value(metric, sm['ci_low'])}, {fmt_value(metric, sm['ci_high'])}] "
               f"vs {fmt_value(metric, v0)}")
        return {**base, "estimate": est, "n": sm["n"], "test": "t interval of the mean",
                "verdict": verdict(lo, hi, op if op in "<>~" else ">", claim.get("tolerance", 0.0))}
    if op in ("best", "worst"):
        others = claim.get("than") or [a for a in values if a != arm]
        others = [others] if isinstance(others, str) else list(others)
        direction = ">" if op == "best" else "<"
        missing = [o for o in others if not metric_of(values, o, metric)]
        if missing:  # a rival that was not run cannot be beaten or lost to
            return {**base, "estimate": "–", "n": 0, "test": "",
                    "verdict": f"untested (no {metric} for {missing[0]})"}
        results = []
        for o in others:
            c = compare(mine, metric_of(values, o, metric))
            results.append((o, c, verdict(c["ci_low"], c["ci_high"], direction)))
        if not results:
            return {**base, "estimate": "–", "verdict": UNTESTED, "n": 0, "test": ""}
        vs = [r[2] for r in results]
        final = (CONTRADICTED if CONTRADICTED in vs else SUPPORTED if all(v == SUPPORTED for v in vs)
                 else UNTESTED if all(v == UNTESTED for v in vs) else NOT_SUPPORTED)
        # shown: a rival that contradicts the claim, else the closest rival (the comparison
        # whose interval comes nearest to no difference)
        against = [r for r in results if r[2] == CONTRADICTED]
        o, c, _ = against[0] if against else min(
            results, key=lambda r: (r[1]["ci_low"] if direction == ">" else -r[1]["ci_high"])
            if r[1]["ci_low"] is not None else float("-inf"))
        who = "contradicting rival" if against else "closest rival"
        est = (f"{arm} − {o} ({who}): {fmt_value(metric, c['diff'], True)} "
               f"[{fmt_value(metric, c['ci_low'], True)}, {fmt_value(metric, c['ci_high'], True)}]")
        return {**base, "estimate": est, "verdict": final, "n": min(r[1]["n"] for r in results),
                "test": c["test"]}
    other = claim["than"]
    if not metric_of(values, other, metric):
        return {**base, "estimate": "–", "verdict": f"untested (no {metric} for {other})", "n": 0,
                "test": ""}
    c = compare(mine, metric_of(values, other, metric))
    est = (f"{arm} − {other}: {fmt_value(metric, c['diff'], True)} "
           f"[{fmt_value(metric, c['ci_low'], True)}, {fmt_value(metric, c['ci_high'], True)}]")
    if c["p"] is not None:
        est += f", p = {c['p']:.2g}"
    return {**base, "estimate": est, "n": c["n"], "test": c["test"],
            "verdict": verdict(c["ci_low"], c["ci_high"], op, claim.get("tolerance", 0.0))}


def claims_table(claims: list[dict[str, Any]], values: dict[str, dict[int, dict[str, float]]]
                 ) -> tuple[str, list[dict[str, Any]]]:
    rows = [judge(c, values) for c in claims]
    lines = ["| claim | the seed says | ours (95 % CI) | verdict | n | test |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['seed_says'] or '–'} | {r['estimate']} | **{r['verdict']}** | "
              f"{r['n']} | {r['test'] or '–'} |" for r in rows]
    return "\n".join(lines), rows


__all__ = ["run_values", "judge", "claims_table", "metric_of", "fmt_value", "METRICS", "PERCENT",
           "SUPPORTED", "NOT_SUPPORTED", "CONTRADICTED", "UNTESTED"]
