"""tools/noise_curves.py (issue 20, Fig. 4B-D): one noise-free point per variant, every other point once,
a killed sweep continues without measuring a point twice, and the three panels are drawn."""
import importlib.util
import json
from pathlib import Path

import pytest

import plastix.ir as ir
from plastix.trainer.experiments.locomotion import locomotion_net

_spec = importlib.util.spec_from_file_location("noise_curves", Path(__file__).parents[2] / "tools" / "noise_curves.py")
noise_curves = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noise_curves)


def test_the_sweep_measures_each_point_once_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("gymnasium", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    pytest.importorskip("mujoco", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    model = tmp_path / "np.plx"
    ir.save(locomotion_net("non_plastic", per_input=10, hidden=16, per_action=10, window=5), model)
    monkeypatch.setattr(noise_curves, "STDS", {"friction": (0.0, 0.5), "action": (0.0, 0.5), "observation": (0.0, 0.5)})
    out = tmp_path / "points.jsonl"
    out.write_text(json.dumps({"variant": "np", "noise": "action", "std": 0.5, "episodes": 2, "seed": 3,
                               "mean_return": 1.0, "std_return": 0.0, "steps": 4}) + "\n")  # measured before a kill
    noise_curves.measure({"np": model}, episodes=2, seed=3, out=out, steps=4)
    rows = noise_curves.load(out)
    assert sorted((r["noise"], r["std"]) for r in rows) == [("action", 0.5), ("friction", 0.5), ("none", 0.0),
                                                            ("observation", 0.5)]
    assert all(r["episodes"] == 2 and r["steps"] == 4 for r in rows)
    noise_curves.measure({"np": model}, episodes=2, seed=3, out=out, steps=4)
    assert len(noise_curves.load(out)) == 4
    noise_curves.plot(rows, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_the_table_gives_the_fraction_of_the_noise_free_return_kept():
    rows = [{"variant": "a", "noise": "none", "std": 0.0, "mean_return": 200.0},
            {"variant": "a", "noise": "friction", "std": 0.5, "mean_return": 50.0},
            {"variant": "b", "noise": "none", "std": 0.0, "mean_return": -4.0},
            {"variant": "b", "noise": "action", "std": 1.0, "mean_return": -8.0}]
    lines = noise_curves.table(rows).splitlines()
    assert lines[0].startswith("| variant | none | friction 0.25 / 0.5 / 1 / 2 |")
    a, b = lines[2], lines[3]
    assert a.startswith("| a | 200.0 | - / 50.0 (0.25) / - / - |")
    assert "-8.0 |" in b and "(" not in b  # no fraction of a return that is not positive
