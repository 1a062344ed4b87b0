"""Wall time of the 10-seed sharpening case (bench train's) under three plans, in ABCCBA
order and with the workers' fork server already running, so no plan pays a start-up or a
slow spell the others do not: the default plan (``stack_seeds = "auto"``: this machine's
calibration if it has one, else two groups of 5 on 2 cores), two groups of 5 seeds, and
one seed per job. Same numbers under each; only the time differs.

    python tools/compare_stack_plans.py OUT.json [EPOCHS] [REPEATS]
"""
from __future__ import annotations

import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sharpen.bench.train import LENET_SETTINGS, SHARPENING
from sharpen.experiments.backends import worker_context
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.runner import run_experiment
from sharpen.machine import describe

PLANS = {"default": {}, "groups of 5": {"stack_seeds": 5}, "one seed per job": {"stack_seeds": 1}}


def _timed(label: str, epochs: int, scratch: Path) -> tuple[float, dict]:
    cfg = RunConfig(dataset="mnist-sample", model="lenet5_dropout", epochs=epochs,
                    blur_n=SHARPENING, test_size=1000, train_size=2000, checkpoint=False,
                    device="cpu", **LENET_SETTINGS, **PLANS[label])
    d = scratch / label.replace(" ", "-")
    shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    run_experiment(Experiment(name="ten-seeds", runs=10, arms={"sharpening": cfg}), d, quiet=True)
    wall = time.perf_counter() - t0
    plan = json.loads((d / "config.json").read_text())["plan"]["arms"]["sharpening"]
    return wall, {"groups": plan["groups"], "why": plan["why"]}


def main() -> None:
    out = Path(sys.argv[1])
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    worker_context()
    walls: dict[str, list[float]] = {k: [] for k in PLANS}
    plans: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for label in [*PLANS, *reversed(PLANS)]:
                wall, plans[label] = _timed(label, epochs, Path(tmp))
                walls[label].append(round(wall, 3))
                print(f"{label}: {wall:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    res = {"command": " ".join(["python"] + sys.argv), "machine": describe(),
           "python": platform.python_version(), "epochs": epochs, "images": 2000,
           "order": "ABCCBA × repeats", "walls_s": walls, "median_s": med, "plans": plans,
           "over_groups_of_5": {k: v / med["groups of 5"] for k, v in med.items()}}
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("median_s", "over_groups_of_5")}))


if __name__ == "__main__":
    main()
