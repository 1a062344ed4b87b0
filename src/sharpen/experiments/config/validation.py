"""Checks that need more than one key: the model as it will train (``build_model``: the
only model built here), datasets, claims and published tables, grids, stacking, hooks,
schedules and each technique's own ``check``; each error names the file and the field."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sharpen.data import get_spec
from sharpen.data.pairs import pair_input_shape
from sharpen.errors import SharpenError
from sharpen.experiments.build import build_model
from sharpen.experiments.config.messages import _suggest
from sharpen.experiments.config.schema import RUN_KEYS, Experiment, RunConfig, _type_name
from sharpen.experiments.plan import stack_blockers
from sharpen.metrics import REGISTRY, get_metric, parse_amount
from sharpen.models import list_models
from sharpen.plugins import is_target
from sharpen.rundir import PROTOCOL_KEYS
from sharpen.techniques import TECHNIQUES, user_hooks
from sharpen.training.schedules import check_schedule
from sharpen.verdicts import get_op


def _check_published_grid(pub: dict[str, dict[str, Any]], known: set[str],
                          path: Path) -> None:
    for axis, table in pub.items():
        where = f"{path}: field published_grid.{axis}"
        if axis not in RUN_KEYS:
            raise SharpenError(f"{where}: {axis!r} is not a run key{_suggest(axis, RUN_KEYS)}")
        if "values" not in table:
            raise SharpenError(f"{where}: needs values = [the axis values, in table order]")
        _check_published_meta(table, where)
        for arm, col in table.items():
            if arm in ("runs", "resolution"):
                continue
            if arm != "values" and arm not in known:
                raise SharpenError(f"{where}.{arm}: not an arm; arms: {', '.join(sorted(known))}")
            if not isinstance(col, list):
                raise SharpenError(f"{where}.{arm}: a list of numbers, one per value")
            if len(col) != len(table["values"]):
                raise SharpenError(f"{where}.{arm}: {len(col)} numbers for "
                                   f"{len(table['values'])} values")
            if arm != "values":
                for x in col:
                    _check_number(x, f"{where}.{arm}", f"{arm} = [{{}}, ...]")
                    _check_fraction(x, get_metric("test_acc"), f"{where}.{arm}")


def _check_published_meta(table: dict[str, Any], where: str) -> None:
    """``runs`` (the number of runs the table's means are over) and ``resolution`` (the
    unit of their last printed digit) of a published table."""
    n = table.get("runs")
    if n is not None:
        _check_number(n, f"{where}.runs", "runs = {}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise SharpenError(f"{where}.runs: {n!r}: the number of runs the paper's numbers are "
                           "the mean of, an integer ≥ 1 (1: a single run)")
    if table.get("resolution") is not None:
        try:
            res = parse_amount(table["resolution"], get_metric("test_acc"), "resolution")
        except SharpenError as exc:
            raise SharpenError(f"{where}.{exc}") from None
        if res <= 0:
            raise SharpenError(f"{where}.resolution: the unit of the last digit the paper "
                               "prints, > 0: \"1 pp\" for 21 %, \"0.01 pp\" for 72.08 %")


def _check_number(x: Any, where: str, example: str = "{}") -> None:
    """A published number is a TOML number: a quoted one ("0.10") or true/false was read
    as no number at all, and the report then judged without it (our sd in place of theirs,
    or no verdict) without a word. ``example``: how the field is written, ``{}`` the number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        meant = None if isinstance(x, bool) else _example(x)
        hint = (f"write the number unquoted, e.g. {example.format(json.dumps(meant))}"
                if isinstance(meant, (int, float)) else "write it as a number, unquoted")
        raise SharpenError(f"{where}: {json.dumps(x)} is not a number; {hint}")


def _check_fraction(x: Any, m: Any, where: str) -> None:
    """A published number: a number, and for a % metric a fraction (0.7208), never
    percent (72.08)."""
    _check_number(x, where, f"{where.rpartition('.')[2]} = {{}}")
    if m.percent and not 0 <= x <= 1:
        raise SharpenError(f"{where}: {x!r} is not a fraction of 1; {m.name} is written as a "
                           f"fraction (72.08 % is 0.7208)")


