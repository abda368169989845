"""A Half-Cheetah policy on Lava (issue 20): for every variant of SpikePropamine's locomotion network, two
closed-loop policy steps on torch (float64) and the same input spikes replayed on Lava (float; the
Oja / BCM rules and NDP modulators host-emulated) give identical output spikes, hence identical actions."""
import dataclasses

import numpy as np
import pytest
import torch

from plastix.trainer.experiments.locomotion import HC_INIT, VARIANTS, compare_lava, locomotion_net

# strong, fast plasticity (α ⊙ E as large as W within a window), so that a wrong rule on Lava shows in the spikes
STRONG = dataclasses.replace(HC_INIT, alpha_scale=4.0, eta=0.2, eta_phi=0.2)


@pytest.fixture(autouse=True)
def _mujoco_log_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("variant", [v.value for v in VARIANTS])
def test_two_policy_steps_give_the_same_actions_on_lava(lava, variant):
    pytest.importorskip("gymnasium", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    pytest.importorskip("mujoco", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    import plastix.backends.torch as torch_backend

    g = locomotion_net(variant, seed=2, init=STRONG)
    if variant != "non_plastic":
        assert all(v["how"] == "host-emulated" for v in lava.support(g, "float")["rules"].values())
        # the plasticity matters: without the rules the same input gives other output spikes
        x = torch.as_tensor((np.random.default_rng(0).random((100, 1, 600)) < 0.07).astype(np.float64))
        static = g.replace(projections=tuple(p.replace(rule=None) for p in g.projections), modulators=())
        with torch.no_grad():
            a = torch_backend.compile(g, dtype=torch.float64).run({"joints": x})[0]["action"]
            b = torch_backend.compile(static, dtype=torch.float64).run({"joints": x})[0]["action"]
        assert not torch.equal(a, b)
    res = compare_lava(g, env_steps=2, seed=3, timeout=120)
    assert res["snn_steps"] == 100 and 0.05 < res["output_rate"] < 0.6
    assert res["identical_spikes"], res
    assert res["identical_actions"] and res["max_action_diff"] == 0.0
