"""Our trainer vs a canonical DataLoader loop, FLOP/s fraction, 10-seed wall time.

    python benchmarks/train_throughput.py [--full] [--out DIR]

Same as ``sharpen bench train``; writes benchmark.json and report.md.
"""

from __future__ import annotations

import argparse

from sharpen.bench import run_train_bench

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--targets")
    a = ap.parse_args()
    run_train_bench(a.out, quick=not a.full, device=a.device, targets=a.targets)
