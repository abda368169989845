"""The batched task contract (close to Gymnasium's vector environments, in torch).

Every tensor has leading ``(P, E)`` dims: ``P`` individuals of a population (one ES generation,
or 1 for gradient training) times ``E`` environments each.

* ``reset(*, seed=None, options=None) -> (obs, info)``; ``obs`` ``(P, E, *obs_shape)``.
  Only ``reset(seed=...)`` seeds; the task owns its ``torch.Generator`` (nothing global).
  ``seed=None`` on the first reset draws a fresh, non-deterministic seed.
* ``step(action) -> (obs, reward, terminated, truncated, info)``; ``action``
  ``(P, E, *action_shape)``; ``reward`` float32 ``(P, E)``; ``terminated``/``truncated`` bool
  ``(P, E)``, kept separate; ``info`` a dict of ``(P, E, ...)`` tensors. Every task reports
  ``info["t"]``: steps taken in the current episode (0 right after a reset).
* ``autoreset_mode`` (class attribute, default :attr:`AutoresetMode.NEXT_STEP`): the step after
  an env is done resets it — that step ignores the action and returns the new episode's first
  observation with reward 0 and both flags False (Gymnasium's ``NEXT_STEP``). The observation
  returned *with* ``terminated``/``truncated`` is the final one.
* ``single_observation_spec`` / ``single_action_spec`` (:class:`TensorSpec`, no batch dims) and
  the batched ``observation_spec`` / ``action_spec`` (with ``(P, E)`` prepended).
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

Tensor = torch.Tensor


class AutoresetMode(str, enum.Enum):
    NEXT_STEP = "next_step"
    SAME_STEP = "same_step"
    DISABLED = "disabled"


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and optional inclusive bounds of a tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if any(s < 0 for s in self.shape):
            raise ValueError(f"TensorSpec.shape must be non-negative, got {self.shape}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"TensorSpec.low {self.low} > high {self.high}")

    def batched(self, *lead: int) -> "TensorSpec":
        return TensorSpec(tuple(lead) + self.shape, self.dtype, self.low, self.high)

    def contains(self, x: Tensor) -> bool:
        if tuple(x.shape) != self.shape or x.dtype != self.dtype:
            return False
        if self.low is not None and bool((x < self.low).any()):
            return False
        if self.high is not None and bool((x > self.high).any()):
            return False
        return True


class BatchedTask(abc.ABC):
    """Base class for tasks with the NEXT_STEP autoreset done once, here.

    Subclasses set ``single_observation_spec`` / ``single_action_spec`` and implement
    ``_reset_envs(mask)`` (start new episodes where ``mask`` (P, E) is True, return the full
    observation) and ``_step(action)`` (advance every env, return ``obs, reward, terminated,
    truncated, info``); the base class routes the step after a done env to a reset.
    """

    autoreset_mode: ClassVar[AutoresetMode] = AutoresetMode.NEXT_STEP
    single_observation_spec: TensorSpec
    single_action_spec: TensorSpec

    def __init__(self, population: int, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        if population < 1 or num_envs < 1:
            raise ValueError(f"population and num_envs must be >= 1, got {population}, {num_envs}")
        self.population = int(population)
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self._generator: torch.Generator | None = None
        self._prev_done: Tensor | None = None
        self._full_population = self.population

    # -- specs -------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> tuple[int, int]:
        return (self.population, self.num_envs)

    @property
    def observation_spec(self) -> TensorSpec:
        return self.single_observation_spec.batched(*self.batch_shape)

    @property
    def action_spec(self) -> TensorSpec:
        return self.single_action_spec.batched(*self.batch_shape)

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        return self._generator

    # -- contract ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Tensor, dict]:
        if seed is not None:
            self._generator = torch.Generator(device="cpu").manual_seed(int(seed))
        elif self._generator is None:
            self._generator = torch.Generator(device="cpu")
            self._generator.seed()
        if self.population != self._full_population:  # individuals dropped by keep(): back to all
            self.population = self._full_population
            self._allocate_individuals()
        mask = torch.ones(self.batch_shape, dtype=torch.bool, device=self.device)
        obs = self._reset_envs(mask, options or {})
        self._prev_done = torch.zeros(self.batch_shape, dtype=torch.bool, device=self.device)
        return obs, self._info()

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        if self._prev_done is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        action = torch.as_tensor(action, device=self.device)
        want = self.action_spec
        if tuple(action.shape) != want.shape:
            raise ValueError(f"{type(self).__name__}.step: action shape {tuple(action.shape)}, expected {want.shape}")
        action = action.to(want.dtype)
        prev = self._prev_done
        if self.autoreset_mode is AutoresetMode.NEXT_STEP and bool(prev.any()):
            obs_new = self._reset_envs(prev, {})
            if bool(prev.all()):
                zeros = torch.zeros(self.batch_shape, device=self.device)
                flags = torch.zeros(self.batch_shape, dtype=torch.bool, device=self.device)
                self._prev_done = flags.clone()
                return obs_new, zeros, flags, flags.clone(), self._info()
            obs, reward, term, trunc, info = self._step(action, active=~prev)
            sel = prev.reshape(prev.shape + (1,) * (obs.ndim - 2))
            obs = torch.where(sel, obs_new, obs)
            reward = torch.where(prev, torch.zeros_like(reward), reward)
            term, trunc = term & ~prev, trunc & ~prev
            info = {**info, **self._info()}
        else:
            obs, reward, term, trunc, info = self._step(action, active=None)
        self._prev_done = term | trunc
        return obs, reward, term, trunc, info

    @property
    def full_population(self) -> int:
        """The population the task was built for (``population`` is smaller after :meth:`keep`, until
        the next :meth:`reset`)."""
        return self._full_population

    #: the per-individual state tensors (leading dim P) that :meth:`keep` narrows; empty: not supported
    individual_state: ClassVar[tuple[str, ...]] = ()

    def keep(self, idx: Tensor) -> None:
        """Go on with the individuals ``idx`` (a 1-d index into the current population) only, until
        the next :meth:`reset` restores the whole population: a rollout stops simulating agents whose
        every env has ended. Only for tasks whose per-episode draws do not depend on the population
        (the T-maze's are shared by all individuals), so the kept individuals' episodes are unchanged."""
        if not self.individual_state:
            raise NotImplementedError(f"{type(self).__name__} cannot drop individuals (no individual_state)")
        if self._prev_done is None:
            raise RuntimeError("keep() before reset()")
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        if idx.ndim != 1 or idx.numel() < 1 or int(idx.min()) < 0 or int(idx.max()) >= self.population:
            raise ValueError(f"keep: idx must be a non-empty 1-d index into {self.population} individuals")
        for name in self.individual_state:
            setattr(self, name, getattr(self, name).index_select(0, idx))
        self._prev_done = self._prev_done.index_select(0, idx)
        self.population = int(idx.numel())

    def _allocate_individuals(self) -> None:
        """(Re)create the per-individual state for ``self.population`` (tasks with ``individual_state``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot drop individuals")

    # -- subclass hooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def _reset_envs(self, mask: Tensor, options: dict) -> Tensor:
        """Start new episodes where ``mask`` (P, E); return the observation of every env."""

    @abc.abstractmethod
    def _step(self, action: Tensor, active: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        """Advance the envs where ``active`` (P, E) is True (all when None)."""

    @abc.abstractmethod
    def _info(self) -> dict[str, Any]:
        """The info dict for the current state (must hold ``"t"``)."""
