"""Loihi fixed-point mode vs a numpy model of Lava 0.10.0 fixed_pt (lava-notes.md, "Reference
semantics"), and the shared quantiser."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.backends import quantize as qz
from plastix.backends.torch import compile
from plastix.ir import CubaLIF, Graph, Input, LIReadout, PairSTDP, Projection, UnsupportedKindError


# ---------------------------------------------------------------------------------------------
# numpy reference, written from lava-notes.md with Lava's integer parameters


def np_lif_fixed(u, v, a_in, du, dv, vth, bias_mant, bias_exp):
    du_eff = du + 1
    y = u.astype(np.int64) * (4096 - du_eff)
    u = (np.sign(y) * (np.abs(y) >> 12)).astype(np.int64) + (a_in.astype(np.int64) << 6)
    u = np.where(u > 2 ** 23, u - 2 ** 24, u)
    u = np.where(u <= -2 ** 23, u + 2 ** 24, u)
    y = v.astype(np.int64) * (4096 - dv)
    v = (np.sign(y) * (np.abs(y) >> 12)).astype(np.int64)
    v = np.clip(v + u + (bias_mant.astype(np.int64) << bias_exp), -(2 ** 23 - 1), 2 ** 23 - 1)
    s = v > (vth << 6)
    v = np.where(s, 0, v)
    return u, v, s


def np_dense_fixed(weights, weight_exp, sign_mode, s):
    """Lava PyDenseModelBitAcc: clip_weights + truncate_weights once, then sum and shift."""
    w = weights.astype(np.int64)
    if sign_mode == qz.INHIBITORY:
        w = -w
    mixed = int(sign_mode == qz.MIXED)
    w = np.clip(w, -256 * mixed, 255)
    w = (w >> mixed) << mixed
    if sign_mode == qz.INHIBITORY:
        w = -w
    a = w[:, s.astype(bool)].sum(axis=1)
    return a << weight_exp if weight_exp > 0 else a >> -weight_exp


def np_run_fixed(graph, spikes):
    """Simulate a feed-forward/recurrent LIF + Dense graph, Lava timing (one-step Dense delay)."""
    T = next(iter(spikes.values())).shape[0]
    lifs = {p.name: qz.lif_to_fixed(p) for p in graph.populations if p.kind != "input"}
    dense = {pr.name: qz.dense_to_fixed(pr.name, qz.effective_weight(pr)) for pr in graph.projections}
    st = {n: (np.zeros(p.size, np.int64), np.zeros(p.size, np.int64)) for n, p in
          ((p.name, p) for p in graph.populations if p.kind != "input")}
    out = {p.name: np.zeros(p.size, np.int64) for p in graph.populations}
    a_buf = {p.name: np.zeros(p.size, np.int64) for p in graph.populations}
    rec = {n: [] for n in graph.outputs}
    vrec = {n: [] for n in st}
    for t in range(T):
        new = {}
        for p in graph.populations:
            if p.kind == "input":
                new[p.name] = spikes[p.name][t].astype(np.int64)
                continue
            f = lifs[p.name]
            u, v, s = np_lif_fixed(*st[p.name], a_buf[p.name], f.du, f.dv, f.vth, f.bias_mant, f.bias_exp)
            if p.kind == "li":
                s = np.zeros_like(s)
                v = np_lif_fixed(*st[p.name], a_buf[p.name], f.du, f.dv, np.full_like(f.vth, 2 ** 30), f.bias_mant, f.bias_exp)[1]
            st[p.name] = (u, v)
            vrec[p.name].append(v)
            new[p.name] = s.astype(np.int64) if p.kind == "cuba_lif" else v
        a_buf = {p.name: np.zeros(p.size, np.int64) for p in graph.populations}
        for pr in graph.projections:
            d = dense[pr.name]
            a_buf[pr.post] = a_buf[pr.post] + np_dense_fixed(d.weights, d.weight_exp, d.sign_mode, new[pr.pre])
        out = new
        for n in graph.outputs:
            rec[n].append(out[n])
    return {n: np.array(v) for n, v in rec.items()}, {n: np.array(v) for n, v in vrec.items()}


def test_reference_matches_lava_notes_examples():
    """The truncation examples quoted in lava-notes.md (mixed-sign LSB loss)."""
    w = np.array([[-127, -17, 35, 201]])
    eff = qz.lava_dense_effective(w, qz.MIXED)
    np.testing.assert_array_equal(eff, [[-128, -18, 34, 200]])
    s = np.ones(4)
    assert np_dense_fixed(w, 0, qz.MIXED, s)[0] == -128 - 18 + 34 + 200


def random_lif_graph(seed, recurrent=True):
    rng = np.random.default_rng(seed)
    pops = (Input(name="x", size=10),
            CubaLIF(name="h", size=16, du=rng.integers(1, 4096) / 4096, dv=rng.integers(0, 4096) / 4096, vth=rng.integers(20, 200),
                    bias=rng.integers(-64, 64, 16) / 64),
            LIReadout(name="r", size=3, du=0.25, dv=0.125))
    projs = [Projection(name="xh", pre="x", post="h", weight=rng.integers(-128, 128, (16, 10)) * 2),
             Projection(name="hr", pre="h", post="r", weight=rng.integers(0, 256, (3, 16)) * 4)]
    if recurrent:
        projs.append(Projection(name="hh", pre="h", post="h", weight=-rng.integers(0, 256, (16, 16))))
    return Graph(populations=pops, projections=tuple(projs), outputs=("h", "r"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_mode_bit_exact_vs_numpy_lava_model(seed):
    g = random_lif_graph(seed)
    rng = np.random.default_rng(100 + seed)
    T = 60
    x = (rng.random((T, 10)) < 0.4).astype(np.int64)
    ref, vref = np_run_fixed(g, {"x": x})
    net = compile(g, precision="fixed")
    out, state = net.run({"x": torch.as_tensor(x, dtype=torch.float32).reshape(T, 1, 1, 10)})
    np.testing.assert_array_equal(out["h"][:, 0, 0].numpy(), ref["h"])
    assert out["h"].sum() > 0
    np.testing.assert_array_equal((out["r"][:, 0, 0].double() * 64).numpy(), ref["r"])
    np.testing.assert_array_equal(state.neurons["h"].v[0, 0].numpy(), vref["h"][-1])


def test_u_wraps_and_v_saturates():
    """A strongly driven neuron: u wraps around at 2^23, v saturates at -(2^23 - 1)."""
    g = Graph(populations=(Input(name="x", size=1), LIReadout(name="r", size=1, du=1 / 4096, dv=0.0)),
              projections=(Projection(name="p", pre="x", post="r", weight=[[-255 * 256]]),), outputs=("r",))
    T = 12
    x = np.ones((T, 1), np.int64)
    ref, vref = np_run_fixed(g, {"x": x})
    net = compile(g, precision="fixed")
    out, _ = net.run({"x": torch.ones(T, 1, 1, 1)})
    v = (out["r"][:, 0, 0, 0].double() * 64).numpy()
    np.testing.assert_array_equal(v, ref["r"][:, 0])
    assert v.min() == -(2 ** 23 - 1)


def test_quantized_graph_runs_bit_exact():
    """quantize_graph of a float graph is representable (idempotent) and runs bit-exactly."""
    rng = np.random.default_rng(9)
    g = random_lif_graph(5, recurrent=False)
    g = g.replace(projections=tuple(p.replace(weight=rng.normal(0, 0.3, p.weight.shape)) for p in g.projections),
                  populations=tuple(p.replace(vth=1.0, bias=0.01) if p.kind == "cuba_lif" else p for p in g.populations))
    gq = qz.quantize_graph(g)
    assert gq == qz.quantize_graph(gq)  # idempotent: already representable
    rng = np.random.default_rng(0)
    T = 40
    x = torch.as_tensor((rng.random((T, 1, 1, 10)) < 0.3).astype(np.float32))
    fixed = compile(gq, precision="fixed").run({"x": x})[0]["h"]
    ref, _ = np_run_fixed(gq, {"x": x[:, 0, 0].numpy().astype(np.int64)})
    np.testing.assert_array_equal(fixed[:, 0, 0].numpy(), ref["h"])


def test_quantize_mapping():
    pop = CubaLIF(name="h", size=2, du=0.2, dv=0.1, vth=1.0, bias=0.3)
    g = Graph(populations=(Input(name="x", size=2), pop),
              projections=(Projection(name="p", pre="x", post="h", weight=[[0.5, -0.25], [1.2, 0.01]]),), outputs=("h",))
    gq = qz.quantize_graph(g)
    h = gq.population("h")
    s = gq.metadata["quantize.scale.h"]
    assert s == 2048.0 and float(h.vth) == 2048.0
    np.testing.assert_array_equal(h.du, np.round(0.2 * 4096) / 4096)
    li = qz.lif_to_fixed(h)
    assert int(li.du[0]) == round(0.2 * 4096) - 1 and int(li.dv[0]) == round(0.1 * 4096)
    assert abs((int(li.bias_mant[0]) << int(li.bias_exp[0])) - 0.3 * 64 * s) <= 8  # 13-bit mantissa << 4
    d = qz.dense_to_fixed("p", qz.effective_weight(gq.projection("p")))
    assert d.sign_mode == qz.MIXED and np.all(np.abs(d.weights) <= 256)
    np.testing.assert_array_equal(qz.lava_dense_effective(d.weights, d.sign_mode).astype(np.int64) *
                                  2.0 ** d.weight_exp, d.effective)
    w = np.asarray(gq.projection("p").weight)
    np.testing.assert_allclose(w / s, [[0.5, -0.25], [1.2, 0.01]], atol=2 ** (np.log2(np.abs(w).max()) - 7) / s)


def test_fixed_rejects_unrepresentable_and_plastic():
    g = Graph(populations=(Input(name="x", size=1), CubaLIF(name="h", size=1, du=0.1234567, dv=0.1, vth=1.0)),
              projections=(Projection(name="p", pre="x", post="h", weight=[[1.0]]),), outputs=("h",))
    with pytest.raises(ValueError, match=r"h\.du"):
        compile(g, precision="fixed")
    stdp = PairSTDP(eta_plus=0.1, eta_minus=0.1, decay_pre=0.5, decay_post=0.5)
    g = Graph(populations=(Input(name="x", size=1), CubaLIF(name="h", size=1, du=0.25, dv=0.25, vth=1.0)),
              projections=(Projection(name="p", pre="x", post="h", weight=[[1.0]], rule=stdp),), outputs=("h",))
    with pytest.raises(UnsupportedKindError, match="pair_stdp"):
        compile(g, precision="fixed")
