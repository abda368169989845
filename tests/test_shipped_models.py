"""Every model shipped as package data (``plastix/data/*.plx``) loads and validates, and docs/results.md names it,
so the command that made it and its measured figures are on record (house rule: trained models ship with the
command that made them)."""
from pathlib import Path

import pytest

import plastix.ir as ir

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "plastix" / "data").glob("*.plx"))


def test_there_are_shipped_models():
    assert SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_model_loads_and_is_on_record(path):
    graph = ir.load(path)
    assert graph.populations and graph.projections
    assert path.name in (ROOT / "docs" / "results.md").read_text(), f"{path.name} is not in docs/results.md"
