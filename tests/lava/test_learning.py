"""Plasticity on Lava: three-factor learning gated by the modulator, host-emulated rules vs the IR math."""
from __future__ import annotations

import numpy as np
import pytest

from plastix.ir import (EligibilityTrace, GraphBuilder, LoihiRule, ModulationMode, Oja, PairSTDP, ThreeFactor,
                        UnsupportedKindError)

from .conftest import spikes
from .reference import simulate_plastic

T = 200
REWARD = (100, 140)  # modulator source active in these steps


def three_factor_graph(precision: str, *, mode=ModulationMode.GLOBAL, sign: float = 1.0, activation="identity"):
    """pre (2) -plastic-> post (1); a driver forces post spikes 2 steps after pre 0's spikes, pre 1
    stays silent; a reward input drives a global modulator."""
    fixed = precision == "fixed"
    b = GraphBuilder(seed=0)
    x = b.input("x", 2)
    d = b.input("drive", 1)
    r = b.input("reward", 1)
    post = b.cuba_lif("post", 1, du=0.25, dv=0.25, vth=10)
    stdp = PairSTDP(eta_plus=2.0 ** -2, eta_minus=2.0 ** -3, decay_pre=0.9, decay_post=0.9,
                    beta=16.0 if fixed else 1.0)
    n_mod = {ModulationMode.GLOBAL: 1, ModulationMode.PER_PRE: 2}[mode]
    rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.5), modulator="dopamine", mode=mode)
    b.modulator("dopamine", r, n_mod, weight=np.full((n_mod, 1), 4.0 * sign), activation=activation)
    b.connect(x, post, weight=np.array([[20.0, 20.0]]), rule=rule, name="plastic")
    b.connect(d, post, weight=np.array([[100.0]]), name="drive_in")
    return b.build(outputs=[post])


def three_factor_inputs(reward: bool = True) -> dict:
    x = np.zeros((T, 2))
    x[::10, 0] = 1
    drive = np.zeros((T, 1))
    drive[2::10, 0] = 1
    rew = np.zeros((T, 1))
    if reward:
        rew[REWARD[0]:REWARD[1], 0] = 1
    return {"x": x, "drive": drive, "reward": rew}


CASES = [("float", "auto"), ("fixed", "auto"), ("float", "exact")]


@pytest.mark.parametrize("precision,engine", CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_three_factor_weights_change_only_while_modulated(lava, precision, engine):
    g = three_factor_graph(precision)
    net = lava.compile(g, precision, timeout=90, learning_engine=engine)
    expect = "learning engine" if engine == "auto" else "host-emulated"
    assert net.support()["rules"]["plastic"]["how"] == expect
    w0 = np.array([[20.0, 20.0]])

    def final_w(steps, reward=True):
        net.run(three_factor_inputs(reward), steps)
        return net.weights()["plastic"]

    # before the modulator turns on: eligibility builds up, weights stay
    np.testing.assert_array_equal(final_w(REWARD[0]), w0)
    if engine == "auto":
        assert np.abs(net.state()["plastic.tag_1"]).max() > 0, "no eligibility: the test would be vacuous"
    w_mid = final_w(REWARD[1] + 3)  # the modulator reaches the rule one step late
    assert not np.array_equal(w_mid, w0), "weights did not change while the modulator was on"
    assert w_mid[0, 1] == w0[0, 1], "the silent input's synapse must not change"
    # after it turns off, nothing changes any more (runs are deterministic episodes)
    np.testing.assert_array_equal(final_w(T), w_mid)
    # and without any modulation nothing changes at all
    np.testing.assert_array_equal(final_w(T, reward=False), w0)


def test_negative_modulation_flips_the_sign(lava):
    pos = lava.compile(three_factor_graph("float"), "float", timeout=60)
    neg = lava.compile(three_factor_graph("float", sign=-1.0), "float", timeout=60)
    pos.run(three_factor_inputs(), T)
    neg.run(three_factor_inputs(), T)
    d_pos = pos.weights()["plastic"][0, 0] - 20.0
    d_neg = neg.weights()["plastic"][0, 0] - 20.0
    assert d_pos != 0 and np.sign(d_pos) == -np.sign(d_neg)


def _host_graph():
    b = GraphBuilder(seed=3)
    x = b.input("x", 6)
    r = b.input("reward", 1)
    h = b.cuba_lif("h", 5, du=0.3, dv=0.2, vth=1.0)
    o = b.cuba_lif("o", 2, du=0.3, dv=0.2, vth=1.0)
    rng = np.random.default_rng(3)
    stdp = PairSTDP(eta_plus=0.011, eta_minus=0.013, decay_pre=0.8, decay_post=0.7)
    b.modulator("dop", r, 1, weight=np.array([[0.7]]))
    b.connect(x, h, weight=rng.normal(0.5, 0.2, (5, 6)),
              rule=ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.9), modulator="dop"), name="p1")
    b.connect(h, o, weight=rng.normal(0.6, 0.2, (2, 5)), rule=stdp, name="p2")
    return b.build(outputs=[o, h])


