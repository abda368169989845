"""Issue 15, backend part: per-post / global three-factor rules on Loihi's learning engine, one
timing for the post trace, sign modes, negative weight exponents, Lava-format rule strings,
initial state and graded modulators, each run on Lava itself and compared with the torch backend
(fixed point bit for bit, floating point to rounding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.ir import (EligibilityTrace, GraphBuilder, LoihiRule, ModulationMode, PairSTDP, ThreeFactor,
                        UnsupportedKindError)

from .conftest import spikes

T = 250
DU, DV = 1024 / 4096, 512 / 4096


def _torch_run(g, inputs: dict, precision: str):
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip

    net = torch_backend.compile(g, precision=precision, dtype=torch.float64)
    steps = len(next(iter(inputs.values())))
    with torch.no_grad():
        out, state = net.run({k: torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(steps, 1, 1, -1)
                              for k, v in inputs.items()})
    return {k: v[:, 0, 0].numpy() for k, v in out.items()}, state


def _with(g, name: str, **changes):
    """``g`` with projection ``name`` changed."""
    return g.replace(projections=tuple(p.replace(**changes) if p.name == name else p for p in g.projections))


def _rule_w(state, name: str) -> np.ndarray:
    return state.projs[name].rule.w[0, 0].detach().numpy().astype(np.float64)


def _three_factor_net(mode: ModulationMode, eligibility: bool, channels: int, includes_spike: bool = False):
    """x(6) -plastic-> h(5) -> o(3); a spiking modulatory population nm(3), driven by its own input,
    reads out the third factor (identity, no bias; per-post: 5 values, global: 1)."""
    rng = np.random.default_rng(4)
    b = GraphBuilder(seed=4)
    x, r = b.input("x", 6), b.input("r", 4)
    h = b.cuba_lif("h", 5, du=DU, dv=DV, vth=250)
    o = b.cuba_lif("o", 3, du=DU, dv=DV, vth=150)
    nm = b.cuba_lif("nm", 3, du=DU, dv=DV, vth=300)
    b.connect(r, nm, weight=rng.integers(5, 25, (3, 4)).astype(float))
    size = 5 if mode == ModulationMode.PER_POST else 1
    # multiples of 1/8: fixed point delivers 2^third_shift M (shift 5 with eligibility, 3 without)
    w_mod = rng.integers(1, 6, (channels * size, 3)) / 8.0
    b.modulator("m", nm, size, weight=w_mod, channels=channels)
    stdp = PairSTDP(eta_plus=7 * 2.0 ** -7, eta_minus=9 * 2.0 ** -7, decay_pre=np.exp(-1 / 6), decay_post=np.exp(-1 / 4),
                    beta=20.0, trace_includes_spike=includes_spike)
    base = EligibilityTrace(base=stdp, gamma=1 - 2.0 ** -2) if eligibility else stdp
    b.connect(x, h, weight=rng.integers(-6, 40, (5, 6)).astype(float),
              rule=ThreeFactor(base=base, modulator="m", mode=mode), name="plastic")
    b.connect(h, o, weight=rng.integers(-5, 40, (3, 5)).astype(float), name="h_o")
    return b.build(outputs=[o, h, nm])


def _inputs(**sizes) -> dict:
    return {k: spikes(T, n, p=0.3, seed=11 + i) for i, (k, n) in enumerate(sorted(sizes.items()))}


FORMS = [(ModulationMode.PER_POST, True, 1), (ModulationMode.GLOBAL, True, 1), (ModulationMode.PER_POST, True, 2),
         (ModulationMode.PER_POST, False, 1), (ModulationMode.GLOBAL, False, 2)]


@pytest.mark.parametrize("mode,eligibility,channels", FORMS,
                         ids=[f"{m.value}-{'elig' if e else 'stdp'}-{c}ch" for m, e, c in FORMS])
def test_three_factor_on_the_engine_is_bit_exact_in_fixed_point(lava, mode, eligibility, channels):
    g = _three_factor_net(mode, eligibility, channels)
    rep = lava.support(g, "fixed")
    assert rep["rules"]["plastic"]["how"] == "learning engine" and "approximate" in rep["rules"]["plastic"]["why"]
    assert rep["populations"]["h"]["why"].startswith("ThreeFactorLIF")
    inp = _inputs(x=6, r=4)
    net = lava.compile(g, "fixed", timeout=120)
    out = net.run(inp, T)
    ref, state = _torch_run(g, inp, "fixed")
    for name in ("h", "o", "nm"):
        assert 0.03 < out[name].mean() < 0.95, f"{name}: spike rate {out[name].mean():.2f} makes a weak test"
        np.testing.assert_array_equal(out[name], ref[name], err_msg=f"spikes of {name}")
    w, rs = net.weights()["plastic"], state.projs["plastic"].rule
    assert np.abs(w - np.asarray(g.projection("plastic").weight)).max() >= 4, "no learning: a weak test"
    np.testing.assert_array_equal(w, rs.w[0, 0].numpy())
    if eligibility:
        np.testing.assert_array_equal(net.state()["plastic.tag_1"], rs.tag[0, 0].numpy())
    if eligibility and channels == 2:  # E- in d (tag_2)
        np.testing.assert_array_equal(net.state()["plastic.tag_2"], rs.dly[0, 0].numpy())


EXACT_FORMS = [FORMS[0], FORMS[2], FORMS[3]]


@pytest.mark.parametrize("mode,eligibility,channels", EXACT_FORMS,
                         ids=[f"{m.value}-{'elig' if e else 'stdp'}-{c}ch" for m, e, c in EXACT_FORMS])
def test_rules_whose_traces_include_the_spike_run_the_ir_exactly_on_the_engine(lava, mode, eligibility, channels):
    """With Loihi's trace convention in the IR (trace_includes_spike) the engine form is the IR rule:
    Lava's floating-point learning engine gives the torch float weights (to rounding) and spikes,
    and learning_engine="exact" keeps it on the engine."""
    g = _three_factor_net(mode, eligibility, channels, includes_spike=True)
    rep = lava.support(g, "float", learning_engine="exact")["rules"]["plastic"]
    assert rep["how"] == "learning engine" and "exact:" in rep["why"]
    inp = _inputs(x=6, r=4)
    with lava.compile(g, "float", timeout=120, learning_engine="exact") as net:
        out = net.run(inp, T)
        w = net.weights()["plastic"]
    ref, st = _torch_run(g, inp, "float")
    for name in ("h", "o"):
        assert 0.03 < out[name].mean() < 0.9
        np.testing.assert_array_equal(out[name], ref[name], err_msg=name)
    np.testing.assert_allclose(w, _rule_w(st, "plastic"), rtol=1e-9, atol=1e-9)
    assert np.abs(w - np.asarray(g.projection("plastic").weight)).max() > 2


def test_host_emulation_follows_trace_includes_spike(lava):
    """A per-pre rule (host-emulated) with Loihi's trace convention: Lava's host emulation = torch."""
    g = _three_factor_net(ModulationMode.PER_POST, True, 1, includes_spike=True)
    pr, m = g.projection("plastic"), g.modulator("m")
    g = g.replace(projections=tuple(p.replace(rule=pr.rule.replace(mode=ModulationMode.PER_PRE))
                                    if p.name == "plastic" else p for p in g.projections),
                  modulators=(m.replace(size=6, weight=np.full((6, 3), 0.5)),))
    assert lava.support(g, "float")["rules"]["plastic"]["how"] == "host-emulated"
    out, w = _host_emulated_matches_torch(lava, g, _inputs(x=6, r=4), tol=1e-12)
    assert np.abs(w - np.asarray(pr.weight)).max() > 2 and 0.03 < out["h"].mean() < 0.9


def _host_emulated_matches_torch(lava, g, inp: dict, tol: float):
    """Run ``g`` on Lava in float and on torch; same h spikes and final plastic weights (to ``tol``)."""
    with lava.compile(g, "float", timeout=120) as net:
        out = net.run(inp, T)
        w = net.weights()["plastic"]
    ref, st = _torch_run(g, inp, "float")
    np.testing.assert_array_equal(out["h"], ref["h"])
    np.testing.assert_allclose(w, _rule_w(st, "plastic"), rtol=tol, atol=tol)
    return out, w


def test_per_pre_and_mismatched_modulators_stay_host_emulated_with_the_reason(lava):
    g = _three_factor_net(ModulationMode.PER_POST, True, 1)
    pr, m = g.projection("plastic"), g.modulator("m")
    g2 = g.replace(projections=tuple(p.replace(rule=pr.rule.replace(mode=ModulationMode.PER_PRE))
                                     if p.name == "plastic" else p for p in g.projections),
                   modulators=(m.replace(size=6, weight=np.ones((6, 3))),))
    why = lava.support(g2, "float")["rules"]["plastic"]
    assert why["how"] == "host-emulated" and "post neuron" in why["why"] and "s_in_y2" in why["why"]
    g3 = g.replace(modulators=(m.replace(activation="tanh"),))
    why = lava.support(g3, "float")["rules"]["plastic"]
    assert why["how"] == "host-emulated" and "tanh" in why["why"] and "Dense" in why["why"]
    g4 = _with(g, "plastic", mask=np.eye(5, 6, dtype=bool))
    assert "LearningSparse" in lava.support(g4, "float")["rules"]["plastic"]["why"]


def test_two_three_factor_projections_into_one_post_must_agree_on_its_traces(lava):
    """One ThreeFactorLIF sends one y1 / y2: a second 3F projection with another modulator is an
    error on both backends (not a silent sum of third factors)."""
    import plastix.backends.torch as torch_backend

    g = _three_factor_net(ModulationMode.GLOBAL, True, 1)
    m, pr = g.modulator("m"), g.projection("plastic")
    other = pr.replace(name="plastic2", pre="r", weight=np.full((5, 4), 10.0),
                       rule=pr.rule.replace(modulator="m2"))
    g2 = g.replace(projections=(*g.projections, other), modulators=(m, m.replace(name="m2")))
    for build in (lambda: lava.support(g2, "fixed"), lambda: torch_backend.compile(g2, precision="fixed")):
        with pytest.raises(UnsupportedKindError, match="one ThreeFactorLIF sends one y1, y2 and y3"):
            build()


# --------------------------------------------------------------------------------------------- timing


def _timing_net():
    """Four plastic projections from the same input onto four identical post populations, each also
    driven by the same strong input: a Loihi rule in 2F and in 3F form (third factor 1, not read by
    dw), pair STDP and ThreeFactor(pair STDP) with M = 1."""
    rng = np.random.default_rng(7)
    b = GraphBuilder(seed=7)
    x, d, one = b.input("x", 5), b.input("d", 4), b.input("one", 1)
    w0 = rng.integers(2, 30, (4, 5)).astype(float)
    w_drive = rng.integers(0, 60, (4, 4)).astype(float)
    b.modulator("m", one, 1, weight=np.ones((1, 1)))
    loihi = dict(dw="2^-3*x1*y0 - 5*2^-5*y1*x0 - y0*w*2^-6", x1_impulse=20, x1_tau=8, y1_impulse=18.5, y1_tau=6,
                 rng_seed=5)
    stdp = PairSTDP(eta_plus=2.0 ** -3, eta_minus=5 * 2.0 ** -5, decay_pre=np.exp(-1 / 5), decay_post=np.exp(-1 / 7),
                    beta=17.0)
    rules = {"l2": LoihiRule(**loihi), "l3": LoihiRule(**loihi, modulator="m"), "s2": stdp,
             "s3": ThreeFactor(base=stdp, modulator="m")}
    for name, rule in rules.items():
        h = b.cuba_lif(name, 4, du=DU, dv=DV, vth=500)
        b.connect(x, h, weight=w0, rule=rule, name=f"p_{name}")
        b.connect(d, h, weight=w_drive, name=f"d_{name}")
    return b.build(outputs=list(rules))


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_a_three_factor_rule_with_third_factor_one_learns_exactly_as_its_two_factor_form(lava, precision):
    """The post trace y1 that ThreeFactorLIF sends equals the y1 a two-factor LearningDense builds
    from s_in_bap (same stochastic rounding in fixed point), so 3F with M = 1 == 2F, on both backends."""
    g = _timing_net()
    rep = lava.support(g, precision)
    assert {rep["rules"][f"p_{n}"]["how"] for n in ("l2", "l3", "s2", "s3")} == {"learning engine"}
    inp = {"x": spikes(T, 5, p=0.3, seed=1), "d": spikes(T, 4, p=0.2, seed=2), "one": np.ones((T, 1))}
    net = lava.compile(g, precision, timeout=120)
    out = net.run(inp, T)
    lw = net.weights()
    _, st = _torch_run(g, inp, precision)
    tw = {n: _rule_w(st, f"p_{n}") for n in ("l2", "l3", "s2", "s3")}
    for two, three in (("l2", "l3"), ("s2", "s3")):
        assert 0.02 < out[two].mean() < 0.9
        np.testing.assert_array_equal(out[two], out[three])
        np.testing.assert_array_equal(lw[f"p_{two}"], lw[f"p_{three}"])  # Lava: 3F == 2F exactly
        np.testing.assert_array_equal(tw[two], tw[three])  # torch: 3F == 2F exactly
        assert np.abs(lw[f"p_{two}"] - np.asarray(g.projection(f"p_{two}").weight)).max() > 1
    if precision == "fixed":
        np.testing.assert_array_equal(lw["p_l3"], tw["l3"])
        np.testing.assert_array_equal(lw["p_s3"], tw["s3"])
    else:  # the Loihi rule is exact on both backends; STDP on the engine is approximate w.r.t. the IR
        np.testing.assert_allclose(lw["p_l3"], tw["l3"], rtol=1e-9, atol=1e-9)


def test_loihi_three_factor_rule_with_longer_epochs_matches_lava_float(lava):
    """t_epoch > 1: the 3F engine sees the y1 / y2 the neuron sent last (torch float = Lava float)."""
    b = GraphBuilder(seed=2)
    x, d, r = b.input("x", 4), b.input("d", 3), b.input("r", 1)
    h = b.cuba_lif("h", 3, du=DU, dv=DV, vth=150)
    b.modulator("m", r, 1, weight=np.array([[0.75]]))
    rule = LoihiRule(dw="2^-4*x0*y2*y1 - 2^-5*y0*x1 + 2^-6*u0*x2*y2", x1_impulse=9, x1_tau=4, x2_impulse=5,
                     x2_tau=8, y1_impulse=11, y1_tau=5, t_epoch=3, modulator="m")
    rng = np.random.default_rng(2)
    b.connect(x, h, weight=rng.integers(5, 30, (3, 4)).astype(float), rule=rule, name="plastic")
    b.connect(d, h, weight=np.full((3, 3), 60.0), name="drive")
    g = b.build(outputs=[h])
    inp = {"x": spikes(120, 4, p=0.4, seed=3), "d": spikes(120, 3, p=0.25, seed=4), "r": np.linspace(-1, 2, 120)[:, None]}
    with lava.compile(g, "float", timeout=120) as net:
        out = net.run(inp, 120)
        w = net.weights()["plastic"]
    ref, st = _torch_run(g, inp, "float")
    np.testing.assert_array_equal(out["h"], ref["h"])
    np.testing.assert_allclose(w, _rule_w(st, "plastic"), rtol=1e-9, atol=1e-9)
    assert np.abs(w - np.asarray(g.projection("plastic").weight)).max() > 0.5


# --------------------------------------------------------------------------------------------- sign modes


def _signed_net():
    """Three copies of one depressing Loihi rule: all synapses excitatory, all inhibitory, unsigned."""
    rng = np.random.default_rng(5)
    b = GraphBuilder(seed=5)
    x, d = b.input("x", 5), b.input("d", 3)
    rule = LoihiRule(dw="2^-1*x1*y0 - 3*2^-2*y1*x0", x1_impulse=10, x1_tau=4, y1_impulse=30, y1_tau=10, rng_seed=3)
    mag = rng.integers(2, 12, (3, 5)).astype(float)
    for name, sign in (("exc", 1), ("inh", -1), ("mix", 0)):
        h = b.cuba_lif(name, 3, du=DU, dv=DV, vth=120)
        b.connect(x, h, weight=mag if sign >= 0 else -mag, sign=np.full((3, 5), sign), name=f"p_{name}",
                  rule=rule if sign >= 0 else rule.replace(dw="3*2^-2*y1*x0 - 2^-1*x1*y0"))
        b.connect(d, h, weight=np.full((3, 3), 150.0), name=f"d_{name}")
    return b.build(outputs=["exc", "inh", "mix"])


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_sign_modes_clip_learned_weights_at_zero_like_lava(lava, precision):
    g = _signed_net()
    rep = lava.support(g, precision)["rules"]
    assert "EXCITATORY" in rep["p_exc"]["why"] and "INHIBITORY" in rep["p_inh"]["why"]
    inp = {"x": spikes(T, 5, p=0.3, seed=5), "d": spikes(T, 3, p=0.15, seed=6)}
    with lava.compile(g, precision, timeout=120) as net:
        net.run(inp, T)
        lw = net.weights()
    _, st = _torch_run(g, inp, precision)
    for name in ("exc", "inh", "mix"):
        tw = _rule_w(st, f"p_{name}")
        if precision == "fixed":
            np.testing.assert_array_equal(lw[f"p_{name}"], tw, err_msg=name)
        else:
            np.testing.assert_allclose(lw[f"p_{name}"], tw, rtol=1e-9, atol=1e-9, err_msg=name)
    assert lw["p_exc"].min() == 0 and np.sum(lw["p_exc"] == 0) >= 3  # stopped at zero, not beyond
    assert lw["p_inh"].max() == 0 and np.sum(lw["p_inh"] == 0) >= 3
    assert lw["p_mix"].min() < 0  # the same rule without a sign constraint crosses zero


def test_mixed_sign_constraints_have_no_engine_form(lava):
    g = _signed_net()
    sign = np.ones((3, 5), dtype=int)
    sign[0, 0] = -1
    g2 = _with(g, "p_exc", sign=sign)
    with pytest.raises(UnsupportedKindError, match="LearningSparse"):
        lava.support(g2, "float")


# --------------------------------------------------------------------------------------------- weights


def test_negative_weight_exponent_is_floor_of_the_sum_on_both_backends(lava):
    """Fractional weights m 2^e (e < 0) lower to Dense(weight_exp < 0): Lava shifts the integer sum
    right, so the synaptic input is floor(W x), in the torch fixed mode too."""
    from plastix.backends.quantize import dense_to_fixed
    from plastix.backends.torch.fixed import dense_fixed_step

    rng = np.random.default_rng(8)
    w_mixed = rng.integers(-40, 100, (4, 6)) / 8.0
    w_pos = rng.integers(1, 200, (3, 4)) / 4.0
    d = dense_to_fixed("p", w_mixed)
    assert d.weight_exp < 0 and d.sign_mode == 1
    xs = torch.as_tensor(spikes(50, 6, p=0.5, seed=2)).to(torch.int64).view(50, 1, 6)
    got = dense_fixed_step(xs, torch.as_tensor(d.weights.astype(np.float64)), d.weight_exp)
    np.testing.assert_array_equal(got[:, 0].numpy(), np.floor(xs[:, 0].numpy() @ w_mixed.T))
    b = GraphBuilder(seed=8)
    x = b.input("x", 6)
    h = b.cuba_lif("h", 4, du=DU, dv=DV, vth=60)
    o = b.cuba_lif("o", 3, du=DU, dv=DV, vth=400)
    b.connect(x, h, weight=w_mixed)
    b.connect(h, o, weight=w_pos)
    g = b.build(outputs=[h, o])
    inp = {"x": spikes(T, 6, p=0.4, seed=9)}
    with lava.compile(g, "fixed", timeout=120) as net:
        out = net.run(inp, T)
        st = net.state()
    ref, tst = _torch_run(g, inp, "fixed")
    for name in ("h", "o"):
        assert 0.05 < out[name].mean() < 0.9
        np.testing.assert_array_equal(out[name], ref[name])
    np.testing.assert_array_equal(st["h.u"], tst.neurons["h"].u[0, 0].numpy())
    np.testing.assert_array_equal(st["o.v"], tst.neurons["o"].v[0, 0].numpy())


# --------------------------------------------------------------------------------------------- strings


def test_rule_strings_written_as_lava_writes_them(lava):
    """STDPLoihi's own dw string and float_to_literal's '(1) * 2 ^ -3' form parse into Lava's product
    series and learn exactly as the compact form on both backends."""
    from lava.magma.core.learning.utils import float_to_literal
    from lava.proc.learning_rules.stdp_learning_rule import STDPLoihi

    from plastix.ir.loihi_expr import lava_products

    theirs = STDPLoihi(learning_rate=2 ** -3, A_plus=1, A_minus=-3, tau_plus=8, tau_minus=6, t_epoch=1)
    lit = float_to_literal(2 ** -3)
    assert " " in lit and "^" in lit
    lava_fmt = f"{lit} * x1 * y0 - (3) * {float_to_literal(2 ** -3)} * y1 * x0"
    compact = "2^-3*x1*y0 - 3*2^-3*y1*x0"
    for text in (theirs.dw_str, lava_fmt):
        ours = [(p.dependency, p.mantissa, p.exp, tuple(tuple(f) for f in p.factors)) for p in lava_products(text)]
        from lava.magma.core.learning.learning_rule import Loihi2FLearningRule

        ref = Loihi2FLearningRule(dw=text, x1_impulse=1, x1_tau=2, y1_impulse=1, y1_tau=2, rng_seed=0)
        assert ours == [(p.dependency, p.s_mantissa, p.s_exp, tuple((f.state_var, f.const, f.is_sgn) for f in p.factors))
                        for p in ref.active_product_series["dw"].products]
    rng = np.random.default_rng(1)
    b = GraphBuilder(seed=1)
    x, d = b.input("x", 4), b.input("d", 2)
    w0 = rng.integers(10, 40, (2, 4)).astype(float)
    for name, text in (("lava", lava_fmt), ("compact", compact)):
        h = b.cuba_lif(name, 2, du=DU, dv=DV, vth=150)
        b.connect(x, h, weight=w0, name=f"p_{name}",
                  rule=LoihiRule(dw=text, x1_impulse=16, x1_tau=8, y1_impulse=16, y1_tau=6, rng_seed=2))
        b.connect(d, h, weight=np.full((2, 2), 120.0))
    g = b.build(outputs=["lava", "compact"])
    inp = {"x": spikes(150, 4, p=0.3, seed=1), "d": spikes(150, 2, p=0.2, seed=2)}
    with lava.compile(g, "fixed", timeout=120) as net:
        net.run(inp, 150)
        lw = net.weights()
    _, st = _torch_run(g, inp, "fixed")
    np.testing.assert_array_equal(lw["p_lava"], lw["p_compact"])
    np.testing.assert_array_equal(lw["p_lava"], _rule_w(st, "p_lava"))
    assert not np.array_equal(lw["p_lava"], w0)


# --------------------------------------------------------------------------------------------- initial state


def _init_net(precision: str, start: bool):
    """Neurons, a Loihi rule's traces and tag, and pair STDP's traces start from IR values."""
    fixed = precision == "fixed"
    b = GraphBuilder(seed=3)
    x, d = b.input("x", 4), b.input("d", 2)
    kw = dict(u_init=np.array([2.5, -1.0, 0.0]), v_init=np.array([9.5, 0.5, 8.25])) if start else {}
    h = b.cuba_lif("h", 3, du=DU, dv=DV, vth=8, **kw)
    k = b.cuba_lif("k", 3, du=DU, dv=DV, vth=8, **kw)
    tr = dict(x1_init=np.array([40.0, 0.0, 90.0, 3.0]), y1_init=np.array([50.0, 7.0, 0.0]),
              t_init=np.arange(12.0).reshape(3, 4) - 4.0) if start else {}
    loihi = LoihiRule(dw="2^-2*x1*y0 - 2^-3*y1*x0 + 2^-3*u0*t", dt="2^-4*x1*y0 - 2^-2*u0*t", x1_impulse=16,
                      x1_tau=8, y1_impulse=16, y1_tau=6, rng_seed=4, **tr)
    pre = dict(x_pre_init=np.array([5.0, 0.0, 2.0, 9.0]), x_post_init=np.array([3.0, 0.0, 11.0])) if start else {}
    stdp = PairSTDP(eta_plus=2.0 ** -3, eta_minus=2.0 ** -3, decay_pre=0.75, decay_post=0.75,
                    beta=16.0 if fixed else 1.0, **pre)
    b.connect(x, h, weight=np.full((3, 4), 2.0), rule=loihi, name="p_loihi")
    b.connect(x, k, weight=np.full((3, 4), 2.0), rule=stdp, name="p_stdp")
    b.connect(d, h, weight=np.full((3, 2), 6.0))
    b.connect(d, k, weight=np.full((3, 2), 6.0))
    return b.build(outputs=[h, k])


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_initial_state_from_the_ir_on_both_backends(lava, precision):
    inp = {"x": spikes(60, 4, p=0.3, seed=4), "d": spikes(60, 2, p=0.15, seed=5)}
    runs = {}
    for start in (True, False):
        g = _init_net(precision, start)
        # float: pair STDP host-emulated with the IR's math; fixed: on the engine, as the torch fixed mode runs it
        engine = "exact" if precision == "float" else "auto"
        with lava.compile(g, precision, timeout=120, learning_engine=engine) as net:
            out = net.run(inp, 60)
            runs[start] = (out, net.weights(), net.state())
        ref, st = _torch_run(g, inp, precision)
        exact = precision == "fixed"
        for name in ("h", "k"):
            np.testing.assert_array_equal(out[name], ref[name])
        for name in ("p_loihi", "p_stdp"):
            if exact or name == "p_loihi":
                np.testing.assert_allclose(runs[start][1][name], _rule_w(st, name), rtol=0 if exact else 1e-9,
                                           atol=0 if exact else 1e-9, err_msg=name)
            else:  # host-emulated pair STDP (learning_engine="exact"): the IR's math in float64
                np.testing.assert_allclose(runs[start][1][name], _rule_w(st, name), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(runs[start][2]["h.v"], st.neurons["h"].v[0, 0].numpy(), rtol=1e-12, atol=1e-12)
    on, off = runs[True], runs[False]
    assert not np.array_equal(on[0]["h"][:3], off[0]["h"][:3]), "initial u / v made no difference"
    for name in ("p_loihi", "p_stdp"):
        assert not np.array_equal(on[1][name], off[1][name]), f"{name}: initial traces made no difference"


# --------------------------------------------------------------------------------------------- graded modulator


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_graded_modulator_input_on_lava(lava, precision):
    """A modulator reading a graded input (a reward signal) drives the third factor on Lava as on
    torch: a Loihi rule exactly, and per-post three-factor STDP on the engine."""
    fixed = precision == "fixed"
    rng = np.random.default_rng(6)
    b = GraphBuilder(seed=6)
    x, d, r = b.input("x", 4), b.input("d", 3), b.input("reward", 2)
    b.modulator("m", r, 1, weight=np.array([[1.0, 0.5]]) if fixed else np.array([[0.75, -0.5]]))
    b.modulator("mp", r, 3, weight=np.array([[1.0, 0.0], [0.0, 0.5], [0.25, 0.25]]) / (32 if fixed else 1))
    w0 = rng.integers(5, 30, (3, 4)).astype(float)
    loihi = LoihiRule(dw="2^-3*u0*t*y2", dt="2^-2*x1*y0 - 2^-3*y1*x0 - 2^-2*u0*t", x1_impulse=16, x1_tau=6,
                      y1_impulse=16, y1_tau=6, modulator="m", rng_seed=1)
    stdp = PairSTDP(eta_plus=2.0 ** -2, eta_minus=2.0 ** -3, decay_pre=np.exp(-1 / 6), decay_post=np.exp(-1 / 6),
                    beta=16.0)
    rules = {"a": loihi, "b": ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.75), modulator="mp",
                                          mode=ModulationMode.PER_POST)}
    for name, rule in rules.items():
        h = b.cuba_lif(name, 3, du=DU, dv=DV, vth=150)
        b.connect(x, h, weight=w0, rule=rule, name=f"p_{name}")
        b.connect(d, h, weight=np.full((3, 3), 90.0))
    g = b.build(outputs=list(rules))
    assert lava.support(g, precision)["rules"]["p_b"]["how"] == "learning engine"
    t = np.arange(T)
    reward = np.stack([np.round(3 * np.sin(t / 9.0)), (t // 40) % 3 - 1.0], 1) if fixed else \
        np.stack([np.sin(t / 9.0) * 1.7, np.cos(t / 13.0) * 0.6], 1)
    assert not np.all(np.isin(reward, (0, 1)))
    inp = {"x": spikes(T, 4, p=0.3, seed=7), "d": spikes(T, 3, p=0.2, seed=8), "reward": reward}
    with lava.compile(g, precision, timeout=120) as net:
        net.run(inp, T)
        lw = net.weights()
    _, st = _torch_run(g, inp, precision)
    if fixed:
        for name in ("p_a", "p_b"):
            np.testing.assert_array_equal(lw[name], _rule_w(st, name), err_msg=name)
    else:
        np.testing.assert_allclose(lw["p_a"], _rule_w(st, "p_a"), rtol=1e-9, atol=1e-9)
    for name in ("p_a", "p_b"):
        assert np.abs(lw[name] - w0).max() > 1, f"{name}: the graded modulator moved nothing"


def _saturating_net(x_bound):
    """The per-post eligibility net with a slow, strong post trace that passes 127 (Loihi's 7-bit
    trace range) unless the rule's ``x_bound`` saturates it."""
    g = _three_factor_net(ModulationMode.PER_POST, True, 1, includes_spike=True)
    rule = g.projection("plastic").rule
    stdp = rule.base.base.replace(decay_post=np.exp(-1 / 40), beta=24.0, x_bound=x_bound)
    w = np.asarray(g.projection("plastic").weight) + 40.0  # h fires often
    return _with(g, "plastic", weight=w, rule=rule.replace(base=rule.base.replace(base=stdp)))


