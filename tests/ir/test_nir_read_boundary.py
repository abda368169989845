"""The NIR read boundary (``read_nir``): declared dataset sizes are checked before anything is read,
and a file whose plastix extension is damaged gives an IRValidationError naming the file."""
from __future__ import annotations

import os
import resource

import h5py
import pytest

import plastix.ir as ir
from plastix.ir.nir_interop import read_nir, write_nir


def test_compressed_30000x30000_dataset_is_refused_before_reading(tmp_path):
    """The issue's case: a ~10 KB NIR file with a gzip'd 30000 x 30000 float64 dataset (7.2 GB)."""
    path = tmp_path / "bomb.nir"
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0", dtype=h5py.string_dtype())
        node = f.create_group("node/nodes/lin")
        node.create_dataset("type", data="Linear", dtype=h5py.string_dtype())
        node.create_dataset("weight", shape=(30000, 30000), dtype="f8", compression="gzip", chunks=True)
    assert os.path.getsize(path) < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ir.IRValidationError) as info:
        read_nir(path, dt=1e-3)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    e = info.value
    assert e.file == str(path) and e.field == "node/nodes/lin/weight" and "(30000, 30000) float64" in e.msg
    assert grown_kib < 200_000  # nothing near the 7.2 GB was allocated


def _edit_metadata(path, key: str, value) -> None:
    with h5py.File(path, "r+") as f:
        del f[key]
        f.create_dataset(key, data=value, dtype=h5py.string_dtype() if isinstance(value, str) else None)


@pytest.mark.parametrize("key,value", [
    ("node/metadata/plastix.modulators", "{not json"),  # JSONDecodeError
    ("node/metadata/plastix.outputs", "[1, 2]"),  # names of the wrong type
    ("node/metadata/plastix.metadata", '["a"]'),  # a list where a mapping belongs
    ("node/metadata/plastix.dt", "abc"),  # ValueError from float()
    ("node/nodes/h/metadata/plastix", '{"node": {"kind": "cuba_lif"}, "arrays": 7}'),
])
def test_bad_extension_metadata_is_a_validation_error(tmp_path, key, value):
    from tests.deploy.conftest import static_ff

    path = write_nir(static_ff(), tmp_path / "m.nir")
    _edit_metadata(path, key, value)
    with pytest.raises(ir.IRValidationError) as info:
        read_nir(path)
    assert info.value.file == str(path) or str(path) in str(info.value)


def test_a_valid_file_still_reads(tmp_path):
    from tests.deploy.conftest import static_ff

    g = static_ff()
    assert read_nir(write_nir(g, tmp_path / "m.nir")) == g
