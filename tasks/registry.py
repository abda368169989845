"""Task name -> (factory, configs). The one place tasks are listed (strings only at the edges).

>>> from plastix.tasks.registry import make_task
>>> task = make_task("iaf", "quick", population=2)
>>> obs, info = task.reset(seed=0)
>>> tuple(obs.shape)
(2, 8, 1)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch

from .base import BatchedTask
from .halfcheetah import HalfCheetahConfig, HalfCheetahTask
from .mimic import IAFConfig, IAFTask, STDPConfig, STDPRule, STDPTask
from .tmaze import DoubleTMaze, TMaze, TMazeConfig, double_tmaze_config
from .tmaze_render import render_tmaze_episode

CONFIG_NAMES = ("quick", "paper")


@dataclass(frozen=True)
class TaskEntry:
    """``factory(config, population, *, device) -> BatchedTask``; ``configs`` maps "quick" (tests and
    demos) and "paper" (reproductions) to config dataclasses. ``render(infos, config, out_dir) ->
    [paths]`` (optional) draws one recorded episode (``infos``: the task's info tensors, (T, 1, E))."""

    name: str
    factory: Callable[..., BatchedTask]
    configs: Mapping[str, Any]
    description: str = ""
    render: Callable[..., list] | None = None

    def __post_init__(self) -> None:
        missing = [c for c in CONFIG_NAMES if c not in self.configs]
        if missing:
            raise ValueError(f"task {self.name!r} lacks configs {missing}")
        object.__setattr__(self, "configs", MappingProxyType(dict(self.configs)))


TASKS: Mapping[str, TaskEntry] = MappingProxyType({e.name: e for e in (
    TaskEntry("iaf", IAFTask, {"quick": IAFConfig(num_envs=8), "paper": IAFConfig(),
                               "paper_budget": IAFConfig()},  # the paper's task; ES settings differ (es_run.py)
              "integrate-and-fire mimic (Bertens & Lee 2020, eqs 2-3)"),
    TaskEntry("stdp", STDPTask, {"quick": STDPConfig(num_envs=8), "paper": STDPConfig()},
              "neuromodulated STDP mimic (Bertens & Lee 2020, eqs 4-5)"),
    TaskEntry("complex_stdp", STDPTask,
              {"quick": STDPConfig(num_envs=8, rule=STDPRule.COMPLEX), "paper": STDPConfig(rule=STDPRule.COMPLEX)},
              "complex (cosine) neuromodulated STDP mimic (Bertens & Lee 2020, Extended Data Fig. 3)"),
    TaskEntry("tmaze", TMaze, {"quick": TMazeConfig(num_envs=4, steps=100), "paper": TMazeConfig(),
                               # the paper's maze at a reduced ES budget, and two curriculum stages
                               # (not the paper's task): without the per-env input/output shuffle, and
                               # also without swaps (food stays where it is; navigation alone pays);
                               # only the sensors shuffled (the colours' meaning must be learnt)
                               "reduced": TMazeConfig(), "fixed_io": TMazeConfig(shuffle=False),
                               "navigate": TMazeConfig(shuffle=False, swap_prob=0.0),
                               "shuffle_inputs": TMazeConfig(shuffle="inputs"),
                               # the paper's task, 32 episodes per individual (less noisy rankings at P = 64)
                               "reduced_e32": TMazeConfig(num_envs=32),
                               # the paper's task, each of the 36 input/output assignments once per individual
                               # (stratified: the same expected return, rankings without the assignment draw's noise)
                               "reduced_s36": TMazeConfig(num_envs=36, stratify=True),
                               # the paper's task up to the networks' ring symmetry: the wiring and the shared cells
                               # (trainer/experiments/enu_net.py) are unchanged by rotating inputs, hidden neurons and
                               # motors together, so rotating the input order and the motor map alike leaves the
                               # return's distribution unchanged (up to o_0's noise), and the two input orders WGR and
                               # WRG (one per coset of the rotations) x the six motor maps stand for all 36: the
                               # same expected return at a third of the episodes
                               "reduced_s12": TMazeConfig(input_maps=(0, 1), num_envs=12, stratify=True),
                               # only the motors shuffled, each of their 6 assignments twice per individual: which
                               # motor moves forward must be found out within the episode
                               "shuffle_outputs": TMazeConfig(shuffle="outputs", num_envs=12, stratify=True),
                               # fewer motor maps first: the forward motor is motor 0 or 1 (m2), any of the three (m3)
                               "shuffle_outputs_m2": TMazeConfig(shuffle="outputs", motor_maps=(0, 2), num_envs=12,
                                                                 stratify=True),
                               "shuffle_outputs_m3": TMazeConfig(shuffle="outputs", motor_maps=(0, 2, 5), num_envs=12,
                                                                 stratify=True),
                               # the colours' meaning from the reward on two input orders (green and red kept or
                               # swapped, the wall's input fixed), with the motors fixed or two / three motor maps
                               # (_m2 / _m3)
                               "colour_swap": TMazeConfig(shuffle="inputs", input_maps=(0, 1), num_envs=12,
                                                          stratify=True),
                               "colour_swap_m2": TMazeConfig(input_maps=(0, 1), motor_maps=(0, 2), num_envs=12,
                                                             stratify=True),
                               "colour_swap_m3": TMazeConfig(input_maps=(0, 1), motor_maps=(0, 2, 5), num_envs=12,
                                                             stratify=True),
                               # the same skill without the colours, from scratch: navigate with the motors
                               # shuffled, and with a bonus for every new cell (fitness shaping, not observed)
                               "navigate_shuffle_outputs": TMazeConfig(shuffle="outputs", swap_prob=0.0, num_envs=12,
                                                                       stratify=True),
                               "navigate_shuffle_outputs_bonus": TMazeConfig(shuffle="outputs", swap_prob=0.0,
                                                                             num_envs=12, stratify=True,
                                                                             visit_bonus=0.2)},
              "T-maze, food/poison swaps, learn within an episode (Bertens & Lee 2020, Fig. 4-5)",
              render=render_tmaze_episode),
    TaskEntry("double_tmaze", DoubleTMaze,
              {"quick": double_tmaze_config(num_envs=4, steps=100), "paper": double_tmaze_config()},
              "double T-maze, four sites (Bertens & Lee 2020, Extended Data Fig. 4)", render=render_tmaze_episode),
    TaskEntry("halfcheetah", HalfCheetahTask, {"quick": HalfCheetahConfig(num_envs=2, steps=50),
                                               "paper": HalfCheetahConfig()},
              "Half-Cheetah locomotion with friction / action / observation noise (SpikePropamine, sec. 3.2)"),
)})


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def get_entry(name: str) -> TaskEntry:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {list(TASKS.keys())}") from None


def task_config(name: str, config: str = "quick", **overrides: Any) -> Any:
    """The named config of a task, with dataclass fields overridden."""
    entry = get_entry(name)
    try:
        cfg = entry.configs[config]
    except KeyError:
        raise KeyError(f"task {name!r} has no config {config!r}; known: {list(entry.configs.keys())}") from None
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def make_task(name: str, config: Any = "quick", *, population: int = 1, device: torch.device | str = "cpu",
              **overrides: Any) -> BatchedTask:
    """Build a task from its name and a config name (or a config dataclass)."""
    entry = get_entry(name)
    cfg = task_config(name, config, **overrides) if isinstance(config, str) else dataclasses.replace(config, **overrides)
    return entry.factory(cfg, population, device=device)
