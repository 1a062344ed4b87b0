"""The schema of an experiment file: the run keys (the trainer's and the data's, plus every
technique's own, merged into ``RunConfig``), the experiment keys, claims, and the table of
every key with its meaning (``sharpen keys``)."""

from __future__ import annotations

import json
import os
import types
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from sharpen.data.user import source_name
from sharpen.errors import SharpenError
from sharpen.metrics import get_metric, parse_amount
from sharpen.rundir import WEIGHTS
from sharpen.techniques import TECHNIQUES
from sharpen.training.schedules import ScheduleLike
from sharpen.training.streams import STREAMS, check_vary
from sharpen.verdicts import OPS


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
        description="seed of the train/validation split and of the train_size subset "
        "(while the split is pinned: see vary)")
    # which random streams follow the run seed (training.streams); None = today's
    # behaviour, kept out of old directories' way: every stream but "split"
    vary: list[str] | Literal["all"] | None = Field(None,
        description="random streams that follow the run seed (" + ", ".join(STREAMS)
        + ", or \"all\"); the rest (with a list, your own techniques' streams too) are pinned: "
        "the same draws for every seed (split from "
        "split_seed, the others from pin_seed). Default: every stream but split; "
        "[\"split\", ...] gives each seed its own validation images and train_size subset")
    pin_seed: int = Field(0, description="the seed pinned streams draw from (see vary; a "
                          "pinned split draws from split_seed)")
    data_resize: int | None = Field(None, ge=4, description="resize train and test images once")

    model: str = Field("lenet5_dropout", description="model name (sharpen list models)")
    model_args: dict[str, Any] = Field(default_factory=dict,
        description="keyword arguments of the model's factory, e.g. { dropout = 0.5 }")

    # digit-pair comparison (papers 002, 004): N pairs per split, drawn anew per run seed
    pairs: int | None = Field(None, ge=1,
        description="digit-pair task (papers 002, 004): training pairs drawn per run seed")
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
        "none", description=f"keep each seed's {WEIGHTS}: after the last epoch, or at its best "
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
    # deterministic kernels: torch.use_deterministic_algorithms, cuBLAS workspace, cuDNN
    # without autotuning; "auto" = on for CUDA (where kernels may otherwise race), off on
    # the CPU (whose kernels are deterministic for a fixed thread count)
    deterministic: bool | Literal["auto"] = Field("auto",
        description="deterministic kernels ('auto': on for CUDA, off on the CPU); the report "
        "says which mode ran")
    # NHWC layout: faster convs on CPU (oneDNN) and GPU (cuDNN)
    channels_last: bool = Field(True, description="NHWC memory layout (faster convs on CPU and GPU)")
    # bf16 autocast of forward and loss
    amp: Literal["off", "bf16"] = Field("off",
        description="off, or bf16 autocast of forward and loss (weights stay fp32)")
    # torch.compile the model
    # launch overhead: "reduce-overhead" captures the step with CUDA graphs (static shapes);
    # off by default until `sharpen bench gpu` has measured it
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = Field(False,
        description="torch.compile the model: true, or a mode ('reduce-overhead': CUDA graphs "
        "where shapes are static)")
    # SGD/Adam update as one fused kernel
    fused_optimizer: bool = Field(True, description="SGD/Adam/AdamW update as one fused kernel")
    eval_batch_size: int = Field(1000, ge=1, description="images per evaluation forward "
                                 "of ten stacked seeds: each seed is evaluated in chunks of "
                                 "eval_batch_size ÷ 10, whatever its stack size")

    # the execution plan (experiments.plan): both change float rounding, so both are part
    # of the configuration, never of where the runs happen (--workers, --backend)
    # seeds of an arm trained at once as one stacked model: "auto" = up to
    # plan.MAX_STACK when the model and every technique stack, else 1
    stack_seeds: int | Literal["auto"] = Field("auto",
        description="seeds of an arm trained at once as one stacked model ('auto': up to 10)")
    # how stacked seeds run their convolutions and BatchNorm: one call per seed ("loop") or
    # seeds on the channel axis in one grouped call ("grouped"); "auto": grouped on CUDA, the
    # loop on the CPU (faster there when measured). Float rounding differs: part of the plan
    stack_conv: Literal["auto", "loop", "grouped"] = Field("auto",
        description="stacked seeds' convs and BatchNorm: 'loop' (a call per seed), 'grouped' "
        "(one grouped call) or 'auto' (grouped on CUDA, loop on the CPU)")
    # torch threads per job: "auto" = 1 (experiments.plan.AUTO_THREADS): the thread count
    # changes float rounding, so it never follows the number of jobs; recorded in the plan
    threads: int | Literal["auto"] = Field("auto",
        description="torch threads per job ('auto': 1; groups run side by side on the "
        "cores instead); part of the plan, as it changes float rounding")

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, v: Any) -> Any:

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

    @field_validator("vary", mode="before")  # before: one message naming the streams
    @classmethod
    def _vary(cls, v: Any) -> Any:
        vary = check_vary(v)  # stored in STREAMS order: config.json compares equal
        return list(vary) if isinstance(vary, tuple) else vary

    @field_validator("stack_seeds", "threads")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'auto' or an integer >= 1")
        return v


