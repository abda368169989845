"""The ``make demo`` code path on a shortened config: hardware-aware training, export in Loihi
units, torch (float and fixed point) vs Lava's learning engine in fixed point, plots."""
import json

import torch

from plastix.demo import SHIPPED_MODEL, run_demo


def test_demo_pipeline_on_a_tiny_config(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_demo(tmp_path, iterations=2, problems=2, start=None, n_hidden=8, n_mod=8, batch=4,
                     eval_problems=4, timing=(6, 4, 6, 4), n_cues=3)
    finally:
        torch.set_num_threads(threads)
    assert s["train"]["iterations"] == 2 and s["problems"] == 2 and s["precision"] == "fixed"
    assert s["lowering"]["cues_to_hidden"]["how"] == "learning engine"
    assert 0.0 <= s["accuracy_torch_float"] <= 1.0
    # Lava's learning engine in fixed point runs exactly what the torch fixed mode runs
    assert s["identical_spike_trains"] == 1.0 and s["accuracy_lava"] == s["accuracy_torch"]
    for f in ("model.plx", "model.nir", "raster.png", "weight_change.png", "summary.json", "train/metrics.jsonl"):
        assert (tmp_path / f).exists(), f
    assert json.loads((tmp_path / "summary.json").read_text())["problems"] == 2


def test_the_shipped_model_is_in_learning_engine_form():
    import plastix.ir as ir
    from plastix.backends.hardware_aware import engine_violations
    from plastix.trainer.algorithms.hardware_aware import LoihiUnits, deployable

    graph = ir.load(SHIPPED_MODEL)
    assert engine_violations(deployable(graph, LoihiUnits.of(graph))) == []
