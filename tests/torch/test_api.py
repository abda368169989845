"""Public API: doctests, protocol conformance, per-individual parameters of gated units."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import plastix.backends.torch as pxt
import plastix.backends.torch.network as network
from plastix.backends.base import EpisodeNetwork, Network
from plastix.ir import ENUCell, GatedPopulation, GatedSynapse, Graph, GRUCell, Input, LIReadout, Projection
from plastix.ir.examples import cue_association_net


@pytest.mark.parametrize("module", [pxt, network])
def test_doctests(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0


def test_protocols():
    net = pxt.compile(cue_association_net())
    assert isinstance(net, Network) and isinstance(net, EpisodeNetwork)


def gated_graph():
    rng = np.random.default_rng(0)
    mem = 4
    enu = ENUCell(memory=mem, in_channels=1, out_channels=2, **{k: rng.normal(0, .5, (mem, mem + 2 + 1)) for k in ("w_z", "w_r", "w_c")},
                  w_o=rng.normal(0, .5, (2, mem)))
    syn = GRUCell(hidden=3, in_channels=2, out_channels=1, w_ih=rng.normal(0, .5, (9, 2)), w_hh=rng.normal(0, .5, (9, 3)),
                  w_o=rng.normal(0, .5, (1, 3)), b_ih=rng.normal(0, .5, 9))
    return Graph(populations=(Input(name="x", size=3), GatedPopulation(name="g", size=3, cell=enu),
                              LIReadout(name="r", size=2, du=0.5, dv=0.5)),
                 projections=(Projection(name="xg", pre="x", post="g", weight=rng.normal(0, 1, (3, 3))),
                              Projection(name="gr", pre="g", post="r", weight=rng.uniform(0.5, 1, (2, 3)), rule=GatedSynapse(cell=syn))),
                 outputs=("r",))


def test_gated_per_individual_params_equal_single_runs():
    net = pxt.compile(gated_graph(), dtype=torch.float64)
    P, T = 3, 8
    g = torch.Generator().manual_seed(0)
    params = {k: v.detach() + 0.3 * torch.randn(P, *v.shape, generator=g, dtype=torch.float64)
              for k, v in net.params.items() if "cell" in k}
    xs = {"x": torch.randn(T, P, 2, 3, generator=g, dtype=torch.float64)}
    with torch.no_grad():
        out, _ = net.run(xs, params=params)
        for p in range(P):
            o1, _ = net.run({"x": xs["x"][:, p:p + 1]}, params={k: v[p:p + 1] for k, v in params.items()})
            torch.testing.assert_close(o1["r"][:, 0], out["r"][:, p])
    assert not torch.allclose(out["r"][:, 0], out["r"][:, 1])


def test_gated_init_noise_uses_generator():
    g = gated_graph()
    g = g.replace(populations=tuple(p.replace(init_noise=0.1) if p.kind == "gated" else p for p in g.populations))
    net = pxt.compile(g)
    s1 = net.init_state(2, 2, generator=torch.Generator().manual_seed(3))
    s2 = net.init_state(2, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1.out["g"], s2.out["g"]) and s1.out["g"].abs().sum() > 0
