"""SpikePropamine T-maze generator and task: timing, cue/decision windows, firing rates, reward, contract."""
import pytest
import torch

from plastix.tasks import AutoresetMode
from plastix.tasks.cue_tmaze import (
    CONFIGS,
    LEFT,
    RIGHT,
    CueTMazeConfig,
    CueTMazeTask,
    cue_tmaze_episodes,
    maze_config,
    reward_of,
    window_masks,
)


def _gen(batch=64, seed=0, cfg=None):
    return cue_tmaze_episodes(batch, cfg or maze_config("quick"), generator=torch.Generator().manual_seed(seed))


def test_timing_of_the_presets():
    q, p = CONFIGS["quick"], CONFIGS["paper"]
    assert q.n_inputs == p.n_inputs == 40
    assert q.total_steps == 3 * (12 + 6) + 24 + 12 == 90
    assert p.total_steps == 7 * (30 + 20) + 60 + 40 == 450  # > 2 x Miconi et al.'s 200 steps
    in_cue, idx, dec = window_masks(q)
    assert in_cue.sum() == 3 * 12 and dec.sum() == 12 and dec[-12:].all() and not dec[:-12].any()
    assert in_cue[0] and in_cue[11] and not in_cue[12] and not in_cue[17] and in_cue[18]
    assert idx[20] == 1 and idx[89] == 2


def test_groups_fire_at_their_rates_in_their_windows():
    cfg = maze_config("quick")
    ep = _gen(128, cfg=cfg)
    in_cue, idx, dec = window_masks(cfg)
    r = ep.rates
    assert ep.spikes.shape == r.shape == (90, 128, 40)
    # cue t=5 (first cue): the cued side's group at p_cue, the other at background
    side = ep.sides[:, 0]
    left_on = r[5, :, :10].amin(1) == cfg.p_cue
    right_on = r[5, :, 10:20].amin(1) == cfg.p_cue
    assert torch.equal(left_on, side == LEFT) and torch.equal(right_on, side == RIGHT)
    assert (r[~in_cue][:, :, :20] == cfg.p_background).all()
    assert (r[dec][:, :, 20:30] == cfg.p_decision).all() and (r[~dec][:, :, 20:30] == cfg.p_background).all()
    assert (r[..., 30:] == cfg.p_noise).all()  # the noise group never carries information
    # empirical rates match the declared ones
    assert abs(ep.spikes.mean().item() - r.mean().item()) < 0.01
    noise = ep.spikes[..., 30:].mean().item()
    assert abs(noise - cfg.p_noise) < 0.01


def test_labels_are_the_majority_side_and_reward():
    ep = _gen(256)
    assert torch.equal(ep.labels, (ep.sides.sum(1) >= 2).long())
    assert set(ep.labels.tolist()) == {LEFT, RIGHT}
    cfg = maze_config("quick")
    r = reward_of(ep.labels, ep.labels, cfg)
    assert r.dtype == torch.float32 and (r == 1.0).all()
    assert (reward_of(1 - ep.labels, ep.labels, cfg) == -1.0).all()


def test_high_noise_paper_preset_is_noisier_than_low_noise():
    hi, lo = CONFIGS["paper"], CONFIGS["paper_low_noise"]
    assert hi.p_background > lo.p_background and hi.p_noise > lo.p_noise and hi.p_cue < lo.p_cue


def test_seeded_and_bad_configs():
    assert torch.equal(_gen(4, seed=3).spikes, _gen(4, seed=3).spikes)
    assert not torch.equal(_gen(4, seed=3).spikes, _gen(4, seed=4).spikes)
    with pytest.raises(ValueError, match="odd"):
        CueTMazeConfig(n_cues=4)
    with pytest.raises(ValueError, match="p_noise"):
        CueTMazeConfig(p_noise=1.5)
    with pytest.raises(KeyError, match="known"):
        maze_config("nope")


def test_task_contract_serves_the_episode_and_rewards_the_turn():
    cfg = maze_config("quick").replace(n_cues=1, cue_steps=3, gap_steps=1, delay_steps=2, decision_steps=2, num_envs=4)
    task = CueTMazeTask(cfg, population=2)
    assert task.autoreset_mode is AutoresetMode.NEXT_STEP and task.max_episode_steps == 8
    obs, info = task.reset(seed=0)
    assert task.observation_spec.contains(obs) and (info["t"] == 0).all()
    labels = task.labels.clone()
    seen = [obs]
    turn = labels.float()[..., None]  # always the correct side
    for k in range(1, 9):
        obs, rew, term, trunc, info = task.step(turn if k == 8 else 1 - turn)  # only the last action counts
        seen.append(obs)
        assert (info["t"] == k).all() and not trunc.any()
        assert bool(term.all()) == (k == 8)
        assert (rew == (1.0 if k == 8 else 0.0)).all()
        if k < 8:
            assert torch.equal(info["decision"], torch.full((2, 4), k >= 6))
    # decision neurons fire only in the decision window (rates 0.5 vs 0.05 background: check the rates)
    obs, rew, term, trunc, info = task.step(turn)  # autoreset step
    assert (rew == 0).all() and not term.any() and (info["t"] == 0).all()
    # a wrong final turn gets -1
    for k in range(1, 9):
        obs, rew, term, trunc, info = task.step(1 - task.labels.float()[..., None])
    assert term.all() and (rew == -1.0).all()
