"""Seeded mutation fuzzing of the ``.plx`` loader (issue 16).

Every case takes a valid file (one small graph per registered kind, plus the cue-association
network), applies one mutation of a named class and loads the result. The outcome must be one of

* ``rejected``: an :class:`IRValidationError` that names the file (``str(err)`` starts with it)
  and, for mutations aimed at one node field, exactly that node path and field;
* ``accepted``: only for mutations that may leave a valid model; the model then must survive
  ``dumps``/``loads`` unchanged and run 3 steps on the torch backend (a model that passes the
  loader and then crashes a backend is an invalid model accepted silently); a byte flip that is
  accepted must give back the original model;
* ``refused_by_memory``: accepted, and its run refused by the memory estimate (a clean error);

and anything else is counted: ``other`` (another exception type escaped), ``hang`` (no answer
within :data:`HANG_SECONDS`), ``silently_accepted`` (an invalid file loaded), ``unnamed`` (the
error does not name the file, node or field it should). Memory is measured per case with
``tracemalloc`` (numpy's allocations included).

``python -m tests.ir.fuzz --cases 12000 --seed 1`` runs a campaign and prints the counts as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import signal
import sys
import time
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

import plastix.ir as ir
from plastix.ir import limits
from plastix.ir.serialize import npy_bytes

SOURCE = "fuzz.plx"
HANG_SECONDS = 30.0
MEMORY_BOUND = limits.FREE_LOAD_BYTES + (32 << 20)  # what any small file may make the loader allocate


def base_files() -> list[bytes]:
    from plastix.ir.examples import cue_association_net

    from .factories import KIND_FACTORIES

    kinds = ("three_factor", "eligibility", "loihi", "gated", "gru_cell", "lstm_cell", "bcm", "oja", "synaptic_q",
             "modulator", "triplet_stdp", "hebbian_decay", "li")
    return [ir.dumps(KIND_FACTORIES[k]()) for k in kinds] + [ir.dumps(cue_association_net())]


@dataclass
class Case:
    """A mutated file; ``invalid``: no valid model can come out of it; ``where``: the (node, field)
    the error must name, when the mutation targets one node field."""

    kind: str
    data: bytes
    invalid: bool
    where: tuple[str, str] | None = None
    original: bytes | None = None


# ---------------------------------------------------------------------------------------------
# archive helpers


def _members(data: bytes) -> list[tuple[str, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, _quiet():
        for name, payload in members:
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), payload)
    return buf.getvalue()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        yield


def _doc(data: bytes) -> dict:
    return json.loads(zipfile.ZipFile(io.BytesIO(data)).read("plastix.json"))


def _with_doc(data: bytes, doc: Any) -> bytes:
    return _zip([("plastix.json", json.dumps(doc).encode())] + [m for m in _members(data) if m[0] != "plastix.json"])


def _with_member(data: bytes, name: str, payload: bytes) -> bytes:
    return _zip([(n, payload if n == name else b) for n, b in _members(data)])


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _array_refs(doc: dict) -> list[tuple[tuple, int]]:
    """(path of the field, array index) of every array reference in the manifest."""
    return [(p, _get(doc, p)["$array"]) for p in _paths(doc) if p and isinstance(_get(doc, p), dict)
            and set(_get(doc, p)) == {"$array"}]


def location(doc: dict, path: tuple) -> tuple[str, str]:
    """The (node, field) an error about ``path`` (a field inside a graph node) must name:
    ``("syn.rule.base", "gamma")`` for ``graph/projections/0/rule/base/gamma``."""
    top = _get(doc, path[:3])["name"]
    return ".".join([top, *map(str, path[3:-1])]), str(path[-1])


def _array(data: bytes, index: int) -> np.ndarray:
    return np.load(io.BytesIO(dict(_members(data))[f"arrays/{index}.npy"]), allow_pickle=False)


# ---------------------------------------------------------------------------------------------
# mutation classes (each returns a Case)


def byte_flip(rng: random.Random, data: bytes) -> Case:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        d[rng.randrange(len(d))] = rng.randrange(256)
    return Case("byte_flip", bytes(d), invalid=False, original=data)


def truncate(rng: random.Random, data: bytes) -> Case:
    return Case("truncate", data[: rng.randrange(len(data))], invalid=True)


def remove_entry(rng: random.Random, data: bytes) -> Case:
    m = _members(data)
    del m[rng.randrange(len(m))]
    return Case("remove_entry", _zip(m), invalid=True)


def duplicate_entry(rng: random.Random, data: bytes) -> Case:
    m = _members(data)
    name, payload = m[rng.randrange(len(m))]
    other = payload if rng.random() < 0.5 else m[rng.randrange(len(m))][1]
    m.insert(rng.randrange(len(m) + 1), (name, other))
    return Case("duplicate_entry", _zip(m), invalid=True)


def rename_entry(rng: random.Random, data: bytes) -> Case:
    m = _members(data)
    i = rng.randrange(len(m))
    new = rng.choice([f"arrays/{len(m) + rng.randrange(100)}.npy", "arrays/007.npy", "plastix.JSON", "arrays/x.npy",
                      f"{m[i][0]}.bak", "arrays/-1.npy", "manifest.json"])
    m[i] = (new, m[i][1])
    return Case("rename_entry", _zip(m), invalid=True)


def path_traversal(rng: random.Random, data: bytes) -> Case:
    m = _members(data)
    name = rng.choice(["../plastix.json", "../../etc/passwd", "/etc/passwd", "arrays/../plastix.json",
                       "arrays/./0.npy", "C:\\arrays\\0.npy", "arrays\\0.npy", "./plastix.json", "arrays//0.npy",
                       "plastix.json/", "\u0430rrays/0.npy"])
    if rng.random() < 0.5:
        m.append((name, m[rng.randrange(len(m))][1]))
    else:
        i = rng.randrange(len(m))
        m[i] = (name, m[i][1])
    return Case("path_traversal", _zip(m), invalid=True)


_VALUES = [None, True, False, 0, -1, 1, 7, 2.5, -0.0, 1e308, "", "x", "per_pre", "cuba_lif", "graph", [], [1, 2],
           {}, {"$array": 0}, {"$array": 10**6}, {"$array": -1}, {"$array": "0"}, {"kind": "input"},
           {"kind": "nope"}, [[[[]]]], "a" * 300]


def manifest_type(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    paths = list(_paths(doc))[1:]
    path = paths[rng.randrange(len(paths))]
    old = _get(doc, path)
    new = rng.choice([v for v in _VALUES if type(v) is not type(old)])
    _get(doc, path[:-1])[path[-1]] = new
    return Case("manifest_type", _with_doc(data, doc), invalid=False)


def manifest_field(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    objs = [p for p in _paths(doc) if isinstance(_get(doc, p), dict) and "kind" in _get(doc, p)]
    obj = _get(doc, rng.choice(objs))
    action = rng.choice(["delete", "add", "rename", "kind"])
    if action == "delete":
        obj.pop(rng.choice([k for k in obj if k != "kind"] or ["kind"]))
        invalid = False  # a field with a default may be left out
    elif action == "add":
        obj[rng.choice(["extra", "Size", "weights", "__class__", "$array"])] = 1
        invalid = True
    elif action == "rename":
        k = rng.choice([k for k in obj if k != "kind"] or ["kind"])
        obj[k + "_"] = obj.pop(k)
        invalid = True
    else:
        obj["kind"] = rng.choice(["nope", "", "Graph", "pair-stdp", None, 3])
        invalid = True
    return Case("manifest_field", _with_doc(data, doc), invalid=invalid)


def _rule_or_modulator_refs(doc: dict) -> list[tuple[tuple, int]]:
    refs = _array_refs(doc)
    nested = [r for r in refs if "rule" in r[0] or r[0][1] == "modulators" or "cell" in r[0]]
    return nested or refs


def nested_shape(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    path, idx = rng.choice(_rule_or_modulator_refs(doc))
    arr = _array(data, idx)
    shape = arr.shape
    options = [(1,) + shape if shape else (2, 3, 5)]
    if len(shape) == 2 and shape[0] != shape[1]:
        options.append(shape[::-1])
    if shape:
        k = rng.randrange(len(shape))
        options.append(shape[:k] + (shape[k] + 1 + rng.randrange(3),) + shape[k + 1:])
    new = np.zeros(rng.choice(options), dtype=arr.dtype) + (arr.flat[0] if arr.size else 0)
    where = location(doc, path)
    return Case("nested_shape", _with_member(data, f"arrays/{idx}.npy", npy_bytes(new)), invalid=True,
                where=where if where[1] != "weight" or path[1] != "projections" or len(path) > 4 else None)


_INT_FIELDS = ("size", "delay", "refractory", "t_epoch", "seed", "rng_seed", "interval", "memory", "hidden",
               "channels", "in_channels", "out_channels")


def huge_size(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    paths = [p for p in _paths(doc) if len(p) > 3 and p[1] != "metadata" and p[-1] in _INT_FIELDS
             and isinstance(_get(doc, p), int)]
    path = rng.choice(paths)
    # above every maximum of plastix.ir.limits (or negative), so the field itself must be named
    _get(doc, path[:-1])[path[-1]] = rng.choice([2**33, 10**12, 2**63, 2**64, 10**30, -1, -(2**63)])
    return Case("huge_size", _with_doc(data, doc), invalid=True, where=location(doc, path))


def nan_inf(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    bad = rng.choice([np.nan, np.inf, -np.inf])
    if rng.random() < 0.3:  # in the manifest: a float field set to a token outside the JSON standard
        path = rng.choice([p for p in _paths(doc) if p and isinstance(_get(doc, p), float)])
        _get(doc, path[:-1])[path[-1]] = float(bad)
        text = json.dumps(doc)  # writes NaN / Infinity / -Infinity
        return Case("nan_inf", _zip([("plastix.json", text.encode())] + _members(data)[1:]), invalid=True)
    refs = [(p, i) for p, i in _array_refs(doc) if _array(data, i).dtype.kind == "f"]
    path, idx = rng.choice(refs)
    arr = _array(data, idx).copy()
    arr.flat[rng.randrange(max(arr.size, 1))] = bad
    return Case("nan_inf", _with_member(data, f"arrays/{idx}.npy", npy_bytes(arr)), invalid=True,
                where=location(doc, path))


def _pickled(obj: Any) -> bytes:
    b = io.BytesIO()
    np.save(b, obj, allow_pickle=True)
    return b.getvalue()


def object_array(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    path, idx = rng.choice(_array_refs(doc))
    payload = rng.choice([
        _pickled(np.array([{"a": 1}, None], dtype=object)),
        _pickled(np.array(["x", 1], dtype=object)),
        npy_bytes(np.zeros(3, dtype=np.complex128)),
        npy_bytes(np.array(["a", "b"])),
        npy_bytes(np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])),
        npy_bytes(np.zeros(4, dtype=">f8")),
        npy_bytes(np.zeros(2, dtype="datetime64[s]")),
        npy_bytes(np.zeros(2, dtype=np.float16)),
        b"\x93NUMPY\x03\x00" + b"\x00" * 20,
        b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 65535,
        b"\x80\x04\x95" + b"garbage pickle",
    ])
    return Case("object_array", _with_member(data, f"arrays/{idx}.npy", payload), invalid=True,
                where=location(doc, path))


def future_version(rng: random.Random, data: bytes) -> Case:
    doc = _doc(data)
    doc["schema_version"] = rng.choice([ir.IR_SCHEMA_VERSION + 1, 99, 10**9, 10**30, 0, -1, "1", 1.0, 1.5, True,
                                        None, [1]])
    if rng.random() < 0.3:
        doc["format"] = rng.choice(["plastix-ir2", "", None, "PLASTIX-IR"])
    return Case("future_version", _with_doc(data, doc), invalid=True)


def declared_size(rng: random.Random, data: bytes) -> Case:
    """Central-directory sizes patched: a member declares more (or less) than it holds."""
    z = zipfile.ZipFile(io.BytesIO(data))
    info = rng.choice(z.infolist())
    d = bytearray(data)
    at = data.find(b"PK\x01\x02", int.from_bytes(data[data.rfind(b"PK\x05\x06") + 16:][:4], "little"))
    while at >= 0:
        n = int.from_bytes(d[at + 28:at + 30], "little")
        if bytes(d[at + 46:at + 46 + n]).decode() == info.filename:
            value = rng.choice([2**31, 2**32 - 1, 10**9, info.file_size + 1, max(info.file_size - 1, 0), 0])
            d[at + 24:at + 28] = value.to_bytes(4, "little")
            break
        at = data.find(b"PK\x01\x02", at + 4)
    same = bytes(d) == data
    return Case("declared_size", bytes(d), invalid=not same)


def json_syntax(rng: random.Random, data: bytes) -> Case:
    text = zipfile.ZipFile(io.BytesIO(data)).read("plastix.json").decode()
    choice = rng.randrange(7)
    if choice == 0:
        text = text.replace('"schema_version": 1', '"schema_version": 1, "schema_version": 1', 1)
    elif choice == 1:
        text = text.replace('"dt": ', '"dt": Infinity, "dt2": ', 1)
    elif choice == 2:
        text = "[" * 200_000 + "]" * 200_000
    elif choice == 3:
        text = text.replace('"schema_version": 1', '"schema_version": 1' + "0" * 5000, 1)
    elif choice == 4:
        text = text[: rng.randrange(len(text))]
    elif choice == 5:
        return Case("json_syntax", _zip([("plastix.json", b"\xff\xfe" + text.encode("utf-16"))] + _members(data)[1:]),
                    invalid=True)
    else:
        text = '{"format": "plastix-ir", "schema_version": 1, "graph": ' + '{"kind": "graph", "x": ' * 3000 + "1" + "}" * 3001
    return Case("json_syntax", _zip([("plastix.json", text.encode())] + _members(data)[1:]), invalid=True)


def value_tweak(rng: random.Random, data: bytes) -> Case:
    """A number changed to another finite number (in the manifest or in an array): often still a
    valid model, which must then round-trip and run."""
    doc = _doc(data)
    value = rng.choice([-1e3, -1.0, 0.0, 1e-9, 0.5, 1.0, 2.0, 3.0, 1e6, 1e300])
    if rng.random() < 0.5:
        path = rng.choice([p for p in _paths(doc) if p and isinstance(_get(doc, p), (int, float))
                           and not isinstance(_get(doc, p), bool)])
        old = _get(doc, path)
        _get(doc, path[:-1])[path[-1]] = type(old)(value) if isinstance(old, float) else int(value)
        return Case("value_tweak", _with_doc(data, doc), invalid=False)
    path, idx = rng.choice(_array_refs(doc))
    arr = _array(data, idx).copy()
    if arr.size:
        arr.flat[rng.randrange(arr.size)] = value if arr.dtype.kind == "f" else int(np.clip(value, -1, 1))
    return Case("value_tweak", _with_member(data, f"arrays/{idx}.npy", npy_bytes(arr)), invalid=False)


MUTATIONS: dict[str, Callable[[random.Random, bytes], Case]] = {
    f.__name__: f for f in (byte_flip, truncate, remove_entry, duplicate_entry, rename_entry, path_traversal,
                            manifest_type, manifest_field, nested_shape, huge_size, nan_inf, object_array,
                            future_version, declared_size, json_syntax, value_tweak)}


# ---------------------------------------------------------------------------------------------
# running cases


class Hang(Exception):
    """A case did not finish within HANG_SECONDS."""


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _oracle(graph: ir.Graph) -> str:
    """An accepted model must round-trip and run: 'accepted', 'refused_by_memory' or the failure."""
    from plastix.backends.memory import MemoryLimitError
    from plastix.deploy.report import probe_inputs, run_torch

    if ir.loads(ir.dumps(graph)) != graph:
        return "silently_accepted"
    try:
        run_torch(graph, probe_inputs(graph, 3, 0))
    except MemoryLimitError:
        return "refused_by_memory"
    except Exception:  # noqa: BLE001 - a model the loader accepted must not crash a backend
        return "silently_accepted"
    return "accepted"


def _named(err: ir.IRValidationError, case: Case) -> bool:
    if err.file != SOURCE or not str(err).startswith(f"{SOURCE}: "):
        return False
    return case.where is None or (err.node, err.field) == case.where


@dataclass
class Outcome:
    kind: str
    result: str  # rejected | accepted | refused_by_memory | other | hang | silently_accepted | unnamed
    peak_bytes: int
    detail: str = ""


def run_case(case: Case, *, measure: bool = True) -> Outcome:
    """Load one case (memory of the load measured with tracemalloc) and classify the outcome."""
    peak = 0
    try:
        with _watchdog(HANG_SECONDS):
            if measure:
                tracemalloc.start()
            try:
                graph = ir.loads(case.data, source=SOURCE)
            except ir.IRValidationError as err:
                ok = _named(err, case)
                result, detail = ("rejected" if ok else "unnamed"), str(err)[:300]
            else:
                if case.invalid:
                    result, detail = "silently_accepted", "an invalid file loaded"
                elif case.original is not None and graph != ir.loads(case.original):
                    result, detail = "silently_accepted", "a byte flip changed the model undetected"
                else:
                    result, detail = "accepted", ""
            finally:
                if measure:
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
            if result == "accepted":
                result = _oracle(graph)
                detail = "" if result != "silently_accepted" else "accepted, then failed to round-trip or run"
    except Hang:
        result, detail = "hang", f"no answer within {HANG_SECONDS} s"
    except Exception as exc:  # noqa: BLE001 - counted, never silently passed
        result, detail = "other", f"{type(exc).__name__}: {exc}"[:300]
    return Outcome(case.kind, result, peak, detail)


@dataclass
class Counts:
    cases: int = 0
    by_result: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=dict)
    max_peak_bytes: int = 0
    peak_by_kind: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.cases += 1
        self.by_result[o.result] += 1
        self.by_kind.setdefault(o.kind, Counter())[o.result] += 1
        self.max_peak_bytes = max(self.max_peak_bytes, o.peak_bytes)
        self.peak_by_kind[o.kind] = max(self.peak_by_kind.get(o.kind, 0), o.peak_bytes)
        bad = o.result in ("other", "hang", "silently_accepted", "unnamed") or o.peak_bytes > MEMORY_BOUND
        if bad and len(self.failures) < 20:
            self.failures.append((o.kind, o.result, o.peak_bytes, o.detail))

    @property
    def bad(self) -> int:
        return sum(self.by_result[r] for r in ("other", "hang", "silently_accepted", "unnamed"))

    def as_dict(self) -> dict:
        return {"cases": self.cases, **{r: self.by_result[r] for r in
                ("rejected", "accepted", "refused_by_memory", "other", "hang", "silently_accepted", "unnamed")},
                "max_peak_MiB": round(self.max_peak_bytes / 2**20, 1),
                "max_peak_MiB_by_class": {k: round(v / 2**20, 2) for k, v in sorted(self.peak_by_kind.items())},
                "by_class": {k: dict(v) for k, v in sorted(self.by_kind.items())}, "failures": self.failures}


def campaign(cases_per_class: int, seed: int, kinds: tuple[str, ...] | None = None, *, measure: bool = True) -> Counts:
    """``cases_per_class`` cases of every mutation class (or of ``kinds``), seeded."""
    files = base_files()
    counts = Counts()
    for kind in kinds or tuple(MUTATIONS):
        rng = random.Random(f"{seed}:{kind}")
        for _ in range(cases_per_class):
            case = MUTATIONS[kind](rng, files[rng.randrange(len(files))])
            counts.add(run_case(case, measure=measure))
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="fuzz the .plx loader; prints counts as JSON")
    ap.add_argument("--cases", type=int, default=12_000, help="total cases (split evenly over the classes)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    counts = campaign(-(-a.cases // len(MUTATIONS)), a.seed)
    out = {"command": f"python -m tests.ir.fuzz --cases {a.cases} --seed {a.seed}", **counts.as_dict(),
           "wall_time_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=1))
    sys.exit(1 if counts.bad or counts.max_peak_bytes > MEMORY_BOUND else 0)


if __name__ == "__main__":
    main()