def _example(value: Any) -> Any:
    """A quoted number unquoted: the value the user most likely meant."""
    try:
        return int(value) if str(value).strip().lstrip("-").isdigit() else float(value)
    except (TypeError, ValueError):
        return str(value)


def _check_published(pub: dict[str, Any], protocol: dict[str, Any], known: set[str],
                     path: Path) -> None:
    """[published.ARM] tables: the paper's number per metric, and what it states of the
    runs behind them (runs, <metric>_std, resolution); ``published_protocol``'s keys."""
    for k in protocol:
        if k not in PROTOCOL_KEYS:
            raise SharpenError(f"{path}: field published_protocol.{k}: not a protocol key; "
                               f"protocol keys: {', '.join(PROTOCOL_KEYS)}")
        # typed as the run key it is compared with: "2" epochs would never equal 2 and
        # print "not comparable (epochs 2 here, 2 in the paper)"
        kind = RunConfig.model_fields[k].annotation
        try:
            TypeAdapter(kind).validate_python(protocol[k], strict=True)
        except ValidationError:
            raise SharpenError(
                f"{path}: field published_protocol.{k}: {protocol[k]!r} is not a value of the "
                f"run key {k} ({_type_name(kind)}); write it as a run writes {k}, e.g. "
                f"{k} = {json.dumps(_example(protocol[k]))}") from None
    stats_keys = {f"{m}_{s}" for m in REGISTRY for s in ("std", "best", "worst")}
    allowed = set(REGISTRY) | stats_keys | {"runs", "resolution"}
    for arm, vals in pub.items():
        where = f"{path}: field published.{arm}"
        if arm not in known:
            raise SharpenError(f"{where}: not an arm; arms: {', '.join(sorted(known))}")
        if not isinstance(vals, dict):
            raise SharpenError(f"{where}: a table of the paper's numbers ([published.{arm}] "
                               "test_acc = 0.7208)")
        _check_published_meta(vals, where)
        for k, v in vals.items():
            if k not in allowed:
                raise SharpenError(f"{where}.{k}: not a metric, <metric>_std / _best / _worst, "
                                   f"runs or resolution{_suggest(k, allowed)}")
            base = k.rpartition("_")[0] if k in stats_keys else k
            if base in REGISTRY:
                _check_fraction(v, get_metric(base), f"{where}.{k}")
            if k in stats_keys and k.endswith("_std") and base in vals \
                    and (vals.get("runs") or 1) < 2:
                raise SharpenError(f"{where}.{k}: an sd is over runs: add runs = N (how many "
                                   "runs the paper's mean and sd are over, N ≥ 2)")


def _check_claims(exp: Experiment, known: set[str], path: Path) -> None:

    try:
        exp.published_margin = parse_amount(exp.published_margin, get_metric("test_acc"),
                                            "published_margin")
    except SharpenError as exc:
        raise SharpenError(f"{path}: field {exc}") from None

    if exp.baseline is not None and exp.baseline not in known:
        raise SharpenError(f"{path}: field baseline: {exp.baseline!r} is not an arm; arms: "
                           f"{', '.join(sorted(known))}")
    for i, c in enumerate(exp.claims):
        where = f"{path}: field claims[{i}]"
        names = [c.arm] + ([c.than] if isinstance(c.than, str) else list(c.than or []))
        bad = [a for a in names if a not in known]
        if bad:
            raise SharpenError(f"{where}: {bad[0]!r} is not an arm; arms: {', '.join(sorted(known))}")
        if c.metric not in REGISTRY:
            raise SharpenError(f"{where}.metric: {c.metric!r} is not a metric; metrics: "
                               f"{', '.join(REGISTRY)}")
        try:
            c.tolerance = parse_amount(c.tolerance, get_metric(c.metric), f"{where}.tolerance")
            if c.effect is not None:
                c.effect = parse_amount(c.effect, get_metric(c.metric), f"{where}.effect",
                                        signed=True)
        except SharpenError as exc:
            raise SharpenError(str(exc)) from None
        _check_claim_shape(c, where)


