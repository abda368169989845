r"""Synaptic Q-learning (Bhargava, Rezaei & Lankarany 2022), vectorised over all synapses.

Implements the training side of :class:`plastix.ir.rules.SynapticQ`. Every weight and bias of a
small MLP is an agent; all agents share one tabular policy ``q`` ``(81, 3)``.

**Encoding** (the IR's, shared by every function here). Actions ``a`` in {0, 1, 2} mean
{-step, 0, +step}; rewards ``r`` in {0, 1, 2} mean {-1, 0, +1} (1 = "no reward yet", only in the
first two iterations, as in the authors' code which starts every history at the neutral value).
The state of synapse k at iteration t is

.. math:: s = 27\,a_{t-1} + 9\,a_{t-2} + 3\,r_{t-1} + r_{t-2}.

**One iteration** (paper Algorithm 1):

1. ε-greedy action per synapse: ``argmax_a q[s]`` (ties -> the lowest index, as Julia's and
   torch's ``argmax``) with probability 1-ε, else uniform over {0, 1, 2}. One uniform draw ``u``
   per synapse decides both: explore iff ``u < ε``, and the random action is ``floor(3 u / ε)``
   (``u`` is uniform on [0, ε) given ``u < ε``), so one random tensor of n floats per iteration.
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

``Aggregation.SEQUENTIAL`` (default) applies exactly this, with ``T`` computed from the table as
it was before the iteration's updates (their loop reads ``max Q(s', ·)`` while other cells change;
we freeze it, which makes the result independent of synapse order). With ~10^4 synapses per
cell and ``α_q = 0.01`` the factor ``(1 - α_q)^n`` is ~0: a visited cell is set to its target.
``Aggregation.MEAN`` applies the mean of the cell's (identical) TD errors once:
``Q += α_q [n > 0] (T - Q)`` -- one ordinary Q-learning step per visited cell per iteration.
(Summing the errors, ``Q += α_q n (T - Q)``, diverges for ``α_q n > 2`` and is not offered.)

All functions are pure on tensors (they return new tensors) except :meth:`SynQ.step`'s documented
in-place use of its own buffers. Works on CPU or CUDA; randomness only from the
``torch.Generator`` passed in.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from plastix.ir import QUpdateForm

N_STATES = 81
N_ACTIONS = 3
NEUTRAL = 1  # action "0" / reward "none yet"


class Aggregation(str, enum.Enum):
    """How the TD updates of the synapses that share one (s, a) cell combine (see module doc)."""

    SEQUENTIAL = "sequential"
    MEAN = "mean"


# ---------------------------------------------------------------------------------------------
# encoding


def encode_state(a1, a2, r1, r2):
    """State index ``27 a_{t-1} + 9 a_{t-2} + 3 r_{t-1} + r_{t-2}`` (ints or tensors in {0,1,2})."""
    return 27 * a1 + 9 * a2 + 3 * r1 + r2


def decode_state(s):
    """Inverse of :func:`encode_state`: ``(a1, a2, r1, r2)``."""
    return s // 27, (s // 9) % 3, (s // 3) % 3, s % 3


def reward_index(prev_loss, new_loss):
    """Paper eq. 4 in the IR's reward encoding: 2 (+1) if the loss went down, else 0 (-1).

    Works on Python floats (returns int) and on tensors (returns a long tensor, no host sync)."""
    if isinstance(new_loss, torch.Tensor):
        return (new_loss < prev_loss).long() * 2
    return 2 if new_loss < prev_loss else 0


def _next_base() -> torch.Tensor:
    """``B[s, a] = 27 a + 9 a_{t-1}(s) + r_{t-1}(s)``: the next state is ``B[s, a] + 3 R_idx``."""
    s = torch.arange(N_STATES).unsqueeze(1)
    a = torch.arange(N_ACTIONS).unsqueeze(0)
    return 27 * a + 9 * (s // 27) + (s // 3) % 3


_NEXT_BASE = _next_base()  # an immutable constant table, not a cache


def td_targets(q: torch.Tensor, r_idx, gamma: float) -> torch.Tensor:
    """``T[s, a] = R + γ max_a' q[s'(s, a, R)]`` for all 243 cells, ``(81, 3)``; ``r_idx`` in {0, 2}."""
    base = _NEXT_BASE.to(q.device)
    vmax = q.max(dim=1).values
    r_idx = torch.as_tensor(r_idx, device=q.device)
    return (r_idx - 1).to(q.dtype) + gamma * vmax[base + 3 * r_idx]


def td_update(q: torch.Tensor, s: torch.Tensor, a: torch.Tensor, r_idx, *, lr: float, gamma: float,
              aggregation: Aggregation = Aggregation.SEQUENTIAL) -> torch.Tensor:
    """New table after one iteration's TD updates of all synapses (states ``s``, actions ``a``,
    global reward index ``r_idx``). Returns a new tensor; ``q`` is not modified."""
    target = td_targets(q, r_idx, gamma)
    counts = torch.bincount(s * N_ACTIONS + a, minlength=N_STATES * N_ACTIONS).view(N_STATES, N_ACTIONS)
    if Aggregation(aggregation) is Aggregation.SEQUENTIAL:
        keep = torch.pow(1.0 - lr, counts.to(q.dtype))
        return target + keep * (q - target)
    return q + lr * (counts > 0).to(q.dtype) * (target - q)


def select_actions(q: torch.Tensor, s: torch.Tensor, epsilon: float, u: torch.Tensor) -> torch.Tensor:
    """ε-greedy actions from uniforms ``u`` (same shape as ``s``); see module doc, step 1."""
    greedy = q.argmax(dim=1)[s]
    if epsilon <= 0.0:
        return greedy
    rand = (u * (N_ACTIONS / epsilon)).long().clamp_(max=N_ACTIONS - 1)
    return torch.where(u < epsilon, rand, greedy)


def apply_actions(theta: torch.Tensor, a: torch.Tensor, step: torch.Tensor, form: QUpdateForm) -> torch.Tensor:
    """Weights after the move of step 2 (returns a new tensor). ``step``: per-synapse step sizes."""
    delta = (a - 1).to(theta.dtype) * step
    if QUpdateForm(form) is QUpdateForm.MULTIPLICATIVE:
        delta = delta * theta
    return theta + delta


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
             dtype=torch.float32, device=None) -> torch.Tensor:
        """Weights ~ U[-scale, scale], biases 0 (the authors' ``generate_network``)."""
        theta = (torch.rand(self.n_params, generator=generator, dtype=dtype) * 2 - 1) * scale
        if zero_bias:
            theta[self.bias_mask()] = 0.0
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
    """Static hyperparameters. Defaults: the paper's OCR setup (ε 0.1, step 1e-4, γ 0.9, α_q 0.01)."""

    step: float = 1e-4
    form: QUpdateForm = QUpdateForm.ADDITIVE
    epsilon: float = 0.1
    gamma: float = 0.9
    lr: float = 0.01
    bias_step_scale: float = 2.0
    aggregation: Aggregation = Aggregation.SEQUENTIAL
    train_policy: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "form", QUpdateForm(self.form))
        object.__setattr__(self, "aggregation", Aggregation(self.aggregation))
        checks = {"step": self.step > 0, "epsilon": 0 <= self.epsilon <= 1, "gamma": 0 <= self.gamma <= 1,
                  "lr": 0 <= self.lr <= 1, "bias_step_scale": self.bias_step_scale > 0}
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


