"""Static LIF + Dense networks on Lava against the independent numpy reference (and the torch backend)."""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import spikes, static_graph
from .reference import simulate

STEPS = 250


@pytest.mark.parametrize("delays", [False, True], ids=["no-delay", "delays"])
@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_lif_dense_matches_reference(lava, precision, delays):
    g = static_graph(precision, delays=delays)
    x = {"x": spikes(STEPS, 20, seed=1)}
    with lava.compile(g, precision, timeout=90) as net:
        out = net.run(x, STEPS)
        state = net.state()
    ref, ref_state = simulate(g, x, STEPS, precision)
    assert set(out) == {"y", "h", "r"}
    for name in ("y", "h"):
        assert out[name].shape == ref[name].shape
        assert out[name].sum() > 10, f"{name} barely spikes: the test would be weak"
        np.testing.assert_array_equal(out[name], ref[name], err_msg=f"{precision} spikes of {name}")
    if precision == "fixed":
        np.testing.assert_array_equal(out["r"], ref["r"])
        for k in ("h.u", "h.v", "y.u", "y.v"):
            np.testing.assert_array_equal(state[k], ref_state[k], err_msg=k)
    else:
        np.testing.assert_allclose(out["r"], ref["r"], rtol=1e-9, atol=1e-9)
        for k in ("h.u", "h.v", "y.u", "y.v"):
            np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-9, atol=1e-9, err_msg=k)


def _torch_backend():
    import plastix.backends.torch as torch_backend  # conformance needs it: fail, never skip
    return torch_backend


@pytest.mark.parametrize("quantized", [False, True], ids=["integer-graph", "quantize_graph"])
def test_fixed_matches_torch_fixed_bit_for_bit(lava, quantized):
    """Same IR, same integers (backends/quantize.py): identical spikes and LI readouts."""
    torch_backend = _torch_backend()
    import torch

    if quantized:  # a float graph made representable by the shared quantiser
        from plastix.backends.quantize import quantize_graph

        g = quantize_graph(static_graph("float", delays=True))
    else:
        g = static_graph("fixed", delays=True)
    x = spikes(STEPS, 20, seed=3)
    with lava.compile(g, "fixed", timeout=90) as net:
        out = net.run({"x": x}, STEPS)
    tnet = torch_backend.compile(g, precision="fixed")
    res, _ = tnet.run({"x": torch.as_tensor(x).reshape(STEPS, 1, 20)})
    for name in ("y", "h", "r"):
        got = res[name].detach().cpu().numpy().astype(np.float64).reshape(out[name].shape)
        if name != "r":
            assert out[name].sum() > 10, name
        np.testing.assert_array_equal(out[name], got, err_msg=name)


def test_fixed_rejects_values_it_cannot_represent(lava):
    g = static_graph("float")  # non-integer weights, du not a multiple of 1/4096...
    with pytest.raises(ValueError, match="fixed precision needs"):
        lava.compile(g, "fixed")


def test_input_checks(lava):
    g = static_graph("float", readout=False)
    net = lava.compile(g, "float", timeout=30)
    with pytest.raises(ValueError, match="missing"):
        net.run({}, 10)
    with pytest.raises(ValueError, match="expected shape"):
        net.run({"x": np.zeros((10, 3))}, 10)
    with pytest.raises(ValueError, match="finite"):
        net.run({"x": np.full((10, 20), np.nan)}, 10)
    with pytest.raises(RuntimeError, match="run"):
        net.weights()
    from .test_learning import three_factor_graph, three_factor_inputs

    plastic = lava.compile(three_factor_graph("float"), "float", timeout=30)
    graded = three_factor_inputs()
    graded["x"] = graded["x"] * 0.5
    with pytest.raises(ValueError, match="graded"):
        plastic.run(graded, 10)


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_graded_inputs_match_torch(lava, precision):
    """Real-valued (float) / integer (fixed) inputs go through a graded Dense: a = W x."""
    torch_backend = _torch_backend()
    import torch

    from plastix.ir import GraphBuilder

    rng = np.random.default_rng(0)
    b = GraphBuilder(seed=0)
    x = b.input("x", 6)
    fixed = precision == "fixed"
    h = b.cuba_lif("h", 5, du=0.5, dv=0.5, vth=40 if fixed else 3.0)
    b.connect(x, h, weight=rng.integers(-3, 8, (5, 6)).astype(float) if fixed else rng.normal(0.5, 0.5, (5, 6)))
    g = b.build(outputs=[h])
    xin = rng.integers(0, 6, (150, 6)).astype(float) if fixed else rng.normal(0.5, 1.0, (150, 6))
    out = lava.compile(g, precision, timeout=60).run({"x": xin}, 150)
    res, _ = torch_backend.compile(g, dtype=torch.float64, precision=precision).run(
        {"x": torch.as_tensor(xin).reshape(150, 1, 6)})
    assert 0.05 < out["h"].mean() < 0.95
    np.testing.assert_array_equal(out["h"], res["h"].detach().numpy().reshape(150, -1))
    if fixed:
        with pytest.raises(ValueError, match="integer"):
            lava.compile(g, "fixed").run({"x": xin + 0.5}, 150)
