r"""Pure step functions of the plasticity rule kinds, and the one ``LOWERING`` table.

Shapes: ``x`` (presynaptic activity entering the synapse, ``out_pre[t - delay]``) ``(P, B, n_pre)``;
``y`` (postsynaptic output ``out_post[t]``) ``(P, B, n_post)``; weights and per-synapse state
``(P, B, n_post, n_pre)``; a modulator ``M`` ``(P, B, channels, size)``. Coefficient tensors are
either their IR shape (shared) or ``(P, 1, ...)`` (per individual); both broadcast.

Each ``<kind>_step(inputs, state, params) -> (out, new_state)`` returns the new weight (or, for
differentiable plasticity, the new Hebbian trace) and never writes into its inputs, so BPTT and ES
share them. The timing is the IR's (:mod:`plastix.ir.rules`): a rule at the end of step ``t`` sees
``x[t]``, ``y[t]`` and ``M[t]`` and produces ``W[t + 1]``; traces at ``t`` exclude step ``t``'s spike.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import torch

from ...ir import loihi_expr
from ...ir.counter_hash import stream_key
from ...ir.rules import ModulationMode, QAggregation, QUpdateForm, TraceKind
from . import synq as sq


def outer(post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    """``post[..., j] * pre[..., i]`` -> ``(..., n_post, n_pre)``."""
    return post.unsqueeze(-1) * pre.unsqueeze(-2)


class _MatVec(torch.autograd.Function):
    """``y[p, b] = w[p, b] x[p, b]`` for ``w`` ``(P, B or 1, n_post, n_pre)``, ``x`` ``(P, B, n_pre)``.

    Forward as row vectors, ``x^T w^T``: on CPU several times faster than the column form ``w x``
    (``(n_post, n_pre) @ (n_pre, 1)``). Backward writes ``dL/dw`` as an outer product in ``w``'s own
    layout: autograd's matmul backward would give it transposed (``(n_pre, n_post)`` strides), which
    slows every elementwise op of the rule's backward that reads it. Same values as ``w @ x`` up to
    float rounding (summation order). (``transpose(-1, -2)``, not ``.mT``: the ONNX exporter of
    :mod:`plastix.deploy` has no ``aten::mT``.)"""

    @staticmethod
    def forward(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if w.shape[1] == 1:  # one weight per individual (shared by its batch): (B, n_pre) @ (n_pre, n_post)
            return torch.matmul(x, w[:, 0].transpose(-1, -2))
        return torch.matmul(x.unsqueeze(-2), w.transpose(-1, -2)).squeeze(-2)  # one weight per batch element

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        w, x = ctx.saved_tensors
        per_batch = w.shape[1] == x.shape[1]
        gw = gx = None
        if ctx.needs_input_grad[0]:
            gw = outer(g, x) if per_batch else torch.matmul(g.transpose(-1, -2), x).unsqueeze(1)
        if ctx.needs_input_grad[1]:
            gx = torch.matmul(g.unsqueeze(-2), w).squeeze(-2) if per_batch else torch.matmul(g, w[:, 0])
        return gw, gx


def matvec(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_i w[..., j, i] x[..., i]`` for weights per batch element or per individual: ``w``
    ``(P, B, n_post, n_pre)`` or ``(P, 1, n_post, n_pre)``, ``x`` ``(P, B, n_pre)`` -> ``(P, B, n_post)``;
    other broadcastable shapes: a plain ``matmul``.

    Eager: :class:`_MatVec` when autograd records, its forward alone otherwise (no Function call
    overhead, ~25 us). Inside ``torch.compile`` (``jit=True``) the plain products (column form per
    batch element), from which inductor derives its own backward: with them the compiled BPTT of
    the locomotion networks measured 1.1-1.4x faster than with the row form or this Function."""
    if not (w.dim() == 4 and x.dim() == 3 and w.shape[0] == x.shape[0] and w.shape[1] in (1, x.shape[1])):
        return torch.matmul(w, x.unsqueeze(-1)).squeeze(-1)
    if torch.compiler.is_compiling():
        if w.shape[1] == 1:
            return torch.matmul(x, w[:, 0].transpose(-1, -2))
        return torch.matmul(w, x.unsqueeze(-1)).squeeze(-1)
    if torch.is_grad_enabled() and (w.requires_grad or x.requires_grad):
        return _MatVec.apply(w, x)
    return _MatVec.forward(w, x)


