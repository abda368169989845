r"""What a graph must look like to run on Loihi's learning engine in fixed point, and the nearest
graph that does (numpy only; the torch twins with straight-through gradients are in
:mod:`plastix.backends.torch.hardware_aware`).

The model is meant to be trained directly in Loihi units (integer weights and thresholds, 7-bit
traces), so that :func:`project_to_engine` only rounds and nothing is rescaled. Every rule the
lowering puts on the engine (:func:`plastix.backends.learning_engine.engine_rule`) then runs in
``fixed_pt`` on Lava and bit-exactly in the torch fixed mode. The representable sets, with the
Lava source that fixes each one:

================================  ===========================================================
value                             representable (projection)
================================  ===========================================================
rule constants eta+-, 1 - gamma   ``M 2^E``, ``|M| <= 127``, ``E >= -7``, at most 2032 (sums of
                                  <= 3 products ``m 2^e``, ``-8 <= m <= 7``, ``-7 <= e <= 8``:
                                  ``product_series._generate_product``)
trace decays decay_pre/post       ``exp(-1/tau)``, integer ``tau`` in 1..255 (8-bit ``x1_tau``)
trace impulses beta               integers 1..127 (7-bit traces, ``W_TRACE``)
plastic weights                   integers, -256..255 (MIXED: even, ``truncate_weights`` drops
                                  one LSB at the first step), 0..255 / -255..0 (sign modes)
static weights, modulator W       ``m 2^e`` per matrix, 8-bit ``m`` (mixed: -128..127),
                                  ``-8 <= e`` (:func:`plastix.backends.quantize.dense_to_fixed`);
                                  a modulator's ``2^third_shift W`` must be one
du, dv / vth / bias               multiples of 1/4096 / integers <= 2^17 - 1 / multiples of 1/64
initial u, v                      multiples of 1/64
================================  ===========================================================

Structural requirements (not fixed by rounding; :func:`engine_violations` reports them with
``max_change=None``): no mask, one sign constraint per plastic projection, scalar learning rates
and eligibility decay, global or per-post modulation, identity modulators without bias that read
an input or spiking population, additive linear-trace pair STDP, and ``trace_includes_spike`` so
that the engine runs the trained rule exactly (``learning_engine="exact"``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from plastix.ir import CubaLIF, EligibilityTrace, Graph, LIReadout, PairSTDP, ThreeFactor, UnsupportedKindError

from .learning_engine import EXCITATORY, INHIBITORY, MIXED, engine_rule, sign_mode_of

__all__ = ["Violation", "engine_violations", "project_to_engine", "project_literal", "project_trace_decay",
           "project_impulse", "project_plastic_weight", "project_dense_weight", "project_decay12",
           "project_multiple", "LITERAL_MAX", "TAU_RANGE", "IMPULSE_RANGE", "loihi_scales", "to_loihi_units",
           "with_engine_saturation"]

LITERAL_MAX = 127 * 2 ** 4  # 127 = 7 + 7 + 1 chunks; the top chunk's exponent E + 4 must stay <= 8
TAU_RANGE = (1, 255)
IMPULSE_RANGE = (1, 127)
DENSE_MIN_EXP = -8


@dataclass(frozen=True)
class Violation:
    """One value that is not engine-representable: ``where`` (``"proj.rule.base.gamma"``), the
    largest change projection makes (``None`` when rounding cannot fix it) and why."""

    where: str
    max_change: Optional[float]
    why: str


# --------------------------------------------------------------------------------------------- values

def project_literal(c: Any) -> np.ndarray:
    """Nearest ``M 2^E`` (``|M| <= 127``, ``E >= -7``, ``|value| <= 2032``), elementwise."""
    c = np.asarray(c, dtype=np.float64)
    a = np.minimum(np.abs(c), LITERAL_MAX)
    with np.errstate(divide="ignore"):
        e = np.maximum(-7.0, np.floor(np.log2(np.where(a > 0, a, 1.0))) - 6.0)
    m = np.round(a / 2.0 ** e)
    e = np.where(m >= 128, e + 1, e)
    m = np.round(a / 2.0 ** e)
    return np.sign(c) * np.minimum(m * 2.0 ** e, LITERAL_MAX)


def project_trace_decay(alpha: Any) -> np.ndarray:
    """Nearest ``exp(-1/tau)`` with integer ``tau`` in :data:`TAU_RANGE` (rounded in ``tau``)."""
    a = np.clip(np.asarray(alpha, dtype=np.float64), 1e-12, 1 - 1e-12)
    tau = np.clip(np.round(-1.0 / np.log(a)), *TAU_RANGE)
    return np.exp(-1.0 / tau)


def project_impulse(beta: Any) -> np.ndarray:
    """Nearest integer impulse in :data:`IMPULSE_RANGE`."""
    return np.clip(np.round(np.asarray(beta, dtype=np.float64)), *IMPULSE_RANGE)


def project_plastic_weight(w: Any, sign_mode: int = MIXED) -> np.ndarray:
    """Nearest learning-engine weight: integers in the sign mode's 8-bit range, even when MIXED."""
    w = np.asarray(w, dtype=np.float64)
    if sign_mode == EXCITATORY:
        return np.clip(np.round(w), 0, 255)
    if sign_mode == INHIBITORY:
        return np.clip(np.round(w), -255, 0)
    return np.clip(2 * np.round(w / 2), -256, 254)


