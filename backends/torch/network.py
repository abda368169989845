r"""``compile(graph) -> TorchNetwork``: an IR :class:`plastix.ir.Graph` as a PyTorch module.

The module holds only parameters and static configuration; the network state is an explicit
:class:`NetState` whose tensors have leading ``(P, B)`` dims (population of individuals, batch).

Step order (``docs/semantics.md``; the IR docstrings are the spec): at step ``t``

1. populations update from the input ``a[t]`` their projections delivered (inputs: ``out = x[t]``);
2. modulators read their source's output of step ``t - 1``: ``M[t] = f(W out_src[t-1] + b)``;
3. projections multiply ``x[t] = out_pre[t - delay]`` by the weight in effect ``W[t]`` (sign and
   mask applied); the product is the post population's ``a[t + 1]`` (one-step latency);
4. rules see ``x[t]``, ``y[t] = out_post[t]``, ``M[t]`` and compute ``W[t + 1]``.

Parameters (every float array of the IR: weights, rule coefficients, neuron constants, modulator and
cell weights) are ``nn.Parameter`` objects named ``"<node>/<field>"`` (``"<proj>/rule/base/gamma"``
for nested fields), shared by all P individuals. ``run(..., params={name: tensor})`` overrides any
of them with a tensor of shape ``(P, *shape)`` (one value per individual), which turns the
projections into batched matmuls; :meth:`TorchNetwork.to_graph` writes the current parameter values
back into a new Graph.

``compile(graph, jit=True)`` runs the same ``_step`` through ``torch.compile``: ``jit_chunk`` steps
unrolled into one pure function of the state (no step index), compiled once per grad mode; the
``T % jit_chunk`` remaining steps run eagerly. Rules that need the step index or an RNG (synaptic
Q, Loihi, interval > 1) keep the eager loop.

``compile(graph, schedule="layerwise")`` (or ``run(..., schedule=...)``) runs a feed-forward graph
one population at a time over the whole window, in chunks between its rules' interval updates
(:mod:`plastix.backends.torch.layerwise`): the same outputs, state and gradients, with each
per-sample plastic weight read once per chunk instead of once per step.
"""
from __future__ import annotations

import dataclasses
import enum
import warnings
from typing import Any, Callable, Mapping, NamedTuple, Optional

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from ...ir import (BCM, CubaLIF, EligibilityTrace, GatedPopulation, GatedSynapse, Graph, HebbianDecay, Input, LIReadout,
                   LoihiRule, Oja, PairSTDP, SynapticQ, ThreeFactor, TraceKind, TripletSTDP, consumes)
from ..base import Episode, lookup_lowering
from ...ir.spec import get_path, spec_of
from ...ir.synapses import Activation
from .. import memory
from . import neurons as nrn
from . import rules as rl
from .surrogate import get_surrogate

BACKEND = "torch"
PRECISIONS = ("float", "fixed")
# rule kinds whose step is a pure tensor function of the state (no step index, RNG or Python-side
# state), so that ``jit=True`` can compile a chunk of steps once (hebbian_decay/oja/bcm only with
# interval 1, checked in ``_jit_blocker``)
JIT_RULES = frozenset({"pair_stdp", "triplet_stdp", "three_factor", "gated_synapse",
                       "hebbian_decay", "oja", "bcm"})
#: recompile limit of the layer-wise schedule's compiled chunks (their variants of all networks of a process)
LAYER_JIT_VARIANTS = 256


class Schedule(str, enum.Enum):
    """The order :meth:`TorchNetwork.run` computes a run in (both give the same results).

    ``STEP``: the whole graph one step at a time (any graph). ``LAYERWISE``: one population at a time
    over the whole window, in interval chunks (feed-forward graphs with static or interval rules;
    :mod:`plastix.backends.torch.layerwise`)."""

    STEP = "step"
    LAYERWISE = "layerwise"


def parse_schedule(value: "Schedule | str") -> Schedule:
    """A :class:`Schedule` from its name (``ValueError`` listing the known names)."""
    try:
        return Schedule(value)
    except ValueError:
        raise ValueError(f"unknown schedule {value!r}; known: {', '.join(s.value for s in Schedule)}") from None


class NetState(NamedTuple):
    """State of a whole network at the start of a step."""

    t: int  # index of the next step
    out: dict  # population -> output of the last step, (P, B, size) or (P, B, size, channels)
    a: dict  # population -> synaptic input delivered for the next step (same shape as its input)
    neurons: dict  # population -> its step function's state
    projs: dict  # projection -> ProjState


class ProjState(NamedTuple):
    buf: tuple  # out_pre[t-1], ..., out_pre[t-delay] (empty without delay)
    rule: Any  # the rule's state (None for static projections)


_ACTIVATIONS: dict[Activation, Callable[[torch.Tensor], torch.Tensor]] = {
    Activation.IDENTITY: lambda z: z,
    Activation.TANH: torch.tanh,
    Activation.SIGMOID: torch.sigmoid,
    Activation.RELU: torch.relu,
}


def _float_fields(node: Any) -> list[tuple[str, Any]]:
    """(path, spec) of every float array field of an IR node, recursing into child rules/cells
    (initial values of state variables are not parameters)."""
    out = []
    for f in dataclasses.fields(node):
        spec = spec_of(f)
        value = getattr(node, f.name)
        if value is None:
            continue
        if spec.role == "array" and spec.dtype == "float" and not spec.state:
            out.append((f.name, spec))
        elif spec.role == "node":
            out.extend((f"{f.name}/{sub}", s) for sub, s in _float_fields(value))
    return out