def advance_trace(tr: torch.Tensor, s: torch.Tensor, decay: float, kind: TraceKind, beta: float,
                  x_max: float, bound: Optional[float] = None) -> torch.Tensor:
    """Meta-SpikePropamine eq. 9 (linear) / eq. 10 (saturating): the trace of step ``t + 1``,
    saturated at ``bound`` if given (the rule's ``x_bound``)."""
    if kind == TraceKind.LINEAR:
        new = decay * tr + beta * s
    else:
        new = decay * tr + beta * (x_max - tr) * s
    return new if bound is None else new.clamp_max(bound)


# ---------------------------------------------------------------------------------------------
# differentiable plasticity (SpikePropamine): W_eff = W + alpha * E


class DPState(NamedTuple):
    e: torch.Tensor  # (P, B, n_post, n_pre) Hebbian trace
    acc_pre: torch.Tensor  # (P, B, n_pre) spike sum over the current interval
    acc_post: torch.Tensor  # (P, B, n_post)
    phi: torch.Tensor  # (P, B, n_pre) BCM sliding threshold (zeros for other kinds)


class DPParams(NamedTuple):
    kind: str  # hebbian_decay | oja | bcm
    eta: torch.Tensor
    interval: int
    clip: Optional[float]
    eta_phi: Optional[torch.Tensor] = None
    psi: Optional[torch.Tensor] = None


class _RankOneLerp(torch.autograd.Function):
    r"""``E' = clip(lerp(E, a b^T, eta))`` with ``a = post - E pre`` (Oja) or ``a = post``, ``b = pre``,
    for a scalar ``eta``: the E update of :func:`dp_step` with a backward written for its rank-one
    structure. Autograd's backward of ``outer``, ``lerp``, ``clamp`` (and Oja's ``E pre``) makes
    about 14 passes over the per-sample ``(n_post, n_pre)`` tensors; this one makes six:

    .. math::

        g_u = g \odot [|u| \le c],\quad g_a = \eta\, g_u b,\quad g_b = \eta\, g_u^\top a,\quad
        g_\eta = \textstyle\sum a^\top g_u b - \langle g_u, E\rangle,\quad
        g_E = (1 - \eta)\, g_u - [\text{Oja}]\, g_a\, pre^\top

    (``g_{post} = g_a``; Oja adds ``-E^\top g_a`` to ``g_{pre}``). Same values as the plain ops up to
    float rounding."""

    @staticmethod
    def forward(ctx: Any, e: torch.Tensor, post: torch.Tensor, pre: torch.Tensor, eta: torch.Tensor,
                clip: Optional[float], oja: bool) -> torch.Tensor:
        a = post - matvec(e, pre) if oja else post
        u = outer(a, pre)
        torch.lerp(e, u, eta, out=u)
        out = u if clip is None else u.clamp(-clip, clip)
        # the clamp's pass-through, 1.0 where u == clip(u), i.e. -c <= u <= c (a NaN u passes nothing, as in
        # autograd), as floats in u's buffer (a bool mask's where/mul measured 3x slower than this eq + mul)
        keep = None if clip is None else torch.eq(u, out, out=u)
        ctx.oja = oja
        ctx.save_for_backward(e, a, pre, eta, keep)
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        e, a, pre, eta, keep = ctx.saved_tensors
        gu = g if keep is None else g * keep
        gub = torch.matmul(gu, pre.unsqueeze(-1)).squeeze(-1)  # g_u b
        ga = eta * gub
        ge = gp = gq = geta = None
        if ctx.needs_input_grad[0]:
            if ctx.oja:  # (1 - eta) g_u - g_a pre^T in one pass
                n_post, n_pre = gu.shape[-2:]
                ge = torch.baddbmm(gu.reshape(-1, n_post, n_pre), ga.reshape(-1, n_post, 1), pre.reshape(-1, 1, n_pre),
                                   beta=1.0 - float(eta), alpha=-1.0).view(gu.shape)
            else:
                ge = gu * (1.0 - eta)
        if ctx.needs_input_grad[1]:
            gp = ga
        if ctx.needs_input_grad[2]:
            gq = eta * torch.matmul(a.unsqueeze(-2), gu).squeeze(-2)
            if ctx.oja:
                gq = gq - torch.matmul(ga.unsqueeze(-2), e).squeeze(-2)
        if ctx.needs_input_grad[3]:
            geta = ((a * gub).sum() - torch.dot(gu.reshape(-1), e.reshape(-1))).reshape(eta.shape)
        return ge, gp, gq, geta, None, None


