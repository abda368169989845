"""The ``make demo`` code path on a shortened config: train, export, torch vs Lava, plots."""
import json

import torch

from plastix.demo import run_demo


def test_demo_pipeline_on_a_tiny_config(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_demo(tmp_path, iterations=2, problems=2, start=None, n_hidden=8, n_mod=8, batch=4,
                     eval_problems=4, timing=(6, 4, 6, 4))
    finally:
        torch.set_num_threads(threads)
    assert s["train"]["iterations"] == 2 and s["problems"] == 2
    assert 0.0 <= s["accuracy_torch"] <= 1.0
    # float Lava emulation of the same episodes: the same decisions as torch
    assert s["agreement_decision"] == 1.0 and abs(s["accuracy_lava"] - s["accuracy_torch"]) <= 1e-9
    for f in ("model.plx", "model.nir", "raster.png", "weight_change.png", "summary.json", "train/metrics.jsonl"):
        assert (tmp_path / f).exists(), f
    assert json.loads((tmp_path / "summary.json").read_text())["problems"] == 2
