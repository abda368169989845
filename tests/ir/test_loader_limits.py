"""The loader's container checks: ambiguous or unexpected members, damaged zip headers in words,
declared sizes bounded before anything is decompressed, no pickles, deterministic bytes."""
from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import plastix.ir as ir
from plastix.ir import limits
from plastix.ir.serialize import npy_bytes

from .factories import KIND_FACTORIES, base_graph

GOOD = ir.dumps(KIND_FACTORIES["three_factor"]())


def _err(data: bytes, **kw) -> ir.IRValidationError:
    with pytest.raises(ir.IRValidationError) as info:
        ir.loads(data, source="m.plx", **kw)
    assert str(info.value).startswith("m.plx: ")
    return info.value


def _members(data: bytes) -> list[tuple[str, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in members:
            z.writestr(name, payload)
    return buf.getvalue()


def test_duplicate_entries_are_rejected():
    members = _members(GOOD)
    evil = json.loads(members[0][1])
    evil["graph"]["populations"][1]["refractory"] = 7
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip(members + [("plastix.json", json.dumps(evil).encode())])
    e = _err(data)
    assert e.field == "plastix.json" and "appears twice" in e.msg
    with pytest.warns(UserWarning):
        e = _err(_zip(members + [members[2]]))
    assert e.field == members[2][0] and "ambiguous" in e.msg


@pytest.mark.parametrize("name", ["../evil.npy", "/etc/passwd", "arrays/../plastix.json", "arrays/01.npy",
                                  "arrays/", "notes.txt", "arrays\\0.npy"])
def test_unexpected_member_names_are_rejected(name):
    e = _err(_zip(_members(GOOD) + [(name, b"x")]))
    assert e.field == name and "unexpected archive member" in e.msg


def test_json_duplicate_keys_and_nan_are_rejected():
    members = _members(GOOD)
    text = members[0][1].decode()
    dup = text.replace('"schema_version": 1', '"schema_version": 1, "schema_version": 1', 1)
    e = _err(_zip([("plastix.json", dup.encode())] + members[1:]))
    assert "appears twice" in e.msg
    nan = text.replace('"dt": 0.001', '"dt": NaN', 1)
    assert nan != text
    e = _err(_zip([("plastix.json", nan.encode())] + members[1:]))
    assert "NaN is not JSON" in e.msg


def _patch_eocd(data: bytes, field_offset: int, value: int) -> bytes:
    d = bytearray(data)
    at = d.rfind(b"PK\x05\x06") + field_offset
    d[at:at + 4] = value.to_bytes(4, "little")
    return bytes(d)


@pytest.mark.parametrize("value", [2**31, 2**32 - 1, 7])
def test_damaged_zip_directory_is_explained_in_words(value):
    e = _err(_patch_eocd(GOOD, 16, value))  # the central directory's offset
    assert "zip directory" in e.msg and "truncated or corrupt" in e.msg and "seek" not in e.msg.split("(")[0]


def test_truncated_and_bitflipped_members_are_named():
    e = _err(GOOD[: len(GOOD) // 2])
    assert "zip" in e.msg
    info = zipfile.ZipFile(io.BytesIO(GOOD)).getinfo("arrays/1.npy")
    d = bytearray(GOOD)
    d[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    e = _err(bytes(d))
    assert "arrays/1.npy" in str(e) and "damaged" in e.msg


def _with_array(i: int, payload: bytes) -> bytes:
    return _zip([(n, payload if n == f"arrays/{i}.npy" else b) for n, b in _members(GOOD)])


def test_object_and_pickled_arrays_are_rejected():
    b = io.BytesIO()
    np.save(b, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    e = _err(_with_array(0, b.getvalue()))
    assert "unsupported dtype object" in e.msg and "pickles" in e.msg
    e = _err(_with_array(0, npy_bytes(np.zeros(3, dtype=np.complex64))))
    assert "complex64" in e.msg


def test_array_header_must_match_the_member_size():
    raw = bytearray(npy_bytes(np.zeros((2, 3))))
    raw[raw.index(b"(2, 3)"):raw.index(b"(2, 3)") + 6] = b"(9, 9)"
    e = _err(_with_array(0, bytes(raw)))
    assert "header declares shape (9, 9)" in e.msg


def bomb(shape: tuple[int, int]) -> bytes:
    """A .plx whose weight array is an honest deflate stream of a huge zero array, built from one
    repeated compressed block (never materialised)."""
    members = _members(ir.dumps(base_graph()))
    target = f"arrays/{json.loads(members[0][1])['graph']['projections'][0]['weight']['$array']}.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    header = header.getvalue()
    chunk = bytes(1 << 20)
    total = len(header) + 8 * shape[0] * shape[1]
    n, rest = divmod(total - len(header), len(chunk))
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(bytes(rest)) + comp.flush()
    crc = zlib.crc32(header)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(bytes(rest), crc)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members:
            if name != target:
                zf.writestr(name, payload)
        info = zipfile.ZipInfo(target, (1980, 1, 1, 0, 0, 0))
        info.compress_type, info.file_size, info.CRC = zipfile.ZIP_DEFLATED, total, crc
        info.compress_size = len(head) + n * len(block) + len(tail)
        info.header_offset = zf.fp.tell()
        zf.fp.write(info.FileHeader(zip64=True))
        zf.fp.write(head)
        for _ in range(n):
            zf.fp.write(block)
        zf.fp.write(tail)
        zf.filelist.append(info)
        zf.NameToInfo[info.filename] = info
        zf.start_dir = zf.fp.tell()
    return out.getvalue()


def test_a_small_file_never_decompresses_gigabytes():
    """The issue's case: a 2 MB .plx holding one 2 GiB zero array is refused from its declared size,
    before anything is decompressed."""
    data = bomb((16384, 16384))
    assert len(data) < 3 << 20
    tracemalloc.start()
    try:
        e = _err(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "declare 2147" in e.msg and str(limits.FREE_LOAD_BYTES) in e.msg and peak < 8 << 20


def test_expansion_rule_and_explicit_budget():
    """Beyond FREE_LOAD_BYTES a file must carry one byte per LOAD_EXPANSION bytes it declares; a
    trusted file loads with an explicit ``max_bytes``, and the budget is then enforced exactly."""
    data = bomb((2, 3 + (limits.FREE_LOAD_BYTES // 16)))  # 64 MiB + 48 bytes of zeros in a ~70 KB file
    e = _err(data)
    assert "this load may decompress" in e.msg
    e = _err(data, max_bytes=1 << 20)
    assert str(1 << 20) in e.msg
    # within an explicit budget the array is read and then fails the (2, 3) shape check: it was decoded
    e = _err(data, max_bytes=80 << 20)
    assert e.node == "syn" and "(2, 4194307)" in e.msg


def test_a_reference_counts_every_time_it_is_used():
    """The total is bounded, not just each array: an array referenced by 400 projections counts 400 times."""
    members = _members(ir.dumps(base_graph()))
    doc = json.loads(members[0][1])
    proj = doc["graph"]["projections"][0]
    doc["graph"]["projections"] = [dict(proj, name=f"p{i}") for i in range(400)]
    data = _zip([("plastix.json", json.dumps(doc).encode())] + members[1:])
    size = {n: len(b) for n, b in members[1:]}
    refs = [f"arrays/{v['$array']}.npy" for v in proj.values() if isinstance(v, dict) and "$array" in v]
    needed = sum(size.values()) + 399 * sum(size[r] for r in refs)
    assert len(ir.loads(data, max_bytes=needed).projections) == 400
    e = _err(data, max_bytes=needed - 1)
    assert "referenced twice count twice" in e.msg


def test_manifest_size_is_bounded():
    members = _members(GOOD)
    doc = json.loads(members[0][1])
    doc["graph"]["metadata"] = {"pad": "x" * limits.MAX_MANIFEST_BYTES}
    e = _err(_zip([("plastix.json", json.dumps(doc).encode())] + members[1:]))
    assert e.field == "plastix.json" and str(limits.MAX_MANIFEST_BYTES) in e.msg


def test_errors_name_file_node_and_field(tmp_path):
    members = _members(GOOD)
    doc = json.loads(members[0][1])
    doc["graph"]["projections"][0]["rule"]["base"]["gamma"] = 1.5
    path = tmp_path / "bad.plx"
    path.write_bytes(_zip([("plastix.json", json.dumps(doc).encode())] + members[1:]))
    with pytest.raises(ir.IRValidationError) as info:
        ir.load(path)
    e = info.value
    assert (e.file, e.node, e.field) == (str(path), "syn.rule.base", "gamma")
    assert str(e).startswith(f"{path}: syn.rule.base.gamma: must be")
    with pytest.raises(ir.IRValidationError, match="is a folder"):
        ir.load(tmp_path)


def test_archives_are_deterministic(monkeypatch):
    """Same graph -> same bytes, whatever the clock says (zip timestamps used to differ)."""
    import time

    g = KIND_FACTORIES["loihi"]()
    first = ir.dumps(g)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    monkeypatch.setattr(time, "localtime", lambda *a: time.struct_time((2033, 5, 18, 3, 33, 20, 2, 138, 0)))
    assert ir.dumps(g) == first
    assert ir.dumps(ir.loads(first)) == first
