"""How much of a Half-Cheetah policy's return can a critic explain from what it sees? (issue 20, docs/results.md)

    .venv/bin/python tools/critic_inputs.py MODEL.plx [--envs 32] [--steps 200] [--noise 0.3] [--fit-steps 150]

A diagnostic, not library code. Rollouts of the policy (its mean action plus N(0, noise^2)), Monte-Carlo returns
(gamma 0.99, scaled to unit std), then the same MLP critic as PPO's (-> 64 -> 64 -> 1, tanh) fit by Adam on the
first half of the episodes (their first ``steps / 2`` steps, whose returns the episode's end does not cut short) from
three inputs: the 12 joint observations the policy sees, the env's whole 17-d observation, and the torso's x
velocity alone. Printed: the explained variance on the other half of the episodes (held out) and on the fitted half.
"""
from __future__ import annotations

import argparse
import json

import torch

import plastix.ir as ir
from plastix.tasks.halfcheetah import OBS_INDICES, HalfCheetahConfig, HalfCheetahTask
from plastix.trainer.experiments.locomotion import SpikingController

INPUTS = {"joints (12)": list(OBS_INDICES), "full state (17)": list(range(17)), "x velocity (1)": [8]}


def rollouts(graph: ir.Graph, *, envs: int, steps: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(full observations (steps, envs, 17), rewards (steps, envs))`` of noisy-action episodes."""
    ctrl = SpikingController.from_graph(graph, dtype=torch.float32)
    task = HalfCheetahTask(HalfCheetahConfig(num_envs=envs, steps=steps))
    g = torch.Generator().manual_seed(seed)
    full, rew = [], []
    try:
        obs, _ = task.reset(seed=seed)
        h = ctrl.initial_state(envs)
        for _ in range(steps):
            full.append(task.full_observation()[0])
            mean, h, _ = ctrl.act(obs[0], h, g)
            obs, r, _, _, _ = task.step((mean + noise * torch.randn(mean.shape, generator=g))[None].float())
            rew.append(r[0])
    finally:
        task.close()
    return torch.stack(full), torch.stack(rew)


def explained(x: torch.Tensor, ret: torch.Tensor, *, fit_steps: int, seed: int) -> tuple[float, float]:
    """``(held-out, fitted)`` explained variance of an MLP critic on inputs ``x`` (T, E, d) for returns (T, E)."""
    torch.manual_seed(seed)
    x = (x - x.mean((0, 1))) / (x.std((0, 1)) + 1e-6)
    E = x.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[-1], 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                              torch.nn.Tanh(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    X, Y = x[:, :E // 2].reshape(-1, x.shape[-1]), ret[:, :E // 2].reshape(-1)
    Xt, Yt = x[:, E // 2:].reshape(-1, x.shape[-1]), ret[:, E // 2:].reshape(-1)
    for _ in range(fit_steps):
        opt.zero_grad()
        ((net(X).squeeze(-1) - Y) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        return (float(1 - (Yt - net(Xt).squeeze(-1)).var() / Yt.var()),
                float(1 - (Y - net(X).squeeze(-1)).var() / Y.var()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.3, help="std of the Gaussian added to the mean action")
    ap.add_argument("--fit-steps", type=int, default=150, help="Adam steps (more overfit the fitted half)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    full, rew = rollouts(ir.load(a.model), envs=a.envs, steps=a.steps, noise=a.noise, seed=a.seed)
    ret = torch.zeros_like(rew)
    acc = torch.zeros(rew.shape[1])
    for t in range(rew.shape[0] - 1, -1, -1):
        acc = rew[t] + 0.99 * acc
        ret[t] = acc
    half = a.steps // 2
    ret = ret[:half] / ret[:half].std()
    row = {"model": a.model, "mean_return": float(rew.sum(0).mean()), "envs": a.envs, "steps": a.steps, "noise": a.noise}
    for name, idx in INPUTS.items():
        held, fitted = explained(full[:half, :, idx], ret, fit_steps=a.fit_steps, seed=a.seed)
        row[name] = {"held_out_ev": round(held, 3), "fitted_ev": round(fitted, 3)}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
