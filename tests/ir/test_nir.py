"""NIR interop: plastix -> NIR -> plastix is exact (plasticity included) and peer-style NIR
graphs import with an explicit, tested discrete-time conversion."""
import numpy as np
import pytest

import plastix.ir as ir
from plastix.ir.examples import cue_association_net
from plastix.ir.nir_interop import from_nir, read_nir, to_nir, write_nir

from .factories import KIND_FACTORIES

import nir  # noqa: E402  (a core dependency: fail, never skip)


def test_roundtrip_through_nir_file_keeps_plasticity(tmp_path):
    g = cue_association_net()
    path = write_nir(g, tmp_path / "net.nir")
    stock = nir.read(str(path))  # a stock reader still reads the file
    assert isinstance(stock, nir.NIRGraph) and isinstance(stock.nodes["hidden"], nir.CubaLIF)
    assert isinstance(stock.nodes["cues_to_hidden"], nir.Linear)
    g2 = read_nir(path)
    assert g2 == g
    assert isinstance(g2.projection("cues_to_hidden").rule, ir.ThreeFactor)


@pytest.mark.parametrize("kind", ["pair_stdp", "loihi", "bcm", "synaptic_q", "eligibility", "li"])
def test_rule_kinds_survive_nir(kind, tmp_path):
    g = KIND_FACTORIES[kind]()
    assert read_nir(write_nir(g, tmp_path / "g.nir")) == g


def test_edited_nir_parameter_wins_over_embedded_node():
    g = KIND_FACTORIES["graph"]()
    n = to_nir(g)
    n.nodes["h"].v_threshold = n.nodes["h"].v_threshold * 2
    g2 = from_nir(n)
    assert np.allclose(g2.population("h").vth, 2 * np.asarray(g.population("h").vth))
    assert g2.population("h").refractory == g.population("h").refractory == 2  # non-NIR field kept


def test_gated_population_has_no_nir_form():
    with pytest.raises(ir.UnsupportedKindError):
        to_nir(KIND_FACTORIES["gated"]())


def _peer_graph(dt_sim):
    """A graph written with the nir API the way snnTorch/Norse export a recurrent CUBA net."""
    rng = np.random.default_rng(0)
    n_in, n_h, n_o = 4, 5, 2
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=rng.normal(size=(n_h, n_in)) * 2, bias=np.zeros(n_h)),
        "lif1": nir.CubaLIF(tau_syn=np.full(n_h, 5 * dt_sim), tau_mem=np.full(n_h, 10 * dt_sim), r=np.full(n_h, 2.0),
                            v_leak=np.full(n_h, 0.1), v_threshold=np.ones(n_h), w_in=np.full(n_h, 1.5)),
        "rec": nir.Linear(weight=rng.normal(size=(n_h, n_h)) * 0.5),
        "fc2": nir.Linear(weight=rng.normal(size=(n_o, n_h))),
        "li": nir.LI(tau=np.full(n_o, 4 * dt_sim), r=np.ones(n_o), v_leak=np.zeros(n_o)),
        "output": nir.Output(output_type={"output": np.array([n_o])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_peer_graph_needs_dt():
    with pytest.raises(ir.IRValidationError, match="dt"):
        from_nir(_peer_graph(1e-3))


def _euler_nir(ng, x, dt):
    """Forward-Euler simulation of the NIR ODEs (current first, then voltage, reset to 0), with the
    one-step synaptic latency plastix and Loihi use. Independent of the plastix conversion."""
    lif, li = ng.nodes["lif1"], ng.nodes["li"]
    W1, b1, R = ng.nodes["fc1"].weight, ng.nodes["fc1"].bias, ng.nodes["rec"].weight
    W2 = ng.nodes["fc2"].weight
    I = np.zeros(5); v = np.zeros(5); s = np.zeros(5); vo = np.zeros(2)
    a1 = np.zeros(5); a2 = np.zeros(2)
    out_s, out_v = [], []
    for t in range(len(x)):
        I = I + dt / lif.tau_syn * (-I + lif.w_in * a1)
        v = v + dt / lif.tau_mem * (lif.v_leak - v + lif.r * I)
        s = (v > lif.v_threshold).astype(float)
        v = np.where(s > 0, 0.0, v)
        vo = vo + dt / li.tau * (li.v_leak - vo + li.r * a2)
        a1, a2 = W1 @ x[t] + b1 + R @ s, W2 @ s
        out_s.append(s); out_v.append(vo)
    return np.array(out_s), np.array(out_v)


def _plastix_reference(g, x):
    """The plastix discrete semantics (ir docstrings), for this graph's static part."""
    h, o = g.population("lif1"), g.population("li")
    W = {p.name: (p.pre, p.weight) for p in g.projections}
    u = np.zeros(h.size); v = np.zeros(h.size); s = np.zeros(h.size); uo = np.zeros(o.size); vo = np.zeros(o.size)
    a_h = np.zeros(h.size); a_o = np.zeros(o.size)
    out_s, out_v = [], []
    for t in range(len(x)):
        u = (1 - h.du) * u + a_h
        v = (1 - h.dv) * v + u + h.bias
        s = (v > h.vth).astype(float)
        v = np.where(s > 0, 0.0, v)
        uo = (1 - o.du) * uo + a_o
        vo = (1 - o.dv) * vo + uo + o.bias
        outs = {"input": x[t], "lif1": s}
        a_h = sum(w @ outs[pre] for pre, w in W.values() if w.shape[0] == h.size)
        a_o = sum(w @ outs[pre] for pre, w in W.values() if w.shape[0] == o.size)
        out_s.append(s); out_v.append(vo)
    return np.array(out_s), np.array(out_v)


def test_peer_graph_imports_and_matches_euler_integration():
    dt = 1e-3
    ng = _peer_graph(dt)
    g = from_nir(ng, dt=dt)
    assert [p.kind for p in g.populations] == ["input", "cuba_lif", "li"]
    h = g.population("lif1")
    assert np.allclose(h.du, 0.2) and np.allclose(h.dv, 0.1) and np.allclose(h.bias, 0.01)
    assert g.outputs == ("li",)
    x = (np.random.default_rng(1).random((120, 4)) < 0.3).astype(float)
    s_ref, v_ref = _euler_nir(ng, x, dt)
    s, v = _plastix_reference(g, x)
    assert s_ref.sum() > 5, "test net should spike"
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(v, v_ref, rtol=1e-9, atol=1e-12)


def test_dt_changes_the_discretisation():
    ng = _peer_graph(1e-3)
    assert np.allclose(from_nir(ng, dt=5e-4).population("lif1").du, 0.1)
    with pytest.raises(ir.IRValidationError, match="smaller dt"):
        from_nir(ng, dt=1e-2)


def test_export_then_import_conversion_is_consistent():
    """Exported NIR parameters reproduce the plastix dynamics under the same Euler integrator."""
    g = KIND_FACTORIES["li"]()
    n = to_nir(g)
    node = n.nodes["h"]
    assert np.allclose(g.dt / node.tau_syn, g.population("h").du)
    assert np.allclose(node.r * (g.dt / node.tau_mem) * node.w_in * (g.dt / node.tau_syn), 1.0)
