"""Optional experiment trackers, fed from the run directory (the source of truth).

``--log tensorboard`` (or ``log = ["tensorboard"]`` in the experiment file) writes one
TensorBoard run per (arm, seed) under ``<run dir>/tensorboard/<arm>/seed-<s>``: every
metrics.csv column as a scalar per epoch (``train/loss``, ``val/acc``, ``test/acc``,
``lr`` ...) and the resolved config as text. ``--log mlflow`` logs to the tracking URI in
$MLFLOW_TRACKING_URI, else ``sqlite:///<run dir>/mlflow.db`` (artifacts in
``<run dir>/mlflow-artifacts``): an MLflow experiment named after ours, one run per
(arm, seed) tagged with arm, seed, grid cell and profile, the arm's resolved config as
parameters, every metric per epoch (step = epoch); and a ``report`` run holding
report.md and the figures as artifacts. Each run is logged when it finishes, from its
files, whatever backend trained it.

Install: ``pip install 'sharpen[tensorboard]'`` / ``'sharpen[mlflow]'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sharpen import SharpenError
from sharpen.rundir import RunDir

TRACKERS = ("tensorboard", "mlflow")
SKIP = {"epoch"}


def _tag(key: str) -> str:
    for split in ("train", "val", "test", "ema_val", "ema_test"):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1:]}"
    return key


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
        self._mlflow: Any = None
        for n in self.names:
            try:
                __import__("tensorboard" if n == "tensorboard" else "mlflow")
            except ImportError:
                raise SharpenError(f"--log {n} needs the package: pip install 'sharpen[{n}]'"
                                   ) from None
        if "mlflow" in self.names:
            import mlflow

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

    def log_run(self, arm: str, seed: int) -> None:
        """Log one finished run (arm, seed) from its metrics.csv, once."""
        if (arm, seed) in self.logged:
            return
        rd = RunDir(self.out)
        rdir = rd.seed_dir(arm, seed)
        rows = rd.metrics(arm, seed)
        if not rows:
            return
        arm_cfg = self.cfg.get("arms", {}).get(arm, {})
        cell = (self.cfg.get("cells") or {}).get(arm)
        if "tensorboard" in self.names:
            from torch.utils.tensorboard import SummaryWriter

            w = SummaryWriter(log_dir=str(self.out / "tensorboard" / rdir.relative_to(rd.root / "runs")))
            w.add_text("config", "```\n" + json.dumps(arm_cfg, indent=2) + "\n```")
            for r in rows:
                step = int(float(r["epoch"]))
                for k, v in r.items():
                    x = _number(v)
                    if k not in SKIP and x is not None:
                        w.add_scalar(_tag(k), x, step)
            w.close()
        if self._mlflow is not None:
            from mlflow.entities import Metric, Param, RunTag

            tags = {"arm": arm, "seed": str(seed), "profile": self.cfg.get("profile") or "",
                    "run_dir": str(rdir.resolve())}
            if cell:
                tags.update({"base_arm": cell["arm"]}
                            | {f"grid.{k}": str(v) for k, v in cell.items() if k != "arm"})
            run = self._client.create_run(self._exp_id, run_name=f"{arm}/seed-{seed}")
            rid = run.info.run_id
            params = [Param(k, v[:6000]) for k, v in _flat(arm_cfg).items()]
            metrics = [Metric(k, x, 0, int(float(r["epoch"])))
                       for r in rows for k, v in r.items()
                       if k not in SKIP and (x := _number(v)) is not None]
            for i in range(0, max(len(metrics), 1), 900):  # the API takes 1000 per batch
                self._client.log_batch(rid, metrics=metrics[i:i + 900],
                                       params=params if i == 0 else [],
                                       tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
            self._client.set_terminated(rid)
        self.logged.add((arm, seed))

    def close(self) -> None:
        """MLflow: a ``report`` run with report.md, the tables and the figures."""
        if self._mlflow is None:
            return
        run = self._client.create_run(self._exp_id, run_name="report",
                                      tags={"run_dir": str(self.out.resolve())})
        for f in ("report.md", "results.csv", "table.csv", "summary.json", "config.json",
                  *sorted(p.name for p in self.out.glob("*.png")),
                  *sorted(p.name for p in self.out.glob("*.pdf"))):
            if (self.out / f).is_file():
                self._client.log_artifact(run.info.run_id, str(self.out / f))
        self._client.set_terminated(run.info.run_id)
