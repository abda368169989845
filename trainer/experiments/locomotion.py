r"""SpikePropamine's locomotion experiment (Schmidgall et al. 2021, sec. 3.2 and Fig. 4-5): plastic
spiking policies on Half-Cheetah, trained with PPO through BPTT.

Network (sec. 3.2, Fig. 5), :func:`locomotion_net`: 600 place-coded inputs (the 12 joint angles and
velocities x 50 neurons, :func:`plastix.tasks.halfcheetah.place_code`) -> 64 -> 64 CUBA LIF -> 600
CUBA LIF outputs (6 joints x 100 neurons, half positive and half negative,
:class:`plastix.tasks.spike_coding.ActionCode`), fully connected and feed-forward, for one of the five
:data:`VARIANTS` (non-plastic, DP-Oja, DP-BCM, NDP-Oja, NDP-BCM; built by
:func:`plastix.trainer.experiments.pg.plastic_feedforward`, the T-maze's builder, so every projection
carries ``W_eff = W + α ⊙ E`` with the variant's rule, eqs. 7 and 11-21).

Policy, :class:`SpikingController`: at every environment step the SNN runs ``T = 50`` steps on fresh
Bernoulli spikes of the current observation; the output spike counts decode to the action mean
``A(t)``; actions are ``A_e ~ N(A, exp(σ_log)²)`` with a learned ``σ_log`` (sec. 3.2). The SNN's
state (membranes, plastic traces ``E`` and ``φ``) carries over from one environment step to the next
within an episode and starts at zero in every episode. The network runs on the torch backend
(:func:`plastix.backends.torch.compile`, SLAYER's exponential surrogate gradient as in the paper);
the trained graph is exported as ``model.plx`` and runs on Lava too (:func:`compare_lava`).

Training, :class:`LocomotionJob`: PPO with the clipped objective, GAE, a value head and Adam
(:mod:`plastix.trainer.algorithms.ppo`), one episode per environment per iteration, driven by
:mod:`plastix.trainer.runner`. Evaluation under noise, :func:`evaluate_controller`: the task's
joint-friction, action and observation noise (:mod:`plastix.tasks.halfcheetah`).

Our choices where the paper's text (its appendix is not in our copy) leaves them open, stated once:

* Δτ = 10: the rules' rates are spike averages over 10 SNN steps (5 updates per 50-step action window,
  4 inside it, so the rule rates get a gradient through the window). Policies with Δτ > 1 run on the torch
  backend's layer-wise schedule (``LocomotionConfig.schedule``, :func:`policy_schedule`;
  :mod:`plastix.backends.torch.layerwise`: the same values as the step-by-step one, each per-sample
  plastic weight read once per interval instead of once per SNN step), compiled with
  ``torch.compile`` (``jit``); Δτ = 10 makes the plastic PPO update ~10x faster than Δτ = 1. With Δτ = 50 (one
  update per window, at its end) the rule rates η get no gradient (truncation is at window boundaries).
* Initial values :data:`HC_INIT` / :data:`HC_SCALES`: weights give the hidden layers a firing rate
  of ~0.1-0.3 per step on the place code; α ~ N(0, (1/√n_pre)²) so that α ⊙ E starts as large as W;
  η = η_φ = 0.1 per update (every Δτ = 10 steps: a trace time constant of 2 environment steps); NDP modulators start at
  ``M = 1`` (bias 1, W_m ~ N(0, 0.1²/n)), i.e. as DP.
* The value head is a separate MLP (-> 64 -> 64 -> 1, tanh), as common PPO implementations for MuJoCo
  do; the SNN is the actor only. What it sees is ``LocomotionConfig.critic``: ``"joints"``, the
  policy's 12 observations scaled to the place code's ranges (the ``quick`` runs), or ``"state"``, the
  env's whole noise-free 17-d observation (:meth:`~plastix.tasks.halfcheetah.HalfCheetahTask.full_observation`;
  an asymmetric actor-critic, Pinto et al. 2018). The reward is mostly the torso's forward velocity,
  which the 12 joint observations do not contain: critics fit to rollouts of the trained DP-Oja policy
  explain 27-50 % of the held-out return variance from the state and 4-14 % from the joints
  (``tools/critic_inputs.py``, docs/results.md), and the ``quick`` runs logged an explained variance of ~0.
* Gradients flow through one environment step's 50 SNN steps (truncated BPTT at step boundaries);
  the stored state at the step's start is a constant.
* Evaluation uses the mean action ``A(t)`` (no Gaussian noise; the input spikes stay random).
* Environments ride the torch backend's individual axis ``P`` (shared parameters, one state and one
  set of plastic weights per env).
"""
from __future__ import annotations

