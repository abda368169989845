"""Shared by the benchmark scripts: the machine's fp32 matmul peak and its current load.

The scripts are run as files (``python benchmarks/x.py``) and loaded by path in the tests, so they
import this module after putting their own folder on ``sys.path`` (see ``import_peak``).
"""
from __future__ import annotations

import os
import time

import torch


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """fp32 FLOP/s of an ``n x n x n`` ``torch.mm`` on the current thread count (best of ``reps``)."""
    if n < 1 or reps < 1:
        raise ValueError(f"matmul_peak: n and reps must be >= 1, got n={n}, reps={reps}")
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def load_average() -> str:
    """The 1/5/15-minute load average as text (benchmarks on a shared machine must print it)."""
    try:
        return "load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count())
    except OSError:  # pragma: no cover - platforms without getloadavg
        return "load average unavailable"