def project_dense_weight(w: Any) -> np.ndarray:
    """Nearest ``m 2^e`` matrix with one exponent ``e >= -8`` and 8-bit mantissas (mixed-sign:
    -128..127, one-signed: |m| <= 255), choosing the smallest ``e`` that holds the largest weight."""
    w = np.asarray(w, dtype=np.float64)
    a = float(np.abs(w).max()) if w.size else 0.0
    if a == 0.0:
        return np.zeros_like(w)
    mixed = bool(np.any(w > 0) and np.any(w < 0))
    lim = 127 if mixed else 255
    e = max(DENSE_MIN_EXP, math.ceil(math.log2(a / lim)))
    while np.abs(np.round(w / 2.0 ** e)).max() > lim or (mixed and np.round(w / 2.0 ** e).min() < -128):
        e += 1
    return np.round(w / 2.0 ** e) * 2.0 ** e


def project_decay12(d: Any, lo: int = 0, hi: int = 4096) -> np.ndarray:
    """Nearest multiple of 1/4096 in ``[lo, hi] / 4096`` (Loihi's 12-bit ``du`` / ``dv``)."""
    return np.clip(np.round(np.asarray(d, dtype=np.float64) * 4096), lo, hi) / 4096


def project_multiple(x: Any, q: float) -> np.ndarray:
    """Nearest multiple of ``q``."""
    return np.round(np.asarray(x, dtype=np.float64) / q) * q


# --------------------------------------------------------------------------------------------- graphs

def _plastic_parts(graph: Graph, pr: Any) -> tuple[Optional[PairSTDP], Optional[EligibilityTrace]]:
    rule = pr.rule
    if isinstance(rule, ThreeFactor):
        if isinstance(rule.base, EligibilityTrace):
            return (rule.base.base if isinstance(rule.base.base, PairSTDP) else None), rule.base
        return (rule.base if isinstance(rule.base, PairSTDP) else None), None
    return (rule if isinstance(rule, PairSTDP) else None), None


