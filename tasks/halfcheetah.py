r"""Half-Cheetah locomotion with the noise of SpikePropamine (Schmidgall et al. 2021, section 3.2
"High-Dimensional Robotic Locomotion Task", Figure 4), batched over population x environments.

Underneath are ``P * E`` Gymnasium ``HalfCheetah-v5`` environments (MuJoCo), stepped in one process
in a loop (what ``SyncVectorEnv`` does; a list of envs lets an env that the contract has just reset
sit out a step, which a vector env cannot). ``gymnasium`` is imported in the constructor only.

* Observation ``(P, E, 12)`` float32 (sec. 3.2: "the relative angle and angular velocity of each
  joint"): of the env's 17-d observation (``qpos[1:]`` then ``qvel``) we take indices 2..7, the
  angles of bthigh, bshin, bfoot, fthigh, fshin, ffoot, then 11..16, their angular velocities
  (:data:`OBS_INDICES`). Not spike-coded here: :func:`place_code` gives the
  :class:`~plastix.tasks.spike_coding.PlaceCode` for it.
* Action ``(P, E, 6)`` in [-1, 1], the six joint torques in the env's actuator order (the same
  joint order). After the action noise it is clipped to [-1, 1] (our choice, the env's ctrl range;
  MuJoCo would clamp the torque anyway, the clip keeps the control cost of the reward honest).
* Reward: the env's (``forward_reward_weight * x_velocity - 0.1 * |a|^2``); ``info`` holds ``"t"``,
  ``"reward_forward"``, ``"reward_ctrl"``, ``"x_velocity"``, ``"x_position"`` (of the last step, 0
  after a reset) and ``"friction"`` (the current friction constants of each env's model).
* Episodes: ``steps`` (1000, the env's TimeLimit) then ``truncated``; never ``terminated``.
* :meth:`HalfCheetahTask.full_observation`: the env's whole 17-d observation ``(P, E, 17)``, without
  observation noise (the root's height, pitch and velocities too), for a training critic; the policy
  never sees it.

Noise (sec. 3.2; each a Gaussian ``z ~ N(0, sigma^2)``, all 0 = the training condition):

* ``friction_noise``: at every episode start, per env, ``f = f_0 * max(1 + z, 0)`` for the model's
  friction constants ``f_0`` (one ``z`` per constant; ``f_0`` is kept, so a reset always draws from
  the original values, and ``friction_noise=0`` restores them). Which constants is
  :class:`FrictionTarget`; our default is the joints' ``dof_damping`` (viscous joint friction): the
  paper's "joint friction constants" are not named, and HalfCheetah-v5's ``dof_frictionloss`` (dry
  joint friction) is 0 for every joint, so scaling it does nothing. The ``max(., 0)`` (our choice)
  keeps a large ``sigma`` from giving negative damping.
* ``action_noise``: per step, ``a_z = a * (1 + z)``, a 6-d ``z``.
* ``obs_noise``: per step (the reset observation too), ``x_z = x + z``, a 12-d ``z``, added to the
  returned observation (so before any spike coding).

The paper's exploration noise ``A_e = N(A, exp(sigma_log)^2)`` belongs to the policy, not the task.

Randomness: ``reset(seed=...)`` seeds everything. Each episode start reseeds its env with a seed
drawn from the task's generator; friction, action and observation noise each have their own stream
(so switching one on changes no other draw). With ``common_random=True`` (default, as the T-maze)
individual ``p`` of env column ``e`` sees the same start states and noise as every other individual
in that column, so an individual's episode does not depend on the rest of the population.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .base import BatchedTask, TensorSpec
from .spike_coding import PlaceCode

Tensor = torch.Tensor

ENV_ID = "HalfCheetah-v5"
JOINTS = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
#: the 6 joint angles (obs 2..7 = qpos[3:9]) then their angular velocities (obs 11..16 = qvel[3:9])
OBS_INDICES: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16)
#: HalfCheetah-v5's joint ranges (rad), the clipping range of the angle inputs in :func:`place_code`
JOINT_LOW: tuple[float, ...] = (-0.52, -0.785, -0.4, -1.0, -1.2, -0.5)
JOINT_HIGH: tuple[float, ...] = (1.05, 0.785, 0.785, 0.7, 0.87, 0.5)
#: clipping range of the angular velocities (rad/s), our choice: random actions stay within
#: about +-17 rad/s 99 % of the time
VELOCITY_CLIP = 20.0
_SEED_HIGH = 2**31 - 1
_PARTS = ("reward_forward", "reward_ctrl", "x_velocity", "x_position")  # from the env's info, per step


def place_code(per_input: int = 50, velocity_clip: float = VELOCITY_CLIP, **kw: Any) -> PlaceCode:
    """The place code of the 12 inputs (sec. 3.2, paper: 50 neurons each): angles clipped to the
    joint ranges, velocities to ``+-velocity_clip``; ``kw`` go to :class:`PlaceCode`."""
    lo = JOINT_LOW + (-velocity_clip,) * len(JOINTS)
    hi = JOINT_HIGH + (velocity_clip,) * len(JOINTS)
    return PlaceCode(per_input=per_input, lo=lo, hi=hi, **kw)


class FrictionTarget(str, enum.Enum):
    """The model constants that friction noise scales (one ``z`` per entry)."""

    DAMPING = "dof_damping"  # viscous joint friction, (nv,) (HalfCheetah: 0 for the 3 root dofs)
    FRICTIONLOSS = "dof_frictionloss"  # dry joint friction, (nv,) (HalfCheetah-v5: all 0)
    GEOM = "geom_friction"  # contact friction of every geom, (ngeom, 3)


@dataclass(frozen=True)
class HalfCheetahConfig:
    """Half-Cheetah settings (module docstring). Noise stds are fractions for friction (0.1 = 10 %
    of the constant) and absolute for actions (relative to the action) and observations."""

    num_envs: int = 8
    steps: int = 1000
    friction_noise: float = 0.0
    friction_target: FrictionTarget = FrictionTarget.DAMPING
    action_noise: float = 0.0
    obs_noise: float = 0.0
    common_random: bool = True
    env_id: str = ENV_ID

    def __post_init__(self) -> None:
        object.__setattr__(self, "friction_target", FrictionTarget(self.friction_target))
        if self.num_envs < 1 or self.steps < 1:
            raise ValueError(f"HalfCheetahConfig: num_envs and steps must be >= 1, got {self.num_envs}, {self.steps}")
        for name in ("friction_noise", "action_noise", "obs_noise"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"HalfCheetahConfig.{name} must be >= 0, got {getattr(self, name)}")


def _child(g: torch.Generator) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))


class HalfCheetahTask(BatchedTask):
    """SpikePropamine's Half-Cheetah (module docstring), ``(P, E)`` batched over ``P * E`` envs.

    ``envs``: optional ready-made Gymnasium envs (``P * E`` of them, row-major over ``(P, E)``),
    e.g. for other Half-Cheetah versions; by default ``gymnasium.make(config.env_id,
    max_episode_steps=config.steps)``. The friction constants their models hold at construction
    are the originals ``f_0`` of the friction noise. Call :meth:`close` when done.
    """

    single_observation_spec = TensorSpec((len(OBS_INDICES),), torch.float32)
    single_action_spec = TensorSpec((len(JOINTS),), torch.float32, -1.0, 1.0)

    def __init__(self, config: HalfCheetahConfig | None = None, population: int = 1, *,
                 device: torch.device | str = "cpu", envs: Sequence[Any] | None = None) -> None:
        config = config if config is not None else HalfCheetahConfig()
        super().__init__(population, config.num_envs, device=device)
        self.config = config
        self.max_episode_steps = config.steps
        n = population * config.num_envs
        if envs is None:
            import gymnasium

            envs = [gymnasium.make(config.env_id, max_episode_steps=config.steps, disable_env_checker=True)
                    for _ in range(n)]
        if len(envs) != n:
            raise ValueError(f"HalfCheetahTask: got {len(envs)} envs for population {population} x "
                             f"num_envs {config.num_envs} = {n}")
        self.envs = list(envs)
        name = config.friction_target.value
        self._friction_base = [np.array(getattr(e.unwrapped.model, name), dtype=np.float64) for e in self.envs]
        self.friction_shape = self._friction_base[0].shape
        self._raw = np.zeros((n, self.envs[0].observation_space.shape[0]))  # last full observation of each env
        self._t = np.zeros(n, dtype=np.int64)  # steps in the current episode
        self._parts = np.zeros((n, len(_PARTS)))  # the last step's reward parts etc. (0 after a reset)
        self._gens: dict[str, torch.Generator] = {}
        self._friction = self.friction().to(self.device)

    def close(self) -> None:
        for e in self.envs:
            e.close()

    # -- helpers -----------------------------------------------------------------------------
    def _draw(self, kind: str, shape: tuple[int, ...], std: float) -> Tensor:
        """``N(0, std^2)`` of shape ``(P, E, *shape)`` from stream ``kind`` (shared over P with
        ``common_random``)."""
        P, E = self.batch_shape
        lead = (E,) if self.config.common_random else (P, E)
        z = torch.randn(lead + shape, generator=self._gens[kind], dtype=torch.float64) * std
        return z.expand((P, E) + shape)

    def _obs(self) -> Tensor:
        return torch.as_tensor(self._raw[:, OBS_INDICES], dtype=torch.float32).reshape(
            *self.batch_shape, len(OBS_INDICES))

    def full_observation(self) -> Tensor:
        """The env's last 17-d observation ``(P, E, 17)`` float32 (``qpos[1:]`` then ``qvel``), noise-free."""
        return torch.as_tensor(self._raw, dtype=torch.float32).reshape(*self.batch_shape, -1).to(self.device)

    def _noisy(self, obs: Tensor) -> Tensor:
        if self.config.obs_noise > 0:
            obs = obs + self._draw("obs", (len(OBS_INDICES),), self.config.obs_noise).to(obs.dtype)
        return obs.to(self.device)

    def friction(self) -> Tensor:
        """The current friction constants of every env's model, ``(P, E, *friction_shape)``, read
        from the models."""
        name = self.config.friction_target.value
        vals = np.stack([np.asarray(getattr(e.unwrapped.model, name)) for e in self.envs])
        return torch.as_tensor(vals, dtype=torch.float32).reshape(*self.batch_shape, *self.friction_shape)

    # -- contract hooks ----------------------------------------------------------------------
    def _reset_envs(self, mask: Tensor, options: dict) -> Tensor:
        g, cfg = self.generator, self.config
        if not self._gens or bool(mask.all()):
            self._gens = {k: _child(g) for k in ("friction", "action", "obs")}
        P, E = self.batch_shape
        lead = (E,) if cfg.common_random else (P, E)
        seeds = torch.randint(0, _SEED_HIGH, lead, generator=g).expand(P, E).reshape(-1).tolist()
        z = None
        if cfg.friction_noise > 0:
            z = self._draw("friction", self.friction_shape, cfg.friction_noise).reshape(P * E, *self.friction_shape)
        name = cfg.friction_target.value
        for i in torch.nonzero(mask.reshape(-1).cpu()).flatten().tolist():
            env = self.envs[i]
            target = getattr(env.unwrapped.model, name)
            base = self._friction_base[i]
            target[...] = base if z is None else base * np.maximum(1.0 + z[i].numpy(), 0.0)
            self._raw[i], _ = env.reset(seed=seeds[i])
        idx = mask.reshape(-1).cpu().numpy()
        self._t[idx] = 0
        self._parts[idx] = 0.0
        self._friction = self.friction().to(self.device)
        return self._noisy(self._obs())

    def _step(self, action: Tensor, active: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        cfg = self.config
        P, E = self.batch_shape
        a = action.detach().to("cpu", torch.float64)
        if cfg.action_noise > 0:
            a = a * (1.0 + self._draw("action", (len(JOINTS),), cfg.action_noise))
        a = a.clamp(-1.0, 1.0).reshape(P * E, len(JOINTS)).numpy()
        n = P * E
        run = range(n) if active is None else np.flatnonzero(active.reshape(-1).cpu().numpy()).tolist()
        reward = np.zeros(n)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        for i in run:
            self._raw[i], reward[i], term[i], trunc[i], info = self.envs[i].step(a[i])
            self._parts[i] = [info.get(k, 0.0) for k in _PARTS]
            self._t[i] += 1
        trunc = (trunc | (self._t >= cfg.steps)) & ~term  # envs that sat out have t = 0
        flags = torch.from_numpy(np.stack([term, trunc])).reshape(2, P, E).to(self.device)
        reward_t = torch.from_numpy(reward).to(self.device, torch.float32).reshape(P, E)
        return self._noisy(self._obs()), reward_t, flags[0], flags[1], self._info()

    def _info(self) -> dict[str, Any]:
        shape = self.batch_shape
        parts = torch.from_numpy(self._parts).to(self.device, torch.float32).reshape(*shape, len(_PARTS))
        return {"t": torch.from_numpy(self._t.copy()).to(self.device).reshape(shape),
                **{k: parts[..., j] for j, k in enumerate(_PARTS)}, "friction": self._friction.clone()}
