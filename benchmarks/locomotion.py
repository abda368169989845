"""Throughput of SpikePropamine's Half-Cheetah policy (issue 20): environment steps and SNN steps per
second at ``E`` environments, and PPO update samples per second, for each network variant.

Per variant (the paper's 600 -> 64 -> 64 -> 600 network, T = 50 SNN steps per environment step):

* ``env_steps_per_s_env_only``: the ``halfcheetah`` task alone (E MuJoCo envs, random actions);
* ``policy_ms_per_env_step`` / ``snn_steps_per_s`` / ``env_steps_per_s_policy_only``: the rollout's
  policy step (place coding, 50 SNN steps of all E envs, decoding; no gradient). SNN steps count
  network steps x environments;
* ``env_steps_per_s_closed_loop``: policy + task, what a PPO rollout runs;
* ``update_samples_per_s_{step,layerwise}``: PPO's minibatch step (50 SNN steps with autograd from
  stored states, backward) in samples per second, ``--minibatch`` samples at a time, on the torch
  backend's step-by-step schedule and on its layer-wise one (the same values;
  :mod:`plastix.backends.torch.layerwise`), alternated ``--repeats // 5`` times (median);
  ``update_speedup`` is their ratio.

The rollout numbers use ``--schedule`` (the policy's default, ``auto``: layer-wise when the rules'
interval is > 1, else step). ``--interval`` sets the
rules' Δτ (default the experiment's, ``HC_INIT.interval``). The first call of each (``first_*_s``) includes
``torch.compile`` with ``--jit``. The load average is printed: on a shared machine, timings are only
comparable within one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/locomotion.py                  # all five, E = 8, jit
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/locomotion.py --variants dp_oja --interval 10
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/locomotion.py --variants non_plastic --no-jit
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

SCHEDULES = ("step", "layerwise")


def bench(variant: str, *, envs: int, minibatch: int, jit: bool, repeats: int, interval: int | None = None,
          schedule: str = "auto") -> dict:
    import torch

    from plastix.tasks.halfcheetah import HalfCheetahConfig, HalfCheetahTask
    from plastix.trainer.algorithms.ppo import flatten_state, gaussian_log_prob
    from plastix.trainer.experiments.locomotion import HC_INIT, LocomotionConfig, LocomotionJob

    init = HC_INIT if interval is None else dataclasses.replace(HC_INIT, interval=interval)
    job = LocomotionJob(LocomotionConfig(variant=variant, jit=jit, num_envs=envs, init=init, schedule=schedule))
    state = job.init_state()
    pol, g = state.model, torch.Generator().manual_seed(0)
    res: dict = {"variant": variant, "envs": envs, "jit": jit, "interval": init.interval, "rollout_schedule": schedule}
    task = HalfCheetahTask(HalfCheetahConfig(num_envs=envs, steps=100_000))
    try:
        obs, _ = task.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(10 * repeats):
            obs, *_ = task.step(torch.rand(1, envs, 6, generator=g) * 2 - 1)
        res["env_steps_per_s_env_only"] = 10 * repeats * envs / (time.perf_counter() - t0)
        h = pol.initial_state(envs)
        t0 = time.perf_counter()
        pol.act(obs[0], h, g)
        res["first_act_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(repeats):
            _, h, _ = pol.act(obs[0], h, g)
        dt = (time.perf_counter() - t0) / repeats
        window = pol.steps_per_action
        res.update(policy_ms_per_env_step=dt * 1e3, snn_steps_per_s=window * envs / dt, env_steps_per_s_policy_only=envs / dt)
        t0 = time.perf_counter()
        for _ in range(repeats):
            mean, h, _ = pol.act(obs[0], h, g)
            obs, *_ = task.step(mean[None].float())
        res["env_steps_per_s_closed_loop"] = repeats * envs / (time.perf_counter() - t0)
    finally:
        task.close()
    # a minibatch of stored states and input spikes, as PPO's update sees them
    flats, replays, h = [], [], pol.initial_state(envs)
    while sum(r.shape[0] for r in replays) < minibatch:
        flats.append(flatten_state(h))
        _, h, r = pol.act(obs[0], h, g)
        replays.append(r)
    n = min(minibatch, sum(r.shape[0] for r in replays))
    stored = flats[0].rebuild([torch.cat([f.tensors[i] for f in flats])[:n] for i in range(len(flats[0].tensors))])
    replay, action = torch.cat(replays)[:n], torch.zeros(n, 6)

    def update(schedule: str) -> float:
        t0 = time.perf_counter()
        loss = -gaussian_log_prob(pol.mean_of(stored, replay, schedule=schedule), pol.log_std, action).mean()
        state.optimizer.zero_grad()
        loss.backward()
        return time.perf_counter() - t0

    for s in SCHEDULES:
        res[f"first_update_s_{s}"] = update(s)
    times: dict[str, list[float]] = {s: [] for s in SCHEDULES}
    for _ in range(max(1, repeats // 5)):  # alternated, so that a load change hits both
        for s in SCHEDULES:
            times[s].append(update(s))
    res["minibatch"] = n
    for s in SCHEDULES:
        res[f"update_samples_per_s_{s}"] = n / statistics.median(times[s])
    res["update_speedup"] = res["update_samples_per_s_layerwise"] / res["update_samples_per_s_step"]
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="non_plastic,dp_oja,dp_bcm,ndp_oja,ndp_bcm")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--minibatch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--interval", type=int, default=None,
                   help="the rules' interval (default: the experiment's, HC_INIT.interval)")
    p.add_argument("--schedule", choices=(*SCHEDULES, "auto"), default="auto",
                   help="the rollouts' schedule (auto, the policy's default: layer-wise for rule intervals > 1)")
    a = p.parse_args(argv)
    print(f"load average {os.getloadavg()}; torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
        for v in a.variants.split(","):
            rows.append(bench(v, envs=a.envs, minibatch=a.minibatch, jit=a.jit, repeats=a.repeats, interval=a.interval,
                              schedule=a.schedule))
            print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        print(f"{r['variant']:>12} interval {r['interval']}: update samples/s step {r['update_samples_per_s_step']:8.1f}  "
              f"layerwise {r['update_samples_per_s_layerwise']:8.1f}  x{r['update_speedup']:.2f}", flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
