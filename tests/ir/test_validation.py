"""Construction and load errors name the node and field at fault."""
import json
import zipfile
import io

import numpy as np
import pytest

import plastix.ir as ir

from .factories import KIND_FACTORIES, base_graph, pair


def _err(fn):
    with pytest.raises(ir.IRValidationError) as info:
        fn()
    return info.value


def test_lif_bad_decay_names_node_and_field():
    e = _err(lambda: ir.CubaLIF(name="h", size=3, du=1.5, dv=0.1, vth=1.0))
    assert (e.node, e.field) == ("h", "du")


def test_nan_weight_rejected():
    w = np.ones((2, 3))
    w[1, 1] = np.nan
    e = _err(lambda: ir.Projection(name="p", pre="a", post="b", weight=w))
    assert (e.node, e.field) == ("p", "weight") and "NaN" in e.msg


def test_wrong_per_neuron_shape():
    e = _err(lambda: ir.CubaLIF(name="h", size=3, du=[0.1, 0.2], dv=0.1, vth=1.0))
    assert e.field == "du" and "(3,)" in e.msg


def test_rule_coefficient_shape_checked_against_projection():
    rule = ir.PairSTDP(eta_plus=np.ones((5, 5)), eta_minus=0.1, decay_pre=0.9, decay_post=0.9)
    e = _err(lambda: base_graph(rule))
    assert e.node == "syn.rule" and e.field == "eta_plus"


@pytest.mark.parametrize("shape", [(3, 2), (2, 4), (1, 3)])
def test_nested_rule_arrays_are_shape_checked(shape):
    """Arrays two levels down (ThreeFactor.base.base.eta_plus, EligibilityTrace.gamma) are checked
    against the projection's (post, pre) = (2, 3) like top-level ones."""
    from .factories import modulator, triplet

    stdp = triplet().replace(eta_plus=np.ones(shape))
    rule = ir.ThreeFactor(base=ir.EligibilityTrace(base=stdp, gamma=0.9), modulator="m")
    e = _err(lambda: base_graph(rule, modulator=modulator(1)))
    assert (e.node, e.field) == ("syn.rule.base.base", "eta_plus") and str(shape) in e.msg
    rule = ir.ThreeFactor(base=ir.EligibilityTrace(base=triplet(), gamma=np.full(shape, 0.5)), modulator="m")
    e = _err(lambda: base_graph(rule, modulator=modulator(1)))
    assert (e.node, e.field) == ("syn.rule.base", "gamma")


@pytest.mark.parametrize("shape", [(1, 2, 3), (6,)])
def test_wrong_rank_is_rejected_before_the_dims_are_known(shape):
    from .factories import triplet

    e = _err(lambda: triplet().replace(eta_plus=np.ones(shape)))
    assert e.field == "eta_plus" and "(post, pre)" in e.msg


def test_modulator_weight_rows_and_columns_are_checked():
    """A modulator's weight is (channels * size, source width): rows are known on construction,
    columns (``src``) once the graph resolves the source."""
    from .factories import modulator

    rule = ir.ThreeFactor(base=pair(), modulator="m", mode=ir.ModulationMode.PER_POST)
    good = modulator(2)
    e = _err(lambda: good.replace(weight=np.ones((3, 2))))
    assert (e.node, e.field) == ("m", "weight") and "(rows, src) = (2, ?)" in e.msg
    e = _err(lambda: base_graph(rule, modulator=good.replace(weight=np.ones((2, 5)))))
    assert (e.node, e.field) == ("m", "weight") and "5" in e.msg
    e = _err(lambda: base_graph(rule, modulator=good.replace(weight=np.ones((1, 2, 2)))))
    assert (e.node, e.field) == ("m", "weight")


def test_edge_error_names_both_ends():
    g = base_graph()
    bad = g.projections[0].replace(weight=np.ones((4, 3)), mask=None, sign=None)
    e = _err(lambda: g.replace(projections=(bad,)))
    assert "'x'" in e.msg and "'h'" in e.msg and e.node == "syn"


def test_dangling_references():
    g = base_graph()
    e = _err(lambda: g.replace(projections=(g.projections[0].replace(post="nope"),)))
    assert e.field == "post" and "nope" in e.msg
    rule = ir.ThreeFactor(base=pair(), modulator="ghost")
    e = _err(lambda: base_graph(rule))
    assert "ghost" in e.msg


def test_modulator_size_must_match_mode():
    from .factories import modulator
    rule = ir.ThreeFactor(base=pair(), modulator="m", mode=ir.ModulationMode.PER_PRE)
    e = _err(lambda: base_graph(rule, modulator=modulator(2)))
    assert "per_pre" in e.msg and "3" in e.msg


def test_bare_eligibility_trace_is_rejected():
    e = _err(lambda: base_graph(ir.EligibilityTrace(base=pair(), gamma=0.9)))
    assert "ThreeFactor" in e.msg


def test_consume_needs_an_eligibility_trace_and_is_not_negative():
    e = _err(lambda: ir.ThreeFactor(base=pair(), modulator="m", consume=0.5))
    assert e.field == "consume" and "eligibility" in e.msg
    e = _err(lambda: ir.ThreeFactor(base=ir.EligibilityTrace(base=pair(), gamma=0.9), modulator="m", consume=-0.1))
    assert "consume" in str(e)
    rule = ir.ThreeFactor(base=ir.EligibilityTrace(base=pair(), gamma=0.9), modulator="m", consume=0.5)
    assert ir.consumes(rule) and not ir.consumes(rule.replace(consume=0.0))


