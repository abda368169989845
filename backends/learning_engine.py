r"""Which IR rules Loihi's learning engine runs, and as which rule strings (numpy only).

Shared by the Lava backend (``LearningDense`` + Loihi 2F/3F rules) and the torch backend's fixed
mode (which emulates that engine bit for bit), so both run the same strings, trace parameters and
seed. :func:`engine_rule` returns an :class:`EngineForm` or ``(None, why not)``:

* :class:`~plastix.ir.LoihiRule` as written (exact);
* additive :class:`~plastix.ir.PairSTDP` as ``dw = eta+ x1 y0 - eta- y1 x0`` (2F);
* :class:`~plastix.ir.ThreeFactor` with ``global`` or ``per_post`` modulation (3F; the third
  factor is the post neuron's ``y2``, and ``y3`` for the LTD channel of a two-channel modulator):

  - over pair STDP: ``dw = eta+ x1 y0 y2 - eta- y1 x0 y2`` (``y3`` in the LTD term with 2 channels);
  - over an eligibility trace, one channel: ``dt = eta+ x1 y0 - eta- y1 x0 - (1 - gamma) u0 t``,
    ``dw = u0 t y2`` (``E`` in the tag ``t``);
  - over an eligibility trace, two channels: ``dt = eta+ x1 y0 - (1 - gamma) u0 t``,
    ``dd = eta- y1 x0 - (1 - gamma) u0 d``, ``dw = u0 t y2 - u0 d y3`` (``E+`` in the tag ``t``,
    ``E-`` in ``d``).

  These are approximate w.r.t. the IR (:data:`APPROX`) unless the STDP rule sets
  ``trace_includes_spike`` (Loihi's trace convention, :data:`EXACT`); ``learning_engine="exact"``
  host-emulates the approximate ones.

**Constants.** Lava turns every product's literals into one scaling ``m 2^e`` with a 4-bit signed
mantissa ``-8 <= m <= 7`` and ``-7 <= e <= 8`` (``product_series._generate_product``; W_S_MANT = 4).
A coefficient ``c = M 2^E`` with ``|M| <= 127`` and ``E >= -7`` is written as a sum of at most
three such products (:func:`literal_terms`), which is exact in floating point and, for every
product used here without a third factor (``x1 y0``, ``y1 x0``, ``t``, ``d``: at most 13 bits wide,
no right shift), in fixed point too. Each mantissa is made as large as it can be (``2^-2`` is
written ``(4)*2^-4``): fixed point multiplies by it *before* a product's right shift, so its bits
survive the shift.

**Fixed-point third factor.** Lava's fixed-point engine shifts a product right (floor) by
``4 + sum of factor widths - 15`` bits before scaling it (``LearningRuleApplierBitApprox``;
widths: traces and y2/y3 7 bits, w/t/d 9 bits): ``t y2`` by 5 bits, ``x1 y2`` by 3. So that ``dw``
keeps the IR's scale in both precisions, the modulator reaches the neuron as ``y2 = 2^s M`` in
fixed point (``third_shift`` s = that product shift + ``extra``; floating point sends
``2^extra M``, which the scaled products undo exactly) and the products reading it are
scaled by ``2^-extra`` (a constant whose mantissa adds up to two more bits before the shift): the
engine computes ``2^-b floor(2^b t M)`` (eligibility form; ``b = min(7, extra + 2)``), whose
remaining fraction Lava rounds stochastically. ``extra`` (0..7) is the largest for which
the modulator's largest possible ``|M|`` (every source unit sending 1; a graded input is assumed
within [-1, 1]) keeps ``|y2| <= 127`` and the scaled constants stay representable: a model with a
small modulator range gets a fine (nearly unbiased) ``dw``; with ``extra = 0`` the floor costs up
to one weight unit per update. A :class:`~plastix.ir.LoihiRule` runs as written (``third_shift`` 0:
``y2`` is the modulator Dense's integer output).

**Synapse constraints.** A LearningDense has one sign mode: a projection whose synapses all share
one sign constraint lowers with ``EXCITATORY`` (all +1), ``INHIBITORY`` (all -1) or ``MIXED`` (none),
and learned weights stop at 0 as the IR says. Masked projections and projections mixing signs have
no form in lava-nc 0.10.0 (:data:`MASK_WHY`, :data:`SIGNS_WHY`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from plastix.ir import (CubaLIF, EligibilityTrace, Graph, Input, LoihiRule, ModulationMode, PairSTDP, ThreeFactor,
                        TraceKind, TripletSTDP, UnsupportedKindError, consumes)
from plastix.ir.synapses import Activation

from .quantize import _exact_int, effective_weight

__all__ = ["EngineForm", "engine_rule", "sign_mode_of", "post_neuron", "check_post_neuron", "modulator_rows", "engine_weights", "engine_inits", "literal_terms", "literal_string", "trace_tau",
           "APPROX", "EXACT", "MASK_WHY", "SIGNS_WHY", "MANTISSA", "EXPONENT", "MAX_TERMS", "MIXED", "EXCITATORY",
           "INHIBITORY", "SATURATION", "TRACE_MAX", "FLOAT_TRACES_WHY", "stated_trace_bound"]

BACKEND = "lava"
MANTISSA = (-8, 7)  # product scaling mantissa (W_S_MANT = 4, signed)
EXPONENT = (-7, 8)  # product scaling exponent (s_exp must lie in [-7, 9))
MAX_TERMS = 3  # products per coefficient: |M| <= 127 needs at most three 3-bit chunks
MAX_EXTRA = 7  # extra fixed-point bits of dw below one weight unit (a 2^-7 scaling constant)
MIXED, EXCITATORY, INHIBITORY = 1, 2, 3  # lava.utils.weightutils.SignMode values
W_TRACE, W_SYN, W_S_MANT, W_ACC = 7, 9, 4, 15  # lava.magma.core.learning.constants

APPROX = ("approximate: Loihi's x1 / y1 at a spike already include that step's spike and one more decay "
          "(LTP uses decay_pre x_pre[t] + beta x[t] where the IR uses x_pre[t]; LTD likewise with the post "
          "trace), trace decays are exp(-1/tau) of the nearest tau, and fixed point rounds traces and "
          "updates stochastically and resolves the third factor to 2^-third_shift; "
          "compile(..., learning_engine='exact') host-emulates it with the IR's math instead")
EXACT = ("exact: the rule's traces include the current step's spike (trace_includes_spike), as Loihi's do, so "
         "floating point runs the IR's equations (up to float rounding and exp(-1/tau) = decay); fixed point rounds "
         "traces and updates stochastically and resolves the third factor to 2^-third_shift")
MASK_WHY = ("a masked projection has no learning-engine form in lava-nc 0.10.0: a LearningDense would learn its "
            "absent synapses, and LearningSparse fails in fixed point (truncate_weights drops zero-weight synapses, "
            "the bit-approximate applier cannot evaluate w/t/d factors of a csr_matrix, sign modes call np.maximum "
            "on one) and in floating point with a sign mode")
SIGNS_WHY = ("synapses with different sign constraints need one LearningDense per sign mode, each holding only "
             "its own synapses, i.e. LearningSparse parts, which lava-nc 0.10.0 cannot run (see the mask reason)")


@dataclass(frozen=True)
class EngineForm:
    """A rule as Lava's learning engine runs it (the arguments of ``Loihi2FLearningRule`` /
    ``Loihi3FLearningRule`` plus what the post neuron and the synapse need)."""

    kind: str  # "2f" | "3f"
    dw: str
    dt: str
    dd: str
    x1_impulse: float
    x1_tau: float
    x2_impulse: float
    x2_tau: float
    y1_impulse: float
    y1_tau: float
    t_epoch: int
    rng_seed: int
    exact: bool  # runs the IR rule exactly (LoihiRule) or approximately (STDP forms)
    modulator: Optional[str] = None
    channels: int = 1  # modulator channels: y2 (and y3 for the LTD channel)
    third_shift: int = 0  # fixed point: y2 = 2^third_shift M
    extra: int = 0  # the products reading y2 are scaled by 2^-extra; floating point sends y2 = 2^extra M
    sign_mode: int = MIXED
    x1_init: Any = 0.0  # (n_pre,) traces and tag at step 0
    x2_init: Any = 0.0
    y1_init: Any = 0.0  # (n_post,)
    t_init: Any = 0.0  # (n_post, n_pre)

    def third_exp(self, precision: str) -> int:
        """The modulator reaches the post neuron as ``y2 = 2^third_exp M`` (fixed: the product shift
        plus ``extra``; float: ``extra``, undone exactly by the products' ``2^-extra``)."""
        return self.third_shift if precision == "fixed" else self.extra

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access (``engine["dw"]``) for code that reads the rule strings generically."""
        return getattr(self, key, default)

    __getitem__ = get


#: the learning engine's fixed-point weight range per sign mode (clip_weights(num_bits=8)): hard
#: bounds equal to it state the engine's saturation in the IR (float Lava saturates only at 0)
SATURATION = {EXCITATORY: (0.0, 255.0), INHIBITORY: (-255.0, 0.0), MIXED: (-256.0, 254.0)}
TRACE_MAX = 2 ** W_TRACE - 1  # fixed point saturates x1, x2, y1 here (a rule's x_bound may state it)
FLOAT_TRACES_WHY = ("floating point: Lava's float learning engine does not saturate traces, so a rule with "
                    "x_bound = 127 runs there approximately (fixed point saturates exactly as the IR states)")


def stated_trace_bound(rule: Any) -> Optional[float]:
    """The ``x_bound`` of the STDP rule inside ``rule`` (through ThreeFactor / EligibilityTrace), if any."""
    while isinstance(rule, (ThreeFactor, EligibilityTrace)):
        rule = rule.base
    return None if getattr(rule, "x_bound", None) is None else float(rule.x_bound)


def sign_mode_of(pr: Any) -> tuple[Optional[int], str]:
    """The one sign mode of projection ``pr``'s synapses, or ``(None, why not)``."""
    if pr.mask is not None and not np.all(pr.mask):
        return None, MASK_WHY
    s = np.asarray(pr.sign) if pr.sign is not None else np.zeros(1)
    if np.all(s == 0):
        return MIXED, ""
    if np.all(s == 1):
        return EXCITATORY, ""
    if np.all(s == -1):
        return INHIBITORY, ""
    return None, SIGNS_WHY


# --------------------------------------------------------------------------------------------- constants

def literal_terms(c: float) -> Optional[list[tuple[int, int]]]:
    """``c`` as a sum of Lava scaling constants ``[(m, e), ...]`` (``-8 <= m <= 7``, ``-7 <= e <= 8``,
    at most :data:`MAX_TERMS`), ``[]`` for 0, ``None`` if ``c`` is not ``M 2^E`` with ``|M| <= 127``,
    ``E >= -7`` (or needs an exponent above 8)."""
    if c == 0:
        return []
    if not math.isfinite(c):
        return None
    E = EXPONENT[0]
    M = c / 2.0 ** E
    if M != int(M):
        return None
    M = int(M)
    while M % 2 == 0:
        M, E = M // 2, E + 1
    sign, r = (1 if M > 0 else -1), abs(M)
    if r > 127:
        return None
    out = []
    while r:
        shift = max(0, r.bit_length() - 3)
        top = r >> shift
        m, e = sign * top, E + shift
        if e > EXPONENT[1]:  # e.g. 2^10 = (4) * 2^8
            m, e = m * 2 ** (e - EXPONENT[1]), EXPONENT[1]
            if not MANTISSA[0] <= m <= MANTISSA[1]:
                return None
        while MANTISSA[0] <= 2 * m <= MANTISSA[1] and e > EXPONENT[0]:
            m, e = 2 * m, e - 1  # the mantissa multiplies before Lava's product shift: keep its bits
        out.append((m, e))
        r -= top << shift
    return out


def literal_string(m: int, e: int) -> str:
    return f"({m})*2^{e}" if e else f"({m})"


def _terms(c: float, factors: str) -> Optional[list[str]]:
    """Products ``m 2^e * factors`` summing to ``c * factors`` (``[]`` for c = 0)."""
    pieces = literal_terms(c)
    if pieces is None:
        return None
    return [f"{literal_string(m, e)}*{factors}" for m, e in pieces]


def _join(products: list[str]) -> str:
    out = " + ".join(products).replace("+ (-", "- (").replace("+ -", "- ")
    return out if out else " "


def trace_tau(decay: float) -> Optional[float]:
    """Lava's trace time constant for the IR decay ``alpha`` (``exp(-1/tau) = alpha``), snapped to an
    integer when within 1e-9 of one (Loihi's 8-bit ``tau``); None outside (0, 1)."""
    if not 0.0 < decay < 1.0:
        return None
    tau = -1.0 / math.log(decay)
    return float(round(tau)) if abs(tau - round(tau)) < 1e-9 else tau


def _scalar(a: Any) -> Optional[float]:
    arr = np.asarray(a, dtype=np.float64).ravel()
    return float(arr[0]) if arr.size and np.all(arr == arr[0]) else None


def _shift(*widths: int) -> int:
    """Right shift of a fixed-point product with these factor widths (LearningRuleApplierBitApprox)."""
    return max(0, W_S_MANT + sum(widths) - W_ACC)


def _native_modulator(graph: Graph, name: str) -> str | None:
    """Why modulator ``name`` cannot be a graded Dense into ThreeFactorLIF (None if it can)."""
    m = graph.modulator(name)
    if m.activation != Activation.IDENTITY or np.any(np.asarray(m.bias) != 0):
        return (f"modulator {name!r} applies a {m.activation.value} activation / a bias: the third factor reaches "
                "the post neuron through a Dense, which computes only W s (ThreeFactorLIF sends it on as y2)")
    src = graph.population(m.source)
    if not isinstance(src, (Input, CubaLIF)):
        return f"modulator {name!r} reads a {src.kind} population, which sends no spikes on Lava"
    return None


# --------------------------------------------------------------------------------------------- forms

def engine_rule(graph: Graph, pr: Any) -> tuple[EngineForm | None, str]:
    """The learning-engine form of projection ``pr``'s rule, or ``(None, why not)``. Raises
    :class:`~plastix.ir.UnsupportedKindError` for a LoihiRule that cannot run as written (it has no
    host emulation)."""
    rule = pr.rule
    sign_mode, why_sign = sign_mode_of(pr)
    if isinstance(rule, LoihiRule):
        return _loihi_form(graph, pr, rule, sign_mode, why_sign)
    stdp, elig, mod, channels, mode = rule, None, None, 1, None
    if isinstance(rule, ThreeFactor):
        mode = rule.mode
        if mode == ModulationMode.PER_PRE:
            return None, (f"{mode.value} modulation has no learning-engine form: the engine's third factor is a trace of "
                          "the post neuron (y2 / y3 arrive on LearningDense.s_in_y2 / s_in_y3, one value per post "
                          "neuron); the only per-pre variables, x1 and x2, count the pre neuron's own spikes")
        if mode == ModulationMode.PER_SYNAPSE:
            return None, (f"{mode.value} modulation has no learning-engine form: its only per-synapse variables are "
                          "the synapse's own w, t and d")
        mod = rule.modulator
        why_not = _native_modulator(graph, mod)
        if why_not:
            return None, why_not
        channels = graph.modulator(mod).channels
        if consumes(rule):
            return None, ("a modulator that uses up the eligibility trace (consume > 0) has no learning-engine "
                          "lowering in plastix: the tag would have to decay by c |M| t every step")
        if isinstance(rule.base, EligibilityTrace):
            elig, stdp = rule.base, rule.base.base
        else:
            stdp = rule.base
    if isinstance(stdp, TripletSTDP):
        return None, "triplet STDP reads the slow post trace of the previous step, which no Loihi trace holds"
    if not isinstance(stdp, PairSTDP):  # pragma: no cover - the IR allows nothing else here
        return None, f"{type(stdp).__name__} has no learning-engine form"
    if float(stdp.mu) != 0.0:
        return None, "weight-dependent STDP (mu > 0) clamps (w_max - W)^mu at 0, which no engine factor does"
    if stdp.trace != TraceKind.LINEAR:
        return None, "saturating traces (eq. 10) scale the impulse by x_max - x; Loihi traces add a fixed impulse"
    ep, em = _scalar(stdp.eta_plus), _scalar(stdp.eta_minus)
    if ep is None or em is None:
        return None, "per-synapse learning rates: a rule string has one constant per product"
    tp, tq = trace_tau(stdp.decay_pre), trace_tau(stdp.decay_post)
    if tp is None or tq is None:
        return None, "trace decays must lie in (0, 1) (Lava decays a trace by exp(-1/tau))"
    g = None
    if elig is not None:
        g = _scalar(elig.gamma)
        if g is None:
            return None, "per-synapse eligibility decay: a rule string has one constant per product"
    bound = _modulator_bound(graph, mod) if mod is not None else 0.0
    for extra in (range(MAX_EXTRA, -1, -1) if mod is not None else (0,)):
        forms = _stdp_strings(ep, em, g, mod is not None, channels, extra)
        if isinstance(forms, str):
            if extra == 0:
                return None, forms
            continue
        if extra == 0 or bound * 2.0 ** forms[3] <= 127:
            break
    if sign_mode is None:
        return None, why_sign
    if stdp.hard_bounds and (stdp.w_min, stdp.w_max) != SATURATION[sign_mode]:
        return None, (f"hard bounds clip W to [{stdp.w_min:g}, {stdp.w_max:g}]; the engine only saturates at its 8-bit "
                      f"range {list(SATURATION[sign_mode])} (in Loihi units), which hard bounds may state exactly")
    if stdp.x_bound is not None and float(stdp.x_bound) != TRACE_MAX:
        return None, (f"traces saturate at x_bound = {float(stdp.x_bound):g}; the engine's 7-bit traces saturate "
                      f"only at {TRACE_MAX} (in Loihi units), which x_bound may state exactly")
    dw, dt, dd, shift, what = forms
    kind = "2f" if mod is None else "3f"
    exact = bool(stdp.trace_includes_spike)
    form = EngineForm(kind, dw, dt, dd, float(stdp.beta), tp, 0.0, 1.0, float(stdp.beta), tq, 1, 0, exact, mod,
                      channels, shift, extra, sign_mode, np.asarray(stdp.x_pre_init, dtype=np.float64),
                      0.0, np.asarray(stdp.x_post_init, dtype=np.float64), 0.0)
    scope = f"{mode.value} " if mode is not None else ""
    return form, f"{scope}{what}; {EXACT if exact else APPROX}"


def _modulator_bound(graph: Graph, name: str) -> float:
    """The largest ``|M|`` modulator ``name`` can deliver when every source unit sends at most 1
    (spikes; graded inputs are assumed to stay within [-1, 1]): the larger of a row's positive and
    negative weight sums."""
    w = np.asarray(graph.modulator(name).weight, dtype=np.float64)
    return float(max(np.clip(w, 0, None).sum(1).max(), np.clip(-w, 0, None).sum(1).max()))


def _stdp_strings(ep: float, em: float, gamma: Optional[float], modulated: bool, channels: int,
                  extra: int = 0) -> tuple[str, str, str, int, str] | str:
    """(dw, dt, dd, third_shift, description) of the STDP forms, or why the constants do not fit.
    ``extra``: the third factor is sent ``2^extra`` times larger and the products that read it are
    scaled by ``2^-extra``, so that fixed point keeps ``extra`` bits of ``dw`` below one weight unit
    for its stochastic rounding instead of the floor of Lava's product shift."""
    ltd_factor = "y3" if channels == 2 else "y2"
    if not modulated:
        ltp, ltd, shift, what = _terms(ep, "x1*y0"), _terms(-em, "y1*x0"), 0, "additive pair STDP, dw = eta+ x1 y0 - eta- y1 x0"
    elif gamma is None:
        ltp, ltd = _terms(ep * 2.0 ** -extra, "x1*y0*y2"), _terms(-em * 2.0 ** -extra, f"y1*x0*{ltd_factor}")
        shift = _shift(W_TRACE, W_TRACE) + extra
        what = (f"three-factor STDP, dw = eta+ x1 y0 y2 - eta- y1 x0 {ltd_factor} "
                f"(y2{' / y3' if channels == 2 else ''} = M from ThreeFactorLIF; fixed point: y2 = 2^{shift} M and "
                f"the products scaled by 2^-{extra})")
    else:
        ltp, ltd, shift = _terms(ep, "x1*y0"), _terms(-em, "y1*x0"), _shift(W_SYN, W_TRACE) + extra
    if ltp is None or ltd is None:
        return ("learning rates must be sums of Lava scaling constants, M 2^E with |M| <= 127 and -7 <= E "
                f"(got eta+ = {ep:g}, eta- = {em:g}; plastix.backends.hardware_aware.project_to_engine rounds them)")
    if gamma is None:
        return _join(ltp + ltd), " ", " ", shift, what
    decay = _terms(-(1.0 - gamma), "u0*t")
    decay_d = _terms(-(1.0 - gamma), "u0*d")
    if decay is None or decay_d is None:
        return (f"the eligibility decay 1 - gamma = {1 - gamma:g} must be M 2^E with |M| <= 127 and -7 <= E "
                "(plastix.backends.hardware_aware.project_to_engine rounds it)")
    dw_plus, dw_minus = _terms(2.0 ** -extra, "u0*t*y2"), _terms(-(2.0 ** -extra), "u0*d*y3")
    assert dw_plus is not None and dw_minus is not None  # 2^-extra, extra <= MAX_EXTRA
    if channels == 1:
        return (_join(dw_plus), _join(ltp + ltd + decay), " ", shift,
                f"three-factor STDP with eligibility: E in the tag (dt = eta+ x1 y0 - eta- y1 x0 - (1 - gamma) u0 t), "
                f"dw = u0 t y2 with y2 = M from ThreeFactorLIF (fixed point: y2 = 2^{shift} M, dw = 2^-{extra} u0 t y2)")
    e_minus = _terms(em, "y1*x0")  # E- >= 0 accumulates in d, which Lava clips at 0
    assert e_minus is not None  # same magnitude as ltd
    return (_join(dw_plus + dw_minus), _join(ltp + decay), _join(e_minus + decay_d), shift,
            "two-channel three-factor STDP with eligibility: E+ in the tag t, E- in d (dt = eta+ x1 y0 - (1 - gamma) "
            "u0 t, dd = eta- y1 x0 - (1 - gamma) u0 d), dw = u0 t y2 - u0 d y3 with y2 = M+, y3 = M- from "
            f"ThreeFactorLIF (fixed point: 2^{shift} M, dw scaled by 2^-{extra}); d is Loihi's synaptic delay "
            "variable, which Lava's LearningDense does not apply as a delay (connection.py) and Loihi hardware would")


def _loihi_form(graph: Graph, pr: Any, rule: LoihiRule, sign_mode: Optional[int],
                why_sign: str) -> tuple[EngineForm, str]:
    kind = "3f" if rule.modulator else "2f"
    if sign_mode is None:
        raise UnsupportedKindError("loihi", BACKEND, reason=f"on projection {pr.name!r}: {why_sign}")
    if kind == "3f":
        why_not = _native_modulator(graph, rule.modulator)
        if why_not:  # LoihiRule has no host emulation
            raise UnsupportedKindError("loihi", BACKEND, reason=why_not)
        if graph.modulator(rule.modulator).channels != 1:
            raise UnsupportedKindError("loihi", BACKEND,
                                       reason="a two-channel modulator (its third factor is y2 alone)")
    form = EngineForm(kind, rule.dw, rule.dt, rule.dd, rule.x1_impulse, rule.x1_tau, rule.x2_impulse, rule.x2_tau,
                      rule.y1_impulse, rule.y1_tau, rule.t_epoch, rule.rng_seed, True, rule.modulator, 1, 0, 0,
                      sign_mode, np.asarray(rule.x1_init, dtype=np.float64), np.asarray(rule.x2_init, dtype=np.float64),
                      np.asarray(rule.y1_init, dtype=np.float64), np.asarray(rule.t_init, dtype=np.float64))
    return form, "a Loihi rule string runs on the learning engine as written"


def post_neuron(form: EngineForm) -> tuple:
    """What a three-factor rule's ThreeFactorLIF computes: ``(y1_impulse, y1_tau, rng_seed,
    modulator, channels, third_shift, extra)``; 3F projections into one population must agree on it."""
    return (float(form.y1_impulse), float(form.y1_tau), int(form.rng_seed), form.modulator, int(form.channels),
            int(form.third_shift), int(form.extra))


def check_post_neuron(seen: dict, post: str, form: EngineForm, proj: str) -> None:
    """Record ``form``'s :func:`post_neuron` for population ``post`` in ``seen``; raise
    :class:`~plastix.ir.UnsupportedKindError` if another three-factor projection into ``post``
    needs a different one (one ThreeFactorLIF sends one y1 / y2 / y3)."""
    key = post_neuron(form)
    if seen.setdefault(post, key) != key:
        raise UnsupportedKindError("three_factor", BACKEND, reason=f"projection {proj!r}: another three-factor "
                                   f"projection into {post!r} needs a different post trace / third factor "
                                   f"{seen[post]} vs {key} (one ThreeFactorLIF sends one y1, y2 and y3)")


def modulator_rows(graph: Graph, form: EngineForm, n_post: int) -> list:
    """The graded Dense matrices ``(n_post, n_source)`` that deliver ``form``'s third factors to the
    post neuron, ``[y2]`` or ``[y2, y3]``, in IR units (a global modulator is repeated per post
    neuron); the backends multiply them by ``2^form.third_exp(precision)``."""
    m = graph.modulator(form.modulator)
    w = np.asarray(m.weight, dtype=np.float64)
    out = []
    for c in range(m.channels):
        rows = w[c * m.size:(c + 1) * m.size]
        out.append(np.repeat(rows, n_post, axis=0) if m.size == 1 and n_post > 1 else rows.copy())
    return out


def engine_weights(pr: Any, sign_mode: int) -> np.ndarray:
    """Projection ``pr``'s integer learning-engine weights (weight_exp 0), checked against the
    8-bit range of ``sign_mode`` (MIXED -256..255, EXCITATORY 0..255, INHIBITORY -255..0)."""
    wi = _exact_int(effective_weight(pr), 1, pr.name, "weight", "integer weights (8-bit mantissas, weight_exp 0)")
    lo, hi = {EXCITATORY: (0, 255), INHIBITORY: (-255, 0)}.get(sign_mode, (-256, 255))
    if wi.min() < lo or wi.max() > hi:
        raise ValueError(f"{pr.name}.weight: learning-engine weights must lie in {lo}..{hi} in fixed point")
    return wi


def engine_inits(pr: Any, engine: Any) -> dict:
    """Integer traces ``x1``, ``x2``, ``y1`` and tag ``t`` of projection ``pr`` at step 0 (7-bit
    traces, 9-bit tag), as the Lava lowering sets them."""
    out = {}
    for k, (lo, hi) in (("x1", (0, 127)), ("x2", (0, 127)), ("y1", (0, 127)), ("t", (-257, 255))):
        v = _exact_int(engine.get(f"{k}_init"), 1, pr.name, f"rule {k} at step 0", "integer traces and tags")
        if v.min() < lo or v.max() > hi:
            raise ValueError(f"{pr.name}: the initial {k} must lie in {lo}..{hi} in fixed point")
        out[k] = v
    return out
