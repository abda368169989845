r"""Whole-population evaluation of gated-unit models on batched tasks.

**Local evaluator (documented stand-in for the backend).** When this was written the torch
backend's graph compiler was not available; it is now (``plastix.backends.torch.compile``, with
per-individual ``params=``), and ``tests/trainer/test_models_eval.py`` checks that the graphs of
:meth:`ModelSpec.to_graph <plastix.trainer.models.ModelSpec.to_graph>` compiled there give exactly
these outputs, one step later. That one step is why ES still uses this evaluator: the IR delivers
an observation through a projection (one-step latency), while the paper's mimic tasks ask the unit
to answer ``x_t`` at ``t``. Switching to the backend needs a delay-free input drive in the IR/backend
(or tasks that score outputs one step late).

Here the gated cells are vectorised over the population: every parameter carries a leading ``P``
dim and each gate is one batched matmul ``(P, E, K) x (P, K, M) -> (P, E, M)`` (Bertens & Lee
2020, Methods, "Implementation"); there is no Python loop over individuals, units or envs, only
over time steps. The equations are those of :class:`plastix.ir.ENUCell`,
:class:`plastix.ir.GRUCell` and :class:`plastix.ir.LSTMCell` (not repeated here).

**Fast path.** ENU / NFENU on an open-loop task (one defining ``open_loop_return()``, e.g.
``IAFTask`` / ``STDPTask`` with ``common_inputs=True``: observations ignore the actions and are the
same for every individual) skip stepping the (P, E) task: a one-individual twin of the task supplies observations
and targets, :class:`FusedENU` runs the population with preallocated buffers, and the episode
returns are computed once from the recorded actions (tested equal to stepping the task,
``tests/trainer/test_es_eval_fast.py``). ``benchmarks/es_generation.py`` times it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .models import ModelKind, ModelSpec

Tensor = torch.Tensor


def _mm(x: Tensor, w_t: Tensor) -> Tensor:
    """(P, E, K) x (P, K, M) -> (P, E, M)."""
    return torch.bmm(x, w_t)


class CellParams(NamedTuple):
    """Per-individual cell parameters, pre-transposed for ``_mm`` (all with leading P)."""

    w_zr_t: Tensor | None = None   # ENU: (P, concat, 2M)
    w_c_t: Tensor | None = None    # ENU: (P, concat, M)
    w_ih_t: Tensor | None = None   # GRU/LSTM: (P, C, G)
    w_hh_t: Tensor | None = None   # GRU/LSTM: (P, H, G)
    b_ih: Tensor | None = None     # (P, 1, G)
    b_hh: Tensor | None = None
    w_o_t: Tensor | None = None    # (P, M, C)
    b_o: Tensor | None = None      # (P, 1, C)


def cell_params(spec: ModelSpec, population: Tensor) -> CellParams:
    """Unflatten ``population`` (P, D) into batched, pre-transposed parameters."""
    p = spec.unflatten(population)
    t = lambda w: w.transpose(1, 2).contiguous()  # noqa: E731
    if spec.cell_kind == "enu_cell":
        return CellParams(w_zr_t=t(torch.cat([p["w_z"], p["w_r"]], dim=1)), w_c_t=t(p["w_c"]), w_o_t=t(p["w_o"]))
    return CellParams(w_ih_t=t(p["w_ih"]), w_hh_t=t(p["w_hh"]), w_o_t=t(p["w_o"]),
                      b_ih=p["b_ih"][:, None, :], b_hh=p["b_hh"][:, None, :], b_o=p["b_o"][:, None, :])


def init_state(spec: ModelSpec, population: int, batch: int, *, device=None, dtype=torch.float32) -> tuple:
    """Zero state; ENU ``(h, o)``, GRU ``(h,)``, LSTM ``(h, c)``, each (P, batch, width)."""
    z = lambda n: torch.zeros(population, batch, n, device=device, dtype=dtype)  # noqa: E731
    if spec.cell_kind == "enu_cell":
        return (z(spec.memory), z(spec.channels))
    if spec.cell_kind == "gru_cell":
        return (z(spec.memory),)
    return (z(spec.memory), z(spec.memory))


def enu_step(x: Tensor, state: tuple, p: CellParams, feedback: bool) -> tuple[Tensor, tuple]:
    h, o = state
    m = h.shape[-1]
    c = torch.cat([h, o, x], dim=-1) if feedback else torch.cat([h, x], dim=-1)
    zr = torch.sigmoid(_mm(c, p.w_zr_t))
    z, r = zr[..., :m], zr[..., m:]
    c2 = torch.cat([r * h, o, x], dim=-1) if feedback else torch.cat([r * h, x], dim=-1)
    h_tilde = torch.tanh(_mm(c2, p.w_c_t))
    h = (1.0 - z) * h + z * h_tilde
    o = _mm(h, p.w_o_t).clamp(0.0, 1.0)
    return o, (h, o)


def gru_step(x: Tensor, state: tuple, p: CellParams) -> tuple[Tensor, tuple]:
    (h,) = state
    gi = _mm(x, p.w_ih_t) + p.b_ih
    gh = _mm(h, p.w_hh_t) + p.b_hh
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    h = (1.0 - z) * n + z * h
    return _mm(h, p.w_o_t) + p.b_o, (h,)


def lstm_step(x: Tensor, state: tuple, p: CellParams) -> tuple[Tensor, tuple]:
    h, c = state
    g = _mm(x, p.w_ih_t) + p.b_ih + _mm(h, p.w_hh_t) + p.b_hh
    i, f, gg, o = g.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h = torch.sigmoid(o) * torch.tanh(c)
    return _mm(h, p.w_o_t) + p.b_o, (h, c)


@dataclass(frozen=True)
class BatchedModel:
    """A population of one model kind: ``step(x, state) -> (out, state)`` with ``x`` (P, E, channels)."""

    spec: ModelSpec
    params: CellParams

    @classmethod
    def from_population(cls, spec: ModelSpec, population: Tensor) -> "BatchedModel":
        return cls(spec, cell_params(spec, population))

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> tuple:
        """Zero state for ``batch`` envs (``generator`` unused: single cells start at zero)."""
        ref = self.params.w_o_t
        s = init_state(self.spec, ref.shape[0], batch, device=ref.device, dtype=ref.dtype)
        if self.spec.kind is ModelKind.SHAREDENU:  # synapse state, neuron state
            return (s, tuple(t.clone() for t in s))
        return s

    def step(self, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        k = self.spec.kind
        if k is ModelKind.SHAREDENU:
            z, syn = enu_step(x, state[0], self.params, True)
            o, neu = enu_step(z, state[1], self.params, True)
            return o, (syn, neu)
        if self.spec.cell_kind == "enu_cell":
            return enu_step(x, state, self.params, self.spec.feedback)
        if k is ModelKind.GRU:
            return gru_step(x, state, self.params)
        return lstm_step(x, state, self.params)

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


class FusedENU:
    """Preallocated, fused ENU / NFENU population step for :func:`rollout` (same equations as
    :func:`enu_step`, other float summation order).

    One persistent buffer per individual and env row, ``[h, o, x, r*h]`` (``o`` only with feedback;
    only the ``d`` observation channels that are not padding, the padded weight columns multiply
    zeros), holds the state; the gate inputs are two overlapping views of it, ``u = [h, o, x]``
    for z and r and ``v = [o, x, r*h]`` for the candidate (whose weight rows are permuted to that
    order), so no concat is built and ``[o, x]`` is written once. One step is three ``bmm`` into
    preallocated outputs, in-place gates (``sigmoid_``, ``tanh_``, ``h.lerp_(h~, z)``) and two
    narrow copies; it allocates no large tensors."""

    def __init__(self, spec: ModelSpec, population: Tensor, batch: int, obs_dim: int) -> None:
        if spec.cell_kind != "enu_cell" or spec.kind is ModelKind.SHAREDENU:
            raise ValueError(f"FusedENU runs enu / nfenu, not {spec.kind.value}")
        m, c, d = spec.memory, spec.channels, obs_dim
        p = spec.unflatten(population)
        x0 = m + (c if spec.feedback else 0)                            # first x column
        k = x0 + d                                                      # width of [h, o, x]
        t = lambda a: a.transpose(1, 2).contiguous()  # noqa: E731
        self.w_zr = t(torch.cat([p["w_z"], p["w_r"]], dim=1)[..., :k])  # (P, K, 2M), rows [h, o, x]
        self.w_c = t(p["w_c"][..., list(range(m, k)) + list(range(m))])  # (P, K, M), rows [o, x, h]
        self.w_o = t(p["w_o"])                                           # (P, M, C)
        P, dt = population.shape[0], population.dtype
        z = lambda *s: torch.zeros(P, batch, *s, dtype=dt, device=population.device)  # noqa: E731
        self.m, self.x0, self.k, self.feedback = m, x0, k, spec.feedback
        self.buf = z(k + m)                                              # [h, o, x, r*h]
        self.zr, self.hc, self.o = z(2 * m), z(m), z(c)

    def step(self, x: Tensor) -> Tensor:
        """``x`` (P or 1, E, d) -> output ``o`` (P, E, C) (a buffer overwritten by the next step)."""
        m, x0, k, buf = self.m, self.x0, self.k, self.buf
        h = buf[..., :m]
        buf[..., x0:k].copy_(x)
        zr = torch.bmm(buf[..., :k], self.w_zr, out=self.zr).sigmoid_()
        torch.mul(zr[..., m:], h, out=buf[..., k:])
        hc = torch.bmm(buf[..., m:], self.w_c, out=self.hc).tanh_()
        h.lerp_(hc, zr[..., :m])                                        # h + z (h~ - h)
        o = torch.bmm(h, self.w_o, out=self.o).clamp_(0.0, 1.0)
        if self.feedback:
            buf[..., m:x0].copy_(o)
        return o


def _open_loop_fitness(task):
    """A task whose observations ignore the actions and are the same for every individual opts in
    to the fast path by defining ``open_loop_return()``, returning ``episode_return(target
    (T, 1, E), actions (T, P, E)) -> (P, E)`` float64, the episode return :meth:`task.step` would
    sum (time-major), or None (e.g. the mimic tasks without ``common_inputs``)."""
    hook = getattr(task, "open_loop_return", None)
    return hook() if callable(hook) else None


@torch.no_grad()
def _rollout_open_loop(spec: ModelSpec, population: Tensor, task, episode_return, *, seed: int) -> dict:
    """:func:`rollout` for ENU / NFENU on an open-loop task: the observations and targets come from
    a one-individual twin of ``task`` (same class, config and seed, hence the same common inputs),
    the population runs on :class:`FusedENU`, writing its actions into one (P, E, T) buffer, and
    the returns are computed once at the end (``tests/trainer/test_es_eval_fast.py`` checks this
    against stepping ``task`` itself)."""
    twin = type(task)(task.config, population=1, device=population.device)
    obs, _ = twin.reset(seed=seed)
    P, (_, E), T = population.shape[0], task.batch_shape, task.max_episode_steps
    model = FusedENU(spec, population, E, obs.shape[-1])
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
            record: bool = False) -> dict:
    """Run one episode per env for every individual of ``population`` (P, D) on ``task`` (whose
    ``population`` must be P). Returns ``{"returns": (P, E) float64, "fitness": (P,)}`` (mean
    return over envs), plus ``"actions"``, ``"targets"`` and ``"infos"`` (dict of the task's info
    tensors), each (T, P, E, ...), when ``record``. ``spec``: a :class:`ModelSpec` (one cell) or a
    spec with ``population_model(population)`` (e.g. :class:`plastix.trainer.enu_net.NetworkSpec`)."""
    if task.population != population.shape[0]:
        raise ValueError(f"task population {task.population} != {population.shape[0]} individuals")
    cell = isinstance(spec, ModelSpec)
    if cell and not record and max_steps is None and spec.kind in (ModelKind.ENU, ModelKind.NFENU):
        episode_return = _open_loop_fitness(task)
        if episode_return is not None:
            return _rollout_open_loop(spec, population, task, episode_return, seed=seed)
    # a ModelSpec is one cell; other specs (trainer.enu_net.NetworkSpec) build their own model
    model = BatchedModel.from_population(spec, population) if cell else spec.population_model(population)
    obs, _ = task.reset(seed=seed)
    state = model.init_state(task.num_envs, torch.Generator().manual_seed(seed ^ 0x5EED))
    act_dim = task.single_action_spec.shape[0]
    infos = []
    returns = torch.zeros(task.batch_shape, dtype=torch.float64, device=population.device)
    alive = torch.ones(task.batch_shape, dtype=torch.bool, device=population.device)
    steps = max_steps or getattr(task, "max_episode_steps", None)
    if steps is None:
        raise ValueError("task has no max_episode_steps; pass max_steps")
    actions, targets = [], []
    for _ in range(steps):
        action, state = model.act(obs.to(population.dtype), state, act_dim)
        obs, reward, term, trunc, info = task.step(action)
        returns = returns + torch.where(alive, reward.to(torch.float64), torch.zeros_like(returns))
        if record:
            actions.append(action)
            targets.append(info.get("target"))
            infos.append(info)
        alive = alive & ~(term | trunc)
        if not bool(alive.any()):
            break
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
