"""A run directory: its layout, read back in one place.

The runner writes a run directory and every report, claim, figure, tracker and
``sharpen compare`` reads it through :class:`RunDir`::

    config.json        resolved experiment (every arm's full RunConfig) and its plan
    experiment.toml    the source file as given (copied)
    environment.json   python/torch/sharpen versions, git commit, hardware (latest invocation)
    history.json       every invocation: start, end, wall seconds, commit, jobs run
    runs/<arm>/seed-<s>/metrics.csv      one row per epoch (rewritten atomically each epoch)
    runs/<arm>/seed-<s>/result.json      written once the run ends: marks it finished
    runs/<arm>/seed-<s>/predictions.npz  per split, the predicted class of every image
                                         (int16) and its label, at the last epoch
    results.csv        one row per (arm, seed); no timings, so it depends on the plan only
    summary.json, table.csv, report.md, curves.png

A run whose ``result.json`` or ``metrics.csv`` cannot be read (a disk error, an interrupted
copy) is a run to redo: :meth:`RunDir.runs` returns it with status ``corrupt`` and the
file and reason in ``problem``; the runner trains it again.

The *protocol* of an arm is what makes the runs of two arms comparable seed by seed: with
the same seed, two arms of the same protocol see the same split, data order and
initialisation stream. Runs are paired only within one protocol.

Arms keep the experiment file's order everywhere (tables, claims, figures, the default
baseline: the file's first arm). config.json is written with sorted keys, so the order is
recorded beside the arms as ``arm_order`` (the file's arm names; a grid's cells follow their
base arm, then the grid's values). :meth:`RunDir.config` returns the arms in that order. A
directory made before sharpen recorded it takes the order of the ``experiment.toml`` copied
into it; failing that its arms are alphabetical, and :func:`arm_order` says so (the report
prints it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError

CONFIG, HISTORY, ENVIRONMENT = "config.json", "history.json", "environment.json"
RESULT, METRICS, PREDICTIONS, WEIGHTS = "result.json", "metrics.csv", "predictions.npz", "weights.pt"
# the keys that fix which images a seed trains and is tested on, in which order, for how long
PROTOCOL_KEYS = ("dataset", "train_size", "val_size", "test_size", "split_seed", "data_resize",
                 "pairs", "pairs_test", "epochs")
FINISHED = ("ok", "diverged")  # a failed or corrupt run is trained again on resume


@dataclass
class SeedRun:
    """One (arm, seed) of a run directory as read from its files."""

    arm: str
    seed: int
    path: Path
    status: str  # ok | diverged | failed | corrupt
    result: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # for a corrupt run: which file and why
    rows: list[dict[str, str]] = field(default_factory=list)  # its metrics.csv, when read


def protocol_of(arm_cfg: dict[str, Any]) -> dict[str, Any]:
    """The protocol keys of one arm's resolved RunConfig (absent keys as None)."""
    return {k: arm_cfg.get(k) for k in PROTOCOL_KEYS}


