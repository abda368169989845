"""Every rule kind vs an independent numpy reference written from the paper equations.

The harness (helpers.py) dictates the post spikes y[t] = drive[t-1] and the modulator
M[t] = msrc[t-1]; the references loop over time with plain numpy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.backends.torch import compile
from plastix.ir import (BCM, EligibilityTrace, HebbianDecay, LoihiRule, ModulationMode, Oja, PairSTDP, SynapticQ,
                        ThreeFactor, TripletSTDP)

from .helpers import N_POST, N_PRE, harness, harness_inputs, mod_values, post_spikes, to_torch

T = 40


def run_net(graph, xs, **kw):
    net = compile(graph, dtype=torch.float64)
    with torch.no_grad():
        out, state = net.run(to_torch(xs), **kw)
    return net, out, state


def check_post(out, xs):
    np.testing.assert_array_equal(out["post"][:, 0].detach().numpy(), post_spikes(xs["drive"]))


# ---------------------------------------------------------------------------------------------
# references


def trace_next(tr, s, decay, kind, beta, x_max):
    return decay * tr + (beta * s if kind == "linear" else beta * (x_max - tr) * s)


def ref_stdp_terms(x, y, w, tr, r, triplet=False):
    """Meta-SpikePropamine eqs. 8-15 for one step; tr = dict of traces (values at t)."""
    if r["mu"]:
        ap = r["eta_plus"] * np.maximum(r["w_max"] - w, 0) ** r["mu"]
        am = r["eta_minus"] * np.maximum(w - r["w_min"], 0) ** r["mu"]
    else:
        ap, am = r["eta_plus"], r["eta_minus"]
    ltp = ap * np.outer(y, tr["pre"])
    if triplet:
        ltp = ltp * (r["eta_pair"] + tr["slow_prev"][:, None])
    ltd = am * np.outer(tr["post"], x)
    new = dict(pre=trace_next(tr["pre"], x, r["decay_pre"], r["trace"], r["beta"], r["x_max"]),
               post=trace_next(tr["post"], y, r["decay_post"], r["trace"], r["beta"], r["x_max"]))
    if triplet:
        new["slow"] = trace_next(tr["slow"], y, r["decay_slow"], r["trace"], r["beta"], r["x_max"])
        new["slow_prev"] = tr["slow"]
    return ltp, ltd, new


def zero_traces(triplet):
    tr = dict(pre=np.zeros(N_PRE), post=np.zeros(N_POST))
    if triplet:
        tr.update(slow=np.zeros(N_POST), slow_prev=np.zeros(N_POST))
    return tr


STDP_CASES = [
    dict(mu=0.0, trace="linear"),
    dict(mu=1.0, trace="linear", w_min=-0.2, w_max=0.2, hard_bounds=True),
    dict(mu=0.5, trace="saturating", w_min=-0.3, w_max=0.3, beta=0.5, x_max=2.0),
]


def stdp_rule_dict(case, triplet, rng):
    r = dict(eta_plus=rng.uniform(0.001, 0.01, (N_POST, N_PRE)), eta_minus=rng.uniform(0.001, 0.01, (N_POST, N_PRE)),
             decay_pre=0.8, decay_post=0.7, mu=0.0, w_min=None, w_max=None, hard_bounds=False, trace="linear",
             beta=1.0, x_max=1.0)
    r.update(case)
    if triplet:
        r.update(decay_slow=0.9, eta_pair=0.3)
    return r


def make_stdp(r, triplet):
    cls = TripletSTDP if triplet else PairSTDP
    kw = {k: v for k, v in r.items()}
    return cls(**kw)


@pytest.mark.parametrize("triplet", [False, True])
@pytest.mark.parametrize("case", STDP_CASES)
def test_stdp_vs_reference(case, triplet):
    rng = np.random.default_rng(3)
    r = stdp_rule_dict(case, triplet, rng)
    g = harness(make_stdp(r, triplet))
    xs = harness_inputs(T)
    net, out, state = run_net(g, xs)
    check_post(out, xs)
    w = np.asarray(g.projection("plastic").weight, dtype=np.float64).copy()
    x, y = xs["pre"][:, 0], post_spikes(xs["drive"])[:, 0]
    tr = zero_traces(triplet)
    for t in range(T):
        ltp, ltd, tr = ref_stdp_terms(x[t], y[t], w, tr, r, triplet)
        w = w + ltp - ltd
        if r["hard_bounds"]:
            w = np.clip(w, r["w_min"], r["w_max"])
    np.testing.assert_allclose(state.projs["plastic"].rule.w[0, 0].detach().numpy(), w, rtol=1e-10, atol=1e-12)
    assert not np.allclose(w, g.projection("plastic").weight)  # the rule did something


@pytest.mark.parametrize("mode,size_of", [(ModulationMode.GLOBAL, lambda: 1), (ModulationMode.PER_POST, lambda: N_POST),
                                          (ModulationMode.PER_PRE, lambda: N_PRE),
                                          (ModulationMode.PER_SYNAPSE, lambda: N_POST * N_PRE)])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("eligibility,consume", [(False, 0.0), (True, 0.0), (True, 0.7)])
def test_three_factor_vs_reference(mode, size_of, channels, eligibility, consume):
    rng = np.random.default_rng(5)
    r = stdp_rule_dict({}, False, rng)
    base = make_stdp(r, False)
    gamma = rng.uniform(0.5, 0.95, (N_POST, N_PRE))
    if eligibility:
        base = EligibilityTrace(base=base, gamma=gamma)
    size = size_of()
    g = harness(ThreeFactor(base=base, modulator="m", mode=mode, consume=consume), mod_size=size, mod_channels=channels)
    xs = harness_inputs(T, mod_rows=size * channels)
    net, out, state = run_net(g, xs)
    check_post(out, xs)
    w = np.asarray(g.projection("plastic").weight, dtype=np.float64).copy()
    x, y = xs["pre"][:, 0], post_spikes(xs["drive"])[:, 0]
    M = mod_values(xs["msrc"])[:, 0].reshape(T, channels, size)
    tr = zero_traces(False)
    ep, em = np.zeros_like(w), np.zeros_like(w)

    def bc(m):  # eqs. 17-19 broadcasting
        if mode == ModulationMode.GLOBAL:
            return m[0]
        if mode == ModulationMode.PER_POST:
            return m[:, None]
        if mode == ModulationMode.PER_PRE:
            return m[None, :]
        return m.reshape(N_POST, N_PRE)

    for t in range(T):
        ltp, ltd, tr = ref_stdp_terms(x[t], y[t], w, tr, r)
        P, D = (ep, em) if eligibility else (ltp, ltd)
        dw = bc(M[t, 0]) * P - bc(M[t, 1]) * D if channels == 2 else bc(M[t, 0]) * (P - D)
        if eligibility:  # the modulator uses up the fraction consume * |m| of each trace (ThreeFactor doc)
            m_pos, m_neg = bc(M[t, 0]), bc(M[t, channels - 1])
            ep = gamma * np.maximum(0.0, 1.0 - consume * np.abs(m_pos)) * ep + ltp
            em = gamma * np.maximum(0.0, 1.0 - consume * np.abs(m_neg)) * em + ltd
        w = w + dw
    np.testing.assert_allclose(state.projs["plastic"].rule.w[0, 0].detach().numpy(), w, rtol=1e-10, atol=1e-12)
    assert not np.allclose(w, g.projection("plastic").weight)
    if consume:  # and it changes the result
        _, _, state0 = run_net(g.replace(projections=tuple(
            p.replace(rule=p.rule.replace(consume=0.0)) if p.name == "plastic" else p for p in g.projections)), xs)
        assert not np.allclose(state0.projs["plastic"].rule.w[0, 0].detach().numpy(), w, atol=1e-9)


@pytest.mark.parametrize("kind", ["hebbian_decay", "oja", "bcm"])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("interval", [1, 3])
def test_differentiable_plasticity_vs_reference(kind, modulated, interval):
    rng = np.random.default_rng(7)
    eta = rng.uniform(0.05, 0.3, (N_POST, N_PRE))
    alpha = rng.uniform(-0.05, 0.05, (N_POST, N_PRE))
    kw = dict(eta=eta, alpha=alpha, interval=interval, clip=0.8, modulator="m" if modulated else None)
    if kind == "bcm":
        eta_phi, psi = rng.uniform(0.1, 0.5, N_PRE), rng.uniform(-0.2, 0.2, N_PRE)
        rule = BCM(eta_phi=eta_phi, psi=psi, **kw)
    else:
        rule = {"hebbian_decay": HebbianDecay, "oja": Oja}[kind](**kw)
    g = harness(rule, mod_size=N_POST if modulated else None)
    xs = harness_inputs(T, mod_rows=N_POST if modulated else None, p=0.5)
    net, out, state = run_net(g, xs)
    check_post(out, xs)
    x, y = xs["pre"][:, 0], post_spikes(xs["drive"])[:, 0]
    M = mod_values(xs["msrc"])[:, 0] if modulated else None
    E = np.zeros((N_POST, N_PRE))
    phi = np.zeros(N_PRE)
    acc_x, acc_y = np.zeros(N_PRE), np.zeros(N_POST)
    for t in range(T):
        acc_x, acc_y = acc_x + x[t], acc_y + y[t]
        if (t + 1) % interval:
            continue
        rx, ry = acc_x / interval, acc_y / interval
        acc_x, acc_y = np.zeros(N_PRE), np.zeros(N_POST)
        if modulated:
            ry = M[t] * ry  # NDP: eqs. 16-21
        if kind == "hebbian_decay":  # eq. 10
            E = (1 - eta) * E + eta * np.outer(ry, rx)
        elif kind == "oja":  # eq. 11
            E = (1 - eta) * E + eta * np.outer(ry - E @ rx, rx)
        else:  # eqs. 12-14
            rb = rx * (rx - (phi + psi))
            E = (1 - eta) * E + eta * np.outer(ry, rb)
            phi = (1 - eta_phi) * phi + eta_phi * rx
        E = np.clip(E, -0.8, 0.8)
    np.testing.assert_allclose(state.projs["plastic"].rule.e[0, 0].detach().numpy(), E, rtol=1e-10, atol=1e-12)
    assert np.abs(E).sum() > 0


@pytest.mark.parametrize("constraint", [None, "mask", "sign"])
def test_dp_effective_weight_is_w_plus_alpha_e(constraint):
    """The projection uses W + alpha * E[t] (eq. 7), with mask and sign on top of the sum (the
    backend computes W x + (alpha E) x without a sign): check the post input one step later."""
    rng = np.random.default_rng(0)
    eta, alpha = np.full((N_POST, N_PRE), 0.5), rng.uniform(-0.1, 0.1, (N_POST, N_PRE))
    g = harness(HebbianDecay(eta=eta, alpha=alpha))
    mask = (rng.random((N_POST, N_PRE)) < 0.7).astype(np.float64) if constraint == "mask" else None
    sign = rng.choice([-1.0, 0.0, 1.0], (N_POST, N_PRE)) if constraint == "sign" else None
    g = g.replace(projections=tuple(p.replace(mask=mask, sign=sign) if p.name == "plastic" else p
                                    for p in g.projections))
    xs = harness_inputs(6, p=0.6)
    net = compile(g, dtype=torch.float64)
    state = net.init_state(1, 1)
    xt = to_torch(xs)
    for t in range(5):
        e_before = state.projs["plastic"].rule.e[0, 0].detach().numpy().copy()
        _, state = net.step({k: v[t] for k, v in xt.items()}, state)
        a = state.a["post"][0, 0].detach().numpy()
        w = np.asarray(g.projection("plastic").weight) + alpha * e_before
        if sign is not None:
            w = np.where(sign == 0, w, sign * np.abs(w))
        if mask is not None:
            w = w * mask
        np.testing.assert_allclose(a, w @ xs["pre"][t, 0] + 10 * xs["drive"][t, 0], rtol=1e-12)
        e_after = state.projs["plastic"].rule.e[0, 0].detach().numpy()  # weights(): W + alpha E, before mask/sign
        np.testing.assert_array_equal(net.weights(state)["plastic"][0, 0].detach().numpy(),
                                      np.asarray(g.projection("plastic").weight) + alpha * e_after)


@pytest.mark.parametrize("P,Bw,B", [(2, 3, 3), (2, 1, 3), (3, 1, 1)])
def test_matvec_matches_matmul_values_and_gradients(P, Bw, B):
    """rules.matvec (per-batch-element or per-individual weights) equals the column-form matmul in
    value and gradients, and gives the weight gradient in the weight's own (contiguous) layout."""
    from plastix.backends.torch.rules import matvec

    g = torch.Generator().manual_seed(0)
    w = torch.randn(P, Bw, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(P, B, 7, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(P, B, 5, generator=g, dtype=torch.float64)
    y = matvec(w, x)
    ref = torch.matmul(w, x.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-13)
    gw, gx = torch.autograd.grad(y, (w, x), up)
    rw, rx = torch.autograd.grad(ref, (w, x), up)
    torch.testing.assert_close(gw, rw, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(gx, rx, rtol=1e-13, atol=1e-13)
    assert gw.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(matvec(w, x), ref, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# synaptic Q


def test_synaptic_q_vs_loop_reference():
    rng = np.random.default_rng(11)
    q0 = rng.normal(0, 0.1, (81, 3))
    rule = SynapticQ(q_table=q0, step=0.01, epsilon=0.0, gamma=0.9, lr=0.5, form="multiplicative")
    g = harness(rule)
    Tq = 12
    xs = harness_inputs(Tq)
    rewards = rng.choice([-1.0, 0.0, 1.0], size=Tq)
    net = compile(g, dtype=torch.float64)
    _, state = net.run(to_torch(xs), reward=torch.as_tensor(rewards)[:, None, None])
    # reference: one agent per synapse, shared table, TD errors of one (s, a) averaged per decision
    w = np.asarray(g.projection("plastic").weight, dtype=np.float64).copy()
    q = q0.copy()
    K = w.size
    a1 = np.ones(K, int)
    a2 = np.ones(K, int)
    r1 = 1
    s_prev = None
    for t in range(Tq):
        rs = int(np.sign(rewards[t])) + 1
        s_new = 27 * a1 + 9 * a2 + 3 * rs + r1
        if s_prev is not None:
            sums, counts = {}, {}
            for k in range(K):
                sa = (s_prev[k], a1[k])
                d = (rs - 1) + 0.9 * q[s_new[k]].max() - q[sa]
                sums[sa] = sums.get(sa, 0.0) + d
                counts[sa] = counts.get(sa, 0) + 1
            for sa in sums:
                q[sa] += 0.5 * sums[sa] / counts[sa]
        a = np.array([int(np.argmax(q[s])) for s in s_new])
        w = w + ((a - 1) * 0.01 * w.ravel()).reshape(w.shape)
        a2, a1, r1, s_prev = a1, a, rs, s_new
    rs_ = state.projs["plastic"].rule
    np.testing.assert_allclose(rs_.q[0, 0].detach().numpy(), q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rs_.w[0, 0].detach().numpy(), w, rtol=1e-10, atol=1e-12)


def test_synaptic_q_exploration_follows_the_rules_seeded_stream():
    """ε-greedy draws come from the rule's counter-based stream (seed, decision, synapse), not a
    torch generator, so the Lava process can replay them."""
    xs = to_torch(harness_inputs(5))
    rew = torch.ones(5, 1, 1)

    def final_w(seed, gen_seed):
        net = compile(harness(SynapticQ(q_table=np.zeros((81, 3)), epsilon=1.0, seed=seed)), dtype=torch.float64)
        return net.run(xs, reward=rew, generator=torch.Generator().manual_seed(gen_seed))[1].projs["plastic"].rule.w

    w1, w2, w3 = final_w(1, 0), final_w(1, 5), final_w(2, 0)
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)


# ---------------------------------------------------------------------------------------------
# Loihi rules: reference = Lava 0.10.0 floating_pt learning engine semantics, written per neuron


def ref_loihi(x, y, w0, third, dw_terms, imp, tau, t_epoch):
    """dw_terms: list of (coef, dependency, factors) with factors among x1 x2 y1 y2 y3 (one product each).
    With a third factor (Loihi3F) the post neuron sends y1 (updated every step) and y2; the engine
    uses them as received, at every dependency."""
    n_post, n_pre = w0.shape
    w = w0.copy()
    X = np.zeros((2, n_pre))
    Y = np.zeros((3, n_post))
    tx, ty = np.zeros(n_pre, int), np.zeros(n_post, int)
    dec = {k: np.exp(-1.0 / v) for k, v in tau.items()}
    for t in range(len(x)):
        k = t % t_epoch + 1
        for i in range(n_pre):
            if x[t, i]:
                if tx[i]:
                    X[0, i] += imp["x1"]
                    X[1, i] += imp["x2"]
                tx[i] = k
        for j in range(n_post):
            if y[t, j]:
                if ty[j] and third is None:
                    Y[:, j] += [imp["y1"], imp["y2"], imp["y3"]]
                ty[j] = k
        if third is not None:  # ThreeFactorLIF
            Y[0] = dec["y1"] * Y[0] + imp["y1"] * y[t]
            Y[1] = third[t]
        if (t + 1) % t_epoch:
            continue
        hx, hy = [X.copy()], [Y.copy()]
        for s in range(1, t_epoch + 1):
            nx = hx[-1] * np.array([dec["x1"], dec["x2"]])[:, None] + np.array([imp["x1"], imp["x2"]])[:, None] * (tx == s)
            ny = hy[-1] * np.array([dec["y1"], dec["y2"], dec["y3"]])[:, None] + np.array([imp["y1"], imp["y2"], imp["y3"]])[:, None] * (ty == s)
            if third is not None:
                ny = Y.copy()
            hx.append(nx)
            hy.append(ny)
        dw = np.zeros_like(w)
        for j in range(n_post):
            for i in range(n_pre):
                for coef, dep, facs in dw_terms:
                    if dep == "x0":
                        if not tx[i]:
                            continue
                        when_x = when_y = tx[i]
                    elif dep == "y0":
                        if not ty[j]:
                            continue
                        when_x = when_y = ty[j]
                    else:
                        when_x = when_y = t_epoch
                    val = coef
                    for f in facs:
                        val *= hx[when_x][int(f[1]) - 1, i] if f[0] == "x" else hy[when_y][int(f[1]) - 1, j]
                    dw[j, i] += val
        w = w + dw
        X, Y = hx[-1], hy[-1]
        tx[:], ty[:] = 0, 0
    return w


@pytest.mark.parametrize("t_epoch", [1, 3])
@pytest.mark.parametrize("modulated", [False, True])
def test_loihi_rule_vs_reference(t_epoch, modulated):
    imp = dict(x1=1.0, x2=0.5, y1=1.0, y2=0.7, y3=0.0)
    tau = dict(x1=4.0, x2=8.0, y1=5.0, y2=3.0, y3=1.0)
    if modulated:
        dw = "2^-4*x0*y2*y1 - 2^-5*y0*x1 + 2^-6*u0*x2*y2"
        terms = [(2 ** -4, "x0", ("y2", "y1")), (-(2 ** -5), "y0", ("x1",)), (2 ** -6, "u", ("x2", "y2"))]
    else:
        dw = "2^-4*y0*x1 - 2^-5*x0*y1 + 2^-6*x0*x2*y2"
        terms = [(2 ** -4, "y0", ("x1",)), (-(2 ** -5), "x0", ("y1",)), (2 ** -6, "x0", ("x2", "y2"))]
    rule = LoihiRule(dw=dw, x1_impulse=imp["x1"], x1_tau=tau["x1"], x2_impulse=imp["x2"], x2_tau=tau["x2"],
                     y1_impulse=imp["y1"], y1_tau=tau["y1"], y2_impulse=imp["y2"], y2_tau=tau["y2"],
                     t_epoch=t_epoch, modulator="m" if modulated else None)
    g = harness(rule, mod_size=1 if modulated else None)
    xs = harness_inputs(T, mod_rows=1 if modulated else None, p=0.4)
    net, out, state = run_net(g, xs)
    check_post(out, xs)
    third = np.repeat(mod_values(xs["msrc"])[:, 0], N_POST, axis=1) if modulated else None
    w = ref_loihi(xs["pre"][:, 0], post_spikes(xs["drive"])[:, 0], np.asarray(g.projection("plastic").weight),
                  third, terms, imp, tau, t_epoch)
    np.testing.assert_allclose(state.projs["plastic"].rule.w[0, 0].detach().numpy(), w, rtol=1e-10, atol=1e-12)
    assert not np.allclose(w, g.projection("plastic").weight)


def test_signed_plastic_weights_stop_at_zero():
    """A rule that learns W never moves a signed synapse across zero (ir/synapses.py): strong
    depression leaves excitatory weights at exactly 0 and strong potentiation leaves inhibitory ones
    at 0, where ``sign |W|`` alone would let them bounce back; unsigned synapses are not clipped."""
    stdp = PairSTDP(eta_plus=1.0, eta_minus=0.0, decay_pre=0.5, decay_post=0.5)  # dW = M * LTP
    rule = ThreeFactor(base=stdp, modulator="m", mode=ModulationMode.GLOBAL)
    sign = np.array([[1, 1, -1, 0], [1, -1, -1, 0], [-1, 1, 1, 0]])
    w0 = 0.01 * sign + 0.01 * (sign == 0)
    g = harness(rule, w0=w0, mod_size=1)
    g = g.replace(projections=(g.projections[0].replace(sign=sign), *g.projections[1:]))
    for value, clipped in ((-3.0, sign > 0), (3.0, sign < 0)):
        xs = harness_inputs(T, mod_rows=1, p=0.6)
        xs["msrc"][:] = value
        _, _, state = run_net(g, xs)
        w = state.projs["plastic"].rule.w[0, 0].numpy()
        assert np.all(w[clipped] == 0.0), w
        assert np.all(np.sign(w[sign != 0]) * sign[sign != 0] >= 0)
        if value < 0:  # the unsigned column (w0 > 0) is depressed across zero
            assert np.all(w[sign == 0] < 0)


def test_trace_bound_saturates_the_traces():
    """PairSTDP.x_bound: every trace stops at the bound (Loihi's 7-bit traces), none without it."""
    import numpy as np

    import plastix.backends.torch as tb
    from plastix.ir import GraphBuilder, PairSTDP

    def final_post_trace(bound):
        b = GraphBuilder(seed=0)
        x = b.input("x", 3)
        h = b.cuba_lif("h", 2, du=1.0, dv=1.0, vth=0.5)
        b.connect(x, h, weight=np.ones((2, 3)), rule=PairSTDP(eta_plus=0.0, eta_minus=0.0, decay_pre=0.99,
                                                               decay_post=0.99, x_bound=bound), name="p")
        net = tb.compile(b.build(outputs=[h]), dtype=torch.float64)
        with torch.no_grad():
            out, st = net.run({"x": torch.ones(200, 1, 1, 3, dtype=torch.float64)})
        assert out["h"].mean() > 0.9  # h fires every step
        return st.projs["p"].rule.traces

    free, bounded = final_post_trace(None), final_post_trace(5.0)
    assert free.x_post.min() > 50 and free.x_pre.min() > 50
    assert torch.all(bounded.x_post == 5.0) and torch.all(bounded.x_pre == 5.0)


@pytest.mark.parametrize("channels", [1, 2])
def test_consume_by_another_modulator(channels):
    """``consume_by``: a copy of the write modulator consumes exactly as the write modulator itself; a
    modulator that is always 0 consumes nothing (ThreeFactor doc)."""
    from plastix.ir import Modulator

    rng = np.random.default_rng(6)
    base = EligibilityTrace(base=make_stdp(stdp_rule_dict({}, False, rng), False),
                            gamma=rng.uniform(0.5, 0.95, (N_POST, N_PRE)))
    rule = ThreeFactor(base=base, modulator="m", mode=ModulationMode.PER_POST, consume=0.7)
    g = harness(rule, mod_size=N_POST, mod_channels=channels)
    xs = harness_inputs(T, mod_rows=N_POST * channels)
    m = g.modulator("m")

    def final_w(graph):
        return run_net(graph, xs)[2].projs["plastic"].rule.w[0, 0].detach().numpy()

    def with_by(weight):
        by = m.replace(name="c", weight=weight)
        projs = tuple(p.replace(rule=p.rule.replace(consume_by="c")) if p.name == "plastic" else p for p in g.projections)
        return g.replace(projections=projs, modulators=(*g.modulators, by))

    np.testing.assert_allclose(final_w(with_by(m.weight)), final_w(g), rtol=1e-12, atol=1e-14)
    no_consume = g.replace(projections=tuple(p.replace(rule=p.rule.replace(consume=0.0)) if p.name == "plastic" else p
                                             for p in g.projections))
    np.testing.assert_allclose(final_w(with_by(np.zeros_like(m.weight))), final_w(no_consume), rtol=1e-12, atol=1e-14)
    assert not np.allclose(final_w(g), final_w(no_consume), atol=1e-9)


@pytest.mark.parametrize("oja", [False, True])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_rank_one_dp_update_matches_autograd(oja, clip):
    """dp_step's eager BPTT form (rules._RankOneLerp, its own backward) gives autograd's values and
    gradients of clip(lerp(E, a pre^T, eta)), a = post - E pre (Oja) or post; some entries clipped."""
    from plastix.backends.torch.rules import _RankOneLerp, matvec, outer

    g = torch.Generator().manual_seed(0)
    e = (torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64) * 0.4).requires_grad_()
    post = torch.rand(3, 2, 4, generator=g, dtype=torch.float64).requires_grad_()
    pre = torch.rand(3, 2, 5, generator=g, dtype=torch.float64).requires_grad_()
    eta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    a = post - matvec(e, pre) if oja else post
    ref = torch.lerp(e, outer(a, pre), eta)
    ref = ref if clip is None else ref.clamp(-clip, clip)
    out = _RankOneLerp.apply(e, post, pre, eta, clip, oja)
    if clip is not None:
        assert int((ref.abs() == clip).sum()) > 0
    w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for x, y in zip(torch.autograd.grad((ref * w).sum(), (e, post, pre, eta)), torch.autograd.grad((out * w).sum(), (e, post, pre, eta))):
        torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
