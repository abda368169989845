"""Independent numpy reference of Lava's LIF + Dense semantics (from /work/shared/lava-notes.md).

Written from the notes, not from the backend: plastix step ``t`` = Lava time step ``t + 1``; every
projection delivers ``W out_pre[t]`` at step ``t + 1``; float LIF ``u = u(1-du) + a``,
``v = v(1-dv) + u + bias``, spike ``v > vth``, ``v = 0``; fixed LIF with 12-bit decays, ``a << 6``,
24-bit wrap of ``u``, saturation of ``v``, ``v > vth << 6``.
"""
from __future__ import annotations

import numpy as np

from plastix.ir import CubaLIF, Input, LIReadout


def _w(pr) -> np.ndarray:
    w = np.asarray(pr.weight, dtype=np.float64)
    if pr.sign is not None:
        w = np.where(pr.sign == 0, w, pr.sign * np.abs(w))
    if pr.mask is not None:
        w = w * pr.mask
    return w


def _scalar(a) -> float:
    return float(np.asarray(a).ravel()[0])


def _decay_fixed(x: np.ndarray, keep: int) -> np.ndarray:
    p = x * keep
    return np.sign(p) * (np.abs(p) >> 12)


def simulate(graph, inputs: dict, steps: int, precision: str) -> tuple[dict, dict]:
    """Outputs ``{name: (steps, size)}`` (spikes for LIF, v for LI in IR units) and final ``{pop.u, pop.v}``."""
    fixed = precision == "fixed"
    pops = {p.name: p for p in graph.populations}
    u = {n: np.zeros(p.size, dtype=np.int64 if fixed else np.float64) for n, p in pops.items()}
    v = {n: np.zeros(p.size, dtype=np.int64 if fixed else np.float64) for n, p in pops.items()}
    a = {n: np.zeros(p.size, dtype=np.int64 if fixed else np.float64) for n, p in pops.items()}
    rec = {n: np.zeros((steps, pops[n].size)) for n in graph.outputs}
    weights = {pr.name: _w(pr) for pr in graph.projections}
    history: list[dict] = []  # outputs of every past step, for delayed projections
    if fixed:
        weights = {k: np.round(w).astype(np.int64) for k, w in weights.items()}
    for t in range(steps):
        out = {}
        for n, p in pops.items():
            if isinstance(p, Input):
                out[n] = np.asarray(inputs[n][t], dtype=np.float64)
                continue
            du, dv = _scalar(p.du), _scalar(p.dv)
            bias = np.broadcast_to(np.asarray(p.bias, dtype=np.float64), (p.size,))
            if fixed:
                uu = _decay_fixed(u[n], 4096 - round(du * 4096)) + (a[n] << 6)
                uu = np.where(uu > 2 ** 23, uu - 2 ** 24, uu)
                uu = np.where(uu <= -(2 ** 23), uu + 2 ** 24, uu)
                vv = _decay_fixed(v[n], 4096 - round(dv * 4096)) + uu + np.round(bias * 64).astype(np.int64)
                vv = np.clip(vv, -(2 ** 23 - 1), 2 ** 23 - 1)
                vth = (round(_scalar(p.vth)) << 6) if isinstance(p, CubaLIF) else None
            else:
                uu = u[n] * (1 - du)
                uu = uu + a[n]
                vv = v[n] * (1 - dv) + uu + bias
                vth = _scalar(p.vth) if isinstance(p, CubaLIF) else None
            if isinstance(p, LIReadout):
                s = np.zeros(p.size, dtype=bool)
            else:
                s = vv > vth
            vv = np.where(s, 0, vv)
            u[n], v[n] = uu, vv
            out[n] = s.astype(np.float64) if isinstance(p, CubaLIF) else None
            if n in rec:
                rec[n][t] = s if isinstance(p, CubaLIF) else (vv / 64.0 if fixed else vv)
        for n in a:
            a[n] = np.zeros_like(a[n])
        history.append(out)
        for pr in graph.projections:
            if pr.delay > t:
                continue  # nothing has reached the synapse yet
            s = history[t - pr.delay][pr.pre].astype(bool)
            a[pr.post] = a[pr.post] + weights[pr.name][:, s].sum(axis=1)
    for n in graph.outputs:
        if isinstance(pops[n], Input):
            rec[n] = np.asarray(inputs[n][:steps], dtype=np.float64)
    state = {}
    for n, p in pops.items():
        if not isinstance(p, Input):
            state[f"{n}.u"], state[f"{n}.v"] = u[n].astype(np.float64), v[n].astype(np.float64)
    return rec, state


