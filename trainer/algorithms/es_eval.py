r"""Whole-population evaluation of gated-unit models on batched tasks: an adapter over the torch
backend's cells.

The cells are the backend's (:mod:`plastix.backends.torch.neurons`: ``enu_step`` / ``gru_step`` /
``lstm_step`` with per-individual parameters ``(P, 1, *shape)``, and :class:`FusedENU` / :class:`FusedGated`,
the backend's preallocated population steps), so what ES trains is the code that runs the exported model. This
module only unflattens genomes into the backend's parameter tuples and drives the task: every
parameter carries a leading ``P`` dim and each gate is one batched matmul ``(P, E, K) x (P, K, M)``
(Bertens & Lee 2020, Methods, "Implementation"); there is no Python loop over individuals, units or
envs, only over time steps.

Why not ``compile(model.to_graph())``: the IR delivers an observation through a projection (one-step
latency), while the paper's mimic tasks ask the unit to answer ``x_t`` at ``t``;
``tests/trainer/test_models_eval.py`` checks that the compiled graphs give exactly these outputs, one
step later.

**Fast path.** A single cell (ENU, NFENU, GRU, LSTM) on an open-loop task (one defining ``open_loop_return()``, e.g.
``IAFTask`` / ``STDPTask`` with ``common_inputs=True``: observations ignore the actions and are the
same for every individual) skips stepping the (P, E) task: a one-individual twin of the task supplies observations
and targets, :class:`FusedENU` / :class:`FusedGated` runs the population, and the episode
returns are computed once from the recorded actions (tested equal to stepping the task,
``tests/trainer/test_es_eval_fast.py``). ``benchmarks/es_generation.py`` times it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from plastix.backends.torch import neurons as nrn
from plastix.backends.torch.neurons import FusedENU, FusedGated

from .models import ModelKind, ModelSpec

Tensor = torch.Tensor

__all__ = ["BatchedModel", "FusedENU", "FusedGated", "cell_params", "cell_step", "evaluate_population", "init_state",
           "pad_channels", "rollout"]


@lru_cache(maxsize=None)
def _ir_cell(spec: ModelSpec):
    """The IR cell of ``spec`` (zero weights): what the backend reads its kind and widths from."""
    return spec.cell(np.zeros(spec.num_params, dtype=np.float32))


def cell_params(spec: ModelSpec, population: Tensor, *, column_major: bool = True) -> Any:
    """``population`` (P, D) as the backend's per-individual cell parameters (fields ``(P, 1, *shape)``).
    ``column_major``: store the matrices so that the backend's ``x @ w^T`` reads ``w^T`` contiguously
    (a copy; :class:`FusedENU` lays out its own weights and skips it)."""
    p = spec.unflatten(population)

    def get(f: str) -> Tensor:
        w = p[f]
        return (w.transpose(1, 2).contiguous().transpose(1, 2) if column_major and w.dim() == 3 else w)[:, None]

    return nrn.cell_params(_ir_cell(spec), get)


def init_state(spec: ModelSpec, population: int, batch: int, *, device=None, dtype=torch.float32) -> tuple:
    """The backend's zero cell state; ENU ``(h, o)``, GRU ``(h,)``, LSTM ``(h, c)``, each (P, batch, width)."""
    return nrn.cell_init(_ir_cell(spec), (population, batch), torch.zeros((), device=device, dtype=dtype))


def cell_step(spec: ModelSpec):
    """The backend's step function of ``spec``'s cell: ``step(x, state, params) -> (out, state)``."""
    return nrn.CELL_STEPS[type(_ir_cell(spec))]


