"""Host-emulated rules on Lava (float) against the torch backend (float64): same spikes.

Both backends implement the IR equations independently (backends/lava/hostmath.py vs
backends/torch/rules.py, neurons.py); agreement of every spike over a few hundred steps of networks
whose later layers depend on the plastic weights checks the rule math and its timing.
"""
from __future__ import annotations

import numpy as np
import pytest

from plastix.ir import (BCM, ENUCell, EligibilityTrace, GatedSynapse, GraphBuilder, GRUCell, HebbianDecay, LoihiRule,
                        ModulationMode, Oja, PairSTDP, SynapticQ, ThreeFactor, TripletSTDP)

from .conftest import spikes

T = 200


def _graph(kind: str, vth: float = 3.0):
    rng = np.random.default_rng(7)
    b = GraphBuilder(seed=7)
    x = b.input("x", 5)
    r = b.input("reward", 1)
    h = b.cuba_lif("h", 4, du=0.5, dv=0.5, vth=vth)
    o = b.cuba_lif("o", 3, du=0.5, dv=0.5, vth=vth)
    b.modulator("m_glob", r, 1, weight=np.array([[1.0]]))
    b.modulator("m_pre", r, 5, channels=2, weight=rng.normal(0.5, 0.2, (10, 1)), activation="tanh")
    stdp = PairSTDP(eta_plus=0.03, eta_minus=0.02, decay_pre=0.8, decay_post=0.7)
    w_xh, w_ho = rng.normal(0.7, 0.3, (4, 5)), rng.normal(0.8, 0.3, (3, 4))
    rule = None
    if kind == "enu_synapse":
        cell = ENUCell(memory=4, in_channels=1, out_channels=1, w_z=rng.normal(0, 1, (4, 6)),
                       w_r=rng.normal(0, 1, (4, 6)), w_c=rng.normal(0, 1, (4, 6)), w_o=rng.normal(0, 1, (1, 4)))
        rule = GatedSynapse(cell=cell)
    elif kind == "gru_synapse":
        cell = GRUCell(hidden=3, in_channels=1, out_channels=1, w_ih=rng.normal(0, 1, (9, 1)),
                       w_hh=rng.normal(0, 1, (9, 3)), w_o=rng.normal(0, 1, (1, 3)), b_o=0.2)
        rule = GatedSynapse(cell=cell)
    elif kind == "three_factor_per_pre":
        rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.8), modulator="m_pre", mode=ModulationMode.PER_PRE)
    elif kind == "three_factor_consume":
        rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.9), modulator="m_pre", mode=ModulationMode.PER_PRE,
                           consume=0.8)
    elif kind == "triplet":
        rule = TripletSTDP(eta_plus=0.02, eta_minus=0.02, decay_pre=0.8, decay_post=0.7, decay_slow=0.9,
                           eta_pair=0.01)
    elif kind == "oja":
        rule = Oja(eta=0.1, alpha=0.8, interval=2)
    elif kind == "bcm":
        rule = BCM(eta=0.1, eta_phi=0.2, psi=0.1, alpha=0.8)
    elif kind == "hebbian":
        rule = HebbianDecay(eta=0.2, alpha=0.5, clip=1.0)
    b.connect(x, h, weight=w_xh, rule=rule, name="plastic")
    q = SynapticQ(q_table=rng.normal(0, 1, (81, 3)), epsilon=0.0, step=0.05, modulator="m_glob") if kind == "synq" else None
    b.connect(h, o, weight=w_ho, rule=q, name="h_o")
    return b.build(outputs=[o, h])


KINDS = ["enu_synapse", "gru_synapse", "three_factor_per_pre", "three_factor_consume", "triplet", "oja", "bcm", "hebbian", "synq"]


@pytest.mark.parametrize("kind", KINDS)
def test_host_emulated_matches_torch_float64(lava, kind):
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    g = _graph(kind)
    assert all(e["how"] == "host-emulated" for e in lava.support(g, "float")["rules"].values())
    x, rew = spikes(T, 5, p=0.3, seed=11), spikes(T, 1, p=0.5, seed=12)
    out = lava.compile(g, "float", timeout=90).run({"x": x, "reward": rew}, T, readback=False)
    res, _ = torch_backend.compile(g, dtype=torch.float64).run(
        {"x": torch.as_tensor(x).reshape(T, 1, 5), "reward": torch.as_tensor(rew).reshape(T, 1, 1)})
    for name in ("h", "o"):
        got = res[name].detach().numpy().reshape(T, -1)
        assert 0.05 < out[name].mean() < 0.97, f"{name}: spike rate {out[name].mean():.2f} makes a weak test"
        np.testing.assert_array_equal(out[name], got, err_msg=f"{kind}: spikes of {name}")


