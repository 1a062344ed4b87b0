"""One schedule primitive for every scheduled quantity (lr, image size, σ, dropout, ...).

A schedule is a pure function of the epoch (0-based) and the run length; with
``unit = "progress"`` its begin/length/every/points are fractions of training in [0, 1],
where progress = epoch / (epochs - 1). In a config file a bare number is a constant.
``per = "step"`` asks the trainer to evaluate it at every optimizer step, at the
fractional epoch epoch + batch/batches, instead of once at the start of each epoch.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from sharpen.errors import SharpenError

Unit = Literal["epoch", "progress"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    unit: Unit = "epoch"
    per: Literal["epoch", "step"] = "epoch"

    def _t(self, epoch: float, epochs: int) -> float:
        if self.unit == "epoch":
            return float(epoch)
        return epoch / (epochs - 1) if epochs > 1 else 1.0

    def _horizon(self, epochs: int) -> float:
        return float(epochs - 1) if self.unit == "epoch" else 1.0

    def value(self, epoch: int, epochs: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def values(self, epochs: int) -> list[float]:
        return [self.value(e, epochs) for e in range(epochs)]

    def end_point(self, epochs: int) -> float | None:
        """Where the schedule's own span ends (None if it has no span)."""
        return None


class Constant(_Base):
    kind: Literal["constant"] = "constant"
    value_: float = Field(alias="value")

    def value(self, epoch: int, epochs: int) -> float:
        return self.value_


class Linear(_Base):
    """start → end over [begin, begin+length]; length defaults to the whole run (i/(N-1))."""

    kind: Literal["linear"] = "linear"
    start: float
    end: float
    begin: float = Field(0.0, ge=0)
    length: float | None = Field(None, gt=0)

    def value(self, epoch: int, epochs: int) -> float:
        L = self.length if self.length is not None else self._horizon(epochs) - self.begin
        if L <= 0:
            return self.end
        f = min(max((self._t(epoch, epochs) - self.begin) / L, 0.0), 1.0)
        return self.start + (self.end - self.start) * f

    def end_point(self, epochs: int) -> float | None:
        return None if self.length is None else self.begin + self.length


class Cosine(_Base):
    """Cosine annealing start → end; length defaults to the run length (PyTorch T_max=epochs)."""

    kind: Literal["cosine"] = "cosine"
    start: float
    end: float = 0.0
    begin: float = Field(0.0, ge=0)
    length: float | None = Field(None, gt=0)

    def value(self, epoch: int, epochs: int) -> float:
        L = self.length if self.length is not None else (
            float(epochs) if self.unit == "epoch" else 1.0) - self.begin
        f = min(max((self._t(epoch, epochs) - self.begin) / L, 0.0), 1.0) if L > 0 else 1.0
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * f)) / 2

    def end_point(self, epochs: int) -> float | None:
        return None if self.length is None else self.begin + self.length


class Step(_Base):
    """start, then every ``every`` epochs: ×factor and +delta; clipped to [min, max]."""

    kind: Literal["step"] = "step"
    start: float
    every: float = Field(gt=0)
    delta: float = 0.0
    factor: float = 1.0
    begin: float = Field(0.0, ge=0)
    min: float | None = None
    max: float | None = None

    def value(self, epoch: int, epochs: int) -> float:
        k = max(0, math.floor((self._t(epoch, epochs) - self.begin) / self.every + 1e-9))
        v = self.start * self.factor**k + self.delta * k
        if self.min is not None:
            v = max(v, self.min)
        if self.max is not None:
            v = min(v, self.max)
        return v

    def end_point(self, epochs: int) -> float | None:
        return self.begin  # a step schedule that begins after training never acts


class Piecewise(_Base):
    """Values at given points; held (``interpolate = false``) or linearly interpolated."""

    kind: Literal["piecewise"] = "piecewise"
    points: list[tuple[float, float]] = Field(min_length=1)
    interpolate: bool = False

    @model_validator(mode="after")
    def _sorted(self) -> Piecewise:
        xs = [p[0] for p in self.points]
        if xs != sorted(xs) or len(set(xs)) != len(xs):
            raise ValueError("points must have strictly increasing positions")
        return self

    def value(self, epoch: int, epochs: int) -> float:
        t, pts = self._t(epoch, epochs), self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= t < x1:
                return y0 + (y1 - y0) * (t - x0) / (x1 - x0) if self.interpolate else y0
        return pts[-1][1]

    def end_point(self, epochs: int) -> float | None:
        return self.points[-1][0]


class OneCycle(_Base):
    """Smith's one-cycle policy as torch's OneCycleLR (cosine anneal): from peak/div up to
    ``peak`` over the first ``pct`` of the run, then down to peak/(div·final_div) at its
    end. Meant for ``per = "step"``; the run spans [0, epochs) in epochs."""

    kind: Literal["onecycle"] = "onecycle"
    peak: float = Field(gt=0)
    pct: float = Field(0.3, gt=0, lt=1)
    div: float = Field(25.0, gt=0)
    final_div: float = Field(1e4, gt=0)

    def value(self, epoch: float, epochs: int) -> float:
        f = min(max(epoch / epochs if self.unit == "epoch" else self._t(epoch, epochs), 0.0), 1.0)
        lo, hi, end = self.peak / self.div, self.peak, self.peak / (self.div * self.final_div)

        def anneal(a: float, b: float, x: float) -> float:
            return b + (a - b) * (1 + math.cos(math.pi * x)) / 2

        if f <= self.pct:
            return anneal(lo, hi, f / self.pct)
        return anneal(hi, end, (f - self.pct) / (1 - self.pct))


Schedule = Annotated[Constant | Linear | Cosine | Step | Piecewise | OneCycle,
                     Field(discriminator="kind")]
ScheduleLike = float | Schedule


def as_schedule(s: ScheduleLike | dict) -> _Base:
    """Accept a number, a dict with ``kind``, or a schedule object."""
    if isinstance(s, _Base):
        return s
    if isinstance(s, (int, float)):
        return Constant(value=float(s))
    return TypeAdapter(Schedule).validate_python(s)


def check_schedule(s: ScheduleLike, field: str, epochs: int, lo: float | None = None,
                   hi: float | None = None, hi_open: bool = False, integer: bool = False,
                   lo_open: bool = False) -> None:
    """Reject a schedule that leaves its allowed range or outlasts training; name the field."""
    sch = as_schedule(s)
    end = sch.end_point(epochs)
    horizon = epochs if sch.unit == "epoch" else 1.0
    if end is not None and end > horizon + 1e-9:
        where = (f"ends at {end:g} epochs but training has only {horizon:g}" if sch.unit == "epoch"
                 else f"ends at progress {end:g} but training ends at progress 1")
        raise SharpenError(f"field {field!r}: schedule {where}; shorten the schedule or train longer")
    for e, v in enumerate(sch.values(epochs)):
        bad = (lo is not None and (v <= lo if lo_open else v < lo - 1e-12)) or (
            hi is not None and (v >= hi if hi_open else v > hi + 1e-12))
        if bad or not math.isfinite(v):
            rng = (f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, "
                   f"{hi if hi is not None else 'inf'}{')' if hi_open else ']'}")
            raise SharpenError(
                f"field {field!r}: value {v:g} at epoch {e + 1} is outside the allowed range {rng}"
            )
        if integer and abs(v - round(v)) > 1e-9 and sch.kind != "linear":
            raise SharpenError(f"field {field!r}: value {v:g} at epoch {e + 1} must be an integer")