@dataclass(frozen=True)
class BatchedModel:
    """A population of one model kind: ``step(x, state) -> (out, state)`` with ``x`` (P, E, channels)."""

    spec: ModelSpec
    params: Any

    @classmethod
    def from_population(cls, spec: ModelSpec, population: Tensor) -> "BatchedModel":
        return cls(spec, cell_params(spec, population))

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> tuple:
        """Zero state for ``batch`` envs (``generator`` unused: single cells start at zero)."""
        ref = self.params.w_o
        s = init_state(self.spec, ref.shape[0], batch, device=ref.device, dtype=ref.dtype)
        if self.spec.kind is ModelKind.SHAREDENU:  # synapse state, neuron state
            return (s, s._replace(h=s.h.clone(), o=s.o.clone()))
        return s

    def step(self, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        step = cell_step(self.spec)
        if self.spec.kind is ModelKind.SHAREDENU:  # one ENU genome as synapse, then as neuron
            z, syn = step(x, state[0], self.params)
            o, neu = step(z, state[1], self.params)
            return o, (syn, neu)
        return step(x, state, self.params)

    def act(self, obs: Tensor, state: tuple, act_dim: int) -> tuple[Tensor, tuple]:
        """Task I/O of a single cell: ``obs`` (P, E, d) fills input channels 0..d-1, the action
        is output channels ``0..act_dim-1``."""
        out, state = self.step(pad_channels(obs, self.spec.channels), state)
        return out[..., :act_dim], state


def pad_channels(obs: Tensor, channels: int) -> Tensor:
    """(P, E, d) observation -> (P, E, channels) cell input (zeros beyond d)."""
    d = obs.shape[-1]
    if d > channels:
        raise ValueError(f"observation has {d} channels, the model takes {channels}")
    if d == channels:
        return obs
    return torch.cat([obs, obs.new_zeros(*obs.shape[:-1], channels - d)], dim=-1)


def _open_loop_fitness(task):
    """A task whose observations ignore the actions and are the same for every individual opts in
    to the fast path by defining ``open_loop_return()``, returning ``episode_return(target
    (T, 1, E), actions (T, P, E)) -> (P, E)`` float64, the episode return :meth:`task.step` would
    sum (time-major), or None (e.g. the mimic tasks without ``common_inputs``)."""
    hook = getattr(task, "open_loop_return", None)
    return hook() if callable(hook) else None


_FUSED = (ModelKind.ENU, ModelKind.NFENU, ModelKind.GRU, ModelKind.LSTM)  # single cells with a fused population step


def fused_population(spec: ModelSpec, population: Tensor, batch: int, obs_dim: int) -> FusedENU | FusedGated:
    """The backend's preallocated population step for ``spec``'s cell (one of :data:`_FUSED`)."""
    p = cell_params(spec, population, column_major=False)
    if spec.kind in (ModelKind.ENU, ModelKind.NFENU):
        return FusedENU(p, batch, obs_dim)
    return FusedGated(p, batch, obs_dim, lstm=spec.kind is ModelKind.LSTM)


@torch.no_grad()
def _rollout_open_loop(spec: ModelSpec, population: Tensor, task, episode_return, *, seed: int) -> dict:
    """:func:`rollout` for a single cell on an open-loop task: the observations and targets come from
    a one-individual twin of ``task`` (same class, config and seed, hence the same common inputs),
    the population runs on :func:`fused_population`, writing its actions into one (P, E, T) buffer, and
    the returns are computed once at the end (``tests/trainer/test_es_eval_fast.py`` checks this
    against stepping ``task`` itself)."""
    twin = type(task)(task.config, population=1, device=population.device)
    obs, _ = twin.reset(seed=seed)
    P, (_, E), T = population.shape[0], task.batch_shape, task.max_episode_steps
    model = fused_population(spec, population, E, obs.shape[-1])
    actions = torch.empty(T, P, E, dtype=torch.float32, device=population.device)  # contiguous per step
    targets = torch.empty(T, 1, E, dtype=torch.float32, device=population.device)
    zero = torch.zeros(1, E, twin.single_action_spec.shape[0], device=population.device)
    for t in range(T):
        out = model.step(obs.to(population.dtype))
        actions[t] = out[..., 0]
        obs, _, _, _, info = twin.step(zero)
        targets[t] = info["target"]
    returns = episode_return(targets, actions)
    return {"returns": returns, "fitness": returns.mean(dim=-1)}


@torch.no_grad()
def rollout(spec: ModelSpec, population: Tensor, task, *, seed: int, max_steps: int | None = None,
            record: bool = False, compact: bool = True) -> dict:
    """Run one episode per env for every individual of ``population`` (P, D) on ``task`` (whose
    ``population`` must be P). Returns ``{"returns": (P, E) float64, "fitness": (P,)}`` (mean
    return over envs), plus ``"actions"``, ``"targets"`` and ``"infos"`` (dict of the task's info
    tensors), each (T, P, E, ...), when ``record``. ``spec``: a :class:`ModelSpec` (one cell) or a
    spec with ``population_model(population)`` (e.g. :class:`plastix.trainer.experiments.enu_net.NetworkSpec`).
    ``compact``: stop simulating an individual once every env of it has ended (when the task and
    the model support ``keep``, e.g. the T-maze networks; the returns are the same)."""
    full = getattr(task, "full_population", task.population)  # an earlier rollout may have dropped some
    if full != population.shape[0]:
        raise ValueError(f"task population {full} != {population.shape[0]} individuals")
    cell = isinstance(spec, ModelSpec)
    if cell and not record and max_steps is None and spec.kind in _FUSED:
        episode_return = _open_loop_fitness(task)
        if episode_return is not None:
            return _rollout_open_loop(spec, population, task, episode_return, seed=seed)
    # a ModelSpec is one cell; other specs (plastix.trainer.experiments.enu_net.NetworkSpec) build their own model
    model = BatchedModel.from_population(spec, population) if cell else spec.population_model(population)
    obs, _ = task.reset(seed=seed)  # (restores the whole population)
    state = model.init_state(task.num_envs, torch.Generator().manual_seed(seed ^ 0x5EED))
    act_dim = task.single_action_spec.shape[0]
    infos = []
    returns = torch.zeros(task.batch_shape, dtype=torch.float64, device=population.device)
    alive = torch.ones(task.batch_shape, dtype=torch.bool, device=population.device)
    steps = max_steps or getattr(task, "max_episode_steps", None)
    if steps is None:
        raise ValueError("task has no max_episode_steps; pass max_steps")
    actions, targets = [], []
    # drop individuals whose every env has ended (tasks and models that can; not while recording)
    compact = compact and not record and bool(getattr(task, "individual_state", ())) and hasattr(model, "keep")
    ids = None  # the simulated individuals' rows in ``returns`` once some were dropped
    for _ in range(steps):
        action, state = model.act(obs.to(population.dtype), state, act_dim)
        obs, reward, term, trunc, info = task.step(action)
        gained = torch.where(alive, reward.to(torch.float64), torch.zeros_like(alive, dtype=torch.float64))
        returns = returns + gained if ids is None else returns.index_add(0, ids, gained)
        if record:
            actions.append(action)
            targets.append(info.get("target"))
            infos.append(info)
        alive = alive & ~(term | trunc)
        live = alive.any(dim=-1)
        if not bool(live.any()):
            break
        if compact and not bool(live.all()):
            idx = live.nonzero()[:, 0]
            state = model.keep(idx, state)
            task.keep(idx)
            obs, alive = obs.index_select(0, idx), alive.index_select(0, idx)
            ids = idx if ids is None else ids.index_select(0, idx)
    result = {"returns": returns, "fitness": returns.mean(dim=-1)}
    if record:
        result["actions"] = torch.stack(actions)
        if all(t is not None for t in targets):
            result["targets"] = torch.stack(targets)
        result["infos"] = {k: torch.stack([i[k] for i in infos]) for k in infos[0]} if infos else {}
    return result


def evaluate_population(spec: ModelSpec, population: Tensor, task, *, seed: int) -> Tensor:
    """Fitness (P,) of every individual: mean episode return over the task's envs."""
    return rollout(spec, population, task, seed=seed)["fitness"]