def dp_step(inputs: tuple, state: DPState, p: DPParams) -> tuple[torch.Tensor, DPState]:
    """One step of :class:`plastix.ir.HebbianDecay` / :class:`plastix.ir.Oja` /
    :class:`plastix.ir.BCM` (SpikePropamine eqs. 10-14, neuromodulated eqs. 16-21).

    ``inputs = (x, y, m_post, t)``; ``m_post`` ``(P, B, n_post)`` or ``None`` (NDP replaces
    ``r_post`` by ``m_post * r_post``). Returns the new ``E``."""
    x, y, m_post, t = inputs
    acc_pre, acc_post = state.acc_pre + x, state.acc_post + y
    if (t + 1) % p.interval:
        return state.e, state._replace(acc_pre=acc_pre, acc_post=acc_post)
    r_pre, r_post = acc_pre / p.interval, acc_post / p.interval
    if m_post is not None:
        r_post = m_post * r_post
    e, phi = state.e, state.phi
    b = r_pre
    if p.kind == "bcm":
        b = r_pre * (r_pre - (phi + p.psi))
        phi = (1.0 - p.eta_phi) * phi + p.eta_phi * r_pre
    if (torch.is_grad_enabled() and not torch.compiler.is_compiling() and torch.is_tensor(p.eta) and p.eta.numel() == 1
            and e.shape[:-2] == r_post.shape[:-1] == b.shape[:-1]):  # eager BPTT: the rank-one backward
        e = _RankOneLerp.apply(e, r_post, b, p.eta, p.clip, p.kind == "oja")
        return e, DPState(e, torch.zeros_like(acc_pre), torch.zeros_like(acc_post), phi)
    if p.kind == "oja":
        hebb = outer(r_post - matvec(e, r_pre), r_pre)
    else:
        hebb = outer(r_post, b)
    if torch.compiler.is_compiling():  # inductor fuses this; its lerp decomposition measured slower
        e = (1.0 - p.eta) * e + p.eta * hebb
    else:  # eager: (1 - eta) E + eta hebb in one pass, forward and backward
        e = torch.lerp(e, hebb, p.eta)
    if p.clip is not None:
        e = e.clamp(-p.clip, p.clip)
    return e, DPState(e, torch.zeros_like(acc_pre), torch.zeros_like(acc_post), phi)


# ---------------------------------------------------------------------------------------------
# STDP (Meta-SpikePropamine)


class PairTraces(NamedTuple):
    x_pre: torch.Tensor  # (P, B, n_pre)
    x_post: torch.Tensor  # (P, B, n_post)


class TripletTraces(NamedTuple):
    x_pre: torch.Tensor
    x_post: torch.Tensor
    x_slow: torch.Tensor  # (P, B, n_post)
    x_slow_prev: torch.Tensor  # x_slow of the previous step


class STDPParams(NamedTuple):
    triplet: bool
    eta_plus: torch.Tensor
    eta_minus: torch.Tensor
    decay_pre: float
    decay_post: float
    mu: float
    w_min: Optional[float]
    w_max: Optional[float]
    hard_bounds: bool
    trace: TraceKind
    beta: float
    x_max: float
    x_bound: Optional[float] = None
    decay_slow: float = 0.0
    eta_pair: Any = 0.0
    includes_spike: bool = False  # LTP/LTD read the traces after this step's spikes (Loihi's convention)


def stdp_amplitudes(w: torch.Tensor, p: STDPParams) -> tuple[Any, Any]:
    """``A_+(W) = eta_+ (W_max - W)^mu``, ``A_-(W) = eta_- (W - W_min)^mu`` (eqs. 11-13); the
    bases are clamped at 0 so a weight outside the bounds gets no further push out."""
    if p.mu == 0.0:
        return p.eta_plus, p.eta_minus
    return (p.eta_plus * (p.w_max - w).clamp_min(0.0) ** p.mu,
            p.eta_minus * (w - p.w_min).clamp_min(0.0) ** p.mu)