def fingerprint(arm_cfg: dict[str, Any]) -> str:
    """A short hash of an arm's protocol: equal fingerprints, comparable seeds."""
    blob = json.dumps(protocol_of(arm_cfg), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


ARM_ORDER_RECORDED, ARM_ORDER_FILE, ARM_ORDER_ALPHABETICAL = (
    "recorded", "the experiment file in the directory", "alphabetical")


def ordered_arms(names: list[str], order: list[str], cells: dict[str, Any] | None = None,
                 grid: dict[str, list[Any]] | None = None) -> list[str]:
    """``names`` in the file's order: by the place of each arm (a grid cell: of its base arm)
    in ``order``, a grid's cells then by the place of their values on each axis; names
    ``order`` lacks come last, in the order given."""
    pos = {a: i for i, a in enumerate(order)}
    cells, grid = cells or {}, grid or {}

    def where(values: list[Any], v: Any) -> int:
        return values.index(v) if v in values else len(values)

    def key(name: str) -> tuple[int, tuple[int, ...]]:
        cell = cells.get(name) or {}
        return (pos.get(cell.get("arm", name), len(pos)),
                tuple(where(list(vs), cell.get(axis)) for axis, vs in grid.items()))

    return sorted(names, key=key)  # stable: ties keep the order given


def arm_order(cfg: dict[str, Any], root: Path | None = None) -> tuple[list[str], str]:
    """The arms of a resolved experiment (a config.json) in the file's order, and where that
    order comes from: ``arm_order`` as recorded; for a directory made before sharpen recorded
    it, the ``experiment.toml`` (or .yaml) copied into ``root`` when it names every arm and
    the same experiment; else alphabetical (said by the report: the file's order is lost)."""
    arms = list(cfg.get("arms") or {})
    cells, grid = cfg.get("cells") or {}, cfg.get("grid") or {}
    if cfg.get("arm_order"):
        return ordered_arms(arms, list(cfg["arm_order"]), cells, grid), ARM_ORDER_RECORDED
    bases = {(cells.get(a) or {}).get("arm", a) for a in arms}
    for path in ([] if root is None else
                 [root / f"experiment{x}" for x in (".toml", ".yaml", ".yml")]):
        if not path.is_file():
            continue
        try:
            from sharpen.io import read_file

            raw = read_file(path)
        except (SharpenError, OSError, UnicodeDecodeError):
            continue
        arms_raw = raw.get("arms") or {"default": {}}
        file_arms = list(arms_raw) if isinstance(arms_raw, dict) else []
        profile = (raw.get("profiles") or {}).get(cfg.get("profile") or "") or {}
        for k, v in profile.items() if isinstance(profile, dict) else ():  # arms it adds
            added = [k.split(".")[1]] if k.startswith("arms.") and k.count(".") >= 2 else \
                list(v) if k == "arms" and isinstance(v, dict) else []
            file_arms += [a for a in added if a not in file_arms]
        if raw.get("name", cfg.get("name")) == cfg.get("name") and bases <= set(file_arms):
            return ordered_arms(sorted(arms), file_arms, cells, grid), ARM_ORDER_FILE
    return ordered_arms(sorted(arms), sorted(bases), cells, grid), ARM_ORDER_ALPHABETICAL


def in_file_order(cfg: dict[str, Any], root: Path | None = None) -> str:
    """Put a config.json's arms (and a grid's cells) in the file's order, in place; returns
    where the order comes from (:func:`arm_order`)."""
    if not isinstance(cfg.get("arms"), dict):
        return ARM_ORDER_ALPHABETICAL
    order, how = arm_order(cfg, root)
    cfg["arms"] = {a: cfg["arms"][a] for a in order}
    if isinstance(cfg.get("cells"), dict):
        cfg["cells"] = {a: cfg["cells"][a] for a in ordered_arms(list(cfg["cells"]), order)}
    return how


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SharpenError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(obj, dict):
        raise SharpenError(f"{path}: not a JSON object")
    return obj


class RunDir:
    """Paths and readers of one run directory (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -----------------------------------------------------------------------------
    def seed_dir(self, arm: str, seed: int) -> Path:
        return self.root / "runs" / arm / f"seed-{seed}"

    # whole-directory files ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The resolved experiment, renamed keys read under their new names, its arms (and
        a grid's cells) in the experiment file's order (:func:`arm_order`)."""
        from sharpen.experiments.config.renamed import upgrade_keys

        path = self.root / CONFIG
        if not path.is_file():
            raise SharpenError(f"{self.root} is not a run directory (no {CONFIG})")
        cfg = upgrade_keys(_read_json(path), str(path))
        in_file_order(cfg, self.root)
        return cfg

    def arm_order(self) -> tuple[list[str], str]:
        """The directory's arms in the file's order and where that order comes from."""
        return arm_order(self.config(), self.root)

    def environment(self) -> dict[str, Any]:
        path = self.root / ENVIRONMENT
        return _read_json(path) if path.is_file() else {}

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.is_file():
            return []
        try:
            hist = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SharpenError(f"{path}: cannot be read ({exc})") from None
        return hist if isinstance(hist, list) else []

    # per-run files -------------------------------------------------------------------------
    def seed_dirs(self) -> Iterator[tuple[str, int, Path]]:
        """(arm, seed, folder) of every seed folder: arms in the file's order (folders of
        arms config.json lacks after them, sorted), seeds in sorted order."""
        base = self.root / "runs"
        if not base.is_dir():
            return
        try:
            order = list(self.config().get("arms") or {})
        except SharpenError:  # no readable config.json: the runs are still read
            order = []
        folders = {p.name: p for p in base.iterdir() if p.is_dir()}
        for arm in ordered_arms(sorted(folders), order):
            arm_dir = folders[arm]
            seeds = []
            for d in arm_dir.glob("seed-*"):
                try:
                    seeds.append((int(d.name[5:]), d))
                except ValueError:
                    continue
            for seed, d in sorted(seeds):
                yield arm_dir.name, seed, d

    def run(self, arm: str, seed: int) -> SeedRun | None:
        """The run's record from result.json; None while it has none (not finished)."""
        d = self.seed_dir(arm, seed)
        path = d / RESULT
        if not path.exists():
            return None
        try:
            res = _read_json(path)
            status = str(res["status"])
        except (SharpenError, KeyError) as exc:
            why = str(exc) if isinstance(exc, SharpenError) else f"{path}: has no status"
            return SeedRun(arm, seed, d, "corrupt", {}, why)
        rows: list[dict[str, str]] = []
        if status == "ok" and (d / METRICS).exists():
            bad, rows = self._metrics_problem(d / METRICS, res)
            if bad:
                return SeedRun(arm, seed, d, "corrupt", res, bad)
        return SeedRun(arm, seed, d, status, res, rows=rows)

    def runs(self) -> list[SeedRun]:
        """Every run with a result.json (corrupt ones included), sorted by arm and seed."""
        out = []
        for arm, seed, _ in self.seed_dirs():
            r = self.run(arm, seed)
            if r is not None:
                out.append(r)
        return out

    def metrics(self, arm: str, seed: int) -> list[dict[str, str]]:
        from sharpen.io import read_csv

        path = self.seed_dir(arm, seed) / METRICS
        return read_csv(path) if path.exists() else []

    def predictions(self, arm: str, seed: int) -> dict[str, Any] | None:
        """{"test_pred", "test_label", ("val_pred", "val_label")} as numpy arrays, or None
        for a run made before sharpen stored them (or one whose file is unreadable)."""
        import numpy as np

        path = self.seed_dir(arm, seed) / PREDICTIONS
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def _metrics_problem(path: Path, res: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
        """Why a finished run's metrics.csv cannot be trusted ('' when it can), and its rows."""
        import math

        from sharpen.io import read_csv

        try:
            rows = read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"{path}: cannot be read ({exc})", []
        want = res.get("epochs_done")
        if isinstance(want, int) and len(rows) != want:
            return f"{path}: {len(rows)} epoch rows where result.json says {want}", rows
        for i, row in enumerate(rows, 1):
            if None in row or any(v is None for v in row.values()):
                return f"{path}: row {i} is cut short", rows
            try:
                if int(float(row.get("epoch", i))) != i:
                    return f"{path}: row {i} is epoch {row.get('epoch')}", rows
                acc = float(row.get("test_acc") or "nan")
            except ValueError:
                return f"{path}: row {i} holds text where numbers belong", rows
            if math.isfinite(acc) and not 0 <= acc <= 1:
                return f"{path}: row {i} has test_acc {acc}, outside [0, 1]", rows
        return "", rows


__all__ = ["RunDir", "SeedRun", "fingerprint", "protocol_of", "PROTOCOL_KEYS", "FINISHED",
           "arm_order", "ordered_arms", "in_file_order",
           "CONFIG", "HISTORY", "ENVIRONMENT", "RESULT", "METRICS", "PREDICTIONS", "WEIGHTS"]