@pytest.mark.parametrize("kind", ["oja", "bcm", "hebbian"])
def test_spikepropamine_weights_match_torch_float64(lava, kind):
    """``weights()`` of a SpikePropamine rule is the IR's weight in effect ``W + alpha E`` on both
    backends (its ``W`` never changes; Lava also keeps ``E`` in ``state()``)."""
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    g = _graph(kind)
    x, rew = spikes(T, 5, p=0.3, seed=11), spikes(T, 1, p=0.5, seed=12)
    net = lava.compile(g, "float", timeout=90)
    net.run({"x": x, "reward": rew}, T)
    tnet = torch_backend.compile(g, dtype=torch.float64)
    _, state = tnet.run({"x": torch.as_tensor(x).reshape(T, 1, 5), "reward": torch.as_tensor(rew).reshape(T, 1, 1)})
    w_torch = tnet.weights(state)["plastic"][0, 0].detach().numpy()
    pr = g.projection("plastic")
    w0 = np.asarray(pr.weight)
    assert np.abs(w_torch - w0).max() > 1e-3, "no learning: the test would be weak"
    np.testing.assert_allclose(net.weights()["plastic"], w_torch, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(net.weights()["plastic"], w0 + np.asarray(pr.rule.alpha) * net.state()["plastic.e"])


def test_refractory_lif_matches_torch_float64(lava):
    """CubaLIF with a refractory period lowers to Lava's LIFRefractory (float only)."""
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    rng = np.random.default_rng(2)
    b = GraphBuilder(seed=2)
    x = b.input("x", 6)
    h = b.cuba_lif("h", 5, du=0.4, dv=0.3, vth=1.0, refractory=3)
    b.connect(x, h, weight=rng.normal(0.8, 0.3, (5, 6)))
    g = b.build(outputs=[h])
    xin = spikes(T, 6, p=0.3, seed=4)
    out = lava.compile(g, "float", timeout=60).run({"x": xin}, T, readback=False)
    res, _ = torch_backend.compile(g, dtype=torch.float64).run({"x": torch.as_tensor(xin).reshape(T, 1, 6)})
    assert lava.support(g, "float")["populations"]["h"]["why"] == "LIFRefractory"
    assert 0.05 < out["h"].mean() < 0.3  # the refractory period caps the rate at 1/4
    np.testing.assert_array_equal(out["h"], res["h"].detach().numpy().reshape(T, -1))


def _learning_graph(variant: str):
    rng = np.random.default_rng(3)
    b = GraphBuilder(seed=3)
    x = b.input("x", 5)
    r = b.input("reward", 1)
    h = b.cuba_lif("h", 4, du=0.5, dv=0.5, vth=3.0)
    o = b.cuba_lif("o", 3, du=0.5, dv=0.5, vth=3.0)
    b.modulator("m", r, 1, weight=np.array([[1.0]]))
    if variant == "loihi_2f":
        rule = LoihiRule(dw="2^-6*x1*y0 - 2^-6*y1*x0", x1_impulse=1, x1_tau=8, y1_impulse=1, y1_tau=6, t_epoch=2)
    elif variant == "loihi_3f":
        rule = LoihiRule(dw="u0*t*y2", dt="2^-6*x1*y0 - 2^-6*y1*x0 - u0*t*2^-2", x1_impulse=1, x1_tau=8,
                         y1_impulse=1, y1_tau=6, modulator="m")
    elif variant == "pair_stdp":
        rule = PairSTDP(eta_plus=0.01, eta_minus=0.012, decay_pre=0.8, decay_post=0.7)
    else:
        stdp = PairSTDP(eta_plus=2.0 ** -6, eta_minus=2.0 ** -6, decay_pre=0.8, decay_post=0.7)
        rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.75), modulator="m")
    b.connect(x, h, weight=rng.normal(0.9, 0.3, (4, 5)), rule=rule, name="plastic")
    b.connect(h, o, weight=rng.normal(0.9, 0.3, (3, 4)), name="h_o")
    return b.build(outputs=[o, h])


