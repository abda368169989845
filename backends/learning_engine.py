"""Which IR rules Loihi's learning engine runs, and as which rule strings (numpy only).

Shared by the Lava backend (``LearningDense`` + Loihi 2F/3F rules) and the torch backend's fixed
mode (which emulates that engine bit for bit), so both run the same strings, trace parameters and
seed. :func:`engine_rule` returns a dict ``{"kind": "2f" | "3f", "dw", "dt", "dd", "x1_impulse",
"x1_tau", "x2_impulse", "x2_tau", "y1_impulse", "y1_tau", "t_epoch", "rng_seed", "modulator",
"exact"}``: a :class:`~plastix.ir.LoihiRule` as written (exact), additive pair STDP as
``dw = eta+ x1 y0 - eta- y1 x0`` and global three-factor STDP with an eligibility trace as
``dt = eta+ x1 y0 - eta- y1 x0 - u0 t (1 - gamma)``, ``dw = u0 t y2`` (approximate w.r.t. the IR).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from plastix.ir import (EligibilityTrace, Graph, Input, CubaLIF, LoihiRule, ModulationMode, PairSTDP, ThreeFactor,
                        TraceKind, UnsupportedKindError)
from plastix.ir.synapses import Activation

__all__ = ["engine_rule", "APPROX"]

BACKEND = "lava"


def _pow2_literal(x: float) -> str | None:
    """``x`` as a Lava rule constant ``m*2^e`` (|m| < 128 integer, e in [-7, 9]) if exactly representable."""
    if x == 0:
        return "0"
    for e in range(-7, 10):
        m = x / 2.0 ** e
        if m == int(m) and abs(m) < 128:
            return f"({int(m)})*2^{e}" if e else f"({int(m)})"
    return None


def _scalar(a) -> float | None:
    arr = np.asarray(a, dtype=np.float64).ravel()
    return float(arr[0]) if arr.size and np.all(arr == arr[0]) else None


def _tau(decay: float) -> float | None:
    return None if not 0.0 < decay < 1.0 else -1.0 / math.log(decay)


APPROX = ("approximate: Loihi's traces already include the current step's spike and are decayed once "
          "more than the IR's (and fixed point rounds stochastically), so weights differ slightly from the "
          "IR reference; compile(..., learning_engine='exact') host-emulates it exactly instead")


def _native_modulator(graph: Graph, name: str) -> str | None:
    """Why modulator ``name`` cannot be a graded Dense into ThreeFactorLIF (None if it can)."""
    m = graph.modulator(name)
    if m.activation != Activation.IDENTITY or np.any(np.asarray(m.bias) != 0):
        return f"modulator {name!r} has a {m.activation.value} activation / bias, which a Dense cannot compute"
    if not isinstance(graph.population(m.source), (Input, CubaLIF)):
        return f"modulator {name!r} reads a {graph.population(m.source).kind} population, which sends no spikes"
    return None


def engine_rule(graph: Graph, pr: Any) -> tuple[dict | None, str]:
    """The learning-engine form of projection ``pr``'s rule, or ``(None, why not)``. Raises
    :class:`~plastix.ir.UnsupportedKindError` for a LoihiRule that cannot run as written."""
    rule = pr.rule
    constrained = (pr.mask is not None and not np.all(pr.mask)) or (pr.sign is not None and np.any(pr.sign != 0))
    if constrained and isinstance(rule, LoihiRule):  # it has no host emulation
        raise UnsupportedKindError("loihi rule on a masked or sign-constrained projection (LearningDense would "
                                   "learn absent synapses and flip signs)", BACKEND)
    if isinstance(rule, LoihiRule):
        kind = "3f" if rule.modulator else "2f"
        if kind == "3f":
            m = graph.modulator(rule.modulator)
            if m.size != 1 and m.size != pr.n_post:  # pragma: no cover - the IR checks it
                raise UnsupportedKindError("loihi rule with a third factor that is neither global nor per post",
                                           BACKEND)
            why_not = _native_modulator(graph, rule.modulator)
            if why_not:  # LoihiRule has no host emulation
                raise UnsupportedKindError(f"loihi rule: {why_not}", BACKEND)
        return {"kind": kind, "dw": rule.dw, "dt": rule.dt, "dd": rule.dd,
                "x1_impulse": rule.x1_impulse, "x1_tau": rule.x1_tau, "x2_impulse": rule.x2_impulse,
                "x2_tau": rule.x2_tau, "y1_impulse": rule.y1_impulse, "y1_tau": rule.y1_tau,
                "t_epoch": rule.t_epoch, "rng_seed": rule.rng_seed, "modulator": rule.modulator, "exact": True}, \
            "a Loihi rule string runs on the learning engine as written"
    stdp, elig, mod = rule, None, None
    if isinstance(rule, ThreeFactor):
        if rule.mode != ModulationMode.GLOBAL:
            return None, f"{rule.mode.value} modulation has no learning-engine form (y2 is one value per post neuron)"
        if not isinstance(rule.base, EligibilityTrace):
            return None, "three-factor STDP without an eligibility trace needs the per-step product of modulator and STDP terms"
        elig, stdp, mod = rule.base, rule.base.base, rule.modulator
        m = graph.modulator(mod)
        if m.channels != 1:
            return None, "two-channel (LTP/LTD) modulators have no learning-engine form"
        why_not = _native_modulator(graph, mod)
        if why_not:
            return None, why_not
    if not isinstance(stdp, PairSTDP):
        return None, f"{type(stdp).__name__} has no learning-engine form"
    if float(stdp.mu) != 0.0 or stdp.hard_bounds or stdp.trace != TraceKind.LINEAR:
        return None, "only additive (mu=0), unbounded, linear-trace pair STDP maps to the learning engine"
    ep, em = _scalar(stdp.eta_plus), _scalar(stdp.eta_minus)
    if ep is None or em is None:
        return None, "per-synapse learning rates have no learning-engine form"
    lp, lm = _pow2_literal(ep), _pow2_literal(em)
    tp, tq = _tau(stdp.decay_pre), _tau(stdp.decay_post)
    if lp is None or lm is None or tp is None or tq is None:
        return None, "learning rates must be m*2^e constants and trace decays in (0, 1)"
    if constrained:
        return None, "mask / sign constraints: a LearningDense would learn absent synapses and flip signs"
    if elig is None:
        return {"kind": "2f", "dw": f"{lp}*x1*y0 - {lm}*y1*x0", "dt": " ", "dd": " ",
                "x1_impulse": stdp.beta, "x1_tau": tp, "x2_impulse": 0.0, "x2_tau": 1.0,
                "y1_impulse": stdp.beta, "y1_tau": tq, "t_epoch": 1, "rng_seed": 0, "modulator": None,
                "exact": False}, "additive pair STDP as dw = eta+ x1 y0 - eta- y1 x0; " + APPROX
    g = _scalar(elig.gamma)
    if g is None:
        return None, "per-synapse eligibility decay has no learning-engine form"
    decay = "" if g == 1.0 else _pow2_literal(1.0 - g)
    if decay is None:
        return None, "eligibility decay 1 - gamma must be an m*2^e constant"
    dt = f"{lp}*x1*y0 - {lm}*y1*x0" + (f" - u0*t*{decay}" if decay else "")
    return {"kind": "3f", "dw": "u0*t*y2", "dt": dt, "dd": " ", "x1_impulse": stdp.beta, "x1_tau": tp,
            "x2_impulse": 0.0, "x2_tau": 1.0, "y1_impulse": stdp.beta, "y1_tau": tq, "t_epoch": 1,
            "rng_seed": 0, "modulator": mod, "exact": False}, \
        "global three-factor STDP: eligibility in the tag (dt), dw = t * y2 with y2 from ThreeFactorLIF; " + APPROX
