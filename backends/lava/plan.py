"""Lowering plan: what every IR node becomes on Lava, with all numbers prepared (numpy only).

:func:`make_plan` checks a :class:`plastix.ir.Graph` against what the Lava backend can run, decides
per node between ``"native"`` (plain Lava processes), ``"learning engine"`` (``LearningDense`` with a
Loihi 2F/3F rule) and ``"host-emulated"`` (a custom Python ProcessModel computing the IR rule with
numpy, CPU simulation only), and prepares every parameter array for the chosen precision. Building
the Lava processes from a plan happens in :mod:`plastix.backends.lava.lowering`, inside the run's
child process. :func:`support` is the human-readable report of the same decisions.

Fixed point uses :mod:`plastix.backends.quantize` (shared with the torch backend's fixed mode), so both
backends run the same integers: the graph must already be representable (``quantize_graph``);
nothing is rounded here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plastix.ir import (BCM, CubaLIF, EligibilityTrace, GatedPopulation, GatedSynapse, Graph, HebbianDecay, Input,
                        LIReadout, LoihiRule, Oja, PairSTDP, SynapticQ, ThreeFactor, TripletSTDP, UnsupportedKindError)

from .. import quantize as qz
from ..base import lookup_lowering
from .hostmath import CELLS
from ..learning_engine import (FLOAT_TRACES_WHY, MIXED, check_post_neuron, engine_inits, engine_rule, engine_weights,
                               modulator_rows, stated_trace_bound)

__all__ = ["NATIVE", "ENGINE", "HOST", "Plan", "PopPlan", "ProjPlan", "ModPlan", "make_plan", "support",
           "effective_weight", "PRECISIONS"]

NATIVE, ENGINE, HOST = "native", "learning engine", "host-emulated"
PRECISIONS = ("float", "fixed")
BACKEND = "lava"
LI_VTH_FLOAT = float("inf")
LI_VTH_FIXED = 1 << 24  # << 6 exceeds the saturated 24-bit v: never spikes (quantize's 2^17 - 1 could)


@dataclass
class PopPlan:
    name: str
    kind: str  # input | lif | li | gated
    size: int
    how: str
    why: str
    params: dict = field(default_factory=dict)
    three_factor: dict | None = None  # ThreeFactorLIF params (y1_impulse, y1_tau, rng_seed, y1_init) for a 3F LearningDense
    in_channels: int = 1  # values per neuron on Lava ports: flat (size * channels,), unit-major
    out_channels: int = 1
    cell: Any = None  # gated populations: the IR cell


@dataclass
class ModPlan:
    name: str
    source: str
    weights: np.ndarray  # (size, n_source), graded Dense into the post's third-factor port
    how: str
    why: str
    dense: dict = field(default_factory=dict)  # fixed point: weight_exp / sign_mode / num_weight_bits
    post: str | None = None  # the ThreeFactorLIF it feeds (native modulators)
    channel: int = 0  # 0: y2 (a_third_factor_in), 1: y3 (a_y3_in)


@dataclass
class ProjPlan:
    name: str
    pre: str
    post: str
    how: str
    why: str
    weights: np.ndarray  # as Lava gets them (float, or int mantissas)
    effective: np.ndarray  # IR units (float), mask and sign applied
    dense: dict = field(default_factory=dict)  # weight_exp / sign_mode / num_weight_bits (fixed)
    engine: dict | None = None  # learning-engine rule: kind '2f'|'3f', strings and trace params
    host: Any = None  # host-emulated rule (the IR rule object) and its modulator
    modulator: str | None = None
    graded: bool = False
    delay: int = 0
    mask: np.ndarray | None = None  # host-emulated only (the others fold mask and sign into weights)
    sign: np.ndarray | None = None
    inits: dict = field(default_factory=dict)  # learning engine: x1, x2, y1 traces and tag t at step 0


@dataclass
class Plan:
    precision: str
    inputs: tuple
    outputs: tuple
    pops: dict
    projs: dict
    mods: dict
    graph: Graph

    def report(self) -> dict:
        out: dict = {"precision": self.precision, "populations": {}, "projections": {}, "rules": {}, "modulators": {}}
        for p in self.pops.values():
            out["populations"][p.name] = {"kind": _KIND_OF_POP[p.kind], "how": p.how, "why": p.why}
        for pr in self.projs.values():
            static = pr.engine is None and pr.host is None
            out["projections"][pr.name] = {"how": NATIVE if static else pr.how, "why": pr.why if static else
                                           f"{'LearningDense' if pr.how == ENGINE else 'HostPlasticDense'}: {pr.why}"}
            rule = self.graph.projection(pr.name).rule
            if rule is not None:
                out["rules"][pr.name] = {"kind": rule.kind, "how": pr.how, "why": pr.why}
        for m in self.mods.values():
            out["modulators"][m.name] = {"how": m.how, "why": m.why}
        return out


_KIND_OF_POP = {"input": "input", "lif": "cuba_lif", "li": "li", "gated": "gated"}


def effective_weight(pr) -> np.ndarray:
    """``W~ = W`` where sign = 0, ``sign |W|`` elsewhere, times the mask (ir/synapses.py)."""
    w = np.asarray(pr.weight, dtype=np.float64)
    if pr.sign is not None:
        s = np.asarray(pr.sign)
        w = np.where(s == 0, w, s * np.abs(w))
    if pr.mask is not None:
        w = w * np.asarray(pr.mask, dtype=bool)
    return w


def _uniform(x, node: str, fld: str) -> float:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(a == a[0]):
        raise UnsupportedKindError(f"{node}: per-neuron {fld} (Lava's LIF has one {fld} per population)", BACKEND)
    return float(a[0])


# --------------------------------------------------------------------------------------------- rules

LEARNING_ENGINE_MODES = ("auto", "exact")


#: IR rule class -> why it is host-emulated when the learning engine cannot take it ("" : the
#: engine's own reason, from learning_engine.engine_rule); kind dispatch keyed by the registry's classes
RULES: dict[type, str] = {
    PairSTDP: "",
    ThreeFactor: "",
    LoihiRule: "",
    HebbianDecay: "SpikePropamine rate-based E update (W + alpha E) has no learning-engine form",
    Oja: "Oja's E r_pre matrix-vector term has no learning-engine form",
    BCM: "BCM's sliding threshold has no learning-engine form",
    TripletSTDP: "triplet STDP needs the previous slow post trace",
    GatedSynapse: "a gated unit per synapse is not a Loihi synapse",
    SynapticQ: "a shared tabular Q policy is not a Loihi synapse",
}

#: kinds this backend does not lower on their own, and why (backends.base.missing_lowerings)
REFUSED: dict[type, str] = {
    EligibilityTrace: "an eligibility trace is lowered as part of the ThreeFactor rule that wraps it",
}


# --------------------------------------------------------------------------------------------- plan

def make_plan(graph: Graph, precision: str = "fixed", *, learning_engine: str = "auto") -> Plan:
    """``learning_engine="auto"``: every rule the learning engine can run goes there (exact for
    :class:`~plastix.ir.rules.LoihiRule`, approximate for pair STDP and global / per-post
    three-factor STDP); ``"exact"``: only rules it runs exactly (LoihiRule), the rest host-emulated
    with the IR's math."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if learning_engine not in LEARNING_ENGINE_MODES:
        raise ValueError(f"learning_engine must be one of {LEARNING_ENGINE_MODES}, got {learning_engine!r}")
    pops: dict[str, PopPlan] = {}
    for p in graph.populations:
        pops[p.name] = _plan_population(p, precision)
    projs: dict[str, ProjPlan] = {}
    mods: dict[str, ModPlan] = {}
    posts: dict[str, tuple] = {}
    for pr in graph.projections:
        projs[pr.name] = _plan_projection(graph, pr, precision, pops, learning_engine, posts)
    for p in pops.values():
        if p.three_factor is not None:
            p.why = ("ThreeFactorLIF (LIF that sends bAP, the y1 post trace of the two-factor engine and the y2 / y3 "
                     "third factors to a 3F LearningDense)")
    for pr in projs.values():
        if pr.modulator and pr.how == ENGINE:
            m = graph.modulator(pr.modulator)
            for c, w in enumerate(modulator_rows(graph, pr.engine, pops[pr.post].size)):
                dense, port, k = {}, ("a_third_factor_in (y2)", "a_y3_in (y3)")[c], pr.engine.third_exp(precision)
                w = w * 2.0 ** k
                if precision == "fixed":
                    d = qz.dense_to_fixed(m.name, w)
                    w, dense = d.weights, {"weight_exp": d.weight_exp, "sign_mode": d.sign_mode, "num_weight_bits": 8}
                scale = f" times 2^{k}" if k else ""
                mods[f"{m.name}->{pr.post}:{c}"] = ModPlan(m.name, m.source, w, NATIVE,
                                                           f"graded Dense{scale} into ThreeFactorLIF.{port}", dense,
                                                           pr.post, c)
    for m in graph.modulators:
        if not any(k.startswith(m.name + "->") for k in mods):
            mods[m.name] = ModPlan(m.name, m.source, np.asarray(m.weight), HOST,
                                   "computed inside the host-emulated synapse process")
    return Plan(precision, tuple(graph.inputs), tuple(graph.outputs), pops, projs, mods, graph)


