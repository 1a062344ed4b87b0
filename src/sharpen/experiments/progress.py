"""A live progress line with per-job and overall ETA, for a terminal only.

It watches the run directory rather than the workers: every job rewrites its first seed's
metrics.csv after each epoch, whatever the backend (this process, worker processes, Ray
on a shared filesystem), so the driver counts finished epochs there. Quiet when stderr is
not a terminal (logs, CI, pipes) or under ``--quiet``.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any


def _job_state(path: Path) -> tuple[int, float | None]:
    """(epochs finished, mean seconds per epoch) from a job's metrics.csv."""
    import csv

    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        return 0, None
    secs = [float(r["seconds"]) for r in rows if r.get("seconds")]
    return len(rows), (sum(secs) / len(secs) if secs else None)


def eta(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the pace so far (None before any progress)."""
    if done <= 0 or total <= 0:
        return None
    return elapsed * (total - done) / done


def _fmt(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """``with Progress(jobs): ...`` shows ``epochs done/total, ETA`` and the running jobs."""

    def __init__(self, jobs: list[tuple[str, Path, int]], enabled: bool | None = None,
                 interval: float = 1.0):
        # jobs: (label, the first seed's metrics.csv, epochs)
        self.jobs = jobs
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        states = [_job_state(p) for _, p, _ in self.jobs]
        done = [min(d, n) for (d, _), (_, _, n) in zip(states, self.jobs)]
        total = sum(n for _, _, n in self.jobs)
        running = [(label, d, n, None if pace is None else (n - d) * pace)
                   for (label, _, n), d, (_, pace) in zip(self.jobs, done, states) if 0 < d < n]
        return {"done": sum(done), "total": total, "eta": eta(elapsed, sum(done), total),
                "running": running}

    def _loop(self) -> None:
        from tqdm import tqdm

        t0 = time.perf_counter()
        total = sum(n for _, _, n in self.jobs)
        import shutil

        # the terminal's width (80 where it reports none, as a detached pseudo-terminal does)
        width = shutil.get_terminal_size((80, 24)).columns
        bar = tqdm(total=total, unit="epoch", file=sys.stderr, leave=False, ncols=width,
                   bar_format="{l_bar}{bar}| {n}/{total} epochs {postfix}")
        while not self._stop.wait(self.interval):
            s = self.snapshot(time.perf_counter() - t0)
            bar.n = s["done"]
            jobs = ", ".join(f"{label} {d}/{n} ETA {_fmt(left)}"
                             for label, d, n, left in s["running"][:3])
            bar.set_postfix_str(f"ETA {_fmt(s['eta'])}" + (f" · {jobs}" if jobs else "")
                                + (" …" if len(s["running"]) > 3 else ""), refresh=False)
            bar.refresh()
        bar.close()

    def __enter__(self) -> Progress:
        if self.enabled and self.jobs:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