def _check_claim_shape(c: Any, where: str) -> None:
    """Every op with the keys that give it a meaning, nothing else (each op's own check:
    :meth:`sharpen.verdicts.Op.check`); a claim is never compared with its own arm, nor
    with a value that is not a number."""
    rivals = [c.than] if isinstance(c.than, str) else list(c.than or [])
    if c.arm in rivals:
        raise SharpenError(f"{where}.than: {c.arm!r} is the claim's own arm; name the arm(s) it "
                           "is compared with")
    if c.value is not None and not math.isfinite(c.value):
        # nan passed every check below and broke each later report of the directory
        raise SharpenError(f"{where}.value: {c.value!r} is not a number; a claim's value is "
                           "a finite number (0.9 for 90 % of a % metric)")
    try:
        op = get_op(c.op)  # the schema refuses an unknown op first
    except SharpenError as exc:
        raise SharpenError(f"{where}.{exc}") from None
    op.check(c, where)


def _check_grid(grid: Any, path: Path) -> dict[str, list[Any]]:
    """The grid as axis → list of plain values. ``model_args.dropout = [...]`` (a dotted
    TOML key, read as a nested table) is the axis ``"model_args.dropout"``: a field of the
    model's arguments, merged into the rest of them. A table or list as an axis value is
    refused: it would name a cell directory by its Python spelling and cannot key a table."""
    if not isinstance(grid, dict):
        raise SharpenError(f"{path}: 'grid' must be a table of axis = [values]")
    flat: dict[str, Any] = {}
    for k, v in grid.items():
        if k == "model_args" and isinstance(v, dict):
            flat.update({f"model_args.{f}": x for f, x in v.items()})
        else:
            flat[k] = v
    for k, v in flat.items():
        field = k.split(".", 1)[0] if k.startswith("model_args.") else k
        if field not in RUN_KEYS:
            raise SharpenError(f"{path}: unknown grid axis {k!r}{_suggest(k, RUN_KEYS)}")
        if not isinstance(v, list):
            raise SharpenError(f"{path}: grid axis {k!r} must be a list of values, got {v!r}")
        if not v:
            raise SharpenError(f"{path}: grid axis {k!r} is empty; give at least one value")
        for x in v:
            if isinstance(x, (dict, list)):
                hint = (" grid over one of its fields instead, e.g. [grid] model_args.dropout "
                        "= [0.0, 0.5]" if k == "model_args" else
                        " give each value its own arm instead")
                raise SharpenError(f"{path}: grid axis {k!r}: value {x!r} is a table or a "
                                   f"list; a grid axis takes plain values (numbers, strings, "
                                   f"true/false);{hint}")
        if len({repr(x) for x in v}) < len(v) or len({str(x) for x in v}) < len(v):
            raise SharpenError(f"{path}: grid axis {k!r} repeats a value ({v!r}); give each "
                               "value once")
    return flat


def _arm_sets(ov: dict[str, Any], axis: str) -> bool:
    """Whether an arm's own table sets the key a grid axis sets (``model_args.NAME``: that
    field of its ``model_args``)."""
    if axis.startswith("model_args."):
        args = ov.get("model_args")
        return isinstance(args, dict) and axis.split(".", 1)[1] in args
    return axis in ov


def _check_grid_arms(grid: dict[str, list[Any]], arms: dict[str, Any], path: Path) -> None:
    """An arm's own key that a grid axis sets in every cell is never used: where some arms
    set it and others do not, the grid erases what the arm changes, and two arms meant to
    differ ran as one configuration in every cell (a claim between them judged +0.00 pp).
    Where every arm sets it, the grid replaces it in every arm alike (the arms differ in
    other keys: a paper's grid at each model); two arms that still end up the same are
    refused cell by cell (:func:`_check_same_cells`)."""
    for axis, values in grid.items():
        setters = [a for a, ov in arms.items() if isinstance(ov, dict) and _arm_sets(ov, axis)]
        if setters and len(setters) < len(arms):
            arm = setters[0]
            others = [a for a in arms if a not in setters]
            raise SharpenError(
                f"{path}: field arms.{arm}.{axis} is never used: the grid axis {axis} sets "
                f"{axis} in every cell ({', '.join(map(str, values))}), so what arms.{arm} "
                f"changes there is lost (arm {'s' * (len(others) > 1)}"
                f"{', '.join(others)} do{'es' * (len(others) == 1)} not set it); drop "
                f"{axis} from arms.{arm}, or drop the axis {axis} from the grid")


