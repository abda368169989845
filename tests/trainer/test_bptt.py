"""BPTT meta-learning: losses, a tiny config whose loss decreases, resume after a kill, export."""
import dataclasses
import json

import pytest
import torch

import plastix.ir as ir
from plastix.trainer.bptt import BPTTConfig, BPTTJob, accuracy, bce_loss, reinforce_loss
from plastix.trainer.bptt_run import train_bptt

TINY = BPTTConfig(iterations=4, batch=4, n_cues=1, n_hidden=8, n_mod=8, eval_problems=8, eval_every=2, lr=5e-3)


def test_bce_loss_matches_hand_computation():
    act = torch.tensor([[3.0, 1.0]])
    loss = bce_loss(act, torch.tensor([0]), torch.tensor(1.0), torch.tensor(-2.0))
    p = torch.sigmoid(torch.tensor([1.0, -1.0]))
    assert torch.isclose(loss, -(torch.log(p[0]) + torch.log(1 - p[1])))


def test_accuracy_counts_ties_as_wrong():
    act = torch.tensor([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    assert accuracy(act, torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)


def test_reinforce_advantage_has_no_gradient():
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    r = torch.tensor([1.0, 0.0], requires_grad=True)
    reinforce_loss(logp, r, torch.tensor(0.5)).backward()
    assert torch.allclose(logp.grad, torch.tensor([-0.25, 0.25])) and r.grad is None


def test_loss_decreases_on_a_fixed_batch():
    """The outer loop learns through the network: with the readout frozen (so that fitting its
    offset alone cannot lower the loss), repeated steps on the same problems lower the meta-loss."""
    job = BPTTJob(dataclasses.replace(TINY, eval_every=10_000, lr=0.02))
    state = job.init_state()
    state.model.gain.requires_grad_(False)
    state.model.offset.requires_grad_(False)
    state.optimizer = torch.optim.Adam([p for p in state.model.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for i in range(10):
        state.generator.manual_seed(7)  # same batch every time
        state, m = job.step(state, i)
        losses.append(m["loss"])
    assert min(losses[-3:]) < losses[0] - 0.3, losses


def test_gradients_reach_rule_coefficients_and_modulator():
    job = BPTTJob(TINY)
    state = job.init_state()
    state, _ = job.step(state, 0)
    grads = {n: p.grad for n, p in state.model.net.named_parameters() if p.requires_grad}
    assert grads["params.cues_to_hidden/rule/base/base/eta_plus"].abs().sum() > 0
    assert grads["params.dopamine/weight"].abs().sum() > 0


TINY_KW = dict(batch=4, n_cues=1, n_hidden=8, n_mod=8, eval_problems=8, eval_every=2, progress=False,
               checkpoint_every=1)


def _params(path):
    g = ir.load(path)
    return {p.name: p.weight for p in g.projections}, g


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    """SIGKILL a training process mid-run, resume with resume=True: same result as never killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = train_bptt("one_shot_cue", "quick", tmp_path / "ref", iterations=6, **TINY_KW)
        code = ("import torch, time; torch.set_num_threads(1)\n"
                "import plastix.trainer.bptt as b\n"
                "orig = b.BPTTJob.step\n"
                "def slow(self, s, i):\n    time.sleep(0.3); return orig(self, s, i)\n"
                "b.BPTTJob.step = slow\n"
                "from plastix.trainer.bptt_run import train_bptt\n"
                f"train_bptt('one_shot_cue', 'quick', {str(tmp_path / 'run')!r}, iterations=6, **{TINY_KW!r})\n")
        proc = subprocess.Popen([sys.executable, "-c", code])
        log = tmp_path / "run" / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(log.read_text().splitlines()) < 6, "the run finished before it was killed"
        res = train_bptt("one_shot_cue", "quick", tmp_path / "run", iterations=6, resume=True, **TINY_KW)
        assert res["resumed_from"] is not None and res["resumed_from"] >= 2
        (wa, ga), (wb, gb) = _params(ref["model"]), _params(res["model"])
        assert all(np.array_equal(wa[k], wb[k]) for k in wa)
        assert ga == gb
    finally:
        torch.set_num_threads(torch_threads)
