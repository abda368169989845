r"""Lava's fixed-point learning engine (``PyLearningDenseModelBitApproximate``, lava-nc 0.10.0), bit-exact.

Emulates ``LearningConnectionModelBitApproximate`` (``lava/magma/core/model/py/connection.py``) and
``LearningRuleApplierBitApprox`` (``lava/magma/core/learning/learning_rule_applier.py``) on int64
tensors with leading ``(P, B)`` dimensions; every individual and batch element is an independent
Lava network with the same ``rng_seed``. See ``/work/shared/lava-notes.md`` ("Learning semantics").

Per Lava time step ``tau`` (= plastix step ``t + 1``), after the post neurons spiked:

* pre / post spikes record their within-epoch time ``k = tau mod t_epoch`` (``t_epoch`` if 0) in
  ``tx`` / ``ty``; a second spike within an epoch adds the impulse at once (``x``: random 0,
  ``y``: the impulse random of the step);
* three-factor rules take ``y1`` (post trace), ``y2`` / ``y3`` (third factors) from the post neuron
  (:class:`~plastix.backends.lava.procs.three_factor_lif.ThreeFactorLIF`: ``y1`` updated as the
  two-factor engine updates its own ``y1`` in a one-step epoch, with the y random streams;
  ``y2``, ``y3`` = modulator Dense outputs clipped to -128..127) and leave them undecayed (y taus inf);
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
exactly as Lava does (numpy, once) and tabulated for every 8-bit trace value, so the per-step work
is integer tensor arithmetic, table look-ups and comparisons with the step's random number (exact
on any device, and safe under compilers that would fuse floating-point multiply-adds). Synaptic
matrices are int32 like Lava's; products whose bound exceeds int32 are wrapped as numpy's int32
``*=`` does.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from ...ir.loihi_expr import LavaProduct, lava_products

__all__ = ["EngineParams", "EngineRule", "EngineState", "engine_params", "engine_init", "engine_step",
           "engine_activation"]

W_TRACE_MAX = 127  # 7-bit traces
W_ACC = 15  # unsigned accumulator width
ACC_LO, ACC_HI = -(2 ** W_ACC) - 1, 2 ** W_ACC - 1
SYN_SHIFT = 7  # W_ACCUMULATOR_S - W_SYN_VAR_S = 16 - 9 for weights, tag_1, tag_2
WIDTH = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9, "d": 9, "t": 9}
TARGETS = (("dw", "w"), ("dd", "d"), ("dt", "t"))
MIXED, EXCITATORY, INHIBITORY = 1, 2, 3
_SYN_RANGE = {"t": (-257, 255), "d": (0, 255)}
_W_RANGE = {MIXED: (-256, 255), EXCITATORY: (0, 255), INHIBITORY: (-255, 0)}


class EngineParams(NamedTuple):
    kind: str  # "2f" | "3f"
    products: tuple  # ((syn var "w"|"d"|"t", (LavaProduct, ...)), ...) for the non-empty strings
    x_tab: np.ndarray  # (2, 2, 256): floor and frac of e^{-1/tau} h for h = -128..127, per x trace
    y_tab: np.ndarray  # (3, 2, 256)
    x_imp: tuple  # (int part, frac part in 1/256) per x trace
    y_imp: tuple
    x_used: tuple  # indices of the x / y traces some product reads
    y_used: tuple
    t_epoch: int
    rng_seed: int
    decimate: Optional[int]
    sign_mode: int
    post_tab: Optional[np.ndarray]  # 3F: (1, 2, 256) floor / frac of ThreeFactorLIF's y1 decay
    post_imp: tuple  # 3F: (int part, frac part in 1/256) of ThreeFactorLIF's y1 impulse


class EngineState(NamedTuple):
    w: torch.Tensor  # int32 (P, B, n_post, n_pre) 8-bit weights
    tag: torch.Tensor  # int32 tag_1 (t)
    dly: torch.Tensor  # int32 tag_2 (d)
    x: torch.Tensor  # int64 (2, P, B, n_pre) x1, x2 at the epoch's start
    y: torch.Tensor  # int64 (3, P, B, n_post) y1, y2, y3
    tx: torch.Tensor  # int64 (P, B, n_pre) within-epoch time of the last pre spike, 0 = none
    ty: torch.Tensor  # int64 (P, B, n_post)
    ypost: torch.Tensor  # int64 (P, B, n_post) ThreeFactorLIF's y1 (3F only)


def _decompose(imp: float) -> tuple[int, int]:
    """``_decompose_impulses``: integer part and fraction in 1/256 (W_TRACE_FRACTIONAL_PART = 8)."""
    i = np.floor(np.array([imp], dtype=np.float64))
    return int(i[0]), int(np.round((np.array([imp]) - i) * 2 ** 8)[0])


def _decay_table(taus: list) -> np.ndarray:
    """``_decay_trace`` for every 8-bit value: ``v = np.exp(-1 / tau) * h`` (numpy, as Lava
    computes it), ``[floor(v), v % 1]``; traces with ``tau = 0`` are not decayed but reset to 0."""
    taus_a = np.array(taus)
    h = np.arange(-128, 128)
    out = np.zeros((len(taus), 2, 256))
    nz = taus_a != 0
    if nz.any():
        v = np.exp(-1 / taus_a[nz][:, np.newaxis]) * h
        out[nz, 0], out[nz, 1] = np.floor(v), v % 1
    return out


def engine_params(engine: dict, *, sign_mode: int = MIXED, node: str = "rule") -> EngineParams:
    """Parameters of one learning-engine projection from the dict of
    :func:`plastix.backends.learning_engine.engine_rule` (as the Lava lowering builds its
    ``Loihi2FLearningRule`` / ``Loihi3FLearningRule``)."""
    prods, decs, used = [], set(), set()
    for fld, var in TARGETS:
        ps = lava_products(engine.get(fld) or " ", node, fld)
        for p in ps:
            for f in p.factors:
                if f.var not in WIDTH:
                    raise ValueError(f"{node}.{fld}: factor {f.var!r} is not a Loihi learning-engine variable")
                used.add(f.var)
            if p.decimate is not None:
                decs.add(p.decimate)
        if ps:
            prods.append((var, ps))
    if len(decs) > 1:
        raise ValueError(f"{node}: u<k> terms with different k (Lava allows one decimation exponent)")
    kind = engine["kind"]
    post, post_imp = None, (0, 0)
    if kind == "3f":  # Loihi3FLearningRule with y taus inf (lowering): the neuron's y traces, undecayed
        y_taus, y_imps = [np.inf] * 3, [0.0] * 3
        post, post_imp = _decay_table([engine["y1_tau"]]), _decompose(float(engine["y1_impulse"]))
    else:  # Loihi2FLearningRule(y1_impulse, y1_tau): y2, y3 impulse 0, tau 0
        y_taus, y_imps = [engine["y1_tau"], 0.0, 0.0], [engine["y1_impulse"], 0.0, 0.0]
    return EngineParams(kind, tuple(prods), _decay_table([engine["x1_tau"], engine["x2_tau"]]), _decay_table(y_taus),
                        tuple(_decompose(float(engine[f"x{i}_impulse"])) for i in (1, 2)),
                        tuple(_decompose(float(i)) for i in y_imps),
                        tuple(i for i in range(2) if f"x{i + 1}" in used),
                        tuple(i for i in range(3) if f"y{i + 1}" in used), int(engine["t_epoch"]),
                        int(engine["rng_seed"]), next(iter(decs), None), int(sign_mode), post, post_imp)


class EngineRule:
    """One learning projection at run time: its :class:`EngineParams` and, on the device in use,
    its tables and the per-step values of Lava's random streams (drawn in blocks on demand).

    Stream ``n`` value = value after ``n`` advances: trace streams (x decay, x impulse, y decay,
    y impulse: seeds ``rng_seed .. rng_seed + 3``) advance twice per time step (``recv_traces``),
    the synaptic one (seed 2) once per epoch (``run_lrn``). :meth:`ensure` prepares, per Lava time
    step ``tau``: ``rx``/``ry`` (decay randoms at ``run_lrn``), ``ix``/``iy`` (impulse increments
    per used trace at ``run_lrn``), ``iym`` (post impulse increments of a repeated spike), ``c``
    (synaptic rounding threshold ``floor(128 r)``) and ``u`` (the ``u<k>`` dependency)."""

    def __init__(self, params: EngineParams) -> None:
        self.p = params
        self._gens = [np.random.default_rng(params.rng_seed + i) for i in range(4)] + [np.random.default_rng(2)]
        self._raw = [np.zeros(0) for _ in range(5)]
        self._steps = -1
        self._dev: dict = {}
        self.cur: dict = {}

    def _imp(self, side: str, r: np.ndarray) -> np.ndarray:
        imps, used = (self.p.x_imp, self.p.x_used) if side == "x" else (self.p.y_imp, self.p.y_used)
        cols = [imps[i][0] + (r < imps[i][1]).astype(np.int64) for i in used]
        return np.stack(cols, -1) if cols else np.zeros((len(r), 0), dtype=np.int64)

    def ensure(self, steps: int, device: Any) -> dict:
        """Make the per-step values for ``tau = 0 .. steps`` available on ``device`` (as ``cur``)."""
        key = str(device)
        if steps > self._steps:
            n = max(steps, 2 * self._steps, 256)
            for i, g in enumerate(self._gens):
                k = 2 * n + 1 - len(self._raw[i])
                if k > 0:
                    vals = g.random(k) if i in (0, 2, 4) else g.integers(0, 2 ** 7, size=k, dtype=int)
                    self._raw[i] = np.concatenate([self._raw[i], vals])
            self._steps, self._dev = n, {}
        if key not in self._dev:
            p, d, tau = self.p, {}, np.arange(self._steps + 1)
            for side, tab, used in (("x", p.x_tab, p.x_used), ("y", p.y_tab, p.y_used)):
                if used:
                    t = torch.as_tensor(tab[list(used)], device=device)
                    d[side] = (t[:, 0].to(torch.int64), t[:, 1].contiguous(),
                               torch.arange(len(used), device=device).view(-1, 1, 1, 1) * 256 + 128)
            f64 = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
            i64 = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)  # noqa: E731
            if p.post_tab is not None:  # ThreeFactorLIF's y1: decay table, impulse increments per step
                t = torch.as_tensor(p.post_tab, device=device)
                d["post"] = (t[:, 0].to(torch.int64), t[:, 1].contiguous(), torch.full((1, 1, 1, 1), 128, device=device))
                d["piy"] = i64(p.post_imp[0] + (self._raw[3][2 * tau] < p.post_imp[1]).astype(np.int64))
            d["rx"], d["ry"] = f64(self._raw[0][2 * tau]), f64(self._raw[2][2 * tau])
            d["ix"], d["iy"] = i64(self._imp("x", self._raw[1][2 * tau])), i64(self._imp("y", self._raw[3][2 * tau]))
            d["iym"] = i64(self._imp("y", self._raw[3][np.maximum(2 * tau - 1, 0)]))
            d["ix0"] = i64(self._imp("x", np.zeros(1, dtype=np.int64))[0]).view(-1, 1, 1, 1)
            d["c"] = i64(np.floor(self._raw[4][tau // p.t_epoch] * 2 ** SYN_SHIFT).astype(np.int64))
            k = p.decimate or 0
            d["u"] = torch.as_tensor(((tau // p.t_epoch) % 2 ** k == 0).astype(np.int32), device=device)
            self._dev[key] = d
        self.cur = self._dev[key]
        return self.cur


def engine_init(w0: torch.Tensor, P: int, B: int, n_post: int, n_pre: int, kind: str = "2f",
                init: Optional[dict] = None) -> EngineState:
    """Initial state: ``w0`` (integer ``(n_post, n_pre)``, already truncated as Lava does at step 1);
    ``init``: integer ``x1``, ``x2`` ``(n_pre,)``, ``y1`` ``(n_post,)``, ``t`` ``(n_post, n_pre)`` at
    step 0 (missing: 0). A three-factor rule's ``y1`` lives in the post neuron (``ypost``)."""
    dev = w0.device
    init = init or {}
    z = lambda *s: torch.zeros(*s, dtype=torch.int64, device=dev)  # noqa: E731
    zi = lambda *s: torch.zeros(*s, dtype=torch.int32, device=dev)  # noqa: E731
    val = lambda k, *s: torch.as_tensor(np.array(np.broadcast_to(init.get(k, 0), s[-1:] if k != "t" else s[-2:])),  # noqa: E731
                                        dtype=torch.int64, device=dev).expand(*s).clone()
    w = w0.to(torch.int32).expand(P, B, n_post, n_pre).clone()
    x = torch.stack([val("x1", P, B, n_pre), val("x2", P, B, n_pre)])
    y1 = val("y1", P, B, n_post)
    y = torch.stack([z(P, B, n_post) if kind == "3f" else y1, z(P, B, n_post), z(P, B, n_post)])
    return EngineState(w, val("t", P, B, n_post, n_pre).to(torch.int32), zi(P, B, n_post, n_pre), x, y,
                       z(P, B, n_pre), z(P, B, n_post), y1 if kind == "3f" else z(P, B, n_post))