def _check_same_cells(made: dict[str, tuple[str, dict[str, Any], Any]],
                      arms: dict[str, Any], path: Path) -> None:
    """No two cells of a grid run one configuration: two values of one axis that the run
    key reads as one (``epochs = [1, true]``: 1 both times), or two arms the grid makes
    identical (they differ only in keys its axes set). ``made``: cell name → (its arm, its
    grid point, its RunConfig)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    for name, (arm, point, cfg) in made.items():
        dump = cfg.model_dump()  # compared with ==: model_args' 0 and 0.0 are one dropout
        other = next((n for n, d in seen if d == dump), None)
        seen.append((name, dump))
        if other is None:
            continue
        arm0, point0, _ = made[other]
        if arm0 == arm:
            axis = next(k for k in point if repr(point[k]) != repr(point0[k]))
            field, _, sub = axis.partition(".")
            value = cfg.model_args[sub] if sub else getattr(cfg, field)
            raise SharpenError(
                f"{path}: grid axis {axis!r}: the values {json.dumps(point0[axis])} and "
                f"{json.dumps(point[axis])} give the same configuration ({axis} = "
                f"{json.dumps(value)}: cells {other} and {name}); give each value once, as "
                f"{axis} takes it")
        if arms.get(arm0) == arms.get(arm):
            continue  # the same table twice (an A/A comparison), as without a grid
        keys = sorted({k for k in (*arms[arm0], *arms[arm])
                       if arms[arm0].get(k) != arms[arm].get(k)})
        raise SharpenError(
            f"{path}: arms {arm0} and {arm} are the same configuration in the grid's cells "
            f"({other} and {name}): they differ only in {', '.join(keys)}, which the grid's "
            f"axes ({', '.join(point)}) set in every cell; drop the key from the arms, or "
            f"the axis from the grid")


def _semantic_checks(c: RunConfig, path: Path, where: str) -> None:

    try:
        spec = get_spec(c.dataset)
    except SharpenError as exc:
        raise SharpenError(f"{path}: field {where}dataset: {exc}") from None
    if not is_target(c.model) and c.model not in list_models():
        close = difflib.get_close_matches(c.model, list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SharpenError(f"{path}: field {where}model: unknown model {c.model!r}{hint}; "
                           f"valid names: {', '.join(list_models())}")
    if c.pairs is not None:
        try:
            pair_input_shape(spec.shape)
        except SharpenError as exc:
            raise SharpenError(f"{path}: field {where}pairs: {exc}") from None
    side = c.data_resize or spec.shape[-1]
    if c.data_resize is not None and len(spec.shape) != 3:
        raise SharpenError(f"{path}: field {where}data_resize applies to images only, "
                           f"not to {c.dataset}")

    try:
        check_schedule(c.lr, f"{where}lr", c.epochs, lo=0.0, lo_open=True)
        check_schedule(c.weight_decay, f"{where}weight_decay", c.epochs, lo=0.0)
        for tech in TECHNIQUES:
            tech.check(c, where, side)
    except SharpenError as exc:
        raise SharpenError(f"{path}: {exc}") from None
    try:  # the model as it will train: a lazy layer, a technique's change, the output shape
        build_model(c)
    except SharpenError as exc:
        raise SharpenError(f"{path}: " + str(exc).replace("field ", f"field {where}", 1)) from None
    if isinstance(c.stack_seeds, int) and c.stack_seeds > 1:
        why = stack_blockers(c)
        if why:
            raise SharpenError(f"{path}: field {where}stack_seeds: these seeds cannot be stacked: "
                               f"{'; '.join(why)}; set stack_seeds = 1 (or \"auto\")")
    if c.hooks:

        try:
            user_hooks(c)
        except SharpenError as exc:
            raise SharpenError(f"{path}: " + str(exc).replace("field hooks", f"field {where}hooks", 1)
                               ) from None
    if c.save_weights == "best_val" and not c.val_size:
        raise SharpenError(f"{path}: field {where}save_weights: 'best_val' needs a validation "
                           "split (val_size > 0); or use 'final'")
