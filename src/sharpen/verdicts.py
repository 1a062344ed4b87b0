"""What a claim may say and what it is judged: the claim operators, one registry, and the
verdict, one value printed through one formatter.

An operator (``op`` in an experiment file's ``[[claims]]``) is one :class:`Op` entry of
:data:`OPS`. The entry says everything the rest of the package asks of it: which keys give
it a meaning (:meth:`Op.check`, run when the file is read), which test judges it
(``test``: the function of that name in ``sharpen.reports.claims``), how a sequential look
decides it (:meth:`Op.decide`), and how it reads (``means``). Adding one that an existing
test judges is one entry here; a new kind of test is one more function in
``reports/claims.py`` (docs/methods/statistics.md, "Claims and verdicts").

A verdict is a :class:`Verdict` (an :class:`Outcome`, and the n or the reason its text
names), never a string matched by its prefix; ``str(verdict)`` is the one spelling every
section (claims table, claim maps, sequential record, notes) prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sharpen.errors import SharpenError
from sharpen.metrics import get_metric


class Outcome(StrEnum):
    """What a claim's judgement comes to (docs/methods/statistics.md)."""

    SUPPORTED = "supported"  # significant on the claimed side
    NOT_SUPPORTED = "not supported"  # not significant: our n cannot tell
    CONTRADICTED = "contradicted"  # significant on the other side
    UNDECIDABLE = "undecidable"  # no outcome at this n could be significant
    UNTESTED = "untested"  # nothing to test: fewer than 2 runs, or an arm without values


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict: its outcome, and what its text names (the n an undecidable
    verdict rests on; why a claim went untested)."""

    outcome: Outcome
    n: int | None = None  # UNDECIDABLE: the seeds at which no outcome could be significant
    reason: str = ""  # UNTESTED: why ("n < 2", "no test_acc for baseline")

    def __str__(self) -> str:
        if self.outcome is Outcome.UNDECIDABLE:
            return f"undecidable at n = {self.n}"
        if self.outcome is Outcome.UNTESTED:
            return f"untested ({self.reason or 'n < 2'})"
        return self.outcome.value

    @classmethod
    def undecidable(cls, n: int) -> Verdict:
        return cls(Outcome.UNDECIDABLE, n=n)

    @classmethod
    def untested(cls, reason: str = "n < 2") -> Verdict:
        return cls(Outcome.UNTESTED, reason=reason)

    @classmethod
    def missing(cls, metric: str, arm: str) -> Verdict:
        """Untested because an arm the claim names has no value of its metric: its runs are
        missing, never a reason to judge the claim on the arms that are there."""
        return cls.untested(f"no {metric} for {arm}")


SUPPORTED = Verdict(Outcome.SUPPORTED)
NOT_SUPPORTED = Verdict(Outcome.NOT_SUPPORTED)
CONTRADICTED = Verdict(Outcome.CONTRADICTED)
UNTESTED = Verdict.untested()


# --- claim operators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """A claim operator: how the file writes it, what it means, which keys it reads, which
    test judges it and how a sequential look decides it."""

    name: str  # as the experiment file writes it
    means: str  # "arm is ... than"; how it reads in a sentence
    side: int  # +1: the arm is claimed higher, −1: lower, 0: equal within ± tolerance
    rivals: bool = False  # compares with rival arms (one or a list; none: every other arm)
    test: str = "directional"  # the judging function of sharpen.reports.claims

    @property
    def margin(self) -> bool:
        """An equivalence claim: it needs a tolerance > 0 and is judged by TOST."""
        return self.side == 0

    @property
    def chance(self) -> bool:
        """A claim about P(A > B) (or P(A < B)) against a threshold, not about a mean."""
        return self.test == "outperform"

    @property
    def difference(self) -> bool:
        """A claim of a difference of means, which the paired t-test's power describes (the
        detectable effect, the seeds for the paper's effect); neither an equivalence nor a
        chance is one."""
        return not self.margin and not self.chance

    def check(self, c: Any, where: str) -> None:
        """The claim's keys are those that give this op a meaning, nothing else: a key it
        does not read would be ignored, and the claim judged as something the file does
        not say. ``c``: a schema ``Claim`` whose tolerance is already a number."""
        if self.margin and not c.tolerance:
            raise SharpenError(f"{where}.tolerance: a {self.name!r} claim needs a margin > 0, "
                               "e.g. tolerance = \"1 pp\"")
        if self.chance:
            self._check_chance(c, where)
            return
        if getattr(c, "threshold", None) is not None:  # read by no other op: never ignored
            chances = " or ".join(repr(o.name) for o in OPS.values() if o.chance)
            raise SharpenError(f"{where}.threshold: op {self.name!r} has no threshold (it is "
                               f"for {chances}: the chance that a run of the arm beats one "
                               "of `than`); drop it")
        if self.rivals:
            self._check_rivals(c, where)
        else:
            self._check_one(c, where)

    def _check_one(self, c: Any, where: str) -> None:
        """One arm (``than``) or a fixed number (``value``)."""
        if (c.than is None) == (c.value is None):
            raise SharpenError(f"{where}: op {self.name!r} needs exactly one of than (an arm) "
                               "or value (a fixed number)")
        if isinstance(c.than, list):
            raise SharpenError(f"{where}.than: op {self.name!r} compares with one arm, not a "
                               "list")
        m = get_metric(c.metric)
        if c.value is not None and m.percent and abs(c.value) > 1:
            # 90 meant as 90 %: every arm would be judged below it
            raise SharpenError(f"{where}.value: {c.value!r} is not a fraction of 1; "
                               f"{c.metric} is written as a fraction (90 % is 0.9)")
        if c.value is not None and m.percent and c.value < m.lowest:
            # every arm is above a negative accuracy: "supported" whatever trained
            raise SharpenError(f"{where}.value: {c.value!r} is below {c.metric}'s range "
                               f"[{m.lowest:g}, 1]; give a fraction in it (90 % is 0.9)")
        if not self.margin and c.tolerance:
            raise SharpenError(f"{where}.tolerance: op {self.name!r} has no margin (tolerance "
                               "is for '~', equal within ± tolerance); drop it, or use "
                               "op = \"~\"")

    def _check_chance(self, c: Any, where: str) -> None:
        """One rival arm (``than``) and a threshold γ in (0.5, 1), default
        :data:`THRESHOLD`: a chance at or below 0.5 is no claim of outperforming, one of 1
        no claim any finite n could support."""
        if c.than is None or isinstance(c.than, list) or c.value is not None:
            raise SharpenError(f"{where}: op {self.name!r} compares runs of the arm with runs "
                               "of one other arm: give than = an arm (and no value)")
        for key, given in (("tolerance", bool(c.tolerance)), ("effect", c.effect is not None)):
            if given:
                raise SharpenError(f"{where}.{key}: op {self.name!r} judges a chance against "
                                   f"its threshold, not a difference; drop {key}")
        t = THRESHOLD if c.threshold is None else c.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.5 < t < 1:
            verb = "beat" if self.side > 0 else "be below"
            raise SharpenError(f"{where}.threshold: {t!r} is not in (0.5, 1); give, as a "
                               f"fraction, the chance with which a run of {c.arm!r} must "
                               f"{verb} the run of {c.than!r} with its seed (default "
                               f"{THRESHOLD}: 3 seeds in 4)")
        c.threshold = float(t)

    def _check_rivals(self, c: Any, where: str) -> None:
        """Rival arms: one, a list, or none (every other arm); never a value or a margin."""
        if c.value is not None:
            raise SharpenError(f"{where}.value: op {self.name!r} compares with other arms, not "
                               "a number; give than = an arm or a list of arms (or leave it "
                               "out: every other arm), or use op '>' / '<' with value")
        if c.tolerance:
            raise SharpenError(f"{where}.tolerance: op {self.name!r} has no margin (tolerance "
                               "is for '~'); drop it")
        if isinstance(c.than, list) and not c.than:
            raise SharpenError(f"{where}.than: an empty list; name the rival arms, or leave "
                               "than out to compare with every other arm")
        rivals = [c.than] if isinstance(c.than, str) else list(c.than or [])
        if len(set(rivals)) < len(rivals):
            raise SharpenError(f"{where}.than: {rivals!r} names an arm twice; name each rival "
                               "once")

    def decide(self, p: float | None, direction: int, threshold: float) -> Outcome | None:
        """The decision at one sequential look, or None while the claim stays open: ``p``
        its two-sided decision p (for an equivalence, the TOST p while the estimate lies
        inside the margin, else the doubled "beyond the margin" p), ``direction`` +1 when
        the estimate lies on the claimed side.

        An equivalence is decided when TOST reaches half the two-sided threshold (each
        one-sided test at half the look's level: conservative, TOST itself would allow the
        whole) and decided against when the "beyond" p reaches the whole threshold: that p
        is already doubled (:func:`~sharpen.reports.stats.one_sided_beyond`), so halving the
        threshold too would count the side twice."""
        if p is None:
            return None
        if self.margin:
            if direction > 0:
                return Outcome.SUPPORTED if p <= self.support_threshold(threshold) else None
            return Outcome.CONTRADICTED if p <= threshold else None
        if p <= threshold:
            return Outcome.SUPPORTED if direction > 0 else Outcome.CONTRADICTED
        return None

    def support_threshold(self, look: float) -> float:
        """The p a supporting decision must reach at a look whose two-sided threshold is
        ``look`` (an equivalence: each one-sided test at half), as the sequential section
        prints it."""
        return look / 2 if self.margin else look


THRESHOLD = 0.75  # a chance claim's default γ: Bouthillier et al. (2021)'s recommendation

OPS: dict[str, Op] = {op.name: op for op in (
    Op(">", "higher than", +1),
    Op("<", "lower than", -1),
    Op("~", "equal within ± tolerance to", 0, test="equivalence"),
    Op("best", "the highest of", +1, rivals=True, test="rivals"),
    Op("worst", "the lowest of", -1, rivals=True, test="rivals"),
    Op("P>", "higher, seed for seed with a chance above threshold, than", +1,
       test="outperform"),
    Op("P<", "lower, seed for seed with a chance above threshold, than", -1,
       test="outperform"),
)}


def get_op(name: str) -> Op:
    """The registry's operator ``name``; an unknown one is refused, never read as another
    (a "best" with a value was once judged as "below the value")."""
    if name not in OPS:
        raise SharpenError(f"op: {name!r} is not an op; ops: "
                           + ", ".join(f"{o!r} ({op.means})" for o, op in OPS.items()))
    return OPS[name]