def simulate_plastic(graph, inputs: dict, steps: int) -> tuple[dict, dict]:
    """Float run with IR plasticity written from ir/rules.py: PairSTDP (additive, linear traces) and
    ThreeFactor(EligibilityTrace(PairSTDP)) with one-channel modulators read from Input populations.

    Returns outputs and the final plastic weights. Timing: during step t the projection uses W[t];
    at the end of step t the rule sees x[t], y[t], M[t] = Wm out_src[t-1] + b and makes W[t+1].
    """
    from plastix.ir import EligibilityTrace, PairSTDP, ThreeFactor

    pops = {p.name: p for p in graph.populations}
    mods = {m.name: m for m in graph.modulators}
    u = {n: np.zeros(p.size) for n, p in pops.items()}
    v = {n: np.zeros(p.size) for n, p in pops.items()}
    a = {n: np.zeros(p.size) for n, p in pops.items()}
    prev = {n: np.zeros(p.size) for n, p in pops.items()}
    w = {pr.name: _w(pr) for pr in graph.projections}
    st = {}
    for pr in graph.projections:
        if pr.rule is not None:
            st[pr.name] = dict(xpre=np.zeros(pr.n_pre), xpost=np.zeros(pr.n_post),
                               ep=np.zeros((pr.n_post, pr.n_pre)), em=np.zeros((pr.n_post, pr.n_pre)))
    rec = {n: np.zeros((steps, pops[n].size)) for n in graph.outputs}
    for t in range(steps):
        out = {}
        for n, p in pops.items():
            if isinstance(p, Input):
                out[n] = np.asarray(inputs[n][t], dtype=np.float64)
                continue
            uu = u[n] * (1 - _scalar(p.du))
            uu = uu + a[n]
            vv = v[n] * (1 - _scalar(p.dv)) + uu + np.broadcast_to(np.asarray(p.bias, dtype=np.float64), (p.size,))
            s = vv > _scalar(p.vth)
            v[n], u[n] = np.where(s, 0, vv), uu
            out[n] = s.astype(np.float64)
            if n in rec:
                rec[n][t] = s
        a = {n: np.zeros(p.size) for n, p in pops.items()}
        for pr in graph.projections:
            x = out[pr.pre]
            a[pr.post] = a[pr.post] + w[pr.name][:, x.astype(bool)].sum(axis=1)
            rule = pr.rule
            if rule is None:
                continue
            y = out[pr.post]
            stdp = rule if isinstance(rule, PairSTDP) else rule.base.base
            s_ = st[pr.name]
            ltp = stdp.eta_plus * np.outer(y, s_["xpre"])
            ltd = stdp.eta_minus * np.outer(s_["xpost"], x)
            if isinstance(rule, PairSTDP):
                w[pr.name] = w[pr.name] + ltp - ltd
            else:
                assert isinstance(rule, ThreeFactor) and isinstance(rule.base, EligibilityTrace)
                m = mods[rule.modulator]
                mval = float((np.asarray(m.weight) @ prev[m.source] + m.bias)[0])
                w[pr.name] = w[pr.name] + mval * (s_["ep"] - s_["em"])
                s_["ep"] = rule.base.gamma * s_["ep"] + ltp
                s_["em"] = rule.base.gamma * s_["em"] + ltd
            s_["xpre"] = stdp.decay_pre * s_["xpre"] + stdp.beta * x
            s_["xpost"] = stdp.decay_post * s_["xpost"] + stdp.beta * y
        prev = out
    return rec, {k: w[k] for k in st}