LEARNING = [("loihi_2f", "auto", "learning engine"), ("loihi_3f", "auto", "learning engine"),
            ("pair_stdp", "exact", "host-emulated"), ("three_factor_global", "exact", "host-emulated")]


@pytest.mark.parametrize("variant,engine,how", LEARNING, ids=[v for v, _, _ in LEARNING])
def test_learning_matches_torch_float64(lava, variant, engine, how):
    """Loihi rules on Lava's float learning engine (2F, and 3F through ThreeFactorLIF) and the IR's
    STDP rules host-emulated: same spikes and final weights as the torch backend."""
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    g = _learning_graph(variant)
    x, rew = spikes(T, 5, p=0.3, seed=11), spikes(T, 1, p=0.5, seed=12)
    net = lava.compile(g, "float", timeout=90, learning_engine=engine)
    assert net.support()["rules"]["plastic"]["how"] == how
    out = net.run({"x": x, "reward": rew}, T)
    tnet = torch_backend.compile(g, dtype=torch.float64)
    res, state = tnet.run({"x": torch.as_tensor(x).reshape(T, 1, 5), "reward": torch.as_tensor(rew).reshape(T, 1, 1)})
    for name in ("h", "o"):
        assert 0.05 < out[name].mean() < 0.97, f"{name}: spike rate {out[name].mean():.2f} makes a weak test"
        np.testing.assert_array_equal(out[name], res[name].detach().numpy().reshape(T, -1), err_msg=name)
    w_torch = tnet.weights(state)["plastic"][0, 0].detach().numpy()  # both backends' public weights()
    w0 = np.asarray(g.projection("plastic").weight)
    assert np.abs(w_torch - w0).max() > 1e-3, "no learning: the test would be weak"
    np.testing.assert_allclose(net.weights()["plastic"], w_torch, rtol=1e-12, atol=1e-12)


def test_cue_association_paper_net_matches_torch_float64(lava):
    """The Meta-SpikePropamine network (masks, Dale signs, recurrence, 2-channel tanh per-pre
    modulation of eligibility STDP from a neuromodulatory SNN): same spikes and weights as torch."""
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    import torch

    from plastix.ir.examples import cue_association_net

    g = cue_association_net()
    inp = {"cues": spikes(T, 20, p=0.2, seed=1), "learning_signal": spikes(T, 2, p=0.1, seed=2)}
    net = lava.compile(g, "float", timeout=120)
    out = net.run(inp, T)
    res, state = torch_backend.compile(g, dtype=torch.float64).run(
        {k: torch.as_tensor(v).reshape(T, 1, -1) for k, v in inp.items()})
    assert 0.02 < out["action"].mean() < 0.95
    np.testing.assert_array_equal(out["action"], res["action"].detach().numpy().reshape(T, -1))
    w_torch = state.projs["cues_to_hidden"].rule.w[0, 0].detach().numpy()
    w0 = np.asarray(g.projection("cues_to_hidden").weight)
    assert np.abs(w_torch - w0).max() > 1e-5, "no learning: the test would be weak"
    np.testing.assert_allclose(net.weights()["cues_to_hidden"], w_torch, rtol=1e-9, atol=1e-9)
    mask = np.asarray(g.projection("cues_to_hidden").mask)
    np.testing.assert_array_equal(net.weights()["cues_to_hidden"][~mask], w0[~mask])  # absent synapses stay


def _rule_kinds(rule) -> set[str]:
    """The kinds in a rule tree (a ThreeFactor's eligibility trace and STDP base, a gated synapse's cell)."""
    out = {rule.kind}
    for child in ("base", "cell"):
        if getattr(rule, child, None) is not None and getattr(rule, child).category == "rule":
            out |= _rule_kinds(getattr(rule, child))
    return out


def test_conformance_covers_every_registered_rule_kind():
    """The scenarios above, taken together, exercise every rule kind the IR registry holds: a new rule
    kind needs a torch-vs-Lava scenario here (no Lava needed to check that)."""
    from plastix.ir.registry import kinds

    graphs = [_graph(k) for k in KINDS] + [_learning_graph(v) for v, _, _ in LEARNING]
    covered = set().union(*(_rule_kinds(p.rule) for g in graphs for p in g.projections if p.rule is not None))
    assert covered == set(kinds("rule")), sorted(set(kinds("rule")) - covered)
