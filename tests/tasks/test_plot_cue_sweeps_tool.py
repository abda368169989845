"""tools/plot_cue_sweeps.py: reads plastix evaluate --sweep --json output, tabulates with group means, plots."""
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("plot_cue_sweeps", Path(__file__).parents[2] / "tools" / "plot_cue_sweeps.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def test_table_means_and_plot(tmp_path, capsys):
    for i, (a, b) in enumerate(((0.9, 0.6), (0.8, 0.5))):
        (tmp_path / f"r{i}.json").write_text(json.dumps({"sweep": {"5": a, "15": b}}))
    tool.main([f"pp, seed 0={tmp_path / 'r0.json'}", f"pp, seed 1={tmp_path / 'r1.json'}",
               "--group", "pp", "--out", str(tmp_path / "s.png")])
    out = capsys.readouterr().out
    assert "| paper | 95.6 | 68.7 |" in out
    assert "| pp, seed 0 | 90.0 | 60.0 |" in out
    assert "85.0 +- 7.1" in out and "55.0 +- 7.1" in out  # mean +- sample sd of two runs
    assert (tmp_path / "s.png").stat().st_size > 1000
    (tmp_path / "bad.json").write_text(json.dumps({"accuracy": 0.5}))
    with pytest.raises(SystemExit, match="no 'sweep'"):
        tool.main([f"x={tmp_path / 'bad.json'}", "--out", str(tmp_path / "t.png")])
