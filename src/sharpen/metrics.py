"""The metric registry: every per-run number a run records, a table, claim, figure or
``sharpen compare`` shows is one entry here, with how it is read from a run, its unit, how
it was selected, where the run record stores it and how the report's table shows it. The
run record's layout (metrics.csv's leading columns, result.json's numbers, results.csv's
and table.csv's columns) is derived from these entries; adding a metric is one entry (plus
the code that measures it, for a new measurement).

``source`` says where a run's value comes from:

* ``final``: the metrics.csv column at the final epoch (result.json without metrics.csv);
* ``at_best_val``: the column at the epoch of best validation accuracy (earliest on ties):
  selection on validation;
* ``best_test``: the best test accuracy over epochs: selection on test, *optimistic*;
* ``mean``: the column's mean over the epochs;
* ``one_minus``: 1 − another metric (test error);
* ``result``: a key of result.json (written by the code that measures it: the job's seconds).

``stored`` says where the run record keeps it: ``""`` nowhere (read from metrics.csv when
needed), ``"run"`` result.json only (timings: two identical runs differ in them, so
results.csv, which the configuration and its plan determine byte for byte, leaves them
out), ``"results"`` result.json and results.csv.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sharpen.errors import SharpenError

ROW_SOURCES = ("final", "at_best_val", "best_test", "mean")  # computed from the epoch rows
STATS = ("n", "mean", "std", "ci_low", "ci_high", "best", "worst")  # of an arm's runs


def _choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class Shown:
    """How the report's per-arm table shows a metric: ``table.csv`` and summary.json hold
    ``<key>_<stat>`` for each of ``stats``; report.md holds a column when ``head`` is set."""

    stats: tuple[str, ...]  # of n, mean, std, ci_low, ci_high, best, worst (over the arm's runs)
    # places (ascending) keep each file's column order as older directories have it: the
    # two orders differ, and both differ from the registry's (results.csv's)
    at: int  # its place among table.csv's metric columns
    head: str = ""  # report.md's heading; {what} is "test acc %" or "test error %"
    md_at: int = 0  # its place among report.md's columns
    cell: str = "mean"  # report.md's cell: mean | mean_ci | mean_sd | spread (n, mean, sd, CI, best, worst)
    when: str = "always"  # report.md shows it: always | any (some arm has a value) | keep_best
    key: str = ""  # the columns' prefix where it is not the metric's name (older files' name)
    as_error: bool = False  # an accuracy shown as error (1 − x) where the experiment reports error

    def __post_init__(self) -> None:  # a misspelt choice would hide a column without a word
        _choice("Shown.cell", self.cell, ("mean", "mean_ci", "mean_sd", "spread"))
        _choice("Shown.when", self.when, ("always", "any", "keep_best"))
        for s in self.stats:
            _choice("Shown.stats", s, STATS)
        if "mean" not in self.stats:
            raise ValueError(f"Shown.stats {self.stats!r}: a shown metric has a mean")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str  # "%" (a fraction shown in percent; differences in pp), "s" or "" (a plain number)
    higher_is_better: bool | None
    source: str  # final | at_best_val | best_test | mean | one_minus | result
    column: str  # the metrics.csv column (or result.json key, or the metric it is 1 − of)
    selected_on: str = "final epoch"  # final epoch | validation | test | all epochs
    per_epoch: bool = False  # has a curve (a metrics.csv column every epoch)
    lowest: float = 0.0  # a % metric's least value (its greatest is 1); a gap can go below 0
    stored: str = ""  # "" | "run" (result.json) | "results" (result.json and results.csv)
    epoch_key: str = ""  # a selected metric's epoch, stored beside it under this key
    table: Shown | None = None  # how the report's per-arm table shows it (None: not shown)
    curve: str = ""  # a panel of the report's curves: "" no | always | any (where a run has it)

    def __post_init__(self) -> None:  # a misspelt choice would drop the metric without a word
        _choice(f"{self.name}: source", self.source, (*ROW_SOURCES, "one_minus", "result"))
        _choice(f"{self.name}: stored", self.stored, ("", "run", "results"))
        _choice(f"{self.name}: curve", self.curve, ("", "always", "any"))
        _choice(f"{self.name}: selected_on", self.selected_on,
                ("final epoch", "validation", "test", "all epochs"))

    @property
    def percent(self) -> bool:
        return self.unit == "%"

    @property
    def optimistic(self) -> bool:
        """Chosen on the test set it is reported on: biased upwards."""
        return self.selected_on == "test"

    @property
    def diff_unit(self) -> str:
        return "pp" if self.percent else self.unit

    @property
    def table_key(self) -> str:
        return (self.table.key if self.table else "") or self.name

    def scale(self, v: float) -> float:
        """From the stored fraction to the unit printed."""
        return 100 * v if self.percent else v

    def fmt(self, v: float | None, diff: bool = False) -> str:
        """A value (or, with ``diff``, a difference) in the unit the reports print."""
        if v is None:
            return "–"
        if self.percent:
            return f"{100 * v:+.2f} pp" if diff else f"{100 * v:.2f} %"
        return f"{v:+.4g}" if diff else f"{v:.4g}"

    def describe(self) -> str:
        """The metric's name for a table heading, with how it was selected."""
        tag = {"validation": ", at the best-validation epoch",
               "test": ", selected on test: optimistic",
               "all epochs": ", mean over the epochs"}.get(self.selected_on, ", final epoch")
        return f"{self.label} ({self.name}{tag})"

    def selected_row(self, rows: Sequence[Mapping[str, Any]],
                     num: Callable[[Any], float | None]) -> int | None:
        """The index of the epoch row this metric reads: the last, or the one its selection
        chose (earliest on ties); None where a row lacks the number selected on."""
        if not rows or self.source not in ROW_SOURCES or self.source == "mean":
            return None
        if self.source == "final":
            return len(rows) - 1
        on = [num(r.get("val_acc" if self.source == "at_best_val" else self.column))
              for r in rows]
        if any(x is None for x in on):
            return None
        return max(range(len(rows)), key=lambda i: (on[i], -i))

    def from_rows(self, rows: Sequence[Mapping[str, Any]], result: Mapping[str, Any],
                  num: Callable[[Any], float | None]) -> float | None:
        """This metric of one run, from its epoch rows (``num`` reads a cell), else from its
        result.json (a run without metrics.csv); ``one_minus`` metrics: see :func:`metric_values`."""
        if self.source == "result":
            return num(result.get(self.column))
        if self.source not in ROW_SOURCES:
            return None
        if not rows:
            return num(result.get(self.name))
        if self.source == "mean":
            xs = [num(r.get(self.column)) for r in rows]
            return None if any(x is None for x in xs) else sum(xs) / len(xs)  # type: ignore[arg-type]
        i = self.selected_row(rows, num)
        return None if i is None else num(rows[i].get(self.column))


