r"""Proximal Policy Optimization for stateful policies: SpikePropamine's trainer for its locomotion
SNNs (Schmidgall et al. 2021, sec. 3.2: "BPTT with the surrogate gradient method Proximal Policy
Optimization, altogether with the Adam optimization method"; Schulman et al. 2017).

* Actions are Gaussian around the policy's mean with a learned log standard deviation (sec. 3.2:
  :math:`A_e = \mathcal{N}(A, \exp(\sigma_{log})^2)`): :func:`gaussian_log_prob`, :func:`gaussian_entropy`.
* Advantages: GAE (Schulman et al. 2016, eq. 16), :func:`gae`:
  :math:`\delta_t = r_t + \gamma V'_t - V_t`, :math:`\hat A_t = \delta_t + \gamma\lambda (1 - d_t)\hat A_{t+1}`,
  returns :math:`R_t = \hat A_t + V_t`. :math:`V'_t` is the value of the next observation, 0 after a
  termination and the final observation's value after a truncation (a time limit is not a failure);
  :math:`d_t` ends the episode either way.
* Loss (PPO eq. 9): :math:`-\min(\rho \hat A, \mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon)\hat A)
  + c_v (V - R)^2 - c_e H`, :math:`\rho = \pi(a|s) / \pi_{old}(a|s)`, advantages standardised per
  minibatch: :func:`ppo_loss`.
* Rewards are divided by the running standard deviation of the discounted return (the scaling of
  gymnasium's ``NormalizeReward``): :class:`RunningMeanStd`, :func:`discounted_returns`.

Stateful policies (a spiking network's membranes and plastic traces, carried through an episode):
the rollout stores the policy state at the start of every step with the sample, and the update
recomputes the action mean from it. Gradients flow through one step's network dynamics and stop at
the stored state (truncated BPTT at step boundaries), so samples shuffle freely into minibatches.

:class:`PPOJob` is the runner's job (:mod:`plastix.trainer.runner`): one :meth:`PPOJob.step` is one
iteration, one episode in each of the task's ``E`` environments (new seeds each iteration, so the
checkpoint at an iteration boundary is the whole loop state) followed by ``epochs`` passes of
minibatch updates through :meth:`GradientJob.optimize`. An experiment subclasses it with
``make_task`` (a :class:`plastix.tasks.base.BatchedTask` with one individual) and ``init_state``.
Environments and time steps are batched; the loops are over time steps and minibatches only.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Protocol

import torch
from torch import nn

from .gradient import GradientJob, GradientState

Tensor = torch.Tensor
LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyper-parameters (defaults: the usual MuJoCo settings of Schulman et al. 2017, Table 3,
    with more epochs than minibatch passes of an MLP would need)."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 10
    minibatch: int = 256        # samples per minibatch (a shorter remainder is dropped each epoch)
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    target_kl: float | None = None  # stop an update's epochs once the approximate KL exceeds it
    normalize_advantage: bool = True
    scale_reward: bool = True   # divide rewards by the running std of the discounted return

    def __post_init__(self) -> None:
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PPOSettings.{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.clip > 0:
            raise ValueError(f"PPOSettings.clip must be > 0, got {self.clip}")
        if self.epochs < 1 or self.minibatch < 1:
            raise ValueError(f"PPOSettings: epochs and minibatch must be >= 1, got {self.epochs}, {self.minibatch}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"PPOSettings.target_kl must be > 0 or None, got {self.target_kl}")


# ---------------------------------------------------------------------------------------------
# pure pieces


def gaussian_log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """``log N(action; mean, diag exp(log_std)^2)`` summed over the last (action) dim."""
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of ``N(., diag exp(log_std)^2)``, summed over the action dims."""
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


