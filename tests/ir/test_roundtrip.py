"""Every registered kind survives to_dict/from_dict and dumps/loads exactly (NIR's factory test)."""
import numpy as np
import pytest

import plastix.ir as ir
from plastix.ir.registry import kinds

from .factories import KIND_FACTORIES


def test_every_kind_has_a_factory():
    missing = sorted(set(kinds()) - set(KIND_FACTORIES))
    assert not missing, f"add a round-trip factory for {missing} in tests/ir/factories.py"


def _contains_kind(node, kind):
    if getattr(node, "kind", None) == kind:
        return True
    for v in vars(node).values():
        items = v if isinstance(v, tuple) else (v,)
        if any(isinstance(i, ir.spec.IRNode) and _contains_kind(i, kind) for i in items):
            return True
    return False


@pytest.mark.parametrize("kind", sorted(KIND_FACTORIES))
def test_roundtrip(kind, tmp_path):
    g = KIND_FACTORIES[kind]()
    assert _contains_kind(g, kind), f"factory for {kind} does not contain it"
    assert ir.from_dict(ir.to_dict(g)) == g
    path = ir.save(g, tmp_path / "m.plx")
    g2 = ir.load(path)
    assert g2 == g
    # dtypes survive too
    for a, b in zip(g.projections, g2.projections):
        assert a.weight.dtype == b.weight.dtype


def test_float32_weights_roundtrip_exactly(tmp_path):
    g = KIND_FACTORIES["graph"]()
    w = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
    g = g.replace(projections=(g.projections[0].replace(weight=w),))
    g2 = ir.loads(ir.dumps(g))
    assert g2.projections[0].weight.dtype == np.float32
    assert np.array_equal(g2.projections[0].weight, w)


def test_nodes_are_frozen_and_arrays_read_only():
    g = KIND_FACTORIES["graph"]()
    with pytest.raises(Exception):
        g.dt = 2.0
    with pytest.raises(ValueError):
        g.projections[0].weight[0, 0] = 1.0
    with pytest.raises(TypeError):
        g.metadata["x"] = 1


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    g = KIND_FACTORIES["graph"]()
    ir.save(g, tmp_path / "m.plx")
    ir.save(g, tmp_path / "m.plx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plx"]
