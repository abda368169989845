"""SpikePropamine's noisy cue-association T-maze (Schmidgall et al. 2021, Section 3.1, Fig. 1).

40 sensory neurons: channels 0-9 fire for left cues, 10-19 for right cues, 20-29 during the
decision period, 30-39 are pure noise. An episode shows ``n_cues`` cues, each on a random side
(independent, p = 1/2) for ``cue_steps`` followed by ``gap_steps`` of rest, then ``delay_steps``
of rest, then ``decision_steps`` during which the decision group fires. At the end of the decision
period the agent turns left or right; the reward is ``reward_correct`` (+1) for the side that
showed more cues and ``reward_wrong`` (-1) otherwise (``n_cues`` is odd, so there are no ties).
One step is 1 ms.

Rates: a cued group fires with ``p_cue`` per neuron and step, the decision group with
``p_decision``; every other cue/decision neuron fires with ``p_background`` and the noise group
always with ``p_noise``. The paper's appendix (its timing and rates) is not in our copy of the
text; the values below are ours and stated as such: the ``paper`` preset is the "high-noise"
environment (more random spikes, weaker cues than ``paper_low_noise``) with 7 cues and a 450-step
episode (the paper: "the time dependency is more than doubled" against Miconi et al.'s 200 steps);
``quick`` is a 3-cue, 90-step version for tests and the shared-CPU sweep.

:func:`cue_tmaze_episodes` samples whole episodes at once (the open-loop fast path of the BPTT
trainer: the observations never depend on the action); :class:`CueTMazeTask` serves the same
episodes through the batched task contract of :mod:`plastix.tasks.base`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .base import BatchedTask, TensorSpec

Tensor = torch.Tensor
LEFT, RIGHT = 0, 1
GROUPS = ("left", "right", "decision", "noise")


@dataclass(frozen=True)
class CueTMazeConfig:
    """Timing (steps), firing probabilities and rewards of one T-maze episode."""

    n_cues: int = 7
    group: int = 10  # neurons per group (left, right, decision, noise)
    cue_steps: int = 30
    gap_steps: int = 20
    delay_steps: int = 60
    decision_steps: int = 40
    p_cue: float = 0.4
    p_decision: float = 0.5
    p_background: float = 0.1
    p_noise: float = 0.25
    reward_correct: float = 1.0
    reward_wrong: float = -1.0
    num_envs: int = 32  # envs per individual for CueTMazeTask

    def __post_init__(self) -> None:
        if self.n_cues < 1 or self.n_cues % 2 == 0:
            raise ValueError(f"CueTMazeConfig.n_cues must be odd and >= 1 (a majority side), got {self.n_cues}")
        for f in ("group", "cue_steps", "decision_steps", "num_envs"):
            if getattr(self, f) < 1:
                raise ValueError(f"CueTMazeConfig.{f} must be >= 1, got {getattr(self, f)}")
        for f in ("gap_steps", "delay_steps"):
            if getattr(self, f) < 0:
                raise ValueError(f"CueTMazeConfig.{f} must be >= 0, got {getattr(self, f)}")
        for f in ("p_cue", "p_decision", "p_background", "p_noise"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"CueTMazeConfig.{f} must be a probability in [0, 1], got {getattr(self, f)}")

    @property
    def n_inputs(self) -> int:
        return 4 * self.group

    @property
    def cue_phase_steps(self) -> int:
        return self.n_cues * (self.cue_steps + self.gap_steps)

    @property
    def decision_start(self) -> int:
        return self.cue_phase_steps + self.delay_steps

    @property
    def total_steps(self) -> int:
        return self.decision_start + self.decision_steps

    def replace(self, **changes: Any) -> "CueTMazeConfig":
        return dataclasses.replace(self, **changes)


CONFIGS: dict[str, CueTMazeConfig] = {
    "quick": CueTMazeConfig(n_cues=3, cue_steps=12, gap_steps=6, delay_steps=24, decision_steps=12),
    "paper": CueTMazeConfig(),
    "paper_low_noise": CueTMazeConfig(p_cue=0.5, p_background=0.02, p_noise=0.1),
}


def maze_config(name: str) -> CueTMazeConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown cue_tmaze config {name!r}; known: {list(CONFIGS.keys())}") from None


@dataclass(frozen=True)
class TMazeEpisodes:
    """A batch of episodes. ``spikes``/``rates`` (T, B, 40); ``sides`` (B, n_cues) in {LEFT, RIGHT};
    ``labels`` (B,) the majority side; ``decision`` (T,) bool, the decision window."""

    spikes: Tensor
    rates: Tensor
    sides: Tensor
    labels: Tensor
    decision: Tensor


def window_masks(cfg: CueTMazeConfig, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """``(in_cue (T,), cue_index (T,), in_decision (T,))``: which steps show a cue, which cue
    (clamped to the last one outside the cue phase), and the decision window."""
    t = torch.arange(cfg.total_steps, device=device)
    period = cfg.cue_steps + cfg.gap_steps
    cue_index = (t // period).clamp(max=cfg.n_cues - 1)
    in_cue = (t < cfg.cue_phase_steps) & (t % period < cfg.cue_steps)
    in_decision = t >= cfg.decision_start
    return in_cue, cue_index, in_decision


def reward_of(action: Tensor, labels: Tensor, cfg: CueTMazeConfig) -> Tensor:
    """``reward_correct`` where the turn ``action`` (0 left, 1 right) is the majority side, else
    ``reward_wrong`` (float32, the shape of ``labels``)."""
    correct = action.long() == labels.long()
    return torch.where(correct, torch.tensor(cfg.reward_correct, device=labels.device),
                       torch.tensor(cfg.reward_wrong, device=labels.device)).float()


def cue_tmaze_episodes(batch: int, cfg: CueTMazeConfig, *, generator: torch.Generator,
                       device: torch.device | str = "cpu") -> TMazeEpisodes:
    """Sample ``batch`` episodes (see module docstring); all randomness from ``generator`` (CPU)."""
    if batch < 1:
        raise ValueError(f"cue_tmaze_episodes: batch must be >= 1, got {batch}")
    g = generator
    sides = torch.randint(0, 2, (batch, cfg.n_cues), generator=g)
    labels = (sides.sum(1) * 2 > cfg.n_cues).long()
    in_cue, cue_index, in_decision = window_masks(cfg)
    group_of = torch.arange(cfg.n_inputs) // cfg.group  # 0 left, 1 right, 2 decision, 3 noise
    side_t = sides[:, cue_index].T  # (T, B)
    cued = in_cue[:, None, None] & (group_of[None, None, :] == side_t[..., None])
    dec = (in_decision[:, None] & (group_of == 2)[None, :])[:, None, :]
    rates = torch.full((cfg.total_steps, batch, cfg.n_inputs), cfg.p_background)
    rates[..., group_of == 3] = cfg.p_noise
    rates = torch.where(cued, torch.tensor(cfg.p_cue), rates)
    rates = torch.where(dec, torch.tensor(cfg.p_decision), rates)
    spikes = (torch.rand(rates.shape, generator=g) < rates).float()
    return TMazeEpisodes(spikes=spikes.to(device), rates=rates.to(device), sides=sides.to(device),
                         labels=labels.to(device), decision=in_decision.to(device))


class CueTMazeTask(BatchedTask):
    """The T-maze through the batched contract: one step = 1 ms; ``obs`` ``(P, E, 40)`` spikes;
    ``action`` ``(P, E, 1)``: the turn, right where ``action >= 0.5``, read only at the last
    step of the decision period, which carries the reward and ``terminated``. ``info``: ``t`` and
    ``decision`` (whether the returned observation lies in the decision window)."""

    def __init__(self, cfg: CueTMazeConfig, population: int = 1, *, device: torch.device | str = "cpu") -> None:
        super().__init__(population, cfg.num_envs, device=device)
        self.cfg = cfg
        self.single_observation_spec = TensorSpec((cfg.n_inputs,), torch.float32, 0.0, 1.0)
        self.single_action_spec = TensorSpec((1,), torch.float32)
        self.max_episode_steps = cfg.total_steps
        _, _, self._in_decision = window_masks(cfg, self.device)
        self._spikes: Tensor | None = None  # (P, E, T, 40)
        self._labels: Tensor | None = None  # (P, E)
        self._t = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)

    def _obs(self) -> Tensor:
        idx = self._t.clamp(max=self.max_episode_steps - 1)
        return torch.gather(self._spikes, 2, idx[..., None, None].expand(*idx.shape, 1, self.cfg.n_inputs))[:, :, 0]

    def _reset_envs(self, mask: Tensor, options: dict) -> Tensor:
        P, E = self.batch_shape
        ep = cue_tmaze_episodes(P * E, self.cfg, generator=self.generator, device=self.device)
        spikes = ep.spikes.permute(1, 0, 2).reshape(P, E, self.max_episode_steps, -1)
        labels = ep.labels.reshape(P, E)
        if self._spikes is None:
            self._spikes, self._labels = spikes, labels
        else:
            self._spikes = torch.where(mask[..., None, None], spikes, self._spikes)
            self._labels = torch.where(mask, labels, self._labels)
        self._t = torch.where(mask, torch.zeros_like(self._t), self._t)
        return self._obs()

    def _step(self, action: Tensor, active: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        act = torch.ones_like(self._t, dtype=torch.bool) if active is None else active
        self._t = torch.where(act, self._t + 1, self._t)
        done = act & (self._t >= self.max_episode_steps)
        turn = (action[..., 0] >= 0.5).long()
        reward = torch.where(done, reward_of(turn, self._labels, self.cfg), torch.zeros(self.batch_shape, device=self.device))
        trunc = torch.zeros_like(done)
        return self._obs(), reward, done, trunc, self._info()

    def _info(self) -> dict[str, Tensor]:
        # the observation returned now is the one of step t (t = 0 right after a reset)
        idx = self._t.clamp(max=self.max_episode_steps - 1)
        return {"t": self._t.clone(), "decision": self._in_decision[idx]}

    @property
    def labels(self) -> Tensor:
        """The majority side of every env's current episode ``(P, E)`` (for tests and evaluation)."""
        if self._labels is None:
            raise RuntimeError("CueTMazeTask: call reset() before reading labels")
        return self._labels
