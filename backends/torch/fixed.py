r"""Loihi fixed-point mode: Lava ``fixed_pt`` integer arithmetic (lava-nc 0.10.0), bit-exact.

Implements ``PyLifModelBitAcc`` (``AbstractPyLifModelFixed.subthr_dynamics``) and
``PyDenseModelBitAcc`` as ``/work/shared/lava-notes.md`` ("Reference semantics") describes them,
on the integers :mod:`plastix.backends.quantize` derives from a representable graph (the same ones
the Lava backend passes to Lava). All state is int64; the synaptic sums use float64 matmuls, which
are exact for these magnitudes (< 2^53) and run on any device.

Supported: ``input``, ``cuba_lif`` (no refractory period: Lava's fixed LIF has none), ``li``,
static projections (mask, sign, delay, fractional weights: ``floor(W x)``), initial ``u`` / ``v``,
and every rule the Lava backend runs on Loihi's learning engine
(:func:`plastix.backends.learning_engine.engine_rule`: ``LoihiRule``, additive pair STDP,
global / per-post three-factor STDP with or without eligibility, one or two modulator channels),
emulated bit-exactly by :mod:`plastix.backends.torch.fixed_learning` with the Lava lowering's
conventions: the ``LearningDense`` starts from the integer weights truncated by its sign mode
(MIXED: to even values; EXCITATORY / INHIBITORY for projections whose synapses are all +1 / -1),
weight_exp 0; a three-factor rule's post neuron is a ``ThreeFactorLIF`` whose ``y2`` (``y3``) is the
modulator's graded Dense output of the previous step, times ``2^third_shift``. Host-emulated
rules, other modulators and gated units raise :class:`plastix.ir.UnsupportedKindError`.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from ...ir import Graph, UnsupportedKindError
from .. import memory
from ..base import Episode
from ..learning_engine import check_post_neuron, engine_inits, engine_rule, engine_weights, modulator_rows
from ..quantize import dense_to_fixed, effective_weight, lava_dense_effective, lif_to_fixed
from .fixed_learning import EngineRule, engine_activation, engine_init, engine_params, engine_step
from .network import BACKEND, ProjState, episode_of

U_BITS = 24
MAX_UV = 2 ** (U_BITS - 1)


class FixedLIFState(NamedTuple):
    u: torch.Tensor  # int64 (P, B, size), Lava units (64 x float units)
    v: torch.Tensor
    third: Optional[tuple] = None  # ThreeFactorLIF: third factors (y2, y3) delivered next step


class FixedLIFParams(NamedTuple):
    du: torch.Tensor  # int64 (size,) Lava du (decay (du + 1) / 4096)
    dv: torch.Tensor
    vth: torch.Tensor  # vth << 6
    bias: torch.Tensor  # bias_mant << bias_exp
    spiking: bool
    u0: Optional[torch.Tensor] = None  # initial u, v (Lava units)
    v0: Optional[torch.Tensor] = None


def _decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``sign(x keep) * (|x keep| >> 12)`` (truncation toward zero), int64."""
    y = x * keep
    return torch.sign(y) * (y.abs() >> 12)


def lif_fixed_step(a: torch.Tensor, state: FixedLIFState, p: FixedLIFParams) -> tuple[torch.Tensor, FixedLIFState]:
    """One time step of Lava's bit-accurate LIF on int64 tensors; ``a`` is the Dense output."""
    u = _decay(state.u, 4096 - (p.du + 1)) + (a << 6)
    u = torch.where(u > MAX_UV, u - 2 * MAX_UV, u)
    u = torch.where(u <= -MAX_UV, u + 2 * MAX_UV, u)
    v = (_decay(state.v, 4096 - p.dv) + u + p.bias).clamp(-MAX_UV + 1, MAX_UV - 1)
    if not p.spiking:
        return v, FixedLIFState(u, v)
    s = v > p.vth
    v = torch.where(s, torch.zeros_like(v), v)
    return s, FixedLIFState(u, v)


def dense_fixed_step(x: torch.Tensor, w: torch.Tensor, weight_exp: int) -> torch.Tensor:
    """Lava's bit-accurate Dense: ``(W @ x) << weight_exp`` (``>>`` with floor if negative).
    ``x`` int64 (P, B, n_pre), ``w`` float64 (n_post, n_pre) of clipped/truncated mantissas."""
    acc = torch.nn.functional.linear(x.to(torch.float64), w).round().to(torch.int64)
    return acc << weight_exp if weight_exp > 0 else acc >> (-weight_exp)


