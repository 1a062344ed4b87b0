"""Experiment files (TOML or YAML): validated, with errors that name the field.

Layout of a file (flat, nanoGPT style): experiment keys (``name``, ``runs``, ``seed`` ...)
and run keys (``dataset``, ``model``, ``lr`` ...) at the top; ``[arms.NAME]`` tables
override run keys per arm; ``[profiles.NAME]`` tables override anything (including
``arms.X.key``) when ``--profile NAME`` is chosen; ``[published]`` holds the seed's
numbers for the report. ``--set key=value`` overrides last.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Literal

import tomllib
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sharpen import SharpenError
from sharpen.training.schedules import ScheduleLike, check_schedule

BUNDLED_DIR = Path(__file__).parent / "bundled"


class HookSpec(BaseModel):
    """A user's own hook: ``{ target = "package.module:MyHook", args = {...} }``."""

    model_config = ConfigDict(extra="forbid")
    target: str
    args: dict[str, Any] = Field(default_factory=dict)


class _RunBase(BaseModel):
    """The trainer's and the data's keys; each technique adds its own (sharpen.techniques)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("mnist", description="dataset name (sharpen list datasets), or a "
                         "table { path = \"...\", format = \"npz\" | \"imagefolder\" }")
    data_dir: str | None = Field(None,
        description="folder holding the dataset's files (default: $SHARPEN_DATA, then the cache)")
    verify: bool = Field(True, description="check the dataset files' md5 before use")
    train_size: int | None = Field(None, ge=1, description="subset of the training split")
    val_size: int = Field(0, ge=0, description="images held out of training for validation")
    test_size: int | None = Field(None, ge=1, description="first N test images")
    split_seed: int = Field(0,
        description="seed of the train/validation split and of the train_size subset")
    data_resize: int | None = Field(None, ge=4, description="resize train and test images once")

    model: str = Field("lenet5_dropout", description="model name (sharpen list models)")
    model_args: dict[str, Any] = Field(default_factory=dict,
        description="keyword arguments of the model's factory, e.g. { dropout = 0.5 }")

    # digit-pair comparison (seeds 002, 004): N pairs per split, drawn anew per run seed
    pairs: int | None = Field(None, ge=1,
        description="digit-pair task (seeds 002, 004): training pairs drawn per run seed")
    pairs_test: int | None = Field(None, ge=1, description="test pairs (default: pairs)")
    # train: mean/std of train pairs
    pair_normalize: Literal["train", "dataset"] = Field("train",
        description="pairs: normalise with the train pairs' mean/std or the dataset's")
    aux_weight: float = Field(1.0, ge=0, description="pairs: weight of the auxiliary digit loss")
    asym_weight: float = Field(1.0, ge=0, description="pairs: weight of the swapped-pair (asymmetry) loss")

    epochs: int = Field(10, ge=1, description="epochs of training")
    batch_size: int = Field(64, ge=1, description="training batch size (per seed)")
    optimizer: Literal["sgd", "adam", "adamw"] = Field("sgd",
        description="sgd, adam or adamw (decoupled weight decay)")
    lr: ScheduleLike = Field(0.01,
        description="learning rate: a number or a schedule (per epoch, or per step with per = 'step')")
    warmup: float = Field(0.0, ge=0, description="epochs of linear lr warm-up, per step")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD with Nesterov momentum")
    weight_decay: ScheduleLike = Field(0.0,
        description="L2 / weight decay: a number or a schedule (decoupled for adamw)")
    loss: Literal["cross_entropy", "nll"] = Field("cross_entropy",
        description="cross_entropy (logits) or nll (log-probabilities)")

    save_weights: Literal["none", "final", "best_val"] = Field(
        "none", description="keep each seed's weights.pt: after the last epoch, or at its best "
        "validation epoch (load: sharpen.load_predictor(seed_dir))")
    hooks: list[HookSpec] = Field(default_factory=list, description="your own techniques: "
                                  "[{ target = \"package.module:MyHook\", args = {...} }]; "
                                  "a sharpen.training.Hook subclass")
    keep_best: bool = Field(False,
        description="also report the best test epoch per run (selected on test: optimistic)")
    # save every epoch; a killed run resumes from its last epoch
    checkpoint: bool = Field(True,
        description="save every epoch so that a killed run resumes from its last epoch")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    # NHWC layout: faster convs on CPU (oneDNN) and GPU (cuDNN)
    channels_last: bool = Field(True, description="NHWC memory layout (faster convs on CPU and GPU)")
    # bf16 autocast of forward and loss
    amp: Literal["off", "bf16"] = Field("off",
        description="off, or bf16 autocast of forward and loss (weights stay fp32)")
    # torch.compile the model
    compile: bool = Field(False, description="torch.compile the model")
    # SGD/Adam update as one fused kernel
    fused_optimizer: bool = Field(True, description="SGD/Adam/AdamW update as one fused kernel")
    eval_batch_size: int = Field(1000, ge=1, description="batch size of evaluation")

    # the execution plan (experiments.plan): both change float rounding, so both are part
    # of the configuration, never of where the runs happen (--workers, --backend)
    # seeds of an arm trained at once as one stacked model: "auto" = up to
    # plan.MAX_STACK when the model and every technique stack, else 1
    stack_seeds: int | Literal["auto"] = Field("auto",
        description="seeds of an arm trained at once as one stacked model ('auto': up to 10)")
    # torch threads per job: "auto" = this machine's cores ÷ the plan's jobs (at least 1),
    # fixed when the run directory's plan is made
    threads: int | Literal["auto"] = Field("auto",
        description="torch threads per job ('auto': this machine's cores ÷ jobs)")

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, v: Any) -> Any:
        from sharpen.data.user import source_name

        return source_name(v)  # a {path, format} table becomes its canonical name

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str | None) -> str | None:
        # absolute, so that workers elsewhere (a Ray node, `sharpen run DIR` from another
        # folder) read the same files
        return None if v is None else os.path.abspath(os.path.expanduser(v))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu") and not v.startswith(("cuda", "mps")):
            raise ValueError("must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_numbers_as_text(cls, data: Any) -> Any:
        """``batch_size = "64"``: a number written as text is refused, as for every number
        key, rather than converted silently (a quoted value is usually a mistake)."""
        import typing

        if not isinstance(data, dict):
            return data
        for k, v in data.items():
            f = cls.model_fields.get(k)
            if f is None or not isinstance(v, str):
                continue
            ann = f.annotation
            if typing.get_origin(ann) is typing.Annotated:  # a number-or-schedule key
                ann = typing.get_args(ann)[0]
            kinds = set(typing.get_args(ann)) or {ann}
            if not kinds & {int, float} or str in kinds or any(
                    typing.get_origin(a) is typing.Literal for a in kinds):
                continue
            try:
                float(v)
                hint = " (drop the quotes)"
            except ValueError:
                hint = ""
            if kinds <= {int, float, type(None)}:
                raise ValueError(f"{k}: expected a number, got the text {v!r}{hint}")
            raise ValueError(f"{k}: expected a valid number or a schedule table such as "
                             "{ kind = \"linear\", start = 0.1, end = 0.01 } (kinds: constant, "
                             f"linear, step, cosine, piecewise, onecycle), got the text {v!r}"
                             f"{hint}")
        return data

    @field_validator("stack_seeds", "threads")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'auto' or an integer >= 1")
        return v


def _compose() -> type[BaseModel]:
    from sharpen.techniques import TECHNIQUES

    bases = (_RunBase, *[t.Config for t in TECHNIQUES])
    return type("RunConfig", bases, {
        "__doc__": "Everything one training run needs; every arm resolves to one of these.",
        "__module__": __name__, "model_config": ConfigDict(extra="forbid")})


RunConfig: Any = _compose()


EXPERIMENT_KEYS = {"name", "description", "seed_paper", "runs", "seed", "arms", "profiles",
                   "published", "notes", "select_arms", "grid", "report_error", "baseline",
                   "claims", "published_grid", "log", "published_margin"}


class Claim(BaseModel):
    """A checkable statement about arms (sharpen.reports.claims): judged in every report."""

    model_config = ConfigDict(extra="forbid")

    claim: str
    seed_says: str = ""
    arm: str
    op: Literal[">", "<", "~", "best", "worst"]
    than: str | list[str] | None = None  # another arm, or for best/worst the rivals
    value: float | None = None  # instead of `than`: a fixed number
    metric: str = "test_acc"
    # for "~": equal within ± tolerance; a number is in the metric's stored unit (0.01 is
    # 1 pp of accuracy), a string carries its unit ("1 pp"); stored as the number
    tolerance: float | str = 0.0
    effect: float | str | None = None  # the effect the seed states (default: from published)
RUN_KEYS = set(RunConfig.model_fields)


def _type_name(ann: Any) -> str:
    import types
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:  # a schedule: the union of its kinds
        return "schedule"
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args]
        if "schedule" in names:
            names = ["number or schedule" if n == "schedule" else n for n in names
                     if n != "float"]
        return " | ".join(names)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if ann is type(None):
        return "None"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(ann, "__name__", str(ann))


EXPERIMENT_MEANINGS = {
    "name": "the experiment's name (run directories default to runs/<name>/<time>)",
    "description": "what the experiment is for (printed at the top of its report)",
    "seed_paper": "the report it reproduces",
    "notes": "free text added to the report",
    "runs": "seeds per arm: seed, seed + 1, ... (--runs overrides)",
    "seed": "the first random seed",
    "arms": "[arms.NAME] tables: each arm's run keys, over the shared top-level ones",
    "profiles": "[profiles.NAME] tables of overrides, chosen with --profile NAME",
    "select_arms": "run only these arms (a profile or --arms may narrow the list)",
    "baseline": "the arm every other arm is compared with (default: the first)",
    "claims": "[[claims]]: checkable statements judged in every report as one family",
    "published": "[published.ARM] the source's numbers, set beside ours",
    "published_grid": "[published_grid.AXIS] the source's grid, cell by cell",
    "published_margin": "ours against a published mean is reproduced within ± this ('1 pp')",
    "grid": "{ key = [values] }: run every arm at every combination",
    "report_error": "tables in test error (1 − accuracy) instead of accuracy",
    "log": "trackers fed while the run goes: tensorboard, mlflow",
}


def key_table() -> list[dict[str, str]]:
    """Every run key of an experiment file: name, type, default and meaning, from the
    config model itself (``sharpen keys``); the technique that owns it, if any."""
    from sharpen.techniques import TECHNIQUES

    owner = {k: t.name for t in TECHNIQUES for k in t.Config.model_fields}
    rows = []
    for k, meaning in EXPERIMENT_MEANINGS.items():  # the experiment's own keys first
        f = Experiment.model_fields.get(k)
        default = "" if f is None else (f.default_factory() if f.default_factory is not None
                                        else f.default)
        rows.append({"key": k, "type": "table" if k in ("arms", "profiles") else
                     (_type_name(f.annotation) if f is not None else "str | list[str]"),
                     "default": "(required)" if f is not None and f.is_required() else
                     json.dumps(default) if not isinstance(default, str) else f'"{default}"',
                     "owner": "experiment", "meaning": meaning})
    fields = sorted(RunConfig.model_fields.items(), key=lambda kv: kv[0] in owner)  # trainer first
    for k, f in fields:
        default = f.default_factory() if f.default_factory is not None else f.default
        rows.append({"key": k, "type": _type_name(f.annotation),
                     "default": json.dumps(default) if not isinstance(default, str)
                     else f'"{default}"', "owner": owner.get(k, "trainer/data"),
                     "meaning": f.description or ""})
    return rows


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    seed_paper: str = ""
    notes: str = ""
    runs: int = Field(1, ge=1)
    seed: int = 0
    arms: dict[str, RunConfig]
    published: dict[str, Any] = Field(default_factory=dict)
    source: str = ""
    profile: str = ""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    report_error: bool = False  # tables in test error (1 − accuracy), as seed 002 prints them
    baseline: str | None = None  # the arm every other arm is compared with (default: the first)
    claims: list[Claim] = Field(default_factory=list)
    log: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)  # trackers
    # ours against a published mean is "reproduced" within ± this margin (% metrics: "1 pp")
    published_margin: float | str = "1 pp"

    @field_validator("published_margin")
    @classmethod
    def _margin(cls, v: float | str) -> float:
        from sharpen.reports.metrics import get_metric, parse_amount

        try:  # stored as the fraction, however it was written
            return parse_amount(v, get_metric("test_acc"), "published_margin")
        except SharpenError as exc:
            raise ValueError(str(exc).removeprefix("published_margin: ")) from None
    # the seed's grid tables: axis -> {"values": [...], "<arm>": [mean per value], ...}
    published_grid: dict[str, dict[str, list[int | float]]] = Field(default_factory=dict)
    # grid runs: derived arm name -> {"arm": base arm, axis: value, ...}
    cells: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.runs)]

    def resolved(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def list_bundled() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.toml"))


def find_experiment(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    b = BUNDLED_DIR / f"{name_or_path}.toml"
    if b.is_file():
        return b
    close = difflib.get_close_matches(name_or_path, list_bundled(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SharpenError(
        f"no experiment file or bundled experiment named {name_or_path!r}{hint}; "
        f"bundled: {', '.join(list_bundled())}"
    )


def read_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        if "line" not in msg:  # tomllib says only "end of document" there
            msg += f" (at line {text.count(chr(10)) + 1})"
        raise SharpenError(f"{path}: TOML syntax error: {msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SharpenError(f"{path}: YAML syntax error{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise SharpenError(f"{path}: the top level must be a table of keys, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """``--set`` values: TOML scalars/arrays/inline tables, else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise SharpenError(f"--set {key}: {p!r} is not a table")
        d = nxt
    d[parts[-1]] = value


