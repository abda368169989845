r"""NIR interop: export the static part of a graph to NIR, read NIR files back (peers' files go
through :mod:`plastix.ir.nir_import`: node mapping, dt inference, reset conventions, errors).

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
valid NIR graph; :func:`from_nir` restores the plastix graph exactly from it (the static part read
by the peer importer, the extension laid over it). Where a NIR parameter was edited after export
(disagrees with the embedded node), the NIR value wins.

``nir`` is imported lazily, so ``import plastix.ir`` stays numpy + networkx only.
"""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IRValidationError, UnsupportedKindError
from .graph import Graph
from .neurons import CubaLIF, GatedPopulation, Input, LIReadout
from .nir_import import NIRImport, NIRImportError, import_nir, read_nir_file
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


def to_nir(graph: Graph, *, dt: float | None = None) -> Any:
    """The NIR graph of ``graph``'s static part, with the plastix extension in metadata.

    ``dt`` (default ``graph.dt``) is the step the time constants are written for; the discrete
    dynamics do not depend on it, so any value gives the same spikes (snnTorch's
    ``import_from_nir`` assumes 1e-4 s)."""
    import nir

    dt = graph.dt if dt is None else float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise IRValidationError("<nir>", "dt", f"must be a positive number of seconds, got {dt!r}")
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


def write_nir(graph: Graph, path: str | Path, *, dt: float | None = None) -> Path:
    """Export to a NIR HDF5 file (readable by ``nir.read``), written atomically; ``dt`` as in
    :func:`to_nir`."""
    import nir

    from .serialize import atomic_write_bytes

    buf = io.BytesIO()
    nir.write(buf, to_nir(graph, dt=dt))
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# import


def read_nir(path: str | Path, *, dt: float | None = None, reset: str = "zero", max_bytes: int | None = None) -> Graph:
    """Read a NIR file and convert it: see :func:`import_nir_file`."""
    return import_nir_file(path, dt=dt, reset=reset, max_bytes=max_bytes).graph


def import_nir_file(path: str | Path, *, dt: float | None = None, reset: str = "zero",
                    max_bytes: int | None = None) -> NIRImport:
    """Read a NIR file: a plastix-written one (with the extension) restores its graph exactly; a
    peer's goes through :func:`plastix.ir.nir_import.import_nir` (dt inference, reset convention,
    flattening). The datasets' declared sizes are checked before anything is read
    (:func:`check_nir_sizes`). Every failure is one :class:`IRValidationError` naming the file
    (:class:`~plastix.ir.nir_import.NIRImportError` for a peer's file)."""
    check_nir_sizes(path, max_bytes)
    g = read_nir_file(path)
    if _meta_str(getattr(g, "metadata", None) or {}, "plastix.extension"):
        try:
            graph = from_nir(g, dt=dt)
        except IRValidationError as exc:
            raise NIRImportError(str(path), exc.node, f"{exc.field + ': ' if exc.field else ''}{exc.msg}",
                                 "the plastix extension of this file is damaged; export the model again") from None
        except UnsupportedKindError:
            raise
        except Exception as exc:  # bad extension metadata (JSON, types, values) must not escape as a traceback
            raise NIRImportError(str(path), "", f"invalid plastix extension ({type(exc).__name__}: {exc})",
                                 "the plastix extension of this file is damaged; export the model again") from None
        return NIRImport(graph=graph, dt=graph.dt, dt_source="from the file's plastix extension (plastix.dt)"
                         if dt is None else "given (--dt)")
    return import_nir(g, dt=dt, reset=reset, file=str(path))


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


def from_nir(nir_graph: Any, *, dt: float | None = None, reset: str = "zero") -> Graph:
    """Convert a NIR graph to a plastix graph: a plastix-written one (the extension in its
    metadata) exactly, a peer's through :func:`plastix.ir.nir_import.import_nir`."""
    gmeta = getattr(nir_graph, "metadata", None) or {}
    ext = _meta_str(gmeta, "plastix.extension")
    if not ext:
        return import_nir(nir_graph, dt=dt, reset=reset).graph
    if dt is None:
        if "plastix.dt" not in gmeta:
            raise IRValidationError("<nir>", "dt", "NIR is continuous-time: pass dt (seconds per step) to import it")
        dt = float(gmeta["plastix.dt"])
    static = import_nir(nir_graph, dt=dt).graph  # the NIR parameters; the extension adds the rest
    nodes = nir_graph.nodes
    pops = []
    for pop in static.populations:
        meta = getattr(nodes[pop.name], "metadata", None) or {}
        embedded = _unembed(meta[_META], pop.name) if _META in meta else None
        if embedded is not None and _static_matches(embedded, pop):
            pop = embedded
        elif isinstance(embedded, CubaLIF) and isinstance(pop, CubaLIF):
            pop = pop.replace(refractory=embedded.refractory)
        pops.append(pop)
    projections = []
    for pr in static.projections:
        meta = getattr(nodes.get(pr.name), "metadata", None) or {}
        embedded = _unembed(meta[_META], pr.name) if _META in meta else None
        if isinstance(embedded, Projection) and (embedded.pre, embedded.post) == (pr.pre, pr.post) and np.allclose(
                _effective_weight(embedded), pr.weight, rtol=1e-9, atol=1e-12):
            pr = embedded
        elif isinstance(embedded, Projection):
            pr = pr.replace(rule=embedded.rule)
        projections.append(pr)
    order = {name: i for i, name in enumerate(json.loads(_meta_str(gmeta, "plastix.order") or "[]"))}
    last = len(order)
    return Graph(populations=tuple(sorted(pops, key=lambda p: order.get(p.name, last))),
                 projections=tuple(sorted(projections, key=lambda p: order.get(p.name, last))),
                 modulators=tuple(_unembed(m, "modulators") for m in json.loads(_meta_str(gmeta, "plastix.modulators") or "[]")),
                 inputs=tuple(json.loads(_meta_str(gmeta, "plastix.inputs") or "[]")),
                 outputs=tuple(json.loads(_meta_str(gmeta, "plastix.outputs") or "[]")) or static.outputs,
                 dt=dt, metadata=json.loads(_meta_str(gmeta, "plastix.metadata") or "{}") or None)


def _static_matches(embedded: Any, pop: Any) -> bool:
    """True when the NIR parameters still agree with the embedded plastix node."""
    if type(embedded) is not type(pop) or embedded.size != pop.size:
        return False
    for field in ("du", "dv", "vth", "bias"):
        if hasattr(pop, field) and not np.allclose(np.broadcast_to(getattr(embedded, field), (pop.size,)),
                                                   np.broadcast_to(getattr(pop, field), (pop.size,)), rtol=1e-9, atol=1e-12):
            return False
    return True
