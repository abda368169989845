"""Hardware-aware training support: engine-representable projections (numpy) and their torch
straight-through twins; a projected per-post three-factor model lowers to the learning engine."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.backends import hardware_aware as hw
from plastix.backends.learning_engine import EXCITATORY, INHIBITORY, MIXED, engine_rule, literal_terms
from plastix.backends.torch import hardware_aware as ste
from plastix.ir import EligibilityTrace, GraphBuilder, ModulationMode, PairSTDP, ThreeFactor


def test_literals_are_lava_constants_and_nearest():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-2500, 2500, 4000), rng.uniform(-1, 1, 4000), rng.uniform(-0.02, 0.02, 500),
                        [0.0, 2 ** -8, 2031.9, 1024.0, -2048.0]])
    p = hw.project_literal(x)
    assert all(literal_terms(float(v)) is not None for v in p)
    np.testing.assert_array_equal(hw.project_literal(p), p)  # idempotent
    inside = np.abs(x) <= hw.LITERAL_MAX
    step = np.maximum(2.0 ** -7, 2.0 ** (np.floor(np.log2(np.maximum(np.abs(x), 1e-300))) - 6))
    assert np.all(np.abs(p - x)[inside] <= step[inside] / 2 + 1e-12)
    for c in (0.1, 2 ** 9 + 1, 2 ** -8):
        assert literal_terms(c) is None


def test_other_projections_are_representable():
    a = hw.project_trace_decay([0.05, 0.5, 0.9, 0.999999])
    tau = -1 / np.log(a)
    np.testing.assert_allclose(tau, np.round(tau), atol=1e-9)
    assert np.round(tau).min() == 1 and np.round(tau).max() == 255
    np.testing.assert_array_equal(hw.project_impulse([0.2, 16.4, 300]), [1, 16, 127])
    np.testing.assert_array_equal(hw.project_plastic_weight([-300, -3.2, 3.6, 300], MIXED), [-256, -4, 4, 254])
    np.testing.assert_array_equal(hw.project_plastic_weight([-3, 3.6, 300], EXCITATORY), [0, 4, 255])
    np.testing.assert_array_equal(hw.project_plastic_weight([-300, 3.6], INHIBITORY), [-255, 0])
    from plastix.backends.quantize import dense_to_fixed

    w = np.random.default_rng(1).normal(0, 0.3, (5, 7))
    q = hw.project_dense_weight(w)
    d = dense_to_fixed("w", q)  # representable: no error
    assert d.weight_exp < 0 and np.abs(q - w).max() <= 2.0 ** d.weight_exp


@pytest.mark.parametrize("fn,np_fn,args", [
    (ste.literal, hw.project_literal, ()), (ste.trace_decay, hw.project_trace_decay, ()),
    (ste.impulse, hw.project_impulse, ()), (ste.plastic_weight, hw.project_plastic_weight, (MIXED,)),
    (ste.plastic_weight, hw.project_plastic_weight, (INHIBITORY,)), (ste.dense_weight, hw.project_dense_weight, ()),
    (ste.decay12, hw.project_decay12, (1, 4096)), (ste.multiple, hw.project_multiple, (1 / 64,))])
def test_straight_through_values_equal_the_numpy_projection_and_gradients_pass(fn, np_fn, args):
    rng = np.random.default_rng(2)
    base = rng.uniform(0.01, 0.99, 64) if fn in (ste.trace_decay, ste.decay12) else rng.normal(0, 40, 64)
    x = torch.tensor(base, dtype=torch.float64, requires_grad=True)
    y = fn(x, *args)
    np.testing.assert_array_equal(y.detach().numpy(), np_fn(base, *args))
    assert not np.array_equal(y.detach().numpy(), base), "nothing was projected: a weak test"
    g = torch.linspace(-1, 1, 64, dtype=torch.float64)
    (y * g).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), g.numpy())


def _cue_like(scale: float = 1.0):
    """A small per-post three-factor eligibility model in (almost) Loihi units."""
    rng = np.random.default_rng(3)
    b = GraphBuilder(seed=3)
    x, s = b.input("cues", 6), b.input("signal", 2)
    h = b.cuba_lif("hidden", 5, du=0.2, dv=0.1, vth=200.3 * scale)
    nm = b.cuba_lif("nm", 4, du=0.2, dv=0.1, vth=100)
    b.connect(s, nm, weight=rng.normal(60, 10, (4, 2)))
    b.modulator("dopamine", nm, 5, weight=rng.uniform(0, 0.4, (5, 4)))
    stdp = PairSTDP(eta_plus=0.07, eta_minus=0.05, decay_pre=0.9, decay_post=0.85, beta=15.6,
                    trace_includes_spike=True)
    rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.93), modulator="dopamine",
                       mode=ModulationMode.PER_POST)
    b.connect(x, h, weight=rng.normal(20, 8, (5, 6)), rule=rule, name="plastic")
    return b.build(outputs=[h])


def test_project_to_engine_gives_a_graph_the_engine_lowers_in_fixed_point():
    from plastix.backends.lava.plan import make_plan
    from plastix.backends.torch import FixedNetwork

    g = _cue_like()
    found = {v.where for v in hw.engine_violations(g)}
    base = "plastic.rule.base.base"
    assert {f"{base}.eta_plus", f"{base}.eta_minus", f"{base}.decay_pre", f"{base}.decay_post", f"{base}.beta",
            "plastic.rule.base.gamma", "plastic.weight", "hidden.du", "hidden.vth", "dopamine.weight"} <= found
    with pytest.raises(ValueError):
        FixedNetwork(g)
    p = hw.project_to_engine(g)
    assert hw.engine_violations(p) == []
    form, why = engine_rule(p, p.projection("plastic"))
    assert form is not None and form.kind == "3f" and form.third_shift == 5 + form.extra, why
    FixedNetwork(p)
    assert make_plan(p, "fixed").projs["plastic"].how == "learning engine"
    # structure is reported, not rounded away
    m = p.modulator("dopamine")
    bad = p.replace(modulators=(m.replace(activation="tanh"),))
    [v] = [v for v in hw.engine_violations(bad) if v.where == "plastic.rule"]
    assert v.max_change is None and "tanh" in v.why
    pr = p.projection("plastic")
    stdp = pr.rule.base.base.replace(trace_includes_spike=False)
    approx = p.replace(projections=(pr.replace(rule=pr.rule.replace(base=pr.rule.base.replace(base=stdp))),))
    [v] = hw.engine_violations(approx)
    assert v.where == "plastic.rule" and "trace_includes_spike" in v.why
