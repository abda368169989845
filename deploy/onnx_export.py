r"""ONNX export of ONE simulation step of a compiled graph (issue 10).

The exported model is the torch backend's step (:meth:`plastix.backends.torch.TorchNetwork.step`,
semantics in ``docs/semantics.md``) as a pure function of flat tensors::

    (in_<input>..., s_0, s_1, ..., s_{K-1})  ->  (out_<output>..., s'_0, ..., s'_{K-1})

``s_k`` are the leaves of the network state (:class:`~plastix.backends.torch.NetState`: last
outputs, pending synaptic input, neuron state, delay buffers, plasticity state) in a fixed order,
so plasticity is part of the step: feed ``s'`` back as ``s`` for the next step. Population P and
batch B are fixed at export time (default 1, 1). :func:`state_names` lists the leaves; the initial
state is :func:`initial_state`.

Rules whose step depends on the step counter (``oja``/``bcm`` with ``interval > 1``, ``loihi`` with
``t_epoch > 1``) or draws random numbers (``synaptic_q`` with ``epsilon > 0``) cannot be a fixed
step graph and raise :class:`plastix.ir.UnsupportedKindError`.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from plastix.ir import Graph, UnsupportedKindError
from plastix.ir.serialize import atomic_write_bytes

TARGET = "onnx"
OPSET = 17


def check_exportable(graph: Graph) -> None:
    """Raise :class:`UnsupportedKindError` naming the projection whose rule cannot be one fixed ONNX step."""
    for pr in graph.projections:
        rule = pr.rule
        while rule is not None:
            if rule.kind in ("oja", "bcm") and int(getattr(rule, "interval", 1)) > 1:
                raise UnsupportedKindError(rule.kind, TARGET, reason=f"interval > 1 on {pr.name!r} (step-counter "
                                           "dependent)")
            if rule.kind == "loihi" and int(rule.t_epoch) > 1:
                raise UnsupportedKindError("loihi", TARGET, reason=f"t_epoch > 1 on {pr.name!r} (step-counter dependent)")
            if rule.kind == "synaptic_q" and float(rule.epsilon) > 0:
                raise UnsupportedKindError("synaptic_q", TARGET, reason=f"epsilon > 0 on {pr.name!r} (random exploration)")
            rule = getattr(rule, "base", None)


def _leaves(obj: Any, like: Any = None) -> list[torch.Tensor]:
    """Tensors of a nested state (NamedTuples, tuples, dicts), depth first; dicts in the key order
    of ``like`` (the template state: a step may build its dicts in another order)."""
    like = obj if like is None else like
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for k, v in like.items() for t in _leaves(obj[k], v)]
    if isinstance(obj, tuple):
        return [t for v, w in zip(obj, like) for t in _leaves(v, w)]
    return []


def _names(obj: Any, prefix: str) -> list[str]:
    if torch.is_tensor(obj):
        return [prefix]
    if isinstance(obj, dict):
        return [n for k, v in obj.items() for n in _names(v, f"{prefix}.{k}")]
    if hasattr(obj, "_fields"):
        return [n for k, v in zip(obj._fields, obj) for n in _names(v, f"{prefix}.{k}")]
    if isinstance(obj, tuple):
        return [n for i, v in enumerate(obj) for n in _names(v, f"{prefix}.{i}")]
    return []


def _rebuild(template: Any, it: Any) -> Any:
    if torch.is_tensor(template):
        return next(it)
    if isinstance(template, dict):
        return {k: _rebuild(v, it) for k, v in template.items()}
    if hasattr(template, "_fields"):
        return type(template)(*(_rebuild(v, it) for v in template))
    if isinstance(template, tuple):
        return tuple(_rebuild(v, it) for v in template)
    return template


class StepModule(nn.Module):
    """``forward(*inputs, *state_leaves) -> (*outputs, *new_state_leaves)`` around a TorchNetwork."""

    def __init__(self, net: Any, template: Any) -> None:
        super().__init__()
        self.net = net
        self.template = template

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_in = len(self.net.inputs)
        xs = dict(zip(self.net.inputs, flat[:n_in]))
        state = _rebuild(self.template, iter(flat[n_in:]))
        ys, new = self.net.pure_step(xs, state, self.net.bind())
        return tuple(ys[n] for n in self.net.outputs) + tuple(_leaves(new, self.template))


def _compile(graph: Graph, dtype: torch.dtype) -> Any:
    from plastix.backends.torch import compile as torch_compile

    check_exportable(graph)
    return torch_compile(graph, dtype=dtype)


def initial_state(graph: Graph, P: int = 1, B: int = 1) -> dict[str, np.ndarray]:
    """The initial state leaves (the ``s`` of the first step), name -> float32 array, in ONNX order."""
    net = _compile(graph, torch.float32)
    with torch.no_grad():
        state = net.init_state(P, B)
    return {n: t.numpy().astype(np.float32) for n, t in zip(_names(state, "state"), _leaves(state))}


def state_names(graph: Graph, P: int = 1, B: int = 1) -> list[str]:
    """Names of the state leaves in ONNX order (``state.<field>.<node>...``)."""
    net = _compile(graph, torch.float32)
    return _names(net.init_state(P, B), "state")


def export_step(graph: Graph, path: str | Path, *, P: int = 1, B: int = 1) -> Path:
    """Write the float32 ONNX step model of ``graph`` to ``path`` (atomic). Inputs are named
    ``in_<input>`` ``(P, B, size[, channels])``, then ``state.*``; outputs ``out_<output>``, then
    ``next.*`` (the same leaves after the step)."""
    net = _compile(graph, torch.float32)
    with torch.no_grad():
        state = net.init_state(P, B)
        xs = [torch.zeros(P, B, *net.input_shape(n)) for n in net.inputs]
        names = _names(state, "state")
        module = StepModule(net, state).eval()
        buf = io.BytesIO()
        with warnings.catch_warnings():  # shape checks traced as constants: shapes are fixed by design
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, tuple(xs) + tuple(_leaves(state)), buf, dynamo=False, opset_version=OPSET,
                              input_names=[f"in_{n}" for n in net.inputs] + names,
                              output_names=[f"out_{n}" for n in net.outputs] + ["next" + s[5:] for s in names])
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def check_step(graph: Graph, path: str | Path, inputs: dict[str, np.ndarray], *,
               progress: Callable[[int], None] | None = None) -> dict:
    """Run the ONNX step with onnxruntime and the torch backend (float32) side by side for
    ``T`` steps of ``inputs`` (name -> ``(T, size[, channels])``), feeding each one's state back.
    Returns ``{"steps", "max_abs_error", "per_output", "state_max_abs_error", "output_activity"}``:
    errors over every output (and every state leaf, plastic weights included) of every step, and
    the summed absolute outputs (0 would make the comparison vacuous)."""
    import onnxruntime as ort

    net = _compile(graph, torch.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    used = {i.name for i in sess.get_inputs()}  # the exporter drops state leaves the step never reads
    names = [f"in_{n}" for n in net.inputs] + state_names(graph)
    T = int(next(iter(inputs.values())).shape[0])
    err = {n: 0.0 for n in net.outputs}
    with torch.no_grad():
        state = template = net.init_state(1, 1)
        flat = [t.numpy().astype(np.float32) for t in _leaves(state)]
        serr, active = 0.0, 0.0
        for t in range(T):
            xt = {n: torch.as_tensor(np.asarray(inputs[n][t], dtype=np.float32))[None, None] for n in net.inputs}
            ys, state = net.step(xt, state)
            feed = dict(zip(names, [xt[n].numpy() for n in net.inputs] + flat))
            res = sess.run(None, {k: v for k, v in feed.items() if k in used})
            for i, n in enumerate(net.outputs):
                err[n] = max(err[n], float(np.abs(res[i] - ys[n].numpy()).max()))
            flat = res[len(net.outputs):]
            ref = _leaves(state, template)
            serr = max(serr, max((float(np.abs(a - b.numpy()).max()) for a, b in zip(flat, ref) if b.numel()),
                                 default=0.0))
            active += sum(float(np.abs(ys[n].numpy()).sum()) for n in net.outputs)
            if progress is not None:
                progress(1)
    return {"steps": T, "max_abs_error": max(err.values()) if err else 0.0, "per_output": err,
            "state_max_abs_error": serr, "output_activity": active}
