"""tools/cue_margins.py: the cue margins it reads from the firing rates and the one-shot count learner
that docs/results.md (issue 14) compares trained models with."""
import importlib.util
from pathlib import Path

import torch

from plastix.tasks.cue_association import OneShotCueConfig, one_shot_cue_problems

_spec = importlib.util.spec_from_file_location("cue_margins", Path(__file__).parents[2] / "tools" / "cue_margins.py")
cue_margins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cue_margins)


def test_margins_are_the_cue_count_differences_and_the_count_learner_is_near_perfect():
    task = OneShotCueConfig(n_cues=5)
    pr = one_shot_cue_problems(400, task, generator=torch.Generator().manual_seed(0))
    m = cue_margins.margins(pr, task, 400)
    assert set(m.unique().tolist()) <= {1.0, 3.0, 5.0}
    assert 0.5 < (m[:, 2] == 1).float().mean() < 0.75  # 10 of the 16 majority sequences have margin 1
    ideal = cue_margins.count_learner(pr, task).float().mean()
    assert ideal > 0.93  # ~97 % at M = 5 (docs/results.md)
    assert cue_margins.count_learner(pr, task, w=0.5).float().mean() < ideal - 0.1  # an unbalanced store fails
    assert cue_margins.count_learner(pr, task, centred=False).float().mean() < ideal - 0.1  # so does an uncentred one


def test_slowed_traces_keep_their_unit_gain():
    import numpy as np

    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    g = build_graph(bptt_config("quick", pool=2))
    s = cue_margins.with_traces_slowed(g, 4.0)
    for name in ("cues_to_hidden", "pool_to_hidden"):
        a, b = g.projection(name).rule.base, s.projection(name).rule.base
        tau_a, tau_b = 1 / (1 - np.asarray(a.gamma)), 1 / (1 - np.asarray(b.gamma))
        np.testing.assert_allclose(tau_b, 4 * tau_a)
        gain_a = np.asarray(a.base.eta_plus) / (1 - np.asarray(a.gamma))  # level of the trace of a constant drive
        np.testing.assert_allclose(np.asarray(b.base.eta_plus) / (1 - np.asarray(b.gamma)), gain_a)
    assert s.projection("cues_to_pool").rule is None