import dataclasses
import enum
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from plastix.backends.torch import Schedule, parse_schedule
from plastix.ir import Graph
from plastix.tasks.halfcheetah import JOINT_HIGH, JOINT_LOW, JOINTS, OBS_INDICES, VELOCITY_CLIP, place_code
from plastix.tasks.spike_coding import ActionCode, PlaceCode

from ..algorithms.gradient import PlasticNet
from ..algorithms.ppo import PPOJob, PPOSettings, PPOState
from .pg import NetInit, PlasticVariant, parse_variant, plastic_feedforward

Tensor = torch.Tensor

#: the five networks of sec. 3.2 / Fig. 4
VARIANTS: tuple[PlasticVariant, ...] = (PlasticVariant.NON_PLASTIC, PlasticVariant.DP_OJA, PlasticVariant.DP_BCM,
                                        PlasticVariant.NDP_OJA, PlasticVariant.NDP_BCM)
INPUT, OUTPUT = "joints", "action"
#: initial values (module docstring); the weight scales are :data:`HC_SCALES` (``w_scale_*`` and
#: ``readout_gain`` of :class:`~plastix.trainer.experiments.pg.NetInit` are the T-maze's, unused here)
HC_INIT = NetInit(w_scale_in=1.0, w_scale_out=1.0, alpha_scale=1.0, eta=0.1, eta_phi=0.1, interval=10, clip=1.0,
                  mod_scale=0.1, du=0.3, dv=0.2, vth=1.0, readout_gain=1.0)
HC_SCALES: tuple[float, float, float] = (1.0, 1.0, 1.0)  # weight scales of the three projections
SOURCE = "Schmidgall et al. 2021, SpikePropamine, sec. 3.2 (Half-Cheetah locomotion)"


def parse_locomotion_variant(name: str | PlasticVariant) -> PlasticVariant:
    v = parse_variant(name)
    if v not in VARIANTS:
        raise ValueError(f"variant {v.value!r} is not one of the locomotion networks; known: "
                         f"{', '.join(x.value for x in VARIANTS)}")
    return v


# ---------------------------------------------------------------------------------------------
# network and coding


def locomotion_net(variant: PlasticVariant | str, *, per_input: int = 50, hidden: int = 64, per_action: int = 100,
                   window: int = 50, seed: int = 0, init: NetInit = HC_INIT,
                   scales: tuple[float, ...] = HC_SCALES) -> Graph:
    """The network of sec. 3.2 (module docstring) for one variant: input ``joints``
    (``12 * per_input``), CUBA LIF ``hidden1``, ``hidden2`` (``hidden`` each), output ``action``
    (``6 * per_action``). The coding settings travel in the graph's metadata (``coding_*``), so a
    saved model is a complete policy (:meth:`SpikingController.from_graph`)."""
    v = parse_locomotion_variant(variant)
    code = place_code(per_input)
    meta = {"source": SOURCE, "task": "halfcheetah", "variant": v.value, "coding_per_input": per_input,
            "coding_velocity_clip": VELOCITY_CLIP, "coding_width": code.width, "coding_p_min": code.p_min,
            "coding_p_max": code.p_max, "coding_per_action": per_action, "coding_window": window}
    layers = [(INPUT, len(OBS_INDICES) * per_input), ("hidden1", hidden), ("hidden2", hidden),
              (OUTPUT, len(JOINTS) * per_action)]
    return plastic_feedforward(v, layers, scales=scales, seed=seed, init=init, metadata=meta)


def codes_of(graph: Graph) -> tuple[PlaceCode, ActionCode]:
    """The place code and action code a locomotion graph was built for (its ``coding_*`` metadata)."""
    m = graph.metadata or {}
    try:
        place = place_code(int(m["coding_per_input"]), float(m["coding_velocity_clip"]), width=float(m["coding_width"]),
                           p_min=float(m["coding_p_min"]), p_max=float(m["coding_p_max"]))
        action = ActionCode(int(m["coding_per_action"]), int(m["coding_window"]))
    except KeyError as exc:
        raise ValueError(f"not a Half-Cheetah policy: the model's metadata has no {exc.args[0]!r} "
                         "(train one with `plastix train halfcheetah --method ppo`)") from None
    return place, action


