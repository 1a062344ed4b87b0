"""The tables of a report: per arm (n, mean, sd, 95 % CI, best, worst), paired comparisons
with the baseline, ours beside the published numbers, and the grid. Every number is read
from :class:`sharpen.reports.claims.Runs` and formatted through the metric registry."""

from __future__ import annotations

from typing import Any

from sharpen.metrics import REGISTRY, get_metric
from sharpen.reports.claims import Runs, metric_of
from sharpen.reports.stats import against_published, compare, half_unit, summary

TABLE_COLUMNS = ["arm", "n", "ok", "diverged", "failed", "test_acc_n", "test_acc_mean",
                 "test_acc_std", "test_acc_ci_low", "test_acc_ci_high", "test_acc_best",
                 "test_acc_worst", "selected_test_acc_mean", "selected_test_acc_ci_low",
                 "selected_test_acc_ci_high", "best_epoch_acc_mean", "best_epoch_acc_std",
                 "val_acc_mean", "train_acc_mean", "digit_acc_mean", "gap_mean", "gap_ci_low",
                 "gap_ci_high", "seconds_mean", "params"]


def table_rows(results: list[dict[str, Any]], arm_order: list[str] | None = None,
               runs: Runs | None = None) -> list[dict[str, Any]]:
    """Per arm: counts of runs by status; n, mean, sd, 95 % CI, best, worst of final test
    accuracy over the ok runs that have one (``test_acc_n``: a NaN leaves n too); the test
    accuracy at the epoch chosen on validation; gap, validation and training accuracy."""
    runs = runs or Runs()
    arms = arm_order or sorted({r["arm"] for r in results})
    out = []
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue

        def sm(metric: str, arm: str = arm) -> dict[str, Any]:
            return summary(list(metric_of(runs.values, arm, metric).values()))

        acc, gap, best, sel = sm("test_acc"), sm("gap"), sm("best_test_acc"), sm("selected_test_acc")
        out.append({
            "arm": arm, "n": len(rs), "ok": sum(r.get("status") == "ok" for r in rs),
            "diverged": sum(r.get("status") == "diverged" for r in rs),
            "failed": sum(r.get("status") in ("failed", "corrupt") for r in rs),
            "test_acc_n": acc["n"], "test_acc_mean": acc["mean"], "test_acc_std": acc["sd"],
            "test_acc_ci_low": acc["ci_low"], "test_acc_ci_high": acc["ci_high"],
            "test_acc_best": acc["best"], "test_acc_worst": acc["worst"],
            "selected_test_acc_mean": sel["mean"], "selected_test_acc_ci_low": sel["ci_low"],
            "selected_test_acc_ci_high": sel["ci_high"],
            "best_epoch_acc_mean": best["mean"], "best_epoch_acc_std": best["sd"],
            "val_acc_mean": sm("val_acc")["mean"], "digit_acc_mean": sm("digit_acc")["mean"],
            "train_acc_mean": sm("train_acc")["mean"],
            "gap_mean": gap["mean"], "gap_ci_low": gap["ci_low"], "gap_ci_high": gap["ci_high"],
            "seconds_mean": sm("seconds")["mean"],
            "params": next((r.get("params") for r in rs if r.get("params")), None),
        })
    return out


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _secs(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _sd(v: float | None) -> str:
    return "n/a" if v is None else "0 (no spread)" if v == 0 else pct(v)


def ci(lo: float | None, hi: float | None, n: int | None = None, sd: float | None = None) -> str:
    """A 95 % interval; none for one run, and never [x, x] for identical runs."""
    if sd == 0 and n:
        return f"none: {n} identical"
    return "n/a" if lo is None or hi is None else f"[{pct(lo)}, {pct(hi)}]"


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
    head = f"| arm | runs (ok/div/fail) | n | {what} mean | sd | 95 % CI | best | worst |"
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
        n = r.get("test_acc_n", r["ok"])
        line = (f"| {r['arm']} | {r['n']} ({r['ok']}/{r['diverged']}/{r['failed']}) | {n} | "
                f"{pct(r['test_acc_mean'])} | {_sd(r['test_acc_std'])} | "
                f"{ci(r['test_acc_ci_low'], r['test_acc_ci_high'], n, r['test_acc_std'])} | "
                f"{pct(best)} | {pct(worst)} |")
        if selected:
            line += (f" {pct(r['selected_test_acc_mean'])} "
                     f"{ci(r['selected_test_acc_ci_low'], r['selected_test_acc_ci_high'])} |")
        line += (f" {pct(r['val_acc_mean'])} | {pct(r['gap_mean'])} | "
                 f"{_secs(r['seconds_mean'])} | {r['params'] or '–'} |")
        if digits:
            line += f" {pct(r.get('digit_acc_mean'))} |"
        if keep_best:
            line += (f" {pct(r['best_epoch_acc_mean'])} ± {_sd(r['best_epoch_acc_std'])} |"
                     if r["best_epoch_acc_mean"] is not None else " – |")
        lines.append(line)
    return "\n".join(lines)


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def paired_table(runs: Runs, arms: list[str], baseline: str, metric: str = "test_acc") -> str:
    """Each arm against ``baseline`` on ``metric``: paired by seed within one protocol (the
    paired t-test and the exact sign-flip test), else Welch; the n used, the seeds left out
    and the runs lost. Intervals 95 %, unadjusted: the claims section holds the verdicts."""
    m = get_metric(metric)
    lines = [f"| arm − {baseline} | n | mean difference | 95 % CI | p (t) | p (exact sign-flip) "
             "| test | effect size | not counted |", "|---|---|---|---|---|---|---|---|---|"]
    base = metric_of(runs.values, baseline, metric)
    for arm in arms:
        if arm == baseline:
            continue
        ok = runs.comparable(arm, baseline)
        c = compare(metric_of(runs.values, arm, metric), base, paired=ok,
                    why_unpaired="" if ok else "different protocols")
        if not c.spread and c.paired:
            interval = f"none: {c.n} identical differences"
        else:
            interval = "n/a" if c.ci_low is None else \
                f"[{m.fmt(c.ci_low, True)}, {m.fmt(c.ci_high, True)}]"
        eff = "n/a" if c.effect is None else f"{c.effect_name} = {c.effect:.2f}"
        lost = [f"{a}: {len(runs.lost(a))}" for a in (arm, baseline) if runs.lost(a)]
        if c.left_out:
            lost.append("seeds " + ", ".join(map(str, c.left_out)) + " unpaired")
        test = c.test + (f" ({c.why_unpaired})" if c.why_unpaired else "")
        lines.append(f"| {arm} | {c.n} | {m.fmt(c.diff, True)} | {interval} | {_p(c.p)} | "
                     f"{_p(c.p_exact)} | {test} | {eff} | {'; '.join(lost) or '–'} |")
    return "\n".join(lines)


# keys of a [published.ARM] table that describe its numbers rather than being numbers
PUBLISHED_META = ("runs", "resolution")
# <metric>_std / _best / _worst: the paper's spread and extremes, shown beside ours
PUBLISHED_STATS = ("std", "best", "worst")


def published_rounding(vals: dict[str, Any], x: float, percent: bool) -> float:
    """Half a unit of the last printed digit of published number ``x``: from the table's
    ``resolution`` (the unit of that digit, e.g. "1 pp") where it states one, else from the
    digits ``x`` is written with (a % number at least to whole percent)."""
    from sharpen.metrics import parse_amount

    if vals.get("resolution") is not None:
        return parse_amount(vals["resolution"], get_metric("test_acc"), "resolution") / 2
    return half_unit(x, 2 if percent else 0)


def published_spread(vals: dict[str, Any], key: str, pub: float, percent: bool
                     ) -> dict[str, Any]:
    """What the paper states about the runs behind its number ``key`` (``runs`` and
    ``<key>_std`` of its table), and the number's rounding: the arguments of
    :func:`against_published`. A rounded sd is taken at the top of its rounding interval."""
    n = vals.get("runs")
    n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None
    sd = vals.get(f"{key}_std")
    if not isinstance(sd, (int, float)) or isinstance(sd, bool) or n is None or n < 2:
        sd = None  # an sd without the n it is over cannot be used
    else:
        sd = float(sd) + published_rounding(vals, float(sd), percent)
    return {"runs": n, "sd": sd, "rounding": published_rounding(vals, pub, percent)}


def protocol_differences(declared: dict[str, Any] | None, arm_cfg: dict[str, Any] | None
                         ) -> list[str]:
    """How an arm's protocol differs from the one the published numbers were produced
    under (``published_protocol``): 'dataset cifar10 here, cifar100 in the paper'; empty
    when it does not,
    or when either is unknown."""
    if not declared or not arm_cfg:
        return []
    out = []
    for k, v in declared.items():
        mine = arm_cfg.get(k)
        same = mine == v or (isinstance(mine, (int, float)) and isinstance(v, (int, float))
                             and not isinstance(mine, bool) and abs(mine - v) <= 1e-12)
        if not same:
            out.append(f"{k} {mine if mine is not None else '(default)'} here, {v} in the paper")
    return out


def not_comparable(diffs: list[str]) -> str:
    return f"not comparable ({'; '.join(diffs)})"


def _ours_stat(xs: list[float], stat: str, higher_is_better: bool | None) -> float | None:
    sm = summary(xs)
    if stat == "std":
        return sm["sd"]
    best = stat == "best"
    return sm["best"] if best == (higher_is_better is not False) else sm["worst"]


def _published_row(arm: str, key: str, val: Any, runs: Runs, vals: dict[str, Any],
                   margin: float, diffs: list[str]) -> str:
    """One published number beside ours; a verdict only for % metrics of the registry, and
    none where the protocols differ (``diffs``)."""
    pub = float(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else None
    shown = str(val) if pub is None else pct(pub)
    if key not in REGISTRY:
        base, _, stat = key.rpartition("_")
        if base in REGISTRY and stat in PUBLISHED_STATS:
            mb = get_metric(base)
            mine = _ours_stat(list(metric_of(runs.values, arm, base).values()), stat,
                              mb.higher_is_better)
            ours = pct(mine) if mb.percent else mb.fmt(mine)
            shown = shown if mb.percent else str(val)
            return f"| {arm} | {key} | {shown} | {ours} | – | – | – |"
        return f"| {arm} | {key} | {shown} | – | – | – | – |"
    m = get_metric(key)
    xs = list(metric_of(runs.values, arm, key).values())
    if not xs:
        return f"| {arm} | {key} | {shown} | – | – | – | not run |"
    mean = summary(xs)["mean"]
    if m.unit == "s":  # seconds: the hardware differs, so no verdict
        ours_s = f"{mean:.1f}"
        diff = "–" if pub is None else f"{mean - pub:+.1f}"
        return (f"| {arm} | {key} | {val if pub is None else f'{pub:.1f}'} | {ours_s} | {diff} | "
                "– | – (different hardware) |")
    if pub is None or not m.percent:
        return f"| {arm} | {key} | {val} | {m.fmt(mean)} | – | – | – |"
    a = against_published(xs, pub, margin, bool(m.higher_is_better),
                          **published_spread(vals, key, pub, True))
    ours = f"{pct(a['mean'])} {ci(a['ci_low'], a['ci_high'], a['n'], a['sd'])}"
    if diffs:  # another protocol's number: shown, never judged
        return (f"| {arm} | {key} | {shown} | {ours} | {100 * a['diff']:+.2f} | – | "
                f"{not_comparable(diffs)} |")
    half = "" if a["half"] is None else f" ± {100 * a['half']:.2f}"
    return (f"| {arm} | {key} | {shown} | {ours} | {100 * a['diff']:+.2f}{half} | "
            f"{a['assumption']} | {a['verdict']} |")


def published_table(published: dict[str, Any], rows: list[dict[str, Any]], runs: Runs,
                    margin: float, protocol: dict[str, Any] | None = None,
                    arms_cfg: dict[str, dict[str, Any]] | None = None) -> str:
    """Ours beside the paper's numbers: for every registry metric the paper gives, our mean
    with its 95 % CI and the four-outcome verdict of :func:`against_published` at ± margin
    (% metrics; seconds are compared without a verdict: the hardware differs), with what it
    assumes of the paper's runs; **not comparable** where the arm's protocol differs from
    the one the paper's numbers came from (``protocol``: ``published_protocol``)."""
    lines = ["| arm | metric | published | ours [95 % CI] | ours − published (95 %) | "
             "the paper's runs taken as | verdict |", "|---|---|---|---|---|---|---|"]
    # the arms in the file's order (``rows`` follow it; config.json stores keys sorted)
    order = {r.get("arm"): i for i, r in enumerate(rows)}
    for arm, vals in sorted(published.items(), key=lambda kv: order.get(kv[0], len(order))):
        if isinstance(vals, dict):
            diffs = protocol_differences(protocol, (arms_cfg or {}).get(arm))
            lines += [_published_row(arm, key, val, runs, vals, margin, diffs)
                      for key, val in vals.items() if key not in PUBLISHED_META]
    return "\n".join(lines)


def grid_table(cfg: dict[str, Any], results: list[dict[str, Any]], runs: Runs | None = None
               ) -> tuple[str, list[dict[str, Any]]]:
    """Paper 004's layout: one row per grid cell, one column per base arm, mean test accuracy
    with its 95 % CI; the best cell of each arm chosen on mean validation accuracy (on test
    only when there is no validation split)."""
    runs = runs or Runs()
    cells = cfg["cells"]
    axes = list(cfg.get("grid", {}))
    base_arms = list(dict.fromkeys(c["arm"] for c in cells.values()))
    points = list(dict.fromkeys(tuple(c[a] for a in axes) for c in cells.values()))
    by: dict[tuple, dict[str, Any]] = {}
    for derived, c in cells.items():
        rs = [r for r in results if r.get("arm") == derived]
        ok = list(metric_of(runs.values, derived, "test_acc").values())
        vals = list(metric_of(runs.values, derived, "val_acc").values())
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
                txt = f"{100 * e['mean']:.2f} {ci(e['lo'], e['hi'], e['n'], e['std'])}"
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


def published_grid_tables(cfg: dict[str, Any], runs: Runs, margin: float
                          ) -> list[tuple[str, str]]:
    """For each grid axis the paper published (``[published_grid.<axis>]``): our cell means
    beside the paper's, cell by cell, with the four-outcome verdict at ± margin."""
    from sharpen.reports.stats import BETTER, NOT_COMPARABLE, REPRODUCED, UNDECIDED, WORSE

    out = []
    cells = cfg.get("cells") or {}
    for axis, table in (cfg.get("published_grid") or {}).items():
        if axis not in (cfg.get("grid") or {}):
            continue
        arms = [a for a in table if a != "values" and a not in PUBLISHED_META]
        lines = [f"| {axis} | arm | ours % [95 % CI] | published % | ours − published (95 %) | "
                 "the paper's runs taken as | verdict |", "|---|---|---|---|---|---|---|"]
        tally = {REPRODUCED: 0, BETTER: 0, WORSE: 0, UNDECIDED: 0, NOT_COMPARABLE: 0}
        total = 0
        best_ours: dict[str, tuple[float, Any]] = {}
        for i, v in enumerate(table["values"]):
            if isinstance(v, float) and v.is_integer() and v >= 1:
                v = int(v)  # a batch size read back as 50.0 prints as 50
            for arm in arms:
                derived = next((d for d, c in cells.items() if c["arm"] == arm
                                and isinstance(c.get(axis), (int, float))
                                and abs(c[axis] - v) <= 1e-12 * max(1.0, abs(v))), None)
                xs = list(metric_of(runs.values, derived, "test_acc").values()) if derived else []
                pub = table[arm][i]
                if not xs:
                    lines.append(f"| {v} | {arm} | – | {pct(pub)} | – | – | not run |")
                    continue
                a = against_published(xs, pub, margin,
                                      **published_spread(table, arm, pub, True))
                diffs = protocol_differences(cfg.get("published_protocol"),
                                             (cfg.get("arms") or {}).get(derived))
                total += 1
                verdict = not_comparable(diffs) if diffs else a["verdict"]
                tally[NOT_COMPARABLE if diffs else a["verdict"]] = tally.get(
                    NOT_COMPARABLE if diffs else a["verdict"], 0) + 1
                if arm not in best_ours or a["mean"] > best_ours[arm][0]:
                    best_ours[arm] = (a["mean"], v)
                half = "" if a["half"] is None or diffs else f" ± {100 * a['half']:.2f}"
                lines.append(f"| {v} | {arm} | {pct(a['mean'])} "
                             f"{ci(a['ci_low'], a['ci_high'], a['n'], a['sd'])}"
                             f" | {pct(pub)} | {100 * a['diff']:+.2f}{half} | "
                             f"{'–' if diffs else a['assumption']} | {verdict} |")
        lines += ["", f"Of {total} cells: " + ", ".join(f"{k} {v}" for k, v in tally.items()
                                                          if v or k in (REPRODUCED, UNDECIDED))
                  + "."]
        for arm in arms:
            if arm in best_ours:
                pv = table["values"][max(range(len(table[arm])), key=table[arm].__getitem__)]
                lines.append(f"- {arm}: our best {axis} {best_ours[arm][1]} (mean on test), "
                             f"the paper's table's best {pv}.")
        out.append((axis, "\n".join(lines)))
    return out
