"""The Loihi 2 resource and energy model on graphs whose answers are known by hand."""
from __future__ import annotations

import numpy as np

import plastix.ir as ir
from plastix.deploy import loihi2
from plastix.deploy.report import measure_activity


def _support(graph, how="native"):
    return {"populations": {p.name: {"how": how} for p in graph.populations},
            "projections": {p.name: {"how": how} for p in graph.projections},
            "rules": {p.name: {"how": how} for p in graph.projections if p.rule is not None}}


def test_cores_fan_in_and_fan_out():
    n = loihi2.NEURONS_PER_CORE + 808  # needs two cores by neuron count
    b = ir.GraphBuilder(seed=0)
    x = b.input("x", 2)
    big = b.cuba_lif("big", n, du=0.5, dv=0.5, vth=1.0)
    wide = b.input("wide", loihi2.FAN_IN_AXONS_PER_CORE + 1)
    one = b.cuba_lif("one", 1, du=0.5, dv=0.5, vth=1.0)
    b.connect(x, big, weight=np.ones((n, 2)))
    b.connect(wide, one, weight=np.ones((1, loihi2.FAN_IN_AXONS_PER_CORE + 1)))
    w = np.zeros((1, n))
    w[0, :10] = 1.0  # a static zero weight is no synapse
    b.connect(big, one, weight=w)
    g = b.build(outputs=[one])
    res = loihi2.resources(g, _support(g))
    big_r, one_r, x_r = res["populations"]["big"], res["populations"]["one"], res["populations"]["x"]
    assert big_r["cores"] == 2 and big_r["neurons_per_core"] == n // 2 and big_r["synapses_in"] == 2 * n
    assert x_r["max_fan_out"] == n and x_r["fan_out_axons"] == 2 and x_r["cores"] == 0
    assert big_r["max_fan_out"] == 1 and big_r["fan_out_axons"] == 1 and big_r["fits"]
    assert one_r["max_fan_in"] == loihi2.FAN_IN_AXONS_PER_CORE + 11 and one_r["fits"] is False
    assert res["cores"] == 3 and res["chips"] == 1


def test_spike_sources_need_no_cores():
    b = ir.GraphBuilder(seed=0)
    b.input("x", 3)
    g = b.build(outputs=["x"])
    res = loihi2.resources(g, _support(g))
    assert res["cores"] == 0


def test_traces_of_a_three_factor_engine_rule():
    tr = loihi2.traces_used({"dw": "u0*t*y2", "dt": "2^-6*x1*y0 - 2^-6*y1*x0 - u0*t*2^-2", "dd": " "})
    assert tr == {"pre": ["x1"], "post": ["y1", "y2"], "tag": True, "delay_var": False}
    assert loihi2.traces_used({"dw": "x0*y0 - x2*y3", "dt": " "}) == {"pre": ["x2"], "post": ["y3"], "tag": False,
                                                                      "delay_var": False}
    two = loihi2.traces_used({"dw": "u0*t*y2 - u0*d*y3", "dt": "2^-2*x1*y0 - 2^-2*u0*t", "dd": "2^-2*y1*x0 - 2^-2*u0*d"})
    assert two == {"pre": ["x1"], "post": ["y1", "y2", "y3"], "tag": True, "delay_var": True}


def test_energy_is_counts_times_labelled_coefficients():
    ops = {"synaptic_ops": 10.0, "plasticity_ops": 2.0, "neuron_updates": 5.0, "spikes": 3.0}
    e = loihi2.energy_per_step(ops)
    assert e["label"] == "model" and "Davies" in e["source"]
    want = 10 * 23.6 + 2 * 120.0 + 5 * 52.0 + 3 * 1.7
    assert abs(e["total_pJ"] - want) < 1e-9


def test_measured_activity_counts_events_times_synapses():
    b = ir.GraphBuilder(seed=0)
    x = b.input("x", 3)
    h = b.cuba_lif("h", 2, du=0.5, dv=0.5, vth=1.0)
    b.connect(x, h, weight=np.ones((2, 3)),
              rule=ir.PairSTDP(eta_plus=0.01, eta_minus=0.01, decay_pre=0.5, decay_post=0.5))
    g = b.build(outputs=[h])
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)  # x0 reaches 2, x1 reaches 1, x2 none
    g = g.replace(projections=(g.projections[0].replace(mask=mask),))
    outs = {"x": np.array([[1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0]], float), "h": np.zeros((4, 2))}
    act = measure_activity(g, outs)
    assert act["synaptic_ops"] == (2 + 1 + 3 + 0) / 4
    assert act["spikes"] == 6 / 4 and act["plasticity_ops"] == 3 and act["neuron_updates"] == 2