def stdp_terms(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, tr: Any,
               p: STDPParams) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """LTP and LTD terms of :class:`plastix.ir.PairSTDP` / :class:`plastix.ir.TripletSTDP` at
    step ``t`` and the traces of step ``t + 1`` (which the terms read with ``includes_spike``)."""
    a_plus, a_minus = stdp_amplitudes(w, p)
    x_pre = advance_trace(tr.x_pre, x, p.decay_pre, p.trace, p.beta, p.x_max, p.x_bound)
    x_post = advance_trace(tr.x_post, y, p.decay_post, p.trace, p.beta, p.x_max, p.x_bound)
    pre_tr, post_tr = (x_pre, x_post) if p.includes_spike else (tr.x_pre, tr.x_post)
    if p.triplet:
        ltp = a_plus * outer(y, pre_tr) * (p.eta_pair + tr.x_slow_prev.unsqueeze(-1))
    else:
        ltp = a_plus * outer(y, pre_tr)
    ltd = a_minus * outer(post_tr, x)
    if p.triplet:
        x_slow = advance_trace(tr.x_slow, y, p.decay_slow, p.trace, p.beta, p.x_max, p.x_bound)
        return ltp, ltd, TripletTraces(x_pre, x_post, x_slow, tr.x_slow)
    return ltp, ltd, PairTraces(x_pre, x_post)


def apply_dw(w: torch.Tensor, dw: torch.Tensor, p: STDPParams, mask: Optional[torch.Tensor]) -> torch.Tensor:
    if mask is not None:
        dw = dw * mask
    w = w + dw
    if p.hard_bounds:
        w = w.clamp(p.w_min, p.w_max)
    return w


class STDPState(NamedTuple):
    w: torch.Tensor
    traces: Any


def stdp_step(inputs: tuple, state: STDPState, p: STDPParams,
              mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, STDPState]:
    """Pair / triplet STDP on ``W`` itself: ``W[t+1] = W[t] + LTP - LTD``."""
    x, y = inputs
    ltp, ltd, tr = stdp_terms(x, y, state.w, state.traces, p)
    w = apply_dw(state.w, ltp - ltd, p, mask)
    return w, STDPState(w, tr)


class EligibilityState(NamedTuple):
    e_plus: torch.Tensor
    e_minus: torch.Tensor
    traces: Any


def eligibility_step(inputs: tuple, state: EligibilityState, p: tuple,
                     keep: tuple = (1.0, 1.0)) -> tuple[tuple, EligibilityState]:
    """:class:`plastix.ir.EligibilityTrace` (eq. 16): returns ``(E_+[t], E_-[t])`` and the state with
    ``E_±[t+1] = gamma keep_± E_±[t] + LTP/LTD[t]``. ``inputs = (x, y, w)``, ``p = (gamma, stdp
    params)``; ``keep`` is the fraction of each trace the modulator leaves (ThreeFactor ``consume``)."""
    x, y, w = inputs
    gamma, sp = p
    ltp, ltd, tr = stdp_terms(x, y, w, state.traces, sp)
    return (state.e_plus, state.e_minus), EligibilityState(gamma * keep[0] * state.e_plus + ltp,
                                                           gamma * keep[1] * state.e_minus + ltd, tr)


def broadcast_modulation(m: torch.Tensor, mode: ModulationMode, n_post: int, n_pre: int) -> torch.Tensor:
    """One modulator channel ``(P, B, size)`` -> broadcastable to ``(P, B, n_post, n_pre)``."""
    if mode == ModulationMode.GLOBAL:
        return m[..., :1].unsqueeze(-1)
    if mode == ModulationMode.PER_POST:
        return m.unsqueeze(-1)
    if mode == ModulationMode.PER_PRE:
        return m.unsqueeze(-2)
    return m.reshape(*m.shape[:-1], n_post, n_pre)


class ThreeFactorState(NamedTuple):
    w: torch.Tensor
    inner: Any  # STDP traces, or an EligibilityState


class ThreeFactorParams(NamedTuple):
    mode: ModulationMode
    stdp: STDPParams
    gamma: Optional[torch.Tensor]  # set when the base is an eligibility trace
    consume: Optional[torch.Tensor] = None  # set when the modulator uses the trace up (IR ``consume`` != 0)


