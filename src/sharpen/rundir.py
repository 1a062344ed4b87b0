"""A run directory: its layout, written and read back in one place.

Every file name of a run directory is a constant of this module, and nothing else under
``src/`` spells one (``tests/test_rundir_names.py`` holds the package to it); the writers
below write them (atomically: each file is its old version or its new one). The runner
writes a run directory and every report, claim, figure, tracker and ``sharpen compare``
reads it through :class:`RunDir`::

    config.json        resolved experiment (every arm's full RunConfig) and its plan
    experiment.toml    the source file as given (copied)
    environment.json   python/torch/sharpen versions, git commit, hardware (latest invocation)
    history.json       every invocation: start, end, wall seconds, commit, jobs run
    runs/<arm>/seed-<s>/metrics.csv      one row per epoch (rewritten atomically each epoch)
    runs/<arm>/seed-<s>/result.json      written once the run ends: marks it finished
    runs/<arm>/seed-<s>/predictions.npz  per split, the predicted class of every image
                                         (int16) and its label, at the last epoch
    runs/<arm>/seed-<s>/checkpoint.pt    a group's training state each epoch (in its first
                                         seed's folder), deleted once the group is written
    runs/<arm>/seed-<s>/weights.pt       the trained model, with save_weights
    runs/<arm>/seed-<s>/traceback.txt    a failed run's traceback
    runs/<arm>/seed-<s>/progress.txt     epochs done as a fraction, while one runs
    results.csv        one row per (arm, seed); no timings, so it depends on the plan only
    summary.json, table.csv, report.md, curves.png (grid.csv, budget.png, claim_map_<k>.png,
    schedule.png where they apply)
    sequential.json    with --until-decided: the design and every look
    variance.json      a variance study (sharpen variance): the arm studied, its sources
                       and those left out; variance.png its figure
    tensorboard/       with --track tensorboard
    .lock              held while a sharpen process works in the directory

A technique's own files (``run_files``, e.g. gradient flow's ``gradflow.csv``, and its
``data_figure``) are named by the technique: it owns them (CONTRIBUTING: a technique is its
own file), and they may take no name of this module's.

Keys renamed since a directory was written are read under their new names
(:mod:`sharpen.renamed`), by :meth:`RunDir.config`, the one reader of ``config.json``.

A run whose ``result.json``, ``metrics.csv`` or ``predictions.npz`` cannot be read (a disk
error, an interrupted copy) is a run to redo: :meth:`RunDir.runs` returns it with status
``corrupt`` and the file and reason in ``problem``; the runner trains it again.

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
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sharpen.errors import SharpenError
from sharpen.renamed import upgrade_keys

if TYPE_CHECKING:
    from sharpen.io import DirLock

# the whole directory's files (a name with {} takes a number or a suffix)
CONFIG, HISTORY, ENVIRONMENT = "config.json", "history.json", "environment.json"
EXPERIMENT_COPY = "experiment{}"  # the experiment file as given, under its own suffix
EXPERIMENT_SUFFIXES = (".toml", ".yaml", ".yml")
RESULTS, SUMMARY, TABLE, GRID = "results.csv", "summary.json", "table.csv", "grid.csv"
REPORT, CURVES, BUDGET, SCHEDULE = "report.md", "curves.png", "budget.png", "schedule.png"
CLAIM_MAP = "claim_map_{}.png"  # one per grid claim map, numbered from 1
SEQUENTIAL, LOCK = "sequential.json", ".lock"
VARIANCE, VARIANCE_FIGURE = "variance.json", "variance.png"  # a variance study
RUNS, SEED_FOLDER, TENSORBOARD = "runs", "seed-{}", "tensorboard"  # folders
# each run's files, in runs/<arm>/seed-<s>/
RESULT, METRICS, PREDICTIONS, WEIGHTS = "result.json", "metrics.csv", "predictions.npz", "weights.pt"
CHECKPOINT, TRACEBACK, PROGRESS = "checkpoint.pt", "traceback.txt", "progress.txt"
# every file name above (folders aside: "runs" is also a key and "tensorboard" a tracker)
FILE_NAMES = (CONFIG, HISTORY, ENVIRONMENT, EXPERIMENT_COPY, RESULTS, SUMMARY, TABLE, GRID,
              REPORT, CURVES, BUDGET, SCHEDULE, CLAIM_MAP, SEQUENTIAL, VARIANCE, VARIANCE_FIGURE,
              LOCK, SEED_FOLDER,
              RESULT, METRICS, PREDICTIONS, WEIGHTS, CHECKPOINT, TRACEBACK, PROGRESS)
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
    """The protocol keys of one arm's resolved RunConfig (absent keys as None), and
    ``split = "per seed"`` when its ``vary`` gives each seed its own split, and
    ``pairs_pinned = pin_seed`` when it gives every seed the same digit pairs (both absent
    otherwise: an arm at the default keeps the fingerprint it always had). Seed s of an arm
    with pinned pairs tests on other pairs than seed s of one whose pairs follow the seed:
    pairing them image by image would compare predictions on different images."""
    out = {k: arm_cfg.get(k) for k in PROTOCOL_KEYS}
    vary = arm_cfg.get("vary")  # training.streams.Streams (a floor up: spelt out here)

    def follows(stream: str) -> bool:
        return vary == "all" or isinstance(vary, list) and stream in vary or (
            vary is None and stream != "split")

    if follows("split") and (arm_cfg.get("val_size") or arm_cfg.get("train_size") is not None):
        out["split"] = "per seed"
    if arm_cfg.get("pairs") is not None and not follows("pairs"):
        out["pairs_pinned"] = int(arm_cfg.get("pin_seed") or 0)
    return out


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
                 [root / EXPERIMENT_COPY.format(x) for x in EXPERIMENT_SUFFIXES]):
        if not path.is_file():
            continue
        try:
            raw = _io().read_file(path)
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


def _io() -> ModuleType:
    """:mod:`sharpen.io`, imported when a file is written or read: it loads yaml, and the
    CLI imports this module at start-up for the names above."""
    from sharpen import io  # lazy: start-up: yaml; the CLI imports rundir

    return io


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SharpenError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(obj, dict):
        raise SharpenError(f"{path}: not a JSON object")
    return obj


def _read_history(path: Path) -> list[dict[str, Any]]:
    """history.json's entries; a cut or foreign file is one line naming it (it is the
    directory's record of every invocation: never overwritten silently)."""
    try:
        hist = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        hist = exc
    if not (isinstance(hist, list) and all(isinstance(h, dict) for h in hist)):
        why = f"cannot be read ({hist})" if isinstance(hist, Exception) else \
            "is not a list of invocations"
        raise SharpenError(f"{path}: {why}; restore it from a copy, or move it aside to "
                           "start a new record (the runs are kept)")
    return hist


