"""Where groups run: in this process, in worker processes, or as Ray tasks.

A backend only places jobs. Each job sets the torch thread count the plan gives it, so a
group's numbers are the same wherever it runs. ``BACKENDS`` is the one registry: the CLI's
``--backend`` choices and help, and the runner's dispatch, both read it. Adding a backend
is one :class:`Backend` entry there.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.experiments.plan import Group
from sharpen.rundir import write_result, write_traceback


@dataclass(frozen=True)
class Job:
    """One group of seeds to train, as plain values (it travels to worker processes and Ray
    tasks by pickling)."""

    group: Group
    config: dict[str, Any]  # the arm's RunConfig as JSON
    run_dirs: tuple[str, ...]  # absolute, one per seed of the group
    cell: dict[str, Any] | None  # the grid cell of the arm, if any
    plan: dict[str, Any]  # the plan's entry: {"threads": T, "stack": K}
    record_only: tuple[int, ...]  # seeds whose result.json this job writes

    @property
    def threads(self) -> int:
        return int(self.plan["threads"])


Report = Callable[[Group, list[dict[str, Any]]], None]
Log = Callable[[str], None] | None


def run_job(job: Job, log: Log = None) -> list[dict[str, Any]]:
    """Run one job here with the plan's thread count (restored afterwards)."""
    # the CLI's parser reads BACKENDS: torch and the trainer load when a job runs
    import torch  # lazy: start-up: torch not loaded for --help

    from sharpen.experiments.config import RunConfig  # lazy: start-up: pydantic, techniques
    from sharpen.experiments.job import run_group  # lazy: start-up: torch not loaded for --help

    before = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        return run_group(RunConfig.model_validate(job.config), job.group.arm,
                         list(job.group.seeds), [Path(r) for r in job.run_dirs], job.cell,
                         job.plan, set(job.record_only), log)
    finally:
        torch.set_num_threads(before)


def run_serial(jobs: list[Job], report: Report, log: Log = None) -> None:
    for job in jobs:
        report(job.group, run_job(job, log))


_STARTED: Any = None  # in a worker: the queue it announces each job on


def _worker_init(started: Any = None, driver: int | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
    """Runs in each worker process: die with its parent (the driver, or the fork server
    that dies with the driver); remember the start queue; take the driver's environment
    and working directory as they are now (a forked worker has the fork server's, from
    when it started: a $SHARPEN_DATA or a relative data_dir must mean what it means to
    the driver)."""
    global _STARTED
    _STARTED = started
    try:  # Linux: a SIGKILLed driver must not leave workers writing into its run directory
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if driver is not None and os.getppid() != driver:
        # the parent died before the line above ran, so no signal will come; the queues'
        # pipes stay open in this process, so without this it would wait for work forever
        os._exit(1)
    _drop_forkserver_alive_fd()
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)


