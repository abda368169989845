"""(P, B) batching invariance, per-individual parameters, gradients, export and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import plastix.backends.torch.network as network
from plastix.backends.torch import compile, export_graph
from plastix.ir import (EligibilityTrace, Graph, GraphBuilder, HebbianDecay, Input, LIReadout, ModulationMode, PairSTDP, Projection,
                        ThreeFactor, UnsupportedKindError)

from .helpers import harness, harness_inputs, to_torch


def small_cue_net():
    """A small cue-association-shaped net (6 -> 8 -> 2, 2 x 5 modulatory LIF, per-pre three-factor
    eligibility STDP) with scales that keep every population active (independent of the example's)."""
    b = GraphBuilder(seed=3)
    x, sig = b.input("cues", 6), b.input("learning_signal", 2)
    h = b.cuba_lif("hidden", 8, du=0.2, dv=0.1, vth=1.0)
    y = b.cuba_lif("action", 2, du=0.2, dv=0.1, vth=1.0)
    m1, m2 = b.cuba_lif("nm1", 5, du=0.2, dv=0.1, vth=1.0), b.cuba_lif("nm2", 5, du=0.2, dv=0.1, vth=1.0)
    for src in (x, sig, h):
        b.connect(src, m1, scale=2.0)
    b.connect(m1, m2, scale=2.0)
    b.modulator("dopamine", m2, size=6, channels=2, activation="tanh")
    stdp = PairSTDP(eta_plus=np.full((8, 6), 0.05), eta_minus=np.full((8, 6), 0.05), decay_pre=0.9, decay_post=0.9)
    rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.95), modulator="dopamine", mode=ModulationMode.PER_PRE)
    b.connect(x, h, p=0.5, inhibitory=0.2, scale=3.0, rule=rule)
    b.connect(h, h, p=0.5, inhibitory=0.2, scale=1.0)
    b.connect(h, y, scale=2.0)
    return b.build(outputs=[y])


def cue_inputs(T, P, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"cues": (torch.rand(T, P, B, 6, generator=g) < 0.3).double(),
            "learning_signal": (torch.rand(T, P, B, 2, generator=g) < 0.1).double()}


def test_batched_population_equals_single_runs():
    net = compile(small_cue_net(), dtype=torch.float64)
    T, P, B = 30, 2, 3
    xs = cue_inputs(T, P, B)
    g = torch.Generator().manual_seed(5)
    params = {k: net.params[k].detach() * (1 + 0.2 * torch.randn(P, *net.params[k].shape, generator=g, dtype=torch.float64))
              for k in ("hidden_to_action/weight", "cues_to_hidden/rule/base/base/eta_plus", "hidden/vth",
                        "cues_to_hidden/weight", "dopamine/weight", "cues_to_hidden/rule/base/gamma")}
    params["cues_to_hidden/rule/base/gamma"] = params["cues_to_hidden/rule/base/gamma"].clamp(0, 1)
    with torch.no_grad():
        out, state = net.run(xs, params=params)
        assert out["action"].shape == (T, P, B, 2)
        assert out["action"].sum() > 0
        for p in range(P):
            for b in range(B):
                o1, s1 = net.run({k: v[:, p:p + 1, b:b + 1] for k, v in xs.items()},
                                 params={k: v[p:p + 1] for k, v in params.items()})
                torch.testing.assert_close(o1["action"][:, 0, 0], out["action"][:, p, b], rtol=0, atol=0)
                torch.testing.assert_close(s1.projs["cues_to_hidden"].rule.w[0, 0], state.projs["cues_to_hidden"].rule.w[p, b])


def test_shared_params_broadcast_over_population_and_tbsize_inputs():
    net = compile(small_cue_net(), dtype=torch.float64)
    xs = cue_inputs(10, 1, 4)
    with torch.no_grad():
        o_a, _ = net.run({k: v[:, 0] for k, v in xs.items()})  # (T, B, size) inputs
        o_b, _ = net.run(xs)
        state = net.init_state(3, 4)
        o_c, _ = net.run(xs, state)  # P = 3 individuals sharing params and inputs
    torch.testing.assert_close(o_a["action"], o_b["action"])
    for p in range(3):
        torch.testing.assert_close(o_c["action"][:, p], o_b["action"][:, 0])