def as_number(v: Any) -> float | None:
    """A finite float, or None (empty CSV cells, NaN, inf, text)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _as_is(v: Any) -> Any:
    return v


_M = Metric
REGISTRY: dict[str, Metric] = {m.name: m for m in [
    # the stored ones in results.csv's column order
    _M("test_acc", "test accuracy", "%", True, "final", "test_acc", per_epoch=True,
       stored="results", curve="always",
       table=Shown(("n", "mean", "std", "ci_low", "ci_high", "best", "worst"), 10,
                   "n | {what} mean | sd | 95 % CI | best | worst", 10, "spread",
                   as_error=True)),
    _M("best_test_acc", "best test accuracy over epochs", "%", True, "best_test", "test_acc",
       selected_on="test", stored="results", epoch_key="best_epoch",
       table=Shown(("mean", "std"), 30, "best test epoch acc % (selected on test: optimistic)",
                   70, "mean_sd", "keep_best", key="best_epoch_acc")),
    _M("train_acc", "training accuracy", "%", True, "final", "train_acc", per_epoch=True,
       stored="results", table=Shown(("mean",), 50)),
    _M("val_acc", "validation accuracy", "%", True, "final", "val_acc", per_epoch=True,
       stored="results", curve="any", table=Shown(("mean",), 40, "val acc %", 30)),
    _M("gap", "generalization gap", "%", False, "final", "gap", per_epoch=True, lowest=-1.0,
       stored="results", curve="always",
       table=Shown(("mean", "ci_low", "ci_high"), 70, "gap %", 40)),
    _M("train_loss", "training loss", "", False, "final", "train_loss", per_epoch=True,
       stored="results", curve="always"),
    _M("test_loss", "test loss", "", False, "final", "test_loss", per_epoch=True,
       stored="results"),
    _M("digit_acc", "digit accuracy", "%", True, "final", "test_digit_acc", stored="results",
       table=Shown(("mean",), 60, "digit acc %", 60, when="any")),
    _M("selected_test_acc", "test accuracy at the best-validation epoch", "%", True,
       "at_best_val", "test_acc", selected_on="validation",
       table=Shown(("mean", "ci_low", "ci_high"), 20, "{what} at best-val epoch (95 % CI)", 20,
                   "mean_ci", "any", as_error=True)),
    _M("selected_val_acc", "best validation accuracy", "%", True, "at_best_val", "val_acc",
       selected_on="validation"),
    _M("val_loss", "validation loss", "", False, "final", "val_loss", per_epoch=True),
    _M("test_error", "test error", "%", False, "one_minus", "test_acc"),
    _M("seconds", "seconds per run", "s", False, "result", "seconds", stored="run",
       table=Shown(("mean",), 80, "s/run", 50)),
    _M("images_per_s", "training images per second", "", True, "mean", "images_per_s",
       selected_on="all epochs", stored="run"),
]}


def metric_names() -> list[str]:
    """The registered metrics' names, in the registry's order."""
    return list(REGISTRY)


def get_metric(name: str) -> Metric:
    """The registry entry, or a clear error naming the metrics there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, metric_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"metric {name!r} is not known{hint}; metrics: "
                           f"{', '.join(metric_names())}") from None


