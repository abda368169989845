"""Keeps tools/tmaze_learner_score.py from rotting: the scripted learner's score on one preset."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "tmaze_learner_score.py"


def test_the_learner_score_tool_reports_a_learnt_assignment():
    spec = importlib.util.spec_from_file_location("tmaze_learner_score", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.score("reduced", 36, seed=2)
    assert r["episodes"] == 36 and r["worst_assignment"] > 50 and r["mean"] > 55
    assert 1 <= r["known_after_median"] <= r["known_after_max"] <= 40
