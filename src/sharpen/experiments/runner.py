"""Run arms × seeds into a self-describing run directory; resume what is missing.

Layout of a run directory::

    config.json        resolved experiment (every arm's full RunConfig)
    experiment.toml    the source file as given (copied)
    environment.json   python/torch/sharpen versions, git commit, hardware
    runs/<arm>/seed-<s>/metrics.csv   one row per epoch (rewritten atomically each epoch)
    runs/<arm>/seed-<s>/result.json   written once the run ends: marks it finished
    results.csv        one row per (arm, seed)
    summary.json, table.csv, report.md, curves.png
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import sharpen
from sharpen import SharpenError
from sharpen.curricula import hooks_from_config
from sharpen.data import get_spec, load, split_indices
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.io import (
    DirLock,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    check_writable,
)
from sharpen.models import count_parameters, create_model
from sharpen.training import Diverged, Split, TrainData, TrainSettings, train

RESULT_COLUMNS = ["arm", "seed", "status", "test_acc", "best_test_acc", "best_epoch", "train_acc",
                  "val_acc", "gap", "train_loss", "test_loss", "digit_acc", "epochs_done", "seconds",
                  "images_per_s", "params", "stacked_seeds", "error"]
METRIC_BASE = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
               "gap", "lr", "seconds", "images_per_s"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "sharpen": sharpen.__version__, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        root = Path(__file__).resolve().parents[3]
        env["git_commit"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


_DATA_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _load_cached(cfg: RunConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    key = (cfg.dataset, split, cfg.data_dir, cfg.verify)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load(cfg.dataset, split, root=cfg.data_dir, verify=cfg.verify)
    return _DATA_CACHE[key]


def build_data(cfg: RunConfig, device: torch.device, seed: int = 0) -> TrainData:
    """Load, subset and split the dataset for ``cfg``; tensors move to ``device`` once.

    With ``pairs`` the splits are digit pairs drawn with the run ``seed``."""
    spec = get_spec(cfg.dataset)
    x, y = _load_cached(cfg, "train")
    tx, ty = _load_cached(cfg, "test")
    mean, std = spec.mean, spec.std
    if cfg.pairs is not None:
        from sharpen.data.pairs import make_pairs, pair_targets

        g = torch.Generator().manual_seed(seed)  # new pairs for every run seed
        x, t, c = make_pairs(x, y, cfg.pairs + cfg.val_size, g)
        y = pair_targets(t, c)
        tx, t, c = make_pairs(tx, ty, cfg.pairs_test or cfg.pairs, g)
        ty = pair_targets(t, c)
        if cfg.pair_normalize == "train":
            mean, std = ((x.mean() / 255).item(),), ((x.std() / 255).item(),)
    g = torch.Generator().manual_seed(cfg.split_seed)
    if cfg.train_size is not None and cfg.pairs is None:
        if cfg.train_size + cfg.val_size > len(y):
            raise SharpenError(f"train_size {cfg.train_size} + val_size {cfg.val_size} exceeds "
                               f"the {len(y)} training images of {cfg.dataset}")
        keep = torch.randperm(len(y), generator=g)[: cfg.train_size + cfg.val_size].sort().values
        x, y = x[keep], y[keep]
    val = None
    if cfg.val_size:
        tr, va = split_indices(len(y), cfg.val_size, cfg.split_seed)
        val = Split(x[va].to(device), y[va].to(device))
        x, y = x[tr], y[tr]
    if cfg.test_size is not None:
        tx, ty = tx[: cfg.test_size], ty[: cfg.test_size]
    if cfg.data_resize is not None:
        x, tx = _resize_u8(x, cfg.data_resize), _resize_u8(tx, cfg.data_resize)
        if val is not None:
            val = Split(_resize_u8(val.x, cfg.data_resize), val.y)
    return TrainData(Split(x.to(device), y.to(device)), Split(tx.to(device), ty.to(device)), val,
                     mean, std)


def _resize_u8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    from sharpen.curricula import resize

    parts = [resize(x[i:i + chunk].float(), size).round().clamp(0, 255).to(torch.uint8)
             for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else x


def hooks_for(cfg: RunConfig) -> list:
    """Every hook a RunConfig asks for: curricula, then regularisers, then diagnostics."""
    from sharpen.training.diagnostics import GradientFlow
    from sharpen.training.regularizers import RandomErasing

    hooks = hooks_from_config(cfg)
    if cfg.random_erasing:
        hooks.append(RandomErasing(cfg.erase_p, cfg.erase_area, cfg.erase_aspect))
    if cfg.grad_flow_epochs is not None:
        hooks.append(GradientFlow(cfg.grad_flow_epochs))
    return hooks


def settings_of(cfg: RunConfig) -> TrainSettings:
    return TrainSettings(
        epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=cfg.optimizer, lr=cfg.lr,
        momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
        lr_adaptive_threshold=cfg.lr_adaptive_threshold if cfg.lr_adaptive else None,
        lr_adaptive_factor=cfg.lr_adaptive_factor, loss=cfg.loss,
        eval_batch_size=cfg.eval_batch_size, channels_last=cfg.channels_last, amp=cfg.amp,
        compile=cfg.compile, fused_optimizer=cfg.fused_optimizer)


def run_one(cfg: RunConfig, seed: int, run_dir: Path,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One seeded training run; writes metrics.csv per epoch, returns its result row."""
    device = resolve_device(cfg.device)
    data = build_data(cfg, device, seed)
    spec = get_spec(cfg.dataset)
    torch.manual_seed(seed)  # initialisation and dropout
    kw = {"num_classes": spec.num_classes, "in_channels": spec.shape[0], **cfg.model_args}
    model = create_model(cfg.model, **kw)
    settings = settings_of(cfg)
    if cfg.pairs is not None:
        from sharpen.training.tasks import PairTask

        settings.task = PairTask(model.pair_outputs, cfg.aux_weight, cfg.asym_weight)
    rows: list[dict[str, Any]] = []
    columns = list(METRIC_BASE)
    ckpt_path = run_dir / "checkpoint.pt"
    resume = _load_checkpoint(ckpt_path) if cfg.checkpoint else None
    earlier = 0.0
    if resume is not None:
        rows.extend(resume["rows"])
        earlier = resume.get("wall", 0.0)
        if log:
            log(f"resuming after epoch {resume['epoch']} from {ckpt_path}")

    def on_epoch(row: dict[str, Any]) -> None:
        _append_metrics(run_dir, rows, columns, row)
        if log:
            log(f"epoch {row['epoch']}/{cfg.epochs} loss {row['train_loss']:.4f} "
                f"test_acc {row['test_acc']:.4f}")

    t0 = time.perf_counter()
    status, error = "ok", ""
    hooks = hooks_for(cfg)

    def on_checkpoint(state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save({**state, "wall": earlier + time.perf_counter() - t0}, buf)
        atomic_write_bytes(ckpt_path, buf.getvalue())

    try:
        train(model, data, settings, seed, hooks=hooks, device=device, on_epoch=on_epoch,
              on_checkpoint=on_checkpoint if cfg.checkpoint else None, resume=resume)
    except Diverged as exc:
        status, error = "diverged", str(exc)
    for h in hooks:
        if getattr(h, "records", None):
            atomic_write_csv(run_dir / "gradflow.csv", h.records,
                             ["epoch", "layer", "name", "mean_abs_grad", "update_ratio"])
    result: dict[str, Any] = {"seed": seed, "status": status, "error": error,
                              "seconds": earlier + time.perf_counter() - t0,
                              "params": count_parameters(model), "epochs_done": len(rows)}
    result.update(_summary(rows))
    return result


def _append_metrics(run_dir: Path, rows: list[dict[str, Any]], columns: list[str],
                    row: dict[str, Any]) -> None:
    """Add an epoch's row (and any new columns) and rewrite metrics.csv atomically."""
    rows.append(row)
    columns.extend(c for c in row if c not in columns)
    atomic_write_csv(run_dir / "metrics.csv", rows, columns)


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    last = rows[-1]
    best = max(rows, key=lambda r: r["test_acc"])
    return dict(
        test_acc=last["test_acc"], best_test_acc=best["test_acc"], best_epoch=best["epoch"],
        train_acc=last["train_acc"], val_acc=last.get("val_acc"), gap=last["gap"],
        train_loss=last["train_loss"], test_loss=last["test_loss"],
        digit_acc=last.get("test_digit_acc"),
        images_per_s=sum(r["images_per_s"] for r in rows) / len(rows))


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint only costs a restart
        return None


def default_out_dir(exp: Experiment) -> Path:
    return Path("runs") / exp.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_experiment(exp: Experiment, out: Path | None = None, quiet: bool = False,
                   workers: int = 1, threads: int | None = None, backend: str = "local",
                   address: str | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Run every (arm, seed) not yet finished in ``out``; write results and the report.

    ``workers`` > 1 runs jobs in that many processes, each with ``threads`` torch threads
    (default: cores // workers, so the machine is not oversubscribed). Results depend on
    the threads per job only: the same ``threads`` gives bit-identical numbers serially
    and in parallel. ``backend = "ray"`` sends each job to a Ray cluster
    (``address``, else $RAY_ADDRESS, else a local one); its workers must see ``out``.
    """
    if backend not in ("local", "ray"):
        raise SharpenError(f"backend must be 'local' or 'ray', got {backend!r}")
    from sharpen.reports import write_report

    out = Path(out) if out is not None else default_out_dir(exp)
    check_writable(out)
    with DirLock(out):
        for stale in out.rglob(".*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
        resolved = exp.resolved()
        cfg_path = out / "config.json"
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if _comparable(old) != _comparable(resolved):
                raise SharpenError(
                    f"{out} holds runs of a different configuration; use another --out "
                    "(or delete that directory) to start afresh")
        atomic_write_json(cfg_path, resolved)
        if exp.source and Path(exp.source).is_file():
            dst = out / ("experiment" + Path(exp.source).suffix)
            if not dst.exists():
                shutil.copyfile(exp.source, dst)
        atomic_write_json(out / "environment.json", environment())
        jobs = [(arm, seed) for arm in exp.arms for seed in exp.seeds]
        by_job: dict[tuple[str, int], dict[str, Any]] = {}
        todo = []
        for k, (arm, seed) in enumerate(jobs, 1):
            done = out / "runs" / arm / f"seed-{seed}" / "result.json"
            prev = json.loads(done.read_text()) if done.exists() else None
            if prev is not None and prev.get("status") in ("ok", "diverged"):
                by_job[(arm, seed)] = prev
                if not quiet:
                    print(f"[{k}/{len(jobs)}] {arm} seed {seed}: finished earlier, skipped")
            else:
                todo.append((k, arm, seed))

        def report(k: int, arm: str, seed: int, res: dict[str, Any]) -> None:
            by_job[(arm, seed)] = res
            if not quiet:
                acc = res.get("test_acc")
                print(f"[{k}/{len(jobs)}] {arm} seed {seed}: {res['status']}"
                      + (f" test_acc {acc:.4f}" if acc is not None else "")
                      + f" ({res['seconds']:.1f}s)", flush=True)

        groups = _group(exp, todo)
        workers = max(1, min(workers, len(groups)))
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        if backend == "ray" and groups:
            curriculum_figures(exp, out)
            _run_ray(exp, out, groups, threads if threads else 1, report, quiet, address)
        elif workers == 1:
            curriculum_figures(exp, out)
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for group in groups:
                    arm, seeds = group[0][1], [seed for _, _, seed in group]
                    if not quiet:
                        print(f"[{', '.join(str(k) for k, _, _ in group)}/{len(jobs)}] {arm} "
                              f"seed{'s' if len(seeds) > 1 else ''} "
                              f"{', '.join(map(str, seeds))} ...", flush=True)
                    results = _execute_group(exp.arms[arm], arm, seeds,
                                             [_run_dir(out, arm, s) for s in seeds],
                                             exp.cells.get(arm), quiet)
                    for (k, _, seed), res in zip(group, results):
                        report(k, arm, seed, res)
            finally:
                torch.set_num_threads(before)
        else:
            _run_parallel(exp, out, groups, workers, threads, report, quiet)
        results = [by_job[j] for j in jobs]
        axes = [f"grid_{k}" for k in exp.grid]
        atomic_write_csv(out / "results.csv", results,
                         RESULT_COLUMNS + (["base_arm", *axes] if axes else []))
        write_report(out)
    return out, results


def _worker_init(threads: int) -> None:
    """Runs in each worker process: die with the driver, use ``threads`` torch threads."""
    try:  # Linux: a SIGKILLed driver must not leave workers writing into its run directory
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    torch.set_num_threads(threads)


def _run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / arm / f"seed-{seed}"


def _group(exp: Experiment, todo: list[tuple[int, str, int]]) -> list[list[tuple[int, str, int]]]:
    """Jobs: one per (arm, seed), or chunks of ``stack_seeds`` seeds of one arm."""
    groups: list[list[tuple[int, str, int]]] = []
    open_: dict[str, list[tuple[int, str, int]]] = {}
    for job in todo:
        arm = job[1]
        size = exp.arms[arm].stack_seeds
        if size == 1:
            groups.append([job])
            continue
        if arm not in open_ or len(open_[arm]) == size:
            open_[arm] = []
            groups.append(open_[arm])
        open_[arm].append(job)
    return groups


def _execute_group(cfg: RunConfig, arm: str, seeds: list[int], rdirs: list[Path],
                   cell: dict[str, Any] | None, quiet: bool = True) -> list[dict[str, Any]]:
    if cfg.stack_seeds == 1:
        return [execute(cfg, arm, seeds[0], rdirs[0], quiet, cell)]
    return execute_stacked(cfg, arm, seeds, rdirs, cell)


def _job(cfg: dict[str, Any], arm: str, seeds: list[int], rdirs: list[str],
         cell: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A group of jobs in a worker process or Ray task (plain, picklable arguments)."""
    return _execute_group(RunConfig.model_validate(cfg), arm, seeds, [Path(r) for r in rdirs],
                          cell)


def _run_parallel(exp: Experiment, out: Path, groups: list[list[tuple[int, str, int]]],
                  workers: int, threads: int, report: Callable, quiet: bool) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    if not quiet:
        print(f"running {len(groups)} jobs in {workers} processes × {threads} threads", flush=True)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futures = {}
        for group in groups:
            arm, seeds = group[0][1], [seed for _, _, seed in group]
            f = pool.submit(_job, exp.arms[arm].model_dump(mode="json"), arm, seeds,
                            [str(_run_dir(out, arm, s)) for s in seeds], exp.cells.get(arm))
            futures[f] = group
        curriculum_figures(exp, out)  # drawn while the workers train (about a second)
        for f in as_completed(futures):
            for (k, arm, seed), res in zip(futures[f], f.result()):
                report(k, arm, seed, res)


def _ray_job(cfg: dict[str, Any], arm: str, seeds: list[int], rdirs: list[str],
             cell: dict[str, Any] | None, threads: int) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    return _job(cfg, arm, seeds, rdirs, cell)


def _run_ray(exp: Experiment, out: Path, groups: list[list[tuple[int, str, int]]], threads: int,
             report: Callable, quiet: bool, address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise SharpenError("--backend ray needs Ray: pip install 'sharpen[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None,
                 include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    remote = ray.remote(num_cpus=threads, max_retries=0)(_ray_job)
    refs = {}
    for group in groups:
        arm, seeds = group[0][1], [seed for _, _, seed in group]
        refs[remote.remote(exp.arms[arm].model_dump(mode="json"), arm, seeds,
                           [str(_run_dir(out, arm, s).resolve()) for s in seeds],
                           exp.cells.get(arm), threads)] = group
    if not quiet:
        print(f"running {len(groups)} jobs as Ray tasks ({threads} threads each)", flush=True)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        group = refs[done[0]]
        try:
            results = ray.get(done[0])
        except ray.exceptions.RayError as exc:  # a lost worker: record, let the rest go on
            results = []
            for _, arm, seed in group:
                res = {"seed": seed, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "seconds": 0.0, "epochs_done": 0, "arm": arm}
                atomic_write_json(_run_dir(out, arm, seed) / "result.json", res)
                results.append(res)
        for (k, arm, seed), res in zip(group, results):
            report(k, arm, seed, res)


def execute(cfg: RunConfig, arm: str, seed: int, rdir: Path, quiet: bool = True,
            cell: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one job, turning an exception into a recorded ``failed`` result."""
    rdir.mkdir(parents=True, exist_ok=True)
    try:
        res = run_one(cfg, seed, rdir, None if quiet else (lambda m: print("    " + m, flush=True)))
    except SharpenError:
        raise  # configuration/data problems stop the whole experiment with a clear message
    except Exception as exc:  # noqa: BLE001 - one bad run must not stop the grid
        atomic_write_text(rdir / "traceback.txt", traceback.format_exc())
        res = {"seed": seed, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
               "seconds": 0.0, "epochs_done": 0}
    _record(res, arm, cell, rdir)
    (rdir / "checkpoint.pt").unlink(missing_ok=True)  # finished: the result is what counts
    return res


def _record(res: dict[str, Any], arm: str, cell: dict[str, Any] | None, rdir: Path) -> None:
    """Label a run's result with its arm (and grid cell) and write its result.json."""
    res["arm"] = arm
    if cell:
        res["base_arm"] = cell["arm"]
        res.update({f"grid_{k}": v for k, v in cell.items() if k != "arm"})
    atomic_write_json(rdir / "result.json", res)


def execute_stacked(cfg: RunConfig, arm: str, seeds: list[int], rdirs: list[Path],
                    cell: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``seeds`` of one arm as one stacked model; each seed gets its own run directory.

    Every seed's metrics.csv is written after each epoch and its result.json at the end, as
    separate runs write them. There is no per-epoch checkpoint: a killed stacked job runs
    again from the start (its seeds have no result.json yet).
    """
    from sharpen.training.batched import NotBatchable, train_seeds

    for r in rdirs:
        r.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    spec = get_spec(cfg.dataset)
    kw = {"num_classes": spec.num_classes, "in_channels": spec.shape[0], **cfg.model_args}
    rows: list[list[dict[str, Any]]] = [[] for _ in seeds]
    columns = [list(METRIC_BASE) for _ in seeds]

    def on_epoch(k: int, row: dict[str, Any]) -> None:
        _append_metrics(rdirs[k], rows[k], columns[k], row)

    t0 = time.perf_counter()
    try:
        data = build_data(cfg, device, seeds[0])
        _, diverged = train_seeds(lambda: create_model(cfg.model, **kw), data, settings_of(cfg),
                                  seeds, hooks_for(cfg), device, on_epoch=on_epoch)
        failure = None
    except NotBatchable as exc:
        raise SharpenError(f"arm {arm!r}: stack_seeds = {cfg.stack_seeds}: {exc}; "
                           "set stack_seeds = 1") from None
    except SharpenError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad job must not stop the grid
        tb = traceback.format_exc()
        for r in rdirs:
            atomic_write_text(r / "traceback.txt", tb)
        failure, diverged = f"{type(exc).__name__}: {exc}", [None] * len(seeds)
    wall = time.perf_counter() - t0
    params = count_parameters(create_model(cfg.model, **kw))
    results = []
    for k, seed in enumerate(seeds):
        status = "failed" if failure else ("diverged" if diverged[k] else "ok")
        res: dict[str, Any] = {"seed": seed, "status": status,
                               "error": failure or diverged[k] or "",
                               "seconds": wall / len(seeds), "params": params,
                               "epochs_done": len(rows[k]), "stacked_seeds": len(seeds)}
        res.update(_summary(rows[k]))
        _record(res, arm, cell, rdirs[k])
        results.append(res)
    return results


def _comparable(resolved: dict[str, Any]) -> dict[str, Any]:
    # runs count and seed list may grow between invocations; the arms must not change
    return {k: v for k, v in resolved.items() if k in ("arms",)}


def curriculum_figures(exp: Experiment, out: Path) -> list[Path]:
    """The blurred-copies strip, the σ strip and the schedule plot, for curriculum arms."""
    from sharpen.curricula.plan import schedule_rows
    from sharpen.reports.figures import blur_strip, schedule_plot, sigma_strip

    plans = {arm: schedule_rows(c) for arm, c in exp.arms.items()}
    cur = [c for c in exp.arms.values()
           if c.blur_n is not None or c.blur_sigma is not None or c.image_size is not None]
    if not cur:
        return []
    made = [schedule_plot(plans, out / "schedule.png")]
    c0 = cur[0]
    if get_spec(c0.dataset).format == "synthetic-waves" or len(get_spec(c0.dataset).shape) != 3:
        return made
    x, y = _load_cached(c0, "train")
    pick = [int((y == k).nonzero()[0]) for k in range(min(4, int(y.max()) + 1)) if (y == k).any()]
    imgs = x[pick]
    ns = sorted({r["blur_n"] for rows in plans.values() for r in rows if "blur_n" in r} - {1},
                reverse=True)
    if ns:
        made.append(blur_strip(imgs, [1, *sorted(ns)], out / "blur_strip.png", c0.padding))
    sig = {r["sigma"] for rows in plans.values() for r in rows if "sigma" in r}
    if sig:
        sig = sorted(sig | {0.0}, reverse=True)  # the unblurred image as the last column
        made.append(sigma_strip(imgs, sig, out / "sigma_strip.png", c0.padding))
    return made
