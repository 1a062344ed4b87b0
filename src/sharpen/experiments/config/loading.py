"""Experiment files (TOML or YAML) and run directories in, a validated Experiment out.

Layout of a file (flat, nanoGPT style): experiment keys (``name``, ``runs``, ``seed`` ...)
and run keys (``dataset``, ``model``, ``lr`` ...) at the top; ``[arms.NAME]`` tables
override run keys per arm; ``[profiles.NAME]`` tables override anything (including
``arms.X.key``) when ``--profile NAME`` is chosen; ``[published]`` holds the paper's
numbers for the report. ``--set key=value`` overrides last. Keys renamed since a file or
a run directory was written are read under their new names (:mod:`sharpen.renamed`).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import tomllib

from sharpen.errors import SharpenError
from sharpen.experiments.config.messages import _check_keys, _suggest, _validate
from sharpen.experiments.config.schema import (
    EXPERIMENT_KEYS,
    RUN_KEYS,
    Experiment,
    RunConfig,
)
from sharpen.experiments.config.validation import (
    _check_claims,
    _check_grid,
    _check_grid_arms,
    _check_published,
    _check_published_grid,
    _check_same_cells,
    _semantic_checks,
)
from sharpen.io import read_file
from sharpen.renamed import upgrade_keys
from sharpen.rundir import ARM_ORDER_ALPHABETICAL, CONFIG, RunDir, arm_order

BUNDLED_DIR = Path(__file__).parents[1] / "bundled"
# config.json's record of a user's own data: its name → the sha256 of its content
# (sharpen.data.user.content_hash), checked on every resume; not an experiment key
DATA_HASHES = "data_hashes"


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


_PATH_PREFIXES = ("npz:", "imagefolder:")


def _anchored(value: Any, key: str, folder: Path) -> Any:
    """One run key's value with a relative path made relative to ``folder``."""
    def at(p: str) -> str:
        return p if Path(p).expanduser().is_absolute() else str(folder / p)

    if key == "data_dir" and isinstance(value, str):
        return at(value)
    if key == "dataset" and isinstance(value, dict) and isinstance(value.get("path"), str):
        return {**value, "path": at(value["path"])}
    if key == "dataset" and isinstance(value, str) and value.startswith(_PATH_PREFIXES):
        fmt, _, p = value.partition(":")
        return f"{fmt}:{at(p)}"
    return value


def _anchor_keys(table: Any, folder: Path) -> Any:
    if not isinstance(table, dict):
        return table
    out = {k: _anchored(v, k.rsplit(".", 1)[-1], folder) for k, v in table.items()}
    if isinstance(out.get("arms"), dict):
        out["arms"] = {a: _anchor_keys(t, folder) for a, t in out["arms"].items()}
    return out


