"""The NIR file of a bundle loads with ``nir.read`` and its static part imports into snnTorch, which
then gives the same spikes as plastix (shifted by the IR's one-step projection latency per layer)."""
from __future__ import annotations

import numpy as np
import torch

from plastix.deploy import create_bundle, probe_inputs
from plastix.deploy.report import run_torch

from .conftest import static_ff


def test_bundle_nir_imports_into_snntorch(tmp_path):
    import nir
    from snntorch.import_nir import import_from_nir

    # snnTorch's importer assumes dt = 1e-4 s and no leak voltage: a graph at that dt maps exactly.
    # One output only: nirtorch 2.6 does not return when a population feeds both a layer and an output.
    g = static_ff(dt=1e-4).replace(outputs=("y",))
    out = create_bundle(g, tmp_path / "b", steps=20, plots=False)
    nir_graph = nir.read(out / "model.nir")
    assert {"x", "h", "y", "x_to_h", "h_to_y"} <= set(nir_graph.nodes)
    net = import_from_nir(nir_graph)
    T = 100
    xs = probe_inputs(g, T, seed=5)
    ref = run_torch(g, xs)[0]["y"]
    ys = []
    with torch.no_grad():
        for t in range(T):
            o = net(torch.as_tensor(xs["x"][t], dtype=torch.float32)[None])
            ys.append((o[0] if isinstance(o, tuple) else o)[0].numpy())
    peer = np.array(ys)
    assert ref.sum() > 10
    # two projections = two steps of latency in the IR (docs/semantics.md); snnTorch has none
    np.testing.assert_array_equal(ref[2:], peer[:-2])
