"""An evolved ENU (the ``model.plx`` of a short ES run) on the Lava backend gives the torch backend's
outputs (float precision).

The exported graph (:meth:`plastix.trainer.algorithms.models.ModelSpec.to_graph`) is a 16-channel ``Input``
feeding a ``GatedPopulation`` of one ENU neuron; the Lava backend host-emulates the gated
population (``HostGatedPopulation``) and carries the 16 channels as flat unit-major vectors. An
:class:`plastix.ir.UnsupportedKindError` from :func:`plastix.backends.lava.support` fails the test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from plastix.ir import load as load_graph
from plastix.tasks.registry import make_task
from plastix.trainer.experiments.es_run import train_es

T = 60


@pytest.fixture(scope="module")
def evolved_enu(tmp_path_factory):
    """A few generations of OpenAI-ES on the IAF mimic task; returns the exported model.plx path."""
    out = tmp_path_factory.mktemp("enu_run")
    summary = train_es("iaf", "enu", "quick", out, seed=0, generations=3, population=8, num_envs=2,
                       progress=False)
    return summary["model_file"]


def _iaf_inputs(steps: int) -> np.ndarray:
    """(steps, 1, 16): one IAF episode's input current in channel 0, the rest zero (the task I/O)."""
    obs = []
    task = make_task("iaf", "quick", population=1, num_envs=1, steps=steps)
    o, _ = task.reset(seed=3)
    for _ in range(steps):
        obs.append(o[0, 0, 0].item())
        o, *_ = task.step(torch.zeros(1, 1, 1))
    x = np.zeros((steps, 1, 16))
    x[:, 0, 0] = obs
    return x


def test_evolved_enu_on_lava_equals_torch(evolved_enu, lava):
    graph = load_graph(evolved_enu)
    report = lava.support(graph, "float")
    assert report["populations"]["unit"]["how"] == lava.HOST

    from plastix.backends.torch import compile as torch_compile
    x = _iaf_inputs(T)
    with torch.no_grad():
        ref, _ = torch_compile(graph).run({"x": torch.as_tensor(x, dtype=torch.float32)[:, None]})
    ref = ref["unit"].reshape(T, 16).numpy()
    with lava.compile(graph, precision="float", timeout=300.0) as net:
        out = net.run({"x": x}, T)
    ours = np.asarray(out["unit"], dtype=np.float64).reshape(T, 16)
    assert np.abs(ref).max() > 0  # the unit answers at all
    np.testing.assert_allclose(ours, ref, atol=1e-5)
