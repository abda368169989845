"""What learning the assignment within an episode is worth on the T-maze: the return of the scripted
HypothesisAgent (plastix.tasks.tmaze_scripted) per preset, its worst assignment, and how many environment
steps it needs to rule out all but the true assignment and its left/right mirror image. docs/results.md
compares the trained networks with it.

    python tools/tmaze_learner_score.py [--presets reduced fixed_io shuffle_outputs] [--episodes 72] [--seed 1]
                                        [--render DIR]   # the first preset's first episode: GIF + reward plot
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from plastix.tasks.registry import make_task, task_config
from plastix.tasks.tmaze_render import render_tmaze_episode
from plastix.tasks.tmaze_scripted import play


def score(preset: str, episodes: int, seed: int, render_dir: str | None = None) -> dict[str, float]:
    base = task_config("tmaze", preset)
    k = base.num_assignments                      # 1 when nothing is shuffled
    cfg = replace(base, num_envs=-(-episodes // k) * k, stratify=base.shuffle is not False)
    task = make_task("tmaze", cfg, population=1)
    E = cfg.num_envs
    known_at = torch.full((E,), -1)
    infos = []

    def on_step(call: int, agent, info: dict) -> None:
        if render_dir is not None:
            infos.append(info)
        left = agent.alive[0].sum(-1)
        fresh = (left <= 2) & (known_at < 0)   # the true assignment and its mirror image (no observation tells those apart)
        known_at[fresh] = (call + 1) // task.substeps

    total, _ = play(task, seed, on_step)
    per = total[0].reshape(-1, k).mean(0)
    if render_dir is not None:
        render_tmaze_episode({key: torch.stack([i[key] for i in infos]) for key in infos[0]}, cfg, render_dir)
    return {"episodes": E, "mean": float(total.mean()), "std": float(total.std()), "worst_assignment": float(per.min()),
            "best_assignment": float(per.max()), "known_after_median": float(known_at.float().median()),
            "known_after_max": float(known_at.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["reduced", "fixed_io", "shuffle_inputs", "shuffle_outputs"])
    ap.add_argument("--episodes", type=int, default=72)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--render", default=None, help="draw the first preset's first episode into this folder")
    args = ap.parse_args()
    for n, preset in enumerate(args.presets):
        t0 = time.perf_counter()
        r = score(preset, args.episodes, args.seed, render_dir=args.render if n == 0 else None)
        print(f"{preset}: {r['mean']:.2f} +- {r['std']:.2f} per 400-step episode ({r['episodes']} episodes, seed "
              f"{args.seed}); assignments {r['worst_assignment']:.2f} .. {r['best_assignment']:.2f}; assignment known "
              f"after {r['known_after_median']:.0f} env steps (median; max {r['known_after_max']:.0f}) "
              f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
