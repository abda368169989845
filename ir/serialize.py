"""The on-disk format: one ``.plx`` file per model (see ``docs/format.md``).

A ``.plx`` file is a zip archive holding ``plastix.json`` (format tag, ``schema_version``, the
graph as nested ``{"kind": ..., field: value}`` objects with arrays replaced by
``{"$array": i}``) and ``arrays/<i>.npy`` (numpy ``.npy`` files, no pickles). Encoding and
decoding are generic over ``dataclasses.fields()`` and the kind registry: no per-kind code.

:func:`load` validates everything and raises only :class:`IRValidationError` (or its subclasses
``IRVersionError`` / ``UnknownKindError``), naming the node path and field at fault.
"""
from __future__ import annotations

import dataclasses
import enum
import io
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IRValidationError, IRVersionError
from .graph import IR_SCHEMA_VERSION, Graph
from .registry import lookup
from .spec import IRNode, spec_of

FORMAT_TAG = "plastix-ir"
MANIFEST = "plastix.json"
_ALLOWED_DTYPES = {np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                          "uint32", "float32", "float64")}
MAX_ARRAY_BYTES = 1 << 31
MAX_MANIFEST_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------------
# dicts


def to_dict(node: IRNode, arrays: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Encode a node (recursively). Arrays go into ``arrays`` as ``{"$array": i}`` refs when a
    list is given, else stay numpy arrays (an in-memory dict)."""
    out: dict[str, Any] = {"kind": node.kind}
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        out[f.name] = _encode(getattr(node, f.name), arrays)
    return out


def _encode(value: Any, arrays: list[np.ndarray] | None) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.ndarray):
        if arrays is None:
            return value
        arrays.append(value)
        return {"$array": len(arrays) - 1}
    if isinstance(value, IRNode):
        return to_dict(value, arrays)
    if isinstance(value, tuple):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v, arrays) for k, v in value.items()}
    raise TypeError(f"cannot encode {type(value).__name__}")  # pragma: no cover


def from_dict(doc: Any, arrays: Any = None, *, path: str = "graph", category: str | None = None) -> IRNode:
    """Decode a node; ``arrays`` resolves ``{"$array": i}`` refs (a list or a callable)."""
    if not isinstance(doc, dict):
        raise IRValidationError(path, "", f"expected an object, got {type(doc).__name__}")
    cls = lookup(doc.get("kind"), node=path, category=category)
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = sorted(set(doc) - set(known) - {"kind"})
    if extra:
        raise IRValidationError(path, extra[0], f"unknown field for kind {cls.kind!r}")  # type: ignore[attr-defined]
    label = doc.get("name") if isinstance(doc.get("name"), str) else path
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise IRValidationError(label, name, "missing required field")
            continue
        kwargs[name] = _decode(doc[name], spec_of(f), arrays, f"{label}.{name}" if spec_of(f).role in ("node", "nodes") else label, name)
    try:
        return cls(**kwargs)
    except IRValidationError:
        raise
    except (TypeError, ValueError) as exc:
        raise IRValidationError(label, "", f"invalid {cls.kind}: {exc}") from None  # type: ignore[attr-defined]


def _decode(value: Any, spec: Any, arrays: Any, path: str, name: str) -> Any:
    role = spec.role
    if value is None:
        return None
    if role == "array":
        if isinstance(value, dict):
            if set(value) != {"$array"} or not isinstance(value["$array"], int) or isinstance(value["$array"], bool):
                raise IRValidationError(path, name, f"bad array reference {value!r}")
            if arrays is None:
                raise IRValidationError(path, name, "array reference without an array store")
            return arrays(value["$array"], path, name) if callable(arrays) else _index(arrays, value["$array"], path, name)
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise IRValidationError(path, name, f"expected an array reference, got {type(value).__name__}")
    if role == "node":
        return from_dict(value, arrays, path=path, category=None)
    if role == "nodes":
        if not isinstance(value, list):
            raise IRValidationError(path, "", f"expected a list, got {type(value).__name__}")
        return tuple(from_dict(v, arrays, path=f"{path}[{i}]", category=spec.category) for i, v in enumerate(value))
    if role == "names":
        if not isinstance(value, list):
            raise IRValidationError(path, name, "expected a list of names")
        return tuple(value)
    return value


def _index(arrays: list, i: int, path: str, name: str) -> np.ndarray:
    if not 0 <= i < len(arrays):
        raise IRValidationError(path, name, f"array reference {i} out of range")
    return arrays[i]


# ---------------------------------------------------------------------------------------------
# files


def dumps(graph: Graph) -> bytes:
    """The ``.plx`` bytes of a graph."""
    if not isinstance(graph, Graph):
        raise TypeError(f"expected a plastix.ir.Graph, got {type(graph).__name__}")
    arrays: list[np.ndarray] = []
    doc = {"format": FORMAT_TAG, "schema_version": IR_SCHEMA_VERSION, "graph": to_dict(graph, arrays)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(doc, indent=1, allow_nan=False))
        for i, arr in enumerate(arrays):
            b = io.BytesIO()
            np.save(b, arr, allow_pickle=False)
            zf.writestr(f"arrays/{i}.npy", b.getvalue())
    return buf.getvalue()


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    data = dumps(graph)
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes so that readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Graph:
    """Read and fully validate a ``.plx`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IRValidationError(f"<{path}>", "", f"cannot read file: {exc.strerror or exc}") from None
    return loads(data, source=str(path))


def loads(data: bytes, *, source: str = "bytes") -> Graph:
    """Decode ``.plx`` bytes; every problem is an :class:`IRValidationError`."""
    where = f"<{source}>"
    try:
        return _loads(data, where)
    except IRValidationError:
        raise
    except RecursionError:
        raise IRValidationError(where, "", "document nested too deeply") from None
    except Exception as exc:  # last line of defence: a corrupt file must never escape as another type
        raise IRValidationError(where, "", f"corrupt file ({type(exc).__name__}: {exc})") from None


def _loads(data: bytes, where: str) -> Graph:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise IRValidationError(where, "", f"not a plastix model file (expected a zip archive): {exc}") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        if MANIFEST not in infos:
            raise IRValidationError(where, MANIFEST, "missing; not a plastix model file")
        if infos[MANIFEST].file_size > MAX_MANIFEST_BYTES:
            raise IRValidationError(where, MANIFEST, "too large")
        raw = _read_member(zf, MANIFEST, where)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IRValidationError(where, MANIFEST, f"invalid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
            raise IRValidationError(where, "format", f"expected format {FORMAT_TAG!r}")
        version = doc.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise IRValidationError(where, "schema_version", f"invalid schema version {version!r}")
        if version > IR_SCHEMA_VERSION:
            raise IRVersionError(where, "schema_version",
                                 f"file uses IR schema {version}, this plastix reads up to {IR_SCHEMA_VERSION}: upgrade plastix")

        cache: dict[int, np.ndarray] = {}

        def get_array(i: int, node: str, field: str) -> np.ndarray:
            if i in cache:
                return cache[i]
            member = f"arrays/{i}.npy"
            info = infos.get(member)
            if info is None:
                raise IRValidationError(node, field, f"array {member} missing from file")
            if info.file_size > MAX_ARRAY_BYTES:
                raise IRValidationError(node, field, f"array {member} too large")
            raw_arr = _read_member(zf, member, where)
            try:
                arr = np.load(io.BytesIO(raw_arr), allow_pickle=False)
            except Exception as exc:
                raise IRValidationError(node, field, f"array {member} unreadable: {exc}") from None
            if not isinstance(arr, np.ndarray) or arr.dtype not in _ALLOWED_DTYPES:
                raise IRValidationError(node, field, f"array {member} has unsupported dtype {getattr(arr, 'dtype', '?')}")
            cache[i] = arr
            return arr

        graph = from_dict(doc.get("graph"), get_array, path="graph", category="graph")
        assert isinstance(graph, Graph)
        return graph


def _read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise IRValidationError(where, name, f"corrupt archive member: {exc}") from None