def test_trace_bound_saturates_the_float_traces_as_the_engine_does(lava):
    """x_bound = 127 states the engine's 7-bit trace saturation in the IR: torch float clips there
    (without it the post trace passes 127), the rule stays on the learning engine (bit-exact in fixed
    point), Lava's float engine is reported approximate, and any other bound is host-emulated,
    where Lava's host math clips exactly as torch does."""
    inp = _inputs(x=6, r=4)
    free, bounded = _saturating_net(None), _saturating_net(127.0)
    w_free, w_bounded = (_rule_w(_torch_run(g, inp, "float")[1], "plastic") for g in (free, bounded))
    assert np.abs(w_free - w_bounded).max() > 1.0  # the post trace passed 127: the bound changed learning
    fixed = lava.support(bounded, "fixed")["rules"]["plastic"]
    assert fixed["how"] == "learning engine" and "exact:" in fixed["why"]
    assert "does not saturate traces" in lava.support(bounded, "float")["rules"]["plastic"]["why"]
    assert lava.support(bounded, "float", learning_engine="exact")["rules"]["plastic"]["how"] == "host-emulated"
    out = lava.compile(bounded, "fixed", timeout=120)
    lv = out.run(inp, T)
    ref, st = _torch_run(bounded, inp, "fixed")
    np.testing.assert_array_equal(lv["h"], ref["h"])
    np.testing.assert_array_equal(out.weights()["plastic"], st.projs["plastic"].rule.w[0, 0].numpy())

    other = _saturating_net(40.0)
    rep = lava.support(other, "float")["rules"]["plastic"]
    assert rep["how"] == "host-emulated" and "7-bit traces saturate only at 127" in rep["why"]
    _, w = _host_emulated_matches_torch(lava, other, inp, tol=1e-9)
    assert np.abs(w - _rule_w(_torch_run(_saturating_net(None), inp, "float")[1], "plastic")).max() > 1.0
