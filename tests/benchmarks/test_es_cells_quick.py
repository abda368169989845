"""Keeps benchmarks/es_cells.py from rotting: its --quick run (no timing asserts)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "es_cells.py"


def test_es_cells_quick_runs():
    spec = importlib.util.spec_from_file_location("es_cells_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--quick"])
    assert [kind for kind, *_ in rows] == ["enu", "nfenu", "gru", "lstm"]
    assert all(fast > 0 and slow > 0 for _, fast, slow in rows)
    from plastix.trainer.algorithms.models import ModelSpec
    assert mod.cell_flops(ModelSpec("gru"), 1) == 2 * (3 * 32 * 1 + 3 * 32 * 32 + 16 * 32)
