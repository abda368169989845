"""SpikePropamine's locomotion task (sec. 3.2): spike coding (pure torch) and the Half-Cheetah task
(Gymnasium + MuJoCo, skipped when they are not importable)."""
import dataclasses

import numpy as np
import pytest
import torch

from plastix.tasks.base import AutoresetMode
from plastix.tasks.spike_coding import ActionCode, PlaceCode

# ---------------------------------------------------------------------------------------------
# spike coding


def _code() -> PlaceCode:
    return PlaceCode(per_input=50, lo=(-1.0, -20.0, 0.0), hi=(1.0, 20.0, 0.5))


def test_paper_defaults():
    assert PlaceCode().per_input == 50
    assert (ActionCode().per_action, ActionCode().window, ActionCode().n_half) == (100, 50, 50)


def test_place_code_peaks_at_the_neuron_of_its_centre():
    code = _code()
    x0 = torch.zeros(1, 3)
    c = code.centres(x0)  # (3, 50)
    for k in (0, 7, 25, 49):
        r = code.rates(c[:, k][None]).reshape(3, 50)
        assert (r.argmax(-1) == k).all()
        assert torch.allclose(r[:, k], torch.full((3,), code.p_max))


def test_place_code_p_min_floor_and_clipping():
    code = _code()
    x = torch.tensor([[-5.0, 100.0, 0.25], [0.3, -3.0, -1.0]])
    r = code.rates(x)
    assert r.shape == (2, 150)
    assert (r >= code.p_min).all() and (r <= code.p_max).all()
    assert torch.allclose(r.min(), torch.tensor(code.p_min), atol=1e-6)  # far neurons sit at the floor
    # clipped: beyond the range is the same as at the range end
    assert torch.equal(code.rates(x), code.rates(code.clip(x)))
    # the floor shows in the spikes: a neuron far from the input fires at about p_min
    g = torch.Generator().manual_seed(0)
    s = code.encode(torch.full((4000, 3), -1e3), g).reshape(4000, 3, 50)
    assert abs(float(s[:, 0, 25:].mean()) - code.p_min) < 0.005


def test_place_code_round_trip_within_the_tuning_resolution():
    code = _code()
    x = torch.stack([torch.linspace(-1, 1, 41), torch.linspace(-20, 20, 41), torch.linspace(0, 0.5, 41)], -1)
    res = code.resolution(x)
    err = (code.decode(code.rates(x)) - x).abs() / res
    assert (err < 0.6).all()  # at most about half a spacing (at the range ends)
    assert (err[5:-5] < 0.05).all()  # unbiased inside
    g = torch.Generator().manual_seed(1)
    window = code.encode(x, g, steps=50)  # (41, 50, 150): T = 50 steps at once
    assert window.shape == (41, 50, 150)
    counts = window.mean(-2)
    err = (code.decode(counts) - x).abs() / res
    assert float(err.mean()) < 0.5 and float(err.median()) < 0.5


def test_place_code_encode_is_bernoulli_and_deterministic_per_generator():
    code = _code()
    x = torch.rand(2, 3, 4, 3, generator=torch.Generator().manual_seed(0))  # (P, E, extra, inputs)
    a = code.encode(x, torch.Generator().manual_seed(5))
    b = code.encode(x, torch.Generator().manual_seed(5))
    c = code.encode(x, torch.Generator().manual_seed(6))
    assert a.shape == (2, 3, 4, 150) and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert code.encode(x.double(), torch.Generator().manual_seed(5)).dtype == torch.float64
    assert dataclasses.replace(code, p_min=0.1).rates(x).min() >= 0.1 - 1e-6
    means = torch.stack([code.encode(x[0, 0, 0], torch.Generator().manual_seed(s)) for s in range(3000)]).mean(0)
    assert torch.allclose(means, code.rates(x[0, 0, 0]), atol=0.04)


@pytest.mark.parametrize("kw", [dict(per_input=1), dict(lo=1.0, hi=1.0), dict(p_min=0.5, p_max=0.4),
                                dict(width=0.0), dict(lo=(0.0, 1.0), hi=(1.0,) * 3)])
def test_place_code_rejects_bad_configs(kw):
    with pytest.raises(ValueError, match="PlaceCode"):
        PlaceCode(**kw)