def test_training_rule_coefficients_lowers_loss():
    """BPTT through LIF and three-factor eligibility STDP: learn eta+/eta-/gamma to push the
    hidden activity of a tiny net towards a target rate."""
    torch.manual_seed(0)
    net = compile(small_cue_net(), dtype=torch.float64)
    keys = ["cues_to_hidden/rule/base/base/eta_plus", "cues_to_hidden/rule/base/base/eta_minus", "dopamine/weight"]
    opt = torch.optim.Adam([net.params[k] for k in keys], lr=0.01)
    xs = cue_inputs(30, 1, 4, seed=1)

    def loss_fn():
        out, state = net.run(xs)
        w = state.projs["cues_to_hidden"].rule.w
        return ((w - 0.3) ** 2).mean() + 0.01 * out["action"].mean()

    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        assert all(net.params[k].grad is not None and torch.isfinite(net.params[k].grad).all() for k in keys)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def smooth_graph():
    """Graded input -> LI readout through a DP Hebbian projection: everything is smooth."""
    rng = np.random.default_rng(0)
    rule = HebbianDecay(eta=rng.uniform(0.1, 0.4, (3, 4)), alpha=rng.uniform(-0.5, 0.5, (3, 4)))
    return Graph(populations=(Input(name="x", size=4), LIReadout(name="r", size=3, du=0.3, dv=0.2, bias=0.1)),
                 projections=(Projection(name="p", pre="x", post="r", weight=rng.normal(0, 0.5, (3, 4)), rule=rule),),
                 outputs=("r",))


