"""IAF and (complex) STDP mimic tasks: reference models and fitness functions vs hand computation."""
import math

import pytest
import torch

from plastix.tasks import IAFConfig, STDPConfig, STDPRule, make_task
from plastix.tasks.mimic import (iaf_fitness, iaf_reference, spike_events, stdp_fitness, stdp_reference,
                                 stdp_weight_change, stdp_window)


def test_iaf_reference_hand_case():
    x = torch.tensor([0.2, 0.2, 0.2, 0.1, 0.3, 0.3, 0.49, 0.01])
    # sums: .2 .4 .6* | .1 .4 .7* | .49 .50*
    assert iaf_reference(x, 0.5).tolist() == [0, 0, 1, 0, 0, 1, 0, 1]


def test_spike_events_isi():
    s = torch.tensor([0, 0, 1, 0, 1, 1, 0], dtype=torch.bool)
    v = torch.tensor([0, 0, 0.5, 0, 0.7, 0.9, 0])
    vals, isis, n = spike_events(v, s)
    assert n.item() == 3
    assert torch.allclose(vals[:4], torch.tensor([0.5, 0.7, 0.9, 0.0]))
    assert isis[:4].tolist() == [3, 2, 1, 0]


def test_iaf_fitness_hand_cases():
    target = torch.tensor([0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0.0])  # ISIs 5, 5
    out = torch.zeros(13)
    out[4], out[10], out[12] = 0.8, 1.0, 0.6                          # ISIs 5, 6, 2
    # values: (1-.8)^2 + (1-1)^2 + (0-.6)^2 = 0.4; intervals: 0 + 1 + 4 = 5
    assert iaf_fitness(target, out).item() == pytest.approx(-5.4)
    assert iaf_fitness(target, target).item() == 0.0
    # silent model: each missed spike costs 1 + isi^2
    assert iaf_fitness(target, torch.zeros(13)).item() == pytest.approx(-(1 + 25 + 1 + 25))
    # with a spike threshold, sub-threshold output is not a spike
    assert iaf_fitness(target, out * 0 + 0.3, spike_threshold=0.5).item() == pytest.approx(-52)
    nan_out = out.clone()
    nan_out[3] = float("nan")
    assert math.isnan(iaf_fitness(target, nan_out).item())
    # batched over leading dims
    f = iaf_fitness(target.expand(2, 3, 13), torch.stack([out, target])[:, None].expand(2, 3, 13))
    assert f.shape == (2, 3) and torch.allclose(f[0], torch.tensor(-5.4)) and (f[1] == 0).all()


def test_stdp_window_and_updates_hand_values():
    dt = torch.tensor([10.0, -10.0, 0.0, 5.0])
    w = stdp_window(dt, 0.5, 10.0)
    e = math.exp(-1)
    assert torch.allclose(w, torch.tensor([0.5 * e, -0.5 * e, 0.0, 0.5 * math.exp(-0.5)]))
    nt = torch.tensor([True, True, True, False])
    std = stdp_weight_change(dt, nt, STDPRule.STANDARD)
    assert torch.allclose(std, torch.tensor([0.5 * e, -0.5 * e, 0.0, 0.0]))
    cx = stdp_weight_change(dt, nt, STDPRule.COMPLEX)
    om = 0.5 * e
    want = [om - 0.1 * (math.cos(20 * om) - 1), om - 0.1 * (math.cos(-20 * om) - 1), 0.0,
            0.5 * math.cos(10 * 0.5 * math.exp(-0.5))]
    assert torch.allclose(cx, torch.tensor(want), atol=1e-6)


def test_stdp_reference_and_fitness_hand_case():
    cfg = STDPConfig(steps=6)
    x = torch.full((6,), 0.5)
    y = stdp_reference(x, torch.tensor(1), torch.tensor(3), torch.tensor(True), cfg)  # dt = +2: LTP from t=3
    dw = 0.5 * math.exp(-0.2)
    assert torch.allclose(y, torch.tensor([0.5, 0.5, 0.5] + [0.5 * (1 + dw)] * 3))
    y_no_nt = stdp_reference(x, torch.tensor(4), torch.tensor(3), torch.tensor(False), cfg)
    assert torch.allclose(y_no_nt, x)
    assert stdp_fitness(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.5])).item() == pytest.approx(-0.25)