def test_action_decoding_bounds_sign_and_inverse():
    code = ActionCode(per_action=100, window=50)
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(2, 3, 50, 600, generator=g) < torch.rand(2, 3, 1, 600, generator=g)).float()
    a = code.decode(spikes)
    assert a.shape == (2, 3, 6) and (a.abs() <= 1).all()
    ones = torch.zeros(50, 600)
    ones.view(50, 6, 2, 50)[:, :, 0] = 1.0  # every positive neuron fires every step
    assert torch.equal(code.decode(ones), torch.ones(6))
    assert torch.equal(code.decode(1.0 - ones), -torch.ones(6))
    want = torch.tensor([[-1.0, -0.6, -0.1, 0.0, 0.4, 1.0]])
    ideal = code.ideal_rates(want)
    assert ideal.shape == (1, 600) and ((ideal >= 0) & (ideal <= 1)).all()
    assert torch.allclose(code.decode_counts(50 * ideal), want)
    assert torch.allclose(code.decode_counts(7 * ideal, 7), want)
    drawn = (torch.rand(50, 1, 600, generator=g) < ideal).float()  # Bernoulli at the ideal rates
    got = code.decode(drawn.transpose(0, 1))
    assert (got.sign() == want.sign()).all() and (got - want).abs().max() < 0.2
    with pytest.raises(ValueError, match="per_action"):
        ActionCode(per_action=99)


# ---------------------------------------------------------------------------------------------
# the task (Gymnasium, MuJoCo)


@pytest.fixture(scope="module")
def hc():
    pytest.importorskip("gymnasium", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    pytest.importorskip("mujoco", reason="the Half-Cheetah task needs gymnasium[mujoco]")
    from plastix.tasks import halfcheetah

    return halfcheetah


@pytest.fixture(autouse=True)
def _mujoco_log_elsewhere(request, tmp_path, monkeypatch):
    """MuJoCo 4 writes a deprecation warning about Gymnasium's half_cheetah.xml (``settotalmass``)
    to ``MUJOCO_LOG.TXT`` in the working directory at every env construction: keep it out of the repo."""
    if "hc" in request.fixturenames:
        monkeypatch.chdir(tmp_path)


def _task(hc, population=1, **kw):
    kw = {"num_envs": 2, "steps": 20, **kw}
    return hc.HalfCheetahTask(hc.HalfCheetahConfig(**kw), population=population)


def _rollout(task, seed, n, action=0.5):
    obs, info = task.reset(seed=seed)
    out = [(obs, None, info)]
    act = torch.full(task.action_spec.shape, action) if isinstance(action, float) else action
    for _ in range(n):
        obs, rew, term, trunc, info = task.step(act)
        out.append((obs, rew, info))
    return out


def test_constant_action_rollout_moves(hc):
    task = _task(hc, population=2)
    assert task.autoreset_mode is AutoresetMode.NEXT_STEP
    obs, info = task.reset(seed=0)
    assert task.observation_spec.contains(obs) and obs.shape == (2, 2, 12)
    assert (info["t"] == 0).all() and (info["x_position"] == 0).all()
    xs = []
    for k in range(1, 11):
        obs, rew, term, trunc, info = task.step(torch.full((2, 2, 6), 0.8))
        assert task.observation_spec.contains(obs)
        assert rew.shape == (2, 2) and rew.dtype == torch.float32 and torch.isfinite(rew).all()
        assert (info["t"] == k).all() and not term.any() and not trunc.any()
        xs.append(info["x_position"])
    assert ((xs[-1] - xs[0]).abs() > 1e-2).all()  # the body moved
    # reward = forward component + control cost (0.1 * 6 * 0.8^2 per step)
    assert torch.allclose(rew, info["reward_forward"] + info["reward_ctrl"], atol=1e-5)
    assert torch.allclose(info["reward_ctrl"], torch.full((2, 2), -0.1 * 6 * 0.64), atol=1e-5)
    task.close()


def test_observation_is_joint_angles_then_velocities(hc):
    task = _task(hc)
    obs, _ = task.reset(seed=3)
    obs, *_ = task.step(torch.full((1, 2, 6), -0.3))
    for i, env in enumerate(task.envs):
        d = env.unwrapped.data
        want = np.concatenate([d.qpos[3:9], d.qvel[3:9]])
        assert np.allclose(obs[0, i].numpy(), want, atol=1e-6)
    assert hc.OBS_INDICES == (2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16)
    m = task.envs[0].unwrapped.model
    assert [m.joint(j).name for j in range(3, 9)] == list(hc.JOINTS)
    assert np.allclose(m.jnt_range[3:9].T, [hc.JOINT_LOW, hc.JOINT_HIGH])
    code = hc.place_code()
    assert code.rates(obs).shape == (1, 2, 600)
    task.close()


def test_seeding_is_deterministic(hc):
    def flat(traj):
        return [x for obs, rew, info in traj for x in (obs, rew, info["x_position"]) if x is not None]

    task = _task(hc, obs_noise=0.1, action_noise=0.1, friction_noise=0.1)
    a = flat(_rollout(task, 7, 8))
    other = _task(hc, obs_noise=0.1, action_noise=0.1, friction_noise=0.1)
    assert all(torch.equal(x, y) for x, y in zip(a, flat(_rollout(other, 7, 8))))
    assert not torch.equal(a[0], flat(_rollout(other, 8, 8))[0])
    assert all(torch.equal(x, y) for x, y in zip(a, flat(_rollout(other, 7, 8))))  # reset(seed) restarts
    first = _rollout(_task(hc, population=2), 7, 0)[0][0]  # common random numbers: same start per column
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0, 0], first[0, 1])
    task.close(), other.close()