def _plan_input(p, precision: str) -> PopPlan:
    if p.channels != 1:
        return PopPlan(p.name, "input", p.size, NATIVE,
                       f"RingBuffer source of size * channels = {p.size * p.channels} values per step "
                       "(flat, unit-major)", in_channels=p.channels, out_channels=p.channels)
    return PopPlan(p.name, "input", p.size, NATIVE, "RingBuffer source")


def _plan_lif(p, precision: str) -> PopPlan:
    if p.refractory and precision == "fixed":
        raise UnsupportedKindError("cuba_lif(refractory, fixed)", BACKEND, ("cuba_lif(refractory, float)",))
    return PopPlan(p.name, "lif", p.size, NATIVE,
                   "LIFRefractory" if p.refractory else "LIF", _lif_params(p, precision, p.vth))


def _plan_li(p, precision: str) -> PopPlan:
    return PopPlan(p.name, "li", p.size, NATIVE, "LIF with an unreachable threshold; v read by a Monitor",
                   _lif_params(p, precision, None))


def _plan_gated(p, precision: str) -> PopPlan:
    if precision == "fixed":
        raise UnsupportedKindError(f"{p.kind}({p.cell.kind}, fixed)", BACKEND, (f"{p.kind}(float)",),
                                   reason="gated units are host-emulated in float only (no fixed-point cell math)")
    if p.init_noise > 0:
        raise UnsupportedKindError(f"{p.kind}(init_noise > 0)", BACKEND, (f"{p.kind}(init_noise=0)",),
                                   reason="the random initial output-gate noise cannot be reproduced on Lava")
    lookup_lowering(CELLS, p.cell, BACKEND)
    return PopPlan(p.name, "gated", p.size, HOST,
                   f"HostGatedPopulation: {p.cell.kind} units computed with numpy (float64) in a Python "
                   "ProcessModel (no Loihi neuron model); ports carry size * channels values (flat, unit-major)",
                   in_channels=p.in_channels, out_channels=p.out_channels, cell=p.cell)


