"""The tables of a report: per arm (n, mean, sd, 95 % CI, best, worst), paired comparisons
with the baseline, ours beside the published numbers, and the grid. Every number is read
from :class:`sharpen.reports.claims.Runs` and formatted through the metric registry; the
per-arm table's columns are the registry's (each entry's :class:`sharpen.metrics.Shown`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharpen.metrics import REGISTRY, Metric, get_metric, parse_amount
from sharpen.reports.budget import one_configuration
from sharpen.reports.claims import Runs, diff_in_range, metric_of, protocol_differences
from sharpen.reports.stats import (
    BETTER,
    NOT_COMPARABLE,
    REPRODUCED,
    UNDECIDED,
    WORSE,
    against_published,
    clip_interval,
    compare,
    describe,
    format_p,
    half_unit,
)

COUNTS = ["arm", "n", "ok", "diverged", "failed"]  # per arm: its runs by status
PARAMS_AT = 55  # report.md's params column: after s/run (its Shown.md_at 50), before the rest
_STAT = {"std": "sd"}  # table.csv's name of a statistic of stats.describe


def shown_metrics(md: bool = False) -> list[Metric]:
    """The registry's metrics the per-arm table holds, in table.csv's order (``md``: those
    report.md shows, in its order)."""
    ms = [m for m in REGISTRY.values() if m.table is not None and (m.table.head or not md)]
    return sorted(ms, key=lambda m: m.table.md_at if md else m.table.at)  # type: ignore[union-attr]


def table_columns() -> list[str]:
    """table.csv's columns: the counts, each shown metric's statistics, the parameters."""
    return [*COUNTS, *(f"{m.table_key}_{s}" for m in shown_metrics()
                       for s in m.table.stats), "params"]  # type: ignore[union-attr]


def table_rows(results: list[dict[str, Any]], arm_order: list[str] | None = None,
               runs: Runs | None = None) -> list[dict[str, Any]]:
    """Per arm: counts of runs by status, and each shown metric's statistics over the ok
    runs that have a value (``test_acc_n``: a NaN leaves n too): final test accuracy, the
    test accuracy at the epoch chosen on validation, gap, validation and training accuracy...
    (the registry's entries with a ``table``)."""
    runs = runs or Runs()
    arms = arm_order or sorted({r["arm"] for r in results})
    out = []
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue
        row: dict[str, Any] = {
            "arm": arm, "n": len(rs), "ok": sum(r.get("status") == "ok" for r in rs),
            "diverged": sum(r.get("status") == "diverged" for r in rs),
            "failed": sum(r.get("status") in ("failed", "corrupt") for r in rs)}
        for m in shown_metrics():
            sm = in_range(m, describe(list(metric_of(runs.values, arm, m.name).values())))
            row.update({f"{m.table_key}_{s}": sm[_STAT.get(s, s)]
                        for s in m.table.stats})  # type: ignore[union-attr]
        row["params"] = next((r.get("params") for r in rs if r.get("params")), None)
        out.append(row)
    return out


def in_range(m: Metric, sm: dict[str, Any]) -> dict[str, Any]:
    """A :func:`describe` of a % metric with its 95 % interval cut to the metric's range
    ([0, 1] for an accuracy, [−1, 1] for a gap): 95.83 [82.91, 100.00], never 108.76.
    Cutting keeps the t interval's coverage (the true mean lies in the range)."""
    if not m.percent:
        return sm
    lo, hi = clip_interval(sm["ci_low"], sm["ci_high"], m.lowest, 1.0)
    return {**sm, "ci_low": lo, "ci_high": hi}


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _secs(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _value_fmt(m: Metric) -> Callable[[float | None], str]:
    """How report.md's per-arm table prints a value of ``m``: % without the sign, seconds
    to 0.1 s, other numbers to 4 significant digits."""
    if m.percent:
        return pct
    if m.unit == "s":
        return _secs
    return lambda v: "–" if v is None else f"{v:.4g}"


def _sd(v: float | None, fmt: Callable[[float | None], str] = pct) -> str:
    return "n/a" if v is None else "0 (no spread)" if v == 0 else fmt(v)


def ci(lo: float | None, hi: float | None, n: int | None = None, sd: float | None = None,
       fmt: Callable[[float | None], str] = pct) -> str:
    """A 95 % interval; none for one run, and never [x, x] for identical runs."""
    if sd == 0 and n:
        return f"none: {n} identical"
    return "n/a" if lo is None or hi is None else f"[{fmt(lo)}, {fmt(hi)}]"


def _err(r: dict[str, Any]) -> dict[str, Any]:
    """The same row in test error: 1 − accuracy for the metrics shown as error (best error
    is 1 − best accuracy); 1 − x reverses an interval's ends."""
    flip: dict[str, Any] = {}
    for m in shown_metrics():
        if not m.table.as_error:  # type: ignore[union-attr]
            continue
        k = m.table_key
        for s in set(m.table.stats) & {"mean", "best", "worst", "ci_low", "ci_high"}:  # type: ignore[union-attr]
            flip[f"{k}_{s}"] = None if r.get(f"{k}_{s}") is None else 1 - r[f"{k}_{s}"]
        if f"{k}_ci_low" in flip and f"{k}_ci_high" in flip:
            flip[f"{k}_ci_low"], flip[f"{k}_ci_high"] = flip[f"{k}_ci_high"], flip[f"{k}_ci_low"]
    return {**r, **flip}


def _cell(m: Metric, r: dict[str, Any]) -> str:
    """One metric's cell(s) of report.md's per-arm table (its Shown.cell)."""
    f, style = _value_fmt(m), m.table.cell  # type: ignore[union-attr]

    def st(stat: str) -> Any:
        return r.get(f"{m.table_key}_{stat}")

    if style == "spread":
        n = r.get(f"{m.table_key}_n", r["ok"])
        return (f" {n} | {f(st('mean'))} | {_sd(st('std'), f)} | "
                f"{ci(st('ci_low'), st('ci_high'), n, st('std'), f)} | {f(st('best'))} | "
                f"{f(st('worst'))} |")
    if style == "mean_ci":
        return f" {f(st('mean'))} {ci(st('ci_low'), st('ci_high'), fmt=f)} |"
    if style == "mean_sd":
        return " – |" if st("mean") is None else f" {f(st('mean'))} ± {_sd(st('std'), f)} |"
    return f" {f(st('mean'))} |"


def markdown_table(rows: list[dict[str, Any]], keep_best: bool = False, error: bool = False) -> str:
    """n, mean, sd, 95 % CI (Student t), best, worst of the final test metric per arm; the
    test metric at the epoch chosen on validation where there is a validation split; the
    best test epoch (selection on test, optimistic) under ``keep_best``: the columns of the
    registry's metrics with a heading (``Shown.head``), in their ``md_at`` order; a column
    ``when = "any"`` only where some arm has a value."""
    what = "test error %" if error else "test acc %"
    rows = [_err(r) for r in rows] if error else rows

    def shown(m: Metric) -> bool:
        when = m.table.when  # type: ignore[union-attr]
        return (when == "always" or (when == "keep_best" and keep_best)
                or (when == "any" and any(r.get(f"{m.table_key}_mean") is not None for r in rows)))

    cols: list[Metric | None] = [m for m in shown_metrics(md=True) if shown(m)]  # None: params
    cols.insert(sum(1 for m in cols if m.table.md_at < PARAMS_AT), None)  # type: ignore[union-attr]
    head = "| arm | runs (ok/div/fail) |" + "".join(
        " params |" if m is None else f" {m.table.head.format(what=what)} |"  # type: ignore[union-attr]
        for m in cols)
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['n']} ({r['ok']}/{r['diverged']}/{r['failed']}) |" + "".join(
            f" {r['params'] or '–'} |" if m is None else _cell(m, r) for m in cols))
    return "\n".join(lines)