def three_factor_step(inputs: tuple, state: ThreeFactorState, p: ThreeFactorParams,
                      mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ThreeFactorState]:
    """:class:`plastix.ir.ThreeFactor` (eqs. 17-19): ``dW = m+ P - m- D`` (2 channels) or
    ``m (P - D)`` (1 channel). ``inputs = (x, y, M)`` or ``(x, y, M, C)`` with ``M`` (and the consuming
    modulator ``C``, IR ``consume_by``) ``(P, B, channels, size)``. With ``p.consume`` = c the traces
    keep ``max(0, 1 - c |c_±|)`` of themselves, ``c_±`` = ``C``'s channels or else ``m_±`` (the IR's doc)."""
    x, y, mod = inputs[:3]
    by = inputs[3] if len(inputs) > 3 else None
    w = state.w
    n_post, n_pre = w.shape[-2], w.shape[-1]
    m_pos = broadcast_modulation(mod[..., 0, :], p.mode, n_post, n_pre)
    m_neg = broadcast_modulation(mod[..., 1, :], p.mode, n_post, n_pre) if mod.shape[-2] == 2 else m_pos
    if p.gamma is not None:
        keep = (1.0, 1.0)
        if p.consume is not None:
            c_pos, c_neg = m_pos, m_neg
            if by is not None:
                c_pos = broadcast_modulation(by[..., 0, :], p.mode, n_post, n_pre)
                c_neg = broadcast_modulation(by[..., 1, :], p.mode, n_post, n_pre) if by.shape[-2] == 2 else c_pos
            keep = (torch.relu(1.0 - p.consume * c_pos.abs()), torch.relu(1.0 - p.consume * c_neg.abs()))
        (pos, neg), inner = eligibility_step((x, y, w), state.inner, (p.gamma, p.stdp), keep)
    else:
        pos, neg, inner = stdp_terms(x, y, w, state.inner, p.stdp)
    dw = m_pos * pos - m_neg * neg
    w = apply_dw(w, dw, p.stdp, mask)
    return w, ThreeFactorState(w, inner)


# ---------------------------------------------------------------------------------------------
# synaptic Q-learning (Bhargava et al. 2022)


class SynQState(NamedTuple):
    w: torch.Tensor  # (P, B, n_post, n_pre)
    q: torch.Tensor  # (P, B, 81, 3) the shared table (one copy per individual and batch element)
    a1: torch.Tensor  # (P, B, n_post, n_pre) long, last action in {0, 1, 2}
    a2: torch.Tensor  # action before
    r1: torch.Tensor  # (P, B) long, last shifted reward in {0, 1, 2}
    s: torch.Tensor  # (P, B, n_post, n_pre) long, state index of the last decision
    n: int  # decisions taken so far (the random stream's counter; TD needs n > 0)


class SynQParams(NamedTuple):
    step: float
    form: QUpdateForm
    epsilon: float
    gamma: float
    lr: float
    aggregation: QAggregation = QAggregation.MEAN
    seed: int = 0


def synq_step(inputs: tuple, state: SynQState, p: SynQParams, mask: Optional[torch.Tensor] = None,
              generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, SynQState]:
    """One decision of :class:`plastix.ir.SynapticQ` given ``reward`` ``(P, B)`` (reduced to its
    sign in {-1, 0, +1}): TD update of the table for the previous (state, action) of every synapse
    (paper eq. 7, ``p.aggregation``), then a new ε-greedy action per synapse and the weight step;
    the math is :mod:`plastix.backends.torch.synq`. Draw index of synapse k of individual i, batch
    element b: ``(i B + b) K + k`` (so ``P = B = 1`` matches the IR's row-major index). The stream
    is the rule's (``p.seed``); ``generator`` is not used. Runs without autograd."""
    (reward,) = inputs
    with torch.no_grad():
        lead = state.w.shape[:2]
        rs = sq.sign_index(reward).expand(lead)
        s_new = sq.encode_state(state.a1, state.a2, rs[..., None, None], state.r1[..., None, None])
        q = state.q
        tables = sq.make_tables(q.device, q.dtype)
        if state.n > 0:
            q = sq.td_update(q, state.s.reshape(*lead, -1), state.a1.reshape(*lead, -1), rs, lr=p.lr, gamma=p.gamma,
                             aggregation=p.aggregation, weights=mask, tables=tables)
        thr = sq.explore_threshold(p.epsilon)
        h = None
        if thr > 0:
            k = torch.arange(state.w.numel(), device=state.w.device).view(state.w.shape)
            h = sq.draws(stream_key(p.seed, state.n), k)
        a = sq.select_actions(q, s_new.reshape(*lead, -1), thr, None if h is None else h.reshape(*lead, -1))
        a = a.view(s_new.shape)
        w = sq.move(state.w, a, sq.step_table(p.step, state.w.dtype, state.w.device), p.form)
        if mask is not None:  # masked-out synapses never move
            w = torch.where(mask.bool(), w, state.w)
    return w, SynQState(w, q, a, state.a1, rs, s_new, state.n + 1)


