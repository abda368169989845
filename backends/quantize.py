r"""Float IR -> Loihi fixed point (lava-nc 0.10.0 ``fixed_pt``), shared by the torch and Lava backends.

numpy only (no torch, no lava). Two layers:

1. :func:`quantize_graph` maps any float Graph to a float Graph whose values are *exactly
   representable* on Loihi, so both backends (and the float simulator) run the same numbers.
   Per spiking/LI population ``p`` a power-of-two scale ``s_p`` multiplies its incoming weights,
   its threshold and its bias (spikes are invariant under a common scale; an LI readout's ``v``
   is multiplied by ``s_p``, recorded (cumulatively) in ``metadata["quantize.scale.<pop>"]``). ``s_p`` is the
   largest power of two with ``vth * s_p <= 2**vth_bits`` (default 2^11; LI: largest incoming
   ``|w| * s_p <= 2^10``), keeping a 17-bit threshold and head-room below the 24-bit ``u``/``v``
   wrap. Then:

   =========  =====================================================================
   IR field   representable value
   =========  =====================================================================
   ``du``     ``round(4096 du) / 4096`` clipped to ``[1, 4096] / 4096``
   ``dv``     ``round(4096 dv) / 4096`` clipped to ``[0, 4095] / 4096``
   ``vth``    ``round(vth s_p)`` (integer, >= 1)
   ``bias``   ``round(64 bias s_p) / 64``, to a 13-bit mantissa ``<< exp`` (``exp <= 7``)
   ``u_init`` ``round(64 u_init s_p) / 64`` (likewise ``v_init``), 24-bit
   ``weight`` ``m 2^e``: ``W s_p`` rounded to an 8-bit mantissa ``m`` (``|m| <= 255``,
              ``-128..127`` for mixed-sign matrices) and one exponent ``e >= 0`` per projection
   =========  =====================================================================

   Sign and mask are folded into the stored weights (``sign`` stays). Rule coefficients are not
   rescaled (fixed-point learning is not modelled here).

2. :func:`lif_to_fixed` / :func:`dense_to_fixed` turn a *representable* population / projection
   into the integers Lava's ``PyLifModelBitAcc`` / ``PyDenseModelBitAcc`` take (they raise
   ``ValueError`` naming node and field otherwise):

   * ``du_lava = 4096 du - 1`` (Lava decays ``u`` by ``(du_lava + 1) / 4096``, ``ds_offset = 1``),
     ``dv_lava = 4096 dv`` (``dm_offset = 0``): the fixed decays equal the IR's exactly;
   * ``vth_lava = vth`` (Lava compares ``v > vth << 6``); a synaptic input of weight 1 adds
     ``1 << 6`` to ``u``, so ``u_fixed = 64 u``, ``v_fixed = 64 v``;
   * ``bias_mant << bias_exp = 64 bias`` with ``|bias_mant| <= 4095``;
   * weights: Lava drops one LSB of mixed-sign matrices (``truncate_weights``), so a mixed matrix
     ``m 2^e`` is passed as mantissas ``2m`` with ``weight_exp = e - 1`` (exact), a one-signed one
     as ``m`` with ``weight_exp = e`` and an explicit EXCITATORY/INHIBITORY sign mode. Fractional
     weights ``m 2^e`` (``-8 <= e < 0``, Loihi 1's weight-exponent range) get a negative
     ``weight_exp``: Lava shifts the integer sum right (floor), so the synaptic input is
     ``floor(W x)``, exactly what the torch fixed mode computes;
   * ``u_init`` / ``v_init``: ``64 u``, ``64 v`` (multiples of 1/64).

:func:`lava_dense_effective` reproduces what Lava's bit-accurate Dense does with such integers
(clip to 8 bits by sign mode, truncate LSBs, later shift by ``weight_exp``); the torch fixed mode
uses exactly this.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# values of lava.utils.weightutils.SignMode (ints so this module needs no lava import)
MIXED, EXCITATORY, INHIBITORY = 1, 2, 3

__all__ = ["LifInt", "DenseInt", "quantize_graph", "lif_to_fixed", "dense_to_fixed", "lava_dense_effective",
           "effective_weight", "MIXED", "EXCITATORY", "INHIBITORY", "MIN_WEIGHT_EXP"]


@dataclass(frozen=True)
class LifInt:
    """Lava ``LIF`` fixed_pt integers of one population (arrays of shape ``(size,)``)."""

    du: np.ndarray  # 0..4095, Lava decays u by (du + 1) / 4096
    dv: np.ndarray  # 0..4095
    vth: np.ndarray  # 0..131071 (compared as v > vth << 6); 2**17 - 1 for an LI readout
    bias_mant: np.ndarray  # -4096..4095
    bias_exp: np.ndarray  # 0..7
    u_init: np.ndarray  # 64 u_init (Lava units)
    v_init: np.ndarray  # 64 v_init


@dataclass(frozen=True)
class DenseInt:
    """Lava ``Dense`` fixed_pt integers of one projection."""

    weights: np.ndarray  # (n_post, n_pre) int mantissas as Lava gets them
    weight_exp: int
    sign_mode: int  # MIXED / EXCITATORY / INHIBITORY
    num_weight_bits: int
    effective: np.ndarray  # (n_post, n_pre) the integer weights they implement (IR units)


def effective_weight(proj: Any) -> np.ndarray:
    """``where(sign == 0, W, sign |W|) * mask`` as float64."""
    w = np.asarray(proj.weight, dtype=np.float64)
    if proj.sign is not None:
        s = np.asarray(proj.sign)
        w = np.where(s == 0, w, s * np.abs(w))
    if proj.mask is not None:
        w = w * np.asarray(proj.mask)
    return w


def _exact_int(x: Any, scale: float, node: str, fld: str, what: str) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64) * scale
    r = np.round(y)
    if not np.all(np.abs(y - r) <= 1e-9 * np.maximum(1.0, np.abs(y))):
        raise ValueError(f"{node}.{fld}: fixed precision needs {what} (quantise the graph first with "
                         "plastix.backends.quantize.quantize_graph)")
    return r.astype(np.int64)


def lif_to_fixed(pop: Any) -> LifInt:
    """Lava integers of a representable :class:`~plastix.ir.CubaLIF` or :class:`~plastix.ir.LIReadout`."""
    n, size = pop.name, pop.size
    full = lambda a: np.broadcast_to(np.asarray(a, dtype=np.float64), (size,))  # noqa: E731
    du = _exact_int(full(pop.du), 4096, n, "du", "a multiple of 1/4096")
    dv = _exact_int(full(pop.dv), 4096, n, "dv", "a multiple of 1/4096")
    if np.any(du < 1):
        raise ValueError(f"{n}.du: Loihi decays u by at least 1/4096 per step (du_lava + 1); du = 0 is not representable")
    if np.any(dv > 4095):
        raise ValueError(f"{n}.dv: at most 4095/4096 in fixed point")
    if getattr(pop, "vth", None) is not None:
        vth = _exact_int(full(pop.vth), 1, n, "vth", "an integer threshold")
        if np.any(vth > 2 ** 17 - 1):
            raise ValueError(f"{n}.vth: more than 17 bits")
    else:
        vth = np.full(size, 2 ** 17 - 1, dtype=np.int64)
    b = _exact_int(full(pop.bias), 64, n, "bias", "a multiple of 1/64")
    mant, exp = b.copy(), np.zeros(size, dtype=np.int64)
    while np.any(np.abs(mant) > 4095):
        big = np.abs(mant) > 4095
        if np.any(mant[big] % 2) or np.any(exp[big] >= 7):
            raise ValueError(f"{n}.bias: not representable as a 13-bit mantissa << exp (exp <= 7)")
        mant[big] //= 2
        exp[big] += 1
    u0 = _exact_int(full(pop.u_init), 64, n, "u_init", "a multiple of 1/64")
    v0 = _exact_int(full(pop.v_init), 64, n, "v_init", "a multiple of 1/64")
    if np.any(np.abs(u0) >= 2 ** 23) or np.any(np.abs(v0) >= 2 ** 23):
        raise ValueError(f"{n}.u_init / v_init: 64 u and 64 v must fit Loihi's 24-bit state")
    return LifInt(du - 1, dv, vth, mant, exp, u0, v0)


MIN_WEIGHT_EXP = -8  # Loihi 1's weight exponent range is -8..7 (Davies et al. 2018)


def dense_to_fixed(name: str, w_eff: np.ndarray) -> DenseInt:
    """Exact 8-bit mantissa + exponent encoding of a weight matrix ``m 2^e`` (see module doc);
    ``e < 0`` (down to :data:`MIN_WEIGHT_EXP`) for fractional weights."""
    wf = np.asarray(w_eff, dtype=np.float64)
    k = 0  # fractional bits
    while k < -MIN_WEIGHT_EXP and np.any(wf * 2.0 ** k != np.round(wf * 2.0 ** k)):
        k += 1
    w = _exact_int(wf, 2.0 ** k, name, "weight", f"weights m 2^e with e >= {MIN_WEIGHT_EXP}")
    if not np.any(w):
        return DenseInt(np.zeros_like(w, dtype=np.int64), 0, EXCITATORY, 8, wf)
    mixed = bool(np.any(w > 0) and np.any(w < 0))
    lo, hi = (-128, 127) if mixed else (-255, 255)
    for e in range(16):
        if e and k:
            break  # fractional weights: w has no factor 2 left
        if np.any(w % (1 << e)):
            break
        m = w >> e
        if m.min() >= lo and m.max() <= hi:
            if mixed:
                if e - k - 1 < MIN_WEIGHT_EXP:
                    break
                return DenseInt(2 * m, e - k - 1, MIXED, 8, wf)
            return DenseInt(m, e - k, EXCITATORY if w.max() > 0 else INHIBITORY, 8, wf)
    raise ValueError(f"{name}.weight: weights {wf.min():g}..{wf.max():g} do not fit an 8-bit mantissa with a shared "
                     f"exponent >= {MIN_WEIGHT_EXP} (Loihi); quantise them first")


def lava_dense_effective(weights: np.ndarray, sign_mode: int, num_weight_bits: int = 8) -> np.ndarray:
    """What ``AbstractPyDenseModelBitAcc`` makes of ``weights`` before use: ``clip_weights`` to 8 bits
    by sign mode, then ``truncate_weights`` (drop ``8 - num_weight_bits + [MIXED]`` LSBs)."""
    w = np.asarray(weights).astype(np.int64)
    if sign_mode == INHIBITORY:
        w = -w
    mixed = int(sign_mode == MIXED)
    w = np.clip(w, -(2 ** 8) * mixed, 2 ** 8 - 1)
    k = 8 - num_weight_bits + mixed
    w = (w >> k) << k
    if sign_mode == INHIBITORY:
        w = -w
    return w


# ---------------------------------------------------------------------------------------------
# float graph -> representable float graph


def _pow2_floor(x: float) -> float:
    return float(2.0 ** np.floor(np.log2(x)))


def _quantize_weight(w: np.ndarray) -> np.ndarray:
    """Round an (already scaled) float matrix to ``m 2^e`` with an 8-bit mantissa, ``e >= 0``."""
    r = np.round(w)
    if not np.any(r):
        return r
    mixed = bool(np.any(r > 0) and np.any(r < 0))
    hi = 127 if mixed else 255
    e = 0
    while True:
        m = np.round(w / 2 ** e)
        if np.abs(m).max() <= hi and (not mixed or m.min() >= -128):
            return m * 2 ** e
        e += 1


def _quantize_bias(b: np.ndarray) -> np.ndarray:
    """Round ``64 bias s`` to ``mant << exp`` with a 13-bit mantissa and ``exp <= 7`` (saturating)."""
    b = np.asarray(b, dtype=np.float64)
    out = np.sign(b) * 4095 * 2.0 ** 7  # saturation if nothing fits
    done = np.zeros(b.shape, dtype=bool)
    for e in range(8):
        m = np.round(b / 2 ** e)
        fits = (np.abs(m) <= 4095) & ~done
        out = np.where(fits, m * 2 ** e, out)
        done |= fits
    return out


def quantize_graph(graph: Any, *, vth_bits: int = 11, li_weight_bits: int = 10) -> Any:
    """A copy of ``graph`` with every LIF/LI constant and every weight exactly representable in
    Loihi fixed point (see the module doc for the mapping)."""
    from plastix.ir import CubaLIF, LIReadout  # the IR imports nothing but numpy/networkx

    incoming: dict[str, list] = {}
    for pr in graph.projections:
        incoming.setdefault(pr.post, []).append(pr)
    scales: dict[str, float] = {}
    pops = []
    for p in graph.populations:
        if not isinstance(p, (CubaLIF, LIReadout)):
            pops.append(p)
            continue
        if isinstance(p, CubaLIF):
            s = _pow2_floor(2.0 ** vth_bits / float(np.max(p.vth)))
        else:
            wmax = max([float(np.abs(effective_weight(pr)).max()) for pr in incoming.get(p.name, [])] + [0.0])
            s = _pow2_floor(2.0 ** li_weight_bits / wmax) if wmax > 0 else 1.0
        scales[p.name] = s
        du = np.clip(np.round(np.asarray(p.du, dtype=np.float64) * 4096), 1, 4096) / 4096
        dv = np.clip(np.round(np.asarray(p.dv, dtype=np.float64) * 4096), 0, 4095) / 4096
        bias = _quantize_bias(np.asarray(p.bias, dtype=np.float64) * 64 * s) / 64
        lim = (2 ** 23 - 1) / 64  # u and v are 24-bit, in units of 1/64
        changes = dict(du=du, dv=dv, bias=bias,
                       **{f: np.clip(np.round(np.asarray(getattr(p, f), dtype=np.float64) * 64 * s) / 64, -lim, lim)
                          for f in ("u_init", "v_init")})
        if isinstance(p, CubaLIF):
            changes["vth"] = np.maximum(1.0, np.round(np.asarray(p.vth, dtype=np.float64) * s))
        pops.append(p.replace(**changes))
    projs = []
    for pr in graph.projections:
        s = scales.get(pr.post)
        if s is None:
            projs.append(pr)
            continue
        projs.append(pr.replace(weight=_quantize_weight(effective_weight(pr) * s)))
    meta = dict(graph.metadata or {})
    meta.update({f"quantize.scale.{k}": float(meta.get(f"quantize.scale.{k}", 1.0)) * v for k, v in scales.items()})
    return graph.replace(populations=tuple(pops), projections=tuple(projs), metadata=meta)
