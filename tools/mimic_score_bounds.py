"""Expected STDP-mimic returns of trivial outputs (copy the input, constant 0.5, silent, the worst output in
[0, 1]) over many random episodes of plastix.tasks.mimic's generator: the bounds docs/results.md uses to
compare our fitness scale with the ENU paper's Table 1.

    python tools/mimic_score_bounds.py [--episodes 100000] [--seed 0]
"""
from __future__ import annotations

import argparse

import torch

from plastix.tasks.mimic import STDPConfig, STDPRule, stdp_reference


def bounds(rule: STDPRule, episodes: int, generator: torch.Generator) -> dict[str, float]:
    c = STDPConfig(rule=rule)
    x = c.input_low + (c.input_high - c.input_low) * torch.rand(episodes, c.steps, generator=generator)
    t_pre = torch.randint(c.spike_start, c.spike_end, (episodes,), generator=generator)
    t_post = torch.randint(c.spike_start, c.spike_end, (episodes,), generator=generator)
    nt = torch.rand(episodes, generator=generator) < c.nt_prob
    y = stdp_reference(x, t_pre, t_post, nt, c)
    score = lambda out: float(-((y - out) ** 2).sum(-1).mean())  # noqa: E731 - eq. 5, mean over episodes
    return {"copy": score(x), "const_0.5": score(torch.full_like(y, 0.5)), "silent": score(torch.zeros_like(y)),
            "worst_in_[0,1]": float(-(torch.maximum(y, 1 - y) ** 2).sum(-1).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(a.seed)
    for rule in STDPRule:
        print(rule.value, {k: round(v, 2) for k, v in bounds(rule, a.episodes, g).items()})


if __name__ == "__main__":
    main()
