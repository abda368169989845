r"""NIR interop: export the static part of a graph to NIR, import NIR graphs written by peers.

NIR is continuous-time; plastix is discrete-time with an explicit step ``dt``. Forward-Euler
discretisation of NIR's CubaLIF (current updated first, as on Loihi) gives plastix's CubaLIF when

.. math::
    du = \frac{dt}{\tau_{syn}},\quad dv = \frac{dt}{\tau_{mem}},\quad
    \mathrm{bias} = dv\, v_{leak},\quad v_{th} = v_{threshold},

and the NIR input gain ``g = dv R du w_in`` is folded into the incoming weights (plastix adds ``a``
to ``u`` with gain 1). Export picks ``R = 1/dv``, ``w_in = 1/du`` so that ``g = 1`` and the NIR
``Linear`` weights are exactly plastix's (mask and sign applied). LIF/IF/LI/CubaLI map likewise
(``du = 1`` where there is no synaptic current).

**Plasticity extension** (documented in ``docs/format.md``): every NIR node made from a plastix
node carries ``metadata["plastix"]``, a JSON string with the full plastix node (projection with
its rule, mask, sign and delay; population with exact decays and refractory period), arrays
embedded as base64 ``.npy``; the graph carries ``metadata["plastix.extension"]`` (version),
``"plastix.dt"`` and ``"plastix.modulators"``. Stock NIR readers ignore metadata, so the file stays a
valid NIR graph; :func:`from_nir` restores the plastix graph exactly from it. Where a NIR
parameter was edited after export (disagrees with the embedded node), the NIR value wins.

``nir`` is imported lazily, so ``import plastix.ir`` stays numpy + networkx only.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IRValidationError, UnsupportedKindError
from .graph import Graph
from .neurons import CubaLIF, GatedPopulation, Input, LIReadout
from .serialize import from_dict, to_dict
from .synapses import Projection

EXTENSION_VERSION = "1"
_META = "plastix"


# ---------------------------------------------------------------------------------------------
# embedding plastix nodes in NIR metadata


def _embed(node: Any) -> str:
    arrays: list[np.ndarray] = []
    doc = to_dict(node, arrays)
    blobs = []
    for arr in arrays:
        b = io.BytesIO()
        np.save(b, arr, allow_pickle=False)
        blobs.append(base64.b64encode(b.getvalue()).decode("ascii"))
    return json.dumps({"node": doc, "arrays": blobs}, allow_nan=False)


def _unembed(text: Any, where: str) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        payload = json.loads(text)
        arrays = [np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False) for s in payload["arrays"]]
        doc = payload["node"]
    except Exception as exc:
        raise IRValidationError(where, "metadata.plastix", f"unreadable plastix extension: {exc}") from None
    return from_dict(doc, arrays, path=where)


def _effective_weight(p: Projection) -> np.ndarray:
    w = np.asarray(p.weight, dtype=np.float64)
    if p.sign is not None:
        w = np.where(p.sign == 0, w, p.sign * np.abs(w))
    if p.mask is not None:
        w = w * p.mask
    return w


def _full(x: Any, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()


# ---------------------------------------------------------------------------------------------
# export


def to_nir(graph: Graph) -> Any:
    """The NIR graph of ``graph``'s static part, with the plastix extension in metadata."""
    import nir

    dt = graph.dt
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for p in graph.populations:
        meta = {_META: _embed(p)}
        if isinstance(p, Input):
            shape = np.array([p.size] if p.channels == 1 else [p.size, p.channels])
            nodes[p.name] = nir.Input(input_type={"input": shape}, metadata=meta)
        elif isinstance(p, (CubaLIF, LIReadout)):
            du, dv = _full(p.du, p.size), _full(p.dv, p.size)
            for field, val in (("du", du), ("dv", dv)):
                if np.any(val == 0):
                    raise IRValidationError(p.name, field, f"{field} = 0 (no decay) has no continuous-time NIR equivalent")
            common = dict(tau_syn=dt / du, tau_mem=dt / dv, r=1.0 / dv, v_leak=_full(p.bias, p.size) / dv,
                          w_in=1.0 / du, metadata=meta)
            if isinstance(p, CubaLIF):
                nodes[p.name] = nir.CubaLIF(v_threshold=_full(p.vth, p.size), v_reset=np.zeros(p.size), **common)
            else:
                nodes[p.name] = nir.CubaLI(**common)
        elif isinstance(p, GatedPopulation):
            raise UnsupportedKindError(f"{p.kind} ({p.name})", "nir", ("input", "cuba_lif", "li"))
        else:  # pragma: no cover - every registered population is handled above
            raise UnsupportedKindError(p.kind, "nir")
    for pr in graph.projections:
        nodes[pr.name] = nir.Linear(weight=_effective_weight(pr), metadata={_META: _embed(pr)})
        src = pr.pre
        if pr.delay:
            dname = f"{pr.name}_delay"
            nodes[dname] = nir.Delay(delay=np.full(graph.population(pr.pre).size, pr.delay * dt))
            edges.append((src, dname))
            src = dname
        edges += [(src, pr.name), (pr.name, pr.post)]
    for out in graph.outputs:
        pop = graph.population(out)
        oname = f"{out}_output"
        nodes[oname] = nir.Output(output_type={"output": np.array([pop.size])})
        edges.append((out, oname))
    meta = {"plastix.extension": EXTENSION_VERSION, "plastix.dt": float(dt),
            "plastix.modulators": json.dumps([_embed(m) for m in graph.modulators]),
            "plastix.inputs": json.dumps(list(graph.inputs)), "plastix.outputs": json.dumps(list(graph.outputs)),
            "plastix.metadata": json.dumps(dict(graph.metadata or {})),
            "plastix.order": json.dumps([p.name for p in graph.populations] + [p.name for p in graph.projections])}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(graph: Graph, path: str | Path) -> Path:
    """Export to a NIR HDF5 file (readable by ``nir.read``), written atomically."""
    import nir

    from .serialize import atomic_write_bytes

    buf = io.BytesIO()
    nir.write(buf, to_nir(graph))
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# import


