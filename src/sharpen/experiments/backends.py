"""Where groups run: in this process, in worker processes, or as Ray tasks.

A backend only places jobs. Each job sets the torch thread count the plan gives it, so a
group's numbers are the same wherever it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sharpen import SharpenError
from sharpen.experiments.config import RunConfig
from sharpen.experiments.job import run_group
from sharpen.experiments.plan import Group
from sharpen.io import atomic_write_json

# a job: (group, its config as plain JSON, run dirs, grid cell, plan entry, seeds to record)
Job = tuple[Group, dict[str, Any], list[str], dict[str, Any] | None, dict[str, Any], list[int]]
Report = Callable[[Group, list[dict[str, Any]]], None]


def run_job(job: Job, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run one job here with the plan's thread count (restored afterwards)."""
    group, cfg, rdirs, cell, plan, record_only = job
    before = torch.get_num_threads()
    torch.set_num_threads(plan["threads"])
    try:
        return run_group(RunConfig.model_validate(cfg), group.arm, list(group.seeds),
                         [Path(r) for r in rdirs], cell, plan, set(record_only), log)
    finally:
        torch.set_num_threads(before)


def run_serial(jobs: list[Job], report: Report, log: Callable[[str], None] | None) -> None:
    for job in jobs:
        report(job[0], run_job(job, log))


def _worker_init() -> None:
    """Runs in each worker process: die with the driver."""
    try:  # Linux: a SIGKILLed driver must not leave workers writing into its run directory
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_processes(jobs: list[Job], workers: int, report: Report,
                  while_running: Callable[[], Any] | None = None) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
    try:
        futures = {pool.submit(run_job, job): job for job in jobs}
        if while_running is not None:
            while_running()
        for f in as_completed(futures):
            report(futures[f][0], f.result())
    except BaseException:  # Ctrl-C, SIGTERM, a failed job: stop the workers now, keep files
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_ray(jobs: list[Job], report: Report, address: str | None, out: Path) -> None:
    try:
        import ray
    except ImportError:
        raise SharpenError("--backend ray needs Ray: pip install 'sharpen[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None,
                 include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    remote = ray.remote(max_retries=0)(run_job)  # one remote function; each job asks its threads
    refs = {remote.options(num_cpus=job[4]["threads"]).remote(job): job for job in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        job = refs[done[0]]
        group = job[0]
        try:
            results = ray.get(done[0])
        except ray.exceptions.RayError as exc:  # a lost worker: record, let the rest go on
            results = []
            for seed, rdir in zip(group.seeds, job[2]):
                res = {"seed": seed, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "seconds": 0.0, "epochs_done": 0, "arm": group.arm}
                if seed in job[5]:
                    atomic_write_json(Path(rdir) / "result.json", res)
                results.append(res)
        report(group, results)