def _drop_forkserver_alive_fd() -> None:
    """In a worker forked by the fork server: close the write end of the server's "driver
    alive" pipe, which CPython hands every child it forks. The server exits only when
    every write end closes; a worker holding one kept it alive after a SIGKILLed driver,
    and so itself (it dies with the server), both waiting forever on pipes they hold."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int) and getattr(server, "_forkserver_pid", None) is None:
        try:  # (a driver's own server has a pid here: its fd is never closed)
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None


# What a fork server imports once, so that each worker forked from it starts with torch
# and the trainer loaded (a spawned worker imports them itself: ~2 s of CPU per worker,
# per pool, and `--until-decided` makes a pool per look)
PRELOAD = ["sharpen.experiments.job", "sharpen.experiments.config"]


def worker_context() -> tuple[Any, int]:
    """The multiprocessing context workers start from, and the pid their parent has.

    A fork server where the platform has one: started once per driver, it imported
    PRELOAD but never ran a torch operator, so forking it copies no thread pool (forking
    the driver itself could: it probed models). Spawn elsewhere. Neither changes a number:
    a job sets its own threads and seeds every stream it draws."""
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()
        pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
        if isinstance(pid, int):
            return ctx, pid
    return multiprocessing.get_context("spawn"), os.getpid()


def _announced_job(i: int, job: Job) -> list[dict[str, Any]]:
    if _STARTED is not None:
        _STARTED.put(i)
    return run_job(job)


def lost_job(job: Job, why: str) -> list[dict[str, Any]]:
    """Results for a job whose process was lost: each seed ``failed``, with the reason."""
    results = []
    for seed, rdir in zip(job.group.seeds, job.run_dirs):
        res = {"seed": seed, "status": "failed", "error": why, "seconds": 0.0,
               "epochs_done": 0, "arm": job.group.arm}
        if seed in job.record_only:
            write_result(Path(rdir), res)
        results.append(res)
    return results


WORKER_DIED = ("its worker process died (killed by a signal: often the out-of-memory killer); "
               "re-run the same command to try it again")


def run_processes(jobs: list[Job], workers: int, report: Report,
                  while_running: Callable[[], Any] | None = None) -> None:
    """Run jobs in ``workers`` worker processes (:func:`worker_context`).

    A worker that dies (the out-of-memory killer, a segfault in a library, ``kill -9``)
    breaks the pool without saying which job it ran. The jobs then in flight are each run
    again alone, so the one that kills its process again is known and recorded ``failed``;
    every other job goes on.
    """
    import sys
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    todo = dict(enumerate(jobs))
    suspects: list[int] = []
    while todo:
        alone = suspects[:1]  # a suspect runs alone: if its process dies, it is the cause
        batch = {i: todo[i] for i in (alone or list(todo))}
        ctx, parent = worker_context()  # per pool: a killed fork server is started again
        started = ctx.SimpleQueue()
        begun: set[int] = set()

        def drain(q: Any = started, into: set[int] = begun) -> None:  # keep the pipe from filling
            while not q.empty():
                into.add(q.get())

        pool = ProcessPoolExecutor(1 if alone else min(workers, len(batch)), mp_context=ctx,
                                   initializer=_worker_init,
                                   initargs=(started, parent, dict(os.environ), os.getcwd()))
        try:
            futures = {pool.submit(_announced_job, i, job): i for i, job in batch.items()}
            if while_running is not None:
                while_running()
                while_running = None
            for f in as_completed(futures):
                i = futures[f]
                report(todo[i].group, f.result())
                del todo[i]
                drain()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            if alone:
                report(todo[alone[0]].group, lost_job(todo[alone[0]], WORKER_DIED))
                del todo[alone[0]]
                suspects.pop(0)
                continue
            drain()
            suspects = [i for i in sorted(begun) if i in todo]
            if not suspects:
                raise SharpenError("worker processes die before they start a job (out of memory "
                                   "at start-up?); try --workers 1") from None
            print(f"sharpen: a worker process died; running its {len(suspects)} job(s) in "
                  "flight again, one at a time", file=sys.stderr, flush=True)
            continue
        except BaseException:  # Ctrl-C, SIGTERM, a failed job: stop the workers now, keep files
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if alone:
            suspects.pop(0)


def with_data_dirs(jobs: list[Job]) -> list[Job]:
    """Jobs whose dataset folder is resolved here, on the driver: a Ray worker does not
    share the driver's environment ($SHARPEN_DATA) or home directory, so each job carries
    the absolute folder the driver found (not written into config.json: where the files
    lie does not change a number)."""
    from sharpen.data import get_spec, locate  # lazy: start-up: sharpen.data loads torch

    found: dict[str, str | None] = {}
    out = []
    for job in jobs:
        cfg = job.config
        name = cfg.get("dataset")
        if cfg.get("data_dir") is None and isinstance(name, str):
            if name not in found:
                try:
                    found[name] = str(locate(get_spec(name), "train", None, download_ok=False)
                                      .resolve())
                except Exception:  # noqa: BLE001 - not here: the worker looks for itself
                    found[name] = None
            if found[name] is not None:
                job = replace(job, config={**cfg, "data_dir": found[name]})
        out.append(job)
    return out


def one_line(exc: BaseException) -> str:
    """A Ray task's error as the same one line a local run prints: the cause's type and
    message, without Ray's wrapper, traceback or colour codes."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    msg = re.sub(r"\x1b\[[0-9;]*m", "", text[-1] if text else "")
    return msg if isinstance(cause, SharpenError) else f"{type(cause).__name__}: {msg}"


RAY_TOKEN_HELP = ("the cluster asks for an authentication token and this process sent none "
                  "or another one: run sharpen with RAY_AUTH_MODE=token and the head's token in "
                  "~/.ray/auth_token or $RAY_AUTH_TOKEN (`ray get-auth-token` prints it on the "
                  "head)")