def _initial(value: Any, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """An IR initial-state field (scalar or per unit) as a ``shape`` tensor like ``like``."""
    return torch.as_tensor(np.array(value), dtype=like.dtype, device=like.device).expand(shape).clone()


def _set_path(node: Any, path: list[str], value: Any) -> Any:
    if len(path) == 1:
        return node.replace(**{path[0]: value})
    return node.replace(**{path[0]: _set_path(getattr(node, path[0]), path[1:], value)})


# ---------------------------------------------------------------------------------------------
# population lowerings (one entry per kind)


class _PopLowering:
    def __init__(self, pop: Any, net: "TorchNetwork") -> None:
        self.pop = pop
        self.name = pop.name
        self.size = pop.size
        self.in_ch = pop.in_channels
        self.out_ch = pop.out_channels
        self.spike = net.spike

    def out_shape(self) -> tuple[int, ...]:
        return (self.size,) if self.out_ch == 1 else (self.size, self.out_ch)

    def in_shape(self) -> tuple[int, ...]:
        return (self.size,) if self.in_ch == 1 else (self.size, self.in_ch)

    def bind(self, prm: Mapping[str, torch.Tensor]) -> Any:
        return None

    def init(self, P: int, B: int, like: torch.Tensor, generator: Optional[torch.Generator]) -> tuple[torch.Tensor, Any]:
        return like.new_zeros(P, B, *self.out_shape()), None


class _InputLowering(_PopLowering):
    pass


class _LIFLowering(_PopLowering):
    def bind(self, prm):  # noqa: ANN001
        n = self.name
        return nrn.LIFParams(1.0 - prm[f"{n}/du"], 1.0 - prm[f"{n}/dv"], prm[f"{n}/vth"], prm[f"{n}/bias"],
                             self.pop.refractory)

    def init(self, P, B, like, generator):  # noqa: ANN001
        z = like.new_zeros(P, B, self.size)
        u, v = (_initial(getattr(self.pop, f), z.shape, like) for f in ("u_init", "v_init"))
        return z, nrn.LIFState(u, v, z)

    def step(self, a, state, p):  # noqa: ANN001
        return nrn.lif_step(a, state, p, self.spike)


class _LILowering(_PopLowering):
    def bind(self, prm):  # noqa: ANN001
        n = self.name
        return nrn.LIParams(1.0 - prm[f"{n}/du"], 1.0 - prm[f"{n}/dv"], prm[f"{n}/bias"])

    def init(self, P, B, like, generator):  # noqa: ANN001
        z = like.new_zeros(P, B, self.size)
        return z, nrn.LIState(*(_initial(getattr(self.pop, f), z.shape, like) for f in ("u_init", "v_init")))

    def step(self, a, state, p):  # noqa: ANN001
        return nrn.li_step(a, state, p)


class _GatedLowering(_PopLowering):
    def __init__(self, pop, net):  # noqa: ANN001
        super().__init__(pop, net)
        self.cell = pop.cell
        self.cell_step = lookup_lowering(nrn.CELL_STEPS, pop.cell, BACKEND)

    def bind(self, prm):  # noqa: ANN001
        return nrn.cell_params(self.cell, lambda f: prm[f"{self.name}/cell/{f}"])

    def init(self, P, B, like, generator):  # noqa: ANN001
        st = nrn.cell_init(self.cell, (P, B, self.size), like)
        out = like.new_zeros(P, B, *self.out_shape())
        if self.pop.init_noise > 0:
            noise = torch.randn((P, B, self.size, self.out_ch), generator=generator, dtype=like.dtype,
                                device="cpu" if generator is None else generator.device).to(like.device)
            noise = noise * self.pop.init_noise
            if isinstance(st, nrn.ENUState):
                st = st._replace(o=st.o + noise)
            out = out + noise.reshape(out.shape)
        return out, st

    def step(self, a, state, p):  # noqa: ANN001
        x = a if self.in_ch > 1 else a.unsqueeze(-1)
        y, st = self.cell_step(x, state, p)
        return (y if self.out_ch > 1 else y.squeeze(-1)), st


POPULATIONS: dict[type, type] = {  # IR class -> lowering (kind dispatch by the registry's classes)
    Input: _InputLowering,
    CubaLIF: _LIFLowering,
    LIReadout: _LILowering,
    GatedPopulation: _GatedLowering,
}


# ---------------------------------------------------------------------------------------------
# rule lowerings (one entry per kind)


def _stdp_params(rule: Any, prm: Mapping[str, torch.Tensor], prefix: str) -> rl.STDPParams:
    trip = isinstance(rule, TripletSTDP)
    return rl.STDPParams(
        triplet=trip, eta_plus=prm[f"{prefix}/eta_plus"], eta_minus=prm[f"{prefix}/eta_minus"],
        decay_pre=rule.decay_pre, decay_post=rule.decay_post, mu=float(rule.mu),
        w_min=rule.w_min, w_max=rule.w_max, hard_bounds=rule.hard_bounds, trace=TraceKind(rule.trace),
        beta=rule.beta, x_max=rule.x_max, x_bound=rule.x_bound,
        decay_slow=rule.decay_slow if trip else 0.0,
        eta_pair=prm[f"{prefix}/eta_pair"] if trip else 0.0, includes_spike=bool(rule.trace_includes_spike))


def _stdp_traces(rule: Any, P: int, B: int, n_post: int, n_pre: int, like: torch.Tensor) -> Any:
    xp, xq = _initial(rule.x_pre_init, (P, B, n_pre), like), _initial(rule.x_post_init, (P, B, n_post), like)
    if isinstance(rule, TripletSTDP):
        z = like.new_zeros(P, B, n_post)
        return rl.TripletTraces(xp, xq, z, z)
    return rl.PairTraces(xp, xq)


class _RuleLowering:
    """Base: a rule that changes ``W`` itself (state field ``w`` (P, B, n_post, n_pre)); on a
    sign-constrained projection the learned ``w`` is clipped at zero after every update."""

    plastic_weight = True
    stores_weight = True

    def __init__(self, rule: Any, proj: Any, prefix: str, net: "TorchNetwork") -> None:
        self.rule = rule
        self.proj = proj
        self.prefix = prefix  # "<proj>/rule"
        self.n_post, self.n_pre = proj.n_post, proj.n_pre
        self.net = net

    @property
    def modulators(self) -> tuple[str, ...]:
        return self.rule.modulator_names

    @property
    def chunk_interval(self) -> Optional[int]:
        """``n`` if the weight in effect changes only at the end of the steps ``t`` with ``(t + 1) % n
        == 0`` and :meth:`learn` on the sums of ``x`` and ``y`` over steps ``s..e`` (no update in
        ``s..e - 1``; ``t = e``) equals ``learn`` step by step (the layer-wise schedule,
        :mod:`plastix.backends.torch.layerwise`); ``None`` if the rule changes the synapse every step."""
        return None

    def bind(self, prm: Mapping[str, torch.Tensor]) -> Any:
        return None

    def weight(self, rs: Any, w0: torch.Tensor, bound: Any) -> torch.Tensor:
        return rs.w

    def init(self, P: int, B: int, w0: torch.Tensor, like: torch.Tensor, bound: Any) -> Any:
        raise NotImplementedError

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        raise NotImplementedError


def _expand_w(w0: torch.Tensor, P: int, B: int) -> torch.Tensor:
    """The initial plastic weight (P, B, n_post, n_pre) from a shared or per-individual weight."""
    if w0.dim() == 2:
        return w0.expand(P, B, *w0.shape).clone()
    return w0.expand(P, B, *w0.shape[-2:]).clone()


class _DPLowering(_RuleLowering):
    """HebbianDecay / Oja / BCM: ``W_eff = W + alpha E``."""

    stores_weight = False

    @property
    def chunk_interval(self) -> Optional[int]:
        """The rule's interval: ``dp_step`` accumulates ``x`` and ``y`` and updates ``E`` every ``interval`` steps."""
        return int(self.rule.interval)

    def bind(self, prm):  # noqa: ANN001
        r, pf = self.rule, self.prefix
        p = rl.DPParams(kind=r.kind, eta=prm[f"{pf}/eta"], interval=r.interval, clip=r.clip,
                        eta_phi=prm.get(f"{pf}/eta_phi"), psi=prm.get(f"{pf}/psi"))
        return p, prm[f"{pf}/alpha"]

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        return rl.DPState(like.new_zeros(P, B, self.n_post, self.n_pre), like.new_zeros(P, B, self.n_pre),
                          like.new_zeros(P, B, self.n_post), like.new_zeros(P, B, self.n_pre))

    def weight(self, rs, w0, bound):  # noqa: ANN001
        return w0 + bound[1] * rs.e

    def plastic_part(self, rs, bound, mask):  # noqa: ANN001
        """``alpha E`` (masked): without a sign constraint ``W_eff x = W x + (alpha E) x``, and ``W x``
        is one matmul for the whole batch instead of a part of the per-element product."""
        return (bound[1] if mask is None else bound[1] * mask) * rs.e

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        m = mods[self.rule.modulator][..., 0, :] if self.rule.modulator else None
        _, rs = rl.dp_step((x, y, m, t), rs, bound[0])
        return rs


class _STDPLowering(_RuleLowering):
    def bind(self, prm):  # noqa: ANN001
        return _stdp_params(self.rule, prm, self.prefix)

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        return rl.STDPState(_expand_w(w0, P, B), _stdp_traces(self.rule, P, B, self.n_post, self.n_pre, like))

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        _, rs = rl.stdp_step((x, y), rs, bound, mask)
        return rs


class _ThreeFactorLowering(_RuleLowering):
    def __init__(self, rule, proj, prefix, net):  # noqa: ANN001
        super().__init__(rule, proj, prefix, net)
        base = rule.base
        self.elig = isinstance(base, EligibilityTrace)
        self.stdp_rule = base.base if self.elig else base
        self.stdp_prefix = f"{prefix}/base/base" if self.elig else f"{prefix}/base"

    def bind(self, prm):  # noqa: ANN001
        gamma = prm[f"{self.prefix}/base/gamma"] if self.elig else None
        consume = prm[f"{self.prefix}/consume"] if consumes(self.rule) else None  # decided by the IR value, not traced
        return rl.ThreeFactorParams(self.rule.mode, _stdp_params(self.stdp_rule, prm, self.stdp_prefix), gamma, consume)

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        tr = _stdp_traces(self.stdp_rule, P, B, self.n_post, self.n_pre, like)
        if self.elig:
            z = like.new_zeros(P, B, self.n_post, self.n_pre)
            tr = rl.EligibilityState(z, z, tr)
        return rl.ThreeFactorState(_expand_w(w0, P, B), tr)

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        by = mods[self.rule.consume_by] if self.rule.consume_by else None
        _, rs = rl.three_factor_step((x, y, mods[self.rule.modulator], by), rs, bound, mask)
        return rs


class _GatedSynapseLowering(_RuleLowering):
    """A gated cell per synapse; ``W`` is a fixed gain (no learning step)."""

    plastic_weight = False
    stores_weight = False

    def __init__(self, rule, proj, prefix, net):  # noqa: ANN001
        super().__init__(rule, proj, prefix, net)
        self.cell = rule.cell
        self.cell_step = lookup_lowering(nrn.CELL_STEPS, rule.cell, BACKEND)

    def bind(self, prm):  # noqa: ANN001
        return nrn.cell_params(self.cell, lambda f: prm[f"{self.prefix}/cell/{f}"])

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        return nrn.cell_init(self.cell, (P, B, self.n_post, self.n_pre), like)

    def project(self, x, rs, bound, w_eff, y):  # noqa: ANN001
        xin = x if x.dim() == 4 else x.unsqueeze(-1)  # (P, B, n_pre, C_in)
        xin = xin.unsqueeze(2).expand(xin.shape[0], xin.shape[1], self.n_post, *xin.shape[2:])
        if self.rule.post_feedback:  # the post neuron's output y_j[t] in the feedback slot o (IR doc)
            yin = y if y.dim() == 4 else y.unsqueeze(-1)  # (P, B, n_post, C_out)
            rs = rs._replace(o=yin.unsqueeze(3).expand_as(rs.o))
        z, rs = self.cell_step(xin, rs, bound)  # (P, B, n_post, n_pre, C_out)
        w = w_eff if w_eff.dim() == 2 else w_eff[:, 0].unsqueeze(1)
        a = (w.unsqueeze(-1) * z).sum(-2)
        return (a if self.cell.out_channels > 1 else a.squeeze(-1)), rs

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        return rs


class _SynQLowering(_RuleLowering):
    def bind(self, prm):  # noqa: ANN001
        r = self.rule
        return (rl.SynQParams(r.step, r.form, r.epsilon, r.gamma, r.lr, r.aggregation, r.seed),
                prm[f"{self.prefix}/q_table"])

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        q = bound[1]
        q = q.expand(P, B, 81, 3).clone() if q.dim() == 2 else q[:, 0].unsqueeze(1).expand(P, B, 81, 3).clone()
        ones = torch.ones(P, B, self.n_post, self.n_pre, dtype=torch.long, device=like.device)
        return rl.SynQState(_expand_w(w0, P, B), q, ones, ones, torch.ones(P, B, dtype=torch.long, device=like.device),
                            ones * 40, 0)

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        if self.rule.modulator:
            reward = mods[self.rule.modulator][..., 0, 0]
        if reward is None:
            return rs
        if not torch.is_tensor(reward):
            reward = torch.tensor(float(reward), device=rs.w.device)
        _, rs = rl.synq_step((reward,), rs, bound[0], mask, generator)
        return rs


class _LoihiLowering(_RuleLowering):
    def bind(self, prm):  # noqa: ANN001
        r = self.rule
        trees = tuple(rl.loihi_expr.parse_rule(getattr(r, f), self.proj.name, f) for f in ("dw", "dt", "dd"))
        return rl.LoihiParams(trees, (r.x1_impulse, r.x2_impulse), (rl.trace_decay(r.x1_tau), rl.trace_decay(r.x2_tau)),
                              (r.y1_impulse, r.y2_impulse, r.y3_impulse),
                              (rl.trace_decay(r.y1_tau), rl.trace_decay(r.y2_tau), rl.trace_decay(r.y3_tau)),
                              r.t_epoch)

    def init(self, P, B, w0, like, bound):  # noqa: ANN001
        r = self.rule
        z = like.new_zeros(P, B, self.n_post, self.n_pre)
        x = torch.stack([_initial(r.x1_init, (P, B, self.n_pre), like), _initial(r.x2_init, (P, B, self.n_pre), like)])
        zy = like.new_zeros(P, B, self.n_post)
        y = torch.stack([_initial(r.y1_init, (P, B, self.n_post), like), zy, zy])
        return rl.LoihiState(_expand_w(w0, P, B), _initial(r.t_init, z.shape, like), z, x, y,
                             like.new_zeros(P, B, self.n_pre), zy)

    def learn(self, x, y, mods, rs, bound, t, reward, generator, mask):  # noqa: ANN001
        third = None
        if self.rule.modulator:
            m = mods[self.rule.modulator][..., 0, :]
            third = m.expand(*m.shape[:-1], self.n_post)
        w_old = rs.w
        w, rs = rl.loihi_step((x, y, third, t), rs, bound)
        if mask is not None:
            rs = rs._replace(w=w_old + (w - w_old) * mask)
        return rs


LOWERING: dict[type, type] = {  # IR rule class -> lowering
    HebbianDecay: _DPLowering,
    Oja: _DPLowering,
    BCM: _DPLowering,
    PairSTDP: _STDPLowering,
    TripletSTDP: _STDPLowering,
    ThreeFactor: _ThreeFactorLowering,
    GatedSynapse: _GatedSynapseLowering,
    SynapticQ: _SynQLowering,
    LoihiRule: _LoihiLowering,
}

#: kinds this backend does not lower, and why (backends.base.missing_lowerings checks the IR has no others)
REFUSED: dict[type, str] = {
    EligibilityTrace: "an eligibility trace is lowered as part of the ThreeFactor rule that wraps it",
}


class _ProjLowering:
    def __init__(self, proj: Any, net: "TorchNetwork") -> None:
        self.proj = proj
        self.name = proj.name
        self.pre, self.post = proj.pre, proj.post
        self.delay = proj.delay
        self.wkey = f"{proj.name}/weight"
        self.mask_name = self.sign_name = None
        if proj.mask is not None and not bool(np.all(proj.mask)):
            self.mask_name = net._add_buffer(f"mask_{len(net._projs)}", torch.as_tensor(np.array(proj.mask), dtype=net.dtype))
        if proj.sign is not None and bool(np.any(proj.sign != 0)):
            self.sign_name = net._add_buffer(f"sign_{len(net._projs)}", torch.as_tensor(np.array(proj.sign), dtype=net.dtype))
            self.all_signed = bool(np.all(proj.sign != 0))
        self.sm_name = None
        if self.sign_name and self.all_signed and self.mask_name:
            self.sm_name = net._add_buffer(f"signmask_{len(net._projs)}", torch.as_tensor(
                np.array(proj.sign) * np.array(proj.mask), dtype=net.dtype))
        self.rule = None
        if proj.rule is not None:
            cls = lookup_lowering(LOWERING, proj.rule, BACKEND, REFUSED)
            self.rule = cls(proj.rule, proj, f"{proj.name}/rule", net)

    def effective(self, w: torch.Tensor, mask: Optional[torch.Tensor], sign: Optional[torch.Tensor],
                  sm: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``where(sign == 0, w, sign |w|) * mask`` (``sm = sign * mask`` when every synapse is signed)."""
        if sm is not None:
            return sm * w.abs()
        if sign is not None:
            w = sign * w.abs() if self.all_signed else torch.where(sign != 0, sign * w.abs(), w)
        if mask is not None:
            w = w * mask
        return w


def _modulate(m: Any, src: torch.Tensor, w_t: torch.Tensor, b: torch.Tensor, lead: int = 2) -> torch.Tensor:
    """``M = f(W out_src + b)`` of modulator ``m`` for source outputs whose first ``lead`` dims are
    batch-like (``(P, B, ...)`` per step) -> ``(*lead dims, channels, size)``."""
    shape = src.shape[:lead]
    z = torch.matmul(src.reshape(*shape, -1), w_t) + b
    return _ACTIVATIONS[m.activation](z).reshape(*shape, m.channels, m.size)


def sign_clip(w: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """A learned weight of a sign-constrained synapse stops at zero (``max(w, 0)`` for sign +1,
    ``min(w, 0)`` for -1, unchanged for 0), as Loihi's EXCITATORY / INHIBITORY sign modes clip."""
    return w + sign * torch.relu(-sign * w)


def _transposed(w: torch.Tensor) -> torch.Tensor:
    """``(rows, cols) -> (cols, rows)``; per individual ``(P, 1, rows, cols) -> (P, cols, rows)``."""
    return w.t() if w.dim() == 2 else w[:, 0].transpose(-1, -2)


def _project(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum_i w[j, i] x[i]``; ``w`` (n_post, n_pre), (P, 1, n_post, n_pre) or (P, B, n_post, n_pre);
    ``x`` (P, B, n_pre) or (P, B, n_pre, C). Per-individual and per-batch-element weights go through
    :func:`~plastix.backends.torch.rules.matvec` (row-vector forward, outer-product weight gradient)."""
    if x.dim() == 3:
        if w.dim() == 2:
            return torch.nn.functional.linear(x, w)
        return rl.matvec(w, x)
    return torch.matmul(w, x)


# ---------------------------------------------------------------------------------------------


class TorchNetwork(nn.Module):
    """A compiled graph. Use :func:`compile` to build one.

    >>> import torch
    >>> from plastix.ir.examples import cue_association_net
    >>> from plastix.backends.torch import compile
    >>> net = compile(cue_association_net())
    >>> T, P, B = 5, 1, 2
    >>> xs = {"cues": torch.zeros(T, P, B, 20), "learning_signal": torch.zeros(T, P, B, 2)}
    >>> out, state = net.run(xs)
    >>> tuple(out["action"].shape)
    (5, 1, 2, 2)
    """

    def __init__(self, graph: Graph, *, device: Any = None, dtype: torch.dtype = torch.float32,
                 precision: str = "float", surrogate: str = "fast_sigmoid", population: Optional[int] = None,
                 jit: bool = False, jit_chunk: int = 8, memory_limit: Any = None,
                 schedule: "Schedule | str" = Schedule.STEP) -> None:
        super().__init__()
        self.memory_limit = memory_limit  # bytes, "16G" or None (backends.memory.limit)
        if not isinstance(jit_chunk, int) or isinstance(jit_chunk, bool) or jit_chunk < 1:
            raise ValueError(f"compile: jit_chunk must be an int >= 1, got {jit_chunk!r}")
        if not isinstance(graph, Graph):
            raise TypeError(f"compile: expected a plastix.ir.Graph, got {type(graph).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"compile: precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "fixed":
            raise ValueError("internal: fixed precision is built by plastix.backends.torch.fixed")
        self.graph = graph
        self.dtype = dtype
        self.precision = precision
        self.population = population
        self.surrogate = surrogate
        self.spike = get_surrogate(surrogate)
        self.params = nn.ParameterDict()
        self._ndim: dict[str, int] = {}  # param -> rank it is used at (for per-individual views)
        self._buffers_names: list[str] = []
        self._pops: list[_PopLowering] = []
        self._projs: list[_ProjLowering] = []
        for pop in graph.populations:
            self._pops.append(lookup_lowering(POPULATIONS, pop, BACKEND, REFUSED)(pop, self))
            self._register(pop.name, pop, lead_for_cell=1)
        for proj in graph.projections:
            self._projs.append(_ProjLowering(proj, self))
            self._register(proj.name, proj, lead_for_cell=2)
        self._mods = {m.name: m for m in graph.modulators}
        for m in graph.modulators:
            self._register(m.name, m, lead_for_cell=0)
        self._used_mods = tuple(sorted({n for pr in self._projs if pr.rule is not None for n in pr.rule.modulators}))
        self._popd = {p.name: p for p in self._pops}
        self.inputs = tuple(graph.inputs)
        self.outputs = tuple(graph.outputs)
        self.jit = bool(jit)
        self.jit_layerwise = bool(jit)  # the layer-wise schedule compiles its chunks (any interval)
        self.jit_chunk = jit_chunk
        self._jit_fn: Optional[Callable] = None
        self._layer_jit_fn: Optional[Callable] = None
        self.schedule = parse_schedule(schedule)
        if self.jit:
            blocker = self._jit_blocker()
            if blocker and self.schedule is Schedule.STEP:
                warnings.warn(f"compile(jit=True): {blocker}; running eagerly", RuntimeWarning, stacklevel=3)
            self.jit = not blocker  # the step schedule's compiled chunks
        self._layer_plan = None
        if self.schedule is Schedule.LAYERWISE:
            from . import layerwise

            self._layer_plan = layerwise.plan(self)  # LayerwiseError: this graph cannot take it
        if device is not None:
            self.to(device)

    # -- construction helpers -----------------------------------------------------------------
    def _add_buffer(self, name: str, value: torch.Tensor) -> str:
        self.register_buffer(name, value)
        self._buffers_names.append(name)
        return name

    def _register(self, node_name: str, node: Any, lead_for_cell: int) -> None:
        for path, spec in _float_fields(node):
            key = f"{node_name}/{path}"
            value = get_path(node, path)
            t = torch.as_tensor(np.array(value), dtype=self.dtype)
            self.params[key] = nn.Parameter(t)
            nd = len(spec.shape) if spec.shape is not None else t.dim()
            if "cell/" in path and nd == 1:
                nd += lead_for_cell
            self._ndim[key] = nd

    # -- parameters --------------------------------------------------------------------------
    def param_names(self) -> tuple[str, ...]:
        """Names accepted by ``params=`` (``"<node>/<field>"``)."""
        return tuple(self.params.keys())

    def _resolve(self, params: Optional[Mapping[str, torch.Tensor]]) -> tuple[dict, Optional[int]]:
        prm: dict[str, torch.Tensor] = dict(self.params.items())
        P = None
        if params:
            for key, val in params.items():
                if key not in prm:
                    raise KeyError(f"params: unknown parameter {key!r}; known: {', '.join(self.params.keys())}")
                base = self.params[key]
                if tuple(val.shape[1:]) != tuple(base.shape):
                    raise ValueError(f"params[{key!r}]: expected shape (P, *{tuple(base.shape)}), got {tuple(val.shape)}")
                if P is None:
                    P = int(val.shape[0])
                elif val.shape[0] != P:
                    raise ValueError(f"params[{key!r}]: leading dim {val.shape[0]} differs from P = {P}")
                nd = self._ndim[key]
                val = val.to(dtype=base.dtype, device=base.device)
                prm[key] = val.reshape(P, 1, *([1] * (nd - base.dim())), *base.shape)
        return prm, P

    def bind(self, params: Optional[Mapping[str, torch.Tensor]] = None) -> tuple:
        """The network's parameters (with ``params`` overrides, as :meth:`run` takes them) resolved once
        into the form :meth:`pure_step` takes."""
        return self._bind(self._resolve(params)[0])

    def weights(self, state: NetState, *, params: Optional[Mapping[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """The weights in ``state`` of every projection whose rule changes them, ``(P, B, n_post, n_pre)``
        in IR units before mask and sign (``W``, or ``W + alpha E`` for the SpikePropamine rules): what
        the Lava network's ``weights()`` returns after its last run."""
        prm, _ = self._resolve(params)
        _, rules_b, weights, _ = self._bind(prm)
        return {pr.name: pr.rule.weight(state.projs[pr.name].rule, weights[pr.name][0], rules_b[pr.name])
                for pr in self._projs if pr.rule is not None and pr.rule.plastic_weight}

    def episode(self, inputs: Mapping[str, np.ndarray]) -> Episode:
        """One episode (P = B = 1, no gradient) of numpy ``inputs`` name -> ``(T, size[, channels])``:
        :class:`plastix.backends.base.Episode` (the interface every backend's network offers)."""
        return episode_of(self, inputs)

    def close(self) -> None:
        """Nothing to release (the interface of :func:`plastix.backends.compile`)."""

    def input_shape(self, name: str) -> tuple[int, ...]:
        """Per-step shape of input ``name`` after the leading ``(P, B)``: ``(size,)`` or ``(size, channels)``."""
        if name not in self.inputs:
            raise KeyError(f"{name!r} is not an input; the graph's inputs are {list(self.inputs)}")
        return tuple(self._popd[name].out_shape())

    def pure_step(self, xs: Mapping[str, torch.Tensor], state: NetState, bound: tuple, *, reward: Any = None,
                  generator: Optional[torch.Generator] = None) -> tuple[dict, NetState]:
        """One step as a pure function of ``(inputs, state, bound parameters)`` (:meth:`bind`), with no
        input checks: ``xs[name]`` must already be ``(P, B, *input_shape(name))``. What tracers and
        exporters (ONNX) record; :meth:`step` is the checked form."""
        return self._step(xs, state, bound, reward, generator)

    def _bind(self, prm: dict) -> tuple[dict, dict, dict]:
        pops = {p.name: p.bind(prm) for p in self._pops}
        rules = {pr.name: pr.rule.bind(prm) for pr in self._projs if pr.rule is not None}
        weights = {}
        for pr in self._projs:
            mask = getattr(self, pr.mask_name) if pr.mask_name else None
            sign = getattr(self, pr.sign_name) if pr.sign_name else None
            sm = getattr(self, pr.sm_name) if pr.sm_name else None
            w0 = prm[pr.wkey]
            static = pr.rule is None or not pr.rule.plastic_weight
            if isinstance(pr.rule, _DPLowering) and sign is None:
                static = True  # the fixed part W of W + alpha E (see _step)
            w_eff = pr.effective(w0, mask, sign, sm) if static else None
            w_t = None
            if pr.rule is None and self._popd[pr.pre].out_ch == 1:
                w_t = w_eff.t() if w_eff.dim() == 2 else w_eff[:, 0].transpose(-1, -2)
            weights[pr.name] = (w0, w_eff, mask, sign, sm, w_t)
        mods = {n: (_transposed(prm[f"{n}/weight"]), prm[f"{n}/bias"]) for n in self._used_mods}
        return pops, rules, weights, mods

    # -- state -------------------------------------------------------------------------------
    def init_state(self, P: Optional[int] = None, B: int = 1, *, params: Optional[Mapping[str, torch.Tensor]] = None,
                   generator: Optional[torch.Generator] = None) -> NetState:
        """Zero state for ``P`` individuals (default: ``population`` or 1) and batch ``B``.
        ``generator`` draws the initial output-gate noise of gated populations."""
        prm, Pp = self._resolve(params)
        P = P or Pp or self.population or 1
        self._check_memory(0, P, B, params)
        like = next(iter(self.params.values())) if len(self.params) else torch.zeros((), dtype=self.dtype)
        like = like.detach()
        out, neur, projs = {}, {}, {}
        for p in self._pops:
            out[p.name], neur[p.name] = p.init(P, B, like, generator)
        a = {p.name: like.new_zeros(P, B, *p.in_shape()) for p in self._pops if not isinstance(p, _InputLowering)}
        _, rules, weights, _ = self._bind(prm)
        for pr in self._projs:
            buf = tuple(like.new_zeros(P, B, *self._popd[pr.pre].out_shape()) for _ in range(pr.delay))
            w0, sign = weights[pr.name][0], weights[pr.name][3]
            if pr.rule is not None and pr.rule.stores_weight and sign is not None:
                w0 = pr.effective(w0, None, sign)  # a learned signed weight starts at sign |W|
            rs = pr.rule.init(P, B, w0, like, rules[pr.name]) if pr.rule is not None else None
            projs[pr.name] = ProjState(buf, rs)
        return NetState(0, out, a, neur, projs)

    # -- stepping ----------------------------------------------------------------------------
    def _inputs_step(self, name: str, x: torch.Tensor, P: int, B: int) -> torch.Tensor:
        shape = self._popd[name].out_shape()
        if x.dim() == len(shape) + 1:
            x = x.unsqueeze(0)
        if tuple(x.shape[2:]) != shape or x.shape[1] != B or x.shape[0] not in (1, P):
            raise ValueError(f"input {name!r}: expected shape (P={P}, B={B}, *{shape}) per step, got {tuple(x.shape)}")
        return x.to(self.dtype).expand(P, B, *shape)

    def _step(self, xs: Mapping[str, torch.Tensor], state: NetState, bound: tuple, reward: Any,
              generator: Optional[torch.Generator], force: Optional[Mapping[str, torch.Tensor]] = None
              ) -> tuple[dict, NetState]:
        pops_b, rules_b, weights, mods_b = bound
        t = state.t
        old = state.out
        mods = {}
        for name in self._used_mods:
            m = self._mods[name]
            mods[name] = _modulate(m, old[m.source], *mods_b[name])
        out, neur = {}, {}
        for p in self._pops:
            if isinstance(p, _InputLowering):
                out[p.name] = xs[p.name]
                neur[p.name] = None
            else:
                out[p.name], neur[p.name] = p.step(state.a[p.name], state.neurons[p.name], pops_b[p.name])
                if force is not None and p.name in force:  # straight-through: forced value, own gradient
                    out[p.name] = out[p.name] + (force[p.name] - out[p.name]).detach()
        a: dict[str, torch.Tensor] = {}
        projs = {}
        for pr in self._projs:
            ps = state.projs[pr.name]
            if pr.delay:
                x = ps.buf[-1]
                buf = (out[pr.pre],) + ps.buf[:-1]
            else:
                x, buf = out[pr.pre], ()
            w0, w_eff, mask, sign, sm, w_t = weights[pr.name]
            rs = ps.rule
            if w_t is not None:
                contrib = torch.matmul(x, w_t)
            elif pr.rule is None:
                contrib = _project(x, w_eff)
            elif not pr.rule.plastic_weight:
                contrib, rs = pr.rule.project(x, rs, rules_b[pr.name], w_eff, out[pr.post])
            else:
                if w_eff is not None:  # W + alpha E without a sign constraint: (W x) + (alpha E) x
                    contrib = _project(x, w_eff) + _project(x, pr.rule.plastic_part(rs, rules_b[pr.name], mask))
                else:
                    contrib = _project(x, pr.effective(pr.rule.weight(rs, w0, rules_b[pr.name]), mask, sign, sm))
                rs = pr.rule.learn(x, out[pr.post], mods, rs, rules_b[pr.name], t, reward, generator, mask)
                if sign is not None and pr.rule.stores_weight:
                    rs = rs._replace(w=sign_clip(rs.w, sign))
            a[pr.post] = contrib if pr.post not in a else a[pr.post] + contrib
            projs[pr.name] = ProjState(buf, rs)
        for p in self._pops:
            if p.name not in a and not isinstance(p, _InputLowering):
                a[p.name] = torch.zeros_like(state.a[p.name])
        return {n: out[n] for n in self.outputs}, NetState(t + 1, out, a, neur, projs)

    def step(self, inputs: Mapping[str, torch.Tensor], state: NetState, *,
             params: Optional[Mapping[str, torch.Tensor]] = None, reward: Any = None,
             generator: Optional[torch.Generator] = None) -> tuple[dict, NetState]:
        """One step. ``inputs``: name -> ``(P, B, size[, channels])`` (or ``(B, ...)``);
        ``reward``: ``(P, B)`` tensor or number for synaptic-Q rules without a modulator."""
        prm, _ = self._resolve(params)
        P, B = next(iter(state.out.values())).shape[:2]
        xs = self._check_inputs(inputs, P, B, per_step=True)
        return self._step(xs, state, self._bind(prm), reward, generator)

    def _check_inputs(self, inputs: Mapping[str, torch.Tensor], P: int, B: int, per_step: bool) -> dict:
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise KeyError(f"inputs: missing {missing}; the graph's inputs are {list(self.inputs)}")
        extra = [n for n in inputs if n not in self.inputs]
        if extra:
            raise KeyError(f"inputs: unknown {extra}; the graph's inputs are {list(self.inputs)}")
        if per_step:
            return {n: self._inputs_step(n, inputs[n], P, B) for n in self.inputs}
        return dict(inputs)

    def run(self, inputs: Mapping[str, torch.Tensor], state: Optional[NetState] = None, *,
            params: Optional[Mapping[str, torch.Tensor]] = None, reward: Any = None,
            generator: Optional[torch.Generator] = None, check_finite: bool = True,
            force: Optional[Mapping[str, torch.Tensor]] = None,
            schedule: "Schedule | str | None" = None) -> tuple[dict, NetState]:
        """Run ``T`` steps. ``inputs``: name -> ``(T, P, B, size[, channels])`` (``(T, B, ...)``
        broadcasts over P). ``params``: name -> ``(P, *shape)`` per-individual overrides.
        ``reward``: ``(T, P, B)`` / ``(T,)`` sequence or ``None`` (synaptic-Q).
        ``force``: population name -> outputs ``(T, P, B, size)`` (or ``(T, B, size)``) that replace
        what the population computes, straight-through (the forward value is the forced one, the
        gradient the population's own): e.g. spikes recorded in fixed point, so that a float backward
        pass trains what the fixed-point run did (runs eagerly, step schedule).
        ``schedule``: :class:`Schedule` of this run (default: the network's, ``compile(schedule=...)``);
        the layer-wise one takes no ``reward`` or ``force``; with ``jit`` it compiles its layer chunks.
        Returns outputs name -> ``(T, P, B, size[, channels])`` and the final state."""
        prm, Pp = self._resolve(params)
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise KeyError(f"inputs: missing {missing}; the graph's inputs are {list(self.inputs)}")
        first = inputs[self.inputs[0]] if self.inputs else None
        T = int(first.shape[0]) if first is not None else 0
        seqs = {}
        for n in self.inputs:
            x = inputs[n]
            if x.shape[0] != T:
                raise ValueError(f"input {n!r}: {x.shape[0]} steps, but {self.inputs[0]!r} has {T}")
            if check_finite and not bool(torch.isfinite(x).all()):
                raise ValueError(f"input {n!r}: contains NaN or inf")
            seqs[n] = x
        shape0 = self._popd[self.inputs[0]].out_shape() if self.inputs else ()
        if state is None:
            if first is not None and first.dim() == len(shape0) + 3:
                P, B = int(first.shape[1]), int(first.shape[2])
                P = max(P, Pp or 1)
            else:
                P, B = (Pp or self.population or 1), int(first.shape[1]) if first is not None else 1
            state = self.init_state(P, B, params=params, generator=generator)
        P, B = next(iter(state.out.values())).shape[:2]
        self._check_memory(T, P, B, params)
        seqs = {n: self._inputs_seq(n, x, P, B) for n, x in seqs.items()}
        bound = self._bind(prm)
        forced = self._forced(force, T, P, B)
        sched = self.schedule if schedule is None else parse_schedule(schedule)
        if sched is Schedule.LAYERWISE and T > 0:
            return self._run_layerwise(seqs, state, bound, reward, forced)
        if self.jit and T > 0 and forced is None:
            if reward is not None:
                raise ValueError("run: reward is only used by synaptic-Q rules, which jit-compiled graphs do not have")
            return self._run_jit(seqs, state, bound, T)
        outs: dict[str, list] = {n: [] for n in self.outputs}
        # without autograd, one buffer per output: per-step tensors kept alive between the freed state
        # tensors of every step fragment the heap (a long run's memory grew ~7x over its estimate)
        record: Optional[dict[str, torch.Tensor]] = None if torch.is_grad_enabled() else {}
        for t in range(T):
            r = reward[t] if (reward is not None and torch.is_tensor(reward) and reward.dim() > 0) else reward
            y, state = self._step({n: s[t] for n, s in seqs.items()}, state, bound, r, generator,
                                  None if forced is None else {n: f[t] for n, f in forced.items()})
            for n in self.outputs:
                if record is None:
                    outs[n].append(y[n])
                else:
                    if n not in record:
                        record[n] = y[n].new_empty((T, *y[n].shape))
                    record[n][t] = y[n]
        if record is not None and T > 0:
            return record, state
        return {n: torch.stack(v) for n, v in outs.items()}, state

    def _run_layerwise(self, seqs: dict, state: NetState, bound: tuple, reward: Any,
                       forced: Optional[dict]) -> tuple[dict, NetState]:
        from . import layerwise

        if reward is not None or forced is not None:
            raise layerwise.LayerwiseError("run: reward and force need the step schedule (schedule='step')")
        if self._layer_plan is None:
            self._layer_plan = layerwise.plan(self)
        if not self.jit_layerwise:
            return layerwise.run(self, self._layer_plan, seqs, state, bound)
        if self._layer_jit_fn is None:
            self._layer_jit_fn = torch.compile(self._layer_chunk, dynamic=False, fullgraph=True)
        return layerwise.run(self, self._layer_plan, seqs, state, bound, self._layer_jit)

    def _layer_chunk(self, index: int, *args: Any) -> tuple:
        """:func:`~plastix.backends.torch.layerwise.layer_chunk` of layer ``index`` of this network's plan
        (what ``jit`` compiles: one variant per layer, chunk length, rule phases and ``next_weight``)."""
        from . import layerwise

        return layerwise.layer_chunk(self._layer_plan.layers[index], *args)

    def _layer_jit(self, index: int, K: int, xs: dict, static: dict, plastic_w: dict, carry: torch.Tensor, nst: Any,
                   rstates: dict, prev: dict, phases: tuple, bound: tuple, next_weight: bool) -> tuple:
        """The compiled :meth:`_layer_chunk` (eagerly, with a warning, if compiling fails). The chunk's
        input sequences are copied: slices of one window alias each other differently from chunk to
        chunk, and dynamo guards on aliasing between arguments."""
        fresh = lambda d: {n: None if v is None else v.clone() for n, v in d.items()}  # noqa: E731
        plastic_w, carry, nst, rstates = self._compile_ready((plastic_w, carry, nst, rstates))
        args = (index, K, fresh(xs), fresh(static), plastic_w, carry, nst, rstates, fresh(prev), phases, bound,
                next_weight)
        if self._layer_jit_fn is not None:
            try:
                # every network compiles this same method, and dynamo counts the variants of all of them
                # (layers x chunk lengths x phases) against one recompile_limit (8): raised for these calls
                with torch._dynamo.config.patch(recompile_limit=LAYER_JIT_VARIANTS):
                    return self._layer_jit_fn(*args)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: warn, continue eagerly
                warnings.warn(f"jit: torch.compile of the layer-wise chunks failed ({type(exc).__name__}: {exc}); "
                              "running eagerly", RuntimeWarning, stacklevel=4)
                self._layer_jit_fn, self.jit_layerwise = None, False
        return self._layer_chunk(*args)

    def _forced(self, force: Optional[Mapping[str, torch.Tensor]], T: int, P: int, B: int) -> Optional[dict]:
        if not force:
            return None
        out = {}
        for n, f in force.items():
            if n not in self._popd or isinstance(self._popd[n], _InputLowering):
                raise KeyError(f"force: {n!r} is not a non-input population; known: "
                               f"{', '.join(p.name for p in self._pops if not isinstance(p, _InputLowering))}")
            shape = self._popd[n].out_shape()
            f = f.unsqueeze(1) if f.dim() == len(shape) + 2 else f
            if f.shape[0] != T or f.shape[1] not in (1, P) or f.shape[2] != B or tuple(f.shape[3:]) != shape:
                raise ValueError(f"force {n!r}: expected shape (T={T}, P={P}, B={B}, *{shape}), got {tuple(f.shape)}")
            out[n] = f.to(self.dtype).expand(T, P, B, *shape)
        return out

    def _check_memory(self, steps: int, P: int, B: int, params: Optional[Mapping[str, torch.Tensor]]) -> None:
        """Refuse (``MemoryLimitError``) a run whose estimate exceeds the limit, before allocating it."""
        grad = torch.is_grad_enabled() and (any(p.requires_grad for p in self.params.values()) or any(
            torch.is_tensor(v) and v.requires_grad for v in (params or {}).values()))
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        memory.check(memory.torch_run(self.graph, steps, P=int(P), B=int(B), itemsize=itemsize, grad=grad),
                     self.memory_limit)

    def _inputs_seq(self, name: str, x: torch.Tensor, P: int, B: int) -> torch.Tensor:
        shape = self._popd[name].out_shape()
        if x.dim() == len(shape) + 2:
            x = x.unsqueeze(1)
        if tuple(x.shape[3:]) != shape or x.shape[2] != B or x.shape[1] not in (1, P):
            raise ValueError(f"input {name!r}: expected shape (T, P={P}, B={B}, *{shape}), got {tuple(x.shape)}")
        return x.to(self.dtype).expand(x.shape[0], P, B, *shape)

    forward = run

    # -- jit: K steps as one torch.compile'd pure function ------------------------------------
    def _jit_blocker(self) -> str:
        """Why this graph cannot take the compiled path ('' if it can)."""
        for pr in self._projs:
            if pr.rule is None:
                continue
            kind = pr.rule.rule.kind
            if kind not in JIT_RULES:
                return f"rule kind {kind!r} of projection {pr.name!r} depends on the step index or an RNG"
            if kind in ("hebbian_decay", "oja", "bcm") and pr.rule.rule.interval != 1:
                return f"projection {pr.name!r}: interval {pr.rule.rule.interval} > 1 depends on the step index"
        return ""

    def _chunk(self, xs: dict, out: dict, a: dict, neurons: dict, projs: dict, bound: tuple) -> tuple:
        """``jit_chunk`` steps (unrolled) on a state without its step index; ``xs``: name ->
        ``(K, P, B, ...)``. Returns the stacked outputs and the new state's parts."""
        state = NetState(0, out, a, neurons, projs)
        ys: dict[str, list] = {n: [] for n in self.outputs}
        for k in range(self.jit_chunk):
            y, state = self._step({n: x[k] for n, x in xs.items()}, state, bound, None, None)
            for n in self.outputs:
                ys[n].append(y[n])
        return {n: torch.stack(v) for n, v in ys.items()}, state.out, state.a, state.neurons, state.projs

    def _compile_ready(self, state: Any) -> Any:
        """``state`` (a nest of tensors) as compiled chunks take it. Dynamo guards on tensor aliasing: a
        state whose fields share storage (zeros of init_state) would compile twice; distinct copies keep
        one compiled variant per grad mode. With autograd on, a state that does not require grad (the zero initial
        state, a stored one) is made a leaf that requires grad for the same reason (the states of later
        chunks require grad); its gradient is a by-product nobody reads."""
        seen: set = set()
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.params.values())

        def unalias(v: Any) -> Any:
            if not torch.is_tensor(v):
                return v
            key = v.untyped_storage().data_ptr()
            if key in seen:
                v = v.clone()
            seen.add(key)
            if grad and v.is_floating_point() and not v.requires_grad:
                v = v.detach().clone().requires_grad_(True)
            return v

        return pytree.tree_map(unalias, state)

    def _run_jit(self, seqs: dict, state: NetState, bound: tuple, T: int) -> tuple[dict, NetState]:
        """``run``'s loop over compiled chunks; the remaining ``T % jit_chunk`` steps run eagerly.
        Falls back to eager (with a warning) if compiling fails."""
        if self._jit_fn is None:
            self._jit_fn = torch.compile(self._chunk, dynamic=False, fullgraph=True)
        inputs_out = {n: state.out[n] for n in self.inputs}  # carry x[t - 1], which never requires grad
        state = self._compile_ready(state)
        state = state._replace(out={**state.out, **inputs_out})
        K = self.jit_chunk
        outs: dict[str, list] = {n: [] for n in self.outputs}
        t0, t, parts = 0, state.t, (state.out, state.a, state.neurons, state.projs)
        while t0 + K <= T and self._jit_fn is not None:
            # a copy per chunk: the carried input outputs are views of the previous chunk's inputs, and
            # dynamo guards on aliasing between arguments
            xc = {n: s[t0:t0 + K].clone() for n, s in seqs.items()}
            try:
                ys, *parts = self._jit_fn(xc, *parts, bound)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: warn, continue eagerly
                warnings.warn(f"jit: torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                              RuntimeWarning, stacklevel=3)
                self._jit_fn, self.jit = None, False
                break
            for n in self.outputs:
                outs[n].append(ys[n])
            t0, t = t0 + K, t + K
        state = NetState(t, *parts)
        for k in range(t0, T):
            y, state = self._step({n: s[k] for n, s in seqs.items()}, state, bound, None, None)
            for n in self.outputs:
                outs[n].append(y[n].unsqueeze(0))
        return {n: torch.cat(v) for n, v in outs.items()}, state

    def modulator_values(self, name: str, source_out: torch.Tensor, *,
                         params: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """``M[t]`` of modulator ``name`` over a run, from its source population's outputs
        ``source_out`` ``(T, P, B, ...)`` (as :meth:`run` returns them): ``M[t] = f(W out[t-1] + b)``
        with a zero output before the first step. Returns ``(T, P, B, channels, size)``."""
        if name not in self._mods:
            raise KeyError(f"unknown modulator {name!r}; known: {', '.join(self._mods)}")
        prm, _ = self._resolve(params)
        m = self._mods[name]
        prev = torch.cat([torch.zeros_like(source_out[:1]), source_out[:-1]])
        return _modulate(m, prev, _transposed(prm[f"{name}/weight"]), prm[f"{name}/bias"], lead=3)

    # -- export ------------------------------------------------------------------------------
    def to_graph(self) -> Graph:
        """A new Graph with the current parameter values written back (train -> export)."""
        return export_graph(self)


def export_graph(net: TorchNetwork, params: Optional[Mapping[str, torch.Tensor]] = None) -> Graph:
    """Write ``net``'s parameters (or ``params``, name -> tensor of the parameter's shape, e.g. one
    individual of an ES population) back into a copy of the compiled graph."""
    g = net.graph
    values = {k: v for k, v in net.params.items()}
    if params:
        values.update(params)
    nodes = {n.name: n for n in (*g.populations, *g.projections, *g.modulators)}
    for key, val in values.items():
        node, path = key.split("/", 1)
        arr = val.detach().to("cpu", torch.float64).numpy()
        nodes[node] = _set_path(nodes[node], path.split("/"), arr)
    return g.replace(populations=tuple(nodes[p.name] for p in g.populations),
                     projections=tuple(nodes[p.name] for p in g.projections),
                     modulators=tuple(nodes[m.name] for m in g.modulators))


def episode_of(net: Any, inputs: Mapping[str, np.ndarray]) -> Episode:
    """:meth:`TorchNetwork.episode` for any torch network with ``run`` and ``weights(state)``."""
    xs = {n: torch.as_tensor(np.asarray(x), dtype=net.dtype)[:, None, None] for n, x in inputs.items()}
    with torch.no_grad():
        out, state = net.run(xs)
        weights = {n: w[0, 0].cpu().numpy().copy() for n, w in net.weights(state).items()}
    return Episode({n: v[:, 0, 0].cpu().numpy() for n, v in out.items()}, weights)
