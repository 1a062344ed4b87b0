"""Progress of a run, read from the run directory: a live bar on a terminal, one line per
finished epoch per job anywhere else (a pipe, a log file, CI).

It watches files rather than workers: each job rewrites its first seed's metrics.csv after
every epoch and, while an epoch runs, a small ``progress.txt`` (epochs done as a fraction,
written at most twice a second by :class:`ProgressFile`), whatever the backend (this
process, worker processes, Ray on a shared filesystem). Nothing is shown under ``--quiet``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sharpen.rundir import METRICS, PROGRESS
from sharpen.training.loop import Hook, TrainState


class ProgressFile(Hook):
    """Writes the job's fractional epochs done to ``progress.txt`` (not more than every
    ``every`` seconds; no fsync: it is a display, not a result)."""

    stacks = True

    def __init__(self, path: Path, every: float = 0.5):
        self.path, self.every, self._last = Path(path), every, 0.0

    def on_step(self, state: TrainState) -> None:
        now = time.monotonic()
        if now - self._last < self.every or not state.batches:
            return
        self._last = now
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(f"{state.step / state.batches:.4f}\n")
            os.replace(tmp, self.path)
        except OSError:
            pass

    def state_dict(self) -> dict[str, Any]:
        return {}


@dataclass
class Watch:
    """One job as the display sees it."""

    arm: str
    seeds: tuple[int, ...]
    folder: Path  # the first seed's folder
    epochs: int

    @property
    def label(self) -> str:
        s = self.seeds
        if len(s) == 1:
            who = f"seed {s[0]}"
        elif list(s) == list(range(s[0], s[0] + len(s))):
            who = f"seeds {s[0]}–{s[-1]}"
        else:
            who = "seeds " + ",".join(map(str, s))
        return f"{self.arm} · {who}"


@dataclass
class JobState:
    rows: list[dict[str, str]]
    done: float  # epochs, with the running epoch's fraction
    pace: float | None  # seconds per epoch so far


def _read(w: Watch) -> JobState:
    import csv

    try:
        with open(w.folder / METRICS) as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        rows = []
    secs = []
    for r in rows:
        try:
            secs.append(float(r.get("seconds") or "nan"))
        except ValueError:
            continue
    secs = [s for s in secs if s == s]
    done = float(min(len(rows), w.epochs))
    try:
        frac = float((w.folder / PROGRESS).read_text())
        if len(rows) <= frac < len(rows) + 1:
            done = min(frac, float(w.epochs))
    except (OSError, ValueError):
        pass
    return JobState(rows, done, sum(secs) / len(secs) if secs else None)


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


FINISHING = "writing the results, then the report…"  # the bar at 100 %, still working


@contextlib.contextmanager
def status(text: str, quiet: bool = False, keep: bool = True) -> Iterator[None]:
    """Say what a silent pause does (the report's 8-20 s of statistics and figures): on a
    terminal a line on stderr while it lasts, erased after; elsewhere a line on stdout
    (``keep = False``: none). Nothing under ``quiet``."""
    tty = not quiet and sys.stderr.isatty()
    if tty:
        sys.stderr.write(text)
        sys.stderr.flush()
    elif not quiet and keep:
        print(text, flush=True)
    try:
        yield
    finally:
        if tty:
            sys.stderr.write("\r\x1b[K")  # the line goes: what follows is the result
            sys.stderr.flush()


class Progress:
    """``with Progress(jobs, workers=W): ...`` shows what the jobs have done.

    ``mode``: "bar" (a tqdm bar on stderr that follows the terminal's width), "lines" (one
    line per finished epoch per job, on stdout), "off"; default: a bar when stderr is a
    terminal, else lines. ``enabled = False`` is "off".
    """

    def __init__(self, jobs: list[Watch], enabled: bool | None = None, interval: float = 1.0,
                 workers: int = 1, mode: str | None = None, stream: TextIO | None = None):
        self.jobs = jobs
        if enabled is False:
            mode = "off"
        self.mode = mode or ("bar" if sys.stderr.isatty() else "lines")
        self.interval = interval
        self.workers = max(1, workers)
        self.stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = [len(_read(w).rows) for w in jobs]  # epochs finished before this call

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        states = [_read(w) for w in self.jobs]
        total = sum(w.epochs for w in self.jobs)
        done = sum(s.done for s in states)
        paces = [s.pace for s in states if s.pace is not None]
        mean_pace = sum(paces) / len(paces) if paces else None
        left, running = [], []
        for w, s in zip(self.jobs, states):
            if s.done >= w.epochs:
                continue
            pace = s.pace if s.pace is not None else mean_pace
            secs = None if pace is None else (w.epochs - s.done) * pace
            left.append(secs)
            if s.done > 0 or s.rows:
                running.append((w, s.done, secs))
        if left and all(x is not None for x in left):
            # the jobs left share the workers; none finishes before its own time left
            spread = sum(left) / min(self.workers, len(left))  # type: ignore[arg-type]
            overall: float | None = max(spread, max(x for _, _, x in running if x is not None)
                                        if any(x is not None for _, _, x in running) else 0.0)
        else:
            overall = eta(elapsed, done, total)
        return {"done": done, "total": total, "eta": overall if left else 0.0,
                "running": running, "states": states}

    def _new_lines(self, s: dict[str, Any]) -> list[str]:
        out = []
        for k, (w, st) in enumerate(zip(self.jobs, s["states"])):
            for row in st.rows[self._seen[k]:]:
                acc = row.get("test_acc")
                try:
                    acc_s = f" · test acc {100 * float(acc):.2f} %" if acc else ""
                    sec_s = f" · {float(row.get('seconds') or 'nan'):.1f} s"
                except ValueError:
                    acc_s = sec_s = ""
                out.append(f"{w.label} · epoch {row.get('epoch')}/{w.epochs}{acc_s}{sec_s} · "
                           f"all jobs {s['done']:.0f}/{s['total']} epochs, ETA {_fmt(s['eta'])}")
            self._seen[k] = len(st.rows)
        return out

    def _lines_loop(self) -> None:
        t0 = time.perf_counter()
        stream = self.stream or sys.stdout
        while True:
            stopping = self._stop.wait(self.interval)
            for line in self._new_lines(self.snapshot(time.perf_counter() - t0)):
                print(line, file=stream, flush=True)
            if stopping:
                return

    def _bar_loop(self) -> None:
        import math
        import shutil

        from tqdm import tqdm

        t0 = time.perf_counter()
        total = sum(w.epochs for w in self.jobs)
        fp = self.stream or sys.stderr

        def width() -> int:
            # the terminal itself, not $COLUMNS (a shell's copy that a resize leaves stale)
            try:
                return os.get_terminal_size(fp.fileno()).columns
            except (OSError, AttributeError, ValueError):
                return shutil.get_terminal_size((80, 24)).columns

        def new_bar(cols: int, n: float = 0.0) -> Any:
            # one column short of the width: a full-width line leaves the cursor waiting to
            # wrap, and the next redraw can land on a new row
            return tqdm(total=total, initial=n, file=fp, leave=False, ncols=max(cols - 1, 10),
                        bar_format="{percentage:3.0f}%|{bar}| {n:.1f}/{total} epochs{postfix}")

        cols = width()
        bar = self._bar = new_bar(cols)
        while not self._stop.wait(self.interval):
            now = width()
            if now != cols:
                # resized: a narrower terminal rewrapped the old bar onto several rows (tmux
                # and most terminals reflow), and tqdm would pad its next line to the old
                # width; clear those rows and start a fresh bar at the new width
                bar.disable = True
                type(bar)._decr_instances(bar)  # else the new bar takes the next row
                rows = math.ceil((cols - 1) / max(now, 1))
                fp.write("\r" + "\x1b[A" * (rows - 1) + "\x1b[J")
                fp.flush()
                bar = self._bar = new_bar(now, bar.n)
            cols = now
            s = self.snapshot(time.perf_counter() - t0)
            bar.n = round(s["done"], 1)
            jobs = " | ".join(f"{w.label} · epoch {min(int(d) + 1, w.epochs)}/{w.epochs}"
                              for w, d, _ in s["running"][:1])
            more = f" | +{len(s['running']) - 1} running" if len(s["running"]) > 1 else ""
            room = max(cols - 1 - 34, 8)  # "100%|" + a 10-column bar + "| 12.0/12 epochs, "
            post = f"ETA {_fmt(s['eta'])}" + (f" · {jobs}{more}" if jobs else "")
            if s["done"] >= total:  # the jobs write their results, then the report builds
                post = FINISHING
            if len(post) > room:
                post = f"ETA {_fmt(s['eta'])}" + (f" · {jobs}" if jobs else "")
            bar.set_postfix_str(post if len(post) <= room else post[:room - 1] + "…",
                                refresh=False)
            bar.refresh()
        self._bar = None
        bar.close()

    def write(self, line: str) -> None:
        """Print a line above the bar (or plainly without one), never through it."""
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def __enter__(self) -> Progress:
        if self.mode != "off" and self.jobs:
            loop = self._bar_loop if self.mode == "bar" else self._lines_loop
            self._thread = threading.Thread(target=loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