def terminal_table(rows: list[dict[str, Any]], base_of: dict[str, str], error: bool = False,
                   cells: dict[str, dict[str, Any]] | None = None) -> str:
    """The terminal's per-arm table (report.md holds the full one, 13 columns that wrap at
    120): per arm n, the final test metric's mean [95 % CI] and the difference of means from
    its baseline (``base_of``: arm → its baseline arm; in a grid the same cell's). Plain
    aligned columns, no Markdown: a grid's axes lead as columns of their own (``cells``)."""
    m = get_metric("test_acc")
    what = "test error %" if error else "test acc %"
    axes = [k for k in next(iter((cells or {}).values()), {}) if k != "arm"] if cells else []
    by = {r["arm"]: _err(r) if error else r for r in rows}
    bases = {b for b in base_of.values() if b in by}
    names = {(cells or {}).get(b, {}).get("arm", b) for b in bases}
    head = [*axes, "arm", "n", f"{what} [95 % CI]",
            f"Δ vs {names.pop()}" if len(names) == 1 else "Δ vs baseline"]  # a grid: its cell's
    table = [head]
    # runs that gave no value are counted and named (a cell whose runs all diverged)
    lost = {arm: ", ".join(f"{r[s]} {s}" for s in ("diverged", "failed") if r.get(s))
            for arm, r in by.items()}
    for arm, r in by.items():
        k = r.get("test_acc_n", r["ok"])
        n = f"{k}" if k == r["n"] else f"{k} of {r['n']}"  # the rest diverged or failed
        mean = pct(r.get("test_acc_mean")) + " " + ci(r.get("test_acc_ci_low"),
                                                      r.get("test_acc_ci_high"), k,
                                                      r.get("test_acc_std"))
        base = by.get(base_of.get(arm, ""))
        if arm in bases or base is None:
            diff = "(baseline)" if arm in bases else "–"
        elif r.get("test_acc_mean") is None or base.get("test_acc_mean") is None:
            diff = "–"
        else:
            diff = m.fmt(r["test_acc_mean"] - base["test_acc_mean"], True)
        cell = (cells or {}).get(arm, {})
        table.append([*(str(cell.get(a, "")) for a in axes), cell.get("arm", arm), n, mean,
                      diff] + (["not counted: " + lost[arm] if lost[arm] else ""]
                               if any(lost.values()) else []))
    if any(lost.values()):
        head.append("")
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in table)


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
            lo, hi = diff_in_range(m, c.ci_low, c.ci_high)
            interval = "n/a" if lo is None else f"[{m.fmt(lo, True)}, {m.fmt(hi, True)}]"
        eff = "n/a" if c.effect is None else f"{c.effect_name} = {c.effect:.2f}"
        lost = [f"{a}: {len(runs.lost(a))}" for a in (arm, baseline) if runs.lost(a)]
        if c.left_out:
            lost.append("seeds " + ", ".join(map(str, c.left_out)) + " unpaired")
        test = c.test + (f" ({c.why_unpaired})" if c.why_unpaired else "")
        lines.append(f"| {arm} | {c.n} | {m.fmt(c.diff, True)} | {interval} | {format_p(c.p)} | "
                     f"{format_p(c.p_exact)} | {test} | {eff} | {'; '.join(lost) or '–'} |")
    return "\n".join(lines)