#: IR population class -> plan (kind dispatch keyed by the registry's classes)
POPULATIONS = {Input: _plan_input, CubaLIF: _plan_lif, LIReadout: _plan_li, GatedPopulation: _plan_gated}


def _plan_population(p, precision: str) -> PopPlan:
    return lookup_lowering(POPULATIONS, p, BACKEND, REFUSED)(p, precision)


def _lif_params(p, precision: str, vth) -> dict:
    refractory = int(getattr(p, "refractory", 0))
    if precision == "float":
        for fld in ("du", "dv") + (("vth",) if vth is not None else ()):
            _uniform(getattr(p, fld), p.name, fld)
        full = lambda a: np.broadcast_to(np.asarray(a, dtype=np.float64), (p.size,)).copy()  # noqa: E731
        return {"du": float(np.asarray(p.du).ravel()[0]), "dv": float(np.asarray(p.dv).ravel()[0]),
                "vth": float(np.asarray(vth).ravel()[0]) if vth is not None else LI_VTH_FLOAT,
                "bias_mant": full(p.bias), "bias_exp": np.zeros(p.size), "refractory": refractory, "v_scale": 1.0,
                "u": full(p.u_init), "v": full(p.v_init)}
    f = qz.lif_to_fixed(p)
    for fld in ("du", "dv") + (("vth",) if vth is not None else ()):
        _uniform(getattr(f, fld), p.name, fld)
    return {"du": int(f.du[0]), "dv": int(f.dv[0]), "vth": int(f.vth[0]) if vth is not None else LI_VTH_FIXED,
            "bias_mant": f.bias_mant.astype(np.int32), "bias_exp": f.bias_exp.astype(np.int32),
            "refractory": 0, "v_scale": 64.0, "u": f.u_init.astype(np.int32), "v": f.v_init.astype(np.int32)}