def init_state(theta: torch.Tensor, loss: torch.Tensor, q: torch.Tensor | None = None) -> SynQState:
    """Fresh histories (all neutral), ``q`` zeros unless given, ``loss`` = L(0)."""
    n, dev = theta.numel(), theta.device
    q = torch.zeros(N_STATES, N_ACTIONS, dtype=torch.float32, device=dev) if q is None else q.to(dev, torch.float32)
    a1 = torch.full((n,), NEUTRAL, dtype=torch.long, device=dev)
    s = torch.full((n,), encode_state(NEUTRAL, NEUTRAL, NEUTRAL, NEUTRAL), dtype=torch.long, device=dev)
    return SynQState(theta, q.clone(), a1, s, torch.tensor(NEUTRAL, device=dev), loss.detach().reshape(()), 0)


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
    >>> st = init_state(spec.init(generator=g), loss(spec.init(generator=g)))
    >>> st = algo.run(st, loss, 300, generator=g)
    >>> bool(st.prev_loss < loss(spec.init(generator=torch.Generator().manual_seed(0))))
    True
    """

    def __init__(self, params: SynQParams, bias_mask: torch.Tensor) -> None:
        self.params = params
        self.bias_mask = bias_mask

    def step_sizes(self, device, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
        p = self.params
        one = torch.full(self.bias_mask.shape, p.step * scale, dtype=dtype, device=device)
        return torch.where(self.bias_mask.to(device), one * p.bias_step_scale, one)

    def constants(self, theta: torch.Tensor, step_scale: float = 1.0) -> "_Consts":
        """Per-run constant tensors (step sizes, lookup tables) on ``theta``'s device."""
        dev, dt = theta.device, theta.dtype
        base = _NEXT_BASE.to(dev)
        return _Consts(steps=self.step_sizes(dev, dt, step_scale),
                       sign=torch.tensor([-1.0, 0.0, 1.0], dtype=dt, device=dev),
                       next3=torch.stack([base, base + 3, base + 6]),
                       rval=torch.tensor([-1.0, 0.0, 1.0], device=dev))

    def step(self, state: SynQState, loss_fn: Callable[[torch.Tensor], torch.Tensor], *,
             generator: torch.Generator, consts: "_Consts | None" = None,
             u: torch.Tensor | None = None) -> SynQState:
        """One iteration (module doc, steps 1-4); returns the new state, ``state`` is untouched.

        Same arithmetic as :func:`select_actions`, :func:`apply_actions`, :func:`td_update`, fused
        with precomputed tables to keep the per-iteration op count low. ``u``: optional pre-drawn
        uniforms (tests); ``consts``: from :meth:`constants` (built here when omitted)."""
        p = self.params
        theta, q, s = state.theta, state.q, state.s
        c = self.constants(theta) if consts is None else consts
        if u is None:
            u = torch.rand(theta.shape, generator=generator, device=theta.device)
        # 1. epsilon-greedy
        a = q.argmax(dim=1)[s]
        if p.epsilon > 0.0:
            a = torch.where(u < p.epsilon, (u * (N_ACTIONS / p.epsilon)).long().clamp_(max=N_ACTIONS - 1), a)
        # 2. move
        delta = c.sign[a] * c.steps
        theta = torch.addcmul(theta, delta, theta) if p.form is QUpdateForm.MULTIPLICATIVE else theta + delta
        # 3. reward
        loss = loss_fn(theta).detach().reshape(())
        r = (loss < state.prev_loss).long() * 2
        # 4. TD update, all cells at once
        if p.train_policy:
            target = torch.add(c.rval[r], q.amax(dim=1)[c.next3[r]], alpha=p.gamma)
            counts = torch.bincount(torch.add(a, s, alpha=N_ACTIONS), minlength=N_STATES * N_ACTIONS)
            counts = counts.view(N_STATES, N_ACTIONS)
            if p.aggregation is Aggregation.SEQUENTIAL:
                keep = torch.pow(1.0 - p.lr, counts)  # float tensor from a long one
                q = torch.lerp(target, q, keep if keep.dtype == q.dtype else keep.to(q.dtype))
            else:
                q = torch.lerp(q, target, (counts > 0).to(q.dtype) * p.lr)
        s_next = torch.add(state.a1 * 9 + (3 * r + state.r1), a, alpha=27)
        return SynQState(theta, q, a, s_next, r, loss, state.iteration + 1)

    def run(self, state: SynQState, loss_fn, iterations: int, *, generator: torch.Generator,
            step_scale: float = 1.0) -> SynQState:
        """``iterations`` steps under ``torch.no_grad``."""
        c = self.constants(state.theta, step_scale)
        with torch.no_grad():
            for _ in range(iterations):
                state = self.step(state, loss_fn, generator=generator, consts=c)
        return state