def _projected_graph(graph: Graph) -> tuple[Graph, list[tuple[str, Any, Any]]]:
    """The projected graph and ``(where, old, new)`` for every field it changes."""
    changes: list[tuple[str, Any, Any]] = []

    def proj(where: str, old: Any, new: Any) -> Any:
        old_a, new_a = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
        if not np.array_equal(old_a, new_a):
            changes.append((where, old_a, new_a))
        return new_a if old_a.ndim else float(new_a)

    pops = []
    for p in graph.populations:
        if isinstance(p, (CubaLIF, LIReadout)):
            ch = dict(du=proj(f"{p.name}.du", p.du, project_decay12(p.du, 1, 4096)),
                      dv=proj(f"{p.name}.dv", p.dv, project_decay12(p.dv, 0, 4095)),
                      bias=proj(f"{p.name}.bias", p.bias, project_multiple(p.bias, 1 / 64)),
                      u_init=proj(f"{p.name}.u_init", p.u_init, project_multiple(p.u_init, 1 / 64)),
                      v_init=proj(f"{p.name}.v_init", p.v_init, project_multiple(p.v_init, 1 / 64)))
            if isinstance(p, CubaLIF):
                ch["vth"] = proj(f"{p.name}.vth", p.vth, np.clip(np.round(np.asarray(p.vth)), 1, 2 ** 17 - 1))
            p = p.replace(**ch)
        pops.append(p)
    projs, mods = [], {m.name: m for m in graph.modulators}
    for pr in graph.projections:
        if pr.rule is None:
            w = np.asarray(pr.weight, dtype=np.float64)
            projs.append(pr.replace(weight=proj(f"{pr.name}.weight", w, project_dense_weight(w))))
            continue
        stdp, elig = _plastic_parts(graph, pr)
        mode, _ = sign_mode_of(pr)
        w = np.asarray(pr.weight, dtype=np.float64)
        if pr.sign is not None:  # the weight in effect (a learned signed weight starts at sign |W|)
            w = np.where(pr.sign == 0, w, pr.sign * np.abs(w))
        pr = pr.replace(weight=proj(f"{pr.name}.weight", w, project_plastic_weight(w, mode or MIXED)))
        rule = pr.rule
        if stdp is not None:
            at = f"{pr.name}.rule" + (".base.base" if elig is not None else ".base" if isinstance(rule, ThreeFactor) else "")
            new_stdp = stdp.replace(
                eta_plus=proj(f"{at}.eta_plus", stdp.eta_plus, project_literal(stdp.eta_plus)),
                eta_minus=proj(f"{at}.eta_minus", stdp.eta_minus, project_literal(stdp.eta_minus)),
                decay_pre=proj(f"{at}.decay_pre", stdp.decay_pre, project_trace_decay(stdp.decay_pre)),
                decay_post=proj(f"{at}.decay_post", stdp.decay_post, project_trace_decay(stdp.decay_post)),
                beta=proj(f"{at}.beta", stdp.beta, project_impulse(stdp.beta)),
                x_pre_init=proj(f"{at}.x_pre_init", stdp.x_pre_init, np.clip(np.round(stdp.x_pre_init), 0, 127)),
                x_post_init=proj(f"{at}.x_post_init", stdp.x_post_init, np.clip(np.round(stdp.x_post_init), 0, 127)))
            if elig is not None:
                g = np.asarray(elig.gamma, dtype=np.float64)
                new_g = 1.0 - project_literal(1.0 - g)
                rule = rule.replace(base=elig.replace(base=new_stdp, gamma=proj(f"{pr.name}.rule.base.gamma", g, new_g)))
            elif isinstance(rule, ThreeFactor):
                rule = rule.replace(base=new_stdp)
            else:
                rule = new_stdp
            pr = pr.replace(rule=rule)
        projs.append(pr)
        form, _ = _form(graph, pr)
        mname = form.modulator if form is not None else None
        if mname and form.third_shift and mname in mods:
            m = mods[mname]
            s = 2.0 ** form.third_exp("fixed")
            w_m = np.asarray(m.weight, dtype=np.float64)
            mods[mname] = m.replace(weight=proj(f"{m.name}.weight", w_m, project_dense_weight(w_m * s) / s))
    return graph.replace(populations=tuple(pops), projections=tuple(projs),
                         modulators=tuple(mods[m.name] for m in graph.modulators)), changes


_WHY = {
    "eta_plus": "rule constants must be M 2^E (|M| <= 127, E >= -7, <= 2032)",
    "eta_minus": "rule constants must be M 2^E (|M| <= 127, E >= -7, <= 2032)",
    "gamma": "the eligibility decay 1 - gamma must be M 2^E (|M| <= 127, E >= -7)",
    "decay_pre": "trace decays must be exp(-1/tau) with an integer tau in 1..255",
    "decay_post": "trace decays must be exp(-1/tau) with an integer tau in 1..255",
    "beta": "trace impulses must be integers in 1..127 (7-bit traces)",
    "x_pre_init": "traces are integers in 0..127", "x_post_init": "traces are integers in 0..127",
    "du": "du must be a multiple of 1/4096 in [1/4096, 1]", "dv": "dv must be a multiple of 1/4096 below 1",
    "vth": "vth must be an integer below 2^17", "bias": "bias must be a multiple of 1/64",
    "u_init": "u is a multiple of 1/64", "v_init": "v is a multiple of 1/64",
}