def _per_channel(w: np.ndarray, channels: int) -> np.ndarray:
    """The Dense matrix of a static projection on flat unit-major ``(size * channels,)`` vectors: the
    IR applies ``W`` ``(n_post, n_pre)`` to every channel separately, i.e. ``kron(W, I_channels)``."""
    if channels == 1:
        return w.copy()
    return np.kron(w, np.eye(channels, dtype=w.dtype)).astype(w.dtype)


def _plan_projection(graph: Graph, pr, precision: str, pops: dict, learning_engine: str, posts: dict) -> ProjPlan:
    if pr.delay and pr.rule is not None:
        raise UnsupportedKindError("plastic projection with delay > 0", BACKEND, ("static projection with delay",))
    if pr.delay > 63:
        raise UnsupportedKindError("projection(delay > 63)", BACKEND, ("delay 0..63 (Loihi 2 DelayDense)",))
    post = pops[pr.post]
    if post.kind == "input":  # pragma: no cover - the IR forbids it
        raise UnsupportedKindError("projection into an input", BACKEND)
    chans = pops[pr.pre].out_channels
    if pr.rule is not None and (chans != 1 or post.kind == "gated"):
        raise UnsupportedKindError(pr.rule.kind, BACKEND, ("static projection",),
                                   reason="on a projection into a gated population or from a multi-channel "
                                   "population (only static projections carry channels)")
    w = effective_weight(pr)
    pre_pop = graph.population(pr.pre)
    graded = False  # graded (non-spike) input values are detected at run time (lowering._build)
    rule = pr.rule
    if rule is None:
        what = f"DelayDense (delay {pr.delay})" if pr.delay else "Dense"
        if chans != 1:
            what += (f" over {chans} channels (weights kron(W, I_{chans}) on the flat unit-major "
                     "size * channels vectors)")
        if precision == "fixed":
            d = qz.dense_to_fixed(pr.name, w)
            return ProjPlan(pr.name, pr.pre, pr.post, NATIVE, what, _per_channel(d.weights, chans),
                            d.effective.astype(np.float64),
                            {"weight_exp": d.weight_exp, "sign_mode": d.sign_mode, "num_weight_bits": 8},
                            graded=graded, delay=pr.delay)
        return ProjPlan(pr.name, pr.pre, pr.post, NATIVE, what, _per_channel(w, chans), w.copy(), graded=graded,
                        delay=pr.delay)
    host_why = lookup_lowering(RULES, rule, BACKEND, REFUSED)
    engine, why = engine_rule(graph, pr)
    if engine is not None and learning_engine == "exact" and not engine["exact"]:
        engine, why = None, "host-emulated for exact IR semantics (learning_engine='exact'); the learning-engine form is approximate"
    if engine is not None and precision == "float" and stated_trace_bound(rule) is not None:
        if learning_engine == "exact":
            engine, why = None, "host-emulated for exact IR semantics (learning_engine='exact'); " + FLOAT_TRACES_WHY
        else:
            why += "; " + FLOAT_TRACES_WHY
    if engine is not None:
        if engine.kind == "3f":
            if post.kind != "lif":
                raise UnsupportedKindError(f"{rule.kind} onto {post.kind}", BACKEND, ("cuba_lif post",))
            check_post_neuron(posts, pr.post, engine, pr.name)
            y1_init = engine.y1_init
            if precision == "fixed":
                y1_init = engine_inits(pr, engine)["y1"]
            post.three_factor = {"y1_impulse": engine.y1_impulse, "y1_tau": engine.y1_tau,
                                 "rng_seed": engine.rng_seed, "y1_init": y1_init}
        if engine.sign_mode != MIXED:
            why += f"; sign mode {'EXCITATORY' if engine.sign_mode == qz.EXCITATORY else 'INHIBITORY'} (learned weights stop at 0)"
        dense = {"weight_exp": 0, "num_weight_bits": 8, "sign_mode": engine.sign_mode}
        if precision == "fixed":
            wi = engine_weights(pr, engine.sign_mode)
            return ProjPlan(pr.name, pr.pre, pr.post, ENGINE, why, wi.astype(np.int32), wi.astype(np.float64), dense,
                            engine=engine, modulator=engine.modulator, inits=engine_inits(pr, engine))
        inits = {k: np.asarray(engine.get(f"{k}_init"), dtype=np.float64) for k in ("x1", "x2", "y1", "t")}
        return ProjPlan(pr.name, pr.pre, pr.post, ENGINE, why, w.copy(), w.copy(), dense, engine=engine,
                        modulator=engine.modulator, inits=inits)
    if isinstance(rule, LoihiRule):
        raise UnsupportedKindError("loihi rule with this modulator", BACKEND)
    host_why = host_why or why
    if pre_pop.out_channels != 1 or post.kind not in ("lif", "li"):  # pragma: no cover - IR / plan forbid it
        raise UnsupportedKindError(rule.kind, BACKEND)
    if isinstance(rule, SynapticQ) and not rule.modulator:
        host_why += "; without a modulator it receives no reward on Lava and does not learn"
    if isinstance(rule, GatedSynapse) and rule.post_feedback:
        raise UnsupportedKindError(rule.kind, BACKEND, reason="post_feedback: the post neuron's output is not fed "
                                   "back into the host-emulated synapse cells on Lava yet (torch runs it)")
    if isinstance(rule, ThreeFactor) and rule.consume_by:
        raise UnsupportedKindError(rule.kind, BACKEND, reason="consume_by: a second modulator input of the "
                                   "host-emulated synapse is not wired on Lava yet (torch runs it)")
    for mname in rule.modulator_names:
        src = graph.population(graph.modulator(mname).source)
        if not isinstance(src, (Input, CubaLIF)):
            raise UnsupportedKindError(f"modulator reading a {src.kind} population", BACKEND, ("input", "cuba_lif"))
    raw = np.asarray(pr.weight, dtype=np.float64).copy()  # the plastic W; sign and mask apply on top
    if pr.sign is not None and not isinstance(rule, (GatedSynapse, HebbianDecay, Oja, BCM)):
        raw = np.where(pr.sign == 0, raw, pr.sign * np.abs(raw))  # a learned signed weight starts at sign |W|
    return ProjPlan(pr.name, pr.pre, pr.post, HOST, host_why, raw, w.copy(), host=rule,
                    modulator=(rule.modulator_names[0] if rule.modulator_names else None),
                    mask=None if pr.mask is None else np.asarray(pr.mask, dtype=bool).copy(),
                    sign=None if pr.sign is None else np.asarray(pr.sign).copy())




