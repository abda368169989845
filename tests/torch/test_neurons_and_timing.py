"""Neuron dynamics (golden traces, gated cells) and the IR's projection timing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.backends.torch import compile
from plastix.ir import (CubaLIF, ENUCell, GatedPopulation, GatedSynapse, Graph, GRUCell, Input, LIReadout, LSTMCell,
                        Projection)


def one_neuron_graph(pop, w=1.0, delay=0):
    return Graph(populations=(Input(name="x", size=1), pop),
                 projections=(Projection(name="p", pre="x", post=pop.name, weight=[[w]], delay=delay),),
                 outputs=(pop.name,))


def test_cuba_lif_golden_trace():
    """Hand-computed: du = 0.5, dv = 0.25, vth = 1, bias = 0.1, input spikes at t = 0, 1, 2 (weight 1)
    reach u at t = 1, 2, 3. Lava order: u, then v with the new u, spike v > vth, reset v to 0."""
    g = one_neuron_graph(CubaLIF(name="n", size=1, du=0.5, dv=0.25, vth=1.0, bias=0.1))
    net = compile(g, dtype=torch.float64)
    x = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.float64).reshape(6, 1, 1, 1)
    state = net.init_state(1, 1)
    us, vs, ss = [], [], []
    for t in range(6):
        y, state = net.step({"x": x[t]}, state)
        us.append(state.neurons["n"].u.item())
        vs.append(state.neurons["n"].v.item())
        ss.append(y["n"].item())
    # t0: u=0, v=0.1 | t1: u=1, v=0.075+1+0.1=1.175 -> spike, v=0 | t2: u=1.5, v=0+1.5+.1=1.6 -> spike
    # t3: u=1.75, v=1.85 -> spike | t4: u=0.875, v=0.975 | t5: u=0.4375, v=0.73125+0.4375+0.1=1.26875 -> spike
    np.testing.assert_allclose(us, [0, 1, 1.5, 1.75, 0.875, 0.4375])
    np.testing.assert_allclose(vs, [0.1, 0, 0, 0, 0.975, 0])
    assert ss == [0, 1, 1, 1, 0, 1]


def test_strict_threshold():
    g = one_neuron_graph(CubaLIF(name="n", size=1, du=1.0, dv=1.0, vth=1.0))
    net = compile(g, dtype=torch.float64)
    out, _ = net.run({"x": torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1)})
    assert out["n"].sum() == 0  # v == vth does not spike


def test_refractory_holds_v_while_u_integrates():
    g = one_neuron_graph(CubaLIF(name="n", size=1, du=0.5, dv=0.0, vth=1.0, refractory=2), w=3.0)
    net = compile(g, dtype=torch.float64)
    x = torch.tensor([1, 0, 0, 0, 0, 0], dtype=torch.float64).reshape(6, 1, 1, 1)
    state = net.init_state(1, 1)
    vs, ss, us = [], [], []
    for t in range(6):
        y, state = net.step({"x": x[t]}, state)
        vs.append(state.neurons["n"].v.item())
        us.append(state.neurons["n"].u.item())
        ss.append(y["n"].item())
    # t1: u=3, v=3 -> spike, reset; t2, t3 held at 0 (u 1.5, 0.75); t4: v = 0 + 0.375 (no decay) ...
    assert ss == [0, 1, 0, 0, 0, 0]
    np.testing.assert_allclose(us, [0, 3, 1.5, 0.75, 0.375, 0.1875])
    np.testing.assert_allclose(vs, [0, 0, 0, 0, 0.375, 0.5625])


def test_li_readout():
    g = one_neuron_graph(LIReadout(name="r", size=1, du=0.5, dv=0.5, bias=0.0))
    net = compile(g, dtype=torch.float64)
    out, _ = net.run({"x": torch.tensor([2.0, 0, 0]).reshape(3, 1, 1, 1)})
    np.testing.assert_allclose(out["r"].flatten().detach().numpy(), [0, 2, 2.0])  # u: 0,2,1 ; v: 0, 2, 1+1


def test_projection_latency_and_delay():
    """Input at t moves u at t + 1 + delay."""
    for delay in (0, 3):
        g = one_neuron_graph(LIReadout(name="r", size=1, du=1.0, dv=1.0), delay=delay)
        net = compile(g, dtype=torch.float64)
        x = torch.zeros(8, 1, 1, 1, dtype=torch.float64)
        x[2] = 1.0
        out, _ = net.run({"x": x})
        assert int(out["r"].flatten().argmax()) == 3 + delay


def test_mask_and_sign():
    w = np.array([[0.5, -0.7, 0.2], [-0.3, 0.4, 0.9]])
    mask = np.array([[True, True, False], [True, False, True]])
    sign = np.array([[0, 1, -1], [-1, 0, 1]])
    g = Graph(populations=(Input(name="x", size=3), LIReadout(name="r", size=2, du=1.0, dv=1.0)),
              projections=(Projection(name="p", pre="x", post="r", weight=w, mask=mask, sign=sign),), outputs=("r",))
    net = compile(g, dtype=torch.float64)
    xv = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out, _ = net.run({"x": xv.reshape(1, 1, 1, 3).expand(2, 1, 1, 3)})
    w_eff = np.where(sign == 0, w, sign * np.abs(w)) * mask
    np.testing.assert_allclose(out["r"][1, 0, 0].detach().numpy(), w_eff @ xv.numpy())


def test_recurrent_graph_runs():
    w = np.array([[0.0, 2.0], [2.0, 0.0]])
    g = Graph(populations=(Input(name="x", size=2), CubaLIF(name="h", size=2, du=1.0, dv=1.0, vth=1.0)),
              projections=(Projection(name="i", pre="x", post="h", weight=2 * np.eye(2)),
                           Projection(name="rec", pre="h", post="h", weight=w)), outputs=("h",))
    net = compile(g, dtype=torch.float64)
    x = torch.zeros(6, 1, 1, 2, dtype=torch.float64)
    x[0, 0, 0, 0] = 1
    out, _ = net.run({"x": x})
    # h0 spikes at t1, h1 at t2, h0 at t3, ... (ping-pong through the recurrent weights)
    np.testing.assert_array_equal(out["h"][:, 0, 0].detach().numpy(), [[0, 0], [1, 0], [0, 1], [1, 0], [0, 1], [1, 0]])


# ---------------------------------------------------------------------------------------------
# gated cells


def _sig(z):
    return 1 / (1 + np.exp(-z))


def enu_reference(xs, wz, wr, wc, wo, feedback, h0, o0):
    """Bertens & Lee eq. 1, written per unit in numpy."""
    h, o, outs = h0.copy(), o0.copy(), []
    for x in xs:
        c = np.concatenate([h, o, x]) if feedback else np.concatenate([h, x])
        z, r = _sig(wz @ c), _sig(wr @ c)
        c2 = np.concatenate([r * h, o, x]) if feedback else np.concatenate([r * h, x])
        h = (1 - z) * h + z * np.tanh(wc @ c2)
        o = np.clip(wo @ h, 0, 1)
        outs.append(o)
    return np.array(outs)


@pytest.mark.parametrize("feedback", [True, False])
def test_enu_population_vs_reference(feedback):
    rng = np.random.default_rng(0)
    mem, cin, cout, n = 5, 2, 3, 4
    concat = mem + (cout if feedback else 0) + cin
    ws = {k: rng.normal(0, 0.7, (mem, concat)) for k in ("w_z", "w_r", "w_c")}
    wo = rng.normal(0, 0.7, (cout, mem))
    cell = ENUCell(memory=mem, in_channels=cin, out_channels=cout, w_o=wo, feedback=feedback, **ws)
    # a 2-channel input drives each unit through an identity projection
    g = Graph(populations=(Input(name="x", size=n, channels=cin), GatedPopulation(name="g", size=n, cell=cell)),
              projections=(Projection(name="p", pre="x", post="g", weight=np.eye(n)),), outputs=("g",))
    net = compile(g, dtype=torch.float64)
    T = 6
    x = rng.normal(0, 1, (T, 1, 1, n, cin))
    out, _ = net.run({"x": torch.as_tensor(x)})
    assert out["g"].shape == (T, 1, 1, n, cout)
    for u in range(n):
        xin = np.concatenate([np.zeros((1, cin)), x[:-1, 0, 0, u]])  # one-step latency
        ref = enu_reference(xin, ws["w_z"], ws["w_r"], ws["w_c"], wo, feedback, np.zeros(mem), np.zeros(cout))
        np.testing.assert_allclose(out["g"][:, 0, 0, u].detach().numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gru_lstm_match_torch_cells(kind):
    rng = np.random.default_rng(1)
    hid, cin, cout, n = 5, 3, 2, 2
    gates = (3 if kind == "gru" else 4) * hid
    p = dict(w_ih=rng.normal(0, .5, (gates, cin)), w_hh=rng.normal(0, .5, (gates, hid)), w_o=rng.normal(0, .5, (cout, hid)),
             b_ih=rng.normal(0, .5, gates), b_hh=rng.normal(0, .5, gates), b_o=rng.normal(0, .5, cout))
    cell = (GRUCell if kind == "gru" else LSTMCell)(hidden=hid, in_channels=cin, out_channels=cout, **p)
    g = Graph(populations=(Input(name="x", size=n, channels=cin), GatedPopulation(name="g", size=n, cell=cell)),
              projections=(Projection(name="p", pre="x", post="g", weight=np.eye(n)),), outputs=("g",))
    net = compile(g, dtype=torch.float64)
    T = 5
    x = torch.as_tensor(rng.normal(0, 1, (T, 1, 1, n, cin)))
    out, _ = net.run({"x": x})
    ref_cell = (torch.nn.GRUCell if kind == "gru" else torch.nn.LSTMCell)(cin, hid).double()
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(ref_cell, name.replace("w_", "weight_").replace("b_", "bias_")).copy_(torch.as_tensor(p[name]))
        h = torch.zeros(n, hid, dtype=torch.float64)
        c = torch.zeros(n, hid, dtype=torch.float64)
        xin = torch.cat([torch.zeros(1, n, cin, dtype=torch.float64), x[:-1, 0, 0]])
        for t in range(T):
            if kind == "gru":
                h = ref_cell(xin[t], h)
            else:
                h, c = ref_cell(xin[t], (h, c))
            y = h @ torch.as_tensor(p["w_o"]).T + torch.as_tensor(p["b_o"])
            torch.testing.assert_close(out["g"][t, 0, 0], y)


def _gated_synapse_net(seed, *, post_feedback=False, mem=3, n_pre=3, n_post=2):
    """x (Input) --GatedSynapse(ENU, 1 channel)--> r (LI readout, du = dv = 1): graph, gates, w_o, gain."""
    rng = np.random.default_rng(seed)
    ws = {k: rng.normal(0, 0.7, (mem, mem + 1 + 1)) for k in ("w_z", "w_r", "w_c")}
    wo = rng.normal(0, 0.7, (1, mem))
    cell = ENUCell(memory=mem, in_channels=1, out_channels=1, w_o=wo, **ws)
    gain = rng.uniform(0.5, 1.5, (n_post, n_pre))
    g = Graph(populations=(Input(name="x", size=n_pre), LIReadout(name="r", size=n_post, du=1.0, dv=1.0)),
              projections=(Projection(name="p", pre="x", post="r", weight=gain,
                                      rule=GatedSynapse(cell=cell, post_feedback=post_feedback)),), outputs=("r",))
    return g, ws, wo, gain, rng


def test_gated_synapse_cell_per_synapse():
    mem, n_pre, n_post = 3, 3, 2
    g, ws, wo, gain, rng = _gated_synapse_net(2)
    net = compile(g, dtype=torch.float64)
    T = 6
    x = rng.normal(0, 1, (T, 1, 1, n_pre))
    out, _ = net.run({"x": torch.as_tensor(x)})
    # each synapse (j, i) is its own ENU fed by x_i; r_j[t] = sum_i gain_ji z_ji[t-1]
    z = np.stack([enu_reference(x[:, 0, 0, i:i + 1], ws["w_z"], ws["w_r"], ws["w_c"], wo, True, np.zeros(mem), np.zeros(1))[:, 0]
                  for i in range(n_pre)], axis=1)  # (T, n_pre), identical for every post j
    a = z @ gain.T  # (T, n_post)
    np.testing.assert_allclose(out["r"][1:, 0, 0].detach().numpy(), a[:-1], rtol=1e-10, atol=1e-12)


def test_gated_synapse_post_feedback_feeds_the_post_output_back():
    """GatedSynapse.post_feedback: synapse (j, i) computes z_ji[t] with the post neuron's output r_j[t]
    in its feedback input o (IR doc), instead of its own z_ji[t-1]."""
    mem, n_pre, n_post = 3, 3, 2
    g, ws, wo, gain, rng = _gated_synapse_net(3, post_feedback=True)
    cell = g.projection("p").rule.cell
    T = 8
    x = rng.normal(0, 1, (T, 1, 1, n_pre))
    out, _ = compile(g, dtype=torch.float64).run({"x": torch.as_tensor(x)})
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, r = np.zeros((n_post, n_pre, mem)), np.zeros((T, n_post))
    for t in range(T - 1):
        z = np.zeros((n_post, n_pre))
        for j in range(n_post):
            for i in range(n_pre):
                o, xi = np.array([r[t, j]]), x[t, 0, 0, i:i + 1]
                c = np.concatenate([h[j, i], o, xi])
                zg, rg = sig(ws["w_z"] @ c), sig(ws["w_r"] @ c)
                ht = np.tanh(ws["w_c"] @ np.concatenate([rg * h[j, i], o, xi]))
                h[j, i] = (1 - zg) * h[j, i] + zg * ht
                z[j, i] = np.clip(wo @ h[j, i], 0, 1)[0]
        r[t + 1] = (gain * z).sum(1)
    np.testing.assert_allclose(out["r"][:, 0, 0].detach().numpy(), r, rtol=1e-10, atol=1e-12)
    with pytest.raises(Exception, match="post_feedback"):
        GatedSynapse(cell=cell.replace(feedback=False, w_z=ws["w_z"][:, :mem + 1],
                                       w_r=ws["w_r"][:, :mem + 1], w_c=ws["w_c"][:, :mem + 1]), post_feedback=True)