def _suggest(key: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(d: dict[str, Any], valid: set[str], where: str, path: Path) -> None:
    for k in d:
        if k not in valid:
            raise SharpenError(f"{path}: unknown key {where}{k!r}{_suggest(k, valid)}")


def load_experiment(name_or_path: str, profile: str | None = None,
                    overrides: list[str] | None = None, runs: int | None = None,
                    axes: list[str] | None = None) -> Experiment:
    """An experiment from a bundled name, a .toml/.yaml file, or a run directory (its
    config.json: the resolved experiment, every override applied)."""
    given = Path(name_or_path)
    if given.name == "config.json" or (given.is_dir() and (given / "config.json").is_file()):
        return load_run_dir(given, profile, overrides, runs, axes)
    path = find_experiment(name_or_path)
    raw = read_file(path)
    _check_keys(raw, EXPERIMENT_KEYS | RUN_KEYS, "", path)
    profiles = raw.pop("profiles", {}) or {}
    if profile:
        if profile not in profiles:
            raise SharpenError(
                f"{path}: no profile {profile!r}; available: {', '.join(sorted(profiles)) or '(none)'}"
            )
        for k, v in profiles[profile].items():
            set_dotted(raw, k, copy.deepcopy(v)) if "." in k else _merge(raw, k, v)
    for item in overrides or []:
        if "=" not in item:
            raise SharpenError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        k = k.strip()
        top = k.split(".")[0]
        if top not in EXPERIMENT_KEYS | RUN_KEYS:
            raise SharpenError(f"--set {k}: unknown key '{top}'"
                               f"{_suggest(top, EXPERIMENT_KEYS | RUN_KEYS)}")
        parts = k.split(".")
        if top == "arms" and len(parts) == 3:  # --set arms.NAME.key=value: name both here
            arms = raw.get("arms") or {}
            if parts[1] not in arms:
                raise SharpenError(f"--set {k}: no arm '{parts[1]}'{_suggest(parts[1], set(arms))}"
                                   f"; arms: {', '.join(arms)}")
            if parts[2] not in RUN_KEYS:
                raise SharpenError(f"--set {k}: unknown run key '{parts[2]}'"
                                   f"{_suggest(parts[2], RUN_KEYS)}")
        set_dotted(raw, k, parse_value(v.strip()))
    if runs is not None:
        raw["runs"] = runs
    for item in axes or []:  # --axis lr=0.1,0.01
        if "=" not in item:
            raise SharpenError(f"--axis {item!r}: expected key=v1,v2,...")
        k, vs = item.split("=", 1)
        values = [parse_value(v.strip()) for v in vs.split(",") if v.strip()]
        raw.setdefault("grid", {})[k.strip()] = values
    return build_experiment(raw, path, profile or "")


def load_run_dir(path: Path, profile: str | None = None, overrides: list[str] | None = None,
                 runs: int | None = None, axes: list[str] | None = None) -> Experiment:
    """The experiment a run directory holds, exactly as it ran; ``--runs`` may grow it and
    ``--set key=value`` changes a run key in every arm (a different experiment: give it
    another --out)."""
    cfg_path = path if path.name == "config.json" else path / "config.json"
    if not cfg_path.is_file():
        raise SharpenError(f"{cfg_path}: no such file; a run directory holds config.json")
    if profile or axes:
        raise SharpenError(f"{cfg_path.parent}: a run directory is already resolved; "
                           "--profile and --axis apply to experiment files only")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise SharpenError(f"{cfg_path}: not valid JSON ({exc})") from None
    cfg.pop("plan", None)
    for item in overrides or []:
        k, sep, v = item.partition("=")
        k = k.strip()
        if not sep or k not in RUN_KEYS:
            raise SharpenError(f"--set {item!r}: on a run directory give a run key=value"
                               f"{_suggest(k, RUN_KEYS)}")
        for arm in cfg.get("arms", {}).values():
            arm[k] = parse_value(v.strip())
    if runs is not None:
        cfg["runs"] = runs
    exp = _validate(Experiment, cfg, cfg_path, "")
    for name, arm in exp.arms.items():
        _semantic_checks(arm, cfg_path, f"arms.{name}.")
    return exp


def _merge(raw: dict[str, Any], k: str, v: Any) -> None:
    if isinstance(v, dict) and isinstance(raw.get(k), dict) and k == "arms":
        for arm, ov in v.items():
            raw["arms"].setdefault(arm, {}).update(ov)
    else:
        raw[k] = copy.deepcopy(v)


def build_experiment(raw: dict[str, Any], path: Path, profile: str = "") -> Experiment:
    base = {k: v for k, v in raw.items() if k in RUN_KEYS}
    arms_raw = raw.get("arms") or {"default": {}}
    if not isinstance(arms_raw, dict):
        raise SharpenError(f"{path}: 'arms' must be a table of named arms")
    select = raw.get("select_arms")
    if select is not None:  # run only these arms (a profile or --arms may narrow the list)
        if isinstance(select, str):
            select = [s.strip() for s in select.split(",") if s.strip()]
        unknown = [a for a in select if a not in arms_raw]
        if unknown or not select:
            raise SharpenError(f"{path}: select_arms {unknown or select!r}: not arms of this "
                               f"experiment; arms: {', '.join(arms_raw)}")
        arms_raw = {a: arms_raw[a] for a in select}
    grid = _check_grid(raw.get("grid") or {}, path)
    _validate(RunConfig, base, path, "")  # top-level keys first: errors name the key as written
    arms: dict[str, RunConfig] = {}
    cells: dict[str, dict[str, Any]] = {}
    for arm, ov in arms_raw.items():
        if not isinstance(ov, dict):
            raise SharpenError(f"{path}: arms.{arm} must be a table of run keys")
        _check_keys(ov, RUN_KEYS, f"arms.{arm}.", path)
        for cell in itertools.product(*grid.values()) if grid else [()]:
            point = dict(zip(grid, cell))
            merged = {**copy.deepcopy(base), **copy.deepcopy(ov), **copy.deepcopy(point)}
            if "model_args" in ov and "model_args" in base:
                merged["model_args"] = {**base["model_args"], **ov["model_args"]}
            name = arm + "".join(f"__{k}-{v}" for k, v in point.items())
            where = (f"arms.{arm}." if raw.get("arms") else "") + (
                f"(grid {point}) " if point else "")
            arms[name] = _validate(RunConfig, merged, path, where)
            _semantic_checks(arms[name], path, where)
            if point:
                cells[name] = {"arm": arm, **point}
    meta = {k: v for k, v in raw.items()
            if k in EXPERIMENT_KEYS - {"arms", "profiles", "select_arms", "grid"}}
    meta.setdefault("name", path.stem)
    exp = _validate(Experiment, {**meta, "arms": arms, "source": str(path), "profile": profile,
                                 "grid": grid, "cells": cells}, path, "")
    _check_claims(exp, set(raw.get("arms") or {"default": {}}) | set(arms), path)
    _check_published_grid(exp.published_grid, set(raw.get("arms") or {"default": {}}), path)
    return exp


def _check_published_grid(pub: dict[str, dict[str, list[float]]], known: set[str],
                          path: Path) -> None:
    for axis, table in pub.items():
        where = f"{path}: field published_grid.{axis}"
        if axis not in RUN_KEYS:
            raise SharpenError(f"{where}: {axis!r} is not a run key{_suggest(axis, RUN_KEYS)}")
        if "values" not in table:
            raise SharpenError(f"{where}: needs values = [the axis values, in table order]")
        for arm, col in table.items():
            if arm != "values" and arm not in known:
                raise SharpenError(f"{where}.{arm}: not an arm; arms: {', '.join(sorted(known))}")
            if len(col) != len(table["values"]):
                raise SharpenError(f"{where}.{arm}: {len(col)} numbers for "
                                   f"{len(table['values'])} values")


def _check_claims(exp: Experiment, known: set[str], path: Path) -> None:
    from sharpen.reports.metrics import METRICS, get_metric, parse_amount

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
        if c.metric not in METRICS:
            raise SharpenError(f"{where}.metric: {c.metric!r} is not a metric; metrics: "
                               f"{', '.join(METRICS)}")
        try:
            c.tolerance = parse_amount(c.tolerance, get_metric(c.metric), f"{where}.tolerance")
            if c.effect is not None:
                c.effect = parse_amount(c.effect, get_metric(c.metric), f"{where}.effect",
                                        signed=True)
        except SharpenError as exc:
            raise SharpenError(str(exc)) from None
        if c.op == "~" and not c.tolerance:
            raise SharpenError(f"{where}.tolerance: a '~' claim needs a margin > 0, e.g. "
                               "tolerance = \"1 pp\"")
        if c.op in ("<", ">", "~") and (c.than is None) == (c.value is None):
            raise SharpenError(f"{where}: op {c.op!r} needs exactly one of than (an arm) or value")
        if c.op in ("<", ">", "~") and isinstance(c.than, list):
            raise SharpenError(f"{where}.than: op {c.op!r} compares with one arm, not a list")


def _check_grid(grid: Any, path: Path) -> dict[str, list[Any]]:
    if not isinstance(grid, dict):
        raise SharpenError(f"{path}: 'grid' must be a table of axis = [values]")
    for k, v in grid.items():
        if k not in RUN_KEYS:
            raise SharpenError(f"{path}: unknown grid axis {k!r}{_suggest(k, RUN_KEYS)}")
        if not isinstance(v, list):
            raise SharpenError(f"{path}: grid axis {k!r} must be a list of values, got {v!r}")
        if not v:
            raise SharpenError(f"{path}: grid axis {k!r} is empty; give at least one value")
    return dict(grid)


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        by_loc: dict[str, list[tuple[str, Any]]] = {}
        for err in exc.errors():
            by_loc.setdefault(_clean_loc(err["loc"]), []).append((err["msg"], err.get("input")))
        msgs = []
        for loc, errs in by_loc.items():
            got = errs[0][1]
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            if not loc:  # a whole-table check: its message names the key itself
                msgs.extend(f"field {where}{_plain_msg(m)}" for m, _ in errs)
            elif len(errs) == 1:
                msgs.append(f"field {where}{loc}: {_plain_msg(errs[0][0])}{got_s}")
            elif any("found using 'kind'" in m for m, _ in errs):  # a schedule, kind misspelt
                m = next(m for m, _ in errs if "found using 'kind'" in m)
                msgs.append(f"field {where}{loc}: a number, or a schedule whose "
                            f"{_plain_msg(m).removeprefix('schedule ')}")
            else:  # a union (a number or a schedule, an integer or "auto"): say what is allowed
                allowed = " or ".join(dict.fromkeys(_plain_msg(m).removeprefix("Input should be ")
                                                    for m, _ in errs))
                msgs.append(f"field {where}{loc}: expected {allowed}{got_s}")
        raise SharpenError(f"{path}: " + "; ".join(msgs)) from None


def _plain_msg(msg: str) -> str:
    import re

    msg = msg.removeprefix("Value error, ").replace(", unable to parse string as a number", "")
    bad = re.search(r"Input tag '([^']*)' found using 'kind' does not match any of the expected "
                    r"tags: (.*)", msg)
    if bad:  # a schedule with a misspelt kind
        kinds = [k.strip(" '") for k in bad.group(2).split(",")]
        return (f"schedule kind {bad.group(1)!r} is not one of {', '.join(kinds)}"
                f"{_suggest(bad.group(1), set(kinds))}")
    # a number-or-schedule key: say what a schedule looks like, not how pydantic parses it
    return msg.replace("a valid dictionary or object to extract fields from",
                       "a schedule table such as { kind = \"linear\", start = 0.1, end = 0.01 } "
                       "(kinds: constant, linear, step, cosine, piecewise, onecycle)")


def _clean_loc(loc: tuple) -> str:
    # drop pydantic's union-branch tags so the user sees only their own key names
    tags = {"float", "constant", "linear", "step", "cosine", "piecewise", "onecycle", "int"}
    keep = [str(p) for p in loc if str(p) not in tags and not str(p).startswith(
        ("literal[", "function-", "tagged-union[", "union["))]
    return ".".join(keep)


def _semantic_checks(c: RunConfig, path: Path, where: str) -> None:
    from sharpen.data import get_spec
    from sharpen.data.pairs import pair_input_shape
    from sharpen.experiments.build import build_model
    from sharpen.models import list_models
    from sharpen.plugins import is_target

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
    from sharpen.experiments.plan import stack_blockers
    from sharpen.techniques import TECHNIQUES

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
        from sharpen.techniques import user_hooks

        try:
            user_hooks(c)
        except SharpenError as exc:
            raise SharpenError(f"{path}: " + str(exc).replace("field hooks", f"field {where}hooks", 1)
                               ) from None
    if c.save_weights == "best_val" and not c.val_size:
        raise SharpenError(f"{path}: field {where}save_weights: 'best_val' needs a validation "
                           "split (val_size > 0); or use 'final'")