# keys of a [published.ARM] table that describe its numbers rather than being numbers
PUBLISHED_META = ("runs", "resolution")
# <metric>_std / _best / _worst: the paper's spread and extremes, shown beside ours
PUBLISHED_STATS = ("std", "best", "worst")


def published_rounding(vals: dict[str, Any], x: float, percent: bool) -> float:
    """Half a unit of the last printed digit of published number ``x``: from the table's
    ``resolution`` (the unit of that digit, e.g. "1 pp") where it states one, else from the
    digits ``x`` is written with (a % number at least to whole percent)."""
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


def not_comparable(diffs: list[str]) -> str:
    return f"not comparable ({'; '.join(diffs)})"


def _ours_stat(xs: list[float], stat: str, higher_is_better: bool | None) -> float | None:
    sm = describe(xs)
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
    mean = describe(xs)["mean"]
    if m.unit == "s":  # seconds: the hardware differs, so no verdict
        ours_s = f"{mean:.1f}"
        diff = "–" if pub is None else f"{mean - pub:+.1f}"
        return (f"| {arm} | {key} | {val if pub is None else f'{pub:.1f}'} | {ours_s} | {diff} | "
                "– | – (different hardware) |")
    if pub is None or not m.percent:
        return f"| {arm} | {key} | {val} | {m.fmt(mean)} | – | – | – |"
    a = against_published(xs, pub, margin, bool(m.higher_is_better),
                          **published_spread(vals, key, pub, True))
    a.update(in_range(m, a))
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


def published_numbers(published: dict[str, Any], order: list[str]) -> str:
    """The paper's numbers of a grid experiment's ``[published.ARM]`` tables, shown without
    ours: each is the arm's number at its own settings, and a grid runs every arm at the
    grid's settings instead, so no cell is the arm it was published for."""
    lines = ["| arm | metric | published |", "|---|---|---|"]
    rank = {a: i for i, a in enumerate(order)}
    for arm, vals in sorted(published.items(), key=lambda kv: rank.get(kv[0], len(rank))):
        for key, val in (vals.items() if isinstance(vals, dict) else []):
            if key in PUBLISHED_META:
                continue
            base = key.rpartition("_")[0] if key not in REGISTRY else key
            percent = base in REGISTRY and get_metric(base).percent
            number = isinstance(val, (int, float)) and not isinstance(val, bool)
            lines.append(f"| {arm} | {key} | {pct(val) if percent and number else val} |")
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
        sm = in_range(get_metric("test_acc"), describe(ok))
        by[(tuple(c[a] for a in axes), c["arm"])] = {
            "mean": sm["mean"], "std": sm["sd"], "lo": sm["ci_low"], "hi": sm["ci_high"],
            "n": len(ok), "div": div, "val": describe(vals)["mean"] if vals else None}
    best = {}
    twins = one_configuration(cfg, results, runs.values)  # copies of one configuration: nothing to choose
    for arm in [a for a in base_arms if a not in twins]:
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
    if twins:
        lines += ["", f"No cell in bold for {', '.join(twins)}: its cells are twin copies of one "
                  "configuration (the grid's keys do not change it); they differ by their "
                  "seeds alone."]
    return "\n".join(lines), rows


def published_grid_tables(cfg: dict[str, Any], runs: Runs, margin: float
                          ) -> list[tuple[str, str]]:
    """For each grid axis the paper published (``[published_grid.<axis>]``): our cell means
    beside the paper's, cell by cell, with the four-outcome verdict at ± margin."""
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
                a.update(in_range(get_metric("test_acc"), a))
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
