"""Gated (ENU / GRU / LSTM) populations and multi-channel inputs on the Lava backend (float,
host-emulated in :class:`~plastix.backends.lava.procs.gated_population.HostGatedPopulation`) give
the torch backend's float64 outputs, step for step (one-step latency per projection)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.ir import (ENUCell, GatedPopulation, Graph, GRUCell, Input, LSTMCell, Projection,
                        UnsupportedKindError)

T = 60
C_IN, C_OUT, SIZE = 3, 2, 2


def _cell(kind: str, rng, feedback: bool = True):
    n = 5
    if kind == "enu":
        concat = n + (C_OUT if feedback else 0) + C_OUT
        return ENUCell(memory=n, in_channels=C_OUT, out_channels=C_OUT, feedback=feedback,
                       w_z=rng.normal(0, 0.6, (n, concat)), w_r=rng.normal(0, 0.6, (n, concat)),
                       w_c=rng.normal(0, 0.8, (n, concat)), w_o=rng.normal(0.3, 0.6, (C_OUT, n)))
    cls, g = (GRUCell, 3) if kind == "gru" else (LSTMCell, 4)
    return cls(hidden=n, in_channels=C_OUT, out_channels=C_OUT,
               w_ih=rng.normal(0, 0.6, (g * n, C_OUT)), w_hh=rng.normal(0, 0.6, (g * n, n)),
               w_o=rng.normal(0, 0.6, (C_OUT, n)), b_ih=rng.normal(0, 0.2, g * n),
               b_hh=rng.normal(0, 0.2, g * n), b_o=rng.normal(0, 0.2, C_OUT))


def _graph(kind: str, feedback: bool = True, seed: int = 0) -> Graph:
    """x (Input 3 x C_OUT channels) -> unit (SIZE gated units) -> unit2 (1 unit), plus a recurrent
    unit -> unit projection: exercises channels on both ends, fan-in sums and feedback latency."""
    rng = np.random.default_rng(seed)
    cell = _cell(kind, rng, feedback)
    return Graph(populations=(Input(name="x", size=C_IN, channels=C_OUT),
                              GatedPopulation(name="unit", size=SIZE, cell=cell),
                              GatedPopulation(name="unit2", size=1, cell=cell)),
                 projections=(Projection(name="x_to_unit", pre="x", post="unit",
                                         weight=rng.normal(0, 0.7, (SIZE, C_IN))),
                              Projection(name="rec", pre="unit", post="unit", weight=rng.normal(0, 0.5, (SIZE, SIZE))),
                              Projection(name="unit_to_unit2", pre="unit", post="unit2",
                                         weight=rng.normal(0, 0.7, (1, SIZE)))),
                 outputs=("unit", "unit2"))


def _torch_outputs(graph: Graph, x: np.ndarray) -> dict:
    from plastix.backends.torch import compile as torch_compile

    net = torch_compile(graph, dtype=torch.float64)
    with torch.no_grad():
        out, _ = net.run({"x": torch.as_tensor(x, dtype=torch.float64)[:, None]})
    return {k: v.reshape(T, *v.shape[3:]).double().numpy() for k, v in out.items()}


@pytest.mark.parametrize("kind,feedback", [("gru", True), ("lstm", True), ("enu", True), ("enu", False)])
def test_gated_population_equals_torch(lava, kind, feedback):
    graph = _graph(kind, feedback)
    report = lava.support(graph, "float")
    assert report["populations"]["unit"]["how"] == lava.HOST
    assert "HostGatedPopulation" in report["populations"]["unit"]["why"]
    x = np.random.default_rng(1).normal(0, 1.0, (T, C_IN, C_OUT))
    ref = _torch_outputs(graph, x)
    with lava.compile(graph, precision="float", timeout=120.0) as net:
        out = net.run({"x": x}, T)
    assert out["unit"].shape == (T, SIZE, C_OUT) and out["unit2"].shape == (T, 1, C_OUT)
    assert np.abs(ref["unit2"]).max() > 1e-3
    np.testing.assert_allclose(out["unit"], ref["unit"], atol=1e-9)
    np.testing.assert_allclose(out["unit2"], ref["unit2"], atol=1e-9)


def test_gated_population_fixed_precision_is_unsupported(lava):
    with pytest.raises(UnsupportedKindError, match="float only"):
        lava.support(_graph("gru"), "fixed")


def test_gated_into_lif_and_multichannel_passthrough(lava):
    """A 1-channel GRU unit drives a LIF through a graded Dense and a delayed (DelayDense) multi-channel
    projection; the multi-channel input is also an output (returned as given, (T, size, channels))."""
    rng = np.random.default_rng(4)
    n = 4
    cell = GRUCell(hidden=n, in_channels=C_OUT, out_channels=1, w_ih=rng.normal(0, 0.8, (3 * n, C_OUT)),
                   w_hh=rng.normal(0, 0.6, (3 * n, n)), w_o=rng.normal(0.5, 0.6, (1, n)))
    from plastix.ir import CubaLIF

    graph = Graph(populations=(Input(name="x", size=C_IN, channels=C_OUT),
                               GatedPopulation(name="g", size=3, cell=cell),
                               CubaLIF(name="y", size=2, du=0.3, dv=0.2, vth=0.5)),
                  projections=(Projection(name="x_to_g", pre="x", post="g", weight=rng.normal(0, 0.7, (3, C_IN)),
                                          delay=2),
                               Projection(name="g_to_y", pre="g", post="y", weight=rng.normal(1.0, 0.5, (2, 3)))),
                  outputs=("g", "y", "x"))
    x = rng.normal(0, 1.0, (T, C_IN, C_OUT))
    ref = _torch_outputs(graph, x)
    with lava.compile(graph, precision="float", timeout=120.0) as net:
        out = net.run({"x": x}, T)
        with pytest.raises(ValueError, match="expected shape"):
            net.run({"x": x.reshape(T, -1)}, T)
    assert out["g"].shape == (T, 3) and out["x"].shape == (T, C_IN, C_OUT)
    np.testing.assert_allclose(out["g"], ref["g"], atol=1e-9)
    np.testing.assert_array_equal(out["x"], x)
    assert 0 < out["y"].mean() < 1
    np.testing.assert_array_equal(out["y"], ref["y"])


def test_gated_init_noise_is_unsupported(lava):
    g = _graph("gru")
    pops = tuple(p if p.name != "unit" else GatedPopulation(name="unit", size=SIZE, cell=p.cell, init_noise=0.1)
                 for p in g.populations)
    noisy = Graph(populations=pops, projections=g.projections, outputs=g.outputs)
    with pytest.raises(UnsupportedKindError, match="init_noise"):
        lava.support(noisy, "float")
