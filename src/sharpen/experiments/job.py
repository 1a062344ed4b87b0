"""One job: a group of seeds of one arm trained as one stacked model (E = 1 for a plain
run), each seed written into its own run directory.

Every seed's ``metrics.csv`` is rewritten after each epoch and its ``result.json`` at the
end. The group's per-epoch checkpoint lives in its first seed's directory
(``checkpoint.pt``, naming the group's seeds); a killed job resumes from it with the same
numbers as an uninterrupted one.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sharpen.data.prepare import build_group_data
from sharpen.errors import SharpenError
from sharpen.experiments import weights
from sharpen.experiments.build import model_factory, resolve_device
from sharpen.experiments.progress import ProgressFile
from sharpen.metrics import epoch_columns, run_record
from sharpen.models import count_parameters
from sharpen.rundir import (
    checkpoint_path,
    progress_path,
    write_metrics,
    write_result,
    write_traceback,
)
from sharpen.rundir import write_predictions as write_prediction_arrays
from sharpen.techniques import Technique, techniques_for
from sharpen.training import Diverged, Hook, TrainSettings, build_models, determinism, train
from sharpen.training.checkpoint import Checkpoint, UnusableCheckpoint
from sharpen.training.phases import phase
from sharpen.training.stack import NotStackable
from sharpen.training.streams import Streams
from sharpen.training.tasks import PairTask

if TYPE_CHECKING:  # the name only: experiments.config's checks import the build module
    from sharpen.experiments.config import RunConfig


def append_metrics(run_dir: Path, rows: list[dict[str, Any]], columns: list[str],
                   row: dict[str, Any]) -> None:
    """Add an epoch's row (and any new columns) and rewrite metrics.csv atomically."""
    rows.append(row)
    columns.extend(c for c in row if c not in columns)
    write_metrics(run_dir, rows, columns)


def write_predictions(rdir: Path, preds: dict[str, torch.Tensor], data: Any) -> None:
    """The run's per-image record: predicted class and label of every image of each split
    evaluated (int16: a few kB per split), for image-level statistics in the reports."""
    arrays = {}
    for split, pred in preds.items():
        y = getattr(data, split).y
        y = y[:, 0] if y.dim() == 2 else y  # pair targets: (label, digit₁, digit₂)
        arrays[f"{split}_pred"] = pred.cpu().to(torch.int16).numpy()
        arrays[f"{split}_label"] = y.cpu().to(torch.int16).numpy()
    write_prediction_arrays(rdir, arrays)


def record(res: dict[str, Any], arm: str, cell: dict[str, Any] | None, rdir: Path) -> None:
    """Label a run's result with its arm (and grid cell) and write its result.json."""
    res["arm"] = arm
    if cell:
        res["base_arm"] = cell["arm"]
        res.update({f"grid_{k}": v for k, v in cell.items() if k != "arm"})
    write_result(rdir, res)


