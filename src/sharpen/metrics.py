"""The metric registry: every per-run number a table, claim, figure or ``sharpen compare``
shows is one entry here, with how it is read from a run, its unit and how it was selected.

``source`` says where a run's value comes from:

* ``final``: the metrics.csv column at the final epoch (result.json without metrics.csv);
* ``at_best_val``: the column at the epoch of best validation accuracy (earliest on ties):
  selection on validation;
* ``best_test``: the best test accuracy over epochs: selection on test, *optimistic*;
* ``one_minus``: 1 − another metric (test error);
* ``result``: a key of result.json.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sharpen.errors import SharpenError


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str  # "%" (a fraction shown in percent; differences in pp), "s" or "" (a plain number)
    higher_is_better: bool | None
    source: str  # final | at_best_val | best_test | one_minus | result
    column: str  # the metrics.csv column (or result.json key, or the metric it is 1 − of)
    selected_on: str = "final epoch"  # final epoch | validation | test
    per_epoch: bool = False  # has a curve (a metrics.csv column every epoch)
    lowest: float = 0.0  # a % metric's least value (its greatest is 1); a gap can go below 0

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
               "test": ", selected on test: optimistic"}.get(self.selected_on, ", final epoch")
        return f"{self.label} ({self.name}{tag})"


_M = Metric
REGISTRY: dict[str, Metric] = {m.name: m for m in [
    _M("test_acc", "test accuracy", "%", True, "final", "test_acc", per_epoch=True),
    _M("val_acc", "validation accuracy", "%", True, "final", "val_acc", per_epoch=True),
    _M("selected_test_acc", "test accuracy at the best-validation epoch", "%", True,
       "at_best_val", "test_acc", selected_on="validation"),
    _M("selected_val_acc", "best validation accuracy", "%", True, "at_best_val", "val_acc",
       selected_on="validation"),
    _M("best_test_acc", "best test accuracy over epochs", "%", True, "best_test", "test_acc",
       selected_on="test"),
    _M("gap", "generalization gap", "%", False, "final", "gap", per_epoch=True, lowest=-1.0),
    _M("train_acc", "training accuracy", "%", True, "final", "train_acc", per_epoch=True),
    _M("train_loss", "training loss", "", False, "final", "train_loss", per_epoch=True),
    _M("test_loss", "test loss", "", False, "final", "test_loss", per_epoch=True),
    _M("val_loss", "validation loss", "", False, "final", "val_loss", per_epoch=True),
    _M("digit_acc", "digit accuracy", "%", True, "final", "test_digit_acc"),
    _M("test_error", "test error", "%", False, "one_minus", "test_acc"),
    _M("seconds", "seconds per run", "s", False, "result", "seconds"),
]}
METRICS = list(REGISTRY)
PERCENT = {m.name for m in REGISTRY.values() if m.percent}


def get_metric(name: str) -> Metric:
    """The registry entry, or a clear error naming the metrics there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"metric {name!r} is not known{hint}; metrics: "
                           f"{', '.join(METRICS)}") from None


__all__ = ["Metric", "REGISTRY", "METRICS", "PERCENT", "get_metric"]


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
