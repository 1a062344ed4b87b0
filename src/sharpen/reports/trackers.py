"""Optional experiment trackers, fed from the run directory (the source of truth).

``--log tensorboard`` (or ``log = ["tensorboard"]`` in the experiment file) writes one
TensorBoard run per (arm, seed) under ``<run dir>/tensorboard/<arm>/seed-<s>``: every
metrics.csv column as a scalar per epoch under its own name (``train_loss``, ``val_acc``,
``test_acc``, ``lr`` ...: the same names as in MLflow and the files) and the resolved
config as text. ``--log mlflow`` logs to the tracking URI in
$MLFLOW_TRACKING_URI, else ``sqlite:///<run dir>/mlflow.db`` (artifacts in
``<run dir>/mlflow-artifacts``): an MLflow experiment named after ours, one run per
(arm, seed) tagged with arm, seed, grid cell and profile, the arm's resolved config as
parameters, every metric per epoch (step = epoch); and a ``report`` run holding
report.md and the figures as artifacts. Epochs are logged as they are written (the
driver polls each run's metrics.csv every 2 s, whatever backend trains it); the run
directory stays the source of truth. The command that opens each viewer is printed once.

Install: ``pip install 'sharpen[tensorboard]'`` / ``'sharpen[mlflow]'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.rundir import (
    CONFIG,
    REPORT,
    RESULTS,
    RUNS,
    SEED_FOLDER,
    SUMMARY,
    TABLE,
    TENSORBOARD,
    RunDir,
)

TRACKERS = ("tensorboard", "mlflow")
SKIP = {"epoch"}


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and not {"kind"} <= set(v):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if not isinstance(v, str) else v
    return out


class Trackers:
    """Log finished runs to the chosen trackers; ``close`` adds the report (MLflow)."""

    def __init__(self, names: list[str], out: Path, cfg: dict[str, Any]):
        bad = [n for n in names if n not in TRACKERS]
        if bad:
            raise SharpenError(f"--log / log: unknown tracker {bad[0]!r}; choose from "
                               f"{', '.join(TRACKERS)}")
        self.names, self.out, self.cfg = list(dict.fromkeys(names)), Path(out), cfg
        self.logged: set[tuple[str, int]] = set()
        self._lock = threading.RLock()  # the live watcher and the runner log the same runs
        self._rows: dict[tuple[str, int], int] = {}  # epochs logged so far per (arm, seed)
        self._writers: dict[tuple[str, int], Any] = {}
        self._runs: dict[tuple[str, int], str] = {}
        self._mlflow: Any = None
        for n in self.names:
            try:
                __import__("tensorboard" if n == "tensorboard" else "mlflow")
            except ImportError:
                raise SharpenError(f"--log {n} needs the package: pip install 'sharpen[{n}]'"
                                   ) from None
        if "mlflow" in self.names:
            import mlflow  # lazy: optional: mlflow

            # MLflow logs "INFO mlflow.store.db.utils: Creating initial MLflow database
            # tables..." (and alembic its migrations) into our output: its warnings stay
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            env_uri = os.environ.get("MLFLOW_TRACKING_URI")
            uri = env_uri or f"sqlite:///{self.out.resolve()}/mlflow.db"
            self._client = mlflow.MlflowClient(tracking_uri=uri)
            name = cfg.get("name") or "sharpen"
            exp = self._client.get_experiment_by_name(name)
            # our own store keeps its artifacts beside it (MLflow's default is ./mlruns)
            where = None if env_uri else (self.out / "mlflow-artifacts").resolve().as_uri()
            self._exp_id = exp.experiment_id if exp else self._client.create_experiment(
                name, artifact_location=where)
            self._mlflow = mlflow

    def viewers(self) -> list[str]:
        """The command that opens each tracker's viewer on this run."""
        out = []
        if "tensorboard" in self.names:
            out.append(f"tensorboard --logdir {self.out / 'tensorboard'}")
        if self._mlflow is not None:
            out.append(f"mlflow ui --backend-store-uri {self._client.tracking_uri}")
        return out

    def log_epochs(self, arm: str, seed: int) -> None:
        """Log the epochs of (arm, seed) that metrics.csv holds and were not logged yet."""
        with self._lock:
            self._log_epochs(arm, seed)

    def _log_epochs(self, arm: str, seed: int) -> None:
        if (arm, seed) in self.logged:
            return
        rd = RunDir(self.out)
        rows = rd.metrics(arm, seed)
        done = self._rows.get((arm, seed), 0)
        new = [r for r in rows[done:] if _number(r.get("epoch")) is not None]
        if not new:
            return
        arm_cfg = self.cfg.get("arms", {}).get(arm, {})
        if "tensorboard" in self.names:
            w = self._writers.get((arm, seed))
            if w is None:
                from torch.utils.tensorboard import SummaryWriter  # lazy: optional: tensorboard

                rdir = rd.seed_dir(arm, seed)
                w = self._writers[(arm, seed)] = SummaryWriter(
                    log_dir=str(self.out / TENSORBOARD / rdir.relative_to(rd.root / RUNS)))
                w.add_text("config", "```\n" + json.dumps(arm_cfg, indent=2) + "\n```")
            for r in new:
                step = int(float(r["epoch"]))
                for k, v in r.items():
                    x = _number(v)
                    if k not in SKIP and x is not None:
                        w.add_scalar(k, x, step)  # the metrics.csv column, as in MLflow
            w.flush()
        if self._mlflow is not None:
            from mlflow.entities import Metric, Param  # lazy: optional: mlflow

            rid = self._runs.get((arm, seed))
            first = rid is None
            if first:
                cell = (self.cfg.get("cells") or {}).get(arm)
                tags = {"arm": arm, "seed": str(seed), "profile": self.cfg.get("profile") or "",
                        "run_dir": str(rd.seed_dir(arm, seed).resolve())}
                if cell:
                    tags.update({"base_arm": cell["arm"]}
                                | {f"grid.{k}": str(v) for k, v in cell.items() if k != "arm"})
                rid = self._runs[(arm, seed)] = self._client.create_run(
                    self._exp_id, run_name=f"{arm}/{SEED_FOLDER.format(seed)}",
                    tags=tags).info.run_id
            params = [Param(k, v[:6000]) for k, v in _flat(arm_cfg).items()] if first else []
            metrics = [Metric(k, x, 0, int(float(r["epoch"])))
                       for r in new for k, v in r.items()
                       if k not in SKIP and (x := _number(v)) is not None]
            for i in range(0, max(len(metrics), 1), 900):  # the API takes 1000 per batch
                self._client.log_batch(rid, metrics=metrics[i:i + 900],
                                       params=params if i == 0 else [])
        self._rows[(arm, seed)] = done + len(new)

    def log_run(self, arm: str, seed: int) -> None:
        """A finished run: its last epochs, then its TensorBoard file closed and its MLflow
        run marked finished (once)."""
        with self._lock:
            self._log_run(arm, seed)

    def _log_run(self, arm: str, seed: int) -> None:
        if (arm, seed) in self.logged:
            return
        self._log_epochs(arm, seed)
        w = self._writers.pop((arm, seed), None)
        if w is not None:
            w.close()
        rid = self._runs.pop((arm, seed), None)
        if rid is not None:
            self._client.set_terminated(rid)
        if (arm, seed) in self._rows or RunDir(self.out).metrics(arm, seed):
            self.logged.add((arm, seed))

    def watch(self, pairs: list[tuple[str, int]], interval: float = 2.0) -> Any:
        """A context in which the epochs of ``pairs`` are logged as they are written."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                for arm, seed in pairs:
                    try:
                        self.log_epochs(arm, seed)
                    except Exception:  # noqa: BLE001 - a tracker hiccup must not stop training
                        pass

        @contextlib.contextmanager
        def running() -> Any:
            t = threading.Thread(target=loop, daemon=True)
            t.start()
            try:
                yield self
            finally:
                stop.set()
                t.join(timeout=30)

        return running()

    def close(self) -> None:
        """MLflow: a ``report`` run with report.md, the tables and the figures."""
        if self._mlflow is None:
            return
        run = self._client.create_run(self._exp_id, run_name="report",
                                      tags={"run_dir": str(self.out.resolve())})
        for f in (REPORT, RESULTS, TABLE, SUMMARY, CONFIG,
                  *sorted(p.name for p in self.out.glob("*.png")),
                  *sorted(p.name for p in self.out.glob("*.pdf"))):
            if (self.out / f).is_file():
                self._client.log_artifact(run.info.run_id, str(self.out / f))
        self._client.set_terminated(run.info.run_id)
