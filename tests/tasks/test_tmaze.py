"""T-maze dynamics against hand-worked cases (walls, turns, food, poison, swaps, energy, shuffles)."""
import pytest
import torch

from plastix.tasks.tmaze import FORWARD, LEFT, NOOP, RIGHT, DoubleTMaze, TMaze, TMazeConfig, double_tmaze_config

F, L, R, N = (torch.eye(3)[0], torch.eye(3)[1], torch.eye(3)[2], torch.zeros(3))


def _maze(cls=TMaze, food=0, poison=1, **kw):
    cfg = {"num_envs": 1, "shuffle": False, "action_window": 1, **kw}
    task = cls(double_tmaze_config(**cfg) if cls is DoubleTMaze else TMazeConfig(**cfg), population=1)
    task.reset(seed=0)
    task.food.fill_(food)
    task.poison.fill_(poison)
    return task


def _run(task, moves):
    out = []
    for a in moves:
        obs, rew, term, trunc, info = task.step(a.expand(task.action_spec.shape))
        out.append((obs[0, 0], float(rew[0, 0]), bool(term[0, 0]), bool(trunc[0, 0]),
                    {k: int(v[0, 0]) for k, v in info.items() if v.ndim == 2}))
    return out


def test_start_turn_into_wall_keeps_position():
    task = _maze()
    (obs, rew, *_, info), = _run(task, [L])
    assert (info["y"], info["x"], info["heading"]) == (3, 2, 3)          # turned west, did not move
    assert obs.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0] and rew == 0.0      # faces a wall
    (obs, _, _, _, info), = _run(task, [N])                               # nothing active: no-op
    assert (info["y"], info["x"], info["heading"], info["action"]) == (3, 2, 3, NOOP)


def test_walk_to_food_sees_green_eats_and_restarts():
    task = _maze(food=0, poison=1)
    steps = _run(task, [F, F, F, L, F])
    assert [s[4]["action"] for s in steps] == [FORWARD] * 3 + [LEFT, FORWARD]
    assert [(s[4]["y"], s[4]["x"]) for s in steps[:4]] == [(2, 2), (1, 2), (0, 2), (0, 1)]
    assert steps[2][0][:3].tolist() == [1, 0, 0]                          # top of the stem faces the wall
    assert steps[3][0][:3].tolist() == [0, 1, 0]                          # green ahead
    obs, rew, term, _, info = steps[4]
    assert rew == 1.0 and not term
    assert (info["y"], info["x"], info["heading"], info["energy"]) == (3, 2, 0, 40)  # back at start, refilled
    assert obs[3:].tolist() == [1.0, 0.0]                                 # positive reward channel


def test_poison_is_red_costs_one_and_keeps_energy_down():
    task = _maze(food=0, poison=1)
    steps = _run(task, [F, F, F, R, F])
    assert steps[3][0][:3].tolist() == [0, 0, 1]                          # red ahead (right arm)
    obs, rew, _, _, info = steps[4]
    assert rew == -1.0 and obs[3:].tolist() == [0.0, 1.0]
    assert (info["y"], info["x"], info["energy"]) == (3, 2, 35)


@pytest.mark.parametrize("swap_after, food_sites_after_each_food", [(1, [1, 0, 1]), (2, [0, 1, 1])])
def test_swap_after_foods(swap_after, food_sites_after_each_food):
    task = _maze(swap_prob=1.0, swap_after=swap_after)
    food_sites = []
    for _ in range(3):                                                   # walk to the food side each time
        side = L if int(task.food[0, 0]) == 0 else R
        *_, (_, rew, _, _, info) = _run(task, [F, F, F, side, F])
        assert rew == 1.0
        food_sites.append(info["food_site"])
    assert food_sites == food_sites_after_each_food


def test_no_swap_with_probability_zero():
    task = _maze(swap_prob=0.0, swap_after=0)
    for _ in range(3):
        *_, (_, rew, _, _, info) = _run(task, [F, F, F, L, F])
        assert rew == 1.0 and info["food_site"] == 0


def test_energy_runs_out_after_budget_then_truncation():
    task = _maze(energy=40)
    steps = _run(task, [N] * 40)
    assert [s[2] for s in steps] == [False] * 39 + [True]
    assert steps[-1][4]["energy"] == 0
    task = _maze(energy=40, steps=10)
    steps = _run(task, [N] * 10)
    assert [s[3] for s in steps] == [False] * 9 + [True] and not any(s[2] for s in steps)


def test_action_window_sums_four_steps():
    task = _maze(action_window=4)
    steps = _run(task, [F, F, F, L, L, L])
    # window [F F F L] -> forward; [F F L L] -> tie, the first motor (forward) wins; [F L L L] -> left
    assert [s[4]["action"] for s in steps] == [FORWARD] * 5 + [LEFT]
    task = _maze(action_window=4)
    assert _run(task, [-F])[0][4]["action"] == NOOP                       # nothing positive: no-op


def test_shuffled_inputs_and_outputs_follow_the_env_permutations():
    task = TMaze(TMazeConfig(num_envs=16, action_window=1), population=2)
    obs, _ = task.reset(seed=3)
    assert torch.equal(task.perm_in[0], task.perm_in[1])                 # same envs for every individual
    assert len({tuple(p) for p in task.perm_out[0].tolist()}) > 1        # but not the same in every env
    sensors = task._sensors()
    assert torch.equal(obs[..., :3], sensors.gather(-1, task.perm_in))
    motor = torch.zeros(2, 16, 3)
    motor[..., 1] = 1.0
    *_, info = task.step(motor)
    assert torch.equal(info["action"], task.perm_out[..., 1])


def test_double_tmaze_route_to_far_site():
    task = _maze(DoubleTMaze, food=0, poison=3)
    steps = _run(task, [F, F, L, F, R, F, L])
    assert [(s[4]["y"], s[4]["x"]) for s in steps[:6]] == [(3, 3), (2, 3), (2, 2), (2, 1), (1, 1), (0, 1)]
    assert steps[5][0][:3].tolist() == [1, 0, 0]                          # (0, 1) facing north: wall
    assert steps[-1][1] == 1.0 and (steps[-1][4]["y"], steps[-1][4]["x"]) == (4, 3)


def test_double_tmaze_sites_change_to_distinct_pairs():
    task = _maze(DoubleTMaze, food=0, poison=3, swap_prob=1.0, num_envs=1)
    seen = set()
    for _ in range(6):
        food = int(task.food[0, 0])
        assert food != int(task.poison[0, 0])
        task.food.fill_(0)
        task.poison.fill_(3)
        *_, (_, rew, _, _, info) = _run(task, [F, F, L, F, R, F, L])
        assert rew == 1.0
        seen.add((info["food_site"], info["poison_site"]))
    assert all(f != p for f, p in seen) and len(seen) > 1


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="layout"):
        TMazeConfig(layout=("E.E", "#S"))
    with pytest.raises(ValueError, match="start"):
        TMazeConfig(layout=("E.E", "#.#"))
    with pytest.raises(ValueError, match="swap_prob"):
        TMazeConfig(swap_prob=1.5)
    with pytest.raises(ValueError, match="unknown cells"):
        TMazeConfig(layout=("E.E", "#SX"))
