"""The on-disk format: one ``.plx`` file per model (see ``docs/format.md``).

A ``.plx`` file is a zip archive holding ``plastix.json`` (format tag, ``schema_version``, the
graph as nested ``{"kind": ..., field: value}`` objects with arrays replaced by
``{"$array": i}``) and ``arrays/<i>.npy`` (numpy ``.npy`` files, no pickles). Encoding and
decoding are generic over ``dataclasses.fields()`` and the kind registry: no per-kind code.

:func:`load` validates everything and raises only :class:`IRValidationError` (or its subclasses
``IRVersionError`` / ``UnknownKindError``), naming the file, the node path and the field at fault;
it decompresses nothing before the archive's declared sizes are checked against
:mod:`plastix.ir.limits`. :func:`dumps` is deterministic: the same graph gives the same bytes.
"""
from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_bytes
from .errors import IRValidationError, IRVersionError
from .graph import IR_SCHEMA_VERSION, Graph
from .limits import FREE_LOAD_BYTES, LOAD_EXPANSION, MAX_LOAD_BYTES, MAX_MANIFEST_BYTES
from .registry import lookup
from .spec import IRNode, spec_of

FORMAT_TAG = "plastix-ir"
MANIFEST = "plastix.json"
_ALLOWED_DTYPES = {np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                          "uint32", "float32", "float64")}


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
    except IRValidationError as exc:
        if exc.node == cls.__name__:  # an unnamed node (a rule, a cell) is named by its path in the file
            raise exc.at(label) from None
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

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the zip epoch: archives do not depend on when they were written
_MEMBER = re.compile(r"^(plastix\.json|arrays/(0|[1-9][0-9]{0,8})\.npy)$")
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand more than this (RFC 1951 block limits)
_NPY_HEADER_MAX = 10_000


def _member(name: str) -> zipfile.ZipInfo:
    """A zip entry whose metadata depends only on its name (fixed time, mode, system)."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A deflate zip archive of ``members`` (name -> bytes, in order) whose bytes depend only on
    them: fixed timestamps, modes and compression level (used for ``.plx`` and ``.npz`` files)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(_member(name), data, compresslevel=6)
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """One array as ``.npy`` bytes (never pickled)."""
    b = io.BytesIO()
    np.save(b, arr, allow_pickle=False)
    return b.getvalue()


def dumps(graph: Graph) -> bytes:
    """The ``.plx`` bytes of a graph: deterministic (the same graph gives the same bytes)."""
    if not isinstance(graph, Graph):
        raise TypeError(f"expected a plastix.ir.Graph, got {type(graph).__name__}")
    arrays: list[np.ndarray] = []
    doc = {"format": FORMAT_TAG, "schema_version": IR_SCHEMA_VERSION, "graph": to_dict(graph, arrays)}
    members = {MANIFEST: json.dumps(doc, indent=1, allow_nan=False).encode()}
    members.update((f"arrays/{i}.npy", npy_bytes(arr)) for i, arr in enumerate(arrays))
    return zip_bytes(members)


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` atomically (:func:`plastix.ir.atomic.write_bytes`)."""
    data = dumps(graph)
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


atomic_write_bytes = write_bytes  # the name the trainers and exporters import


