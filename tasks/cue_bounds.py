"""How well can a one-shot learner whose memory is an exponential trace do the cue task?

The reference learner of the one-shot cue-association task: after the two training trials it
holds, per sensory neuron ``i``, ``w_i = s_1 e_{1,i} + s_2 e_{2,i}`` (``s`` = +1 for a right trial,
-1 for left) where ``e_{k,i}`` is neuron ``i``'s spike train seen through an eligibility kernel at
the end of training trial ``k``; it answers "right" when the test trial's spike counts ``x`` give
``sum_i x_i w_i > 0``. Centring (subtracting the mean over neurons) removes what every neuron
shares. With a boxcar kernel over one trial and centring this is the label x centred-count Hebbian
learner (about 100 / 99.6 / 97.6 % at M = 1 / 3 / 5). An exponential eligibility trace
(``gamma = 1 - 1 / tau``, Meta-SpikePropamine eq. 16) weights early cues less and *leaks*: at the
second trial's decision it still holds ``exp(-L / tau)`` of the first trial, which biases every
cue neuron towards the second label. These are the ceilings of a plasticity rule that stores the
trial in one such trace and writes it into the weights at the decision (docs/results.md).

``plastix cue-bounds [--cues 5] [--problems 2000]`` prints the table.
"""
from __future__ import annotations

from typing import Callable

import torch

from .cue_association import OneShotCueConfig, one_shot_cue_problems

Kernel = Callable[[torch.Tensor], torch.Tensor]


def exponential(tau: float) -> Kernel:
    return lambda d: torch.exp(-d / tau)


def boxcar(length: int) -> Kernel:
    return lambda d: (d < length).to(torch.float32)


def learner_accuracy(kernel: Kernel, cfg: OneShotCueConfig, *, n_problems: int = 2000, seed: int = 1,
                     leak: bool = True, centre: bool = True, compensate: bool = False) -> float:
    """Accuracy (ties wrong) of the reference learner with eligibility ``kernel(steps ago)``;
    ``leak``: the second trial's trace also holds the first trial (an eligibility trace that is
    never reset); ``centre``: subtract the mean over neurons from each trial's trace;
    ``compensate``: the second write is scaled by ``1 / (1 + kernel(L))`` so that, with the leak, both
    trials end up with equal and opposite weight (what a modulator that remembers the first feedback
    can do, ``ir.examples.add_nm_memory``)."""
    pr = one_shot_cue_problems(n_problems, cfg, generator=torch.Generator().manual_seed(seed))
    L, x = cfg.trial_steps, pr.cues
    t = torch.arange(x.shape[0], dtype=torch.float32)
    side = torch.where(pr.labels == 0, 1.0, -1.0)  # (B, trials)
    w = torch.zeros(x.shape[1:])
    for k in range(cfg.train_trials):
        end = (k + 1) * L - 1
        first = 0 if leak else k * L
        d = end - t
        weights = torch.where((d >= 0) & (t >= first), kernel(d.clamp_min(0)), torch.zeros(()))
        e = (weights[:, None, None] * x).sum(0)
        if centre:
            e = e - e.mean(-1, keepdim=True)
        if compensate and k == 1:
            e = e / (1.0 + float(kernel(torch.tensor(float(L)))))
        w = w + side[:, k:k + 1] * e
    score = (x[cfg.train_trials * L:].sum(0) * w).sum(-1)
    return float(((score < 0).long() == pr.test_labels).float().mean())


def table(n_cues: int, n_problems: int = 2000, taus: tuple[float, ...] = (50, 100, 128, 200, 300, 500, 1000)) -> dict:
    cfg = OneShotCueConfig(n_cues=n_cues)
    rows = {"boxcar (one trial)": {lk: learner_accuracy(boxcar(cfg.trial_steps), cfg, n_problems=n_problems, leak=lk)
                                   for lk in (True, False)}}
    for tau in taus:
        rows[f"exp tau={tau:g}"] = {lk: learner_accuracy(exponential(tau), cfg, n_problems=n_problems, leak=lk)
                                    for lk in (True, False)}
        rows[f"exp tau={tau:g}"]["compensated"] = learner_accuracy(exponential(tau), cfg, n_problems=n_problems,
                                                                   compensate=True)
    return rows


def rows(n_cues: int, n_problems: int = 2000) -> list[dict]:
    """:func:`table` as JSON-able rows (``plastix cue-bounds`` prints them)."""
    return [{"M": n_cues, "kernel": name, "with_leak": round(row[True], 3), "without_leak": round(row[False], 3),
             **({"with_leak_compensated": round(row["compensated"], 3)} if "compensated" in row else {})}
            for name, row in table(n_cues, n_problems).items()]