# ---------------------------------------------------------------------------------------------
# generic Loihi learning-engine rules (float semantics of lava-nc 0.10.0)


class LoihiState(NamedTuple):
    w: torch.Tensor  # (P, B, n_post, n_pre)
    tag: torch.Tensor  # t (tag_1)
    dly: torch.Tensor  # d (tag_2)
    x: torch.Tensor  # (2, P, B, n_pre) x1, x2 at the start of the epoch
    y: torch.Tensor  # (3, P, B, n_post) y1, y2, y3 at the start of the epoch
    tx: torch.Tensor  # (P, B, n_pre) within-epoch time of the last pre spike (0 = none)
    ty: torch.Tensor  # (P, B, n_post)


class LoihiParams(NamedTuple):
    trees: tuple  # parsed dw, dt, dd (None where empty)
    x_imp: tuple
    x_decay: tuple
    y_imp: tuple
    y_decay: tuple
    t_epoch: int


def _product_dependency(prod: tuple) -> str:
    names = loihi_expr.variables(prod)
    if "x0" in names:
        return "x0"
    if "y0" in names:
        return "y0"
    return "u"


def loihi_step(inputs: tuple, state: LoihiState, p: LoihiParams) -> tuple[torch.Tensor, LoihiState]:
    """:class:`plastix.ir.LoihiRule` as Lava's ``floating_pt`` learning engine runs it.

    ``inputs = (x, y, third, t)``, ``third`` ``(P, B, n_post)`` or ``None`` (the modulator, which
    replaces ``y2``). Within an epoch the last spike time of every pre/post neuron is recorded
    (a repeated spike adds the impulse at once, as Lava does); at the epoch's end each trace's
    history ``h[k] = h[k-1] exp(-1/tau) + impulse [spike at k]`` is rebuilt, every product of a
    rule string is evaluated with traces sampled at its dependency (``x0``: the pre spike time;
    ``y0``: the post spike time; otherwise the epoch's end), ``u<k>`` is 1 on epochs whose index
    is a multiple of 2^k, and ``w``, ``t``, ``d`` move by the sums.

    With a third factor (Loihi3F + ThreeFactorLIF) the post neuron updates ``y1`` every step
    (``y1 <- exp(-1/tau) y1 + impulse s``, the two-factor history step) and the engine uses the
    ``y1``, ``y2`` it received last, undecayed, at every dependency: the same as the two-factor
    rule when ``t_epoch = 1``.
    """
    x, y, third, t = inputs
    k = (t % p.t_epoch) + 1
    sx, sy = x > 0, y > 0
    xs, ys = state.x, state.y
    multi_x = (state.tx > 0) & sx
    multi_y = (state.ty > 0) & sy
    if p.t_epoch > 1:  # a second spike within one epoch adds the impulse at once (Lava)
        xs = xs + torch.stack([multi_x.to(xs.dtype) * i for i in p.x_imp])
        if third is None:
            ys = ys + torch.stack([multi_y.to(ys.dtype) * i for i in p.y_imp])
    if third is not None:  # ThreeFactorLIF: y1 history step of this time step, y2 = the third factor
        y1 = ys[0] * p.y_decay[0] + sy.to(ys.dtype) * p.y_imp[0]
        ys = torch.stack([y1, third.expand_as(ys[1]), ys[2]])
    tx = torch.where(sx, torch.full_like(state.tx, k), state.tx)
    ty = torch.where(sy, torch.full_like(state.ty, k), state.ty)
    if (t + 1) % p.t_epoch:
        return state.w, LoihiState(state.w, state.tag, state.dly, xs, ys, tx, ty)
    hx, hy = [xs], [ys]
    xd = torch.tensor(p.x_decay, dtype=xs.dtype, device=xs.device).view(2, 1, 1, 1)
    yd = torch.tensor(p.y_decay, dtype=ys.dtype, device=ys.device).view(3, 1, 1, 1)
    xi = torch.tensor(p.x_imp, dtype=xs.dtype, device=xs.device).view(2, 1, 1, 1)
    yi = torch.tensor(p.y_imp, dtype=ys.dtype, device=ys.device).view(3, 1, 1, 1)
    for j in range(1, p.t_epoch + 1):
        hx.append(hx[-1] * xd + xi * (tx == j))
        hy.append(ys if third is not None else hy[-1] * yd + yi * (ty == j))  # 3F: received, undecayed
    hx_t, hy_t = torch.stack(hx), torch.stack(hy)  # (K+1, n_tr, P, B, n)
    gx = torch.gather(hx_t, 0, tx.long().expand(1, 2, *tx.shape)).squeeze(0)  # traces of pre i at tx_i
    gy = torch.gather(hy_t, 0, ty.long().expand(1, 3, *ty.shape)).squeeze(0)
    # x traces at the post spike times: (2, P, B, n_post, n_pre)
    idx = ty.long().unsqueeze(-1).expand(*ty.shape, xs.shape[-1])
    hx_exp = hx_t.unsqueeze(-2).expand(*hx_t.shape[:-1], ty.shape[-1], xs.shape[-1])
    x_at_y = torch.gather(hx_exp, 0, idx.expand(1, 2, *idx.shape)).squeeze(0)
    idy = tx.long().unsqueeze(-2).expand(*tx.shape[:-1], ys.shape[-1], tx.shape[-1])
    hy_exp = hy_t.unsqueeze(-1).expand(*hy_t.shape, xs.shape[-1])
    y_at_x = torch.gather(hy_exp, 0, idy.expand(1, 3, *idy.shape)).squeeze(0)
    x0 = (tx > 0).to(xs.dtype).unsqueeze(-2)
    y0 = (ty > 0).to(ys.dtype).unsqueeze(-1)
    epoch = (t + 1) // p.t_epoch
    common = {"x0": x0, "y0": y0, "w": state.w, "t": state.tag, "d": state.dly}
    for kk in range(10):
        common[f"u{kk}"] = 1.0 if epoch % (2 ** kk) == 0 else 0.0
    common["u"] = 1.0
    envs = {
        "x0": {**common, "x1": gx[0].unsqueeze(-2), "x2": gx[1].unsqueeze(-2),
               "y1": y_at_x[0], "y2": y_at_x[1], "y3": y_at_x[2]},
        "y0": {**common, "x1": x_at_y[0], "x2": x_at_y[1], "y1": gy[0].unsqueeze(-1),
               "y2": gy[1].unsqueeze(-1), "y3": gy[2].unsqueeze(-1)},
        "u": {**common, "x1": hx_t[-1, 0].unsqueeze(-2), "x2": hx_t[-1, 1].unsqueeze(-2),
              "y1": hy_t[-1, 0].unsqueeze(-1), "y2": hy_t[-1, 1].unsqueeze(-1), "y3": hy_t[-1, 2].unsqueeze(-1)},
    }
    new = []
    for tree, var in zip(p.trees, (state.w, state.tag, state.dly)):
        if tree is None:
            new.append(var)
            continue
        total = 0.0
        for sgn, prod in tree[1]:
            val = loihi_expr.evaluate(prod, envs[_product_dependency(prod)], sgn=torch.sign)
            total = total + val if sgn > 0 else total - val
        new.append(var + total)
    w, tag, dly = new
    w = w.expand_as(state.w)
    dly = dly.clamp_min(0.0).expand_as(state.dly)
    zx, zy = torch.zeros_like(tx), torch.zeros_like(ty)
    ys_end = hy_t[-1]
    return w, LoihiState(w, tag.expand_as(state.tag), dly, hx_t[-1], ys_end, zx, zy)


def trace_decay(tau: float) -> float:
    return math.exp(-1.0 / tau)