def test_finite_differences_match_autograd():
    net = compile(smooth_graph(), dtype=torch.float64)
    xs = {"x": torch.as_tensor(np.random.default_rng(1).uniform(0, 1, (12, 1, 2, 4)))}

    def loss():
        out, _ = net.run(xs)
        return (out["r"] ** 2).sum() + out["r"][-1].sum()

    net.zero_grad()
    loss().backward()
    for key in ("p/weight", "p/rule/eta", "p/rule/alpha", "r/du", "r/dv", "r/bias"):
        prm = net.params[key]
        grad = prm.grad.clone()
        for idx in [(0,), (1,)] if prm.dim() == 1 else ([()] if prm.dim() == 0 else [(0, 0), (2, 3)]):
            eps = 1e-6
            with torch.no_grad():
                prm[idx] += eps
                up = loss().item()
                prm[idx] -= 2 * eps
                down = loss().item()
                prm[idx] += eps
            fd = (up - down) / (2 * eps)
            assert abs(fd - grad[idx].item()) <= 1e-5 * max(1.0, abs(fd)), (key, idx, fd, grad[idx].item())


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "exponential"])
def test_surrogates_exact_spikes_and_gradients(surrogate):
    g = small_cue_net()
    xs = cue_inputs(20, 1, 2)
    ref, _ = compile(g, dtype=torch.float64).run(xs)
    net = compile(g, dtype=torch.float64, surrogate=surrogate)
    out, _ = net.run(xs)
    assert set(out["action"].unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(out["action"], ref["action"])
    out["action"].sum().backward()
    assert net.params["hidden_to_action/weight"].grad.abs().sum() > 0


def test_export_writes_trained_values_back():
    net = compile(small_cue_net())
    with torch.no_grad():
        net.params["hidden_to_action/weight"].mul_(2.0)
        net.params["cues_to_hidden/rule/base/gamma"].fill_(0.5)
    g2 = export_graph(net)
    np.testing.assert_allclose(g2.projection("hidden_to_action").weight,
                               net.params["hidden_to_action/weight"].detach().numpy(), rtol=1e-6)
    assert float(g2.projection("cues_to_hidden").rule.base.gamma) == 0.5
    # round trip: the exported graph compiles to the same parameters
    net2 = compile(g2)
    for k in net.params:
        torch.testing.assert_close(net2.params[k], net.params[k])
    # one individual of a population
    g3 = export_graph(net, {"hidden/vth": torch.full((8,), 2.0)})
    np.testing.assert_array_equal(g3.population("hidden").vth, np.full(8, 2.0))


def test_unsupported_kind(monkeypatch):
    monkeypatch.delitem(network.LOWERING, PairSTDP)
    rule = PairSTDP(eta_plus=0.1, eta_minus=0.1, decay_pre=0.5, decay_post=0.5)
    with pytest.raises(UnsupportedKindError, match="pair_stdp.*torch"):
        compile(harness(rule))


def test_unsupported_population_kind(monkeypatch):
    monkeypatch.delitem(network.POPULATIONS, LIReadout)
    with pytest.raises(UnsupportedKindError, match="'li'"):
        compile(smooth_graph())


def test_clear_input_errors():
    net = compile(small_cue_net())
    xs = cue_inputs(5, 1, 1)
    bad = dict(xs)
    bad["cues"] = xs["cues"].clone()
    bad["cues"][2, 0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="'cues'.*NaN"):
        net.run(bad)
    with pytest.raises(KeyError, match="learning_signal"):
        net.run({"cues": xs["cues"]})
    with pytest.raises(ValueError, match="'cues'"):
        net.run({"cues": xs["cues"][..., :3], "learning_signal": xs["learning_signal"]})
    with pytest.raises(KeyError, match="unknown parameter 'nope'"):
        net.run(xs, params={"nope": torch.zeros(1)})
    with pytest.raises(ValueError, match="hidden/vth"):
        net.run(xs, params={"hidden/vth": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="surrogate"):
        compile(small_cue_net(), surrogate="nope")


def test_three_factor_per_pre_gradient_reaches_modulator():
    stdp = PairSTDP(eta_plus=0.05, eta_minus=0.04, decay_pre=0.8, decay_post=0.8)
    rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.9), modulator="m", mode=ModulationMode.PER_PRE)
    g = harness(rule, mod_size=4, mod_channels=2)
    net = compile(g, dtype=torch.float64)
    xs = to_torch(harness_inputs(20, mod_rows=8))
    _, state = net.run(xs)
    state.projs["plastic"].rule.w.sum().backward()
    assert net.params["m/weight"].grad.abs().sum() > 0
    assert net.params["plastic/rule/base/gamma"].grad.abs().sum() > 0


def test_forced_outputs_are_straight_through():
    """``run(force=...)``: forcing a population with its own outputs changes nothing; forcing other
    spikes makes them the forward values (downstream follows them) while gradients still reach the
    weights through the population's own surrogate; bad names and shapes are clear errors."""
    g = small_cue_net().replace(outputs=("hidden", "action", "nm2"))
    net = compile(g)
    gen = torch.Generator().manual_seed(0)
    T, B = 40, 3
    xs = {"cues": (torch.rand(T, B, 6, generator=gen) < 0.4).float(), "learning_signal": torch.zeros(T, B, 2)}
    free, _ = net.run(xs)
    same, _ = net.run(xs, force={"hidden": free["hidden"].detach()})
    assert all(torch.equal(free[k], same[k]) for k in free)
    other = (torch.rand(T, 1, B, 8, generator=gen) < 0.5).float()
    forced, _ = net.run(xs, force={"hidden": other})
    assert torch.equal(forced["hidden"], other) and not torch.equal(forced["action"], free["action"])
    forced["action"].sum().backward()
    assert net.params["cues_to_hidden/weight"].grad.abs().sum() > 0
    with pytest.raises(KeyError, match="cues"):
        net.run(xs, force={"cues": xs["cues"]})
    with pytest.raises(ValueError, match="force 'hidden'"):
        net.run(xs, force={"hidden": other[:-1]})
