"""Declarative field specs shared by every IR dataclass.

Each field of an IR node carries a :class:`FieldSpec` in its ``dataclasses.field`` metadata. One
generic :class:`IRNode.__post_init__` normalises and validates every field from its spec, and
``serialize.py`` reads the same specs, so no kind needs hand-written checks or a reader of its own.

Array fields are stored as read-only numpy arrays. A symbolic ``shape`` such as ``("size",)`` is
resolved from the node's own integer fields; ``"pre"``/``"post"`` are resolved when a rule is
attached to a projection (graph validation). With ``scalar_ok`` a 0-d array broadcasts.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from .errors import IRValidationError

_FLOAT_DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class FieldSpec:
    """How one field is validated, normalised and serialised."""

    role: str  # array | int | float | str | bool | enum | node | nodes | names | mapping
    dtype: str | None = None  # arrays: float | int | bool
    shape: tuple[str | int, ...] | None = None
    scalar_ok: bool = True
    optional: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    enum_cls: type | None = None
    category: str | None = None
    doc: str = ""
    state: bool = False  # arrays: the initial value of a state variable, not a learnable coefficient


def _field(spec: FieldSpec, default: Any = MISSING) -> Any:
    if default is MISSING and spec.optional:
        default = None
    return dataclasses.field(default=default, metadata={"spec": spec})


def array(dtype: str = "float", shape: tuple[str | int, ...] | None = None, *, scalar_ok: bool = True,
          optional: bool = False, default: Any = MISSING, doc: str = "", **bounds: float) -> Any:
    """An array field (scalars allowed when ``scalar_ok``); ``bounds`` are ge/gt/le/lt."""
    return _field(FieldSpec("array", dtype, shape, scalar_ok, optional, doc=doc, **bounds), default)


def initial(shape: tuple[str | int, ...], *, doc: str = "", **bounds: float) -> Any:
    """The initial value of a state variable (float array or scalar, default 0): read when a run
    starts, never a learnable coefficient (backends do not turn it into a trainable parameter)."""
    return _field(FieldSpec("array", "float", shape, True, False, doc=doc, state=True, **bounds), 0.0)


def integer(*, default: Any = MISSING, optional: bool = False, doc: str = "", **bounds: float) -> Any:
    return _field(FieldSpec("int", optional=optional, doc=doc, **bounds), default)


def real(*, default: Any = MISSING, optional: bool = False, doc: str = "", **bounds: float) -> Any:
    return _field(FieldSpec("float", optional=optional, doc=doc, **bounds), default)


def text(*, default: Any = MISSING, optional: bool = False, doc: str = "") -> Any:
    return _field(FieldSpec("str", optional=optional, doc=doc), default)


def flag(*, default: Any = MISSING, doc: str = "") -> Any:
    return _field(FieldSpec("bool", doc=doc), default)


def choice(enum_cls: type[enum.Enum], *, default: Any = MISSING, doc: str = "") -> Any:
    return _field(FieldSpec("enum", enum_cls=enum_cls, doc=doc), default)


def child(category: str | tuple[str, ...], *, optional: bool = False, default: Any = MISSING, doc: str = "") -> Any:
    cat = category if isinstance(category, str) else "|".join(category)
    return _field(FieldSpec("node", category=cat, optional=optional, doc=doc), default)


def children(category: str, *, default: Any = (), doc: str = "") -> Any:
    return _field(FieldSpec("nodes", category=category, doc=doc), default)


def names(*, default: Any = (), doc: str = "") -> Any:
    return _field(FieldSpec("names", doc=doc), default)


def mapping(*, default: Any = None, doc: str = "") -> Any:
    return _field(FieldSpec("mapping", optional=True, doc=doc), default)


def get_path(node: Any, path: str) -> Any:
    """The value at ``path`` ("rule/base/gamma": fields separated by "/") inside an IR node."""
    for part in path.split("/"):
        node = getattr(node, part)
    return node


def spec_of(f: dataclasses.Field) -> FieldSpec:
    return f.metadata["spec"]


# ---------------------------------------------------------------------------------------------
# normalisation


def _bounds_msg(spec: FieldSpec) -> str:
    parts = []
    for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        val = getattr(spec, key)
        if val is not None:
            parts.append(f"{op} {val}")
    return " and ".join(parts)


def _check_bounds(values: np.ndarray | float, spec: FieldSpec, node: str, name: str) -> None:
    v = np.asarray(values)
    if v.size == 0:
        return
    ok = True
    if spec.ge is not None:
        ok &= bool(np.all(v >= spec.ge))
    if spec.gt is not None:
        ok &= bool(np.all(v > spec.gt))
    if spec.le is not None:
        ok &= bool(np.all(v <= spec.le))
    if spec.lt is not None:
        ok &= bool(np.all(v < spec.lt))
    if not ok:
        got = f"got {v.item()}" if v.ndim == 0 else f"got min {v.min()}, max {v.max()}"
        raise IRValidationError(node, name, f"{'must be' if v.ndim == 0 else 'values must be'} {_bounds_msg(spec)} ({got})")


def _immutable(value: Any) -> bool:
    """A read-only array over an immutable ``bytes`` buffer (as the loader makes them): nothing can
    change it, so a node may keep it without a copy."""
    if not isinstance(value, np.ndarray) or value.flags.writeable:
        return False
    base = value
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, bytes)


def normalize_array(value: Any, spec: FieldSpec, node: str, name: str) -> np.ndarray:
    """Convert to a read-only numpy array of the spec's dtype; check finiteness and bounds."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise IRValidationError(node, name, f"expected a numeric array, got {type(value).__name__}")
    try:
        arr = value if _immutable(value) else np.array(value, copy=True)
    except Exception as exc:  # ragged lists, objects numpy cannot hold
        raise IRValidationError(node, name, f"not convertible to an array: {exc}") from None
    kind = arr.dtype.kind
    if spec.dtype == "float":
        if kind not in "biuf":
            raise IRValidationError(node, name, f"expected a float array, got dtype {arr.dtype}")
        if arr.dtype.type not in _FLOAT_DTYPES:
            arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise IRValidationError(node, name, "contains NaN or inf")
    elif spec.dtype == "int":
        if kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif kind not in "biu":
            raise IRValidationError(node, name, f"expected an integer array, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    elif spec.dtype == "bool":
        if kind == "b":
            pass
        elif kind in "iuf" and np.all(np.isin(arr, (0, 1))):
            arr = arr.astype(bool)
        else:
            raise IRValidationError(node, name, f"expected a boolean array, got dtype {arr.dtype}")
    else:  # pragma: no cover - spec bug
        raise AssertionError(spec.dtype)
    if arr.ndim == 0 and not spec.scalar_ok:
        raise IRValidationError(node, name, "must be an array, not a scalar")
    _check_bounds(arr, spec, node, name)
    arr.setflags(write=False)
    return arr


def resolve_shape(shape: tuple[str | int, ...], dims: Mapping[str, int]) -> tuple[int | None, ...]:
    """Resolve symbolic dims; a symbol not (yet) known resolves to ``None``."""
    return tuple(d if isinstance(d, int) else (int(dims[d]) if d in dims else None) for d in shape)


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(arr: np.ndarray, spec: FieldSpec, dims: Mapping[str, int], node: str, name: str, *,
                strict: bool = False) -> None:
    """Check ``arr`` against the spec's symbolic shape, comparing every dim that ``dims`` resolves
    (a partly known shape is checked where known). With ``strict`` every symbol must resolve."""
    if spec.shape is None or (arr.ndim == 0 and spec.scalar_ok):
        return
    want = resolve_shape(spec.shape, dims)
    sym = _shape_text(spec.shape)
    if strict and None in want:
        unknown = [d for d, w in zip(spec.shape, want) if w is None]
        raise IRValidationError(node, name, f"shape {sym}: dimension {unknown[0]!r} is not defined in this context")
    if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
        scal = " or a scalar" if spec.scalar_ok else ""
        raise IRValidationError(node, name, f"shape {tuple(arr.shape)} does not match {sym} = {_shape_text(want)}{scal}")


def _scalar(value: Any, spec: FieldSpec, node: str, name: str) -> Any:
    role = spec.role
    if role == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise IRValidationError(node, name, f"expected an int, got {value!r}")
        value = int(value)
        _check_bounds(value, spec, node, name)
        return value
    if role == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise IRValidationError(node, name, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise IRValidationError(node, name, "must be finite")
        _check_bounds(value, spec, node, name)
        return value
    if role == "str":
        if not isinstance(value, str) or not value:
            raise IRValidationError(node, name, f"expected a non-empty string, got {value!r}")
        return value
    if role == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise IRValidationError(node, name, f"expected true/false, got {value!r}")
        return bool(value)
    if role == "enum":
        cls = spec.enum_cls
        assert cls is not None
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (ValueError, TypeError):
            allowed = ", ".join(repr(m.value) for m in cls)  # type: ignore[attr-defined]
            raise IRValidationError(node, name, f"{value!r} is not one of {allowed}") from None
    if role == "node":
        cats = (spec.category or "").split("|")
        if not isinstance(value, IRNode) or value.category not in cats:
            raise IRValidationError(node, name, f"expected an IR {spec.category}, got {type(value).__name__}")
        return value
    if role == "nodes":
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise IRValidationError(node, name, f"expected a sequence of {spec.category}s")
        items = tuple(value)
        for i, item in enumerate(items):
            if not isinstance(item, IRNode) or item.category != spec.category:
                raise IRValidationError(node, f"{name}[{i}]", f"expected an IR {spec.category}, got {type(item).__name__}")
        return items
    if role == "names":
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise IRValidationError(node, name, "expected a sequence of names")
        items = tuple(value)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise IRValidationError(node, f"{name}[{i}]", f"expected a non-empty string, got {item!r}")
        return items
    if role == "mapping":
        if not isinstance(value, Mapping):
            raise IRValidationError(node, name, "expected a mapping of str to str/number/bool")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, (str, int, float, bool)) or (
                    isinstance(v, float) and not math.isfinite(v)):
                raise IRValidationError(node, name, f"entry {k!r}: keys must be strings and values finite str/number/bool")
            out[k] = v
        return _FrozenMapping(out)
    raise AssertionError(role)  # pragma: no cover


class _FrozenMapping(dict):
    """A read-only dict (metadata of a frozen node)."""

    def _ro(self, *a: Any, **k: Any) -> None:
        raise TypeError("IR metadata is read-only; use node.replace(metadata=...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _ro  # type: ignore[assignment]


def values_equal(a: Any, b: Any) -> bool:
    """Structural equality used by IR nodes (arrays compare by dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class IRNode:
    """Base of every IR dataclass: generic validation, value equality and ``replace``.

    Subclasses are ``@dataclass(frozen=True, eq=False)`` and may add ``_check()`` for invariants
    that involve several fields.
    """

    __slots__ = ()
    kind: ClassVar[str]
    category: ClassVar[str]

    @property
    def label(self) -> str:
        name = getattr(self, "name", None)
        return name if isinstance(name, str) and name else type(self).__name__

    def dims(self) -> dict[str, int]:
        """Integer fields usable as symbolic dims of this node's arrays."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if spec_of(f).role == "int" and getattr(self, f.name) is not None}

    def __post_init__(self) -> None:
        label = self.label if isinstance(getattr(self, "name", None), str) else type(self).__name__
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            spec = spec_of(f)
            value = getattr(self, f.name)
            if value is None:
                if not spec.optional:
                    raise IRValidationError(label, f.name, "is required")
                continue
            if spec.role == "array":
                value = normalize_array(value, spec, label, f.name)
            else:
                value = _scalar(value, spec, label, f.name)
            object.__setattr__(self, f.name, value)
        dims = self.dims()
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            spec = spec_of(f)
            value = getattr(self, f.name)
            if spec.role == "array" and value is not None:
                check_shape(value, spec, dims, label, f.name)
        self._check()

    def _check(self) -> None:
        """Cross-field invariants; override in subclasses."""

    def check_dims(self, dims: Mapping[str, int], label: str, *, strict: bool = False) -> None:
        """Check every array shape of this node and of every node nested in it (a rule's ``base``,
        a cell) against ``dims``, the dims known only in context (``pre``/``post`` of a projection,
        ``src`` of a modulator); a node's own dims shadow the context's. Nested nodes are named
        ``label.field``. With ``strict`` every symbolic dim must resolve (graph validation)."""
        all_dims = {**dims, **self.dims()}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            spec = spec_of(f)
            value = getattr(self, f.name)
            if value is None:
                continue
            if spec.role == "array":
                check_shape(value, spec, all_dims, label, f.name, strict=strict)
            elif spec.role == "node":
                value.check_dims(all_dims, f"{label}.{f.name}", strict=strict)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(values_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in dataclasses.fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]

    def replace(self, **changes: Any) -> "IRNode":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
