"""Hardware-aware BPTT: the trained model is in learning-engine form, runs in Loihi units with the
same spikes, and runs bit-exactly in fixed point on torch and on Lava."""
import dataclasses

import numpy as np
import pytest
import torch

import plastix.ir as ir
from plastix.backends.hardware_aware import engine_violations
from plastix.backends.lava import support
from plastix.trainer.experiments.bptt import CONFIGS, BPTTJob
from plastix.trainer.experiments.bptt_run import train_bptt
from plastix.trainer.experiments.cue_eval import evaluate_model

ENGINE_KW = dict(iterations=3, batch=4, n_hidden=8, n_mod=8, eval_problems=4, eval_every=2, progress=False,
                 timing=(6, 4, 6, 4), n_cues=3, curriculum=(), hardware_aware=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("hw")
    train_bptt("one_shot_cue", "paper_engine", out, **ENGINE_KW)
    return ir.load(out / "model.plx"), ir.load(out / "model_loihi.plx")


def test_forward_runs_the_engine_values_and_gradients_pass_through():
    cfg = dataclasses.replace(CONFIGS["paper_engine"], **{k: v for k, v in ENGINE_KW.items()
                                                          if k not in ("iterations", "progress")})
    job = BPTTJob(cfg)
    state = job.init_state()
    ov = state.model.overrides()
    w = ov["cues_to_hidden/weight"][0] * state.model.units.scales["hidden"]
    assert torch.allclose(w, w.round(), atol=1e-6)  # integer plastic weights in Loihi units
    state, _ = job.step(state, 0)
    raw = state.model.net.params["cues_to_hidden/weight"]
    assert raw.grad is not None and raw.grad.abs().sum() > 0  # straight through the rounding


def test_trained_model_is_in_engine_form(trained):
    model, loihi = trained
    assert engine_violations(loihi) == []
    rules = support(loihi, "fixed")["rules"]
    assert rules["cues_to_hidden"]["how"] == "learning engine", rules


def test_loihi_units_are_the_same_network(trained):
    """Scaling to Loihi units (powers of two) is exact: in float the training model and the
    deployable model give the same output spikes on the same problems."""
    model, loihi = trained
    a = evaluate_model(model, n_problems=16, seed=3)
    b = evaluate_model(loihi, n_problems=16, seed=3)
    assert a["counts"] == b["counts"]


def test_fixed_point_torch_equals_lava(trained):
    _, loihi = trained
    t = evaluate_model(loihi, n_problems=2, seed=5, precision="fixed")
    lv = evaluate_model(loihi, n_problems=2, seed=5, precision="fixed", backend="lava")
    assert t["counts"] == lv["counts"]
    assert np.isfinite(t["accuracy"])


def test_fixed_in_loop_trains_on_the_fixed_point_run():
    """Hardware in the loop: the forward pass's spikes are the fixed-point run's (so the counts the
    loss sees are the fixed-point counts), and the float surrogate still gives gradients."""
    from plastix.tasks.cue_association import one_shot_cue_problems
    from plastix.trainer.experiments.bptt import task_config

    cfg = dataclasses.replace(CONFIGS["paper_engine"], fixed_in_loop=True,
                              **{k: v for k, v in ENGINE_KW.items() if k not in ("iterations", "progress")})
    model = BPTTJob(cfg).init_state().model
    pr = one_shot_cue_problems(4, task_config(cfg), generator=torch.Generator().manual_seed(1))
    window = model.window(pr)
    spikes = model.fixed_point_spikes(pr.cues, pr.signal)
    counts, outs = model.episode(pr.cues, pr.signal, window, fixed_in_loop=True)
    assert torch.equal(counts, spikes["action"][window].sum(0))
    for name in ("hidden", "nm2"):
        assert torch.equal(outs[name][:, 0], spikes[name])
    free, _ = model.run(pr.cues, pr.signal)
    assert not torch.equal(free["hidden"][:, 0], spikes["hidden"])  # float and fixed runs differ somewhere
    model.loss(counts, pr.test_labels, int(window.sum())).backward()
    raw = model.net.params["cues_to_hidden/weight"]
    assert raw.grad is not None and raw.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="hardware_aware"):
        dataclasses.replace(CONFIGS["paper_engine"], fixed_in_loop=True)
