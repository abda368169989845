"""``compile(graph, jit=True)``: torch.compile'd chunks of steps give the eager results (issue 4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from plastix.backends.torch import compile
from plastix.ir import SynapticQ
from plastix.ir.examples import cue_association_net

from .helpers import harness
from .test_batching_and_grad import cue_inputs, small_cue_net


def _loss_and_grads(net, xs):  # noqa: ANN001
    out, state = net.run(xs)
    loss = out["action"].mean() + state.projs["cues_to_hidden"].rule.w.square().mean()
    grads = torch.autograd.grad(loss, list(net.params.values()), allow_unused=True)
    return out["action"].detach(), state.projs["cues_to_hidden"].rule.w.detach(), grads


def _assert_same(g, xs, chunk):  # noqa: ANN001
    eager, jit = compile(g), compile(g, jit=True, jit_chunk=chunk)
    o_e, w_e, g_e = _loss_and_grads(eager, xs)
    counters.clear()
    o_j, w_j, g_j = _loss_and_grads(jit, xs)
    assert jit.jit, "the compiled path fell back to eager"
    assert counters["stats"]["unique_graphs"] == 1  # one compile for the whole run (no per-chunk recompiles)
    _loss_and_grads(jit, xs)
    assert counters["stats"]["unique_graphs"] == 1  # a second run reuses it
    assert o_e.sum() > 0
    assert torch.equal(o_e, o_j)
    torch.testing.assert_close(w_j, w_e, rtol=1e-5, atol=1e-6)
    moved = 0
    for name, a, b in zip(eager.params.keys(), g_e, g_j):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
            moved += int(a.abs().sum() > 0)
    assert moved >= 5  # gradients reach weights, neuron constants and rule coefficients


def test_jit_matches_eager_outputs_state_and_gradients():
    # T = 5 with chunks of 2: two compiled chunks and one eager remainder step
    xs = {k: v.float() for k, v in cue_inputs(5, 1, 3).items()}
    _assert_same(small_cue_net(), xs, chunk=2)


@pytest.mark.slow
def test_jit_matches_eager_on_the_cue_network():
    g = torch.Generator().manual_seed(0)
    xs = {"cues": (torch.rand(64, 1, 8, 20, generator=g) < 0.3).float(), "learning_signal": torch.zeros(64, 1, 8, 2)}
    _assert_same(cue_association_net(), xs, chunk=8)


@pytest.mark.parametrize("kind", ["oja", "bcm"])
def test_jit_matches_eager_for_spikepropamine_rules(kind):
    """NDP-Oja / NDP-BCM compiled give the eager spikes, traces and gradients, per batch element (B = 3):
    both compute W x + (alpha E) x; eager runs rules.matvec's Function and E's lerp, compiled chunks the
    plain products and (1 - eta) E + eta hebb."""
    from plastix.ir import BCM, Oja

    from .helpers import N_POST, N_PRE, harness_inputs, to_torch

    rng = np.random.default_rng(2)
    kw = dict(eta=0.3, alpha=rng.uniform(-0.3, 0.3, (N_POST, N_PRE)), clip=0.5, modulator="m")
    rule = Oja(**kw) if kind == "oja" else BCM(eta_phi=0.2, psi=0.1, **kw)
    g = harness(rule, mod_size=N_POST, w0=rng.uniform(0.5, 1.5, (N_POST, N_PRE)))
    xs = {k: v.float().unsqueeze(1) for k, v in to_torch(harness_inputs(7, mod_rows=N_POST, p=0.5, B=3)).items()}

    def run(net):  # noqa: ANN001
        out, state = net.run(xs)
        loss = out["post"].mean() + state.projs["plastic"].rule.e.square().mean()
        grads = torch.autograd.grad(loss, list(net.params.values()), allow_unused=True)
        return out["post"].detach(), state.projs["plastic"].rule.e.detach(), grads

    eager, jit = compile(g), compile(g, jit=True, jit_chunk=3)
    o_e, e_e, g_e = run(eager)
    o_j, e_j, g_j = run(jit)
    assert jit.jit, "the compiled path fell back to eager"
    assert o_e.sum() > 0 and e_e.abs().sum() > 0
    assert torch.equal(o_e, o_j)
    torch.testing.assert_close(e_j, e_e, rtol=1e-5, atol=1e-6)
    for name, a, b in zip(eager.params.keys(), g_e, g_j):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert g_e[list(eager.params.keys()).index("plastic/rule/alpha")].abs().sum() > 0


def test_jit_falls_back_for_step_dependent_rules():
    q = SynapticQ(q_table=np.random.default_rng(0).normal(0, 1, (81, 3)), step=0.05, epsilon=0.0)
    with pytest.warns(RuntimeWarning, match="synaptic_q"):
        net = compile(harness(q), jit=True)
    assert not net.jit


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_jit_chunk_is_validated(chunk):  # noqa: ANN001
    with pytest.raises(ValueError, match="jit_chunk"):
        compile(small_cue_net(), jit=True, jit_chunk=chunk)


def test_jit_rejects_fixed_precision_and_reward():
    with pytest.raises(ValueError, match="jit=True"):
        compile(small_cue_net(), precision="fixed", jit=True)
    net = compile(small_cue_net(), jit=True)
    with pytest.raises(ValueError, match="reward"):
        net.run({k: v.float() for k, v in cue_inputs(2, 1, 1).items()}, reward=1.0)


def test_jit_compiler_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, **kwargs):  # noqa: ANN001, ANN003, ARG001
        def call(*args):  # noqa: ANN002
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    xs = {k: v.float() for k, v in cue_inputs(6, 1, 2).items()}
    net = compile(small_cue_net(), jit=True, jit_chunk=4)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out, state = net.run(xs)
    assert not net.jit
    ref, ref_state = compile(small_cue_net()).run(xs)
    assert torch.equal(out["action"], ref["action"]) and state.t == ref_state.t == 6
