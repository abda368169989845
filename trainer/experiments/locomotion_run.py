"""``plastix train halfcheetah --method ppo --variant V`` (PPO on SpikePropamine's Half-Cheetah, export
the model) and ``plastix evaluate MODEL --noise KIND --std S`` (its return under noise)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from plastix.ir import Graph
from plastix.ir import save as save_graph
from plastix.ir.serialize import atomic_write_bytes

from ..runner import RunOptions, config_preset, run
from .locomotion import (CONFIGS, LocomotionConfig, LocomotionJob, Noise, SpikingController, evaluate_controller,
                         parse_locomotion_variant)


def locomotion_config(config: str, **overrides) -> LocomotionConfig:
    """A preset of :data:`plastix.trainer.experiments.locomotion.CONFIGS` with non-None ``overrides``."""
    return config_preset(CONFIGS, config, "halfcheetah config", **overrides)


def train_locomotion(variant: str = "non_plastic", config: str = "quick", out_dir: str | Path = "runs/ppo", *,
                     resume: bool = False, seed: int = 0, iterations: int | None = None, checkpoint_every: int = 1,
                     progress: bool = True, eval_episodes: int | None = None, **overrides) -> dict:
    """Train one variant with PPO; writes ``model.plx`` (the last iteration's policy), ``best.plx``
    (the best evaluation return so far), ``result.json`` (a final evaluation of ``model.plx`` on
    ``eval_episodes`` fresh episodes) plus the runner's checkpoint, ``metrics.jsonl`` and
    ``curve.png`` into ``out_dir``."""
    variant = parse_locomotion_variant(variant).value
    cfg = locomotion_config(config, variant=variant, seed=seed, iterations=iterations, **overrides)
    job = LocomotionJob(cfg)
    out = Path(out_dir)
    t0 = time.perf_counter()
    try:
        res = run(job, RunOptions(out_dir=out, total_steps=cfg.iterations, resume=resume,
                                  checkpoint_every=checkpoint_every, progress=progress,
                                  plot_keys=("return", "eval_return"), postfix_key="return", step_name="iteration",
                                  desc=f"ppo halfcheetah/{config}/{variant}", best_key="eval_return"))
    finally:
        job.close()
    policy = res.state.model
    graph = policy.to_graph()
    meta = dict(graph.metadata or {})
    meta.update(config=config, seed=seed, iterations=res.steps_done, trainer="ppo", episode_steps=cfg.episode_steps)
    path = save_graph(graph.replace(metadata=meta), out / "model.plx")
    n_eval = cfg.eval_episodes if eval_episodes is None else eval_episodes
    ev = evaluate_controller(policy.controller, episodes=n_eval, seed=LocomotionJob.EVAL_SEED + 1,
                             num_envs=cfg.num_envs, steps=cfg.episode_steps) if n_eval else None
    train_s = sum(r.get("wall_time", 0.0) for r in res.records)
    env_steps = sum(r.get("samples", 0) for r in res.records)
    tail = [r["return"] for r in res.records[-5:] if isinstance(r.get("return"), (int, float))]
    summary = {"task": "halfcheetah", "variant": variant, "config": config, "seed": seed, "iterations": res.steps_done,
               "env_steps": env_steps, "episode_steps": cfg.episode_steps, "num_envs": cfg.num_envs,
               "first_return": res.records[0]["return"] if res.records else None,
               "final_return_avg5": sum(tail) / len(tail) if tail else None,
               "best_eval_return": max((r["eval_return"] for r in res.records if isinstance(r.get("eval_return"), (int, float))),
                                       default=None),
               "eval_mean_return": None if ev is None else ev["mean_return"],
               "eval_std_return": None if ev is None else ev["std_return"], "eval_episodes": n_eval,
               "train_wall_time_s": train_s, "env_steps_per_s_overall": env_steps / train_s if train_s else None,
               "wall_time_s": time.perf_counter() - t0, "model": str(path), "resumed_from": res.resumed_from}
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def evaluate_locomotion(graph: Graph, *, noise: str = "none", stds: Sequence[float] = (0.0,), episodes: int = 100,
                        seed: int = 0, num_envs: int = 8, steps: int | None = None,
                        jit: bool | None = None) -> list[dict]:
    """The mean return of a trained Half-Cheetah policy at every std in ``stds`` of one noise kind
    (sec. 3.2, Fig. 4B-D; the paper averages 100 episodes per point), the same seeded episodes at
    every std. ``steps`` defaults to the model's training episode length (its ``episode_steps``
    metadata), else 1000. The torch backend runs the model in float32; ``jit`` (default: when the
    evaluation has >= 20,000 environment steps, which pays for the ~15 s compile) compiles it."""
    import torch

    kind = Noise(noise)
    steps = int(steps if steps is not None else (graph.metadata or {}).get("episode_steps", 1000))
    if jit is None:
        jit = episodes * steps * len(stds) >= 20_000
    ctrl = SpikingController.from_graph(graph, dtype=torch.float32, jit=jit)
    return [evaluate_controller(ctrl, episodes=episodes, seed=seed, num_envs=num_envs, steps=steps, noise=kind, std=s)
            for s in stds]