def _why(where: str) -> str:
    field = where.rsplit(".", 1)[-1]
    if field == "weight":
        return ("weights must be m 2^e (8-bit mantissa, one exponent >= -8); learning-engine weights integers "
                "(weight_exp 0, even when MIXED); a modulator's 2^third_shift W likewise")
    return _WHY.get(field, "not representable in Loihi fixed point")


def _form(graph: Graph, pr: Any) -> tuple[Any, str]:
    try:
        return engine_rule(graph, pr)
    except UnsupportedKindError as exc:
        return None, str(exc)


def project_to_engine(graph: Graph) -> Graph:
    """``graph`` with every value rounded to what the learning-engine lowering and Loihi fixed
    point represent (module table); structure (masks, signs, modulation mode) is left as is."""
    return _projected_graph(graph)[0]


def engine_violations(graph: Graph) -> list[Violation]:
    """Every value :func:`project_to_engine` would change (with the largest change), and every
    plastic projection the learning engine cannot run exactly whatever the values
    (``max_change=None``, with the lowering's reason, evaluated on the projected graph): no engine
    form, or an STDP form without ``trace_includes_spike``."""
    projected, changes = _projected_graph(graph)
    out = [Violation(w, float(np.abs(new - old).max()), _why(w)) for w, old, new in changes]
    for pr in projected.projections:
        if pr.rule is None:
            continue
        form, why = _form(projected, pr)
        if form is None:
            out.append(Violation(f"{pr.name}.rule", None, why))
        elif not form.exact:
            out.append(Violation(f"{pr.name}.rule", None, "its engine form is approximate w.r.t. the IR (Loihi's traces "
                                 "include the current spike): train it with trace_includes_spike=True and it is exact"))
    return out


# --------------------------------------------------------------------------------------------- units

def loihi_scales(graph: Graph, *, vth_bits: int = 11, plastic_max: float = 192.0) -> dict[str, float]:
    """Per CubaLIF population, the factor ``s_p`` that maps its ``u``, ``v``, ``vth``, ``bias`` and
    incoming weights to Loihi units (spikes are invariant under it): the largest power of two with
    ``vth s_p <= 2^vth_bits`` (as :func:`plastix.backends.quantize.quantize_graph`), except for the
    post population of a plastic projection, whose ``s_p`` is the largest power of two mapping its
    largest plastic weight to at most ``plastic_max`` (the learning engine keeps plastic weights as
    8-bit integers, exponent 0; the head-room up to 255 is for learning). Powers of two make the
    scaling exact in floating point: a float network gives the same spikes in both units."""
    scales: dict[str, float] = {}
    for p in graph.populations:
        if isinstance(p, CubaLIF):
            scales[p.name] = 2.0 ** math.floor(math.log2(2.0 ** vth_bits / float(np.max(p.vth))))
    for pr in graph.plastic_projections:
        wmax = float(np.abs(np.asarray(pr.weight, dtype=np.float64)).max())
        if pr.post in scales and wmax > 0:
            scales[pr.post] = 2.0 ** math.floor(math.log2(plastic_max / wmax))
    return scales


def _scale_rule(rule: Any, s: float, k: float, gain: float) -> Any:
    """A plastic rule for a post population scaled by ``s`` (``W``, hence ``dW``, times ``s``) whose
    traces are ``k`` times larger (impulse ``beta k``) and whose modulator is ``gain`` times smaller:
    learning rates times ``s gain / k``."""
    if isinstance(rule, (ThreeFactor, EligibilityTrace)):
        return rule.replace(base=_scale_rule(rule.base, s, k, gain))
    if isinstance(rule, PairSTDP):
        r = s * gain / k
        bounds = {f: getattr(rule, f) * s for f in ("w_min", "w_max") if getattr(rule, f) is not None}
        return rule.replace(**bounds, eta_plus=np.asarray(rule.eta_plus, dtype=np.float64) * r,
                            eta_minus=np.asarray(rule.eta_minus, dtype=np.float64) * r, beta=float(rule.beta) * k,
                            x_pre_init=np.asarray(rule.x_pre_init, dtype=np.float64) * k,
                            x_post_init=np.asarray(rule.x_post_init, dtype=np.float64) * k,
                            x_bound=None if rule.x_bound is None else float(rule.x_bound) * k)
    raise UnsupportedKindError(rule.kind, "lava", reason="only pair STDP rules are scaled to Loihi units")