def test_autoreset_next_step_counting(hc):
    task = _task(hc, population=2, steps=4)
    task.reset(seed=1)
    for _ in range(2):
        for k in range(1, 5):
            obs, rew, term, trunc, info = task.step(torch.zeros(2, 2, 6))
            assert (info["t"] == k).all() and not term.any()
            assert bool(trunc.all()) == (k == 4) and bool(trunc.any()) == (k == 4)
        obs, rew, term, trunc, info = task.step(torch.full((2, 2, 6), float("nan")))  # ignored
        assert (rew == 0).all() and not (term | trunc).any() and (info["t"] == 0).all()
        assert torch.isfinite(obs).all() and (info["x_position"] == 0).all()
    task.close()


def test_autoreset_of_part_of_the_batch(hc):
    """Envs that end at different times (here: their own TimeLimits of 2 and 4): the one just reset
    sits out the step, the other keeps going."""
    import gymnasium

    envs = [gymnasium.make(hc.ENV_ID, max_episode_steps=s, disable_env_checker=True) for s in (2, 4)]
    task = hc.HalfCheetahTask(hc.HalfCheetahConfig(num_envs=2, steps=4), envs=envs)
    task.reset(seed=0)
    ts, truncs = [], []
    for _ in range(6):
        obs, rew, term, trunc, info = task.step(torch.full((1, 2, 6), 0.5))
        ts.append(info["t"][0].tolist()), truncs.append(trunc[0].tolist())
        if info["t"][0, 0] == 0:
            assert rew[0, 0] == 0 and rew[0, 1] != 0
    assert ts == [[1, 1], [2, 2], [0, 3], [1, 4], [2, 0], [0, 1]]
    assert truncs == [[False, False], [True, False], [False, False], [False, True], [True, False], [False, False]]
    task.close()


def test_friction_noise_scales_the_model_per_episode(hc):
    task = _task(hc, steps=3, friction_noise=0.2)
    base = hc.HalfCheetahTask(hc.HalfCheetahConfig(num_envs=1)).friction()[0, 0].clone()
    assert torch.equal(base[:3], torch.zeros(3)) and (base[3:] > 0).all()  # dof_damping: the 6 joints
    _, info = task.reset(seed=0)
    f0 = task.friction()
    assert torch.equal(info["friction"], f0)
    assert not torch.allclose(f0[0, 0], base) and not torch.equal(f0[0, 0], f0[0, 1])
    assert torch.equal(f0[..., :3], torch.zeros(1, 2, 3))  # zero constants stay zero
    ratio = f0[..., 3:] / base[3:]
    assert (ratio >= 0).all() and 0.05 < float((ratio - 1).std()) < 0.5
    for _ in range(3):  # held for the whole episode
        *_, info = task.step(torch.zeros(1, 2, 6))
        assert torch.equal(task.friction(), f0) and torch.equal(info["friction"], f0)
    *_, info = task.step(torch.zeros(1, 2, 6))  # autoreset: resampled
    f1 = task.friction()
    assert not torch.allclose(f1, f0) and torch.equal(info["friction"], f1)
    ratios = [f1[..., 3:] / base[3:]]
    for _ in range(8):  # more episodes: each drawn around the original constants, never compounded
        for _ in range(4):
            task.step(torch.zeros(1, 2, 6))
        ratios.append(task.friction()[..., 3:] / base[3:])
    assert 0.12 < float((torch.stack(ratios) - 1).std()) < 0.3
    quiet = _task(hc, steps=3)  # friction_noise=0: the original constants
    quiet.reset(seed=0)
    assert torch.equal(quiet.friction(), base.expand(1, 2, 9))
    task.close(), quiet.close()