def gae(reward: Tensor, value: Tensor, next_value: Tensor, done: Tensor, gamma: float,
        lam: float) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimates and returns ``(A, R)``, all ``(T, N)`` (module docstring).
    ``next_value``: value of the observation after step ``t`` (0 after a termination); ``done``:
    the episode ended at ``t`` (terminated or truncated)."""
    delta = reward + gamma * next_value - value
    keep = gamma * lam * (~done).to(value.dtype)
    adv = torch.zeros_like(value)
    carry = torch.zeros_like(value[0])
    for t in range(value.shape[0] - 1, -1, -1):
        carry = delta[t] + keep[t] * carry
        adv[t] = carry
    return adv, adv + value


def discounted_returns(reward: Tensor, done: Tensor, gamma: float) -> Tensor:
    """The running discounted return ``G_t = gamma (1 - d_{t-1}) G_{t-1} + r_t`` of every env,
    ``(T, N)`` (what ``NormalizeReward`` tracks), starting from 0."""
    out = torch.zeros_like(reward)
    g = torch.zeros_like(reward[0])
    for t in range(reward.shape[0]):
        g = g * gamma + reward[t]
        out[t] = g
        g = torch.where(done[t], torch.zeros_like(g), g)
    return out


def ppo_loss(log_prob: Tensor, old_log_prob: Tensor, advantage: Tensor, value: Tensor, ret: Tensor,
             entropy: Tensor, s: PPOSettings) -> tuple[Tensor, dict[str, float]]:
    """The clipped PPO loss of one minibatch (module docstring) and its diagnostics: policy and value
    losses, entropy, approximate KL ``E[(ρ - 1) - log ρ]`` and the clipped fraction."""
    if s.normalize_advantage and advantage.numel() > 1:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    pg = -torch.minimum(ratio * advantage, ratio.clamp(1.0 - s.clip, 1.0 + s.clip) * advantage).mean()
    v_loss = 0.5 * ((value - ret) ** 2).mean()
    ent = entropy.mean()
    loss = pg + s.vf_coef * v_loss - s.ent_coef * ent
    with torch.no_grad():
        stats = {"pg_loss": float(pg), "v_loss": float(v_loss), "entropy": float(ent),
                 "approx_kl": float(((ratio - 1.0) - log_ratio).mean()),
                 "clip_frac": float(((ratio - 1.0).abs() > s.clip).float().mean())}
    return loss, stats


def explained_variance(pred: Tensor, target: Tensor) -> float:
    """``1 - Var[target - pred] / Var[target]`` (NaN when the target is constant)."""
    var = float(target.var())
    return math.nan if var == 0.0 else 1.0 - float((target - pred).var()) / var


@dataclass
class RunningMeanStd:
    """Running mean and variance of a stream of numbers (parallel-variance merge of batches)."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 1e-4

    def update(self, x: Tensor) -> None:
        x = x.detach().to(torch.float64).flatten()
        n = x.numel()
        if n == 0:
            return
        bmean, bvar = float(x.mean()), float(x.var(unbiased=False))
        total = self.count + n
        delta = bmean - self.mean
        m2 = self.var * self.count + bvar * n + delta * delta * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    def std(self, eps: float = 1e-8) -> float:
        return math.sqrt(self.var + eps)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, d: dict) -> None:
        self.mean, self.var, self.count = float(d["mean"]), float(d["var"]), float(d["count"])


# ---------------------------------------------------------------------------------------------
# policy states as flat lists of tensors (NamedTuples, dicts, tuples; other leaves are static)


class Flat(NamedTuple):
    """A policy state split into its tensors and a ``rebuild(tensors) -> state`` function."""

    tensors: list[Tensor]
    rebuild: Callable[[list[Tensor]], Any]


def flatten_state(state: Any) -> Flat:
    """Split a nest of NamedTuples / dicts / tuples / lists into its tensor leaves and a function
    that rebuilds the nest from tensors of the same order (non-tensor leaves, e.g. ``None`` or an
    int step counter, are kept as they are)."""
    leaves: list[Tensor] = []

    def spec(x: Any) -> Callable[[Any], Any]:
        if torch.is_tensor(x):
            leaves.append(x)
            return lambda it: next(it)
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            subs = [spec(v) for v in x]
            return lambda it: type(x)(*(s(it) for s in subs))
        if isinstance(x, (tuple, list)):
            subs = [spec(v) for v in x]
            return lambda it: type(x)(s(it) for s in subs)
        if isinstance(x, dict):
            subs = {k: spec(v) for k, v in x.items()}
            return lambda it: {k: s(it) for k, s in subs.items()}
        return lambda it: x

    build = spec(state)
    return Flat(leaves, lambda tensors: build(iter(tensors)))


# ---------------------------------------------------------------------------------------------
# the job


class StatefulPolicy(Protocol):
    """What :class:`PPOJob` trains. ``n`` is the number of environments or samples (dim 0 of every
    tensor); a state is a nest of tensors with leading dim ``n`` (:func:`flatten_state`)."""

    log_std: nn.Parameter  # (A,)
    steps_per_action: int  # inner network steps per environment step (for the SNN-steps/s metric)

    def initial_state(self, n: int) -> Any: ...

    def act(self, obs: Tensor, state: Any, generator: torch.Generator) -> tuple[Tensor, Any, Tensor]:
        """``(mean (n, A), next state, replay (n, ...))`` without gradient; ``replay`` is what
        :meth:`mean_of` needs besides the state to recompute ``mean`` (e.g. the input spikes)."""

    def mean_of(self, state: Any, replay: Tensor) -> Tensor:
        """The action mean ``(n, A)`` from stored states and replays, with gradient."""

    def value(self, obs: Tensor) -> Tensor:
        """State value ``(n,)`` of the critic's observations ``(n, ...)`` (:meth:`PPOJob.value_observation`)."""