def test_unknown_kind_on_load_lists_known_kinds():
    g = KIND_FACTORIES["pair_stdp"]()
    doc = ir.to_dict(g)
    doc["projections"][0]["rule"]["kind"] = "quantum_stdp"
    e = _err(lambda: ir.from_dict(doc))
    assert isinstance(e, ir.UnknownKindError) and "pair_stdp" in e.msg and "quantum_stdp" in e.msg


def _rewrite_manifest(data: bytes, fn) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "plastix.json":
                doc = json.loads(payload)
                fn(doc)
                payload = json.dumps(doc).encode()
            dst.writestr(info.filename, payload)
    return out.getvalue()


def test_future_version_says_upgrade():
    data = _rewrite_manifest(ir.dumps(base_graph()), lambda d: d.update(schema_version=ir.IR_SCHEMA_VERSION + 1))
    e = _err(lambda: ir.loads(data))
    assert isinstance(e, ir.IRVersionError) and "upgrade plastix" in e.msg


def test_not_a_zip():
    e = _err(lambda: ir.loads(b"hello world"))
    assert "zip" in e.msg


def test_missing_file(tmp_path):
    e = _err(lambda: ir.load(tmp_path / "nope.plx"))
    assert "cannot read" in e.msg


def test_loihi_rule_strings_are_parsed():
    e = _err(lambda: ir.LoihiRule(dw="x1*y0 + 2^-9*x0"))
    assert e.field == "dw" and "2^-9" in e.msg
    e = _err(lambda: ir.LoihiRule(dw="x1*z7"))
    assert "z7" in e.msg
    assert ir.LoihiRule(dw="(1)*(-2)*x0*y1 + (1)*(2)*y0*x1 - u0*t*2^-1").reads == {"x0", "y1", "y0", "x1", "u0", "t"}


def test_multiplicative_stdp_needs_bounds():
    e = _err(lambda: ir.PairSTDP(eta_plus=0.1, eta_minus=0.1, decay_pre=0.9, decay_post=0.9, mu=1.0))
    assert e.field == "mu"


def test_format_doc_lists_every_registered_kind():
    from pathlib import Path
    from plastix.ir.registry import kinds
    text = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    missing = [k for k in kinds() if f"`{k}`" not in text]
    assert not missing, f"docs/format.md does not mention {missing}"


def test_every_integer_field_has_a_maximum():
    """Integer fields size allocations and loops in the backends: each one has an upper bound
    (``plastix.ir.limits``), so no file can ask for a 10^12-neuron population or a 2^63-step delay."""
    import dataclasses

    from plastix.ir.spec import spec_of

    unbounded = [f"{kind}.{f.name}" for kind, cls in ir.kinds().items() for f in dataclasses.fields(cls)
                 if spec_of(f).role == "int" and spec_of(f).le is None and spec_of(f).lt is None]
    assert not unbounded


@pytest.mark.parametrize("value", [10**9, 2**63, 2**64, -1])
def test_huge_sizes_delays_and_seeds_are_rejected(value):
    from plastix.ir import limits

    g = base_graph()
    e = _err(lambda: g.projections[0].replace(delay=value))
    assert (e.node, e.field) == ("syn", "delay") and str(limits.MAX_DELAY) in e.msg and str(value) in e.msg
    e = _err(lambda: ir.Input(name="x", size=value))
    assert e.field == "size"
    e = _err(lambda: ir.CubaLIF(name="h", size=2, du=0.1, dv=0.1, vth=1.0, refractory=value))
    assert e.field == "refractory"
    e = _err(lambda: ir.LoihiRule(dw="x0*y1", t_epoch=value))
    assert e.field == "t_epoch"
    e = _err(lambda: ir.SynapticQ(q_table=np.zeros((81, 3)), seed=value * 5))  # 32-bit seeds
    assert e.field == "seed"


def test_format_doc_states_every_limit():
    from pathlib import Path

    from plastix.ir import limits

    text = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    for name in ("MAX_SIZE", "MAX_CHANNELS", "MAX_CELL_WIDTH", "MAX_MODULATOR_SIZE", "MAX_DELAY", "MAX_STEPS_PARAM",
                 "MAX_SEED", "MAX_MANIFEST_BYTES", "MAX_LOAD_BYTES", "FREE_LOAD_BYTES"):
        assert f"{getattr(limits, name):,}" in text, f"docs/format.md does not state {name}"
    assert f"{limits.LOAD_EXPANSION} x file size" in text


def test_consume_by_needs_consume_and_a_known_modulator():
    trace = ir.EligibilityTrace(base=pair(), gamma=0.9)
    e = _err(lambda: ir.ThreeFactor(base=trace, modulator="m", consume_by="c"))
    assert e.field == "consume_by" and "consume is 0" in e.msg
    rule = ir.ThreeFactor(base=trace, modulator="m", consume=0.5, consume_by="c")
    assert rule.modulator_names == ("m", "c")
