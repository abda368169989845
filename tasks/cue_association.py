"""Cue-association problems as batched spike-train generators (torch).

* :func:`one_shot_cue_problems` — Meta-SpikePropamine's one-shot cue association (Schmidgall &
  Hays, "Experimental setup"): 20 sensory neurons (5 right cue, 5 left cue, 5 decision, 5 noise),
  randomly permuted per problem; each trial shows ``M`` cues of 25 ms, each followed by 30 ms of
  rest, then 50 ms of rest and a 25 ms decision period (350 ms for M = 5, 1 step = 1 ms). Active
  groups fire with p = 0.75, everything else with p = 0.15. A problem is two training trials (one
  right, one left, in random order), each with the two-dimensional learning signal ([1, 0] right,
  [0, 1] left) during its decision period, followed by one test trial without it. A trial's class
  is the side of the majority of its cues.

Everything is generated at once for a batch with an explicit ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

RIGHT, LEFT = 0, 1


@dataclass(frozen=True)
class OneShotCueConfig:
    """Timing and rates of the one-shot cue task (defaults: the paper's)."""

    n_cues: int = 5              # M
    group: int = 5               # neurons per group (right, left, decision, noise)
    cue_steps: int = 25
    rest_steps: int = 30
    delay_steps: int = 50
    decision_steps: int = 25
    p_active: float = 0.75
    p_background: float = 0.15
    train_trials: int = 2
    permute: bool = True

    @property
    def n_inputs(self) -> int:
        return 4 * self.group

    @property
    def trial_steps(self) -> int:
        return self.n_cues * (self.cue_steps + self.rest_steps) + self.delay_steps + self.decision_steps

    @property
    def total_steps(self) -> int:
        return (self.train_trials + 1) * self.trial_steps


@dataclass(frozen=True)
class CueProblems:
    """A batch of problems. Shapes: ``cues`` (T, B, n_inputs) in {0, 1}; ``signal`` (T, B, 2);
    ``labels`` (B, trials) with 0 = right, 1 = left; ``decision`` (T,) bool, the test trial's
    decision window; ``test`` (T,) bool, the whole test trial; ``permutation`` (B, n_inputs): sensory neuron k carries channel
    ``permutation[b, k]`` of the unpermuted layout (right, left, decision, noise)."""

    cues: torch.Tensor
    signal: torch.Tensor
    labels: torch.Tensor
    decision: torch.Tensor
    test: torch.Tensor
    permutation: torch.Tensor
    rates: torch.Tensor

    @property
    def test_labels(self) -> torch.Tensor:
        return self.labels[:, -1]


def _trial_sides(n_trials: int, batch: int, cfg: OneShotCueConfig, g: torch.Generator, device) -> tuple:
    """Trial classes (training trials: one of each class in random order; test: random) and cue sides
    with the trial's class in the majority (uniform over such sequences)."""
    train = torch.rand(batch, 2, generator=g).argsort(dim=1) if cfg.train_trials == 2 else \
        torch.randint(0, 2, (batch, cfg.train_trials), generator=g)
    test = torch.randint(0, 2, (batch, 1), generator=g)
    labels = torch.cat([train, test], dim=1).to(device)
    sides = torch.randint(0, 2, (batch, n_trials, cfg.n_cues), generator=g).to(device)
    majority_left = sides.sum(-1) * 2 > cfg.n_cues
    tie = sides.sum(-1) * 2 == cfg.n_cues
    flip = (majority_left.long() != labels) & ~tie
    sides = torch.where(flip[..., None], 1 - sides, sides)
    if tie.any():  # even M: break ties by setting the last cue to the trial's class
        sides[..., -1] = torch.where(tie, labels, sides[..., -1])
    return labels, sides


def one_shot_cue_problems(batch: int, cfg: OneShotCueConfig = OneShotCueConfig(), *,
                          generator: torch.Generator, device: str | torch.device = "cpu") -> CueProblems:
    """Sample ``batch`` one-shot cue-association problems (see module docstring)."""
    g = generator
    n_trials = cfg.train_trials + 1
    T, L, k = cfg.total_steps, cfg.trial_steps, cfg.group
    labels, sides = _trial_sides(n_trials, batch, cfg, g, device)
    rates = torch.full((T, batch, cfg.n_inputs), cfg.p_background, device=device)
    step = cfg.cue_steps + cfg.rest_steps
    t_idx = torch.arange(T, device=device)
    trial_of_t, t_in = t_idx // L, t_idx % L
    cue_of_t = t_in // step
    in_cue = (t_in % step < cfg.cue_steps) & (cue_of_t < cfg.n_cues)
    dec_start = cfg.n_cues * step + cfg.delay_steps
    in_decision = t_in >= dec_start
    # side of the cue shown at t, per batch element: (T, B)
    side_t = sides[:, trial_of_t.clamp(max=n_trials - 1), cue_of_t.clamp(max=cfg.n_cues - 1)].T
    channel = torch.arange(cfg.n_inputs, device=device)
    group_of = channel // k  # 0 right, 1 left, 2 decision, 3 noise
    cue_active = in_cue[:, None, None] & (group_of[None, None, :] == side_t[..., None])
    dec_active = in_decision[:, None, None] & (group_of == 2)[None, None, :]
    rates = torch.where(cue_active | dec_active, torch.tensor(cfg.p_active, device=device), rates)
    perm = torch.rand(batch, cfg.n_inputs, generator=g).argsort(dim=1).to(device) if cfg.permute \
        else channel.expand(batch, -1)
    rates = torch.gather(rates, 2, perm[None].expand(T, -1, -1))
    cues = (torch.rand(rates.shape, generator=g).to(device) < rates).float()
    signal = torch.zeros(T, batch, 2, device=device)
    train_dec = in_decision & (trial_of_t < cfg.train_trials)
    lab_t = labels[:, trial_of_t.clamp(max=n_trials - 1)].T  # (T, B)
    signal[train_dec] = torch.nn.functional.one_hot(lab_t[train_dec], 2).float()
    test = trial_of_t == cfg.train_trials
    return CueProblems(cues=cues, signal=signal, labels=labels, decision=in_decision & test, test=test,
                       permutation=perm, rates=rates)