def pack_bits(x: Tensor) -> Tensor:
    """0/1 values ``(n, L)`` as ``(n, ceil(L / 8))`` uint8 (8 spikes per byte)."""
    n, length = x.shape
    b = torch.nn.functional.pad(x.to(torch.uint8), (0, (-length) % 8)).reshape(n, -1, 8)
    return (b << torch.arange(8, dtype=torch.uint8)).sum(-1, dtype=torch.uint8)


def unpack_bits(p: Tensor, length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The inverse of :func:`pack_bits`: ``(n, length)`` 0/1 values."""
    bits = (p.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1
    return bits.flatten(1)[:, :length].to(dtype)


class SpikingController:
    """The deployable policy (module docstring): place coding of the observation, ``window`` steps
    of the compiled SNN, population decoding of the action mean. ``net``: a torch-backend network of
    a :func:`locomotion_net` graph; environments ride its individual axis P (state ``(P=n, B=1)``)."""

    def __init__(self, net: Any, place: PlaceCode, action: ActionCode) -> None:
        self.net = net
        self.place = place
        self.action = action

    @classmethod
    def from_graph(cls, graph: Graph, *, dtype: torch.dtype = torch.float64, surrogate: str = "exponential",
                   jit: bool = False, schedule: Schedule | str = "auto") -> "SpikingController":
        """A controller of a saved model on the torch backend (float64 by default, as Lava runs);
        ``schedule`` as in :func:`policy_schedule` (``"auto"``: the one its training used)."""
        import plastix.backends as backends

        place, action = codes_of(graph)
        return cls(backends.compile(graph, "torch", "float", dtype=dtype, surrogate=surrogate, jit=jit,
                                    jit_chunk=_chunk(action.window), schedule=policy_schedule(schedule, graph)),
                   place, action)

    @property
    def steps_per_action(self) -> int:
        return self.action.window

    @property
    def n_inputs(self) -> int:
        return len(OBS_INDICES) * self.place.per_input

    def initial_state(self, n: int) -> Any:
        return self.net.init_state(n, 1)

    def encode(self, obs: Tensor, generator: torch.Generator) -> Tensor:
        """Input spikes ``(n, T, 600)`` of observations ``(n, 12)`` (T = ``window`` independent steps)."""
        return self.place.encode(obs.to(torch.float32), generator, steps=self.action.window)

    def run(self, spikes: Tensor, state: Any, *, schedule: Schedule | str | None = None) -> tuple[Tensor, Any, Tensor]:
        """``(mean (n, 6), state after the window, output spikes (T, n, 600))`` for input spikes
        ``(n, T, 600)`` from ``state``; ``schedule``: the torch backend's order of computation
        (:class:`~plastix.backends.torch.Schedule`, same results; default the network's)."""
        out, state = self.net.run({INPUT: spikes.transpose(0, 1).unsqueeze(2)}, state, schedule=schedule)
        y = out[OUTPUT][:, :, 0]
        return self.action.decode_counts(y.sum(0), y.shape[0]), state._replace(t=0), y

    def act(self, obs: Tensor, state: Any, generator: torch.Generator) -> tuple[Tensor, Any, Tensor]:
        """``(mean (n, 6), next state, input spikes (n, T, 600))`` without gradient."""
        spikes = self.encode(obs, generator)
        with torch.no_grad():
            mean, state, _ = self.run(spikes, state)
        return mean, state, spikes


def _chunk(window: int) -> int:
    """The largest ``torch.compile`` chunk <= 10 that divides the window (no eager remainder)."""
    return max(k for k in range(1, 11) if window % k == 0)


# ---------------------------------------------------------------------------------------------
# config


#: what the critic can see (LocomotionConfig.critic): the policy's observation, or the env's full one
CRITIC_INPUTS = ("joints", "state")


@dataclass(frozen=True)
class LocomotionConfig:
    """Training settings (module docstring). ``episode_steps`` is the Half-Cheetah episode length of
    training (evaluation runs the same length); ``num_envs`` episodes per iteration. Presets:
    :data:`CONFIGS`."""

    task: str = "halfcheetah"
    variant: str = PlasticVariant.NON_PLASTIC.value
    iterations: int = 100
    num_envs: int = 8
    episode_steps: int = 1000
    per_input: int = 50
    hidden: int = 64
    per_action: int = 100
    window: int = 50
    lr: float = 1e-3
    rule_lr_scale: float = 1.0   # Adam lr of rule coefficients and modulators = lr * this
    critic_lr: float = 1e-3
    grad_clip: float = 0.5
    log_std_init: float = -0.5
    seed: int = 0
    surrogate: str = "exponential"  # SLAYER's, as the paper
    train_neurons: bool = False
    jit: bool = True
    schedule: str = "auto"  # the torch backend's order of computation (same results): step | layerwise | auto
    scales: tuple[float, ...] = HC_SCALES
    init: NetInit = field(default_factory=lambda: HC_INIT)
    ppo: PPOSettings = field(default_factory=lambda: PPOSettings(minibatch=64))
    eval_every: int = 10
    eval_episodes: int = 8
    critic: str = "joints"  # what the value MLP sees: joints (the policy's 12 observations) | state (all 17)

    def __post_init__(self) -> None:
        parse_locomotion_variant(self.variant)
        if self.critic not in CRITIC_INPUTS:
            raise ValueError(f"LocomotionConfig.critic: one of {', '.join(CRITIC_INPUTS)}, got {self.critic!r}")
        if self.schedule != "auto":
            parse_schedule(self.schedule)
        if self.task != "halfcheetah":
            raise ValueError(f"LocomotionConfig.task: only 'halfcheetah' is trained by PPO, got {self.task!r}")
        if isinstance(self.init, dict):  # from a JSON config
            object.__setattr__(self, "init", NetInit(**self.init))
        if isinstance(self.ppo, dict):
            object.__setattr__(self, "ppo", PPOSettings(**self.ppo))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if len(self.scales) != 3:
            raise ValueError(f"LocomotionConfig.scales: one weight scale per projection (3), got {self.scales}")
        for name in ("num_envs", "episode_steps", "per_input", "hidden", "window", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"LocomotionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.per_input < 2 or self.per_action < 2 or self.per_action % 2:
            raise ValueError("LocomotionConfig: per_input must be >= 2 and per_action even and >= 2, got "
                             f"{self.per_input}, {self.per_action}")
        if self.window % self.init.interval:
            raise ValueError(f"LocomotionConfig: the window ({self.window}) must be a multiple of the rules' "
                             f"interval ({self.init.interval})")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


CONFIGS: dict[str, LocomotionConfig] = {
    # seconds: a small network (120 -> 16 -> 16 -> 60, T = 10) on 25-step episodes, for tests and the CLI demo
    "tiny": LocomotionConfig(iterations=2, num_envs=4, episode_steps=25, per_input=10, hidden=16, per_action=10,
                             window=10, lr=3e-3, critic_lr=3e-3, jit=False, eval_every=1, eval_episodes=4,
                             ppo=PPOSettings(minibatch=50, epochs=4)),
    # the paper's network on 200-step episodes (the paper's are 1000), 8 envs: 48,000 env steps, on one CPU core
    # about 8 min for the non-plastic net and hours for a plastic one (its BPTT update costs ~40x more per sample)
    "quick": LocomotionConfig(iterations=30, episode_steps=200, eval_every=5),
    # the same budget with a critic that sees the env's full state (the torso's velocity: the reward)
    "quick_state_critic": LocomotionConfig(iterations=30, episode_steps=200, eval_every=5, critic="state"),
    # the paper's sizes and episodes; 125 iterations x 8,000 env steps = 1M (the budget is ours, not the paper's)
    "paper": LocomotionConfig(iterations=125, episode_steps=1000, eval_every=5, critic="state"),
}


# ---------------------------------------------------------------------------------------------
# the trained policy


def policy_schedule(schedule: "Schedule | str", graph: Graph) -> Schedule:
    """The torch backend's schedule of a policy: ``schedule``, or for ``"auto"`` the layer-wise one when
    a plastic projection's rule updates less often than every step (Δτ > 1: its per-sample weight is
    read once per interval instead of once per SNN step; at Δτ = 10 PPO updates measured 4-6x and
    rollouts 2-3x faster than on the step one, which cannot compile there) and the step one otherwise
    (its compiled multi-layer chunks measured ~1.3x faster for the static net and, at Δτ = 1,
    rollouts ~3x and updates 0.7-1.8x the layer-wise speed)."""
    if schedule == "auto":
        return Schedule.LAYERWISE if any(getattr(p.rule, "interval", 1) > 1 for p in graph.plastic_projections) \
            else Schedule.STEP
    return parse_schedule(schedule)


def critic_range(critic: str) -> tuple[Tensor, Tensor]:
    """The ranges the critic's input is scaled from, to [-1, 1]: the place code's for the joint angles
    and velocities; for ``"state"`` also the torso's height and pitch (+-1, +-pi) and its x / z / pitch
    velocities (+-10, +-10, +-VELOCITY_CLIP), in the env's order (qpos[1:], qvel)."""
    if critic == "joints":
        return (torch.tensor(JOINT_LOW + (-VELOCITY_CLIP,) * len(JOINTS)),
                torch.tensor(JOINT_HIGH + (VELOCITY_CLIP,) * len(JOINTS)))
    hi = (1.0, math.pi) + tuple(JOINT_HIGH) + (10.0, 10.0, VELOCITY_CLIP) + (VELOCITY_CLIP,) * len(JOINTS)
    lo = (-1.0, -math.pi) + tuple(JOINT_LOW) + (-10.0, -10.0, -VELOCITY_CLIP) + (-VELOCITY_CLIP,) * len(JOINTS)
    return torch.tensor(lo), torch.tensor(hi)


class LocomotionPolicy(nn.Module):
    """Actor and critic of PPO (:class:`plastix.trainer.algorithms.ppo.StatefulPolicy`): the SNN
    controller (through :class:`~plastix.trainer.algorithms.gradient.PlasticNet`: frozen neuron
    constants, bounded rule coefficients, export), the learned log std, and the value MLP."""

    def __init__(self, graph: Graph, cfg: LocomotionConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        place, action = codes_of(graph)
        self.plastic = PlasticNet(graph, cfg, jit=cfg.jit, jit_chunk=_chunk(action.window), probes=(OUTPUT,),
                                  schedule=policy_schedule(cfg.schedule, graph))
        for p in (self.plastic.gain, self.plastic.offset):  # PlasticNet's readout is not used here
            p.requires_grad_(False)
        self.controller = SpikingController(self.plastic.net, place, action)
        self.log_std = nn.Parameter(torch.full((len(JOINTS),), float(cfg.log_std_init)))
        lo, hi = critic_range(cfg.critic)
        self.critic = nn.Sequential(nn.Linear(len(lo), 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
        g = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():  # orthogonal weights (gain sqrt 2, 1 at the output), zero biases
            for layer, gain in zip(self.critic[::2], (math.sqrt(2.0), math.sqrt(2.0), 1.0)):
                nn.init.orthogonal_(layer.weight, gain, generator=g)
                layer.bias.zero_()
        self.register_buffer("obs_centre", (hi + lo) / 2)
        self.register_buffer("obs_half", (hi - lo) / 2)

    @property
    def steps_per_action(self) -> int:
        return self.controller.steps_per_action

    def initial_state(self, n: int) -> Any:
        return self.controller.initial_state(n)

    def act(self, obs: Tensor, state: Any, generator: torch.Generator) -> tuple[Tensor, Any, Tensor]:
        mean, state, spikes = self.controller.act(obs, state, generator)
        return mean, state, pack_bits(spikes.flatten(1))

    def mean_of(self, state: Any, replay: Tensor, *, schedule: Schedule | str | None = None) -> Tensor:
        """The action mean of stored states and replayed input spikes, with autograd (PPO's update),
        on ``schedule`` (default: the policy's, ``cfg.schedule``; both give the same values)."""
        window = self.controller.action.window
        spikes = unpack_bits(replay, window * self.controller.n_inputs).reshape(replay.shape[0], window, -1)
        return self.controller.run(spikes, state, schedule=schedule)[0]

    def value(self, obs: Tensor) -> Tensor:
        return self.critic((obs.to(self.obs_half.dtype) - self.obs_centre) / self.obs_half).squeeze(-1)

    def project_(self) -> None:
        self.plastic.project_()

    def to_graph(self) -> Graph:
        """The trained network as a graph, with the learned log std in its metadata."""
        g = self.plastic.to_graph()
        meta = {k: v for k, v in (g.metadata or {}).items() if not k.startswith("readout_")}
        meta["log_std"] = ",".join(repr(float(v)) for v in self.log_std.detach())
        return g.replace(metadata=meta)


# ---------------------------------------------------------------------------------------------
# evaluation


class ReferencePolicy:
    """The baselines a trained policy must beat (issue 20's done condition), with the controller interface
    :func:`evaluate_controller` drives: ``"random"`` acts uniformly in [-1, 1] per joint and step (drawn from
    the evaluation's generator, so seeded), ``"still"`` sends zero torque (the cheetah stands or falls)."""

    KINDS = ("random", "still")

    def __init__(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown reference policy {kind!r}; known: {', '.join(self.KINDS)}")
        self.kind = kind

    def initial_state(self, n: int) -> int:
        return n

    def act(self, obs: torch.Tensor, state: int, generator: torch.Generator) -> tuple[torch.Tensor, int, None]:
        if self.kind == "still":
            return torch.zeros(state, len(JOINTS)), state, None
        return torch.rand(state, len(JOINTS), generator=generator) * 2 - 1, state, None


class Noise(str, enum.Enum):
    """The noise of an evaluation (sec. 3.2, Fig. 4B-D; :mod:`plastix.tasks.halfcheetah`)."""

    NONE = "none"
    FRICTION = "friction"
    ACTION = "action"
    OBSERVATION = "observation"


_NOISE_FIELD = {Noise.FRICTION: "friction_noise", Noise.ACTION: "action_noise", Noise.OBSERVATION: "obs_noise"}


def evaluate_controller(ctrl: SpikingController, *, episodes: int, seed: int, num_envs: int = 8,
                        steps: int = 1000, noise: Noise | str = Noise.NONE, std: float = 0.0) -> dict:
    """Mean return of ``episodes`` Half-Cheetah episodes of ``steps`` steps under ``noise`` with
    standard deviation ``std``, ``num_envs`` at a time, with the mean action (module docstring).
    The same seed gives the same start states, noise and input spikes."""
    from plastix.tasks.halfcheetah import HalfCheetahConfig, HalfCheetahTask

    noise = Noise(noise)
    if episodes < 1 or num_envs < 1 or steps < 1 or not std >= 0:
        raise ValueError(f"evaluate_controller: need episodes, num_envs, steps >= 1 and std >= 0, got "
                         f"{episodes}, {num_envs}, {steps}, {std}")
    if noise is Noise.NONE and std != 0:
        raise ValueError(f"evaluate_controller: std {std} needs a noise kind ({', '.join(n.value for n in _NOISE_FIELD)})")
    E = min(num_envs, episodes)
    cfg = HalfCheetahConfig(num_envs=E, steps=steps, **({_NOISE_FIELD[noise]: float(std)} if noise is not Noise.NONE else {}))
    g = torch.Generator().manual_seed(int(seed))
    returns, forward = [], []
    t0 = time.perf_counter()
    task = HalfCheetahTask(cfg)
    try:
        for _ in range(math.ceil(episodes / E)):
            obs, _ = task.reset(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            h = ctrl.initial_state(E)
            total, fwd = torch.zeros(E, dtype=torch.float64), torch.zeros(E, dtype=torch.float64)
            for _ in range(steps):
                mean, h, _ = ctrl.act(obs[0], h, g)
                obs, reward, term, trunc, info = task.step(mean[None].to(torch.float32))
                total += reward[0].double()
                fwd += info["reward_forward"][0].double()
                if bool((term | trunc).all()):
                    break
            returns += total.tolist()
            forward += fwd.tolist()
    finally:
        task.close()
    returns, forward = returns[:episodes], forward[:episodes]
    seconds = time.perf_counter() - t0
    r = np.array(returns)
    return {"noise": noise.value, "std": float(std), "episodes": episodes, "steps": steps, "seed": seed,
            "mean_return": float(r.mean()), "std_return": float(r.std()), "mean_forward_reward": float(np.mean(forward)),
            "returns": [round(x, 3) for x in returns], "wall_time_s": seconds,
            "env_steps_per_s": episodes * steps / seconds}


def compare_lava(graph: Graph, *, env_steps: int = 2, seed: int = 0, timeout: float | None = None) -> dict:
    """Torch (float64) vs Lava (float) on the same observations: ``env_steps`` closed-loop Half-Cheetah
    steps on torch record the input spikes; Lava replays them from the same initial state in one run.
    Equal output spikes in every window mean equal actions for equal observations at every step.
    ``timeout``: seconds allowed for the Lava run (default 300 + 0.1 per SNN step: Lava emulates ~60 SNN
    steps/s of this network here, so a full 1,000-step episode -- 50,000 SNN steps -- takes ~15 min)."""
    import plastix.backends as backends
    from plastix.tasks.halfcheetah import HalfCheetahConfig, HalfCheetahTask

    ctrl = SpikingController.from_graph(graph)
    g = torch.Generator().manual_seed(int(seed))
    task = HalfCheetahTask(HalfCheetahConfig(num_envs=1, steps=max(env_steps, 1)))
    xs, ys, actions = [], [], []
    try:
        obs, _ = task.reset(seed=int(seed))
        h = ctrl.initial_state(1)
        for _ in range(env_steps):
            spikes = ctrl.encode(obs[0], g)
            with torch.no_grad():
                mean, h, y = ctrl.run(spikes.to(torch.float64), h)
            xs.append(spikes[0])
            ys.append(y[:, 0])
            actions.append(mean[0])
            obs, *_ = task.step(mean[None].to(torch.float32))
    finally:
        task.close()
    x = torch.cat(xs).numpy().astype(np.float64)
    y_torch = torch.cat(ys).numpy()
    if timeout is None:
        timeout = 300.0 + 0.1 * x.shape[0]
    lnet = backends.compile(graph, "lava", "float", timeout=timeout)
    try:
        ep = lnet.episode({INPUT: x})
    finally:
        lnet.close()
    y_lava = ep.outputs[OUTPUT]
    T = ctrl.action.window
    a_lava = ctrl.action.decode_counts(torch.as_tensor(y_lava).reshape(env_steps, T, -1).sum(1), T)
    a_torch = torch.stack(actions)
    return {"env_steps": env_steps, "snn_steps": int(x.shape[0]), "identical_spikes": bool(np.array_equal(y_lava, y_torch)),
            "spike_agreement": float((y_lava == y_torch).mean()), "identical_actions": bool(torch.equal(a_lava, a_torch)),
            "max_action_diff": float((a_lava - a_torch).abs().max()), "output_rate": float(y_torch.mean())}


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


class LocomotionJob(PPOJob):
    """PPO on Half-Cheetah for one variant (module docstring). ``best.plx`` keeps the model with the
    highest evaluation return (``RunOptions.best_key="eval_return"``)."""

    EVAL_SEED = 13579

    def build_graph(self) -> Graph:
        c = self.cfg
        return locomotion_net(c.variant, per_input=c.per_input, hidden=c.hidden, per_action=c.per_action,
                              window=c.window, seed=c.seed, init=c.init, scales=c.scales)

    def make_task(self) -> Any:
        from plastix.tasks.halfcheetah import HalfCheetahConfig, HalfCheetahTask

        return HalfCheetahTask(HalfCheetahConfig(num_envs=self.cfg.num_envs, steps=self.cfg.episode_steps))

    def value_observation(self, obs: Tensor) -> Tensor:
        """The critic's input (``LocomotionConfig.critic``): the policy's observation or the env's full one."""
        return obs if self.cfg.critic == "joints" else self.task.full_observation()[0]

    def init_state(self) -> PPOState:
        cfg = self.cfg
        policy = LocomotionPolicy(self.graph or self.build_graph(), cfg,
                                  generator=torch.Generator().manual_seed(cfg.seed + 1))
        rules, net = [], []
        for name, p in policy.plastic.net.named_parameters():
            if p.requires_grad:
                (rules if "/rule/" in name or name.startswith("params.m_") else net).append(p)
        groups = [{"params": net + [policy.log_std]}, {"params": list(policy.critic.parameters()), "lr": cfg.critic_lr}]
        if rules:
            groups.append({"params": rules, "lr": cfg.lr * cfg.rule_lr_scale})
        opt = torch.optim.Adam(groups, lr=cfg.lr)
        return PPOState(policy, opt, torch.Generator().manual_seed(cfg.seed))

    def evaluate(self, state: PPOState) -> dict[str, float]:
        c = self.cfg
        res = evaluate_controller(state.model.controller, episodes=c.eval_episodes, seed=self.EVAL_SEED,
                                  num_envs=c.num_envs, steps=c.episode_steps)
        return {"eval_return": res["mean_return"], "eval_forward_reward": res["mean_forward_reward"]}

    def save_best(self, state: PPOState, out_dir: Any) -> None:
        from pathlib import Path

        from plastix.ir import save as save_graph

        save_graph(state.model.to_graph(), Path(out_dir) / "best.plx")
