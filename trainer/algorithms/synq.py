r"""Synaptic Q-learning (Bhargava, Rezaei & Lankarany 2022), vectorised over all synapses.

Implements the training side of :class:`plastix.ir.rules.SynapticQ`. Every weight and bias of a
small MLP is an agent; all agents share one tabular policy ``q`` ``(81, 3)`` (the authors' 3^5 =
243-entry table: action x last two actions x last two rewards). The per-decision math (encoding,
ε-greedy, move, TD update) is :mod:`plastix.backends.torch.synq`, the same code the IR rule's
torch lowering runs; this module adds the flat MLP, the loss-driven reward and the loop.

**One iteration** (paper Algorithm 1), synapse k in state ``s_k``:

1. ε-greedy action (IR :class:`~plastix.ir.rules.SynapticQ` doc): draw ``h = mix(key(seed, t) ^ k)``
   of the counter-based stream (:mod:`plastix.ir.counter_hash`, ``t`` = iteration), explore iff
   ``v = h >> 8 < floor(ε 2^24)`` with action ``3 v // floor(ε 2^24)``, else ``argmax q[s_k]``.
   A run is therefore reproducible from ``seed`` and the iteration alone (resume-safe).
2. Weight move: ``w += (a - 1) * step_k`` (``additive``, the authors' code; ``step_k`` is
   ``bias_step_scale * step`` for bias synapses, 2 in their code) or ``w += (a - 1) * step_k * w``
   (``multiplicative``, the paper's eq. 3; a zero weight then never moves and no weight changes
   sign).
3. Reward: ``R = +1`` if ``L(t) < L(t-1)`` else ``-1`` (paper eq. 4: ties are penalised).
4. TD update of the shared table (paper eq. 7, with the usual bracket
   ``R + γ max_a' Q(s', a') - Q(s, a)``; the printed equation misplaces it).

**Aggregation of many synapses in one (s, a) cell.** The next state of a synapse,
``s' = 27 a_t + 9 a_{t-1} + 3 R_t + r_{t-1}``, is a function of its cell (s, a) and the global
reward only, so every synapse in a cell has the *same* TD target ``T(s, a) = R + γ max_a' Q(s', a')``.
The authors' Julia code (amanb2000/SynRL, ``SynRLv6.jl``) applies eq. 7 once per synapse, in place,
in a loop; ``n`` such updates with one target have the closed form

.. math:: Q \leftarrow T + (1 - \alpha_q)^{n}\,(Q - T).

``QAggregation.SEQUENTIAL`` (the trainer's default) applies exactly this, with ``T`` computed from
the table as it was before the iteration's updates (their loop reads ``max Q(s', ·)`` while other
cells change; we freeze it, which makes the result independent of synapse order). With ~10^4
synapses per cell and ``α_q = 0.01`` the factor ``(1 - α_q)^n`` is ~0: a visited cell is set to
its target. ``QAggregation.MEAN`` applies the mean of the cell's (identical) TD errors once:
``Q += α_q [n > 0] (T - Q)`` -- one ordinary Q-learning step per visited cell per iteration.
(Summing the errors, ``Q += α_q n (T - Q)``, diverges for ``α_q n > 2`` and is not offered.)

All functions are pure on tensors (they return new tensors). Works on CPU or CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from plastix.backends.torch import synq as sq
from plastix.ir import QAggregation, QUpdateForm
from plastix.ir.counter_hash import EXPLORE_BITS, explore_threshold, stream_key


# ---------------------------------------------------------------------------------------------
# the MLP as one flat parameter vector


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected net ``sizes[0] -> ... -> sizes[-1]``; layer l is a ``(out, 1 + in)`` block
    of the flat vector with the bias in column 0 (the paper's augmented-input convention).
    ``hidden`` activation between layers, ``output`` activation on the last layer."""

    sizes: tuple
    hidden: str = "relu"
    output: str = "identity"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(int(n) < 1 for n in self.sizes):
            raise ValueError(f"MLPSpec.sizes must list >= 2 positive layer sizes, got {self.sizes}")
        for fld in ("hidden", "output"):
            if getattr(self, fld) not in _ACTIVATIONS:
                raise ValueError(f"MLPSpec.{fld}: unknown activation {getattr(self, fld)!r}; "
                                 f"known: {sorted(_ACTIVATIONS)}")

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(int(o), int(i) + 1) for i, o in zip(self.sizes[:-1], self.sizes[1:])]

    @property
    def n_params(self) -> int:
        return sum(o * i for o, i in self.shapes)

    def bias_mask(self, device=None) -> torch.Tensor:
        """``(n_params,)`` bool, True at bias synapses."""
        parts = []
        for o, i in self.shapes:
            m = torch.zeros(o, i, dtype=torch.bool, device=device)
            m[:, 0] = True
            parts.append(m.reshape(-1))
        return torch.cat(parts)

    def init(self, *, generator: torch.Generator, scale: float = 0.1, zero_bias: bool = True,
             bias_scale: float = 0.0, dtype=torch.float32, device=None) -> torch.Tensor:
        """Weights ~ U[-scale, scale]; biases 0 (the authors' ``generate_network``), or, with
        ``zero_bias=False``, ~ U[-bias_scale, bias_scale] (``bias_scale`` 0: the weights' scale).
        One draw per parameter either way, so the weights do not depend on the bias choice.
        (The multiplicative move ``w += ±step w`` never moves a zero bias: give it non-zero biases.)"""
        u = torch.rand(self.n_params, generator=generator, dtype=dtype) * 2 - 1
        theta = u * scale
        mask = self.bias_mask()
        if zero_bias:
            theta[mask] = 0.0
        elif bias_scale > 0:
            theta[mask] = u[mask] * bias_scale
        return theta.to(device)

    def layers(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``theta`` as ``(out, 1 + in)`` matrices (batched theta ``(P, n)`` -> ``(P, out, 1+in)``)."""
        out, off = [], 0
        for o, i in self.shapes:
            out.append(theta[..., off:off + o * i].unflatten(-1, (o, i)))
            off += o * i
        return out

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x (B, sizes[0]) -> (B, sizes[-1])``."""
        layers = self.layers(theta)
        h = x
        for k, w in enumerate(layers):
            h = torch.addmm(w[:, 0], h, w[:, 1:].t())
            h = _ACTIVATIONS[self.output if k == len(layers) - 1 else self.hidden](h)
        return h


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "tanh": torch.tanh, "identity": lambda h: h,
}


