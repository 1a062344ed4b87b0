"""Seconds a fresh worker process spends importing what a job needs (what each spawned
worker paid before its first job, and a fork server now pays once per run).

    python tools/measure_worker_import.py OUT.json
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

CODE = ("import time; t = time.perf_counter(); import sharpen.experiments.job, "
        "sharpen.experiments.config; print(time.perf_counter() - t)")


def main() -> None:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                             check=True)
        runs.append({"import_s": float(out.stdout), "process_s": time.perf_counter() - t0})
    res = {"command": " ".join(sys.argv), "python": platform.python_version(),
           "machine": platform.processor() or platform.machine(), "runs": runs,
           "median_import_s": sorted(r["import_s"] for r in runs)[2]}
    with open(sys.argv[1], "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