def _reachable(address: str) -> None:
    """Fail in seconds, with one line, where nothing listens at ``host:port`` (ray.init
    would retry for minutes, printing a warning every few seconds)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SharpenError(f"--address {address!r}: expected HOST:PORT (the address "
                           "`ray start --head` prints), 'auto', or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise SharpenError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): "
                           "no `ray start --head` listens there; start one, or leave --address "
                           "out to run on a local Ray") from None


def connect_ray(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (None: a local Ray), or stop with one line that says
    what to do (docs/errors.md): Ray's own failure is ~20 warnings and a traceback."""
    if address and address != "auto" and not address.startswith("ray://"):
        _reachable(address)
    # Ray's C++ client warns on stderr once a second while it retries; held back here and
    # shown after a connection, replaced by one line after a failure
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            ray.init(address=address, include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, its own
            failed: BaseException | None = exc
        else:
            failed = None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if failed is None:
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            return
    chain, e = [], failed  # type: list[str], BaseException | None
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    why = (RAY_TOKEN_HELP if any("InvalidAuthToken" in c for c in chain) else one_line(failed))
    raise SharpenError(f"cannot join the Ray cluster at {address or 'a local Ray'}: {why}")


def run_ray(jobs: list[Job], report: Report, address: str | None) -> None:
    try:
        import ray  # lazy: optional: ray
    except ImportError:
        raise SharpenError("--backend ray needs Ray: pip install 'sharpen[ray]'") from None
    jobs = with_data_dirs(jobs)
    if not ray.is_initialized():
        connect_ray(ray, address or os.environ.get("RAY_ADDRESS") or None)
    remote = ray.remote(max_retries=0)(run_job)  # one remote function; each job asks its threads
    refs = {remote.options(num_cpus=job.threads).remote(job): job for job in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        job = refs[done[0]]
        group = job.group
        try:
            results = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            if isinstance(getattr(exc, "cause", None), SharpenError):
                # a configuration or data error: it stops the run, as it does locally; the
                # other tasks are cancelled and their errors collected, so Ray does not print
                # them as unhandled
                for ref in pending:
                    ray.cancel(ref, force=True)
                for ref in pending:
                    try:
                        ray.get(ref, timeout=30)
                    except Exception:  # noqa: BLE001 - cancelled or failed alike: not ours to show
                        pass
                raise SharpenError(one_line(exc)) from None
            full = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
            for rdir in job.run_dirs:  # the whole traceback in the job's log, one line on screen
                write_traceback(Path(rdir), full + "\n")
            results = lost_job(job, one_line(exc))
        except ray.exceptions.RayError as exc:  # a lost worker: record, let the rest go on
            results = lost_job(job, one_line(exc))
        report(group, results)


@dataclass(frozen=True)
class Placement:
    """How an invocation asked its jobs to be placed (``sharpen run`` flags)."""

    workers: int | None = None  # processes side by side (None: cores ÷ threads per job)
    address: str | None = None  # a Ray cluster
    log: Log = None  # per-job messages (resuming from a checkpoint), serial only


@dataclass(frozen=True)
class Backend:
    """One way to place jobs: ``run(jobs, report, placement, ready)`` calls ``report`` with
    each job's results as it finishes and ``ready()`` once the jobs are under way."""

    name: str
    help: str
    run: Callable[[list[Job], Report, Placement, Callable[[], Any]], None]
    # processes that train at once, for the display: (jobs, workers) → slots
    slots: Callable[[int, int], int]
    where: Callable[[int, int], str]  # (jobs, workers) → "in 2 processes", for one line


def default_workers(jobs: list[Job]) -> int:
    """Processes that fill this machine's cores: cores ÷ the most threads a job asks."""
    most = max((j.threads for j in jobs), default=1)
    return max(1, (os.cpu_count() or 1) // most)


def warm_workers(backend: str, workers: int | None) -> None:
    """Start the fork server now when this run may use worker processes, so that its
    import of torch and the trainer overlaps the driver's planning (a no-op when it runs)."""
    if backend in ("local", "processes") and (workers is None or workers > 1) \
            and (os.cpu_count() or 1) > 1:
        worker_context()


def _serial(jobs: list[Job], report: Report, p: Placement, ready: Callable[[], Any]) -> None:
    ready()
    run_serial(jobs, report, p.log)


def _processes(jobs: list[Job], report: Report, p: Placement, ready: Callable[[], Any]) -> None:
    if not jobs:
        return ready()
    run_processes(jobs, max(1, min(p.workers or default_workers(jobs), len(jobs))), report, ready)


def _local(jobs: list[Job], report: Report, p: Placement, ready: Callable[[], Any]) -> None:
    """Processes when two or more can work side by side, else this process (no spawn cost)."""
    if (p.workers or default_workers(jobs)) > 1 and len(jobs) > 1:
        return _processes(jobs, report, p, ready)
    _serial(jobs, report, p, ready)


def _ray(jobs: list[Job], report: Report, p: Placement, ready: Callable[[], Any]) -> None:
    if not jobs:  # everything finished earlier: no cluster to start
        return _serial(jobs, report, p, ready)
    ready()
    run_ray(jobs, report, p.address)


def _local_where(n: int, w: int) -> str:
    return f"{min(w, n)} processes" if w > 1 and n > 1 else "this process"


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("local", "worker processes when two or more jobs can run side by side, else this "
            "process (default)", _local,
            lambda n, w: w, _local_where),
    Backend("serial", "one job after another in this process", _serial,
            lambda n, w: 1, lambda n, w: "this process"),
    Backend("processes", "always spawned worker processes (--workers, default cores ÷ threads)",
            _processes, lambda n, w: w, lambda n, w: f"{max(1, min(w, n))} processes"),
    Backend("ray", "one Ray task per job (--address, else $RAY_ADDRESS, else a local Ray)",
            _ray, lambda n, w: n, lambda n, w: "Ray tasks"),
)}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise SharpenError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return BACKENDS[name]