def _compose() -> type[BaseModel]:

    bases = (_RunBase, *[t.Config for t in TECHNIQUES])
    return type("RunConfig", bases, {
        "__doc__": "Everything one training run needs; every arm resolves to one of these.",
        "__module__": __name__, "model_config": ConfigDict(extra="forbid")})


RunConfig: Any = _compose()
# the trainer's and the data's keys: read by every run, whatever techniques it enables (a
# technique that re-declares one, say batch_size, does not make it its own)
TRAINER_KEYS = frozenset(_RunBase.model_fields)


EXPERIMENT_KEYS = {"name", "description", "paper", "runs", "seed", "arms", "profiles",
                   "published", "notes", "select_arms", "grid", "report_error", "baseline",
                   "claims", "published_grid", "log", "published_margin", "max_runs",
                   "published_protocol", "min_effect"}


class Claim(BaseModel):
    """A checkable statement about arms (sharpen.reports.claims): judged in every report."""

    model_config = ConfigDict(extra="forbid")

    claim: str
    paper_says: str = ""
    arm: str
    op: str  # one of sharpen.verdicts.OPS, read when the claim is (see below)
    than: str | list[str] | None = None  # another arm, or for best/worst the rivals
    value: float | None = None  # instead of `than`: a fixed number
    metric: str = "test_acc"
    # for "~": equal within ± tolerance; a number is in the metric's stored unit (0.01 is
    # 1 pp of accuracy), a string carries its unit ("1 pp"); stored as the number
    tolerance: float | str = 0.0
    effect: float | str | None = None  # the effect the paper states (default: from published)
    # for "P>" / "P<": the chance γ in (0.5, 1) a run must beat its seed's rival with
    # (default 0.75, stored); the other ops refuse it
    threshold: float | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Without ``threshold`` where it is unset: a claim of another op is recorded in
        config.json as it was before the key existed."""
        out = handler(self)
        if out.get("threshold") is None:
            out.pop("threshold", None)
        return out

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str) -> str:
        """The registry's ops as they stand when the file is read (not when this module was
        imported): an op is one entry of sharpen.verdicts.OPS and nothing else."""
        if op not in OPS:
            names = [repr(o) for o in OPS]
            raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}")
        return op


RUN_KEYS = set(RunConfig.model_fields)


def _type_name(ann: Any) -> str:

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
    "paper": "the report it reproduces",
    "notes": "free text added to the report",
    "runs": "seeds per arm: seed, seed + 1, ... (--runs overrides)",
    "seed": "the first random seed",
    "arms": "[arms.NAME] tables: each arm's run keys, over the shared top-level ones",
    "profiles": "[profiles.NAME] tables of overrides, chosen with --profile NAME",
    "select_arms": "run only these arms (a profile or --arms may narrow the list)",
    "baseline": "the arm every other arm is compared with (default: the file's first arm)",
    "claims": "[[claims]]: checkable statements judged in every report as one family",
    "published": "[published.ARM] the source's numbers (metric = mean; runs = N and "
                 "metric_std where it states them; resolution of its last digit), beside ours",
    "published_grid": "[published_grid.AXIS] the source's grid, cell by cell (runs, "
                      "resolution as in published)",
    "published_margin": "ours against a published mean is reproduced within ± this ('1 pp')",
    "published_protocol": "{ dataset, epochs, ... } the protocol the published numbers came "
                          "from; arms that differ are shown beside them without a verdict",
    "grid": "{ key = [values] }: run every arm at every combination (plain values; "
            "model_args.NAME = [...] grids one model argument)",
    "max_runs": "--until-decided: the budget of seeds per arm (default 4 looks)",
    "min_effect": "--until-decided: the smallest effect worth detecting (\"0.5 pp\"); the "
                  "budget must detect it (80 % power, with a --pilot's sd) before a seed is "
                  "spent (default: each claim's paper effect)",
    "report_error": "tables in test error (1 − accuracy) instead of accuracy",
    "log": "trackers fed while the run goes: tensorboard, mlflow",
}

# a [[claims]] entry's keys (docs/methods/statistics.md, "Claims and verdicts")
CLAIM_MEANINGS = {
    "claim": "the statement, as the report prints it",
    "paper_says": "what the source says, printed beside our verdict",
    "arm": "the arm the claim is about",
    "op": "'>' / '<' (higher / lower than), '~' (equal within ± tolerance), 'best' / "
          "'worst' (of its rivals), 'P>' / 'P<' (a run is above / below the run of `than` "
          "with the same seed with a chance above threshold)",
    "than": "the arm it is compared with, seed by seed; for best / worst a list of rivals "
            "(default: every other arm)",
    "value": "instead of `than` (>, <, ~): a fixed number in the metric's unit (0.9 is 90 %)",
    "metric": "the metric judged: test_acc, gap, val_acc, test_loss, seconds, ... (an "
              "unknown one is refused with the list)",
    "tolerance": "'~' only: the equivalence margin, with its unit (\"1 pp\")",
    "effect": "the effect the paper states (\"1.4 pp\"; default: from [published]): the "
              "seeds that would settle it; unused by '~', refused by 'P>' / 'P<'",
    "threshold": "'P>' / 'P<' only: the chance γ in (0.5, 1) a run must beat its seed's rival "
                 "with (default 0.75: Bouthillier et al. 2021); supported when the 95 % "
                 "interval of P lies above it",
}


def key_table() -> list[dict[str, str]]:
    """Every run key of an experiment file: name, type, default and meaning, from the
    config model itself (``sharpen keys``); the technique that owns it, if any."""

    owner: dict[str, str] = {}  # a shared key (blur padding) names every technique it serves
    for t in TECHNIQUES:
        for k in t.Config.model_fields:
            owner[k] = f"{owner[k]}, {t.name}" if k in owner else t.name
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
    for k, f in Claim.model_fields.items():  # a [[claims]] entry's keys, as claims.KEY
        rows.append({"key": f"claims.{k}", "type": _type_name(f.annotation),
                     "default": "(required)" if f.is_required() else json.dumps(f.default),
                     "owner": "claim", "meaning": CLAIM_MEANINGS[k]})
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
    paper: str = ""
    notes: str = ""
    runs: int = Field(1, ge=1)
    seed: int = 0
    arms: dict[str, RunConfig]
    published: dict[str, Any] = Field(default_factory=dict)
    source: str = ""
    profile: str = ""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    report_error: bool = False  # tables in test error (1 − accuracy), as paper 002 prints them
    baseline: str | None = None  # the arm every other arm is compared with (default: the first)
    claims: list[Claim] = Field(default_factory=list)
    log: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)  # trackers
    # ours against a published mean is "reproduced" within ± this margin (% metrics: "1 pp")
    published_margin: float | str = "1 pp"
    max_runs: int | None = Field(None, ge=2)  # --until-decided: the budget of seeds per arm
    # --until-decided: the smallest effect worth detecting, in each claim's metric ("0.5 pp")
    min_effect: float | str | None = None

    @field_validator("published_margin")
    @classmethod
    def _margin(cls, v: float | str) -> float:

        try:  # stored as the fraction, however it was written
            return parse_amount(v, get_metric("test_acc"), "published_margin")
        except SharpenError as exc:
            raise ValueError(str(exc).removeprefix("published_margin: ")) from None

    @field_validator("min_effect")
    @classmethod
    def _min_effect(cls, v: float | str | None, info: ValidationInfo) -> float | str | None:
        """Checked where it is given, not only under --until-decided (a fixed-n run took
        "abc"): an amount of each claim's metric; kept as written, since each claim reads
        it in its own metric (sharpen.experiments.sequential)."""
        if v is None:
            return v
        # the claims it applies to: not a "~" claim's, which asks for no effect
        metrics = {c.metric for c in info.data.get("claims") or []
                   if c.op in OPS and not OPS[c.op].margin} or {"test_acc"}
        for name in sorted(metrics):
            try:
                parse_amount(v, get_metric(name), "min_effect")
            except SharpenError as exc:
                raise ValueError(str(exc).removeprefix("min_effect: ")) from None
        return v
    # the paper's grid tables: axis -> {"values": [...], "<arm>": [mean per value], ...}
    # (and optionally runs = N, resolution = "0.01 pp": as in a [published.ARM] table)
    published_grid: dict[str, dict[str, list[int | float] | int | float | str]] = Field(
        default_factory=dict)
    # the protocol keys (sharpen.rundir.PROTOCOL_KEYS) the published numbers were produced
    # under: an arm whose protocol differs gets "not comparable", never a verdict
    published_protocol: dict[str, Any] = Field(default_factory=dict)
    # grid runs: derived arm name -> {"arm": base arm, axis: value, ...}
    cells: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # the file's arms in the file's order, select_arms's left-out ones too: config.json is
    # written with sorted keys, and the first arm is the default baseline (sharpen.rundir)
    arm_order: list[str] = Field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.runs)]

    def resolved(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())
