r"""The layer-wise schedule: a feed-forward graph run one population at a time, in interval chunks.

The step schedule (:meth:`plastix.backends.torch.TorchNetwork.run`, ``docs/semantics.md``) runs the
whole graph one step at a time, so a projection multiplies its weight in effect ``W[t]`` by ``x[t]``
at every step. For a SpikePropamine rule (:class:`plastix.ir.HebbianDecay`, :class:`plastix.ir.Oja`,
:class:`plastix.ir.BCM`) that is a per-sample matrix (``W + alpha E``, ``E`` per batch element) read
once per step, although ``E`` changes only at the end of the steps ``t`` with
``(t + 1) % interval == 0``. In a graph without cycles every population's input sequence is known
once the populations before it (in topological order) have run the window, so this schedule runs
the populations in that order, each over the whole window, in chunks ``c = [s, e]`` that end where
one of its incoming rules updates (or at the window's end):

.. math::

    a_{post}[t + 1] = W x[t] + (\alpha \odot E_c)\, x[t] \quad (t \in c;\ \text{one matmul per chunk})

    out_{post}[t] = f(a_{post}[t], \text{neuron state}) \quad (t \in c;\ \text{the population's step})

    E_{c+1} = \mathrm{rule}\big(\textstyle\sum_{t \in c} x[t], \sum_{t \in c} y[t], M[e], E_c\big)

with the step schedule's timing: the post population reads at step ``t`` the input ``a[t]`` that its
projections produced at step ``t - 1``; ``x[t] = out_{pre}[t - delay]``; ``y[t] = out_{post}[t]``;
``M[t] = f(W_m out_{src}[t - 1] + b)``. The rule sees the chunk's summed ``x`` and ``y`` (it
accumulates them until its update step, :func:`plastix.backends.torch.rules.dp_step`), so outputs,
final state and gradients equal the step schedule's up to float summation order. Static projections
take their whole window in one matmul. One chunk of one layer is :func:`layer_chunk` (the steps, then
the rule update and the next chunk's ``alpha E_{c+1}``), a pure function of tensors that
``compile(..., jit=True)`` hands to ``torch.compile``, which fuses the E update with that product;
the rule gets its step index modulo its interval (all it depends on), so chunks of equal length and
phase compile once.

:func:`plan` accepts graphs whose projections form no cycle, whose projections are static or carry
a rule whose weight in effect changes only at interval ends (``chunk_interval`` of the rule
lowering), whose modulators read a population that has run by the time the rule updates (the
rule's post population or one before it), and whose populations have one channel; it raises
:class:`LayerwiseError` naming the offending node otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from .network import NetState, ProjState, _InputLowering, _modulate, _PopLowering, _ProjLowering
from .rules import matvec

Tensor = torch.Tensor


class LayerwiseError(ValueError):
    """A graph (or a run) the layer-wise schedule cannot take; the message names the node and why."""


@dataclass(frozen=True)
class Layer:
    """A non-input population and the projections into it, in graph order."""

    pop: _PopLowering
    projs: tuple[_ProjLowering, ...]
    modulators: dict[str, Any]  # name -> IR modulator of every rule of ``projs``


@dataclass(frozen=True)
class LayerPlan:
    """The non-input populations of a graph in topological order (every projection's pre before its post)."""

    layers: tuple[Layer, ...]


def plan(net: Any) -> LayerPlan:
    """The layer order of ``net`` (a :class:`~plastix.backends.torch.TorchNetwork`), or
    :class:`LayerwiseError` if the layer-wise schedule cannot run its graph (module docstring)."""
    for pr in net._projs:
        if pr.rule is not None and pr.rule.chunk_interval is None:
            raise LayerwiseError(f"projection {pr.name!r}: rule kind {pr.rule.rule.kind!r} changes the synapse "
                                 "at every step; the layer-wise schedule runs static projections and interval "
                                 "rules (hebbian_decay, oja, bcm)")
    for p in net._pops:
        if p.in_ch != 1 or p.out_ch != 1:
            raise LayerwiseError(f"population {p.name!r}: {p.in_ch} input / {p.out_ch} output channels; the "
                                 "layer-wise schedule runs one-channel populations")
    into: dict[str, list[_ProjLowering]] = {p.name: [] for p in net._pops}
    for pr in net._projs:
        into[pr.post].append(pr)
    done = {p.name for p in net._pops if isinstance(p, _InputLowering)}
    order: list[Layer] = []
    todo = [p for p in net._pops if p.name not in done]
    while todo:
        ready = [p for p in todo if all(pr.pre in done for pr in into[p.name])]
        if not ready:
            cycle = sorted(f"{pr.name} ({pr.pre} -> {pr.post})" for p in todo for pr in into[p.name] if pr.pre not in done)
            raise LayerwiseError("the projections form a cycle (recurrent graph); the layer-wise schedule runs "
                                 f"feed-forward graphs only. Unordered projections: {', '.join(cycle)}")
        for p in ready:
            mods = {n: net._mods[n] for pr in into[p.name] if pr.rule is not None for n in pr.rule.modulators}
            order.append(Layer(p, tuple(into[p.name]), mods))
            done.add(p.name)
        todo = [p for p in todo if p.name not in done]
    rank = {layer.pop.name: i for i, layer in enumerate(order)}
    for pr in net._projs:
        for name in pr.rule.modulators if pr.rule is not None else ():
            src = net._mods[name].source
            if rank.get(src, -1) > rank[pr.post]:
                raise LayerwiseError(f"projection {pr.name!r}: its modulator {name!r} reads {src!r}, which runs "
                                     f"after the projection's post population {pr.post!r} in the layer order")
    return LayerPlan(tuple(order))


def chunk_ends(t0: int, T: int, intervals: list[int]) -> list[int]:
    """Window indices ``k`` (step ``t0 + k``) ending a chunk: each step after which one of the
    ``intervals`` updates (``(t0 + k + 1) % interval == 0``), and the window's last step."""
    ends = {k for n in intervals for k in range((n - 1 - t0) % n, T, n)}
    return sorted(ends | {T - 1})


def project_seq(x: Tensor, w: Tensor) -> Tensor:
    """``sum_i w[..., j, i] x[k, ..., i]`` for a sequence ``x`` ``(K, P, B, n_pre)`` -> ``(K, P, B, n_post)``;
    ``w`` shared ``(n_post, n_pre)``, per individual ``(P, 1, n_post, n_pre)`` or per batch element
    ``(P, B, n_post, n_pre)``. A per-individual or per-element weight is read once for the K steps:
    its K rows go through :func:`plastix.backends.torch.rules.matvec` as one weight's batch (row-form
    forward ``x w^T``, weight gradient ``g^T x`` in ``w``'s own layout)."""
    if w.dim() == 2:
        return torch.nn.functional.linear(x, w)
    K, P, B, n_pre = x.shape
    if w.shape[1] == 1:  # one weight per individual: its K B rows at once
        y = matvec(w, x.permute(1, 0, 2, 3).reshape(P, K * B, n_pre))
        return y.reshape(P, K, B, -1).permute(1, 0, 2, 3)
    y = matvec(w.reshape(P * B, 1, *w.shape[2:]), x.permute(1, 2, 0, 3).reshape(P * B, K, n_pre))
    return y.reshape(P, B, K, -1).permute(2, 0, 1, 3)


def _delayed(seq: Tensor, buf: tuple) -> tuple[Tensor, tuple]:
    """``x[k] = out_pre[t0 + k - delay]`` over the window from the pre's outputs ``seq`` ``(T, ...)``
    and the buffer ``(out_pre[t0 - 1], ..., out_pre[t0 - delay])``; returns ``x`` and the new buffer."""
    if not buf:
        return seq, ()
    T, d = seq.shape[0], len(buf)
    full = torch.cat([torch.stack(buf[::-1]), seq])  # out_pre[t0 - d], ..., out_pre[t0 + T - 1]
    return full[:T], tuple(full[T + d - 1 - i] for i in range(d))


def chunk_weight(pr: _ProjLowering, rs: Any, bound: tuple) -> Tensor:
    """The plastic part of projection ``pr``'s weight during a chunk, from its rule state ``rs``:
    ``alpha E`` (masked) beside the static ``W x``, or a sign-constrained projection's whole
    effective weight (``sign |W + alpha E|``, masked)."""
    _, rules_b, weights, _ = bound
    w0, w_eff, mask, sign, sm, _ = weights[pr.name]
    rb = rules_b[pr.name]
    if w_eff is not None:
        return pr.rule.plastic_part(rs, rb, mask)
    return pr.effective(pr.rule.weight(rs, w0, rb), mask, sign, sm)


def layer_steps(layer: Layer, K: int, xs: dict, static: dict, plastic_w: dict, carry: Tensor, nst: Any,
                bound: tuple) -> tuple[Tensor, Tensor, Any]:
    """``K`` steps of one layer within one chunk (module docstring), a pure function of tensors.

    ``xs``: projection -> its ``x`` over the chunk ``(K, P, B, n_pre)``; ``static``: projection ->
    ``W x`` over the chunk of its static part (if it has one); ``plastic_w``: plastic projection ->
    its :func:`chunk_weight`; ``carry``: the population's input ``a`` at the chunk's first step;
    ``nst``: its neuron state. Returns the outputs ``(K, P, B, size)``, the input ``a`` of the step
    after the chunk, and the neuron state after it."""
    pops_b = bound[0]
    p = layer.pop
    contrib: Optional[Tensor] = None
    for pr in layer.projs:
        c = static.get(pr.name)
        if pr.name in plastic_w:
            pc = project_seq(xs[pr.name], plastic_w[pr.name])
            c = pc if c is None else c + pc
        if c is not None:
            contrib = c if contrib is None else contrib + c
    if contrib is None:  # no projection into this population: no input after the first step
        contrib = torch.zeros_like(carry).expand(K, *carry.shape)
    steps = contrib.unbind(0)  # (one gradient buffer for all K; indexing would zero-fill K)
    outs = []
    for k in range(K):
        y, nst = p.step(carry if k == 0 else steps[k - 1], nst, pops_b[p.name])
        outs.append(y)
    return torch.stack(outs), steps[K - 1], nst


def rule_update(pr: _ProjLowering, modulators: dict, x_sum: Tensor, y_sum: Tensor, prev: dict, rs: Any, phase: int,
                bound: tuple, next_weight: bool) -> tuple[Any, Optional[Tensor]]:
    """Projection ``pr``'s rule at the end of a chunk, a pure function of tensors: ``learn`` on the
    chunk's summed ``x`` and ``y`` at step index ``phase`` (the chunk's last step modulo the interval),
    with ``M = f(W_m prev + b)`` of each of its modulators (``prev``: modulator -> its source's output
    before the chunk's last step). Returns the new rule state and, if ``next_weight``, the next
    chunk's :func:`chunk_weight`."""
    _, rules_b, weights, mods_b = bound
    mods = {n: _modulate(modulators[n], prev[n], *mods_b[n]) for n in pr.rule.modulators}
    rs = pr.rule.learn(x_sum, y_sum, mods, rs, rules_b[pr.name], phase, None, None, weights[pr.name][2])
    return rs, chunk_weight(pr, rs, bound) if next_weight else None


def layer_chunk(layer: Layer, K: int, xs: dict, static: dict, plastic_w: dict, carry: Tensor, nst: Any, rstates: dict,
                prev: dict, phases: tuple[int, ...], bound: tuple, next_weight: bool) -> tuple:
    """One chunk of one layer: :func:`layer_steps`, then :func:`rule_update` of each plastic projection
    into it (``phases`` in their order), a pure function of tensors (what ``jit`` compiles). ``prev``:
    modulator -> its source's output before the chunk's last step, ``None`` where that is in this
    chunk (the layer's own output, ``K >= 2``). Returns the outputs, the next input ``a``, the neuron
    state, the rule states and the next chunk's plastic weights."""
    y, carry, nst = layer_steps(layer, K, xs, static, plastic_w, carry, nst, bound)
    rstates, plastic_w = dict(rstates), dict(plastic_w)
    plastic = [pr for pr in layer.projs if pr.rule is not None]
    if plastic:
        prev = {n: y[K - 2] if v is None else v for n, v in prev.items()}
        y_sum = y.sum(0)
        for pr, phase in zip(plastic, phases):
            rstates[pr.name], plastic_w[pr.name] = rule_update(pr, layer.modulators, xs[pr.name].sum(0), y_sum, prev,
                                                               rstates[pr.name], phase, bound, next_weight)
    return y, carry, nst, rstates, plastic_w


ChunkFn = Callable[..., tuple]


def run(net: Any, layer_plan: LayerPlan, seqs: dict, state: NetState, bound: tuple,
        chunk_fn: Optional[ChunkFn] = None) -> tuple[dict, NetState]:
    """``T`` steps of ``net`` from ``state`` on the layer-wise schedule (module docstring); ``seqs``:
    input name -> ``(T, P, B, size)``, ``bound`` as :meth:`TorchNetwork.bind` returns it.
    ``chunk_fn(index, *args)`` runs :func:`layer_chunk` of layer ``index`` of the plan (e.g. a
    ``torch.compile``d form); default: eagerly. Returns the outputs name -> ``(T, P, B, size)`` and
    the final state, as the step schedule does."""
    _, _, weights, _ = bound
    t0 = state.t
    T = int(next(iter(seqs.values())).shape[0])
    seq: dict[str, Tensor] = dict(seqs)  # population -> its outputs over the window
    a, neurons, projs = {}, {}, {}
    for index, layer in enumerate(layer_plan.layers):
        p = layer.pop
        xs, static, rstates = {}, {}, {}
        for pr in layer.projs:
            ps = state.projs[pr.name]
            xs[pr.name], buf = _delayed(seq[pr.pre], ps.buf)
            projs[pr.name] = ProjState(buf, ps.rule)
            w_eff = weights[pr.name][1]
            if w_eff is not None:  # a static projection, or W of W + alpha E: the whole window at once
                static[pr.name] = project_seq(xs[pr.name], w_eff)
            rstates[pr.name] = ps.rule
        plastic = [pr for pr in layer.projs if pr.rule is not None]
        plastic_w = {pr.name: chunk_weight(pr, rstates[pr.name], bound) for pr in plastic}
        nst, carry = state.neurons[p.name], state.a[p.name]
        outs: list[Tensor] = []
        ends = chunk_ends(t0, T, [pr.rule.chunk_interval for pr in plastic])
        sizes = [e + 1 - s for s, e in zip([0] + [e + 1 for e in ends[:-1]], ends)]
        # split once (one gradient buffer per sequence; a slice per chunk would zero-fill the window per chunk)
        xs_c = {n: x.split(sizes) for n, x in xs.items()}
        static_c = {n: c.split(sizes) for n, c in static.items()}
        for i, e in enumerate(ends):
            K = sizes[i]
            prev = {}  # each modulator's source output of step e - 1 where it is not in this chunk
            for n, m in layer.modulators.items():
                if m.source == p.name:
                    prev[n] = None if K >= 2 else (outs[-1][-1] if outs else state.out[p.name])
                else:
                    prev[n] = seq[m.source][e - 1] if e > 0 else state.out[m.source]
            phases = tuple((t0 + e) % pr.rule.chunk_interval for pr in plastic)
            args = (K, {n: x[i] for n, x in xs_c.items()}, {n: c[i] for n, c in static_c.items()}, plastic_w, carry,
                    nst, rstates, prev, phases, bound, i + 1 < len(ends))
            y, carry, nst, rstates, plastic_w = layer_chunk(layer, *args) if chunk_fn is None else chunk_fn(index, *args)
            outs.append(y)
        seq[p.name] = torch.cat(outs)
        a[p.name], neurons[p.name] = carry, nst
        for pr in layer.projs:
            projs[pr.name] = projs[pr.name]._replace(rule=rstates[pr.name])
    out = {p.name: seq[p.name][T - 1] for p in net._pops}
    final = NetState(t0 + T, out, {p.name: a[p.name] for p in net._pops if p.name in a},
                     {p.name: neurons.get(p.name) for p in net._pops}, {pr.name: projs[pr.name] for pr in net._projs})
    return {n: seq[n] for n in net.outputs}, final
