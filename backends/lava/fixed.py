"""IR values -> Lava ``fixed_pt`` integers (numpy only, no lava import).

Convention (the IR float values must already be exactly representable; nothing is rounded here, a
value that is not representable raises ``ValueError`` naming the node and field):

* ``du``, ``dv`` are multiples of 1/4096. Lava's fixed LIF decays ``u`` by ``(du_lava + 1)/4096``
  (``ds_offset = 1``) and ``v`` by ``dv_lava/4096``, so ``du_lava = 4096 du - 1`` (needs
  ``du >= 1/4096``) and ``dv_lava = 4096 dv`` (needs ``dv <= 4095/4096``): the fixed decay is then
  exactly the IR's.
* ``vth`` is an integer (Lava compares ``v > vth << 6``); a synaptic input of weight 1 adds
  ``1 << 6`` to ``u``, so the weight unit is the threshold unit.
* ``bias`` is a multiple of 1/64 (Lava adds ``bias_mant << bias_exp`` to ``v`` without the 2^6
  scaling): ``bias_mant << bias_exp = 64 bias`` with ``|bias_mant| < 4096``.
* static weights are integers ``W = m 2^e`` with an 8-bit mantissa. Lava's fixed Dense drops one
  LSB of mixed-sign weights, so mixed-sign matrices are passed as ``2m`` with ``weight_exp = e - 1``
  (exact); one-signed ones with an explicit ``sign_mode``.

When ``plastix.backends.quantize`` (the float -> Loihi quantiser shared with the torch backend)
quantises an IR first, its integers satisfy these rules; this module only checks and maps them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LifFixed", "DenseFixed", "lif_fixed", "dense_fixed", "MIXED", "EXCITATORY", "INHIBITORY"]

# values of lava.utils.weightutils.SignMode (kept as ints so this module needs no lava import)
EXCITATORY, INHIBITORY, MIXED = 2, 3, 1


@dataclass(frozen=True)
class LifFixed:
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray


@dataclass(frozen=True)
class DenseFixed:
    weights: np.ndarray  # int mantissas as Lava gets them
    weight_exp: int
    sign_mode: int
    effective: np.ndarray  # the integer weights they implement (IR units)


def _exact_int(x: np.ndarray, scale: float, node: str, fld: str, what: str) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64) * scale
    r = np.round(y)
    if not np.all(np.abs(y - r) <= 1e-9 * np.maximum(1.0, np.abs(y))):
        bad = np.asarray(x).ravel()[np.argmax(np.abs(y - r).ravel())]
        raise ValueError(f"{node}.{fld}: fixed precision needs {what}; got {bad!r} "
                         "(quantise the graph first, e.g. with plastix.backends.quantize)")
    return r.astype(np.int64)


def _uniform(x, node: str, fld: str) -> float:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(a == a[0]):
        raise ValueError(f"{node}.{fld}: Lava's LIF has one {fld} per population; got per-neuron values")
    return float(a[0])


def lif_fixed(node: str, size: int, du, dv, vth, bias) -> LifFixed:
    du_i = int(_exact_int(np.array(_uniform(du, node, "du")), 4096, node, "du", "a multiple of 1/4096"))
    dv_i = int(_exact_int(np.array(_uniform(dv, node, "dv")), 4096, node, "dv", "a multiple of 1/4096"))
    if du_i < 1:
        raise ValueError(f"{node}.du: Loihi decays u by at least 1/4096 per step (du_lava + 1); du=0 is not representable")
    if dv_i > 4095:
        raise ValueError(f"{node}.dv: at most 4095/4096 in fixed point; got {dv_i}/4096")
    vth_i = int(_exact_int(np.array(_uniform(vth, node, "vth")), 1, node, "vth", "an integer threshold")) if vth is not None else 1 << 24
    b = np.broadcast_to(_exact_int(np.asarray(bias), 64, node, "bias", "a multiple of 1/64"), (size,)).astype(np.int64)
    mant = b.copy()
    exp = np.zeros(size, dtype=np.int64)
    while np.any(np.abs(mant) > 4095):
        big = np.abs(mant) > 4095
        if np.any(mant[big] % 2) or np.any(exp[big] >= 7):
            raise ValueError(f"{node}.bias: not representable as 13-bit mantissa << exp (<= 7)")
        mant[big] //= 2
        exp[big] += 1
    return LifFixed(du=du_i - 1, dv=dv_i, vth=vth_i, bias_mant=mant, bias_exp=exp)


def dense_fixed(node: str, w_eff: np.ndarray) -> DenseFixed:
    """Exact 8-bit mantissa + exponent encoding of an integer weight matrix (see module doc)."""
    w = _exact_int(w_eff, 1, node, "weight", "integer weights")
    nz = w[w != 0]
    if nz.size == 0:
        return DenseFixed(np.zeros_like(w, dtype=np.int32), 0, EXCITATORY, w)
    mixed = bool(np.any(w > 0) and np.any(w < 0))
    lo, hi = (-128, 127) if mixed else (-255, 255)
    for e in range(9):
        if np.any(w % (1 << e) != 0):
            e = 9
            break
        m = w >> e
        if m.min() >= lo and m.max() <= hi:
            break
    else:
        e = 9
    if e == 9:
        raise ValueError(f"{node}.weight: integer weights {int(w.min())}..{int(w.max())} do not fit an 8-bit "
                         "mantissa with a shared exponent (Loihi); quantise them first")
    if mixed:
        return DenseFixed((2 * m).astype(np.int32), e - 1, MIXED, w)
    return DenseFixed(m.astype(np.int32), e, EXCITATORY if w.max() > 0 else INHIBITORY, w)
