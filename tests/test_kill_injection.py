"""SIGKILL at every file system operation of ir.save, create_bundle and a training run leaves the
old artefact or the complete new one, and no temporary that the next write does not remove
(harness: tests/killpoints.py, run in a fresh single-threaded process that forks one writer per
kill point)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sweep(scenario: str, folder: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, "-m", "tests.killpoints", scenario, str(folder), *extra], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_ir_save_is_atomic_under_sigkill(tmp_path):
    counts = _sweep("save", tmp_path)
    assert counts["points"] >= 4  # temp file, lock, rename, directory fsync ...


def test_bundle_overwrite_is_one_atomic_step_under_sigkill(tmp_path):
    from plastix.ir.atomic import can_exchange

    if not can_exchange(tmp_path):
        pytest.skip("this file system cannot swap folders atomically (RENAME_EXCHANGE)")
    counts = _sweep("bundle", tmp_path)
    assert counts["points"] >= 20 and counts["old"] >= 1 and counts["new"] >= 2 and counts["restored"] == 0


def test_bundle_overwrite_without_exchange_is_repaired_by_the_next_writer(tmp_path):
    counts = _sweep("bundle", tmp_path, "--no-exchange")
    assert counts["restored"] == 1 and counts["new"] >= 2


def test_training_run_is_consistent_under_sigkill_and_resumes_to_the_same_model(tmp_path):
    counts = _sweep("train", tmp_path)
    assert counts["points"] >= 20 and counts["resumed_and_compared"] >= 4