def support(graph: Graph, precision: str = "fixed", *, learning_engine: str = "auto") -> dict:
    """For every population, projection, rule and modulator: how it runs on Lava and why.

    Returns ``{"precision", "populations", "projections", "rules", "modulators"}``, each mapping a
    name to ``{"how": "native" | "learning engine" | "host-emulated", "why": ...}``. Raises
    :class:`plastix.ir.UnsupportedKindError` for anything the backend cannot run at all.

    In fixed point a graph whose values are not Loihi-representable (any float graph) is reported
    as :func:`~plastix.backends.quantize.quantize_graph` makes it (what ``compile(..., "fixed")``
    needs), with ``"quantized"`` saying why; if even that graph cannot run, ``ValueError`` names both reasons.
    """
    try:
        return make_plan(graph, precision, learning_engine=learning_engine).report()
    except ValueError as exc:
        if precision != "fixed":
            raise
        why = str(exc)
    try:
        report = make_plan(qz.quantize_graph(graph), precision, learning_engine=learning_engine).report()
    except ValueError as exc:
        raise ValueError(f"not representable in fixed point ({why}), and after quantize_graph: {exc}") from None
    report["quantized"] = (f"reported for quantize_graph(graph): the graph as given is not representable in fixed "
                           f"point ({why})")
    return report