def _read_npz(path: Path) -> tuple[dict[str, Any] | None, str]:
    """Every array of an .npz, or None and why it cannot be read (a cut file is no zip)."""
    import zipfile

    import numpy as np  # lazy: start-up: numpy; the CLI imports rundir

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, ""
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return None, f"{path}: cannot be read ({exc})"


def _npz_problem(path: Path) -> str:
    """Why an .npz cannot be opened ('' when it can): a cut file has lost the zip's
    directory, which is at its end. Only the directory is read (1070 files of docs/results:
    0.16 s, against 1.95 s for every array); :meth:`RunDir.predictions` reads the arrays and
    returns None for one damaged inside."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            z.namelist()
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        return f"{path}: cannot be read ({exc})"
    return ""


class RunDir:
    """Paths, writers and readers of one run directory (the module docstring has the layout;
    each run's folder has its writers below the class)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -----------------------------------------------------------------------------
    def seed_dir(self, arm: str, seed: int) -> Path:
        return self.root / RUNS / arm / SEED_FOLDER.format(seed)

    def run_files(self, name: str) -> list[Path]:
        """``name`` (a per-run file: RESULT, CHECKPOINT, WEIGHTS ...) in every seed folder that
        holds it, sorted; a glob, so it reads no config.json (a half-made directory too)."""
        return sorted(self.root.glob(f"{RUNS}/*/{SEED_FOLDER.format('*')}/{name}"))

    def lock(self) -> DirLock:
        """The directory's lock (a context manager): one sharpen process works in it at once."""
        return _io().DirLock(self.root / LOCK)

    # whole-directory files: writers ---------------------------------------------------
    def write_config(self, cfg: dict[str, Any]) -> None:
        """The resolved experiment and its plan (sorted keys)."""
        _io().atomic_write_json(self.root / CONFIG, cfg)

    def copy_experiment(self, source: str | Path) -> None:
        """The experiment file as given, kept once (the first invocation's copy stays)."""
        dst = self.root / EXPERIMENT_COPY.format(Path(source).suffix)
        if not dst.exists():
            shutil.copyfile(source, dst)

    def write_environment(self, env: dict[str, Any]) -> None:
        _io().atomic_write_json(self.root / ENVIRONMENT, env)

    def log_invocation(self, entry: dict[str, Any]) -> None:
        """Append (or, with the same ``id``, update in place) an invocation in history.json."""
        path = self.root / HISTORY
        hist = _read_history(path) if path.exists() else []
        ids = [h.get("id") for h in hist]
        if entry["id"] in ids:
            hist[ids.index(entry["id"])] = entry
        else:
            hist.append(entry)
        _io().atomic_write_json(path, hist)

    def write_results(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        _io().atomic_write_csv(self.root / RESULTS, rows, columns)

    def write_summary(self, summary: dict[str, Any]) -> None:
        _io().atomic_write_json(self.root / SUMMARY, summary)

    def write_table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        _io().atomic_write_csv(self.root / TABLE, rows, columns)

    def write_grid(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        _io().atomic_write_csv(self.root / GRID, rows, columns)

    def write_report(self, text: str) -> Path:
        """report.md; returns its path."""
        _io().atomic_write_text(self.root / REPORT, text)
        return self.root / REPORT

    def write_sequential(self, record: dict[str, Any]) -> None:
        """A sequential design and its looks (written before and after each look)."""
        _io().atomic_write_json(self.root / SEQUENTIAL, record)

    def write_variance(self, record: dict[str, Any]) -> None:
        """A variance study's record: the arm studied, its sources, those left out."""
        _io().atomic_write_json(self.root / VARIANCE, record)

    def variance(self) -> dict[str, Any] | None:
        """The variance study's record; None in a directory that is not a study."""
        path = self.root / VARIANCE
        return _read_json(path) if path.is_file() else None

    # whole-directory files: readers ----------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The resolved experiment, renamed keys read under their new names, its arms (and
        a grid's cells) in the experiment file's order (:func:`arm_order`)."""
        path = self.root / CONFIG
        if not path.is_file():
            raise SharpenError(f"{self.root} is not a run directory (no {CONFIG})")
        cfg = upgrade_keys(_read_json(path), str(path))
        in_file_order(cfg, self.root)
        return cfg

    def results(self) -> list[dict[str, str]]:
        """results.csv's rows ([] when it has none)."""
        path = self.root / RESULTS
        return _io().read_csv(path) if path.exists() else []

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
        base = self.root / RUNS
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
            prefix = SEED_FOLDER.format("")
            for d in arm_dir.glob(SEED_FOLDER.format("*")):
                try:
                    seeds.append((int(d.name[len(prefix):]), d))
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
        if status in FINISHED and (d / PREDICTIONS).exists():
            bad = _npz_problem(d / PREDICTIONS)  # the image-level sections read it
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
        path = self.seed_dir(arm, seed) / METRICS
        return _io().read_csv(path) if path.exists() else []

    def predictions(self, arm: str, seed: int) -> dict[str, Any] | None:
        """{"test_pred", "test_label", ("val_pred", "val_label")} as numpy arrays, or None
        for a run made before sharpen stored them (or one whose file is unreadable)."""
        path = self.seed_dir(arm, seed) / PREDICTIONS
        return _read_npz(path)[0] if path.is_file() else None

    @staticmethod
    def _metrics_problem(path: Path, res: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
        """Why a finished run's metrics.csv cannot be trusted ('' when it can), and its rows."""
        try:
            rows = _io().read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"{path}: cannot be read ({exc})", []
        want = res.get("epochs_done")
        if isinstance(want, int) and len(rows) != want:
            return f"{path}: {len(rows)} epoch rows where {RESULT} says {want}", rows
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


# each run's folder, runs/<arm>/seed-<s>/: its writers (the job, a backend's worker and a
# twin's copy hold the folder's path) -----------------------------------------------------
def write_metrics(folder: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The run's epoch rows so far (rewritten after each epoch)."""
    _io().atomic_write_csv(Path(folder) / METRICS, rows, columns)


def write_result(folder: Path, res: dict[str, Any]) -> None:
    """The run's record, written last: its presence marks the run finished."""
    _io().atomic_write_json(Path(folder) / RESULT, res)


def write_predictions(folder: Path, arrays: dict[str, Any]) -> None:
    """Each split's predicted classes and labels (numpy arrays)."""
    _io().atomic_write_npz(Path(folder) / PREDICTIONS, arrays)


def write_traceback(folder: Path, text: str) -> None:
    """A failed run's traceback, for the person reading its ``error``."""
    _io().atomic_write_text(Path(folder) / TRACEBACK, text)


def checkpoint_path(folder: Path) -> Path:
    """Where a group's training state lives (its first seed's folder)."""
    return Path(folder) / CHECKPOINT


def progress_path(folder: Path) -> Path:
    """Where a job's fractional epochs done are (its first seed's folder)."""
    return Path(folder) / PROGRESS


__all__ = ["RunDir", "SeedRun", "fingerprint", "protocol_of", "PROTOCOL_KEYS", "FINISHED",
           "arm_order", "ordered_arms", "in_file_order", "FILE_NAMES",
           "CONFIG", "HISTORY", "ENVIRONMENT", "EXPERIMENT_COPY", "EXPERIMENT_SUFFIXES",
           "RESULTS", "SUMMARY", "TABLE", "GRID", "REPORT", "CURVES", "BUDGET", "SCHEDULE",
           "CLAIM_MAP", "SEQUENTIAL", "VARIANCE", "VARIANCE_FIGURE", "LOCK", "RUNS", "SEED_FOLDER",
           "TENSORBOARD",
           "RESULT", "METRICS", "PREDICTIONS", "WEIGHTS", "CHECKPOINT", "TRACEBACK", "PROGRESS",
           "write_metrics", "write_result", "write_predictions", "write_traceback",
           "checkpoint_path", "progress_path"]
