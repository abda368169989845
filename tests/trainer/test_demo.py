"""The ``make demo`` code path on shortened configs: the float M = 5 stage (torch vs Lava float) and the
hardware-aware stage (export in Loihi units, torch vs Lava's learning engine in fixed point), plots."""
import dataclasses
import json

import torch

from plastix.demo import ENGINE_MODEL, M5_MODEL, STAGES, run_demo


def test_demo_pipeline_on_a_tiny_config(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fresh = tuple(dataclasses.replace(s, model=None) for s in STAGES)  # the shipped models' configs, tiny nets
    try:
        s = run_demo(tmp_path, iterations=2, problems=2, stages=fresh, n_hidden=8, n_mod=8, batch=4,
                     eval_problems=4, timing=(6, 4, 6, 4), n_cues=3)
    finally:
        torch.set_num_threads(threads)
    m5, engine = s["m5"], s["engine"]
    assert m5["train"]["iterations"] == 2 and m5["problems"] == 2 and m5["precision"] == "float"
    assert m5["lowering"]["pool_to_hidden"]["how"] != "learning engine"  # the float model runs host-emulated
    # Lava in float runs what torch runs: same spikes and final weights
    assert m5["identical_spike_trains"] == 1.0 and m5["identical_final_weights"] == 1.0
    assert engine["train"]["iterations"] == 2 and engine["problems"] == 2 and engine["precision"] == "fixed"
    assert engine["lowering"]["cues_to_hidden"]["how"] == "learning engine"
    assert 0.0 <= engine["accuracy_torch_float"] <= 1.0
    # Lava's learning engine in fixed point runs exactly what the torch fixed mode runs
    assert engine["identical_spike_trains"] == 1.0 and engine["accuracy_lava"] == engine["accuracy_torch"]
    for stage in ("m5", "engine"):
        for f in ("model.plx", "model.nir", "raster.png", "weight_change.png", "train/metrics.jsonl"):
            assert (tmp_path / stage / f).exists(), (stage, f)
    assert json.loads((tmp_path / "summary.json").read_text())["engine"]["problems"] == 2


def test_the_demo_starts_from_the_shipped_m5_model():
    import plastix.ir as ir

    stage = next(s for s in STAGES if s.name == "m5")
    assert stage.model == M5_MODEL and dict(ir.load(M5_MODEL).metadata)["n_cues"] == 5


def test_the_shipped_model_is_in_learning_engine_form():
    import plastix.ir as ir
    from plastix.backends.hardware_aware import engine_violations
    from plastix.trainer.algorithms.hardware_aware import LoihiUnits, deployable

    graph = ir.load(ENGINE_MODEL)
    assert engine_violations(deployable(graph, LoihiUnits.of(graph))) == []
