r"""The one torch implementation of synaptic Q-learning's per-decision math (Bhargava, Rezaei &
Lankarany 2022): state encoding, ε-greedy selection from the reproducible stream, the weight move
and the TD update of the shared table. Implements :class:`plastix.ir.rules.SynapticQ`; used by the
IR rule lowering (:func:`plastix.backends.torch.rules.synq_step`) and by the vectorised trainer
(:mod:`plastix.trainer.algorithms.synq`).

Encoding (the IR's): actions ``a`` in {0, 1, 2} mean {-step, 0, +step}; rewards ``r`` in
{0, 1, 2} mean {-1, 0, +1}; the state of a synapse is
``s = 27 a_{t-1} + 9 a_{t-2} + 3 r_{t-1} + r_{t-2}``.

Tables may be shared ``(81, 3)`` or batched ``(*L, 81, 3)`` (one per individual / batch element);
per-synapse tensors are then ``(*L, ...)`` and rewards ``(*L)`` or a scalar. All functions return
new tensors and never write into their inputs. Work on any device; no host syncs.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from ...ir.counter_hash import EXPLORE_BITS, explore_threshold, mix32
from ...ir.rules import QAggregation, QUpdateForm

N_STATES = 81
N_ACTIONS = 3
N_CELLS = N_STATES * N_ACTIONS
NEUTRAL = 1  # action "0" / reward "none yet"
START_STATE = 40  # encode_state(1, 1, 1, 1): all histories neutral

__all__ = ["N_STATES", "N_ACTIONS", "N_CELLS", "NEUTRAL", "START_STATE", "Tables", "make_tables", "encode_state",
           "decode_state", "reward_index", "sign_index", "draws", "select_actions", "step_table", "move", "td_targets",
           "td_update", "explore_threshold"]


class Tables(NamedTuple):
    """Per-run constant lookup tables (build once with :func:`make_tables` on the run's device)."""

    next_state: torch.Tensor  # (3, 243) long: s'(s, a, R) for reward index R and cell 3 s + a
    rval: torch.Tensor        # (3,) reward value per reward index: -1, 0, +1


def make_tables(device=None, dtype: torch.dtype = torch.float32) -> Tables:
    """``next_state[R, 3 s + a] = 27 a + 9 a_{t-1}(s) + 3 R + r_{t-1}(s)``."""
    s = torch.arange(N_STATES, device=device).unsqueeze(1)
    a = torch.arange(N_ACTIONS, device=device).unsqueeze(0)
    base = (27 * a + 9 * (s // 27) + (s // 3) % 3).reshape(-1)
    return Tables(torch.stack([base, base + 3, base + 6]), torch.tensor([-1.0, 0.0, 1.0], dtype=dtype, device=device))


def encode_state(a1, a2, r1, r2):
    """State index ``27 a_{t-1} + 9 a_{t-2} + 3 r_{t-1} + r_{t-2}`` (ints or tensors in {0, 1, 2})."""
    if isinstance(a2, torch.Tensor):  # three elementwise passes over the synapses, not five
        return torch.add(a2 * 9 + (3 * r1 + r2), a1, alpha=27)
    return 27 * a1 + 9 * a2 + 3 * r1 + r2


def decode_state(s):
    """Inverse of :func:`encode_state`: ``(a1, a2, r1, r2)``."""
    return s // 27, (s // 9) % 3, (s // 3) % 3, s % 3


def reward_index(prev_loss, new_loss):
    """Paper eq. 4 as a reward index: 2 (+1) if the loss went down, else 0 (-1; ties penalised).
    Python floats -> int; tensors -> long tensor (no host sync)."""
    if isinstance(new_loss, torch.Tensor):
        return (new_loss < prev_loss).long() * 2
    return 2 if new_loss < prev_loss else 0


def sign_index(reward: torch.Tensor) -> torch.Tensor:
    """A reward value's sign as an index in {0, 1, 2} (the IR rule's modulator reward)."""
    return torch.sign(reward).long() + 1


def draws(key: int, counters: torch.Tensor) -> torch.Tensor:
    """The stream's 32-bit draws ``mix(key ^ k)`` for synapse indices ``counters`` (int64)
    (:mod:`plastix.ir.counter_hash`; ``key = stream_key(seed, n)``)."""
    return mix32(counters ^ key)


def _flat(x: torch.Tensor, g: int) -> torch.Tensor:
    return x.reshape(g, -1)


_DIV_SHIFT = 50


def _reciprocal(threshold: int) -> int:
    """``M = ceil(2^50 / threshold)``: ``(x M) >> 50 == x // threshold`` for ``x < 3 threshold``
    (the error ``e = M threshold - 2^50 < threshold <= 2^24`` and ``x < 2^26`` give ``x e < 2^50``;
    Granlund & Montgomery 1994), and ``x M < 2^52`` fits int64."""
    return -(-(1 << _DIV_SHIFT) // threshold)


def select_actions(q: torch.Tensor, s: torch.Tensor, threshold: int, h: Optional[torch.Tensor]) -> torch.Tensor:
    """ε-greedy actions (IR :class:`~plastix.ir.rules.SynapticQ` doc): greedy ``argmax q[s]`` (ties:
    lowest index) unless ``v = h >> 8 < threshold``, then ``3 v // threshold``. ``threshold`` from
    :func:`explore_threshold`; ``h`` from :func:`draws` (unused when ``threshold`` is 0)."""
    best = q.argmax(-1)
    if q.dim() == 2:
        greedy = torch.index_select(best, 0, s.reshape(-1)).view(s.shape)
    else:
        g = math.prod(q.shape[:-2])
        greedy = torch.gather(best.reshape(g, N_STATES), 1, _flat(s, g)).view(s.shape)
    if threshold <= 0:
        return greedy
    v = h >> (32 - EXPLORE_BITS)
    # 3 v // threshold as a multiply and a shift (a division costs ~5 elementwise ops here)
    rand = (v * N_ACTIONS).clamp_max_(N_ACTIONS * threshold - 1).mul_(_reciprocal(threshold))
    rand >>= _DIV_SHIFT
    return torch.where(v < threshold, rand, greedy)


def step_table(step: Union[float, torch.Tensor], dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``[-step, 0, +step]`` per action: ``(3,)`` for a scalar step, ``(3, n)`` for per-synapse
    steps ``(n,)`` (build once per run)."""
    sign = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype, device=device)
    if isinstance(step, torch.Tensor) and step.dim() > 0:
        return sign.unsqueeze(1) * step.to(dtype).reshape(1, -1)
    return sign * float(step)


def move(w: torch.Tensor, a: torch.Tensor, deltas: torch.Tensor, form: QUpdateForm) -> torch.Tensor:
    """Weights after the move: ``w + (a - 1) step`` (additive, the authors' code) or
    ``w + (a - 1) step w`` (multiplicative, paper eq. 3); ``deltas`` from :func:`step_table`
    (``(3, n)`` needs ``a.numel() == n``)."""
    if deltas.dim() == 1:
        d = torch.index_select(deltas, 0, a.reshape(-1)).view(a.shape)
    else:
        d = torch.gather(deltas, 0, a.reshape(1, -1)).view(a.shape)
    if form is QUpdateForm.MULTIPLICATIVE:
        return torch.addcmul(w, d, w)
    return w + d


def td_targets(q: torch.Tensor, r_idx, gamma: float, tables: Tables) -> torch.Tensor:
    """``T[..., 3 s + a] = R + γ max_a' q[..., s'(s, a, R)]`` for all 243 cells: ``(*L, 243)``."""
    lead = q.shape[:-2]
    g = math.prod(lead)
    vmax = q.amax(-1).reshape(g, N_STATES)
    r = torch.as_tensor(r_idx, device=q.device)
    if r.dim() == 0 and g == 1:  # index_select, not r as an index: no host sync, and torch.compile traces it
        nxt = torch.index_select(tables.next_state, 0, r.reshape(1)).view(N_CELLS)
        rv = torch.index_select(tables.rval, 0, r.reshape(1))
        return torch.add(rv, torch.index_select(vmax[0], 0, nxt), alpha=gamma).view(*lead, N_CELLS)
    r = r.expand(lead).reshape(g)
    nxt = torch.gather(vmax, 1, tables.next_state[r])
    return torch.add(tables.rval[r].unsqueeze(1), nxt, alpha=gamma).view(*lead, N_CELLS)


def td_update(q: torch.Tensor, s: torch.Tensor, a: torch.Tensor, r_idx, *, lr: float, gamma: float,
              aggregation: QAggregation = QAggregation.SEQUENTIAL, weights: Optional[torch.Tensor] = None,
              tables: Optional[Tables] = None) -> torch.Tensor:
    """The table after one decision's TD updates (paper eq. 7) of every synapse that took action
    ``a`` in state ``s`` and then got reward index ``r_idx``; ``weights`` (per synapse, 0/1)
    drops masked synapses. All synapses in a cell share one target ``T`` (:func:`td_targets`);
    ``sequential``: ``Q <- T + (1 - lr)^n (Q - T)`` (their ``n`` updates applied one by one);
    ``mean``: ``Q <- Q + lr [n > 0] (T - Q)``."""
    tables = make_tables(q.device, q.dtype) if tables is None else tables
    lead = q.shape[:-2]
    g = math.prod(lead)
    target = td_targets(q, r_idx, gamma, tables).reshape(g, N_CELLS)
    cells = torch.add(a, s, alpha=N_ACTIONS).reshape(g, -1)
    if g > 1:
        cells = cells + N_CELLS * torch.arange(g, device=q.device).unsqueeze(1)
    cells = cells.reshape(-1)
    wts = (torch.ones(cells.shape, dtype=q.dtype, device=q.device) if weights is None
           else weights.to(q.dtype).reshape(-1).expand(g, -1).reshape(-1))
    # scatter_add rather than bincount: the same counts, and torch.compile fuses it with the rest
    counts = torch.zeros(g * N_CELLS, dtype=q.dtype, device=q.device).scatter_add_(0, cells, wts).view(g, N_CELLS)
    qf = q.reshape(g, N_CELLS)
    if QAggregation(aggregation) is QAggregation.SEQUENTIAL:
        keep = torch.pow(1.0 - lr, counts.to(q.dtype))
        new = torch.lerp(target, qf, keep)
    else:
        new = torch.lerp(qf, target, (counts > 0).to(q.dtype) * lr)
    return new.view(q.shape)
