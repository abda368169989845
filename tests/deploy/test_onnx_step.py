"""ONNX export of one simulation step (plasticity included) against the torch backend, >= 100 steps."""
from __future__ import annotations

import numpy as np
import pytest

from plastix.deploy import check_step, export_step, probe_inputs
from plastix.ir import UnsupportedKindError
from plastix.ir.examples import cue_association_net

from .conftest import static_ff

STEPS = 120
BOUND = 1e-4  # float32 onnxruntime vs float32 torch: different summation orders only


@pytest.mark.parametrize("net", ["static", "plastic"])
def test_onnx_step_matches_torch(net, tmp_path):
    g = static_ff() if net == "static" else cue_association_net()
    path = export_step(g, tmp_path / f"{net}.onnx")
    res = check_step(g, path, probe_inputs(g, STEPS, seed=3))
    print(f"{net}: onnxruntime vs torch over {res['steps']} steps: max abs error {res['max_abs_error']:.3g} "
          f"(outputs), {res['state_max_abs_error']:.3g} (state incl. plastic weights)")
    assert res["steps"] == STEPS and res["output_activity"] > 0
    assert res["max_abs_error"] <= BOUND and res["state_max_abs_error"] <= BOUND


def test_plastic_state_changes_over_the_onnx_run(tmp_path):
    """The exported step carries the plasticity: the weight leaves it returns differ from the initial ones."""
    import onnxruntime as ort

    g = cue_association_net()
    path = export_step(g, tmp_path / "p.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert "next.projs.cues_to_hidden.rule.w" in names
    xs = probe_inputs(g, 60, seed=3)
    from plastix.deploy.onnx_export import initial_state, state_names

    state = list(initial_state(g).values())
    feed_names = ["in_cues", "in_learning_signal"] + state_names(g)
    used = {i.name for i in sess.get_inputs()}
    w0 = state[state_names(g).index("state.projs.cues_to_hidden.rule.w")]
    for t in range(60):
        feed = dict(zip(feed_names, [xs["cues"][t][None, None].astype(np.float32),
                                     xs["learning_signal"][t][None, None].astype(np.float32)] + state))
        res = sess.run(None, {k: v for k, v in feed.items() if k in used})
        state = res[1:]
    w = state[state_names(g).index("state.projs.cues_to_hidden.rule.w")]
    assert np.abs(w - w0).max() > 1e-4


def test_step_counter_or_random_rules_are_refused(synq_net, tmp_path):
    import plastix.ir as ir

    with pytest.raises(UnsupportedKindError, match="epsilon"):
        export_step(ir.load(synq_net), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