def _iaf_oracle(obs, u, thr=0.5):
    u = u + obs[..., 0]
    s = u >= thr
    return s.float()[..., None], torch.where(s, torch.zeros_like(u), u)


def test_iaf_task_perfect_policy_scores_zero_and_silent_policy_hand_value():
    task = make_task("iaf", IAFConfig(num_envs=4), population=2)
    obs, _ = task.reset(seed=3)
    u = torch.zeros(2, 4)
    total = torch.zeros(2, 4)
    for t in range(100):
        a, u = _iaf_oracle(obs, u)
        obs, r, term, trunc, info = task.step(a)
        assert torch.equal(info["target"], a[..., 0])
        total += r
        assert bool(term.all()) == (t == 99)
    assert (total == 0).all()
    # a silent model gets -(sum_i 1 + isi_i^2), computed from the reference spikes
    obs, _ = task.reset(seed=3)
    targets, ret = [], torch.zeros(2, 4)
    for t in range(100):
        obs, r, term, trunc, info = task.step(torch.zeros(2, 4, 1))
        targets.append(info["target"])
        ret += r
    tgt = torch.stack(targets, -1)
    want = torch.zeros(2, 4)
    for p in range(2):
        for e in range(4):
            times = tgt[p, e].nonzero().flatten().tolist()
            isis = [t - s for t, s in zip(times, [-1] + times[:-1])]
            want[p, e] = -sum(1 + i * i for i in isis)
    assert torch.allclose(ret, want)
    assert (tgt[0] == tgt[1]).all()  # common inputs across the population


@pytest.mark.parametrize("rule", ["standard", "complex"])
def test_stdp_task_perfect_policy_from_observations(rule):
    cfg = STDPConfig(num_envs=16, rule=rule)
    task = make_task("stdp", cfg, population=2)
    obs, _ = task.reset(seed=5)
    seen_pre = torch.full((2, 16), -1)
    seen_post = torch.full((2, 16), -1)
    total = torch.zeros(2, 16)
    for t in range(100):
        x, pre, nt, post = obs.unbind(-1)
        assert ((pre == 0) | (pre == 1)).all() and ((nt == 0) | (nt == 1)).all()
        seen_pre = torch.where(pre > 0, torch.full_like(seen_pre, t), seen_pre)
        seen_post = torch.where(post > 0, torch.full_like(seen_post, t), seen_post)
        both = (seen_pre >= 0) & (seen_post >= 0)
        dw = stdp_weight_change(seen_post - seen_pre, nt > 0, rule)
        w = 1.0 + torch.where(both, dw, torch.zeros_like(dw))
        obs, r, term, trunc, info = task.step((w * x)[..., None])
        assert torch.allclose(info["target"], w * x)
        total += r
    assert (seen_pre >= 5).all() and (seen_pre < 45).all() and (seen_post >= 0).all()
    assert total.abs().max() < 1e-10
    # a constant-zero output scores -sum y_t^2 < 0
    task.reset(seed=5)
    ret = sum(task.step(torch.zeros(2, 16, 1))[1] for _ in range(100))
    assert (ret < -100 * (0.45 * 0.5) ** 2).all()


def test_configs_validate():
    with pytest.raises(ValueError):
        STDPConfig(spike_start=50, spike_end=40)
    with pytest.raises(ValueError):
        IAFConfig(input_low=0.2, input_high=0.1)
    with pytest.raises(ValueError):
        STDPConfig(rule="nope")
    with pytest.raises(KeyError, match="known"):
        make_task("nope")


def test_registry_doctest():
    import doctest

    import plastix.tasks.registry as mod
    assert doctest.testmod(mod).failed == 0