def metric_values(rows: Sequence[Mapping[str, Any]], result: Mapping[str, Any],
               num: Callable[[Any], Any] = as_number) -> dict[str, Any]:
    """Every registered metric of one run: {name: value or None}, from its epoch rows (else
    its result.json); ``num`` reads a cell (finite floats for CSV text by default)."""
    vals = {m.name: m.from_rows(rows, result, num) for m in REGISTRY.values()}
    for m in REGISTRY.values():  # derived after their sources
        if m.source == "one_minus" and vals.get(m.column) is not None:
            vals[m.name] = 1 - vals[m.column]
    return vals


# ---- the run record: its files' layout, derived from the registry --------------------

SPLITS = ("train", "val", "test")  # the loop's order within an epoch row
# metrics.csv's bookkeeping after the metrics: the epoch's lr, seconds and images per second
EPOCH_TAIL = ("lr", "seconds", "images_per_s")
RESULT_HEAD = ("arm", "seed", "status")  # results.csv: which run ...
RESULT_TAIL = ("epochs_done", "params", "stacked_seeds", "error")  # ... and how it went


def _row_place(m: Metric) -> tuple[int, int]:
    split, _, what = m.column.partition("_")
    if split not in SPLITS:
        return len(SPLITS), 0
    return SPLITS.index(split), 0 if what == "loss" else 1


