"""Benchmarks: ``conv`` (NumPy conv implementations) and ``train`` (our trainer against the
canonical PyTorch loop). Each measures and writes JSON; ``markdown`` renders the reports."""

from sharpen.bench.conv import run_conv_bench
from sharpen.bench.train import compare_targets, run_train_bench

__all__ = ["run_conv_bench", "run_train_bench", "compare_targets"]
