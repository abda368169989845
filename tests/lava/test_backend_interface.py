"""The one door to the backends (plastix.backends.compile -> network.episode): both backends, both
precisions, the same outputs and final plastic weights for the same episode."""
from __future__ import annotations

import numpy as np
import pytest

import plastix.backends as backends

from .test_learning import three_factor_graph, three_factor_inputs


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_both_backends_give_the_same_episode(lava, precision):
    g = three_factor_graph(precision)  # the fixed variant is Loihi-representable as it stands
    xs = three_factor_inputs()
    eps = {}
    for backend in backends.BACKENDS:
        # float: the IR's own math on Lava (the float learning engine's trace timing is approximate by design)
        net = backends.compile(g, backend, precision, timeout=90, learning_engine="exact" if precision == "float" else "auto")
        assert isinstance(net, backends.EpisodeNetwork)
        eps[backend] = net.episode(xs)
        net.close()
    t, lv = eps["torch"], eps["lava"]
    assert set(t.outputs) == set(lv.outputs) == {"post"} and t.outputs["post"].shape == (len(xs["x"]), 1)
    assert t.outputs["post"].sum() > 0
    np.testing.assert_array_equal(t.outputs["post"], lv.outputs["post"])
    assert set(t.weights) == set(lv.weights) == {"plastic"}
    w0 = np.asarray(g.projection("plastic").weight)
    assert not np.allclose(t.weights["plastic"], w0)  # it learned: a weak test otherwise
    if precision == "float":
        np.testing.assert_allclose(lv.weights["plastic"], t.weights["plastic"], rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(lv.weights["plastic"], t.weights["plastic"])


def test_compile_rejects_unknown_backend_and_precision():
    g = three_factor_graph("float")
    with pytest.raises(ValueError, match="unknown backend 'loihi3'"):
        backends.compile(g, "loihi3")
    with pytest.raises(ValueError, match="unknown precision"):
        backends.compile(g, "torch", "half")