def with_engine_saturation(graph: Graph) -> Graph:
    """``graph`` (in Loihi units) with the learning engine's saturation stated in the IR on every
    plastic pair-STDP rule: 8-bit weights as hard bounds (``[0, 255]`` EXCITATORY, ``[-255, 0]``
    INHIBITORY, ``[-256, 254]`` MIXED) and 7-bit traces as ``x_bound = 127``: then the float IR
    clips where the fixed-point engine does."""
    from .learning_engine import SATURATION, TRACE_MAX

    projs = []
    for pr in graph.projections:
        stdp, elig = _plastic_parts(graph, pr)
        mode, _ = sign_mode_of(pr) if stdp is not None else (None, "")
        if stdp is not None and mode is not None:
            lo, hi = SATURATION[mode]
            new = stdp.replace(w_min=lo, w_max=hi, hard_bounds=True, x_bound=float(TRACE_MAX))
            rule = pr.rule
            if elig is not None:
                new = elig.replace(base=new)
            pr = pr.replace(rule=rule.replace(base=new) if isinstance(rule, ThreeFactor) else new)
        projs.append(pr)
    return graph.replace(projections=tuple(projs))


def to_loihi_units(graph: Graph, scales: dict[str, float], *, trace_impulse: float = 8.0, mod_gain: float = 1.0,
                   inverse: bool = False) -> Graph:
    """``graph`` in Loihi units (``inverse``: back from them): every CubaLIF population's ``vth``,
    ``bias``, ``u_init``, ``v_init`` and incoming weights times its ``scales`` entry, and the STDP
    rule of a plastic projection rescaled to match (trace impulse ``beta`` times ``trace_impulse``
    so that the 7-bit traces use their range, rates times ``s / trace_impulse``). Nothing is rounded:
    :func:`project_to_engine` does that. ``mod_gain`` divides the modulators of plastic rules by
    ``c`` and multiplies the rules' rates by ``c`` (the same weight change): the fixed-point engine
    resolves the product of a small third factor and a large eligibility more finely, and small
    rates are coarse ``M 2^E`` literals. ``scales`` from :func:`loihi_scales` (kept by the trainer,
    so that scaling back and forth is exact)."""
    pops = []
    for p in graph.populations:
        s = scales.get(p.name)
        if s is not None and isinstance(p, CubaLIF):
            s = 1.0 / s if inverse else s
            p = p.replace(**{f: np.asarray(getattr(p, f), dtype=np.float64) * s for f in ("vth", "bias", "u_init", "v_init")})
        pops.append(p)
    projs = []
    for pr in graph.projections:
        s = scales.get(pr.post)
        if s is not None:
            s = 1.0 / s if inverse else s
            pr = pr.replace(weight=np.asarray(pr.weight, dtype=np.float64) * s)
            if pr.rule is not None:
                k, c = trace_impulse, (mod_gain if pr.rule.modulator_names else 1.0)
                pr = pr.replace(rule=_scale_rule(pr.rule, s, 1.0 / k if inverse else k, 1.0 / c if inverse else c))
        projs.append(pr)
    plastic_mods = {n for pr in graph.plastic_projections for n in pr.rule.modulator_names}
    c = 1.0 / mod_gain if not inverse else mod_gain
    mods = tuple(m.replace(weight=np.asarray(m.weight, dtype=np.float64) * c) if m.name in plastic_mods else m
                 for m in graph.modulators)
    return graph.replace(populations=tuple(pops), projections=tuple(projs), modulators=mods)
