"""BatchedTask's NEXT_STEP autoreset with envs of different episode lengths (Gymnasium's
tests/vector/test_autoreset_mode.py::test_autoreset_next_step, replayed on the base class)."""
import pytest
import torch

from plastix.tasks import BatchedTask, TensorSpec


class Counting(BatchedTask):
    """obs = steps taken; reward = action; env e terminates after e + 1 steps."""

    single_observation_spec = TensorSpec((1,), torch.float32)
    single_action_spec = TensorSpec((1,), torch.float32)

    def __init__(self):
        super().__init__(1, 3)
        self.length = torch.tensor([[1, 2, 3]])
        self.t = torch.zeros(1, 3, dtype=torch.long)

    def _reset_envs(self, mask, options):
        self.t = torch.where(mask, torch.zeros_like(self.t), self.t)
        return self.t[..., None].float()

    def _step(self, action, active):
        act = torch.ones_like(self.t, dtype=torch.bool) if active is None else active
        self.t = torch.where(act, self.t + 1, self.t)
        term = act & (self.t == self.length)
        return self.t[..., None].float(), action[..., 0], term, torch.zeros_like(term), {"t": self.t.clone()}

    def _info(self):
        return {"t": self.t.clone()}


def test_next_step_autoreset_counting():
    env = Counting()
    obs, info = env.reset(seed=0)
    assert obs.flatten().tolist() == [0, 0, 0]
    a = torch.tensor([[[1.0], [2.0], [3.0]]])
    obs, rew, term, trunc, info = env.step(a)
    assert obs.flatten().tolist() == [1, 1, 1] and rew.flatten().tolist() == [1, 2, 3]
    assert term.flatten().tolist() == [True, False, False]
    obs, rew, term, trunc, info = env.step(a)
    assert obs.flatten().tolist() == [0, 2, 2] and rew.flatten().tolist() == [0, 2, 3]  # env 0 autoresets
    assert term.flatten().tolist() == [False, True, False] and info["t"].flatten().tolist() == [0, 2, 2]
    obs, rew, term, trunc, info = env.step(a)
    assert obs.flatten().tolist() == [1, 0, 3] and rew.flatten().tolist() == [1, 0, 3]
    assert term.flatten().tolist() == [True, False, True]
    obs, rew, term, trunc, info = env.step(a)
    assert obs.flatten().tolist() == [0, 1, 0] and rew.flatten().tolist() == [0, 2, 0]
    assert not trunc.any()


def test_spec_checks():
    s = TensorSpec((2,), torch.float32, 0.0, 1.0)
    assert s.contains(torch.tensor([0.0, 1.0])) and not s.contains(torch.tensor([0.0, 1.5]))
    assert not s.contains(torch.zeros(3)) and not s.contains(torch.zeros(2, dtype=torch.float64))
    assert s.batched(4, 5).shape == (4, 5, 2)
    with pytest.raises(ValueError):
        TensorSpec((1,), low=1.0, high=0.0)