def run_group(cfg: RunConfig, arm: str, seeds: list[int], rdirs: list[Path],
              cell: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
              record_only: set[int] | None = None,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train ``seeds`` of one arm together; write each seed's files; return their results.

    An exception inside training is recorded as ``failed`` for every seed of the group
    (one bad job must not stop a grid); configuration and data errors propagate.
    ``record_only``: seeds whose result.json is written (the others finished earlier).
    """
    for r in rdirs:
        r.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    det = determinism.resolve(cfg.deterministic, device)
    ckpt_path = checkpoint_path(rdirs[0])
    resume = _resume(cfg, ckpt_path, arm, seeds, log)
    techs = techniques_for(cfg)
    factory = model_factory(cfg)
    group = _train_group(cfg, arm, seeds, rdirs, device, det, techs, factory, resume)
    with phase("files: results"):
        params = count_parameters(factory())
        for tech in techs:  # each technique's own files (gradient flow's gradflow.csv)
            if isinstance(tech, Technique):
                for k, r in enumerate(rdirs):
                    tech.write_run_files(k, r)
        results = []
        for k, seed in enumerate(seeds):
            res = _result(group, k, seeds, params, det, plan)
            if res["status"] == "ok":
                _save_outputs(cfg, arm, seed, rdirs[k], group, k)
            if record_only is None or seed in record_only:
                record(res, arm, cell, rdirs[k])
            results.append(res)
    ckpt_path.unlink(missing_ok=True)  # finished: the results are what count
    progress_path(rdirs[0]).unlink(missing_ok=True)
    return results


def _resume(cfg: RunConfig, ckpt_path: Path, arm: str, seeds: list[int],
            log: Callable[[str], None] | None) -> Checkpoint | None:
    """The checkpoint this group goes on from, or None: it trains from epoch 1 (said on
    stderr when a checkpoint is there but cannot resume; a newer sharpen's is an error)."""
    if not cfg.checkpoint or not ckpt_path.exists():
        return None
    try:
        ckpt = Checkpoint.load(ckpt_path)
    except UnusableCheckpoint as why:  # it only costs a restart
        print(f"sharpen: {ckpt_path} {why}; training seeds {seeds} of arm {arm!r} again from "
              "epoch 1", file=sys.stderr, flush=True)
        return None
    if ckpt.seeds != seeds:  # another plan's group: this one trains from epoch 1
        return None
    misfit = _misfit(ckpt, cfg.epochs, len(seeds))
    if misfit:  # resumed, it would finish a run of other epochs as this one, silently
        print(f"sharpen: {ckpt_path} {misfit}; training seeds {seeds} of arm {arm!r} again "
              "from epoch 1", file=sys.stderr, flush=True)
        return None
    if log:
        log(f"resuming after epoch {ckpt.epoch} from {ckpt_path}")
    return ckpt


def _misfit(ckpt: Checkpoint, epochs: int, n_seeds: int) -> str | None:
    """Why a checkpoint of this group does not fit its run (a hand-edited or foreign file),
    completing "<file> ..."; None when it fits."""
    if not isinstance(ckpt.epoch, int) or not 1 <= ckpt.epoch <= epochs:
        return f"holds epoch {ckpt.epoch!r}, outside this run's 1..{epochs}"
    if len(ckpt.rows) != n_seeds or any(len(r) > ckpt.epoch for r in ckpt.rows):
        return (f"holds epoch rows ({[len(r) for r in ckpt.rows]}) that do not fit "
                f"{n_seeds} seed(s) after epoch {ckpt.epoch}")
    return None


@dataclass
class _Clock:
    """A group's training seconds, the ones before a resume included."""

    earlier: float
    t0: float = field(default_factory=time.perf_counter)

    def restart(self) -> None:
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.t0


@dataclass
class _Group:
    """What training a group left for its seeds' records (per seed lists)."""

    rows: list[list[dict[str, Any]]]  # its epoch rows: the checkpoint's, then this run's
    diverged: list[str | None]
    best: weights.BestValWeights | None  # kept when save_weights = "best_val"
    failure: str | None = None  # why training failed (for every seed), else None
    predictions: list[dict[str, torch.Tensor]] = field(default_factory=list)
    datas: list[Any] = field(default_factory=list)  # empty when building them failed
    models: list[nn.Module] = field(default_factory=list)
    wall: float = 0.0  # seconds trained (the group's, a resumed run's earlier ones included)


def _train_group(cfg: RunConfig, arm: str, seeds: list[int], rdirs: list[Path],
                 device: torch.device, det: bool, techs: list[Hook],
                 factory: Callable[[], nn.Module], resume: Checkpoint | None) -> _Group:
    """Train the group, writing each seed's metrics.csv every epoch and the checkpoint."""
    E = len(seeds)
    group = _Group([list(resume.rows[k]) if resume else [] for k in range(E)], [None] * E,
                   weights.BestValWeights(E) if cfg.save_weights == "best_val" else None)
    columns = [epoch_columns() for _ in seeds]
    clock = _Clock(resume.wall if resume else 0.0)

    def on_epoch(k: int, row: dict[str, Any]) -> None:
        # the display (sharpen.experiments.progress) reports epochs from this file
        append_metrics(rdirs[k], group.rows[k], columns[k], row)

    def on_checkpoint(ckpt: Checkpoint) -> None:
        replace(ckpt, wall=clock.seconds()).save(checkpoint_path(rdirs[0]))

    try:
        with phase("setup: data"):
            group.datas = build_group_data(cfg, device, seeds)
        # seconds count training and evaluation only: loading the data costs a process's
        # first job alone (it is cached after), which would make s/run depend on the plan
        clock.restart()
        with phase("setup: models"):
            group.models = build_models(factory, seeds, Streams.of(cfg))
        task = None if cfg.pairs is None else \
            PairTask(group.models[0].pair_outputs, cfg.aux_weight, cfg.asym_weight)
        hooks = techs + ([group.best] if group.best else []) \
            + [ProgressFile(progress_path(rdirs[0]))]
        with determinism.deterministic(det):
            trained = train(group.models, group.datas, TrainSettings.from_config(cfg, task=task),
                            seeds, hooks=hooks, device=device, on_epoch=on_epoch,
                            on_checkpoint=on_checkpoint if cfg.checkpoint else None,
                            resume=resume)
        group.diverged, group.predictions = trained.diverged, trained.predictions
    except Diverged as exc:  # one seed: train raises
        group.diverged = [str(exc)]
    except NotStackable as exc:
        raise SharpenError(f"arm {arm!r}: stack_seeds: {exc}; set stack_seeds = 1") from None
    except SharpenError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad job must not stop the grid
        tb = traceback.format_exc()
        for r in rdirs:
            write_traceback(r, tb)
        group.failure = f"{type(exc).__name__}: {exc}"
    group.wall = clock.seconds()
    return group


def _result(group: _Group, k: int, seeds: list[int], params: int, det: bool,
            plan: dict[str, Any] | None) -> dict[str, Any]:
    """Seed k's result.json (before its arm and grid cell are added)."""
    E = len(seeds)
    status = "failed" if group.failure else ("diverged" if group.diverged[k] else "ok")
    res: dict[str, Any] = {"seed": seeds[k], "status": status,
                           "error": group.failure or group.diverged[k] or "",
                           "seconds": group.wall / E, "params": params,
                           "epochs_done": len(group.rows[k]), "stacked_seeds": E,
                           "deterministic": det}
    if plan is not None:
        res["plan"] = {**plan, "group": list(seeds)}
    res.update(run_record(group.rows[k]))  # the stored metrics (sharpen.metrics)
    return res


def _save_outputs(cfg: RunConfig, arm: str, seed: int, rdir: Path, group: _Group,
                  k: int) -> None:
    """A finished seed's weights (as save_weights asks) and per-image predictions."""
    datas = group.datas
    data_k = datas[k] if len(datas) > k else (datas[0] if datas else None)
    norm = {"mean": data_k.mean, "std": data_k.std} if data_k is not None else {}
    if cfg.save_weights == "final":
        weights.save(rdir, group.models[k].state_dict(), arm, seed, "final", len(group.rows[k]),
                     **norm)
    elif group.best is not None and group.best.weights[k] is not None:
        weights.save(rdir, group.best.weights[k], arm, seed, "best_val", group.best.epoch[k],
                     **norm)
    if k < len(group.predictions) and group.predictions[k]:
        write_predictions(rdir, group.predictions[k], data_k)