def test_geom_friction_target(hc):
    task = _task(hc, friction_noise=0.2, friction_target=hc.FrictionTarget.GEOM)
    _, info = task.reset(seed=0)
    assert info["friction"].shape == (1, 2, 9, 3)
    assert not torch.allclose(info["friction"][..., 0], torch.full((1, 2, 9), 0.4))
    task.close()


def test_action_noise_is_multiplicative(hc):
    noisy = _task(hc, action_noise=0.3)
    plain = _task(hc)
    # zero action times (1 + z) is zero: the trajectory is the noise-free one
    za, zb = _rollout(noisy, 4, 6, action=0.0), _rollout(plain, 4, 6, action=0.0)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(za, zb))
    # a non-zero action reaches the motors scaled by (1 + z), z drawn anew every step
    noisy.reset(seed=4)
    ratios = []
    for _ in range(20):
        noisy.step(torch.full((1, 2, 6), 0.2))
        ctrl = np.stack([e.unwrapped.data.ctrl.copy() for e in noisy.envs])
        ratios.append(ctrl / 0.2)
    ratios = np.array(ratios)
    assert abs(ratios.mean() - 1) < 0.05 and 0.2 < ratios.std() < 0.4
    assert not np.allclose(ratios[0], ratios[1])
    noisy.close(), plain.close()


def test_observation_noise_is_additive_and_leaves_the_env_alone(hc):
    noisy = _task(hc, obs_noise=0.5)
    plain = _task(hc)
    a, b = _rollout(noisy, 2, 30), _rollout(plain, 2, 30)
    diff = torch.stack([x[0] - y[0] for x, y in zip(a, b)])
    assert 0.4 < float(diff.std()) < 0.6 and abs(float(diff.mean())) < 0.1
    for (_, ra, ia), (_, rb, ib) in zip(a[1:], b[1:]):  # the bodies move the same
        assert torch.equal(ra, rb) and torch.equal(ia["x_position"], ib["x_position"])
    noisy.close(), plain.close()


def test_zero_noise_changes_nothing(hc):
    task = _task(hc, obs_noise=0.0, action_noise=0.0, friction_noise=0.0)
    obs, _ = task.reset(seed=9)
    base = hc.HalfCheetahTask(hc.HalfCheetahConfig(num_envs=1)).friction()
    act = torch.linspace(-0.9, 0.9, 12).reshape(1, 2, 6)
    for _ in range(3):
        obs, *_ = task.step(act)
        for i, env in enumerate(task.envs):
            d = env.unwrapped.data
            assert np.allclose(d.ctrl, act[0, i].numpy(), atol=1e-7)
            assert np.allclose(obs[0, i].numpy(), np.concatenate([d.qpos[3:9], d.qvel[3:9]]), atol=1e-6)
    assert torch.equal(task.friction(), base.expand(1, 2, 9))
    # with zero noise the friction target is irrelevant: same trajectory
    a = _rollout(_task(hc), 9, 5, act)
    b = _rollout(_task(hc, friction_target=hc.FrictionTarget.GEOM), 9, 5, act)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    task.close()


def test_bad_config_and_env_count(hc):
    with pytest.raises(ValueError, match="obs_noise"):
        hc.HalfCheetahConfig(obs_noise=-0.1)
    with pytest.raises(ValueError, match="envs"):
        hc.HalfCheetahTask(hc.HalfCheetahConfig(num_envs=2), envs=[])
