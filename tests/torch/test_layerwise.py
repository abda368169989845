"""``compile(graph, schedule="layerwise")``: feed-forward graphs run one population at a time, in interval
chunks, give the step schedule's outputs, final state and gradients (issue 20)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree

from plastix.backends.torch import Schedule, compile
from plastix.backends.torch.layerwise import LayerwiseError, chunk_ends
from plastix.ir import BCM, CubaLIF, Graph, HebbianDecay, Input, Modulator, Oja, PairSTDP, Projection

SIZES = {"inp": 9, "h1": 6, "h2": 5, "out": 4}


def _rule(kind: str, n_post: int, n_pre: int, interval: int, modulator: str | None, rng: np.random.Generator):
    kw = dict(eta=0.3, alpha=rng.uniform(-0.5, 0.5, (n_post, n_pre)), interval=interval, clip=0.4, modulator=modulator)
    if kind == "hebbian_decay":
        return HebbianDecay(**kw)
    if kind == "oja":
        return Oja(**kw)
    return BCM(eta_phi=rng.uniform(0.1, 0.3, n_pre), psi=0.05, **kw)


def ff_graph(kind: str, interval: int, *, modulated: bool = False, seed: int = 0) -> Graph:
    """inp -> h1 -> h2 -> out, every projection plastic (``kind``), plus a static skip inp -> h2 with
    delay 2 and a sign-constrained h1 -> out with the rule's interval + 1 (two intervals into one
    population); with ``modulated`` each plastic projection reads a modulator of its post population."""
    rng = np.random.default_rng(seed)
    pops = [Input(name="inp", size=SIZES["inp"])]
    pops += [CubaLIF(name=n, size=SIZES[n], du=0.3, dv=0.2, vth=0.6) for n in ("h1", "h2", "out")]
    projs, mods = [], []
    for pre, post in (("inp", "h1"), ("h1", "h2"), ("h2", "out")):
        m = f"m_{post}" if modulated else None
        if m:
            mods.append(Modulator(name=m, source=post, size=SIZES[post], weight=rng.normal(0, 0.5, (SIZES[post],) * 2),
                                  bias=np.ones(SIZES[post])))
        projs.append(Projection(name=f"{pre}_{post}", pre=pre, post=post,
                                weight=rng.normal(0.4, 0.5, (SIZES[post], SIZES[pre])),
                                rule=_rule(kind, SIZES[post], SIZES[pre], interval, m, rng)))
    projs.append(Projection(name="skip", pre="inp", post="h2", delay=2, weight=rng.normal(0, 0.4, (SIZES["h2"], SIZES["inp"]))))
    sign = rng.choice([-1, 1], (SIZES["out"], SIZES["h1"]))
    projs.append(Projection(name="signed", pre="h1", post="out", weight=rng.normal(0, 0.6, (SIZES["out"], SIZES["h1"])),
                            sign=sign, rule=_rule(kind, SIZES["out"], SIZES["h1"], interval + 1, None, rng)))
    return Graph(populations=tuple(pops), projections=tuple(projs), modulators=tuple(mods), outputs=("out", "h1"))


def _spikes(T: int, P: int, B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, P, B, SIZES["inp"], generator=g, dtype=torch.float64) < 0.5).double()


def _run(net, x, state):  # noqa: ANN001
    out, st = net.run({"inp": x}, state)
    loss = out["out"].sum() + 0.5 * out["h1"].sum() + st.neurons["out"].v.square().sum()
    loss = loss + sum(ps.rule.e.square().sum() + ps.rule.acc_post.sum() for ps in st.projs.values() if ps.rule is not None)
    grads = torch.autograd.grad(loss, list(net.params.values()), allow_unused=True)
    return out, st, grads


@pytest.mark.parametrize("interval", [1, 3])
@pytest.mark.parametrize("kind,modulated", [("hebbian_decay", False), ("oja", False), ("bcm", False), ("oja", True),
                                            ("bcm", True)])
def test_layerwise_equals_step_schedule(kind, modulated, interval):
    """Outputs, final state (t, outputs, inputs a, neurons, E / accumulators / phi, delay buffers) and the
    gradients of every parameter, from a state in mid-interval (t0 = 2) over T = 8 steps, P = 2, B = 3."""
    g = ff_graph(kind, interval, modulated=modulated)
    step = compile(g, dtype=torch.float64, surrogate="exponential")
    lw = compile(g, dtype=torch.float64, surrogate="exponential", schedule="layerwise")
    lw.load_state_dict(step.state_dict())
    with torch.no_grad():
        _, state = step.run({"inp": _spikes(2, 2, 3, 1)})
    o_s, s_s, g_s = _run(step, _spikes(8, 2, 3, 2), state)
    o_l, s_l, g_l = _run(lw, _spikes(8, 2, 3, 2), state)
    assert o_s["out"].sum() > 0 and o_s["h1"].sum() > 0
    for n in o_s:
        assert torch.equal(o_s[n], o_l[n]), n
    leaves_s, spec_s = pytree.tree_flatten(s_s)
    leaves_l, spec_l = pytree.tree_flatten(s_l)
    assert spec_s == spec_l
    for a, b in zip(leaves_s, leaves_l):
        if torch.is_tensor(a):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
        else:
            assert a == b
    moved = 0
    for name, a, b in zip(step.params.keys(), g_s, g_l):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11, msg=name)
            moved += int("/rule/eta" in name and a.abs().sum() > 0)
    assert moved >= 3  # the rule rates get gradients (E changes within the window)


def test_run_chooses_the_schedule_per_call():
    g = ff_graph("oja", 2)
    net = compile(g, dtype=torch.float64)
    assert net.schedule is Schedule.STEP
    x = _spikes(6, 1, 2, 3)
    with torch.no_grad():
        a, sa = net.run({"inp": x})
        b, sb = net.run({"inp": x}, schedule="layerwise")
    assert torch.equal(a["out"], b["out"]) and sa.t == sb.t == 6
    torch.testing.assert_close(sb.projs["h2_out"].rule.e, sa.projs["h2_out"].rule.e)


def test_chunk_ends():
    assert chunk_ends(0, 10, [5]) == [4, 9]
    assert chunk_ends(3, 7, [5]) == [1, 6]  # updates after steps 4 and 9
    assert chunk_ends(0, 7, [2, 3]) == [1, 2, 3, 5, 6]
    assert chunk_ends(0, 4, []) == [3]


def test_recurrent_graph_is_refused():
    g = ff_graph("oja", 1)
    rec = Projection(name="back", pre="h2", post="h1", weight=np.full((SIZES["h1"], SIZES["h2"]), 0.1))
    g = g.replace(projections=g.projections + (rec,))
    with pytest.raises(LayerwiseError, match=r"cycle.*back \(h2 -> h1\)"):
        compile(g, schedule="layerwise")
    net = compile(g)  # the step schedule runs it
    with pytest.raises(LayerwiseError, match="cycle"):
        net.run({"inp": _spikes(3, 1, 1, 0).float()}, schedule="layerwise")


def test_per_step_rule_is_refused():
    g = ff_graph("oja", 1)
    stdp = PairSTDP(eta_plus=0.01, eta_minus=0.01, decay_pre=0.8, decay_post=0.8)
    g = g.replace(projections=tuple(p.replace(rule=stdp) if p.name == "h1_h2" else p for p in g.projections))
    with pytest.raises(LayerwiseError, match="'h1_h2': rule kind 'pair_stdp' changes the synapse at every step"):
        compile(g, schedule="layerwise")


def test_force_and_unknown_schedule_are_refused():
    net = compile(ff_graph("bcm", 2), schedule="layerwise")
    x = _spikes(3, 1, 1, 0).float()
    with pytest.raises(LayerwiseError, match="force"):
        net.run({"inp": x}, force={"h1": torch.zeros(3, 1, 1, SIZES["h1"])})
    with pytest.raises(ValueError, match="unknown schedule 'chunked'; known: step, layerwise"):
        compile(ff_graph("bcm", 2), schedule="chunked")


@pytest.mark.slow
def test_compiled_layerwise_equals_eager():
    """``jit=True`` compiles the layer chunks (one variant per layer and chunk length, any interval)."""
    from torch._dynamo.utils import counters

    g = ff_graph("oja", 2, modulated=True)
    eager = compile(g, dtype=torch.float64, surrogate="exponential", schedule="layerwise")
    jit = compile(g, dtype=torch.float64, surrogate="exponential", schedule="layerwise", jit=True)
    jit.load_state_dict(eager.state_dict())
    state = eager.init_state(2, 3)
    o_e, _, g_e = _run(eager, _spikes(6, 2, 3, 2), state)
    counters.clear()
    o_j, _, g_j = _run(jit, _spikes(6, 2, 3, 2), state)
    assert jit.jit_layerwise, "the compiled chunks fell back to eager"
    # two variants each for h1 and h2 (chunks of 2 steps; the last chunk forms no next weight); four for
    # out, whose rules (intervals 2 and 3) end its chunks at four (chunk length, phases) combinations
    assert counters["stats"]["unique_graphs"] == 8
    for n in o_e:
        assert torch.equal(o_e[n], o_j[n]), n
    for name, a, b in zip(eager.params.keys(), g_e, g_j):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=name)