def epoch_columns() -> list[str]:
    """metrics.csv's leading columns, in every run's file whether measured or not (a run
    without a validation split leaves val_* empty): the epoch, each split's loss and
    accuracy in the loop's order, the per-epoch metrics of no split (gap), the bookkeeping;
    a task's or technique's columns follow as they first appear."""
    per = sorted((m for m in REGISTRY.values() if m.per_epoch), key=_row_place)  # stable
    return ["epoch", *(m.column for m in per), *EPOCH_TAIL]


def stored_keys(where: str = "run") -> list[str]:
    """The metrics' keys a run's result.json holds (``"run"``), or those results.csv
    holds (``"results"``), in the registry's order; a selected metric's epoch follows it."""
    keep = ("run", "results") if where == "run" else ("results",)
    return [k for m in REGISTRY.values() if m.stored in keep
            for k in (m.name, *([m.epoch_key] if m.epoch_key else []))]


def timing_keys() -> set[str]:
    """The run record's timings: what result.json stores but results.csv leaves out (two
    identical runs differ in them); metrics.csv's per-epoch timings carry the same names."""
    return set(stored_keys("run")) - set(stored_keys("results"))


def result_columns() -> list[str]:
    """results.csv's columns (a grid adds base_arm and its axes)."""
    return [*RESULT_HEAD, *stored_keys("results"), *RESULT_TAIL]


def run_record(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What result.json stores of a run's epoch rows: each stored metric computed from them
    (the values as measured: None where a row lacks one) and a selected one's epoch; {} for
    a run that finished no epoch. Metrics whose source is ``result`` the job writes."""
    if not rows:
        return {}
    vals = metric_values(rows, {}, _as_is)
    out: dict[str, Any] = {}
    for m in REGISTRY.values():
        if m.stored and m.source != "result":
            out[m.name] = vals[m.name]
            if m.epoch_key:
                i = m.selected_row(rows, _as_is)
                out[m.epoch_key] = None if i is None else rows[i].get("epoch")
    return out


__all__ = ["Metric", "Shown", "REGISTRY", "metric_names", "get_metric", "metric_values",
           "as_number", "epoch_columns", "stored_keys", "timing_keys", "result_columns",
           "run_record"]


def parse_amount(value: float | int | str, metric: Metric, what: str = "tolerance",
                 signed: bool = False) -> float:
    """An amount of ``metric`` (a tolerance, margin or effect) in the stored unit.

    A number is in the stored unit (a fraction for % metrics: 0.01 is 1 pp); a string may
    carry its unit: ``"1 pp"`` or ``"1 %"`` for % metrics. A % amount of half the scale or
    more is refused: it is almost always percent written where a fraction was meant.
    """
    if isinstance(value, bool):
        raise SharpenError(f"{what}: {value!r} is not an amount")
    if isinstance(value, str):
        text = value.strip()
        unit = next((u for u in ("pp", "%") if text.endswith(u)), "")
        try:
            x = float(text[: len(text) - len(unit)].strip())
        except ValueError:
            raise SharpenError(f"{what}: {value!r} is not a number or a number with its unit "
                               f"(e.g. \"1 pp\")") from None
        if unit and not metric.percent:
            raise SharpenError(f"{what}: {value!r} has unit {unit!r} but {metric.name} is not a "
                               "percentage; give a plain number")
        x = x / 100 if unit else x
    else:
        x = float(value)
    if x != x or (x < 0 and not signed):
        raise SharpenError(f"{what}: {value!r} must be ≥ 0")
    if metric.percent and abs(x) >= 0.5 and isinstance(value, str) and unit:
        raise SharpenError(f"{what}: {value!r} for {metric.name} is {100 * x:g} pp, half the 0–100 % "
                           "scale or more; an amount must be under 50 pp")
    if metric.percent and abs(x) >= 0.5:
        raise SharpenError(
            f"{what}: {value!r} for {metric.name} is {100 * x:g} pp of a 0–100 % scale; write "
            f"it with its unit (\"{x:g} pp\") or as a fraction ({x / 100:g})")
    return x
