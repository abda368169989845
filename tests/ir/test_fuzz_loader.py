"""Property tests of the loader: corrupted files only ever raise IRValidationError.

Three strategies x 400 examples = 1,200 cases in the default suite.
"""
import io
import json
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plastix.ir as ir

from .factories import KIND_FACTORIES

VALID = [ir.dumps(KIND_FACTORIES[k]()) for k in ("three_factor", "loihi", "gated", "bcm", "synaptic_q")]
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_or_validation_error(data: bytes) -> None:
    try:
        g = ir.loads(data)
    except ir.IRValidationError as exc:
        assert exc.node is not None and str(exc)
        return
    assert isinstance(g, ir.Graph)  # a mutation may leave the file valid


@SETTINGS
@given(which=st.integers(0, len(VALID) - 1), edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)),
                                                             min_size=1, max_size=8),
       truncate=st.one_of(st.none(), st.integers(0, 10**9)))
def test_corrupted_bytes(which, edits, truncate):
    data = bytearray(VALID[which])
    for pos, val in edits:
        data[pos % len(data)] = val
    if truncate is not None:
        data = data[: truncate % len(data)]
    _load_or_validation_error(bytes(data))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=8), st.sampled_from(["cuba_lif", "pair_stdp", "graph", "nope", "per_pre", "h", "x"]),
              st.just({"$array": 0}), st.just({"$array": 99})),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _rebuild(data: bytes, manifest=None, arrays=None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "plastix.json" and manifest is not None:
                payload = json.dumps(manifest).encode()
            if arrays and info.filename in arrays:
                payload = arrays[info.filename]
            dst.writestr(info.filename, payload)
    return out.getvalue()


@SETTINGS
@given(which=st.integers(0, len(VALID) - 1), pick=st.integers(0, 10**6), value=json_values, delete=st.booleans())
def test_mutated_manifest(which, pick, value, delete):
    data = VALID[which]
    doc = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("plastix.json"))
    paths = list(_paths(doc))[1:]
    path = paths[pick % len(paths)]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    _load_or_validation_error(_rebuild(data, manifest=doc))


arrays = st.one_of(
    st.builds(lambda shape, fill: np.full(shape, fill), st.lists(st.integers(0, 4), max_size=3).map(tuple),
              st.sampled_from([0.0, 1.0, -2.0, np.nan, np.inf, 0.5])),
    st.builds(lambda n: np.arange(n).astype("int8"), st.integers(0, 5)),
    st.builds(lambda n: np.array(["a"] * n), st.integers(0, 3)),
    st.just(np.zeros(3, dtype=np.complex64)),
)


@SETTINGS
@given(which=st.integers(0, len(VALID) - 1), pick=st.integers(0, 10**6), arr=arrays, raw=st.binary(max_size=40),
       use_raw=st.booleans())
def test_replaced_arrays(which, pick, arr, raw, use_raw):
    data = VALID[which]
    names = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.startswith("arrays/")]
    name = names[pick % len(names)]
    if use_raw:
        payload = raw
    else:
        b = io.BytesIO()
        np.save(b, arr, allow_pickle=False)
        payload = b.getvalue()
    _load_or_validation_error(_rebuild(data, arrays={name: payload}))