def engine_activation(x: torch.Tensor, st: EngineState) -> torch.Tensor:
    """Dense output ``W s`` (weight_exp 0) of the pre spikes ``x`` ((P, B, n_pre), 0/1), int64."""
    return (st.w * x.unsqueeze(-2).to(torch.int32)).sum(-1)


def _decay(h: torch.Tensor, tabs: tuple, r: float) -> torch.Tensor:
    """``_decay_trace`` of the used traces ``h`` (k, P, B, n): ``floor(v) + (r < frac(v))`` by table."""
    fl, fr, off = tabs
    return torch.take(fl + (fr > r), h + off)


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """int32 two's-complement wrap-around of an int64 tensor (numpy int32 ``*=`` / ``<<``)."""
    return ((x + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31


def engine_step(x: torch.Tensor, s_post: torch.Tensor, third: Optional[tuple], tau: int, st: EngineState,
                rule: EngineRule) -> EngineState:
    """One Lava time step ``tau`` (1-based) of the learning engine: ``recv_traces`` and, at the end
    of an epoch, ``run_lrn``. ``x`` / ``s_post``: this step's pre / post spikes (P, B, n);
    ``third``: the third factors ``(y2, y3)`` delivered this step (3F), int64 (P, B, n_post) or None."""
    p, d = rule.p, rule.cur
    sx, sy = x > 0, s_post > 0
    xs, ys, tx, ty = st.x, st.y, st.tx, st.ty
    if p.t_epoch > 1:  # a repeated spike within one epoch adds the impulse at once
        k = tau % p.t_epoch or p.t_epoch
        if p.x_used:
            ix = list(p.x_used)
            new = (xs[ix] + d["ix0"]).clamp(0, W_TRACE_MAX)
            xs = xs.index_copy(0, torch.tensor(ix, device=xs.device), torch.where((tx > 0) & sx, new, xs[ix]))
        if p.kind == "2f" and p.y_used:
            iy = list(p.y_used)
            new = (ys[iy] + d["iym"][tau].view(-1, 1, 1, 1)).clamp(0, W_TRACE_MAX)
            ys = ys.index_copy(0, torch.tensor(iy, device=ys.device), torch.where((ty > 0) & sy, new, ys[iy]))
        tx = torch.where(sx, k, tx)
        ty = torch.where(sy, k, ty)
    ypost = st.ypost
    if p.kind == "3f":  # ThreeFactorLIF: stochastic decay, then the impulse where the neuron spiked
        ypost = _decay(ypost.unsqueeze(0), d["post"], d["ry"][tau])[0]
        ypost = torch.where(sy, (ypost + d["piy"][tau]).clamp(0, W_TRACE_MAX), ypost)
        y2, y3 = ((None, None) if third is None else third)
        y2 = y2.clamp(-128, 127) if y2 is not None else torch.zeros_like(ypost)
        y3 = y3.clamp(-128, 127) if y3 is not None else torch.zeros_like(ypost)
        ys = torch.stack((ypost, y2, y3))
    if p.t_epoch > 1 and tau % p.t_epoch:
        return EngineState(st.w, st.tag, st.dly, xs, ys, tx, ty, ypost)
    if p.t_epoch == 1:
        tx, ty = sx.to(torch.int64), sy.to(torch.int64)
    return _learn(xs, ys, tx, ty, tau, st._replace(ypost=ypost), rule)


def _history(h0: torch.Tensor, t_spk: torch.Tensor, used: tuple, tabs: Any, r: torch.Tensor, imp: torch.Tensor,
             t_epoch: int) -> list:
    """``_compute_trace_histories`` of the used traces: ``t_epoch + 1`` values (k, P, B, n)."""
    if not used:
        return []
    hist = [h0[list(used)]]
    for j in range(1, t_epoch + 1):
        a = _decay(hist[-1], tabs, r)
        hist.append(torch.where(t_spk == j, (a + imp).clamp_(0, W_TRACE_MAX), a))
    return hist


def _learn(xs: torch.Tensor, ys: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, tau: int, st: EngineState,
           rule: EngineRule) -> EngineState:
    """``run_lrn``: trace histories, product series, stochastic rounding, saturation."""
    p, d, dev = rule.p, rule.cur, xs.device
    hx = _history(xs, tx, p.x_used, d.get("x"), d["rx"][tau], d["ix"][tau].view(-1, 1, 1, 1), p.t_epoch)
    hy = _history(ys, ty, p.y_used, d.get("y"), d["ry"][tau], d["iy"][tau].view(-1, 1, 1, 1), p.t_epoch)
    c = d["c"][tau]  # r < frac(acc / 128) <=> acc % 128 > c = floor(128 r)
    u = d["u"][tau] if p.decimate else 1  # u0 is always 1
    ctx = _Ctx(p, hx, hy, tx, ty, u, {"w": st.w, "t": st.tag, "d": st.dly})
    new = {"w": st.w, "t": st.tag, "d": st.dly}
    for var, prods in p.products:
        acc = ctx.syn[var] << SYN_SHIFT
        for prod in prods:
            cur = ctx.product(prod)
            if cur is None:
                continue
            acc = (acc + cur).clamp_(ACC_LO, ACC_HI)
        if var == "w" and p.sign_mode == EXCITATORY:
            acc = acc.clamp_min(0)
        elif var == "w" and p.sign_mode == INHIBITORY:
            acc = acc.clamp_max(0)
        elif var == "d":
            acc = acc.clamp_min(0)
        lo, hi = _W_RANGE[p.sign_mode] if var == "w" else _SYN_RANGE[var]
        new[var] = ((acc + (2 ** SYN_SHIFT - 1 - c)) >> SYN_SHIFT).clamp_(lo, hi)  # stochastic rounding
    xs_new = xs if not p.x_used else xs.index_copy(0, torch.tensor(list(p.x_used), device=dev), hx[-1])
    ys_new = ys
    if p.kind == "2f" and p.y_used:
        ys_new = ys.index_copy(0, torch.tensor(list(p.y_used), device=dev), hy[-1])
    zx, zy = torch.zeros_like(tx), torch.zeros_like(ty)
    return EngineState(new["w"], new["t"], new["d"], xs_new, ys_new, zx, zy, st.ypost)


class _Ctx:
    """Per-epoch evaluation of products (``LearningRuleApplierBitApprox.apply``)."""

    def __init__(self, p: EngineParams, hx: list, hy: list, tx: torch.Tensor, ty: torch.Tensor, u: Any,
                 syn: dict) -> None:
        self.p, self.hx, self.hy, self.tx, self.ty, self.u, self.syn = p, hx, hy, tx, ty, u, syn
        self.x0 = (tx > 0).to(torch.int32).unsqueeze(-2)  # (P, B, 1, n_pre)
        self.y0 = (ty > 0).to(torch.int32).unsqueeze(-1)  # (P, B, n_post, 1)
        self.cache: dict = {}

    def trace(self, var: str, dep: str) -> tuple[str, torch.Tensor]:
        """``(orientation, value)`` of a trace factor at its dependency: "row" (.., 1, n_pre),
        "col" (.., n_post, 1) or "full" (.., n_post, n_pre)."""
        key = (var, dep)
        if key in self.cache:
            return self.cache[key]
        is_x = var[0] == "x"
        used = self.p.x_used if is_x else self.p.y_used
        hist = self.hx if is_x else self.hy
        i = used.index(int(var[1]) - 1)
        own = "row" if is_x else "col"
        if dep == "u" or self.p.t_epoch == 1:
            # at the epoch's end, or (t_epoch 1) at a spike time that the dependency multiplies
            val = hist[-1][i]
            out = (own, val.unsqueeze(-2) if is_x else val.unsqueeze(-1))
        else:
            idx = self.tx if dep == "x0" else self.ty
            hs = torch.stack([h[i] for h in hist], -1)  # (P, B, n, K + 1)
            if (dep == "x0") == is_x:  # own trace at own spike time
                val = hs.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
                out = (own, val.unsqueeze(-2) if is_x else val.unsqueeze(-1))
            elif dep == "x0":  # y_j at tx_i
                out = ("full", hs.gather(-1, idx.unsqueeze(-2).expand(*hs.shape[:-1], idx.shape[-1])))
            else:  # x_i at ty_j
                hs = hs.unsqueeze(-3).expand(*idx.shape, hs.shape[-2], hs.shape[-1])
                g = idx[..., None, None].expand(*idx.shape, hs.shape[-2], 1)
                out = ("full", hs.gather(-1, g).squeeze(-1))
        self.cache[key] = out
        return out

    def product(self, prod: LavaProduct) -> Optional[torch.Tensor]:
        """The shifted, saturated contribution of one product (None if it is 0 this epoch)."""
        parts: dict = {"row": [], "col": [], "full": []}
        scalar, bound, width = prod.mantissa, 8, 4  # W_S_MANT
        if prod.dependency == "u":
            if torch.is_tensor(self.u):  # u<k>, k > 0: 1 on every 2^k-th epoch
                parts["row"].append(self.u.view(1, 1, 1, 1))
        else:
            parts["row" if prod.dependency == "x0" else "col"].append(self.x0 if prod.dependency == "x0" else self.y0)
        for f in prod.factors:
            wd = WIDTH[f.var]
            width += wd
            bound *= 2 ** wd
            c = f.const or 0
            if f.var in ("x0", "y0"):
                side, val = ("row", self.x0) if f.var == "x0" else ("col", self.y0)
                val = val + c
            elif f.var in self.syn:
                side, val = "full", self.syn[f.var] + c
                if f.sgn:
                    val = torch.sign(val)
            else:
                side, val = self.trace(f.var, prod.dependency)
                val = val + c
            parts[side].append(val.clamp(-(2 ** wd), 2 ** wd - 1))
        shift = max(0, width - W_ACC)
        big = bound >= 2 ** 31 or ((bound >> shift) << prod.exp) >= 2 ** 31
        dt = torch.int64 if big else torch.int32
        if not big and shift == 0:
            scalar = scalar << prod.exp  # fold the scaling into the smallest operand
        vecs = [v.to(dt) for v in parts["row"] + parts["col"]]
        fulls = [v.to(dt) for v in parts["full"]]
        if not vecs and not fulls:  # only constants and u: a scalar, as numpy broadcasts it
            cur = ((scalar >> shift) << (prod.exp if big or shift else 0))
            return torch.tensor(max(ACC_LO, min(ACC_HI, cur)), dtype=torch.int32, device=self.x0.device) * self.u
        vecs.sort(key=lambda v: v.numel())
        ops = vecs + fulls
        cur = ops[0] * scalar
        for v in ops[1:]:
            cur = cur * v
        if big:
            cur = _wrap32(cur)
        if shift:
            cur = cur >> shift
            if prod.exp:
                cur = _wrap32(cur << prod.exp) if big else cur << prod.exp
        if ((bound >> shift) << prod.exp) > 2 ** W_ACC:
            cur = cur.clamp(ACC_LO, ACC_HI)
        return cur.to(torch.int32) if big else cur