def read_nir(path: str | Path, *, dt: float | None = None, max_bytes: int | None = None) -> Graph:
    """Read a NIR file and convert it (see :func:`from_nir`). The datasets' declared sizes are
    checked before anything is read (:func:`check_nir_sizes`); every problem with the file is an
    :class:`IRValidationError` naming it."""
    import nir

    check_nir_sizes(path, max_bytes)
    try:
        g = nir.read(str(path))
    except Exception as exc:
        raise IRValidationError("", "", f"not a readable NIR file: {exc}", file=str(path)) from None
    try:
        return from_nir(g, dt=dt)
    except IRValidationError as exc:
        raise exc.in_file(str(path)) from None
    except UnsupportedKindError:
        raise
    except Exception as exc:  # bad extension metadata (JSON, types, values) must not escape as a traceback
        raise IRValidationError("", "", f"invalid NIR graph ({type(exc).__name__}: {exc})", file=str(path)) from None


def check_nir_sizes(path: str | Path, max_bytes: int | None = None) -> int:
    """Sum the declared sizes of every dataset in an HDF5 (NIR) file without reading any, and refuse
    a file that would decompress to more than the ``.plx`` loader allows for a file of its size
    (:func:`plastix.ir.serialize.load_budget`). Returns the declared bytes."""
    import os

    import h5py

    from .serialize import load_budget

    path = Path(path)
    try:
        size = os.path.getsize(path)
        fh = h5py.File(path, "r")
    except Exception as exc:
        raise IRValidationError("", "", f"not a readable NIR file: {exc}", file=str(path)) from None
    budget = load_budget(size, max_bytes)
    total = 0
    with fh:
        datasets: list = []
        fh.visititems(lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
        for name, ds in datasets:
            total += int(ds.size) * int(ds.dtype.itemsize)
            if total > budget:
                raise IRValidationError("", name, f"dataset {ds.shape} {ds.dtype} brings the declared data to "
                                        f"{total} bytes, more than the {budget} bytes a file of {size} bytes may "
                                        "decompress (docs/format.md, Limits; --max-memory for a trusted file)",
                                        file=str(path))
    return total


def _meta_str(meta: dict, key: str) -> str | None:
    v = (meta or {}).get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return v if isinstance(v, str) else None


def from_nir(nir_graph: Any, *, dt: float | None = None) -> Graph:
    """Convert a NIR graph to a plastix graph.

    ``dt`` (seconds per step) is required unless the file carries the plastix extension.
    Supported NIR nodes: Input, Output, Linear, Affine (bias only into neurons without synaptic
    current), Delay (uniform), CubaLIF, LIF, IF, LI, CubaLI. Nested graphs are not supported.
    """
    import nir

    gmeta = getattr(nir_graph, "metadata", None) or {}
    ext = _meta_str(gmeta, "plastix.extension")
    if dt is None:
        if "plastix.dt" not in gmeta:
            raise IRValidationError("<nir>", "dt", "NIR is continuous-time: pass dt (seconds per step) to import it")
        dt = float(gmeta["plastix.dt"])
    if not dt > 0:
        raise IRValidationError("<nir>", "dt", f"must be > 0, got {dt}")

    nodes: dict[str, Any] = dict(nir_graph.nodes)
    pops: dict[str, Any] = {}
    gains: dict[str, np.ndarray] = {}
    affine_bias: dict[str, np.ndarray] = {}
    for name, n in nodes.items():
        meta = getattr(n, "metadata", None) or {}
        embedded = _unembed(meta[_META], name) if ext and _META in meta else None
        if isinstance(n, nir.NIRGraph):
            raise UnsupportedKindError(f"nested NIRGraph ({name})", "nir import")
        if isinstance(n, nir.Input):
            shape = np.atleast_1d(np.asarray(n.input_type["input"])).astype(int)
            pops[name] = embedded if isinstance(embedded, Input) else Input(
                name=name, size=int(shape[0]), channels=int(shape[1]) if shape.size > 1 else 1)
        elif isinstance(n, (nir.CubaLIF, nir.LIF, nir.IF, nir.LI, nir.CubaLI)):
            pop, gain = _population_from_nir(name, n, dt)
            if embedded is not None and _static_matches(embedded, pop):
                pop = embedded
            elif isinstance(embedded, CubaLIF) and isinstance(pop, CubaLIF):
                pop = pop.replace(refractory=embedded.refractory)
            pops[name] = pop
            gains[name] = gain
    # projections: Linear/Affine nodes (optionally behind a Delay) between populations
    incoming: dict[str, list[str]] = {}
    for a, b in nir_graph.edges:
        incoming.setdefault(b, []).append(a)
    projections: list[Projection] = []
    for name, n in nodes.items():
        if not isinstance(n, (nir.Linear, nir.Affine)):
            continue
        srcs = incoming.get(name, [])
        posts = [b for a, b in nir_graph.edges if a == name]
        if len(srcs) != 1 or len(posts) != 1:
            raise IRValidationError(name, "edges", f"a Linear/Affine node needs one source and one target, got {srcs} -> {posts}")
        pre, delay = _resolve_pre(srcs[0], nodes, incoming, dt)
        post = posts[0]
        if pre not in pops or post not in pops:
            raise IRValidationError(name, "edges", f"{pre!r} -> {post!r}: both ends must be neuron or input nodes")
        w = np.asarray(n.weight, dtype=np.float64) * gains[post][:, None] if post in gains else np.asarray(n.weight, dtype=np.float64)
        if isinstance(n, nir.Affine) and np.any(np.asarray(n.bias) != 0):
            affine_bias[post] = affine_bias.get(post, 0) + np.asarray(n.bias, dtype=np.float64) * gains.get(post, 1.0)
        meta = getattr(n, "metadata", None) or {}
        embedded = _unembed(meta[_META], name) if ext and _META in meta else None
        if isinstance(embedded, Projection) and embedded.pre == pre and embedded.post == post and np.allclose(
                _effective_weight(embedded), w, rtol=1e-9, atol=1e-12):
            projections.append(embedded)
        else:
            projections.append(Projection(name=name, pre=pre, post=post, weight=w, delay=delay,
                                          rule=embedded.rule if isinstance(embedded, Projection) else None))
    # direct neuron -> neuron edges (identity synapses)
    for a, b in nir_graph.edges:
        if a in pops and b in pops:
            projections.append(Projection(name=f"{a}_to_{b}_identity", pre=a, post=b,
                                          weight=np.eye(pops[b].size, pops[a].size) * gains.get(b, 1.0)[:, None]))
    for post, b in affine_bias.items():
        p = pops[post]
        if not isinstance(p, (CubaLIF, LIReadout)) or not np.all(np.asarray(p.du) == 1.0):
            raise UnsupportedKindError(f"Affine bias into {post} (a neuron with a synaptic current)", "nir import")
        pops[post] = p.replace(bias=np.asarray(p.bias) + b)
    outputs = [a for a, b in nir_graph.edges if isinstance(nodes.get(b), nir.Output) and a in pops]
    for a, b in nir_graph.edges:
        if isinstance(nodes.get(b), nir.Output) and a not in pops:
            raise IRValidationError(b, "edges", f"output fed by {a!r}, which is not a neuron population")
    modulators: tuple = ()
    inputs: tuple = ()
    metadata: dict = {}
    if ext:
        modulators = tuple(_unembed(s, "modulators") for s in json.loads(_meta_str(gmeta, "plastix.modulators") or "[]"))
        outputs = json.loads(_meta_str(gmeta, "plastix.outputs") or "[]") or outputs
        inputs = tuple(json.loads(_meta_str(gmeta, "plastix.inputs") or "[]"))
        metadata = json.loads(_meta_str(gmeta, "plastix.metadata") or "{}")
    names = json.loads(_meta_str(gmeta, "plastix.order") or "[]") if ext else list(nodes)
    order = {name: i for i, name in enumerate(names)}
    return Graph(populations=tuple(sorted(pops.values(), key=lambda p: order.get(p.name, len(order)))),
                 projections=tuple(sorted(projections, key=lambda p: order.get(p.name, len(order)))), modulators=modulators, inputs=inputs, outputs=tuple(outputs),
                 dt=dt, metadata=metadata or None)


def _resolve_pre(src: str, nodes: dict, incoming: dict, dt: float) -> tuple[str, int]:
    import nir

    n = nodes.get(src)
    if isinstance(n, nir.Delay):
        d = np.asarray(n.delay, dtype=np.float64) / dt
        steps = np.round(d)
        if d.size == 0 or not np.allclose(d, steps) or np.any(steps != steps.flat[0]):
            raise UnsupportedKindError(f"non-uniform or non-integer Delay ({src})", "nir import")
        ups = incoming.get(src, [])
        if len(ups) != 1:
            raise IRValidationError(src, "edges", "a Delay node needs exactly one source")
        return ups[0], int(steps.flat[0])
    return src, 0


def _population_from_nir(name: str, n: Any, dt: float) -> tuple[Any, np.ndarray]:
    """(plastix population, input gain per neuron) for a NIR neuron node."""
    import nir

    def arr(x: Any) -> np.ndarray:
        return np.atleast_1d(np.asarray(x, dtype=np.float64))

    if isinstance(n, nir.IF):
        r, vth = arr(n.r), arr(n.v_threshold)
        if np.any(arr(getattr(n, "v_reset", 0.0)) != 0):
            raise UnsupportedKindError(f"IF with non-zero v_reset ({name})", "nir import")
        return CubaLIF(name=name, size=vth.size, du=1.0, dv=0.0, vth=vth), dt * r
    tau_syn = arr(n.tau_syn) if isinstance(n, (nir.CubaLIF, nir.CubaLI)) else None
    tau_mem = arr(n.tau_mem) if isinstance(n, (nir.CubaLIF, nir.CubaLI)) else arr(n.tau)
    dv = dt / tau_mem
    du = dt / tau_syn if tau_syn is not None else np.ones_like(dv)
    w_in = arr(getattr(n, "w_in", 1.0)) if tau_syn is not None else 1.0
    for field, val in (("du", du), ("dv", dv)):
        if np.any(val > 1) or np.any(val < 0):
            raise IRValidationError(name, field, f"time constant shorter than dt gives {field} outside [0, 1]; use a smaller dt")
    gain = np.broadcast_to(dv * arr(n.r) * du * w_in, dv.shape).copy()
    bias = dv * arr(n.v_leak)
    if isinstance(n, (nir.CubaLIF, nir.LIF)):
        if np.any(arr(getattr(n, "v_reset", 0.0)) != 0):
            raise UnsupportedKindError(f"{type(n).__name__} with non-zero v_reset ({name})", "nir import")
        return CubaLIF(name=name, size=dv.size, du=du, dv=dv, vth=arr(n.v_threshold), bias=bias), gain
    return LIReadout(name=name, size=dv.size, du=du, dv=dv, bias=bias), gain


def _static_matches(embedded: Any, pop: Any) -> bool:
    """True when the NIR parameters still agree with the embedded plastix node."""
    if type(embedded) is not type(pop) or embedded.size != pop.size:
        return False
    for field in ("du", "dv", "vth", "bias"):
        if hasattr(pop, field) and not np.allclose(np.broadcast_to(getattr(embedded, field), (pop.size,)),
                                                   np.broadcast_to(getattr(pop, field), (pop.size,)), rtol=1e-9, atol=1e-12):
            return False
    return True
