"""Synaptic Q on Lava (host-emulated) against the torch backend with exploration on: the ε-greedy
draws come from the rule's counter-based stream (:mod:`plastix.ir.counter_hash`), so both backends
take the same actions: the spikes of every step (which the plastic weights drive) and the final
weights agree. (The Lava process does not expose its Q table.)"""
from __future__ import annotations

import numpy as np
import pytest

from plastix.ir import GraphBuilder, QAggregation, SynapticQ

from .conftest import spikes

T = 120


def _graph(aggregation: QAggregation, epsilon: float):
    rng = np.random.default_rng(5)
    b = GraphBuilder(seed=5)
    x = b.input("x", 5)
    r = b.input("reward", 2)  # channel 0 rewards, channel 1 punishes: sign in {-1, 0, +1}
    h = b.cuba_lif("h", 4, du=0.5, dv=0.5, vth=3.0)
    o = b.cuba_lif("o", 3, du=0.5, dv=0.5, vth=3.0)
    b.modulator("m", r, 1, weight=np.array([[1.0, -1.0]]))
    rule = SynapticQ(q_table=rng.normal(0, 0.5, (81, 3)), epsilon=epsilon, step=0.02, lr=0.3, gamma=0.9,
                     aggregation=aggregation, seed=11, modulator="m")
    b.connect(x, h, weight=rng.normal(0.7, 0.3, (4, 5)), rule=rule, name="plastic")
    b.connect(h, o, weight=rng.normal(0.9, 0.3, (3, 4)), name="h_o")
    return b.build(outputs=[o, h])


def _torch_run(g, x, rew):
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    res, state = torch_backend.compile(g, dtype=torch.float64).run(
        {"x": torch.as_tensor(x).reshape(T, 1, 5), "reward": torch.as_tensor(rew).reshape(T, 1, 2)})
    rule = state.projs["plastic"].rule
    return {k: v.detach().numpy().reshape(T, -1) for k, v in res.items()}, rule.w[0, 0].detach().numpy()


@pytest.mark.parametrize("aggregation", list(QAggregation), ids=[a.value for a in QAggregation])
def test_synaptic_q_with_exploration_matches_torch_step_for_step(lava, aggregation):
    x, rew = spikes(T, 5, p=0.35, seed=21), spikes(T, 2, p=0.4, seed=22)
    g = _graph(aggregation, epsilon=0.3)
    net = lava.compile(g, "float", timeout=90)
    out = net.run({"x": x, "reward": rew}, T)
    spk, w_torch = _torch_run(g, x, rew)
    for name in ("h", "o"):
        assert 0.05 < out[name].mean() < 0.95, f"{name}: spike rate {out[name].mean():.2f} makes a weak test"
        np.testing.assert_array_equal(out[name], spk[name], err_msg=f"spikes of {name}")
    np.testing.assert_allclose(net.weights()["plastic"], w_torch, rtol=1e-12, atol=1e-12)
    # exploration mattered: the greedy-only run ends elsewhere
    _, w_greedy = _torch_run(_graph(aggregation, epsilon=0.0), x, rew)
    assert np.abs(w_greedy - w_torch).max() > 0.05
