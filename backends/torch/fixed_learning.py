r"""Lava's fixed-point learning engine (``PyLearningDenseModelBitApproximate``, lava-nc 0.10.0), bit-exact.

Emulates ``LearningConnectionModelBitApproximate`` (``lava/magma/core/model/py/connection.py``) and
``LearningRuleApplierBitApprox`` (``lava/magma/core/learning/learning_rule_applier.py``) on int64
tensors with leading ``(P, B)`` dimensions; every individual and batch element is an independent
Lava network with the same ``rng_seed``. See ``/work/shared/lava-notes.md`` ("Learning semantics").

Per Lava time step ``tau`` (= plastix step ``t + 1``), after the post neurons spiked:

* pre / post spikes record their within-epoch time ``k = tau mod t_epoch`` (``t_epoch`` if 0) in
  ``tx`` / ``ty``; a second spike within an epoch adds the impulse at once (``x``: random 0,
  ``y``: the impulse random of the step);
* three-factor rules take ``y1`` (post trace), ``y2`` (third factor) from the post neuron
  (:class:`~plastix.backends.lava.procs.three_factor_lif.ThreeFactorLIF`: ``y1 <- clip(floor(y1
  e^{-1/tau_y1} + imp s), 0, 127)``, ``y2 = clip(modulator Dense output, -128, 127)``);
* at ``tau mod t_epoch = 0`` the trace histories ``h[k] = sround(h[k-1] e^{-1/tau}) (+ sround(imp)
  if spike at k, clip 0..127)`` are rebuilt, each product ``m 2^(e-7) dep prod(clip(f))`` of
  ``dw``/``dt``/``dd`` is accumulated in 16-bit fixed point (int32 products, ``>> max(0, widths
  + 4 - 15)``, ``<< e``, saturating), the synaptic variable (``<< 7`` in the accumulator) is
  rounded stochastically back to 8 bits and saturated (weights by sign mode, tag ``-257..255``,
  delay ``0..255``); traces move to the epoch's end, spike times reset.

Stochastic rounding uses one random number per stream and step, shared by all synapses, from
numpy ``default_rng`` streams seeded ``rng_seed .. rng_seed + 3`` (pre/post trace decay and impulse,
advanced twice per step) and seed 2 (synaptic variables, advanced once per epoch): Lava's
``TraceRandom`` / ``ConnVarRandom``. :class:`EngineRandom` draws the same streams in blocks (a block
draw equals Lava's one-at-a-time draws). Trace decay factors are computed with numpy's ``exp``
exactly as Lava does; everything per step is torch integer / float64 arithmetic (IEEE, exact
replay on any device; do not run it under a compiler that fuses multiply-adds).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from ...ir.loihi_expr import LavaProduct, lava_products

__all__ = ["EngineParams", "EngineRandom", "EngineState", "engine_params", "engine_init", "engine_step",
           "engine_activation"]

W_TRACE_MAX = 127  # 7-bit traces
W_ACC = 15  # unsigned accumulator width
ACC_LO, ACC_HI = -(2 ** W_ACC) - 1, 2 ** W_ACC - 1
SYN_SHIFT = 7  # W_ACCUMULATOR_S - W_SYN_VAR_S = 16 - 9 for weights, tag_1, tag_2
WIDTH = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9, "d": 9, "t": 9}
TARGETS = (("dw", "w"), ("dd", "d"), ("dt", "t"))
MIXED, EXCITATORY, INHIBITORY = 1, 2, 3


class EngineParams(NamedTuple):
    kind: str  # "2f" | "3f"
    products: tuple  # ((syn var "w"|"d"|"t", (LavaProduct, ...)), ...) for the non-empty strings
    x_decay: torch.Tensor  # float64 (2, 1, 1, 1): e^{-1/tau} as numpy computes it, 0 where tau = 0
    y_decay: torch.Tensor  # float64 (3, 1, 1, 1)
    x_imp: tuple  # (int part, frac part in 1/256) per x trace
    y_imp: tuple
    t_epoch: int
    rng_seed: int
    decimate: Optional[int]
    sign_mode: int
    post_trace: tuple  # 3F: (y1 impulse, y1 decay) of ThreeFactorLIF


class EngineState(NamedTuple):
    w: torch.Tensor  # int64 (P, B, n_post, n_pre) 8-bit weights
    tag: torch.Tensor  # tag_1 (t)
    dly: torch.Tensor  # tag_2 (d)
    x: torch.Tensor  # int64 (2, P, B, n_pre) x1, x2 at the epoch's start
    y: torch.Tensor  # int64 (3, P, B, n_post) y1, y2, y3
    tx: torch.Tensor  # int64 (P, B, n_pre) within-epoch time of the last pre spike, 0 = none
    ty: torch.Tensor  # int64 (P, B, n_post)
    ypost: torch.Tensor  # int64 (P, B, n_post) ThreeFactorLIF's y1 (3F only)


def _decompose(imp: float) -> tuple[int, int]:
    """``_decompose_impulses``: integer part and fraction in 1/256 (W_TRACE_FRACTIONAL_PART = 8)."""
    i = np.floor(np.array([imp], dtype=np.float64))
    return int(i[0]), int(np.round((np.array([imp]) - i) * 2 ** 8)[0])


def _decays(taus: list, device: Any) -> torch.Tensor:
    """``np.exp(-1 / taus)`` of the traces with ``tau != 0`` (Lava's ``_decay_trace``), 0 otherwise."""
    taus_a = np.array(taus)
    out = np.zeros(len(taus))
    nz = taus_a != 0
    if nz.any():
        out[nz] = np.exp(-1 / taus_a[nz][:, np.newaxis])[:, 0]
    return torch.as_tensor(out, dtype=torch.float64, device=device).view(-1, 1, 1, 1)


def engine_params(engine: dict, *, sign_mode: int = MIXED, device: Any = None, node: str = "rule") -> EngineParams:
    """Parameters of one learning-engine projection from the dict of
    :func:`plastix.backends.learning_engine.engine_rule` (as the Lava lowering builds its
    ``Loihi2FLearningRule`` / ``Loihi3FLearningRule``)."""
    prods = []
    decs = set()
    for fld, var in TARGETS:
        text = engine.get(fld) or " "
        ps = lava_products(text, node, fld)
        if ps:
            for p in ps:
                for f in p.factors:
                    if f.var not in WIDTH:
                        raise ValueError(f"{node}.{fld}: factor {f.var!r} is not a Loihi learning-engine variable")
                if p.decimate is not None:
                    decs.add(p.decimate)
            prods.append((var, ps))
    if len(decs) > 1:
        raise ValueError(f"{node}: u<k> terms with different k (Lava allows one decimation exponent)")
    kind = engine["kind"]
    if kind == "3f":  # Loihi3FLearningRule: y traces from the neuron, tau 2^16 - 1, impulse 0
        y_taus, y_imps = [np.iinfo(np.uint16).max] * 3, [0.0] * 3
        post = (float(engine["y1_impulse"]), float(np.exp(-1.0 / float(engine["y1_tau"]))))
    else:  # Loihi2FLearningRule(y1_impulse, y1_tau): y2, y3 impulse 0, tau 0
        y_taus, y_imps = [engine["y1_tau"], 0.0, 0.0], [engine["y1_impulse"], 0.0, 0.0]
        post = (0.0, 0.0)
    return EngineParams(kind, tuple(prods), _decays([engine["x1_tau"], engine["x2_tau"]], device),
                        _decays(y_taus, device), tuple(_decompose(float(i)) for i in (engine["x1_impulse"],
                                                                                      engine["x2_impulse"])),
                        tuple(_decompose(float(i)) for i in y_imps), int(engine["t_epoch"]),
                        int(engine["rng_seed"]), next(iter(decs), None), int(sign_mode), post)


class EngineRandom:
    """Lava's random streams of one learning projection, drawn in blocks on demand.

    Index ``n`` of a stream is its value after ``n`` advances: trace streams are advanced twice
    per time step (``recv_traces``), the synaptic stream once per epoch (``run_lrn``)."""

    def __init__(self, rng_seed: int) -> None:
        self._gens = [np.random.default_rng(rng_seed + i) for i in range(4)] + [np.random.default_rng(2)]
        self._data: list[list] = [[], [], [], [], []]
        self._floats = (True, False, True, False, True)  # x decay, x impulse, y decay, y impulse, syn

    def _grow(self, n: int) -> None:
        k = max(n + 1, 2 * len(self._data[0]), 256) - len(self._data[0])
        for i, g in enumerate(self._gens):
            vals = g.random(k) if self._floats[i] else g.integers(0, 2 ** 7, size=k, dtype=int)
            self._data[i].extend(vals.tolist())

    def get(self, stream: int, n: int) -> Any:
        """Value ``n`` of stream ``0..4`` (x decay, x impulse, y decay, y impulse, synaptic)."""
        if n >= len(self._data[stream]):
            self._grow(n)
        return self._data[stream][n]


def engine_init(w0: torch.Tensor, P: int, B: int, n_post: int, n_pre: int) -> EngineState:
    """Initial state: ``w0`` (int64 ``(n_post, n_pre)``, already truncated as Lava does at step 1)."""
    dev = w0.device
    z = lambda *s: torch.zeros(*s, dtype=torch.int64, device=dev)  # noqa: E731
    w = w0.expand(P, B, n_post, n_pre).clone()
    return EngineState(w, z(P, B, n_post, n_pre), z(P, B, n_post, n_pre), z(2, P, B, n_pre), z(3, P, B, n_post),
                       z(P, B, n_pre), z(P, B, n_post), z(P, B, n_post))


def engine_activation(x: torch.Tensor, st: EngineState) -> torch.Tensor:
    """Dense output ``W s`` (weight_exp 0) of the pre spikes ``x`` (int64 ``(P, B, n_pre)``)."""
    return (st.w * x.unsqueeze(-2)).sum(-1)


def _sround_decay(h: torch.Tensor, decay: torch.Tensor, r: float) -> torch.Tensor:
    """``_decay_trace``: ``v = e^{-1/tau} h``; ``floor(v) + (r < frac(v))``."""
    v = decay * h.to(torch.float64)
    f = torch.floor(v)
    return (f + (v - f > r).to(torch.float64)).to(torch.int64)


def _imp_add(imps: tuple, r: int, device: Any) -> torch.Tensor:
    """Per-trace integer added by ``_add_impulse`` for random ``r``: ``int + (r < frac)``."""
    return torch.tensor([i + int(r < f) for i, f in imps], dtype=torch.int64, device=device).view(-1, 1, 1, 1)


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """int32 two's-complement wrap-around of an int64 tensor (numpy int32 ``*=`` / ``<<``)."""
    return ((x + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31


def _sround_syn(acc: torch.Tensor, r: float) -> torch.Tensor:
    """``_stochastic_round_synaptic_variable`` then ``>> 7``: ``floor(acc / 128) + (r < frac)``."""
    return (acc >> SYN_SHIFT) + ((acc & (2 ** SYN_SHIFT - 1)) > math.floor(r * 2 ** SYN_SHIFT)).to(torch.int64)


def engine_step(x: torch.Tensor, s_post: torch.Tensor, third: Optional[torch.Tensor], tau: int, st: EngineState,
                p: EngineParams, rnd: EngineRandom) -> EngineState:
    """One Lava time step ``tau`` (1-based) of the learning engine: ``recv_traces`` and, at the end
    of an epoch, ``run_lrn``. ``x`` / ``s_post``: this step's pre / post spikes (P, B, n);
    ``third``: the third factor delivered this step (3F), int64 (P, B, n_post)."""
    sx, sy = x > 0, s_post > 0
    k = tau % p.t_epoch or p.t_epoch
    xs, ys = st.x, st.y
    dev = xs.device
    if p.t_epoch > 1:  # a repeated spike within one epoch adds the impulse at once
        multi_x = (st.tx > 0) & sx
        xs = torch.where(multi_x, (xs + _imp_add(p.x_imp, 0, dev)).clamp(0, W_TRACE_MAX), xs)
        if p.kind == "2f":
            multi_y = (st.ty > 0) & sy
            ys = torch.where(multi_y, (ys + _imp_add(p.y_imp, rnd.get(3, 2 * tau - 1), dev)).clamp(0, W_TRACE_MAX), ys)
    tx = torch.where(sx, k, st.tx)
    ty = torch.where(sy, k, st.ty)
    ypost = st.ypost
    if p.kind == "3f":
        imp, dec = p.post_trace
        yv = ypost.to(torch.float64) * dec + imp * sy.to(torch.float64)
        ypost = torch.floor(yv).clamp(0, W_TRACE_MAX).to(torch.int64)
        y2 = third.clamp(-128, 127) if third is not None else torch.zeros_like(ypost)
        ys = torch.stack((ypost, y2, torch.zeros_like(ypost)))
    if tau % p.t_epoch:
        return EngineState(st.w, st.tag, st.dly, xs, ys, tx, ty, ypost)
    return _learn(xs, ys, tx, ty, tau, st._replace(ypost=ypost), p, rnd)


def _learn(xs: torch.Tensor, ys: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, tau: int, st: EngineState,
           p: EngineParams, rnd: EngineRandom) -> EngineState:
    """``run_lrn``: trace histories, product series, stochastic rounding, saturation."""
    dev = xs.device
    n = 2 * tau
    rx, ry = rnd.get(0, n), rnd.get(2, n)
    ix, iy = _imp_add(p.x_imp, rnd.get(1, n), dev), _imp_add(p.y_imp, rnd.get(3, n), dev)
    rs = rnd.get(4, tau // p.t_epoch)
    hx, hy = [xs], [ys]
    for j in range(1, p.t_epoch + 1):
        ax, ay = _sround_decay(hx[-1], p.x_decay, rx), _sround_decay(hy[-1], p.y_decay, ry)
        hx.append(torch.where(tx == j, (ax + ix).clamp(0, W_TRACE_MAX), ax))
        hy.append(torch.where(ty == j, (ay + iy).clamp(0, W_TRACE_MAX), ay))
    x0, y0 = tx > 0, ty > 0
    u = 0
    if p.decimate is not None:
        u = 1 if int(tau / p.t_epoch) % 2 ** p.decimate == 0 else 0
    cache: dict = {}

    def trace(var: str, dep: str) -> torch.Tensor:
        key = (var, dep)
        if key in cache:
            return cache[key]
        is_x = var[0] == "x"
        i = int(var[1]) - 1
        hist = hx if is_x else hy
        if dep == "u":
            v = hist[-1][i]
        else:
            idx = tx if dep == "x0" else ty
            if p.t_epoch == 1:
                a, b = hist[0][i], hist[1][i]
            if (dep == "x0") == is_x:  # own trace at own spike time
                v = torch.where(idx == 1, b, a) if p.t_epoch == 1 else \
                    torch.stack([h[i] for h in hist], -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
            else:  # the other side's trace at this side's spike times: (P, B, n_post, n_pre)
                if dep == "x0":  # y_j at tx_i
                    if p.t_epoch == 1:
                        v = torch.where((idx == 1).unsqueeze(-2), b.unsqueeze(-1), a.unsqueeze(-1))
                    else:
                        hs = torch.stack([h[i] for h in hist], -1)  # (P, B, n_post, K+1)
                        g = idx.unsqueeze(-2).expand(*hs.shape[:-1], idx.shape[-1])
                        v = hs.gather(-1, g)
                else:  # x_i at ty_j
                    if p.t_epoch == 1:
                        v = torch.where((idx == 1).unsqueeze(-1), b.unsqueeze(-2), a.unsqueeze(-2))
                    else:
                        hs = torch.stack([h[i] for h in hist], -1).unsqueeze(-3)  # (P, B, 1, n_pre, K+1)
                        hs = hs.expand(*idx.shape, hs.shape[-2], hs.shape[-1])
                        v = hs.gather(-1, idx[..., None, None].expand(*idx.shape, hs.shape[-2], 1)).squeeze(-1)
        v = _orient(v, var, dep)
        cache[key] = v
        return v

    syn = {"w": st.w, "t": st.tag, "d": st.dly}
    deps = {"x0": x0.unsqueeze(-2).to(torch.int64), "y0": y0.unsqueeze(-1).to(torch.int64)}
    new = dict(syn)
    for var, prods in p.products:
        acc = syn[var] << SYN_SHIFT
        for prod in prods:
            acc = (acc + _product(prod, deps, u, trace, syn)).clamp(ACC_LO, ACC_HI)
        if var == "w":
            if p.sign_mode == EXCITATORY:
                acc = acc.clamp_min(0)
            elif p.sign_mode == INHIBITORY:
                acc = acc.clamp_max(0)
        elif var == "d":
            acc = acc.clamp_min(0)
        val = _sround_syn(acc, rs)
        if var == "w":
            lo, hi = {MIXED: (-256, 255), EXCITATORY: (0, 255), INHIBITORY: (-255, 0)}[p.sign_mode]
        elif var == "t":
            lo, hi = -257, 255
        else:
            lo, hi = 0, 255
        new[var] = val.clamp(lo, hi)
    zx, zy = torch.zeros_like(tx), torch.zeros_like(ty)
    y_end = hy[-1] if p.kind == "2f" else ys
    return EngineState(new["w"], new["t"], new["d"], hx[-1], y_end, zx, zy, st.ypost)


def _orient(v: torch.Tensor, var: str, dep: str) -> torch.Tensor:
    """Broadcast a trace to ``(P, B, n_post, n_pre)``: pre traces as ``(.., 1, n_pre)``, post
    traces as ``(.., n_post, 1)`` unless already a full matrix."""
    if v.dim() == 4:
        return v
    return v.unsqueeze(-2) if var[0] == "x" else v.unsqueeze(-1)


def _product(prod: LavaProduct, deps: dict, u: int, trace: Any, syn: dict) -> torch.Tensor:
    """``LearningRuleApplierBitApprox.apply`` for one product (int32 arithmetic emulated)."""
    width = 4  # W_S_MANT
    bound = 8
    cur: Any = deps[prod.dependency] if prod.dependency != "u" else u
    for f in prod.factors:
        wd = WIDTH[f.var]
        width += wd
        c = f.const or 0
        if f.var in ("x0", "y0"):
            val = deps[f.var] + c
        elif f.var in syn:
            val = syn[f.var] + c
            if f.sgn:
                val = torch.sign(val)
        else:
            val = trace(f.var, prod.dependency) + c
        val = val.clamp(-(2 ** wd), 2 ** wd - 1)
        bound *= 2 ** wd
        cur = cur * val
        if bound >= 2 ** 31:
            cur = _wrap32(cur)
    cur = cur * prod.mantissa
    if bound >= 2 ** 31:
        cur = _wrap32(cur)
    shift = max(0, width - W_ACC)
    if not torch.is_tensor(cur):  # a product of constants and u only
        cur = torch.tensor(cur, dtype=torch.int64)
    cur = cur >> shift
    if (bound >> shift) << prod.exp >= 2 ** 31:
        cur = _wrap32(cur << prod.exp)
    else:
        cur = cur << prod.exp
    return cur.clamp(ACC_LO, ACC_HI)

