"""Torch fixed-point learning engine without Lava: batching invariance, the integer identities it
relies on (checked against Lava's float formulas), input errors. Bit-exactness against Lava itself
is in tests/lava/test_fixed_learning.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.backends.torch import compile
from plastix.backends.torch.fixed_learning import SYN_SHIFT, _decay_table
from plastix.ir import GraphBuilder, LoihiRule, Oja, UnsupportedKindError

T = 120


def _graph(rule, mask=None, w_hi=30):
    rng = np.random.default_rng(0)
    b = GraphBuilder(seed=0)
    x = b.input("x", 6)
    r = b.input("reward", 1)
    h = b.cuba_lif("h", 4, du=1024 / 4096, dv=512 / 4096, vth=250)
    b.modulator("m", r, 1, weight=np.array([[3.0]]))
    b.connect(x, h, weight=rng.integers(-8, w_hi, (4, 6)).astype(float), rule=rule, name="plastic")
    g = b.build(outputs=[h])
    if mask is not None:
        g = g.replace(projections=tuple(pr.replace(mask=mask) for pr in g.projections))
    return g


RULES = {
    "2f_epoch3": LoihiRule(dw="2^-3*x1*y0 - 5*2^-5*y1*x0 - u1*w*2^-6", x1_impulse=20.3, x1_tau=8, y1_impulse=18.5,
                           y1_tau=6, t_epoch=3, rng_seed=4),
    "3f_epoch2": LoihiRule(dw="u0*t*y2*2^-1", dt="2^-2*x1*y0 - 2^-3*y1*x0 - u0*t*2^-2", x1_impulse=20, x1_tau=8,
                           y1_impulse=18, y1_tau=6, modulator="m", t_epoch=2, rng_seed=9),
}


@pytest.mark.parametrize("name", list(RULES))
def test_batched_run_equals_single_runs(name):
    """(P, B) = (2, 3) different input sequences in one run == six runs of one sequence each."""
    net = compile(_graph(RULES[name]), precision="fixed")
    rng = np.random.default_rng(1)
    x = torch.as_tensor((rng.random((T, 2, 3, 6)) < 0.35).astype(np.float64))
    rew = torch.zeros(T, 2, 3, 1, dtype=torch.float64)
    rew[40:80] = torch.as_tensor((rng.random((40, 2, 3, 1)) < 0.5).astype(np.float64))
    out, st = net.run({"x": x, "reward": rew})
    w = st.projs["plastic"].rule.w
    moved = 0
    for p in range(2):
        for b in range(3):
            o1, s1 = net.run({"x": x[:, p:p + 1, b:b + 1], "reward": rew[:, p:p + 1, b:b + 1]})
            assert torch.equal(o1["h"][:, 0, 0], out["h"][:, p, b])
            assert torch.equal(s1.projs["plastic"].rule.w[0, 0], w[p, b])
            moved += int((w[p, b] != w[0, 0]).any())
    assert moved > 0 and 0.05 < out["h"].float().mean() < 0.95, "batch elements must differ for a real test"


def test_integer_rounding_equals_lavas_float_formulas():
    """Synaptic rounding ``(acc + 127 - floor(128 r)) >> 7`` == Lava's ``floor(acc / 128) +
    (r < (acc / 128) % 1)``; tabulated trace decay == ``floor(v) + (r < v % 1)``, ``v = e^{-1/tau} h``."""
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 15 - 1, 2 ** 15, 5000)
    r = rng.random(5000)
    lava = np.floor(acc / 128) + (r < (acc / 128) % 1)
    ours = (torch.as_tensor(acc) + (2 ** SYN_SHIFT - 1 - torch.as_tensor(np.floor(r * 128).astype(np.int64)))) >> 7
    np.testing.assert_array_equal(ours.numpy(), lava)
    tab = _decay_table([7.3, 0.0])
    h = rng.integers(-128, 128, 1000)
    v = np.exp(-1 / np.array([[7.3]])) * h
    np.testing.assert_array_equal(tab[0, 0][h + 128] + (tab[0, 1][h + 128] > r[:1000]), np.floor(v[0]) + (r[:1000] < v[0] % 1))
    assert not tab[1].any()  # tau = 0: the trace is not decayed but reset


def test_fixed_learning_input_errors():
    with pytest.raises(UnsupportedKindError, match="oja.*host-emulates"):
        compile(_graph(Oja(eta=0.1, alpha=0.5)), precision="fixed")
    with pytest.raises(ValueError, match="-256..255"):
        compile(_graph(RULES["2f_epoch3"], w_hi=400), precision="fixed")
    with pytest.raises(UnsupportedKindError, match="masked"):
        compile(_graph(RULES["2f_epoch3"], mask=np.eye(4, 6, dtype=bool)), precision="fixed")


@pytest.mark.slow
def test_compiled_step_is_bit_identical():
    net = compile(_graph(RULES["3f_epoch2"]), precision="fixed")
    rng = np.random.default_rng(2)
    inp = {"x": torch.as_tensor((rng.random((T, 1, 4, 6)) < 0.35).astype(np.float64)),
           "reward": torch.ones(T, 1, 4, 1, dtype=torch.float64)}
    ref, st_ref = net.run(inp)
    out, st = net.compile_step().run(inp)
    assert torch.equal(ref["h"], out["h"])
    assert torch.equal(st_ref.projs["plastic"].rule.w, st.projs["plastic"].rule.w)
