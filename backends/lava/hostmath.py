"""Numpy math of the IR plasticity rules for host-emulated Lava synapses (no lava import).

Also the non-learning-engine synapses: :class:`~plastix.ir.rules.GatedSynapse` (a gated cell per
synapse, :class:`~plastix.ir.neurons.ENUCell` / ``GRUCell`` / ``LSTMCell``) and
:class:`~plastix.ir.rules.SynapticQ` (a shared tabular Q policy; reward = sign of the global
modulator; epsilon-greedy draws from the rule's counter-based stream, :mod:`plastix.ir.counter_hash`,
so exploration replays the torch backend's step for step). Implements :class:`plastix.ir.rules.PairSTDP`, :class:`~plastix.ir.rules.TripletSTDP`,
:class:`~plastix.ir.rules.EligibilityTrace` / :class:`~plastix.ir.rules.ThreeFactor` (global, per-post,
per-pre and per-synapse modulation, one or two channels) and the SpikePropamine rules
:class:`~plastix.ir.rules.HebbianDecay`, :class:`~plastix.ir.rules.Oja`, :class:`~plastix.ir.rules.BCM`,
following the equations and timing in their docstrings (ir/rules.py): during step ``t`` the synapse
projects ``x[t]`` with ``W[t]``; at the end of step ``t`` the rule sees ``x[t]``, ``y[t]`` and ``M[t]``
and computes ``W[t+1]``; traces at step ``t`` do not yet include step ``t``'s spikes.

State is a dict of arrays; :func:`rule_step` returns new arrays and never writes into its inputs.
Shapes: ``w`` ``(n_post, n_pre)``, ``x`` ``(n_pre,)``, ``y`` ``(n_post,)``, ``m`` ``(channels, size)``.
"""
from __future__ import annotations

import numpy as np

from plastix.ir import (BCM, EligibilityTrace, ENUCell, GatedSynapse, GRUCell, HebbianDecay, LSTMCell, ModulationMode,
                        Oja, PairSTDP, QAggregation, QUpdateForm, SynapticQ, ThreeFactor, TraceKind, TripletSTDP,
                        UnsupportedKindError)

from ..base import lookup_lowering
from plastix.ir.counter_hash import EXPLORE_BITS, explore_threshold, mix32, stream_key

__all__ = ["init_state", "rule_step", "effective_weight", "modulator_value", "project", "synapse_output",
           "cell_init", "cell_step", "sign_mask"]

_ACT = {"identity": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
        "relu": lambda z: np.maximum(z, 0.0)}


def modulator_value(mod: dict, src_prev: np.ndarray) -> np.ndarray:
    """``M = f(W out_src[t-1] + b)`` as ``(channels, size)``."""
    z = mod["weight"] @ np.asarray(src_prev, dtype=np.float64) + mod["bias"]
    return _ACT[mod["activation"]](z).reshape(mod["channels"], mod["size"])


