"""Keeps benchmarks/tmaze_generation.py from rotting: tiny runs of its modes (no timing asserts)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tmaze_generation.py"


def _module():
    spec = importlib.util.spec_from_file_location("tmaze_generation_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compaction_comparison_runs(capsys):
    best = _module().main(["--compare-compaction", "--population", "4", "--num-envs", "2", "--task-config", "quick"])
    assert set(best) == {"compacted", "everyone"} and all(v > 0 for v in best.values())
    assert "fitness identical: True" in capsys.readouterr().out


def test_extrapolated_generation_runs():
    rows = _module().main(["--population", "4", "--num-envs", "2", "--short", "1", "--steps", "2", "--no-ray"])
    assert all(sec > 0 for _, _, sec in rows.values())
