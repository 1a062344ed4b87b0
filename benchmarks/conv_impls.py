"""Time and peak memory of the three NumPy conv implementations vs PyTorch (seed 003 §2).

    python benchmarks/conv_impls.py [--profile quick|full] [--out DIR]

Same as ``sharpen bench conv``; writes report.md, measurements.csv and one PNG per variable.
"""

from __future__ import annotations

import argparse

from sharpen.bench.conv import run_conv_bench

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick", choices=["quick", "full"])
    ap.add_argument("--out")
    ap.add_argument("--repeats", type=int)
    a = ap.parse_args()
    run_conv_bench(a.profile, a.out, a.repeats)
