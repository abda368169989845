"""PPO's pure pieces (plastix.trainer.algorithms.ppo): GAE, the clipped loss, Gaussian log-probabilities,
the return statistics that scale rewards, and the flattening of stateful policies' states."""
import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from plastix.trainer.algorithms.ppo import (PPOSettings, RunningMeanStd, discounted_returns, explained_variance,
                                            flatten_state, gae, gaussian_entropy, gaussian_log_prob, ppo_loss)


def test_gae_by_hand_with_a_truncation():
    """Env 0 runs 3 steps; env 1 is truncated at t = 1 (bootstrapped from its final observation's value)
    and pads t = 2."""
    g, lam = 0.9, 0.5
    reward = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    value = torch.tensor([[0.5, 1.0], [0.2, 0.4], [0.1, 7.0]])
    next_value = torch.tensor([[0.2, 0.4], [0.1, 0.8], [0.6, 9.0]])
    done = torch.tensor([[False, False], [False, True], [True, True]])
    adv, ret = gae(reward, value, next_value, done, g, lam)
    d0 = [1 + g * 0.2 - 0.5, 0 + g * 0.1 - 0.2, 3 + g * 0.6 - 0.1]
    a0 = [0.0] * 3
    a0[2] = d0[2]
    a0[1] = d0[1] + g * lam * a0[2]
    a0[0] = d0[0] + g * lam * a0[1]
    d1 = [2 + g * 0.4 - 1.0, 1 + g * 0.8 - 0.4]
    a1 = [d1[0] + g * lam * d1[1], d1[1]]  # the truncation at t = 1 stops the sum
    assert torch.allclose(adv[:, 0], torch.tensor(a0), atol=1e-6)
    assert torch.allclose(adv[:2, 1], torch.tensor(a1), atol=1e-6)
    assert torch.allclose(ret, adv + value)


def test_discounted_returns_restart_after_done():
    r = torch.tensor([[1.0], [1.0], [1.0], [1.0]])
    done = torch.tensor([[False], [True], [False], [False]])
    assert discounted_returns(r, done, 0.5)[:, 0].tolist() == [1.0, 1.5, 1.0, 1.5]


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, a = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    log_std = torch.randn(6, generator=g) * 0.3
    ref = torch.distributions.Normal(mean, log_std.exp())
    assert torch.allclose(gaussian_log_prob(mean, log_std, a), ref.log_prob(a).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(log_std), ref.entropy()[0].sum(), atol=1e-5)


def test_ppo_loss_clips_the_ratio():
    s = PPOSettings(clip=0.2, normalize_advantage=False, vf_coef=0.0)
    old = torch.zeros(4)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # ratios 2, 1.1, 0.5, 0.9: the first (adv > 0, above 1 + eps) and third (adv < 0, below 1 - eps) are clipped
    logp = torch.log(torch.tensor([2.0, 1.1, 0.5, 0.9])).requires_grad_(True)
    loss, stats = ppo_loss(logp, old, adv, torch.zeros(4), torch.zeros(4), torch.zeros(4), s)
    loss.backward()
    assert logp.grad[0] == 0 and logp.grad[2] == 0 and logp.grad[1] != 0 and logp.grad[3] != 0
    assert stats["clip_frac"] == pytest.approx(0.5)
    assert float(loss.detach()) == pytest.approx(-(1.2 + 1.1 - 0.8 - 0.9) / 4)  # min(rho A, clip(rho) A)
    assert stats["approx_kl"] > 0
    _, same = ppo_loss(old, old, adv, torch.zeros(4), torch.zeros(4), torch.zeros(4), s)
    assert same["approx_kl"] == 0 and same["clip_frac"] == 0


def test_running_mean_std_merges_batches_like_numpy():
    rng = np.random.default_rng(0)
    xs = [rng.normal(3.0, 2.0, n) for n in (5, 50, 1, 200)]
    rms = RunningMeanStd(mean=0.0, var=1.0, count=0.0)
    for x in xs:
        rms.update(torch.as_tensor(x))
    allx = np.concatenate(xs)
    assert rms.mean == pytest.approx(allx.mean()) and rms.var == pytest.approx(allx.var())
    back = RunningMeanStd()
    back.load_state_dict(rms.state_dict())
    assert back == rms and math.isclose(back.std(0.0), allx.std())


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(y, y) == 1.0 and explained_variance(torch.zeros(3), y) == pytest.approx(0.0)
    assert explained_variance(-y, y) == pytest.approx(-3.0)
    assert math.isnan(explained_variance(y, torch.ones(3)))


class _Inner(NamedTuple):
    u: torch.Tensor
    rule: object


class _Outer(NamedTuple):
    t: int
    pops: dict
    projs: tuple


def test_flatten_state_round_trips_nests_with_static_leaves():
    state = _Outer(0, {"a": torch.ones(2, 3), "b": _Inner(torch.zeros(2), None)}, (torch.arange(4.0), ()))
    flat = flatten_state(state)
    assert [tuple(x.shape) for x in flat.tensors] == [(2, 3), (2,), (4,)]
    back = flat.rebuild([x + 1 for x in flat.tensors])
    assert type(back) is _Outer and back.t == 0 and back.pops["b"].rule is None and back.projs[1] == ()
    assert torch.equal(back.pops["a"], torch.full((2, 3), 2.0)) and torch.equal(back.projs[0], torch.arange(1.0, 5.0))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="clip"):
        PPOSettings(clip=0)
    with pytest.raises(ValueError, match="gamma"):
        PPOSettings(gamma=1.5)
    with pytest.raises(ValueError, match="epochs"):
        PPOSettings(epochs=0)