@dataclass
class PPOState(GradientState):
    """:class:`GradientState` (the policy as ``model``, its Adam optimizer, the generator) plus the
    running statistics of the discounted return that scale the rewards."""

    returns: RunningMeanStd = field(default_factory=RunningMeanStd)


@dataclass
class Rollout:
    """One episode per environment, ``(T, E, ...)`` per field (``valid``: the step belongs to the
    env's episode; after the episode ended an env's steps are padding). ``obs`` / ``next_obs``: what
    the critic sees before / after the step (:meth:`PPOJob.value_observation`)."""

    obs: Tensor
    next_obs: Tensor
    action: Tensor
    log_prob: Tensor
    reward: Tensor
    terminated: Tensor
    done: Tensor
    valid: Tensor
    replay: Tensor
    states: list[Tensor]  # flattened policy states, each (T, E, ...)
    rebuild: Callable[[list[Tensor]], Any]
    info: dict[str, Tensor]  # per-step info of the task (T, E)
    seconds: float


class PPOJob(GradientJob):
    """One PPO iteration per :meth:`step` (module docstring). ``cfg`` needs ``ppo``
    (:class:`PPOSettings`), ``grad_clip``, ``seed``, ``to_json`` and ``eval_every``; subclasses
    implement ``make_task`` and ``init_state`` (returning a :class:`PPOState`), optionally
    ``evaluate(state) -> metrics``."""

    def __init__(self, cfg: Any, graph: Any = None) -> None:
        super().__init__(cfg, graph)
        self._task = None

    # -- environment ---------------------------------------------------------------------------
    def make_task(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def task(self) -> Any:
        if self._task is None:
            self._task = self.make_task()
            if self._task.population != 1:
                raise ValueError(f"PPOJob: the task must have one individual, got population {self._task.population}")
        return self._task

    def close(self) -> None:
        """Release the task's environments (if it has any to release)."""
        if self._task is not None and hasattr(self._task, "close"):
            self._task.close()
        self._task = None

    # -- rollout -------------------------------------------------------------------------------
    def value_observation(self, obs: Tensor) -> Tensor:
        """What the critic sees, read right after ``reset`` / ``step`` returned the policy's observation
        ``obs`` ``(E, ...)``: ``obs`` itself here; a subclass may return the simulator's full state (an
        asymmetric actor-critic: the critic only shapes training and is never deployed)."""
        return obs

    def rollout(self, state: PPOState) -> Rollout:
        """One episode in each of the task's environments with Gaussian actions around the mean."""
        policy, g, task = state.model, state.generator, self.task
        t0 = time.perf_counter()
        obs, _ = task.reset(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        obs = obs[0]
        vobs = self.value_observation(obs)
        E = obs.shape[0]
        h = policy.initial_state(E)
        alive = torch.ones(E, dtype=torch.bool)
        rec: dict[str, list] = {k: [] for k in ("obs", "next_obs", "action", "log_prob", "reward", "terminated",
                                                "done", "valid", "replay")}
        infos: dict[str, list] = {}
        bufs: list[Tensor] | None = None
        rebuild = None
        limit = getattr(task, "max_episode_steps", None) or 10_000
        log_std = policy.log_std.detach()
        with torch.no_grad():
            for t in range(limit):
                flat = flatten_state(h)
                if bufs is None:
                    rebuild = flat.rebuild
                    bufs = [x.new_empty((limit, *x.shape)) for x in flat.tensors]
                for buf, x in zip(bufs, flat.tensors):
                    buf[t] = x
                mean, h, replay = policy.act(obs, h, g)
                noise = torch.randn(mean.shape, generator=g, dtype=mean.dtype)
                action = mean + noise * log_std.exp()
                nxt, reward, term, trunc, info = task.step(action[None].to(torch.float32))
                nxt, reward, term, trunc = nxt[0], reward[0], term[0].cpu(), trunc[0].cpu()
                next_vobs = self.value_observation(nxt)
                done = term | trunc
                for k, v in (("obs", vobs), ("next_obs", next_vobs), ("action", action), ("replay", replay),
                             ("log_prob", gaussian_log_prob(mean, log_std, action)), ("reward", reward.cpu()),
                             ("terminated", term), ("done", done), ("valid", alive.clone())):
                    rec[k].append(v)
                for k, v in info.items():
                    if torch.is_tensor(v) and v.dim() == 2:
                        infos.setdefault(k, []).append(v[0].cpu())
                alive &= ~done
                obs, vobs = nxt, next_vobs
                if not bool(alive.any()):
                    break
        T = len(rec["obs"])
        out = {k: torch.stack(v) for k, v in rec.items()}
        out["done"] = out["done"] | ~out["valid"]  # padding never carries an advantage backwards
        return Rollout(**out, states=[b[:T] for b in bufs], rebuild=rebuild,
                       info={k: torch.stack(v) for k, v in infos.items()}, seconds=time.perf_counter() - t0)

    # -- update --------------------------------------------------------------------------------
    def advantages(self, state: PPOState, ro: Rollout) -> tuple[Tensor, Tensor, Tensor]:
        """``(advantage, return, value)`` ``(T, E)`` of a rollout (scaled rewards, module docstring)."""
        s, policy = self.cfg.ppo, state.model
        reward = ro.reward.to(torch.float32) * ro.valid
        if s.scale_reward:
            state.returns.update(discounted_returns(reward, ro.done, s.gamma)[ro.valid])
            reward = reward / state.returns.std()
        with torch.no_grad():
            T, E = ro.valid.shape
            value = policy.value(ro.obs.flatten(0, 1)).reshape(T, E)
            next_value = policy.value(ro.next_obs.flatten(0, 1)).reshape(T, E) * (~ro.terminated)
        adv, ret = gae(reward, value, next_value, ro.done, s.gamma, s.gae_lambda)
        return adv, ret, value

    def update(self, state: PPOState, ro: Rollout) -> dict[str, float]:
        """``epochs`` passes of minibatch PPO steps over the rollout's valid samples."""
        s, policy, g = self.cfg.ppo, state.model, state.generator
        adv, ret, value = self.advantages(state, ro)
        idx_valid = torch.nonzero(ro.valid.flatten()).flatten()
        n = idx_valid.numel()
        size = min(s.minibatch, n)
        flat = {k: getattr(ro, k).flatten(0, 1) for k in ("obs", "action", "log_prob", "replay")}
        flat.update(adv=adv.flatten(), ret=ret.flatten())
        states = [x.flatten(0, 1) for x in ro.states]
        sums: dict[str, float] = {}
        count, stopped = 0, False
        for _ in range(s.epochs):
            perm = idx_valid[torch.randperm(n, generator=g)]
            for k in range(n // size):
                i = perm[k * size:(k + 1) * size]
                h = ro.rebuild([x[i] for x in states])
                mean = policy.mean_of(h, flat["replay"][i])
                logp = gaussian_log_prob(mean, policy.log_std, flat["action"][i])
                v = policy.value(flat["obs"][i])
                loss, stats = ppo_loss(logp, flat["log_prob"][i], flat["adv"][i], v, flat["ret"][i],
                                       gaussian_entropy(policy.log_std).expand(size), s)
                stats["grad_norm"] = self.optimize(state, loss)
                for key, val in stats.items():
                    sums[key] = sums.get(key, 0.0) + val
                count += 1
                if s.target_kl is not None and stats["approx_kl"] > s.target_kl:
                    stopped = True
                    break
            if stopped:
                break
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out.update(minibatches=count, explained_variance=explained_variance(value[ro.valid], ret[ro.valid]))
        return out

    # -- one iteration -------------------------------------------------------------------------
    def evaluate(self, state: PPOState) -> dict[str, float]:
        """Evaluation metrics every ``cfg.eval_every`` iterations (none by default)."""
        return {}

    def step(self, state: PPOState, index: int) -> tuple[PPOState, dict[str, float]]:
        ro = self.rollout(state)
        t0 = time.perf_counter()
        metrics = self.update(state, ro)
        n = int(ro.valid.sum())
        episode_return = (ro.reward * ro.valid).sum(0)
        metrics.update({"return": float(episode_return.mean()), "return_std": float(episode_return.std())
                        if episode_return.numel() > 1 else 0.0, "episode_steps": float(ro.valid.sum(0).float().mean()),
                        "action_std": float(state.model.log_std.detach().exp().mean()), "samples": n,
                        "rollout_s": ro.seconds, "update_s": time.perf_counter() - t0,
                        "env_steps_per_s": n / ro.seconds,
                        "snn_steps_per_s": n * state.model.steps_per_action / ro.seconds})
        for k, v in ro.info.items():
            if k.startswith("reward_"):
                metrics[k] = float((v * ro.valid).sum(0).mean())
        every = getattr(self.cfg, "eval_every", 0)
        if every and (index + 1) % every == 0:
            metrics.update(self.evaluate(state))
        return state, metrics

    # -- checkpoint ----------------------------------------------------------------------------
    def state_dict(self, state: PPOState) -> dict:
        return {**super().state_dict(state), "returns": state.returns.state_dict()}

    def load_state_dict(self, data: dict) -> PPOState:
        state = super().load_state_dict(data)
        state.returns.load_state_dict(data["returns"])
        return state
