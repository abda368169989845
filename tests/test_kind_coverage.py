"""Every registered IR kind is lowered, or refused with a reason, by every backend (issue 22): adding a
kind to the IR without touching each backend fails here."""
from __future__ import annotations

import pytest

from plastix.backends.base import LOWERED_CATEGORIES, lookup_lowering, missing_lowerings
from plastix.ir import UnsupportedKindError
from plastix.ir.registry import _KINDS, kinds, register_kind
from plastix.ir.spec import IRNode


def _torch():
    from plastix.backends.torch import network, neurons

    return [*network.POPULATIONS, *network.LOWERING, *neurons.CELL_STEPS], network.REFUSED


def _lava():
    from plastix.backends.lava import hostmath, plan

    return [*plan.POPULATIONS, *plan.RULES, *hostmath.CELLS], plan.REFUSED


BACKENDS = {"torch": _torch, "lava": _lava}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_registered_kind_is_lowered_or_refused(backend):
    lowered, refused = BACKENDS[backend]()
    assert missing_lowerings(lowered, refused) == []
    assert all(why for why in refused.values())
    registered = {c for cat in LOWERED_CATEGORIES for c in kinds(cat).values()}
    assert set(lowered) | set(refused) <= registered  # tables hold IR classes, nothing else


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_new_kind_without_a_lowering_is_reported(backend, monkeypatch):
    from dataclasses import dataclass

    monkeypatch.setattr("plastix.ir.registry._KINDS", dict(_KINDS))

    @register_kind("test_only_rule", "rule")
    @dataclass(frozen=True)
    class TestOnlyRule(IRNode):
        pass

    lowered, refused = BACKENDS[backend]()
    assert missing_lowerings(lowered, refused) == ["test_only_rule"]
    with pytest.raises(UnsupportedKindError, match="test_only_rule"):
        lookup_lowering(dict.fromkeys(lowered, object()), TestOnlyRule(), backend, refused)


def test_a_refused_kind_says_why():
    from plastix.backends.torch import network
    from plastix.ir import EligibilityTrace, PairSTDP

    e = EligibilityTrace(base=PairSTDP(eta_plus=0.1, eta_minus=0.1, decay_pre=0.5, decay_post=0.5), gamma=0.9)
    with pytest.raises(UnsupportedKindError, match="ThreeFactor rule that wraps it"):
        lookup_lowering(network.LOWERING, e, "torch", network.REFUSED)