class FixedNetwork(nn.Module):
    """A graph compiled for ``precision="fixed"``; same ``init_state`` / ``step`` / ``run`` API as
    :class:`~plastix.backends.torch.network.TorchNetwork` (no per-individual params). Outputs:
    spikes as 0/1 in ``dtype``; an LI readout's ``v_fixed / 64`` (float units, exact)."""

    def __init__(self, graph: Graph, *, device: Any = None, dtype: torch.dtype = torch.float32,
                 population: Optional[int] = None, memory_limit: Any = None) -> None:
        super().__init__()
        self.memory_limit = memory_limit  # bytes, "16G" or None (backends.memory.limit)
        self.graph = graph
        self.dtype = dtype
        self.population = population
        self.precision = "fixed"
        self.inputs, self.outputs = tuple(graph.inputs), tuple(graph.outputs)
        self._pops: list[tuple[str, str, int]] = []  # (name, kind, size)
        self._lif: dict[str, Any] = {}
        for p in graph.populations:
            if p.kind not in ("input", "cuba_lif", "li"):
                raise UnsupportedKindError(f"{p.kind} (fixed precision)", BACKEND, ("input", "cuba_lif", "li"))
            if p.kind == "cuba_lif" and p.refractory:
                raise UnsupportedKindError("cuba_lif with refractory (fixed precision)", BACKEND, ("cuba_lif",))
            self._pops.append((p.name, p.kind, p.size))
            if p.kind != "input":
                li = lif_to_fixed(p)
                name = len(self._lif)
                for fld, val in (("du", li.du), ("dv", li.dv), ("vth", li.vth << 6),
                                 ("bias", np.where(li.bias_exp >= 0, li.bias_mant << li.bias_exp, li.bias_mant)),
                                 ("u0", li.u_init), ("v0", li.v_init)):
                    self.register_buffer(f"lif{name}_{fld}", torch.as_tensor(np.asarray(val, dtype=np.int64)))
                self._lif[p.name] = (name, p.kind == "cuba_lif")
        self._projs: list[tuple[str, str, str, int, int]] = []  # (name, pre, post, delay, weight_exp)
        self._engine: dict[str, EngineRule] = {}  # plastic projection -> its learning engine
        self._engine_init: dict[str, dict] = {}  # plastic projection -> integer traces / tag at step 0
        self._mods: dict[str, tuple[str, str, int, int]] = {}  # "mod->post:c" -> (source, post, weight_exp, channel)
        self._posts: dict[str, tuple] = {}  # ThreeFactorLIF population -> what it sends
        kinds = {n: k for n, k, _ in self._pops}
        for i, pr in enumerate(graph.projections):
            if pr.rule is not None:
                self._add_engine(graph, i, pr, kinds)
                continue
            d = dense_to_fixed(pr.name, effective_weight(pr))
            w = lava_dense_effective(d.weights, d.sign_mode, d.num_weight_bits)
            self.register_buffer(f"w{i}", torch.as_tensor(w.astype(np.float64)))
            self._projs.append((pr.name, pr.pre, pr.post, pr.delay, d.weight_exp))
        self._size = {n: s for n, _, s in self._pops}
        if device is not None:
            self.to(device)

    def _add_engine(self, graph: Graph, i: int, pr: Any, kinds: dict) -> None:
        """A plastic projection as the Lava lowering builds it: LearningDense + Loihi 2F/3F rule."""
        engine, why = engine_rule(graph, pr)
        if engine is None:
            raise UnsupportedKindError(pr.rule.kind, BACKEND, reason=f"no fixed-point (learning-engine) form: {why}; "
                                       "the Lava backend host-emulates it in float64")
        if pr.delay:
            raise UnsupportedKindError("plastic projection with delay > 0", BACKEND, ("static projection with delay",))
        w0 = lava_dense_effective(engine_weights(pr, engine.sign_mode), engine.sign_mode, 8)  # truncated once
        self.register_buffer(f"w{i}", torch.as_tensor(w0.astype(np.int64)))
        self._projs.append((pr.name, pr.pre, pr.post, 0, 0))
        self._engine[pr.name] = EngineRule(engine_params(engine, sign_mode=engine.sign_mode, node=pr.name))
        self._engine_init[pr.name] = engine_inits(pr, engine)
        if engine.kind != "3f":
            return
        if kinds[pr.post] != "cuba_lif":
            raise UnsupportedKindError(f"{pr.rule.kind} onto {kinds[pr.post]}", BACKEND, ("cuba_lif post",))
        check_post_neuron(self._posts, pr.post, engine, pr.name)
        m = graph.modulator(engine.modulator)
        for c, w in enumerate(modulator_rows(graph, engine, pr.n_post)):
            key = f"{m.name}->{pr.post}:{c}"
            if key in self._mods:
                continue
            d = dense_to_fixed(m.name, w * 2.0 ** engine.third_exp("fixed"))
            self.register_buffer(f"m{len(self._mods)}", torch.as_tensor(
                lava_dense_effective(d.weights, d.sign_mode, d.num_weight_bits).astype(np.float64)))
            self._mods[key] = (m.source, pr.post, d.weight_exp, c)

    def _lif_params(self, name: str) -> FixedLIFParams:
        i, spiking = self._lif[name]
        g = lambda f: getattr(self, f"lif{i}_{f}")  # noqa: E731
        return FixedLIFParams(g("du"), g("dv"), g("vth"), g("bias"), spiking, g("u0"), g("v0"))

    def param_names(self) -> tuple[str, ...]:
        return ()

    def init_state(self, P: Optional[int] = None, B: int = 1, **_: Any) -> Any:
        from .network import NetState
        P = P or self.population or 1
        memory.check(memory.torch_run(self.graph, 0, P=P, B=B, itemsize=8), self.memory_limit)
        buf0 = next(self.buffers(), None)
        dev = buf0.device if buf0 is not None else torch.device("cpu")
        z = lambda n: torch.zeros(P, B, n, dtype=torch.int64, device=dev)  # noqa: E731
        out = {n: z(s) for n, _, s in self._pops}
        neur = {n: (FixedLIFState(self._lif_params(n).u0.expand(P, B, s).clone(),
                                  self._lif_params(n).v0.expand(P, B, s).clone(),
                                  (z(s), z(s)) if n in self._posts else None) if k != "input" else None)
                for n, k, s in self._pops}
        a = {n: z(s) for n, _, s in self._pops}
        projs = {}
        for i, pr in enumerate(self._projs):
            rule = None
            if pr[0] in self._engine:
                w0 = getattr(self, f"w{i}").to(dev)
                rule = engine_init(w0, P, B, *w0.shape, kind=self._engine[pr[0]].p.kind, init=self._engine_init[pr[0]])
            projs[pr[0]] = ProjState(tuple(z(self._size[pr[1]]) for _ in range(pr[3])), rule)
        return NetState(0, out, a, neur, projs)

    def _step(self, xs: Mapping[str, torch.Tensor], state: Any) -> tuple[dict, Any]:
        from .network import NetState
        out, neur = {}, {}
        for n, kind, _ in self._pops:
            if kind == "input":
                out[n], neur[n] = xs[n], None
            else:
                o, neur[n] = lif_fixed_step(state.a[n], state.neurons[n], self._lif_params(n))
                out[n] = o.to(torch.int64) if kind == "cuba_lif" else o
        a: dict[str, torch.Tensor] = {}
        projs = {}
        tau = state.t + 1  # Lava time step
        for i, (name, pre, post, delay, wexp) in enumerate(self._projs):
            ps = state.projs[name]
            buf, rule = ps.buf, ps.rule
            if delay:
                x, buf = buf[-1], (out[pre],) + buf[:-1]
            else:
                x = out[pre]
            if rule is not None:  # LearningDense: W s with this step's weights, then the engine
                c = engine_activation(x, rule)
                er = self._engine[name]
                third = state.neurons[post].third if er.p.kind == "3f" else None
                rule = engine_step(x, out[post], third, tau, rule, er)
            else:
                c = dense_fixed_step(x, getattr(self, f"w{i}"), wexp)
            a[post] = c if post not in a else a[post] + c
            projs[name] = ProjState(buf, rule)
        if self._mods:  # graded Dense of each modulator channel into its ThreeFactorLIF's y2 / y3 port
            th: dict[str, list] = {}
            for j, (src, post, wexp, ch) in enumerate(self._mods.values()):
                c = dense_fixed_step(out[src], getattr(self, f"m{j}"), wexp)
                acc = th.setdefault(post, [None, None])
                acc[ch] = c if acc[ch] is None else acc[ch] + c
            for post, (y2, y3) in th.items():
                neur[post] = neur[post]._replace(third=(y2, y3))
        for n, _, _ in self._pops:
            a.setdefault(n, torch.zeros_like(state.a[n]))
        ys = {}
        for n in self.outputs:
            kind = next(k for m, k, _ in self._pops if m == n)
            ys[n] = out[n].to(self.dtype) / 64 if kind == "li" else out[n].to(self.dtype)
        return ys, NetState(state.t + 1, out, a, neur, projs)

    def _int_input(self, name: str, x: torch.Tensor) -> torch.Tensor:
        xi = x.round().to(torch.int64) if x.is_floating_point() else x.to(torch.int64)
        if x.is_floating_point() and not bool((xi.to(x.dtype) == x).all()):
            raise ValueError(f"input {name!r}: fixed precision needs integer-valued inputs (spikes 0/1)")
        return xi

    def compile_step(self, **options: Any) -> "FixedNetwork":
        """Run every step through ``torch.compile(**options)`` (one fused graph per step instead of
        ~150 small ops; several times faster at batch 1). The fixed-point step is integer
        arithmetic, table look-ups and comparisons only, so compiled results stay bit-identical.
        The first run pays the compile time (seconds to a minute). Returns ``self``."""
        self._step = torch.compile(FixedNetwork._step.__get__(self), **options)  # type: ignore[method-assign]
        return self

    def _ensure(self, steps: int, device: Any) -> None:
        """Per-step random-stream values of every learning projection up to Lava step ``steps``."""
        for er in self._engine.values():
            er.ensure(steps, device)

    def step(self, inputs: Mapping[str, torch.Tensor], state: Any, **_: Any) -> tuple[dict, Any]:
        P, B = next(iter(state.out.values())).shape[:2]
        self._ensure(state.t + 1, next(iter(state.out.values())).device)
        xs = {n: self._int_input(n, inputs[n]).expand(P, B, self._size[n]) for n in self.inputs}
        return self._step(xs, state)

    def run(self, inputs: Mapping[str, torch.Tensor], state: Any = None, *, params: Any = None, **_: Any) -> tuple[dict, Any]:
        if params:
            raise ValueError("params: per-individual parameters are not supported in fixed precision")
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise KeyError(f"inputs: missing {missing}; the graph's inputs are {list(self.inputs)}")
        seqs = {}
        for n in self.inputs:
            x = inputs[n]
            if x.dim() == 3:
                x = x.unsqueeze(1)
            seqs[n] = self._int_input(n, x)
        first = seqs[self.inputs[0]]
        T = first.shape[0]
        if state is None:
            state = self.init_state(int(first.shape[1]), int(first.shape[2]))
        P, B = next(iter(state.out.values())).shape[:2]
        memory.check(memory.torch_run(self.graph, T, P=P, B=B, itemsize=8), self.memory_limit)
        self._ensure(state.t + T, next(iter(state.out.values())).device)
        outs: dict[str, torch.Tensor] = {}  # one buffer per output: no per-step tensors kept alive
        for t in range(T):
            y, state = self._step({n: s[t].expand(P, B, self._size[n]) for n, s in seqs.items()}, state)
            for n in self.outputs:
                if n not in outs:
                    outs[n] = y[n].new_empty((T, *y[n].shape))
                outs[n][t] = y[n]
        if T == 0:
            return {n: torch.empty(0, P, B, self._size[n], dtype=self.dtype) for n in self.outputs}, state
        return outs, state

    forward = run

    def weights(self, state: Any) -> dict[str, torch.Tensor]:
        """The learning engine's weights in ``state`` (Loihi integers, ``(P, B, n_post, n_pre)``) of every
        projection that learns: what the Lava network's ``weights()`` returns in fixed point."""
        return {name: state.projs[name].rule.w for name, *_ in self._projs if state.projs[name].rule is not None}

    def episode(self, inputs: Mapping[str, np.ndarray]) -> Episode:
        """One episode of numpy inputs (:class:`plastix.backends.base.Episode`)."""
        return episode_of(self, inputs)

    def close(self) -> None:
        """Nothing to release (the interface of :func:`plastix.backends.compile`)."""

    def to_graph(self) -> Graph:
        return self.graph
