"""benchmarks/es_sweep.py end to end on a tiny budget (two runs, two generations; no result asserts)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "es_sweep.py"


def test_es_sweep_tiny(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("es_sweep_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--out", str(tmp_path), "--generations", "2", "--population", "4", "--num-envs", "2",
            "--eval-envs", "3", "--tasks", "iaf", "stdp", "--models", "enu"]
    results = mod.main(argv)
    assert set(results) == {("iaf", "enu"), ("stdp", "enu")}
    again = mod.main(argv + ["--table-only"])  # finished runs are not re-run; same evaluation
    assert again[("stdp", "enu")]["final_fitness"] == results[("stdp", "enu")]["final_fitness"]
    out = capsys.readouterr().out
    assert "| iaf | enu |" in out and "baseline: silent" in out
