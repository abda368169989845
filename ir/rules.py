r"""Plasticity rule kinds. A rule is data: a kind, its (learned) coefficients and trace constants.

**Shared timing** (all rules, both backends). Synapses outside a projection's ``mask`` never
change; a ``sign`` constraint is applied on top of the learned weight. During step ``t`` a projection multiplies the
presynaptic activity entering the synapse, ``x[t] = out_pre[t - delay]``, by the weight in effect
``W[t]`` (the product reaches the post population at ``t + 1``). At the end of step ``t`` the rule
sees ``x[t]`` and the postsynaptic output ``y[t] = out_post[t]`` and computes ``W[t+1]``. This is
Lava's order (``Dense`` projects, then the learning phase updates the weights).

Coefficient arrays are scalars or per-synapse ``(n_post, n_pre)`` arrays (per-pre ``(n_pre,)`` /
per-post ``(n_post,)`` where stated). Traces use the Meta-SpikePropamine convention: a trace at
step ``t`` does not yet include the spike of step ``t`` (eq. 8-9):

.. math:: \mathrm{x}[t+1] = \alpha\,\mathrm{x}[t] + \beta\,s[t]
   \quad\text{(linear, eq. 9)}\qquad
   \mathrm{x}[t+1] = \alpha\,\mathrm{x}[t] + \beta\,(x_{max} - \mathrm{x}[t])\,s[t]
   \quad\text{(saturating, eq. 10)}
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .errors import IRValidationError
from .limits import MAX_SEED, MAX_STEPS_PARAM
from .loihi_expr import parse_rule, variables
from .registry import register_kind
from .spec import IRNode, array, child, choice, flag, initial, integer, real, text

_FROZEN = dict(frozen=True, eq=False)
SYN = ("post", "pre")


class Rule(IRNode):
    """Common base of rule kinds."""

    __slots__ = ()

    @property
    def modulator_names(self) -> tuple[str, ...]:
        """Modulators this rule (and any rule it wraps) reads."""
        out = []
        for attr in ("modulator", "consume_by"):
            name = getattr(self, attr, None)
            if name:
                out.append(name)
        base = getattr(self, "base", None)
        if isinstance(base, Rule):
            out.extend(base.modulator_names)
        return tuple(out)


class TraceKind(str, enum.Enum):
    LINEAR = "linear"
    SATURATING = "saturating"


class ModulationMode(str, enum.Enum):
    GLOBAL = "global"
    PER_POST = "per_post"
    PER_PRE = "per_pre"
    PER_SYNAPSE = "per_synapse"


class QUpdateForm(str, enum.Enum):
    ADDITIVE = "additive"
    MULTIPLICATIVE = "multiplicative"


class QAggregation(str, enum.Enum):
    """How the TD updates of all synapses that visited one (s, a) cell in one decision combine
    (:class:`SynapticQ`)."""

    SEQUENTIAL = "sequential"
    MEAN = "mean"


# ---------------------------------------------------------------------------------------------
# SpikePropamine: differentiable plasticity  W_eff = W + alpha * E  (eq. 7)


class _DifferentiablePlasticity(Rule):
    r"""Shared part of the SpikePropamine rules: ``W_eff[t] = W + \alpha \odot E[t]`` (eq. 7).

    ``E`` starts at 0 every episode. Rates ``r`` are spike averages over the last ``interval``
    steps (Δτ); ``E`` (and BCM's ``phi``) update at the end of every step ``t`` with
    ``(t + 1) % interval == 0``. With ``clip`` set, ``E`` is clipped to ``[-clip, clip]`` after
    each update. With a ``modulator`` (size ``n_post``, one channel) the rule becomes its
    neuromodulated (NDP) variant: ``r_post`` is replaced by ``M \odot r_post`` (eqs. 16-21).
    """

    __slots__ = ()


@register_kind("hebbian_decay", "rule")
@dataclass(**_FROZEN)
class HebbianDecay(_DifferentiablePlasticity):
    r"""DP linear decay (SpikePropamine eq. 10):
    :math:`E \leftarrow (1-\eta)E + \eta\, r_{post} r_{pre}^\top`."""

    eta: object = array(shape=SYN, ge=0.0, le=1.0)
    alpha: object = array(shape=SYN, default=1.0)
    interval: int = integer(ge=1, le=MAX_STEPS_PARAM, default=1)
    clip: float = real(gt=0.0, optional=True)
    modulator: str = text(optional=True)


@register_kind("oja", "rule")
@dataclass(**_FROZEN)
class Oja(_DifferentiablePlasticity):
    r"""DP-Oja (SpikePropamine eq. 11; NDP-Oja eqs. 16-17 with a modulator):
    :math:`E \leftarrow (1-\eta)E + \eta\,(r_{post} - E\, r_{pre})\, r_{pre}^\top`,
    where ``E r_pre`` is a matrix-vector product, as the paper writes it."""

    eta: object = array(shape=SYN, ge=0.0, le=1.0)
    alpha: object = array(shape=SYN, default=1.0)
    interval: int = integer(ge=1, le=MAX_STEPS_PARAM, default=1)
    clip: float = real(gt=0.0, optional=True)
    modulator: str = text(optional=True)


@register_kind("bcm", "rule")
@dataclass(**_FROZEN)
class BCM(_DifferentiablePlasticity):
    r"""DP-BCM (SpikePropamine eqs. 12-14; NDP-BCM eqs. 18-21 with a modulator):

    .. math::
        r_\beta = r_{pre} \odot (r_{pre} - (\phi + \psi)),\quad
        E \leftarrow (1-\eta)E + \eta\, r_{post} r_\beta^\top,\quad
        \phi \leftarrow (1-\eta_\phi)\phi + \eta_\phi\, r_{pre}

    ``psi`` ``(n_pre,)`` is the learned static boundary, ``phi`` (state, starts at 0) the sliding
    one; ω is the identity as in the paper's experiments.
    """

    eta: object = array(shape=SYN, ge=0.0, le=1.0)
    eta_phi: object = array(shape=("pre",), ge=0.0, le=1.0)
    psi: object = array(shape=("pre",), default=0.0)
    alpha: object = array(shape=SYN, default=1.0)
    interval: int = integer(ge=1, le=MAX_STEPS_PARAM, default=1)
    clip: float = real(gt=0.0, optional=True)
    modulator: str = text(optional=True)


# ---------------------------------------------------------------------------------------------
# Meta-SpikePropamine: spike-timing rules on W itself


@dataclass(frozen=True, eq=False, kw_only=True)
class _STDP(Rule):
    r"""Fields shared by the STDP kinds. Weight dependence (Meta-SpikePropamine eqs. 11-13):
    :math:`A_+(W) = \eta_+ (W_{max} - W)^{\mu}`, :math:`A_-(W) = \eta_- (W - W_{min})^{\mu}`;
    μ = 0 is additive (eq. 12), μ = 1 multiplicative (eq. 13); for μ > 0 the bases
    ``W_max - W`` and ``W - W_min`` are clamped at 0. With ``hard_bounds`` the weight is
    clipped to ``[w_min, w_max]`` after every update. ``decay_pre`` / ``decay_post`` are the trace
    decays α_x (the paper uses α = 1 - 1/τ); ``trace``, ``beta``, ``x_max`` select eq. 9 or 10.
    ``x_pre_init`` / ``x_post_init`` are the traces at step 0 (default 0). ``x_bound`` (optional)
    saturates every trace at that value after each step, ``x <- min(x, x_bound)``: Loihi's 7-bit
    traces stop at 127 (in Loihi units), so a hardware-aware model states it and float runs clip
    where the fixed-point engine does.

    ``trace_includes_spike`` (default false, the paper's eq. 8-9) makes the LTP / LTD terms of step
    ``t`` read the traces *after* step ``t``'s spikes, ``x[t+1]`` in eq. 9, as Loihi's learning
    engine reads x1 / y1: coincident pre and post spikes then count for both LTP and LTD. With it,
    the learning-engine forms of pair STDP and three-factor STDP are exact (floating point)."""

    eta_plus: object = array(shape=SYN)
    eta_minus: object = array(shape=SYN)
    decay_pre: float = real(ge=0.0, le=1.0)
    decay_post: float = real(ge=0.0, le=1.0)
    mu: float = real(ge=0.0, default=0.0)
    w_min: float = real(optional=True)
    w_max: float = real(optional=True)
    hard_bounds: bool = flag(default=False)
    trace: TraceKind = choice(TraceKind, default=TraceKind.LINEAR)
    beta: float = real(gt=0.0, default=1.0)
    x_max: float = real(gt=0.0, default=1.0)
    x_bound: float = real(gt=0.0, optional=True, doc="traces saturate at this value (Loihi's 7-bit traces: 127)")
    x_pre_init: object = initial(("pre",), ge=0.0, doc="presynaptic trace at step 0")
    x_post_init: object = initial(("post",), ge=0.0, doc="postsynaptic trace at step 0")
    trace_includes_spike: bool = flag(default=False, doc="LTP/LTD read the traces after this step's spikes (Loihi)")

    def _check(self) -> None:
        if self.mu != 0.0 and (self.w_min is None or self.w_max is None):
            raise IRValidationError(type(self).__name__, "mu", "mu > 0 needs finite w_min and w_max")
        if self.w_min is not None and self.w_max is not None and not self.w_min < self.w_max:
            raise IRValidationError(type(self).__name__, "w_max", "must be greater than w_min")
        if self.hard_bounds and (self.w_min is None or self.w_max is None):
            raise IRValidationError(type(self).__name__, "hard_bounds", "needs w_min and w_max")


@register_kind("pair_stdp", "rule")
@dataclass(frozen=True, eq=False, kw_only=True)
class PairSTDP(_STDP):
    r"""Pair-based STDP with all-to-all traces (Meta-SpikePropamine eqs. 8-13).

    .. math::
        \Delta W = \underbrace{A_+(W) \odot (y[t]\, \mathrm{x}_{pre}[t]^\top)}_{\text{LTP}}
                 - \underbrace{A_-(W) \odot (\mathrm{x}_{post}[t]\, x[t]^\top)}_{\text{LTD}}

    then both traces advance with this step's spikes. State: ``x_pre`` ``(n_pre,)``, ``x_post``
    ``(n_post,)``. Shared fields (weight dependence, traces): see :class:`_STDP`.
    """


@register_kind("triplet_stdp", "rule")
@dataclass(frozen=True, eq=False, kw_only=True)
class TripletSTDP(_STDP):
    r"""Triplet STDP (Meta-SpikePropamine eqs. 14-15; Pfister & Gerstner 2006).

    .. math::
        \mathrm{LTP}_{ji} = A_{+,ji}(W)\, y_j[t]\, \mathrm{x}_{pre,i}[t]\,
                            \big(\eta_{pair} + \mathrm{x}_{slow,j}[t-1]\big),\quad
        \mathrm{LTD}_{ji} = A_{-,ji}(W)\, \mathrm{x}_{post,j}[t]\, x_i[t]

    Eq. 15 writes the LTP term without the postsynaptic spike; we read it, as Pfister & Gerstner
    do, as gated by ``y_j[t]``, with the slow post trace taken one step earlier (``t - 1``).
    ``eta_pair`` (default 0, as in eq. 15) adds the pair term of the minimal triplet model.
    State: ``x_pre``, ``x_post``, ``x_slow`` and the previous ``x_slow``.
    """

    decay_slow: float = real(ge=0.0, le=1.0)
    eta_pair: object = array(shape=SYN, default=0.0)


@register_kind("eligibility", "rule")
@dataclass(**_FROZEN)
class EligibilityTrace(Rule):
    r"""Eligibility traces of an STDP rule (Meta-SpikePropamine eq. 16), one for LTP, one for LTD.

    .. math:: E_\pm[t+1] = \gamma\, E_\pm[t] + \mathrm{LTP/LTD}[t]

    The wrapped rule's terms no longer change W directly; a :class:`ThreeFactor` around this rule
    turns ``E`` into weight changes. ``gamma`` is a scalar or per synapse. State: ``e_plus``,
    ``e_minus`` ``(n_post, n_pre)``, plus the wrapped rule's traces.
    """

    base: object = child("rule")
    gamma: object = array(shape=SYN, ge=0.0, le=1.0)

    def _check(self) -> None:
        if not isinstance(self.base, (PairSTDP, TripletSTDP)):
            raise IRValidationError("EligibilityTrace", "base", f"must be a pair or triplet STDP rule, got {type(self.base).__name__}")


@register_kind("three_factor", "rule")
@dataclass(**_FROZEN)
class ThreeFactor(Rule):
    r"""Three-factor modulation (Meta-SpikePropamine eqs. 17-19) of an STDP rule or its eligibility.

    With ``(P, D)`` the LTP/LTD terms of ``base`` at step ``t`` (its eligibility traces ``E_±[t]``
    if ``base`` is an :class:`EligibilityTrace`, else the STDP terms), and ``M[t]`` the modulator:

    .. math::
        \Delta W = m_+ \odot P - m_- \odot D \quad\text{(2 modulator channels: LTP, LTD)},\qquad
        \Delta W = m \odot (P - D) \quad\text{(1 channel)}

    ``mode`` broadcasts ``m``: ``global`` M(t) (eq. 17), ``per_post`` M_j (eq. 19), ``per_pre``
    M_i (the form used in both Meta-SpikePropamine experiments), ``per_synapse``. Eq. 18's
    ``h_j(M) = b_j M`` is a ``per_post`` modulator with a rank-one readout.

    ``consume`` (an extension, not in the paper; 0 = off): the modulator that writes an eligibility
    trace into W also uses it up (synaptic tagging and capture), so a trial written at one feedback
    is not written again at the next:

    .. math:: E_\pm[t+1] = \gamma\,\max(0, 1 - c\,|m_\pm[t]|)\,E_\pm[t] + \mathrm{LTP/LTD}[t]

    (1 channel: ``m`` for both traces). Needs an :class:`EligibilityTrace` base. ``consume_by`` names
    another modulator (same ``mode`` and size) whose ``|signal|`` does the using up instead of ``m``:
    writing and consuming then are separate channels (e.g. a trace reset at the feedback, while the
    write modulator also acts elsewhere).
    """

    base: object = child("rule")
    modulator: str = text()
    mode: ModulationMode = choice(ModulationMode, default=ModulationMode.GLOBAL)
    consume: object = array(shape=SYN, ge=0.0, default=0.0,
                            doc="fraction of the eligibility trace a unit |modulator| uses up per step (0: off)")
    consume_by: str = text(optional=True, default=None, doc="modulator whose |signal| uses the traces up (None: this rule's modulator)")

    def _check(self) -> None:
        if not isinstance(self.base, (PairSTDP, TripletSTDP, EligibilityTrace)):
            raise IRValidationError("ThreeFactor", "base", f"must be STDP or an eligibility trace, got {type(self.base).__name__}")
        if not isinstance(self.base, EligibilityTrace) and consumes(self):
            raise IRValidationError("ThreeFactor", "consume", "needs an eligibility-trace base (there is no trace to use up)")
        if self.consume_by and not consumes(self):
            raise IRValidationError("ThreeFactor", "consume_by", "names a consuming modulator but consume is 0 (nothing is used up)")


def consumes(rule: ThreeFactor) -> bool:
    """Whether the modulator uses up the eligibility trace (``consume`` not all zero)."""
    return bool(np.any(np.asarray(rule.consume) != 0))


# ---------------------------------------------------------------------------------------------
# ENU synapses, synaptic Q-learning, generic Loihi rules


@register_kind("gated_synapse", "rule")
@dataclass(**_FROZEN)
class GatedSynapse(Rule):
    r"""Every synapse is a gated unit (ENU synapse, Bertens & Lee 2020): all synapses of the
    projection share ``cell``'s parameters and each keeps its own state. Synapse ``(j, i)`` maps
    ``x_i[t]`` (``cell.in_channels``) to ``z_{ji}[t]`` (``cell.out_channels``); the post
    population receives ``a_j[t+1] = \sum_i W_{ji} m_{ji} z_{ji}[t]`` (W is a fixed gain).

    ``post_feedback``: the cell's feedback input (``o`` in :class:`ENUCell`'s eq. 1) when it computes
    ``z_{ji}[t]`` is the postsynaptic neuron's output ``y_j[t]`` instead of the synapse's own last
    output (Bertens & Lee, Methods: the synapse ENU "has a feedback connection from the postsynaptic
    neuron"; the 16 feedback units of its parameter count); needs an ENU cell with feedback whose
    ``out_channels`` equal the post population's."""

    cell: object = child("cell")
    post_feedback: bool = flag(default=False)

    def _check(self) -> None:
        if self.post_feedback and not (getattr(self.cell, "kind", "") == "enu_cell" and self.cell.feedback):
            raise IRValidationError("GatedSynapse", "post_feedback", "needs an ENU cell with feedback (the input it replaces)")


@register_kind("synaptic_q", "rule")
@dataclass(**_FROZEN)
class SynapticQ(Rule):
    r"""Synaptic Q-learning (Bhargava, Rezaei & Lankarany 2022): every weight is an agent sharing
    one tabular policy ``q_table`` ``(81, 3)`` (the authors' 3^5 = 243 entries: state x action).

    State of synapse k: its last two actions and last two rewards, each in {0, 1, 2} (actions
    {-a, 0, +a}; rewards sign(L(t-1) - L(t)) in {-1, 0, +1} shifted by one), index
    ``27 a_{t-1} + 9 a_{t-2} + 3 r_{t-1} + r_{t-2}``. The weight moves by ``(a - 1) * step``
    (``additive``, the authors' code) or by ``(a - 1) * step * w`` (``multiplicative``, the paper's
    text); the shared table learns by TD (paper eq. 7):
    ``Q(s,a) += lr (r + gamma max_a' Q(s',a') - Q(s,a))``. All synapses in one cell share the
    target ``T``; ``aggregation`` says how their ``n`` updates combine: ``sequential`` applies them
    one after another (the authors' loop), ``Q <- T + (1 - lr)^n (Q - T)``; ``mean`` applies their
    mean once, ``Q <- Q + lr (T - Q)``. The reward comes from ``modulator`` (global) or from the
    trainer.

    ε-greedy with a reproducible stream (:mod:`plastix.ir.counter_hash`): at decision ``n`` (0, 1,
    ...) synapse k (row-major index) draws ``h = mix(key(seed, n) ^ k)``; with ``v = h >> 8`` and
    ``thr = floor(epsilon 2^24)`` it explores iff ``v < thr``, taking action ``floor(3 v / thr)``,
    else the greedy ``argmax_a q_table[s]`` (ties: lowest index).
    """

    q_table: object = array(shape=(81, 3), scalar_ok=False)
    step: float = real(gt=0.0, default=1e-4)
    form: QUpdateForm = choice(QUpdateForm, default=QUpdateForm.ADDITIVE)
    epsilon: float = real(ge=0.0, le=1.0, default=0.1)
    gamma: float = real(ge=0.0, le=1.0, default=0.9)
    lr: float = real(ge=0.0, le=1.0, default=0.01)
    aggregation: QAggregation = choice(QAggregation, default=QAggregation.MEAN)
    seed: int = integer(ge=0, le=MAX_SEED, default=0)
    modulator: str = text(optional=True)


@register_kind("loihi", "rule")
@dataclass(**_FROZEN)
class LoihiRule(Rule):
    r"""A rule for Loihi's learning engine as Lava writes it: sums of products over
    ``x0 x1 x2 y0 y1 y2 y3 u w d t`` for the weight (``dw``), tag ``t`` (``dt``, eligibility) and
    delay (``dd``).

    ``x0``/``y0``: pre/post spike this epoch; ``x1, x2`` / ``y1``: pre / post traces that decay by
    ``exp(-1/tau)`` per step and jump by ``impulse`` at a spike; ``y2`` (and ``y3``) are delivered
    by the post neuron: the third factor, from ``modulator`` (global or per-post), when set.
    Weights, tags and delays update every ``t_epoch`` steps (at steps with
    ``(t + 1) % t_epoch == 0``). Floating point follows Lava's ``floating_pt`` learning engine;
    fixed point its bit-approximate model with stochastic rounding seeded by ``rng_seed``.
    With a modulator the post neuron sends ``y1`` once per step (Loihi 2's three-factor form): it
    equals the two-factor engine's ``y1`` at every dependency when ``t_epoch = 1``; with
    ``t_epoch > 1`` every product of an epoch sees the ``y1`` of its last step.
    Rule strings may be written as Lava writes them (``(1) * 2 ^ -6 * x1 * y0``, ``float_to_literal``).
    ``x1_init``, ``x2_init``, ``y1_init`` and ``t_init`` are the traces and the tag at step 0.
    """

    dw: str = text()
    dt: str = text(default=" ")
    dd: str = text(default=" ")
    x1_impulse: float = real(ge=0.0, default=0.0)
    x1_tau: float = real(gt=0.0, default=1.0)
    x2_impulse: float = real(ge=0.0, default=0.0)
    x2_tau: float = real(gt=0.0, default=1.0)
    y1_impulse: float = real(ge=0.0, default=0.0)
    y1_tau: float = real(gt=0.0, default=1.0)
    y2_impulse: float = real(ge=0.0, default=0.0)
    y2_tau: float = real(gt=0.0, default=1.0)
    y3_impulse: float = real(ge=0.0, default=0.0)
    y3_tau: float = real(gt=0.0, default=1.0)
    t_epoch: int = integer(ge=1, le=MAX_STEPS_PARAM, default=1)
    rng_seed: int = integer(ge=0, le=MAX_SEED, default=0)
    modulator: str = text(optional=True)
    x1_init: object = initial(("pre",), ge=0.0, doc="pre trace x1 at step 0")
    x2_init: object = initial(("pre",), ge=0.0, doc="pre trace x2 at step 0")
    y1_init: object = initial(("post",), ge=0.0, doc="post trace y1 at step 0")
    t_init: object = initial(("post", "pre"), doc="synaptic tag t at step 0")

    def _check(self) -> None:
        for fld in ("dw", "dt", "dd"):
            parse_rule(getattr(self, fld), "LoihiRule", fld)

    @property
    def reads(self) -> set[str]:
        """Variables read by any of the three rule strings."""
        return set().union(*(variables(parse_rule(getattr(self, f), "LoihiRule", f)) for f in ("dw", "dt", "dd")))
