"""Mutation fuzzing of the .plx loader (harness and mutation classes: tests/ir/fuzz.py).

Default suite: 25 seeded cases of each of the 16 mutation classes (byte flips, truncation,
removed / duplicated / renamed / path-traversal entries, manifest type and field mutations, wrong
shapes in nested rules and modulators, huge sizes and delays, NaN/inf, object and pickled arrays,
future versions, patched declared sizes, JSON syntax, value tweaks). Every case ends in an
IRValidationError naming the file (and the node and field the mutation targeted), or in a model
that round-trips and runs; the load's memory stays under ``fuzz.MEMORY_BOUND`` and no case hangs.
The >= 10,000-case run is ``-m slow`` (or ``python -m tests.ir.fuzz``; counts in docs/results.md).
"""
from __future__ import annotations

import random
import time

import pytest

import plastix.ir as ir

from . import fuzz


@pytest.mark.parametrize("kind", list(fuzz.MUTATIONS))
def test_every_mutation_ends_in_a_named_validation_error_or_a_valid_model(kind):
    counts = fuzz.campaign(25, seed=0, kinds=(kind,))
    assert counts.bad == 0, counts.failures
    assert counts.max_peak_bytes <= fuzz.MEMORY_BOUND, counts.peak_by_kind
    assert counts.by_result["rejected"] > 0


def test_the_mutations_cover_the_issue_list():
    assert set(fuzz.MUTATIONS) >= {"byte_flip", "truncate", "remove_entry", "duplicate_entry", "rename_entry",
                                   "manifest_type", "manifest_field", "nested_shape", "huge_size", "nan_inf",
                                   "object_array", "future_version", "path_traversal"}


def test_the_harness_detects_each_kind_of_failure(monkeypatch):
    """The counts the long run reports can fail: an accepted invalid file, another exception type, an
    error that does not name the targeted field, and a hang are each classified as such."""
    good = fuzz.base_files()[0]
    assert fuzz.run_case(fuzz.Case("x", good, invalid=True)).result == "silently_accepted"
    assert fuzz.run_case(fuzz.Case("x", good, invalid=False)).result == "accepted"
    case = fuzz.nested_shape(random.Random(0), good)
    assert fuzz.run_case(case).result == "rejected"
    case.where = ("elsewhere", "field")
    assert fuzz.run_case(case).result == "unnamed"

    def crash(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(ir, "loads", crash)
    assert fuzz.run_case(fuzz.Case("x", good, invalid=True)).result == "other"

    def hang(*a, **k):
        time.sleep(5)

    monkeypatch.setattr(ir, "loads", hang)
    monkeypatch.setattr(fuzz, "HANG_SECONDS", 0.2)
    assert fuzz.run_case(fuzz.Case("x", good, invalid=True)).result == "hang"


def test_an_accepted_model_that_cannot_run_counts_as_silently_accepted(monkeypatch):
    """What the issue found (a file that passes the loader, then crashes `simulate`) is caught."""
    import plastix.deploy.report as report

    def crash(*a, **k):
        raise RuntimeError("shape mismatch inside the backend")

    monkeypatch.setattr(report, "run_torch", crash)
    assert fuzz.run_case(fuzz.Case("x", fuzz.base_files()[0], invalid=False)).result == "silently_accepted"


@pytest.mark.slow
def test_long_run_ten_thousand_cases():
    counts = fuzz.campaign(750, seed=1)  # 16 classes x 750 = 12,000 cases
    assert counts.cases >= 10_000
    assert counts.bad == 0, counts.failures
    assert counts.max_peak_bytes <= fuzz.MEMORY_BOUND