def load(path: str | os.PathLike, *, max_bytes: int | None = None) -> Graph:
    """Read and fully validate a ``.plx`` file (see :func:`loads`)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            limit = MAX_MANIFEST_BYTES + (MAX_LOAD_BYTES if max_bytes is None else max_bytes) + (1 << 20)
            if size > limit:
                raise IRValidationError("", "", f"file of {size} bytes is larger than any .plx file this plastix "
                                        f"reads ({limit} bytes)", file=str(path))
            return _load(fh, size, str(path), max_bytes)
    except IsADirectoryError:
        raise IRValidationError("", "", "is a folder, not a .plx file", file=str(path)) from None
    except OSError as exc:
        raise IRValidationError("", "", f"cannot read file: {exc.strerror or exc}", file=str(path)) from None


def loads(data: bytes, *, source: str = "<bytes>", max_bytes: int | None = None) -> Graph:
    """Decode ``.plx`` bytes. Every problem raises :class:`IRValidationError` naming ``source``
    (and the node and field, where there is one).

    Array data is bounded before anything is decompressed, from the sizes the archive declares:
    by default at most :data:`~plastix.ir.limits.MAX_LOAD_BYTES`, and beyond
    :data:`~plastix.ir.limits.FREE_LOAD_BYTES` at most
    :data:`~plastix.ir.limits.LOAD_EXPANSION` bytes per byte of file; ``max_bytes`` replaces both
    (for a trusted file that really holds that much)."""
    return _load(io.BytesIO(data), len(data), source, max_bytes)


def load_budget(archive_bytes: int, max_bytes: int | None = None) -> int:
    """Bytes of array data a load of an archive of ``archive_bytes`` may decompress."""
    if max_bytes is not None:
        return int(max_bytes)
    return min(MAX_LOAD_BYTES, max(FREE_LOAD_BYTES, LOAD_EXPANSION * archive_bytes))


def _load(fh: Any, size: int, source: str, max_bytes: int | None) -> Graph:
    try:
        return _read_archive(fh, load_budget(size, max_bytes))
    except IRValidationError as exc:
        raise exc.in_file(source) from None
    except RecursionError:
        raise IRValidationError("", MANIFEST, "document nested too deeply", file=source) from None
    except MemoryError:
        raise IRValidationError("", "", "out of memory while reading the file", file=source) from None
    except Exception as exc:  # last line of defence: a corrupt file must never escape as another type
        raise IRValidationError("", "", f"corrupt file ({type(exc).__name__}: {exc})", file=source) from None


def _open_zip(fh: Any) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        if "not a zip file" in str(exc):
            raise IRValidationError("", "", "not a plastix model file (expected a zip archive)") from None
        raise IRValidationError("", "", f"damaged zip archive: its central directory is unreadable ({exc}); "
                                "the file is truncated or corrupt") from None
    except (ValueError, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise IRValidationError("", "", "damaged zip archive: its end record points outside the file "
                                f"({exc}); the file is truncated or corrupt") from None


def _check_members(infos: list[zipfile.ZipInfo], max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """Member names, methods and declared sizes, before anything is decompressed."""
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if name in members:
            raise IRValidationError("", name, "appears twice in the archive (zip readers disagree on which one "
                                    "counts); the file is ambiguous")
        if not _MEMBER.match(name):
            raise IRValidationError("", name, "unexpected archive member (a .plx archive holds only plastix.json "
                                    "and arrays/<i>.npy)")
        if info.flag_bits & 0x1:
            raise IRValidationError("", name, "is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise IRValidationError("", name, f"compression method {info.compress_type} is not supported "
                                    "(stored or deflate only)")
        ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
        if info.file_size > info.compress_size * ratio + 64:
            raise IRValidationError("", name, f"declares {info.file_size} bytes from {info.compress_size} "
                                    "compressed bytes, more than the compression can produce; the archive is corrupt")
        total += info.file_size
        members[name] = info
    if MANIFEST not in members:
        raise IRValidationError("", MANIFEST, "missing; not a plastix model file")
    if members[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise IRValidationError("", MANIFEST, f"declares {members[MANIFEST].file_size} bytes, more than the "
                                f"{MAX_MANIFEST_BYTES} a .plx manifest may have")
    if total - members[MANIFEST].file_size > max_bytes:
        raise IRValidationError("", "", f"its arrays declare {total - members[MANIFEST].file_size} bytes in total, "
                                f"more than the {max_bytes} bytes this load may decompress (docs/format.md, "
                                "Limits; a trusted file may be loaded with a higher max_bytes / --max-memory)")
    return members


def _strict_json(raw: bytes) -> Any:
    def pairs(items: list) -> dict:
        out = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"key {k!r} appears twice in one object")
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise IRValidationError("", MANIFEST, f"invalid JSON: {exc}") from None


def _read_archive(fh: Any, max_bytes: int) -> Graph:
    with _open_zip(fh) as zf:
        members = _check_members(zf.infolist(), max_bytes)
        doc = _strict_json(_read_member(zf, members[MANIFEST]))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
            raise IRValidationError("", "format", f"expected format {FORMAT_TAG!r}")
        version = doc.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise IRValidationError("", "schema_version", f"invalid schema version {version!r}")
        if version > IR_SCHEMA_VERSION:
            raise IRVersionError("", "schema_version",
                                 f"file uses IR schema {version}, this plastix reads up to {IR_SCHEMA_VERSION}: upgrade plastix")
        extra = sorted(set(doc) - {"format", "schema_version", "graph"})
        if extra:
            raise IRValidationError("", extra[0], "unknown top-level manifest field")

        cache: dict[int, np.ndarray] = {}
        budget = [max_bytes]  # bytes of array data still allowed: every reference counts

        def get_array(i: int, node: str, field: str) -> np.ndarray:
            member = f"arrays/{i}.npy"
            info = members.get(member)
            if info is None:
                raise IRValidationError(node, field, f"array {member} missing from file")
            if info.file_size > budget[0]:
                raise IRValidationError(node, field, f"array {member} ({info.file_size} bytes) exceeds what is left "
                                        f"of the {max_bytes} bytes one load may use (arrays referenced twice count twice)")
            budget[0] -= info.file_size
            if i not in cache:
                cache[i] = _read_npy(zf, info, node, field)
            return cache[i]

        graph = from_dict(doc.get("graph"), get_array, path="graph", category="graph")
        if not isinstance(graph, Graph):  # pragma: no cover - category="graph" guarantees it
            raise IRValidationError("graph", "kind", "expected a graph")
        return graph


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, node: str, field: str) -> np.ndarray:
    """One ``.npy`` member (its declared size already fits the budget): length and CRC checked, the
    header parsed without ``np.load`` (no pickles, no object arrays) and checked against the data."""
    fmt = np.lib.format
    member = info.filename
    try:
        raw = _read_member(zf, info)
    except IRValidationError as exc:
        raise IRValidationError(node, field, f"array {member}: {exc.msg}") from None
    stream = io.BytesIO(raw)
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, max_header_size=_NPY_HEADER_MAX)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, max_header_size=_NPY_HEADER_MAX)
        else:
            raise IRValidationError(node, field, f"array {member}: .npy format {version} is not supported (1.0, 2.0)")
    except IRValidationError:
        raise
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:  # the .npy header itself
        raise IRValidationError(node, field, f"array {member} unreadable: {exc}") from None
    if dtype not in _ALLOWED_DTYPES:
        raise IRValidationError(node, field, f"array {member} has unsupported dtype {dtype} (allowed: "
                                f"{', '.join(sorted(str(d) for d in _ALLOWED_DTYPES))}; never objects or pickles)")
    offset, want = stream.tell(), math.prod(shape) * dtype.itemsize
    if offset + want != len(raw):
        raise IRValidationError(node, field, f"array {member}: header declares shape {shape} {dtype} "
                                f"({want} bytes) but the member holds {len(raw) - offset}")
    if dtype == np.bool_ and np.frombuffer(raw, dtype=np.uint8, offset=offset).max(initial=0) > 1:
        raise IRValidationError(node, field, f"array {member}: a bool array holds bytes other than 0 and 1")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape, order="F" if fortran else "C")


def _member_problem(exc: BaseException) -> str:
    """Words for what zipfile / zlib report about a damaged member."""
    text = str(exc)
    if "CRC" in text:
        return "damaged: its checksum does not match its data (the file is corrupt)"
    if "differ" in text:
        return f"its local header names another member ({text}); the file is corrupt"
    if "magic" in text.lower() or "header" in text.lower():
        return "the zip directory does not point at this member's header; the file is truncated or corrupt"
    if isinstance(exc, zlib.error):
        return f"its compressed data is damaged ({text}); the file is corrupt"
    if isinstance(exc, EOFError):
        return "truncated: its compressed data ends early"
    if "seek" in text or isinstance(exc, OSError):
        return f"the zip directory points outside the file ({text}); the file is truncated or corrupt"
    return f"unreadable ({type(exc).__name__}: {text})"


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        raw = zf.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise IRValidationError("", info.filename, _member_problem(exc)) from None
    _check_integrity(info, raw)
    return raw


def _check_integrity(info: zipfile.ZipInfo, raw: bytes | bytearray) -> None:
    """zipfile checks the CRC only when a member's data ends where its declared size does: check
    the length and the CRC of what was read ourselves (a declared size off by a few bytes passed)."""
    if len(raw) != info.file_size or zlib.crc32(raw) != info.CRC:
        raise IRValidationError("", info.filename, f"damaged: {len(raw)} bytes whose checksum or length does not "
                                f"match the archive directory ({info.file_size} bytes); the file is corrupt")
