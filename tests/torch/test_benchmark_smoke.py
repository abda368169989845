"""Keeps benchmarks/bptt_plastic.py from rotting: its --quick run (no timing asserts)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bptt_plastic.py"


def test_bptt_benchmark_quick_runs():
    spec = importlib.util.spec_from_file_location("bptt_plastic_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--quick", "--no-compile", "--threads", "1", "--batch", "8"])
    names = {r[1] for r in rows}
    assert {"baseline eager", "plastix eager", "snntorch eager"} <= names
    assert all(r[2] > 0 for r in rows)