def beside_the_file(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """An experiment file's own paths (``dataset = { path = ... }``, ``data_dir``) are the
    file's: a relative one is made relative to its folder, wherever sharpen is started.
    The folder is also importable, so ``model = "mynet:Net"`` finds ``mynet.py`` beside it
    (in worker processes too: they inherit ``PYTHONPATH``). ``--set`` values stay relative to
    the working directory, as on any command line."""
    out = _anchor_keys(raw, folder)
    if isinstance(out.get("profiles"), dict):
        out["profiles"] = {n: _anchor_keys(t, folder) for n, t in out["profiles"].items()}
    importable(folder)
    return out


def importable(folder: Path) -> None:
    """Put ``folder`` on the import path, here and in worker processes (they inherit
    ``PYTHONPATH``), after installed packages: a stray file never shadows one."""
    where = str(folder)
    if where not in sys.path:
        sys.path.append(where)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join([*parts, where])


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


def load_experiment(name_or_path: str, profile: str | None = None,
                    overrides: list[str] | None = None, runs: int | None = None,
                    axes: list[str] | None = None) -> Experiment:
    """An experiment from a bundled name, a .toml/.yaml file, or a run directory (its
    config.json: the resolved experiment, every override applied)."""
    given = Path(name_or_path)
    if given.name == CONFIG or (given.is_dir() and (given / CONFIG).is_file()):
        return load_run_dir(given, profile, overrides, runs, axes)
    path = find_experiment(name_or_path)
    try:
        return _load_file(path, profile, overrides, runs, axes)
    except SharpenError as exc:
        if path.parent != BUNDLED_DIR:
            raise
        # a bundled file's installed path (site-packages/...) is no file the user wrote
        raise SharpenError(str(exc).replace(str(path), f"bundled experiment {path.stem!r}")
                           ) from None


def _load_file(path: Path, profile: str | None, overrides: list[str] | None,
               runs: int | None, axes: list[str] | None) -> Experiment:
    """The experiment of one .toml/.yaml file, its profile, --set, --runs and --axis applied."""
    raw = upgrade_keys(read_file(path), str(path))
    if path.parent != BUNDLED_DIR:
        raw = beside_the_file(raw, path.parent.resolve())
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
        _check_set(item, parts[2] if top == "arms" and len(parts) == 3 else top,
                   parse_value(v.strip()) if len(parts) == 1 or top == "arms" else raw[top])
    if runs is not None:
        raw["runs"] = runs
    for item in axes or []:  # --axis lr=0.1,0.01
        if "=" not in item:
            raise SharpenError(f"--axis {item!r}: expected key=v1,v2,...")
        k, vs = item.split("=", 1)
        values = [parse_value(v.strip()) for v in vs.split(",") if v.strip()]
        raw.setdefault("grid", {})[k.strip()] = values
    return build_experiment(raw, path, profile or "")


def _check_set(item: str, key: str, value: Any) -> None:
    """A --set run key's value checked alone, so a value of the wrong type blames the --set
    (the whole experiment's check names the file's field, which the user never wrote).
    Checks across keys wait for the whole experiment."""
    if key in RUN_KEYS and key != "arms":
        model: Any = RunConfig
        data: dict[str, Any] = {key: value}
    elif key in Experiment.model_fields and key not in ("arms", "name"):
        # an experiment key (runs, claims, max_runs ...): alone in the smallest experiment
        model, data = Experiment, {"name": "-", "arms": {}, key: value}
    else:
        return
    mark = Path("--set")
    try:
        _validate(model, data, mark, "")
    except SharpenError as exc:
        head, text = f"{mark}: field {key}", str(exc)
        if text.startswith(head + ": "):
            raise SharpenError(f"--set {item.strip()}: {text[len(head) + 2:]}") from None
        if text.startswith(head + "."):  # an item of a list or table: log.0
            rest = text[len(head) - len(key):]
            raise SharpenError(f"--set {item.strip()}: field {rest}") from None


def load_run_dir(path: Path, profile: str | None = None, overrides: list[str] | None = None,
                 runs: int | None = None, axes: list[str] | None = None) -> Experiment:
    """The experiment a run directory holds, exactly as it ran; ``--runs`` may grow it and
    ``--set key=value`` changes a run key in every arm (a different experiment: give it
    another --out)."""
    cfg_path = path if path.name == CONFIG else path / CONFIG
    if not cfg_path.is_file():
        raise SharpenError(f"{cfg_path}: no such file; a run directory holds {CONFIG}")
    if profile or axes:
        raise SharpenError(f"{cfg_path.parent}: a run directory is already resolved; "
                           "--profile and --axis apply to experiment files only")
    # read as every report reads it: renamed keys under their new names, arms in file order
    cfg = RunDir(cfg_path.parent).config()
    cfg.pop("plan", None)
    cfg.pop(DATA_HASHES, None)
    source = Path(str(cfg.get("source") or ""))
    if source.suffix in (".toml", ".yaml", ".yml") and source.is_file():
        # its own model (model = "mynet:Net", mynet.py beside the file) imports as it did
        # when the file ran (a directory recorded before sources were absolute: relative
        # to where sharpen is started)
        importable(source.resolve().parent)
    if arm_order(cfg, cfg_path.parent)[1] != ARM_ORDER_ALPHABETICAL and \
            isinstance(cfg.get("arms"), dict) and not cfg.get("arm_order"):
        # an old directory's order, read back from its experiment file: recorded from now on
        cfg["arm_order"] = list(dict.fromkeys(
            (cfg.get("cells") or {}).get(a, {}).get("arm", a) for a in cfg["arms"]))
    for item in overrides or []:
        k, sep, v = item.partition("=")
        k = k.strip()
        if k == "select_arms":  # what `sharpen run DIR --arms A` asks for
            raise SharpenError(
                f"--arms {parse_value(v.strip())}: a run directory runs all its arms; to run "
                f"only some, give its experiment file: sharpen run EXPERIMENT --arms "
                f"{parse_value(v.strip())} --out {cfg_path.parent}")
        if not sep or k not in RUN_KEYS:
            raise SharpenError(f"--set {item!r}: on a run directory give a run key=value"
                               f"{_suggest(k, RUN_KEYS)}")
        _check_set(item, k, parse_value(v.strip()))
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
    order = list(arms_raw)  # the file's order, recorded: the first arm is the default baseline
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
    _check_grid_arms(grid, arms_raw, path)
    _validate(RunConfig, base, path, "")  # top-level keys first: errors name the key as written
    arms: dict[str, RunConfig] = {}
    cells: dict[str, dict[str, Any]] = {}
    made: dict[str, tuple[str, dict[str, Any], RunConfig]] = {}
    for arm, ov in arms_raw.items():
        if not isinstance(ov, dict):
            raise SharpenError(f"{path}: arms.{arm} must be a table of run keys")
        _check_keys(ov, RUN_KEYS, f"arms.{arm}.", path)
        for cell in itertools.product(*grid.values()) if grid else [()]:
            point = dict(zip(grid, cell))
            plain = {k: v for k, v in point.items() if not k.startswith("model_args.")}
            merged = {**copy.deepcopy(base), **copy.deepcopy(ov), **copy.deepcopy(plain)}
            if "model_args" in ov and "model_args" in base:
                merged["model_args"] = {**base["model_args"], **ov["model_args"]}
            fields = {k.split(".", 1)[1]: v for k, v in point.items() if k not in plain}
            if fields:  # a grid over one model argument keeps the others
                merged["model_args"] = {**(merged.get("model_args") or {}), **fields}
            name = arm + "".join(f"__{k}-{v}" for k, v in point.items())
            where = (f"arms.{arm}." if raw.get("arms") else "") + (
                f"(grid {point}) " if point else "")
            arms[name] = _validate(RunConfig, merged, path, where)
            _semantic_checks(arms[name], path, where)
            if point:
                cells[name] = {"arm": arm, **point}
                made[name] = (arm, point, arms[name])
    _check_same_cells(made, arms_raw, path)
    meta = {k: v for k, v in raw.items()
            if k in EXPERIMENT_KEYS - {"arms", "profiles", "select_arms", "grid"}}
    meta.setdefault("name", path.stem)
    # absolute: `sharpen run DIR` from another folder finds the file's own model beside it
    exp = _validate(Experiment, {**meta, "arms": arms, "source": str(path.resolve()),
                                 "profile": profile,
                                 "grid": grid, "cells": cells, "arm_order": order}, path, "")
    _check_claims(exp, set(raw.get("arms") or {"default": {}}) | set(arms), path)
    for i, c in enumerate(exp.claims if cells else []):
        # a grid's claims are judged in every cell (claim maps); one naming a cell's own arm
        # would be judged nowhere by the report and against every cell by --until-decided
        named = [c.arm] + ([c.than] if isinstance(c.than, str) else list(c.than or []))
        one = next((a for a in named if a in cells), None)
        if one is not None:
            raise SharpenError(
                f"{path}: field claims[{i}]: {one!r} is one cell of the grid; a grid "
                f"experiment's claims name its arms ({', '.join(order)}), and each claim is "
                "judged in every cell (a claim map)")
    # as written: the schema reads a quoted "0.5" in a column as 0.5 and true as 1
    _check_published_grid(raw.get("published_grid") or {}, set(raw.get("arms") or {"default": {}}),
                          path)
    _check_published(exp.published, exp.published_protocol,
                     set(raw.get("arms") or {"default": {}}), path)
    return exp