class _Consts(NamedTuple):
    steps: torch.Tensor   # (n,) step size per synapse
    sign: torch.Tensor    # (3,) -1, 0, +1 per action index
    next3: torch.Tensor   # (3, 81, 3) next-state index per reward index, state, action
    rval: torch.Tensor    # (3,) reward value per reward index


def rebase_loss(state: SynQState, loss: torch.Tensor) -> SynQState:
    """Replace L(t-1) (after a minibatch change, so the next reward compares losses on one batch)."""
    return state._replace(prev_loss=loss.detach().reshape(()))


# ---------------------------------------------------------------------------------------------
# reference: a straightforward per-synapse Python loop (tests and benchmarks only)


def loop_step(theta: list, q: list, a1: list, s: list, r1: int, prev_loss: float, loss_fn, u: Sequence[float],
              bias: Sequence[bool], params: SynQParams, step_scale: float = 1.0):
    """The same iteration written synapse by synapse with Python lists (the authors' code shape).

    ``q`` is a list of 81 lists of 3 floats; returns ``(theta, q, a1, s, r1, loss)``. The TD target
    of every synapse is read from the table as it was before this iteration's updates (see
    module doc), and each synapse then applies eq. 7 in turn."""
    p = params
    n = len(theta)
    theta = list(theta)
    acts = [0] * n
    for k in range(n):
        row = q[s[k]]
        if p.epsilon > 0 and u[k] < p.epsilon:
            act = min(int(u[k] * (N_ACTIONS / p.epsilon)), N_ACTIONS - 1)
        else:
            act = 0
            for j in (1, 2):
                if row[j] > row[act]:
                    act = j
        acts[k] = act
        st = p.step * step_scale * (p.bias_step_scale if bias[k] else 1.0)
        if QUpdateForm(p.form) is QUpdateForm.MULTIPLICATIVE:
            theta[k] = theta[k] + (act - 1) * st * theta[k]
        else:
            theta[k] = theta[k] + (act - 1) * st
    loss = float(loss_fn(theta))
    r = 2 if loss < prev_loss else 0
    q_new = [list(row) for row in q]
    if p.train_policy:
        vmax = [max(row) for row in q]
        for k in range(n):
            a1_k, _, r1_k, _ = decode_state(s[k])
            s_next = 27 * acts[k] + 9 * a1_k + 3 * r + r1_k
            target = (r - 1) + p.gamma * vmax[s_next]
            cell = q_new[s[k]]
            if Aggregation(p.aggregation) is Aggregation.SEQUENTIAL:
                cell[acts[k]] += p.lr * (target - cell[acts[k]])
        if Aggregation(p.aggregation) is Aggregation.MEAN:
            for k_s, k_a in {(s[k], acts[k]) for k in range(n)}:
                a1_k, _, r1_k, _ = decode_state(k_s)
                target = (r - 1) + p.gamma * vmax[27 * k_a + 9 * a1_k + 3 * r + r1_k]
                q_new[k_s][k_a] += p.lr * (target - q_new[k_s][k_a])
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
                        gamma=float(params.gamma), lr=float(params.lr))
    meta = {"kind": "synaptic_q_policy", "bias_step_scale": float(params.bias_step_scale),
            "aggregation": params.aggregation.value}
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
                                aggregation=meta.get("aggregation", Aggregation.SEQUENTIAL.value))
            return torch.tensor(np.array(rule.q_table), dtype=torch.float32), params
    raise ValueError(f"{path}: no SynapticQ rule in any projection "
                     f"({[pr.name for pr in graph.projections]})")