def test_host_emulated_rules_follow_the_ir_equations(lava):
    g = _host_graph()
    inputs = {"x": spikes(T, 6, p=0.3, seed=4), "reward": spikes(T, 1, p=0.5, seed=5)}
    net = lava.compile(g, "float", timeout=90)
    rules = net.support()["rules"]
    assert rules["p1"]["how"] == rules["p2"]["how"] == "host-emulated"  # eta not m*2^e: no engine form
    out = net.run(inputs, T)
    ref, ref_w = simulate_plastic(g, inputs, T)
    assert out["h"].sum() > 20 and out["o"].sum() > 5
    for name in ("h", "o"):
        np.testing.assert_array_equal(out[name], ref[name], err_msg=name)
    for k in ("p1", "p2"):
        assert not np.allclose(ref_w[k], g.projection(k).weight), f"{k} did not learn: the test would be weak"
        np.testing.assert_allclose(net.weights()[k], ref_w[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_spikepropamine_rule_runs_host_emulated(lava):
    b = GraphBuilder(seed=1)
    x = b.input("x", 4)
    h = b.cuba_lif("h", 3, du=0.3, dv=0.2, vth=1.0)
    b.connect(x, h, weight=np.full((3, 4), 0.6), rule=Oja(eta=0.2, alpha=0.5), name="oja")
    g = b.build(outputs=[h])
    net = lava.compile(g, "float", timeout=60)
    assert net.support()["rules"]["oja"]["how"] == "host-emulated"
    net.run({"x": spikes(60, 4, p=0.4, seed=2)}, 60)
    e = net.state()["oja.e"]
    assert e.shape == (3, 4) and np.abs(e).max() > 0
    # W fixed, E plastic; weights() is the weight in effect W + alpha E (the IR's, as torch's weights())
    np.testing.assert_array_equal(net.weights()["oja"], np.full((3, 4), 0.6) + 0.5 * e)


def test_loihi_rule_two_factor_runs_on_the_learning_engine(lava):
    b = GraphBuilder(seed=1)
    x = b.input("x", 2)
    d = b.input("drive", 1)
    post = b.cuba_lif("post", 1, du=0.25, dv=0.25, vth=10)
    rule = LoihiRule(dw="2^-2*x1*y0 - 2^-2*y1*x0", x1_impulse=16, x1_tau=10, y1_impulse=16, y1_tau=10, t_epoch=4,
                     rng_seed=1)
    b.connect(x, post, weight=np.array([[10.0, 10.0]]), rule=rule, name="plastic")
    b.connect(d, post, weight=np.array([[100.0]]), name="drive_in")
    g = b.build(outputs=[post])
    inp = three_factor_inputs()
    inp.pop("reward")
    for precision in ("fixed", "float"):
        net = lava.compile(g, precision, timeout=60)
        assert net.support()["rules"]["plastic"] == {"kind": "loihi", "how": "learning engine",
                                                     "why": "a Loihi rule string runs on the learning engine as written"}
        net.run(inp, 100)
        w = net.weights()["plastic"]
        assert w[0, 0] != 10 and w[0, 1] == 10, (precision, w)  # the active synapse learns, the silent one stays


def test_support_report(lava):
    from plastix.ir.examples import cue_association_net

    g = cue_association_net()
    rep = lava.support(g, "float")
    assert set(rep) == {"precision", "populations", "projections", "rules", "modulators"}
    assert rep["populations"]["hidden"] == {"kind": "cuba_lif", "how": "native", "why": "LIF"}
    assert rep["populations"]["cues"]["how"] == "native"
    assert rep["projections"]["hidden_to_action"] == {"how": "native", "why": "Dense"}
    plastic = rep["rules"]["cues_to_hidden"]
    assert plastic["kind"] == "three_factor" and plastic["how"] == "host-emulated"
    assert "per_pre" in plastic["why"]
    assert rep["modulators"]["dopamine"]["how"] == "host-emulated"
    for section in ("populations", "projections", "rules", "modulators"):
        for name, entry in rep[section].items():
            assert entry["how"] in ("native", "learning engine", "host-emulated"), (section, name)
            assert entry["why"], (section, name)
    glob = lava.support(three_factor_graph("float"), "float")
    assert glob["rules"]["plastic"]["how"] == "learning engine" and "approximate" in glob["rules"]["plastic"]["why"]
    assert "ThreeFactorLIF" in glob["populations"]["post"]["why"]
    assert lava.support(three_factor_graph("float"), "float", learning_engine="exact")["rules"]["plastic"]["how"] \
        == "host-emulated"
    tanh = lava.support(three_factor_graph("float", activation="tanh"), "float")
    assert tanh["rules"]["plastic"]["how"] == "host-emulated" and "tanh" in tanh["rules"]["plastic"]["why"]
    assert tanh["modulators"]["dopamine"]["how"] == "host-emulated"


def test_unsupported_kinds_raise(lava):
    from plastix.ir import ENUCell

    cell = ENUCell(memory=2, in_channels=1, out_channels=1, w_z=np.zeros((2, 4)), w_r=np.zeros((2, 4)),
                   w_c=np.zeros((2, 4)), w_o=np.zeros((1, 2)))
    b = GraphBuilder(seed=0)
    x = b.input("x", 2)
    h = b.gated("g", 2, cell)
    b.connect(x, h, weight=np.ones((2, 2)))
    g = b.build(outputs=[h])
    # gated populations are host-emulated in float only (tests/lava/test_gated_populations.py)
    assert lava.support(g, "float")["populations"]["g"]["how"] == lava.HOST
    with pytest.raises(UnsupportedKindError) as info:
        lava.support(g, "fixed")
    assert info.value.kind.startswith("gated") and info.value.backend == "lava"
    with pytest.raises(UnsupportedKindError, match="gated"):
        lava.compile(g, "fixed")
    b = GraphBuilder(seed=0)
    x = b.input("x", 2)
    h = b.cuba_lif("h", 2, du=0.5, dv=0.5, vth=1.0, refractory=2)
    b.connect(x, h, weight=np.ones((2, 2)))
    with pytest.raises(UnsupportedKindError, match="refractory"):
        lava.compile(b.build(outputs=[h]), "fixed")


def test_host_emulated_rule_in_fixed_precision(lava):
    """Fixed point: LIF/Dense in Lava's integers, the host-emulated rule in float64 (floor'ed activation)."""
    b = GraphBuilder(seed=2)
    x = b.input("x", 6)
    h = b.cuba_lif("h", 4, du=1024 / 4096, dv=1024 / 4096, vth=12)
    stdp = PairSTDP(eta_plus=0.3, eta_minus=0.2, decay_pre=0.8, decay_post=0.7)
    b.connect(x, h, weight=np.full((4, 6), 9.0), rule=stdp, name="p")
    g = b.build(outputs=[h])
    net = lava.compile(g, "fixed", timeout=60)
    assert net.support()["rules"]["p"]["how"] == "host-emulated"
    out = net.run({"x": spikes(120, 6, p=0.3, seed=3)}, 120)
    assert 0 < out["h"].mean() < 1
    assert not np.array_equal(net.weights()["p"], np.full((4, 6), 9.0))


def test_consume_by_is_refused_on_lava_with_the_reason():
    """A second (consuming) modulator is not wired into the host-emulated synapse: a clear refusal."""
    import plastix.backends.lava as lava
    from plastix.ir import Modulator
    from tests.torch.helpers import N_POST, harness

    base = EligibilityTrace(base=PairSTDP(eta_plus=0.01, eta_minus=0.01, decay_pre=0.8, decay_post=0.8), gamma=0.9)
    g = harness(ThreeFactor(base=base, modulator="m", mode=ModulationMode.PER_POST, consume=0.5), mod_size=N_POST)
    projs = tuple(p.replace(rule=p.rule.replace(consume_by="c")) if p.rule is not None else p for p in g.projections)
    g = g.replace(projections=projs, modulators=(*g.modulators, g.modulator("m").replace(name="c")))
    with pytest.raises(UnsupportedKindError, match="consume_by"):
        lava.support(g, "float")


def test_gated_synapse_post_feedback_is_refused_on_lava_with_the_reason():
    import plastix.backends.lava as lava
    from plastix.ir import ENUCell, GatedSynapse, Graph, Input, LIReadout, Projection

    w = np.zeros((2, 4))
    cell = ENUCell(memory=2, in_channels=1, out_channels=1, w_z=w, w_r=w, w_c=w, w_o=np.zeros((1, 2)))
    g = Graph(populations=(Input(name="x", size=2), LIReadout(name="r", size=2, du=1.0, dv=1.0)),
              projections=(Projection(name="p", pre="x", post="r", weight=np.ones((2, 2)),
                                      rule=GatedSynapse(cell=cell, post_feedback=True)),), outputs=("r",))
    with pytest.raises(UnsupportedKindError, match="post_feedback"):
        lava.support(g, "float")
