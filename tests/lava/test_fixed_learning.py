"""Fixed-point learning: the torch fixed mode vs Lava ``fixed_pt`` (LearningDense, bit-approximate
model), bit for bit: spikes, final weights and eligibility tags, for Loihi 2F / 3F rule strings and
the IR's STDP rules that the Lava backend lowers onto the learning engine (issues #4, #5)."""
from __future__ import annotations

import numpy as np
import pytest

from plastix.ir import EligibilityTrace, GraphBuilder, LoihiRule, PairSTDP, ThreeFactor
from plastix.ir.loihi_expr import lava_products

from .conftest import spikes

T = 250


def _graph(variant: str, seed: int = 3, mod_weight: float = 3.0):
    """Random small net x(6) -> h(5, plastic) -> o(3), integer weights, reward -> modulator."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(seed=seed)
    x = b.input("x", 6)
    r = b.input("reward", 1)
    h = b.cuba_lif("h", 5, du=1024 / 4096, dv=512 / 4096, vth=250)
    o = b.cuba_lif("o", 3, du=1024 / 4096, dv=512 / 4096, vth=150)
    b.modulator("m", r, 1, weight=np.array([[mod_weight]]))
    if variant == "2f":
        rule = LoihiRule(dw="2^-3*x1*y0 - 5*2^-5*y1*x0 - y0*w*2^-6", x1_impulse=20, x1_tau=8, y1_impulse=18.5, y1_tau=6,
                         rng_seed=5)
    elif variant == "2f_epoch3":  # repeated spikes within an epoch, x2 trace, weight-dependent term
        rule = LoihiRule(dw="2^-4*x1*y0 - 3*2^-4*y1*x0 + 2^-4*x2*y0 - u0*(w + 2)*2^-6", x1_impulse=20.3, x1_tau=8,
                         x2_impulse=6.7, x2_tau=20, y1_impulse=18.5, y1_tau=6, t_epoch=3, rng_seed=11)
    elif variant == "3f":
        rule = LoihiRule(dw="u0*t*y2*2^-2", dt="2^-2*x1*y0 - 2^-3*y1*x0 - u0*t*2^-2", x1_impulse=20, x1_tau=8,
                         y1_impulse=18, y1_tau=6, modulator="m", rng_seed=7)
    elif variant == "3f_epoch2":
        rule = LoihiRule(dw="u1*t*y2*2^-1 + y0*sgn(t)*2^-4", dt="2^-2*x1*y0 - 2^-3*y1*x0 - u1*t*2^-2",
                         x1_impulse=20, x1_tau=8, y1_impulse=18, y1_tau=6, modulator="m", rng_seed=9, t_epoch=2)
    elif variant == "pair_stdp":
        rule = PairSTDP(eta_plus=2.0 ** -3, eta_minus=5 * 2.0 ** -5, decay_pre=0.8, decay_post=0.7, beta=16.0)
    else:  # global three-factor STDP with eligibility
        stdp = PairSTDP(eta_plus=2.0 ** -2, eta_minus=2.0 ** -3, decay_pre=0.8, decay_post=0.7, beta=16.0)
        rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.75), modulator="m")
    b.connect(x, h, weight=rng.integers(-8, 30, (5, 6)).astype(float), rule=rule, name="plastic")
    b.connect(h, o, weight=rng.integers(-5, 40, (3, 5)).astype(float), name="h_o")
    return b.build(outputs=[o, h])


def _inputs(reward: np.ndarray | None = None) -> dict:
    if reward is None:
        reward = np.zeros((T, 1))
        reward[60:120] = 1
        reward[170:200] = spikes(30, 1, p=0.5, seed=13)
    return {"x": spikes(T, 6, p=0.3, seed=11), "reward": reward}


def _torch_run(g, inp: dict, P: int = 1, B: int = 1):
    import torch

    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip

    net = torch_backend.compile(g, precision="fixed")
    res, state = net.run({k: torch.as_tensor(v).reshape(T, 1, 1, -1).expand(T, P, B, -1) for k, v in inp.items()})
    return res, state


VARIANTS = ["2f", "2f_epoch3", "3f", "3f_epoch2", "pair_stdp", "three_factor_stdp"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_fixed_learning_bit_exact_vs_lava(lava, variant):
    g = _graph(variant)
    assert lava.support(g, "fixed")["rules"]["plastic"]["how"] == "learning engine"
    inp = _inputs()
    net = lava.compile(g, "fixed", timeout=120)
    out = net.run(inp, T)
    res, state = _torch_run(g, inp)
    for name in ("h", "o"):
        assert 0.05 < out[name].mean() < 0.95, f"{name}: spike rate {out[name].mean():.2f} makes a weak test"
        np.testing.assert_array_equal(out[name], res[name].numpy().reshape(T, -1), err_msg=f"{variant}: spikes {name}")
    rs = state.projs["plastic"].rule
    w0 = np.asarray(g.projection("plastic").weight)
    assert np.abs(net.weights()["plastic"] - w0).max() >= 4, "no learning: the test would be weak"
    np.testing.assert_array_equal(net.weights()["plastic"], rs.w[0, 0].numpy(), err_msg=f"{variant}: weights")
    if "plastic.tag_1" in net.state():
        np.testing.assert_array_equal(net.state()["plastic.tag_1"], rs.tag[0, 0].numpy(), err_msg=f"{variant}: tags")


def test_three_factor_weights_move_only_with_the_modulator(lava):
    """Global three-factor STDP (eligibility tag, dw = t y2): without reward the weights stay at
    their (LSB-truncated) initial values in both backends; with reward they move only on steps
    where the third factor is delivered, identically in both."""
    import torch

    g = _graph("three_factor_stdp", mod_weight=4.0)
    w_init = np.asarray(g.projection("plastic").weight).astype(np.int64) >> 1 << 1  # LearningDense truncation
    silent = _inputs(np.zeros((T, 1)))
    net = lava.compile(g, "fixed", timeout=120)
    net.run(silent, T)
    _, st = _torch_run(g, silent)
    np.testing.assert_array_equal(net.weights()["plastic"], w_init)
    np.testing.assert_array_equal(st.projs["plastic"].rule.w[0, 0].numpy(), w_init)
    assert np.abs(net.state()["plastic.tag_1"]).max() > 0, "no eligibility: the test would be weak"

    reward = np.zeros((T, 1))
    reward[100:130] = 1
    inp = _inputs(reward)
    net.run(inp, T)
    res, st = _torch_run(g, inp)
    np.testing.assert_array_equal(net.weights()["plastic"], st.projs["plastic"].rule.w[0, 0].numpy())
    assert np.abs(net.weights()["plastic"] - w_init).max() >= 4
    # step by step in torch: a weight change needs y2 != 0, i.e. reward column c acts at step c + 1
    import plastix.backends.torch as torch_backend

    m = torch_backend.compile(g, precision="fixed")
    state, changed = m.init_state(1, 1), []
    for t in range(T):
        w_before = state.projs["plastic"].rule.w.clone()
        _, state = m.step({k: torch.as_tensor(v[t]).reshape(1, 1, -1) for k, v in inp.items()}, state)
        if not torch.equal(w_before, state.projs["plastic"].rule.w):
            changed.append(t)
    assert changed and set(changed) <= set(range(101, 131)), changed


@pytest.mark.parametrize("text", ["2^-6*x1*y0 - 2^-6*y1*x0", "u0*t*y2", "(1)*2^-2*x1*y0 - (1)*2^-3*y1*x0 - u0*t*(1)*2^-1",
                                  "(-3)*2^-2*x1*y0", "4*x1*y0", "2^2*x1*y0", "16*x0*y1 + 12*y0*x2",
                                  "x0*(w+3)*y1 - y0*sgn(w+1)*2^-1", "x0*y0*x1", "3*2^-4*u1*w"])
def test_lava_products_equal_lavas_product_series(lava, text):
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule

    rule = Loihi2FLearningRule(dw=text, x1_impulse=1, x1_tau=2, y1_impulse=1, y1_tau=2, rng_seed=0)
    theirs = [(p.dependency, p.decimate_exponent, p.s_mantissa, p.s_exp,
               tuple((f.state_var, f.const, f.is_sgn) for f in p.factors))
              for p in rule.active_product_series["dw"].products]
    ours = [(p.dependency, p.decimate, p.mantissa, p.exp, tuple(tuple(f) for f in p.factors)) for p in lava_products(text)]
    assert ours == theirs


def test_support_fixed_reports_float_graphs_after_quantisation(lava):
    """support(graph) defaults to fixed point: a float graph is reported as quantize_graph makes it."""
    b = GraphBuilder(seed=0)
    x = b.input("x", 3)
    h = b.cuba_lif("h", 2, du=0.2, dv=0.1, vth=1.0)
    b.connect(x, h, weight=np.full((2, 3), 0.37), rule=PairSTDP(eta_plus=0.1, eta_minus=0.1, decay_pre=0.8,
                                                                  decay_post=0.8))
    g = b.build(outputs=[h])
    with pytest.raises(ValueError):
        lava.compile(g, "fixed")
    rep = lava.support(g)
    assert "not representable" in rep["quantized"] and "h.du" in rep["quantized"]
    assert rep["populations"]["h"]["how"] == "native"
    assert rep["rules"]["x_to_h"]["how"] == "host-emulated"
    assert "quantized" not in lava.support(g, "float")
