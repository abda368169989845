"""The batched task contract, for every registered task (as Gymnasium parametrizes over vectorisers)."""
import pytest
import torch

from plastix.tasks import AutoresetMode, BatchedTask
from plastix.tasks.registry import CONFIG_NAMES, TASKS, make_task, task_config

P = 3
NAMES = sorted(TASKS)


def _task(name, **kw):
    cfg = task_config(name, "quick")
    over = {"num_envs": 2}
    if hasattr(cfg, "steps"):
        over["steps"] = kw.pop("steps", 12)
    return make_task(name, "quick", population=P, **{**over, **kw})


def _actions(task, g):
    return torch.rand(task.action_spec.shape, generator=g)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_has_both_configs(name):
    assert set(CONFIG_NAMES) <= set(TASKS[name].configs)
    for c in CONFIG_NAMES:
        cfg = TASKS[name].configs[c]
        assert cfg.__dataclass_params__.frozen
    t = make_task(name, "paper", population=2)
    assert isinstance(t, BatchedTask) and t.batch_shape[0] == 2


@pytest.mark.parametrize("name", NAMES)
def test_reset_and_step_shapes_dtypes(name):
    task = _task(name)
    assert task.autoreset_mode in tuple(AutoresetMode)
    obs, info = task.reset(seed=0)
    assert task.observation_spec.contains(obs), (obs.shape, obs.dtype, task.observation_spec)
    assert obs.shape[:2] == (P, 2) and isinstance(info, dict)
    assert info["t"].shape == (P, 2) and (info["t"] == 0).all()
    obs, rew, term, trunc, info = task.step(_actions(task, torch.Generator().manual_seed(0)))
    assert task.observation_spec.contains(obs)
    assert rew.shape == (P, 2) and rew.dtype == torch.float32
    assert term.shape == trunc.shape == (P, 2) and term.dtype == trunc.dtype == torch.bool
    for k, v in info.items():
        assert v.shape[:2] == (P, 2), k


@pytest.mark.parametrize("name", NAMES)
def test_bad_action_shape_is_rejected(name):
    task = _task(name)
    task.reset(seed=0)
    with pytest.raises(ValueError, match="action shape"):
        task.step(torch.zeros(P, 2, 7))


@pytest.mark.parametrize("name", NAMES)
def test_step_before_reset_is_an_error(name):
    with pytest.raises(RuntimeError, match="reset"):
        _task(name).step(torch.zeros(P, 2, 1))


def _trajectory(task, seed, n):
    g = torch.Generator().manual_seed(123)
    out = [task.reset(seed=seed)[0]]
    for _ in range(n):
        obs, rew, term, trunc, info = task.step(_actions(task, g))
        out += [obs, rew, term, trunc, info["t"]]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_determinism_for_a_seed(name):
    a = _trajectory(_task(name), 7, 30)
    b = _trajectory(_task(name), 7, 30)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = _trajectory(_task(name), 8, 30)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # reset(seed) restarts the stream on the same object too
    task = _task(name)
    _trajectory(task, 99, 5)
    assert all(torch.equal(x, y) for x, y in zip(a, _trajectory(task, 7, 30)))


@pytest.mark.parametrize("name", NAMES)
def test_autoreset_next_step_counting(name):
    """Gymnasium's test_autoreset_next_step, replayed: the step that ends an episode carries the
    flag; the next step ignores the action, returns the new episode's first observation with reward 0
    and both flags False, and counting starts again."""
    task = _task(name, steps=5)
    assert task.autoreset_mode is AutoresetMode.NEXT_STEP
    T = task.max_episode_steps
    obs, info = task.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    for episode in range(3):
        for k in range(1, T + 1):
            obs, rew, term, trunc, info = task.step(_actions(task, g))
            assert (info["t"] == k).all()
            done = term | trunc
            assert bool(done.all()) == (k == T) and bool(done.any()) == (k == T)
        # autoreset step: action ignored
        obs_a, rew, term, trunc, info = task.step(torch.full(task.action_spec.shape, float("nan")))
        assert (rew == 0).all() and not term.any() and not trunc.any()
        assert (info["t"] == 0).all()
        assert task.observation_spec.contains(obs_a)
