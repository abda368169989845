"""Keeps benchmarks/es_generation.py from rotting: its --quick run (no timing asserts)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "es_generation.py"


def test_es_generation_quick_runs():
    spec = importlib.util.spec_from_file_location("es_generation_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--quick", "--no-evosax"])
    names = [name for name, _ in rows]
    assert any(n.startswith("plastix, 1 thread") for n in names)
    assert any(n.startswith("per-individual loop") for n in names)
    assert all(s > 0 for _, s in rows)
    assert mod.enu_flops_per_step() == 2 * (2 * 32 * 64 + 32 * 64 + 16 * 32)
