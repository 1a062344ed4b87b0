"""One job: a group of seeds of one arm trained as one stacked model (E = 1 for a plain
run), each seed written into its own run directory.

Every seed's ``metrics.csv`` is rewritten after each epoch and its ``result.json`` at the
end. The group's per-epoch checkpoint lives in its first seed's directory
(``checkpoint.pt``, naming the group's seeds); a killed job resumes from it with the same
numbers as an uninterrupted one.
"""

from __future__ import annotations

import io
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sharpen.data.prepare import build_group_data
from sharpen.errors import SharpenError
from sharpen.experiments import weights
from sharpen.experiments.build import model_factory
from sharpen.experiments.progress import ProgressFile
from sharpen.io import atomic_write_bytes
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
from sharpen.training import Diverged, TrainSettings, build_models, determinism, train
from sharpen.training.loop import CHECKPOINT_FORMAT
from sharpen.training.stack import NotStackable


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def append_metrics(run_dir: Path, rows: list[dict[str, Any]], columns: list[str],
                   row: dict[str, Any]) -> None:
    """Add an epoch's row (and any new columns) and rewrite metrics.csv atomically."""
    rows.append(row)
    columns.extend(c for c in row if c not in columns)
    write_metrics(run_dir, rows, columns)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint only costs a restart
        return None


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


def run_group(cfg: Any, arm: str, seeds: list[int], rdirs: list[Path],
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
    E = len(seeds)
    rows: list[list[dict[str, Any]]] = [[] for _ in seeds]
    columns = [epoch_columns() for _ in seeds]
    ckpt_path = checkpoint_path(rdirs[0])
    resume = load_checkpoint(ckpt_path) if cfg.checkpoint else None
    if cfg.checkpoint and resume is None and ckpt_path.exists():
        print(f"sharpen: {ckpt_path} is unreadable; training seeds {seeds} of arm {arm!r} again "
              "from epoch 1", file=sys.stderr, flush=True)
    if resume is not None and resume.get("seeds") != seeds:
        resume = None
    if resume is not None and resume.get("format") != CHECKPOINT_FORMAT:
        print(f"sharpen: {ckpt_path} was written by an older sharpen (its optimizer state is "
              f"not per seed); training seeds {seeds} of arm {arm!r} again from epoch 1",
              file=sys.stderr, flush=True)
        resume = None
    earlier = 0.0
    if resume is not None:
        for k in range(E):
            rows[k].extend(resume["rows"][k])
        earlier = resume.get("wall", 0.0)
        if log:
            log(f"resuming after epoch {resume['epoch']} from {ckpt_path}")

    def on_epoch(k: int, row: dict[str, Any]) -> None:
        # the display (sharpen.experiments.progress) reports epochs from this file
        append_metrics(rdirs[k], rows[k], columns[k], row)

    t0 = time.perf_counter()

    def on_checkpoint(state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save({**state, "wall": earlier + time.perf_counter() - t0}, buf)
        atomic_write_bytes(ckpt_path, buf.getvalue())

    techs = techniques_for(cfg)
    factory = model_factory(cfg)
    best = weights.BestValWeights(E) if cfg.save_weights == "best_val" else None
    failure: str | None = None
    diverged: list[str | None] = [None] * E
    predictions: list[dict[str, torch.Tensor]] = []
    datas: list[Any] = []
    try:
        datas = build_group_data(cfg, device, seeds)
        # seconds count training and evaluation only: loading the data costs a process's
        # first job alone (it is cached after), which would make s/run depend on the plan
        t0 = time.perf_counter()
        models = build_models(factory, seeds)
        task = None
        if cfg.pairs is not None:
            from sharpen.training.tasks import PairTask

            task = PairTask(models[0].pair_outputs, cfg.aux_weight, cfg.asym_weight)
        settings = TrainSettings.from_config(cfg, task=task)
        with determinism.deterministic(det):
            trained = train(models, datas, settings, seeds,
                            hooks=techs + ([best] if best else [])
                            + [ProgressFile(progress_path(rdirs[0]))], device=device,
                            on_epoch=on_epoch,
                            on_checkpoint=on_checkpoint if cfg.checkpoint else None,
                            resume=resume)
        diverged, predictions = trained.diverged, trained.predictions
    except Diverged as exc:  # one seed: train raises
        diverged = [str(exc)]
    except NotStackable as exc:
        raise SharpenError(f"arm {arm!r}: stack_seeds: {exc}; set stack_seeds = 1") from None
    except SharpenError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad job must not stop the grid
        tb = traceback.format_exc()
        for r in rdirs:
            write_traceback(r, tb)
        failure = f"{type(exc).__name__}: {exc}"
    wall = earlier + time.perf_counter() - t0
    params = count_parameters(factory())
    for tech in techs:  # each technique's own files (gradient flow's gradflow.csv)
        if isinstance(tech, Technique):
            for k, r in enumerate(rdirs):
                tech.write_run_files(k, r)
    results = []
    for k, seed in enumerate(seeds):
        status = "failed" if failure else ("diverged" if diverged[k] else "ok")
        res: dict[str, Any] = {"seed": seed, "status": status,
                               "error": failure or diverged[k] or "",
                               "seconds": wall / E, "params": params,
                               "epochs_done": len(rows[k]), "stacked_seeds": E,
                               "deterministic": det}
        if plan is not None:
            res["plan"] = {**plan, "group": list(seeds)}
        res.update(run_record(rows[k]))  # the stored metrics (sharpen.metrics)
        data_k = datas[k] if len(datas) > k else (datas[0] if datas else None)
        norm = {"mean": data_k.mean, "std": data_k.std} if data_k is not None else {}
        if status == "ok" and cfg.save_weights == "final":
            weights.save(rdirs[k], models[k].state_dict(), arm, seed, "final", len(rows[k]),
                         **norm)
        elif status == "ok" and best is not None and best.weights[k] is not None:
            weights.save(rdirs[k], best.weights[k], arm, seed, "best_val", best.epoch[k], **norm)
        if status == "ok" and k < len(predictions) and predictions[k]:
            write_predictions(rdirs[k], predictions[k], data_k)
        if record_only is None or seed in record_only:
            record(res, arm, cell, rdirs[k])
        results.append(res)
    ckpt_path.unlink(missing_ok=True)  # finished: the results are what count
    progress_path(rdirs[0]).unlink(missing_ok=True)
    return results