def project(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``W x``, summed as Lava's ``Dense`` sums binary spikes (same float rounding)."""
    if np.all((x == 0) | (x == 1)):
        return w[:, x.astype(bool)].sum(axis=1)
    return w @ x


def _trace(rule, tr: np.ndarray, s: np.ndarray, decay: float) -> np.ndarray:
    if rule.trace == TraceKind.SATURATING:
        new = decay * tr + rule.beta * (rule.x_max - tr) * s
    else:
        new = decay * tr + rule.beta * s
    return new if rule.x_bound is None else np.minimum(new, rule.x_bound)


def _amps(rule, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = float(rule.mu)
    ep, em = np.asarray(rule.eta_plus, dtype=np.float64), np.asarray(rule.eta_minus, dtype=np.float64)
    if mu == 0.0:
        return np.broadcast_to(ep, w.shape), np.broadcast_to(em, w.shape)
    return ep * np.clip(rule.w_max - w, 0.0, None) ** mu, em * np.clip(w - rule.w_min, 0.0, None) ** mu


def _stdp_terms(rule, w, st, x, y):
    """(LTP, LTD) of an STDP rule at this step, and its advanced traces."""
    a_plus, a_minus = _amps(rule, w)
    new = {"x_pre": _trace(rule, st["x_pre"], x, rule.decay_pre),
           "x_post": _trace(rule, st["x_post"], y, rule.decay_post)}
    read = new if rule.trace_includes_spike else st  # Loihi's convention: the traces after this step's spikes
    ltd = a_minus * np.outer(read["x_post"], x)
    if isinstance(rule, TripletSTDP):
        slow_prev = st["x_slow_prev"]
        ltp = a_plus * np.outer(y, read["x_pre"]) * (np.asarray(rule.eta_pair, dtype=np.float64) + slow_prev[:, None])
        new["x_slow_prev"] = st["x_slow"]
        new["x_slow"] = _trace(rule, st["x_slow"], y, rule.decay_slow)
    else:
        ltp = a_plus * np.outer(y, read["x_pre"])
    return ltp, ltd, new


def _bounds(rule, w):
    if getattr(rule, "hard_bounds", False):
        return np.clip(w, rule.w_min, rule.w_max)
    return w


def _stdp_of(rule):
    base = rule
    while isinstance(base, (ThreeFactor, EligibilityTrace)):
        base = base.base
    return base


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _enu_init(cell, z) -> dict:
    return {"h": z(cell.memory), "o": z(cell.out_channels)}


def _gru_init(cell, z) -> dict:
    return {"h": z(cell.hidden)}


def _lstm_init(cell, z) -> dict:
    return {"h": z(cell.hidden), "c": z(cell.hidden)}


def _enu_step(cell, x: np.ndarray, st: dict) -> tuple[np.ndarray, dict]:
    h, o = st["h"], st["o"]
    parts = [h, o, x] if cell.feedback else [h, x]
    c = np.concatenate(parts, axis=-1)
    z = _sigmoid(c @ np.asarray(cell.w_z).T)
    r = _sigmoid(c @ np.asarray(cell.w_r).T)
    parts[0] = r * h
    h_tilde = np.tanh(np.concatenate(parts, axis=-1) @ np.asarray(cell.w_c).T)
    h = (1.0 - z) * h + z * h_tilde
    o = np.clip(h @ np.asarray(cell.w_o).T, 0.0, 1.0)
    return o, {"h": h, "o": o}


def _gates(cell, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (x @ np.asarray(cell.w_ih).T + np.asarray(cell.b_ih), h @ np.asarray(cell.w_hh).T + np.asarray(cell.b_hh))


def _gru_step(cell, x: np.ndarray, st: dict) -> tuple[np.ndarray, dict]:
    gi, gh = _gates(cell, x, st["h"])
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    h = (1.0 - z) * n + z * st["h"]
    return h @ np.asarray(cell.w_o).T + np.asarray(cell.b_o), {"h": h}


def _lstm_step(cell, x: np.ndarray, st: dict) -> tuple[np.ndarray, dict]:
    gi, gh = _gates(cell, x, st["h"])
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = _sigmoid(f) * st["c"] + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return h @ np.asarray(cell.w_o).T + np.asarray(cell.b_o), {"h": h, "c": c}


#: IR cell class -> (zero state, one step): the cells this backend emulates (equations in ir/neurons.py)
CELLS = {ENUCell: (_enu_init, _enu_step), GRUCell: (_gru_init, _gru_step), LSTMCell: (_lstm_init, _lstm_step)}


def cell_init(cell, lead: tuple) -> dict:
    """Zero state of a gated cell with leading dims ``lead``."""
    init, _ = lookup_lowering(CELLS, cell, "lava (host-emulated)")
    return init(cell, lambda n: np.zeros(lead + (n,)))


def cell_step(cell, x: np.ndarray, st: dict) -> tuple[np.ndarray, dict]:
    """One step of an IR gated cell, ``x`` ``(..., in_channels)``."""
    _, step = lookup_lowering(CELLS, cell, "lava (host-emulated)")
    return step(cell, x, st)


def synapse_output(rule, w: np.ndarray, st: dict, x: np.ndarray, sign=None, mask=None) -> tuple[np.ndarray, dict]:
    """The activation ``a`` the synapse sends for the next step, and its new state (gated synapses
    keep per-synapse cell state; every other rule projects ``sign_mask(W_eff) x``)."""
    if isinstance(rule, GatedSynapse):
        n_post, n_pre = w.shape
        xin = np.broadcast_to(np.asarray(x, dtype=np.float64).reshape(1, n_pre, 1), (n_post, n_pre, 1))
        z, cell_st = cell_step(rule.cell, xin, st["cell"])
        return (sign_mask(w, sign, mask)[..., None] * z).sum(axis=1)[:, 0], {**st, "cell": cell_st}
    return project(sign_mask(effective_weight(rule, w, st), sign, mask), x), st


def init_state(rule, n_post: int, n_pre: int, seed: int = 0) -> dict:
    z = np.zeros
    if isinstance(rule, GatedSynapse):
        return {"cell": cell_init(rule.cell, (n_post, n_pre))}
    if isinstance(rule, SynapticQ):
        ones = np.ones((n_post, n_pre), dtype=np.int64)
        return {"q": np.array(rule.q_table, dtype=np.float64), "a1": ones, "a2": ones, "r1": 1, "s": ones * 40,
                "n": 0}
    if isinstance(rule, (HebbianDecay, Oja, BCM)):
        st = {"e": z((n_post, n_pre)), "sum_pre": z(n_pre), "sum_post": z(n_post), "sum_mod": z(n_post)}
        if isinstance(rule, BCM):
            st["phi"] = z(n_pre)
        return st
    base = _stdp_of(rule)
    if not isinstance(base, (PairSTDP, TripletSTDP)):
        raise UnsupportedKindError(rule.kind, "lava (host-emulated)")
    full = lambda a, n: np.broadcast_to(np.asarray(a, dtype=np.float64), (n,)).copy()  # noqa: E731
    st = {"x_pre": full(base.x_pre_init, n_pre), "x_post": full(base.x_post_init, n_post)}
    if isinstance(base, TripletSTDP):
        st["x_slow"], st["x_slow_prev"] = z(n_post), z(n_post)
    if isinstance(rule, ThreeFactor) and isinstance(rule.base, EligibilityTrace):
        st["e_plus"], st["e_minus"] = z((n_post, n_pre)), z((n_post, n_pre))
    return st


def effective_weight(rule, w: np.ndarray, st: dict) -> np.ndarray:
    """The weight used for projection: ``W + alpha E`` for the SpikePropamine rules, else ``W``."""
    if isinstance(rule, (HebbianDecay, Oja, BCM)):
        return w + np.asarray(rule.alpha, dtype=np.float64) * st["e"]
    return w


def _broadcast_mod(mode: ModulationMode, m: np.ndarray, shape) -> np.ndarray:
    n_post, n_pre = shape
    if mode == ModulationMode.GLOBAL:
        return np.full(shape, float(m.ravel()[0]))
    if mode == ModulationMode.PER_POST:
        return np.broadcast_to(m.reshape(n_post, 1), shape)
    if mode == ModulationMode.PER_PRE:
        return np.broadcast_to(m.reshape(1, n_pre), shape)
    return m.reshape(shape)


def sign_mask(w: np.ndarray, sign: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
    """The weight in effect: ``where(sign == 0, W, sign |W|) * mask`` (ir/synapses.py)."""
    if sign is not None:
        w = np.where(sign == 0, w, sign * np.abs(w))
    if mask is not None:
        w = w * mask
    return w


def _apply_dw(stdp, w: np.ndarray, dw: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is not None:
        dw = dw * mask  # absent synapses do not learn
    return _bounds(stdp, w + dw)


def sign_clip(w: np.ndarray, sign: np.ndarray | None) -> np.ndarray:
    """A learned weight of a sign-constrained synapse stops at zero (ir/synapses.py)."""
    if sign is None:
        return w
    return w + sign * np.maximum(-sign * w, 0.0)


def rule_step(rule, w: np.ndarray, st: dict, x: np.ndarray, y: np.ndarray, m: np.ndarray | None,
              t: int, mask: np.ndarray | None = None, sign: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """``(W[t+1], state[t+1])`` from ``W[t]``, ``state[t]``, ``x[t]``, ``y[t]``, ``M[t]`` at plastix step ``t``.

    ``w`` is the plastic weight itself (the IR's ``weight`` field); sign and mask are applied on top
    when projecting (:func:`sign_mask`); masked-out synapses never change; a learned weight of a
    sign-constrained synapse is clipped at zero (:func:`sign_clip`)."""
    w_new, st = _rule_step(rule, w, st, x, y, m, t, mask)
    if isinstance(rule, (GatedSynapse, HebbianDecay, Oja, BCM)):
        return w_new, st
    return sign_clip(w_new, sign), st


def _rule_step(rule, w: np.ndarray, st: dict, x: np.ndarray, y: np.ndarray, m: np.ndarray | None,
               t: int, mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if isinstance(rule, GatedSynapse):
        return w, st
    if isinstance(rule, SynapticQ):
        return _synq_step(rule, w, st, m, mask)
    if isinstance(rule, (HebbianDecay, Oja, BCM)):
        return w, _dp_step(rule, st, x, y, m, t)
    if isinstance(rule, (PairSTDP, TripletSTDP)):
        ltp, ltd, new = _stdp_terms(rule, w, st, x, y)
        return _apply_dw(rule, w, ltp - ltd, mask), new
    if isinstance(rule, ThreeFactor):
        base = rule.base
        stdp = _stdp_of(rule)
        ltp, ltd, new = _stdp_terms(stdp, w, st, x, y)
        if m is None:
            raise ValueError("three-factor rule without a modulator value")
        m_pos = _broadcast_mod(rule.mode, m[0], w.shape)
        m_neg = _broadcast_mod(rule.mode, m[1], w.shape) if m.shape[0] == 2 else m_pos
        if isinstance(base, EligibilityTrace):
            gamma = np.asarray(base.gamma, dtype=np.float64)
            p, d = st["e_plus"], st["e_minus"]
            c = np.asarray(rule.consume, dtype=np.float64)  # the modulator uses the trace up (IR doc)
            new["e_plus"] = gamma * np.maximum(0.0, 1.0 - c * np.abs(m_pos)) * p + ltp
            new["e_minus"] = gamma * np.maximum(0.0, 1.0 - c * np.abs(m_neg)) * d + ltd
        else:
            p, d = ltp, ltd
        return _apply_dw(stdp, w, m_pos * p - m_neg * d, mask), new
    raise UnsupportedKindError(rule.kind, "lava (host-emulated)")


def _dp_step(rule, st: dict, x, y, m, t: int) -> dict:
    new = dict(st)
    new["sum_pre"] = st["sum_pre"] + x
    new["sum_post"] = st["sum_post"] + y
    if (t + 1) % rule.interval:
        return new
    r_pre = new["sum_pre"] / rule.interval
    r_post = new["sum_post"] / rule.interval
    if rule.modulator is not None and m is not None:
        r_post = m.reshape(-1) * r_post
    eta = np.asarray(rule.eta, dtype=np.float64)
    e = st["e"]
    if isinstance(rule, HebbianDecay):
        e = (1 - eta) * e + eta * np.outer(r_post, r_pre)
    elif isinstance(rule, Oja):
        e = (1 - eta) * e + eta * np.outer(r_post - e @ r_pre, r_pre)
    else:
        r_beta = r_pre * (r_pre - (st["phi"] + np.asarray(rule.psi, dtype=np.float64)))
        e = (1 - eta) * e + eta * np.outer(r_post, r_beta)
        eta_phi = np.asarray(rule.eta_phi, dtype=np.float64)
        new["phi"] = (1 - eta_phi) * st["phi"] + eta_phi * r_pre
    if rule.clip is not None:
        e = np.clip(e, -rule.clip, rule.clip)
    new["e"] = e
    new["sum_pre"] = np.zeros_like(st["sum_pre"])
    new["sum_post"] = np.zeros_like(st["sum_post"])
    return new


def _synq_step(rule, w: np.ndarray, st: dict, m, mask=None) -> tuple[np.ndarray, dict]:
    """One decision of every synapse (Bhargava et al. 2022; numpy twin of
    ``plastix.backends.torch.synq``): TD update of the shared table for each synapse's previous
    (state, action), combined per cell as ``rule.aggregation`` says, then epsilon-greedy actions
    from the rule's stream and the weight move. Without a modulator there is no reward and nothing
    changes."""
    if m is None:
        return w, st
    r = int(np.sign(float(np.asarray(m).ravel()[0]))) + 1
    s_new = 27 * st["a1"] + 9 * st["a2"] + 3 * r + st["r1"]
    q = st["q"]
    if st["n"] > 0:
        s_prev, a_prev = st["s"].ravel(), st["a1"].ravel()
        # every synapse of a cell shares one target T (its next state depends on (s, a, r) only)
        target = (r - 1) + rule.gamma * q[27 * a_prev + 9 * (s_prev // 27) + 3 * r + (s_prev // 3) % 3].max(axis=1)
        t_cell = np.zeros(243)
        t_cell[s_prev * 3 + a_prev] = target
        present = np.ones(s_prev.shape) if mask is None else np.asarray(mask, dtype=np.float64).ravel()
        counts = np.bincount(s_prev * 3 + a_prev, weights=present, minlength=243)  # absent synapses do not vote
        q_flat = q.ravel()
        if rule.aggregation == QAggregation.SEQUENTIAL:  # n in-place updates: T + (1 - lr)^n (Q - T)
            q = t_cell + (1.0 - rule.lr) ** counts * (q_flat - t_cell)
        else:  # their mean once
            q = q_flat + rule.lr * (counts > 0) * (t_cell - q_flat)
        q = q.reshape(81, 3)
    a = q[s_new.ravel()].argmax(axis=1)
    thr = explore_threshold(rule.epsilon)
    if thr > 0:
        v = mix32(np.arange(a.size, dtype=np.int64) ^ stream_key(rule.seed, st["n"])) >> (32 - EXPLORE_BITS)
        a = np.where(v < thr, v * 3 // thr, a)
    a = a.reshape(w.shape)
    dw = (a - 1) * rule.step
    if rule.form == QUpdateForm.MULTIPLICATIVE:
        dw = dw * w
    if mask is not None:
        dw = dw * mask
    return w + dw, {**st, "q": q, "a1": a, "a2": st["a1"], "r1": r, "s": s_new, "n": st["n"] + 1}