# ---------------------------------------------------------------------------------------------
# the trainer


@dataclass(frozen=True)
class SynQParams:
    """Static hyperparameters. Defaults: the paper's OCR setup (ε 0.1, step 1e-4, γ 0.9, α_q 0.01).
    ``seed`` seeds the ε-greedy stream (the IR rule's ``seed``).

    ``average_from``: from this iteration on (0-based, the iteration whose update is counted first)
    also keep the running mean of the table, ``SynQState.q_mean`` (Polyak-Ruppert iterate averaging;
    -1: off, ``q_mean`` stays None). The learning itself is unchanged. With one global reward the
    learned table's greedy action changes every few tens of iterations (docs/results.md, issue 19),
    so a table frozen at the last iteration is a random snapshot; the trainer then saves the mean."""

    step: float = 1e-4
    form: QUpdateForm = QUpdateForm.ADDITIVE
    epsilon: float = 0.1
    gamma: float = 0.9
    lr: float = 0.01
    bias_step_scale: float = 2.0
    aggregation: QAggregation = QAggregation.SEQUENTIAL
    train_policy: bool = True
    seed: int = 0
    average_from: int = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "form", QUpdateForm(self.form))
        object.__setattr__(self, "aggregation", QAggregation(self.aggregation))
        checks = {"step": self.step > 0, "epsilon": 0 <= self.epsilon <= 1, "gamma": 0 <= self.gamma <= 1,
                  "lr": 0 <= self.lr <= 1, "bias_step_scale": self.bias_step_scale > 0,
                  "seed": 0 <= int(self.seed) < 2 ** 32, "average_from": int(self.average_from) >= -1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SynQParams.{name}: invalid value {getattr(self, name)!r}")


class SynQState(NamedTuple):
    """Everything that changes during training (all tensors on one device)."""

    theta: torch.Tensor     # (n,) weights and biases
    q: torch.Tensor         # (81, 3) shared Q table
    a1: torch.Tensor        # (n,) long, a_{t-1}
    s: torch.Tensor         # (n,) long, current state index
    r1: torch.Tensor        # () long, r_{t-1}
    prev_loss: torch.Tensor  # () loss L(t-1) on the current minibatch
    iteration: int
    q_mean: torch.Tensor | None = None  # (81, 3) mean of q since SynQParams.average_from (None: not averaging)


def init_state(theta: torch.Tensor, loss: torch.Tensor, q: torch.Tensor | None = None) -> SynQState:
    """Fresh histories (all neutral), ``q`` zeros unless given, ``loss`` = L(0)."""
    n, dev = theta.numel(), theta.device
    q = (torch.zeros(sq.N_STATES, sq.N_ACTIONS, dtype=torch.float32, device=dev) if q is None
         else q.to(dev, torch.float32))
    a1 = torch.full((n,), sq.NEUTRAL, dtype=torch.long, device=dev)
    s = torch.full((n,), sq.START_STATE, dtype=torch.long, device=dev)
    return SynQState(theta, q.clone(), a1, s, torch.tensor(sq.NEUTRAL, device=dev), loss.detach().reshape(()), 0)


class RunConsts(NamedTuple):
    """Per-run constants on the run's device (:meth:`SynQ.constants`)."""

    deltas: torch.Tensor    # (3, n) weight move per action and synapse (step_table)
    counters: torch.Tensor  # (n,) long synapse index k (the stream's counter)
    threshold: int          # explore_threshold(epsilon)
    tables: sq.Tables


class SynQ:
    """Vectorised synaptic Q-learning over a flat parameter vector.

    ``loss_fn(theta) -> () tensor`` evaluates the current minibatch. ``step_scale`` lets a run
    change the step size (the paper halves it at iteration 60,000 for 32 hidden units).

    >>> import torch
    >>> spec = MLPSpec((2, 1), output="identity")
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(64, 2, generator=g); y = x @ torch.tensor([[1.0], [-2.0]])
    >>> loss = lambda th: ((spec.forward(th, x) - y) ** 2).mean()
    >>> algo = SynQ(SynQParams(step=1e-2, epsilon=0.1), spec.bias_mask())
    >>> th0 = spec.init(generator=g)
    >>> st = algo.run(init_state(th0, loss(th0)), loss, 300)
    >>> bool(st.prev_loss < loss(th0))
    True
    """

    def __init__(self, params: SynQParams, bias_mask: torch.Tensor, *, compiled: bool = False) -> None:
        """``compiled``: fuse the decision (draws, ε-greedy, move) and the learning step (reward, TD
        update, next states) with ``torch.compile`` (same results; pays a one-off compile of tens of
        seconds, worth it for long runs of large nets)."""
        self.params = params
        self.bias_mask = bias_mask
        self.compiled = bool(compiled)
        self._decide = torch.compile(_decide, dynamic=False) if compiled else _decide
        self._learn = torch.compile(_learn, dynamic=False) if compiled else _learn

    def step_sizes(self, device, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
        p = self.params
        one = torch.full(self.bias_mask.shape, p.step * scale, dtype=dtype, device=device)
        return torch.where(self.bias_mask.to(device), one * p.bias_step_scale, one)

    def constants(self, theta: torch.Tensor, step_scale: float = 1.0) -> RunConsts:
        """Per-run constant tensors (step sizes, counters, lookup tables) on ``theta``'s device."""
        dev, dt = theta.device, theta.dtype
        return RunConsts(sq.step_table(self.step_sizes(dev, dt, step_scale), dt, dev),
                         torch.arange(theta.numel(), device=dev),
                         explore_threshold(self.params.epsilon), sq.make_tables(dev, dt))

    def draws(self, iteration: int, consts: RunConsts) -> torch.Tensor | None:
        """The stream's draws of all synapses at ``iteration`` (None when ε = 0)."""
        if consts.threshold <= 0:
            return None
        return sq.draws(stream_key(self.params.seed, iteration), consts.counters)

    def step(self, state: SynQState, loss_fn: Callable[[torch.Tensor], torch.Tensor], *,
             consts: RunConsts | None = None) -> SynQState:
        """One iteration (module doc, steps 1-4); returns the new state, ``state`` is untouched.
        ``consts``: from :meth:`constants` (built here when omitted)."""
        p = self.params
        theta, q, s = state.theta, state.q, state.s
        c = self.constants(theta) if consts is None else consts
        key = stream_key(p.seed, state.iteration)
        if self.compiled:  # a tensor key: one compiled graph for every iteration
            key = torch.tensor(key, device=theta.device)
        a, theta = self._decide(q, s, key, c.counters, c.threshold, c.deltas, theta, p.form)
        loss = loss_fn(theta).detach().reshape(())
        q, s_new, r = self._learn(q, s, a, state.a1, state.r1, state.prev_loss, loss, c.tables, p.lr, p.gamma,
                                  p.aggregation, p.train_policy)
        q_mean = running_mean(state.q_mean, q, state.iteration, p.average_from)
        return SynQState(theta, q, a, s_new, r, loss, state.iteration + 1, q_mean)

    def run(self, state: SynQState, loss_fn, iterations: int, *, step_scale: float = 1.0) -> SynQState:
        """``iterations`` steps under ``torch.no_grad``."""
        c = self.constants(state.theta, step_scale)
        with torch.no_grad():
            for _ in range(iterations):
                state = self.step(state, loss_fn, consts=c)
        return state


def _decide(q: torch.Tensor, s: torch.Tensor, key, counters: torch.Tensor, threshold: int, deltas: torch.Tensor,
            theta: torch.Tensor, form: QUpdateForm) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2 of an iteration: the stream's draws, ε-greedy actions and the moved weights."""
    h = sq.draws(key, counters) if threshold > 0 else None
    a = sq.select_actions(q, s, threshold, h)
    return a, sq.move(theta, a, deltas, form)


def _learn(q: torch.Tensor, s: torch.Tensor, a: torch.Tensor, a1: torch.Tensor, r1: torch.Tensor,
           prev_loss: torch.Tensor, loss: torch.Tensor, tables: sq.Tables, lr: float, gamma: float,
           aggregation: QAggregation, train_policy: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 3-4 of an iteration: the reward (eq. 4), the table's TD update (eq. 7) and the next states."""
    r = sq.reward_index(prev_loss, loss)
    if train_policy:
        q = sq.td_update(q, s, a, r, lr=lr, gamma=gamma, aggregation=aggregation, tables=tables)
    return q, sq.encode_state(a, a1, r, r1), r


def running_mean(mean: torch.Tensor | None, q: torch.Tensor, iteration: int, start: int) -> torch.Tensor | None:
    """The mean of the tables after iterations ``start .. iteration`` given ``mean`` (their mean up to
    ``iteration - 1``): ``mean + (q - mean) / n`` with ``n = iteration - start + 1``; ``mean`` unchanged
    before ``start`` or when ``start < 0`` (off)."""
    if start < 0 or iteration < start:
        return mean
    n = iteration - start + 1
    return q.clone() if mean is None or n == 1 else torch.lerp(mean, q, 1.0 / n)


def policy_table(state: SynQState) -> torch.Tensor:
    """The table to save or freeze: the running mean when one is kept, else the last table."""
    return state.q if state.q_mean is None else state.q_mean


def rebase_loss(state: SynQState, loss: torch.Tensor) -> SynQState:
    """Replace L(t-1) (after a minibatch change, so the next reward compares losses on one batch)."""
    return state._replace(prev_loss=loss.detach().reshape(()))


# ---------------------------------------------------------------------------------------------
# reference: a straightforward per-synapse Python loop (tests and benchmarks only)


def loop_step(theta: list, q: list, a1: list, s: list, r1: int, prev_loss: float, loss_fn, h: Sequence[int],
              bias: Sequence[bool], params: SynQParams, step_scale: float = 1.0):
    """The same iteration written synapse by synapse with Python lists (the authors' code shape).

    ``q`` is a list of 81 lists of 3 floats; ``h`` the stream's draws (ints, one per synapse);
    returns ``(theta, q, a1, s, r1, loss)``. The TD target of every synapse is read from the
    table as it was before this iteration's updates (see module doc), and each synapse then
    applies eq. 7 in turn."""
    p = params
    n = len(theta)
    theta = list(theta)
    thr = explore_threshold(p.epsilon)
    shift = 32 - EXPLORE_BITS
    multiplicative = QUpdateForm(p.form) is QUpdateForm.MULTIPLICATIVE
    acts = [0] * n
    for k in range(n):
        row = q[s[k]]
        v = h[k] >> shift if thr > 0 else thr
        if v < thr:
            act = v * 3 // thr
        else:
            act = 0
            for j in (1, 2):
                if row[j] > row[act]:
                    act = j
        acts[k] = act
        st = p.step * step_scale * (p.bias_step_scale if bias[k] else 1.0)
        theta[k] = theta[k] + (act - 1) * st * (theta[k] if multiplicative else 1.0)
    loss = float(loss_fn(theta))
    r = 2 if loss < prev_loss else 0
    q_new = [list(row) for row in q]
    if p.train_policy:
        vmax = [max(row) for row in q]
        sequential = QAggregation(p.aggregation) is QAggregation.SEQUENTIAL
        seen = set()
        for k in range(n):
            cell = (s[k], acts[k])
            if not sequential and cell in seen:
                continue
            seen.add(cell)
            a1_k, _, r1_k, _ = sq.decode_state(s[k])
            target = (r - 1) + p.gamma * vmax[27 * acts[k] + 9 * a1_k + 3 * r + r1_k]
            q_new[s[k]][acts[k]] += p.lr * (target - q_new[s[k]][acts[k]])
    s_new = [27 * acts[k] + 9 * a1[k] + 3 * r + r1 for k in range(n)]
    return theta, q_new, acts, s_new, r, loss


# ---------------------------------------------------------------------------------------------
# the policy as IR


def policy_to_graph(q: torch.Tensor | np.ndarray, params: SynQParams, *, metadata: dict | None = None):
    """A small :class:`plastix.ir.Graph` carrying the learned table as a :class:`SynapticQ` rule on
    a 1 x 1 projection ``pre -> post`` (the carrier; the rule is the payload)."""
    from plastix import ir

    q_np = np.asarray(q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else q, dtype=np.float64)
    rule = ir.SynapticQ(q_table=q_np, step=float(params.step), form=params.form, epsilon=float(params.epsilon),
                        gamma=float(params.gamma), lr=float(params.lr), aggregation=params.aggregation,
                        seed=int(params.seed))
    meta = {"kind": "synaptic_q_policy", "bias_step_scale": float(params.bias_step_scale)}
    meta.update(metadata or {})
    pops = (ir.Input(name="pre", size=1), ir.LIReadout(name="post", size=1, du=1.0, dv=1.0))
    proj = ir.Projection(name="synapse", pre="pre", post="post", weight=np.zeros((1, 1)), rule=rule)
    return ir.Graph(populations=pops, projections=(proj,), outputs=("post",), metadata=meta)


def save_policy(path, q, params: SynQParams, *, metadata: dict | None = None):
    """Write the policy graph with :func:`plastix.ir.save` (atomic)."""
    from plastix import ir

    return ir.save(policy_to_graph(q, params, metadata=metadata), path)


def load_policy(path) -> tuple[torch.Tensor, SynQParams]:
    """Read a policy file: the first :class:`SynapticQ` rule found; returns ``(q (81, 3), params)``."""
    from plastix import ir

    graph = ir.load(path)
    for proj in graph.projections:
        rule = proj.rule
        if isinstance(rule, ir.SynapticQ):
            meta = graph.metadata or {}
            params = SynQParams(step=rule.step, form=rule.form, epsilon=rule.epsilon, gamma=rule.gamma, lr=rule.lr,
                                bias_step_scale=float(meta.get("bias_step_scale", 2.0)),
                                aggregation=rule.aggregation, seed=rule.seed)
            return torch.tensor(np.array(rule.q_table), dtype=torch.float32), params
    raise ValueError(f"{path}: no SynapticQ rule in any projection "
                     f"({[pr.name for pr in graph.projections]})")


# ---------------------------------------------------------------------------------------------
# reading a table: how far it is from win-stay / lose-reverse


def win_stay_lose_reverse() -> torch.Tensor:
    """A hand-made reference table ``(81, 3)``, not a learned one: after a reward of +1 repeat the
    last action, after -1 take the opposite one (a null action stays null), with no reward yet
    stay null. Applied by every synapse at once this is a random-direction line search: the whole
    net keeps a direction while the loss falls and steps back when it rises. Used in
    docs/results.md to measure what a frozen table of this rule family can reach."""
    q = torch.zeros(sq.N_STATES, sq.N_ACTIONS)
    s = torch.arange(sq.N_STATES)
    a1, _, r1, _ = sq.decode_state(s)
    best = torch.where(r1 == 2, a1, torch.where(r1 == 0, 2 - a1, torch.full_like(a1, sq.NEUTRAL)))
    q[s, best] = 1.0
    return q


def wslr_agreement(q: torch.Tensor) -> dict:
    """How often the greedy action of ``q`` is :func:`win_stay_lose_reverse`'s, over the states with
    both rewards set (+1 or -1: the 36 states a running net visits) whose row is not all zeros
    (unvisited rows stay zero): ``{"win": (agree, n), "lose": (agree, n)}`` by the last reward."""
    ref = win_stay_lose_reverse().argmax(1)
    greedy = q.argmax(1)
    s = torch.arange(sq.N_STATES)
    _, _, r1, r2 = sq.decode_state(s)
    seen = (r1 != sq.NEUTRAL) & (r2 != sq.NEUTRAL) & (q.abs().sum(1) > 0)
    agree = greedy == ref
    return {name: (int((agree & seen & (r1 == r)).sum()), int((seen & (r1 == r)).sum()))
            for name, r in (("win", 2), ("lose", 0))}
