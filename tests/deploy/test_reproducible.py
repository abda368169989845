"""Identical seeded runs give byte-identical model.plx files and the same bundle hash, whenever
they run (zip timestamps used to make every model.plx differ)."""
from __future__ import annotations

import json
import time

import numpy as np

import plastix.ir as ir
from plastix.deploy import create_bundle, load_bundle
from plastix.deploy.bundle import npz_bytes


def test_same_seed_same_bytes_same_bundle_hash(tmp_path, monkeypatch):
    from plastix.trainer.experiments.es_run import train_es

    models, hashes = [], []
    for i, clock in enumerate((1_700_000_000.0, 1_800_000_000.0)):
        monkeypatch.setattr(time, "time", lambda c=clock: c)  # what zip timestamps used to come from
        out = tmp_path / f"run{i}"
        res = train_es("iaf", "enu", "quick", out, generations=2, population=4, num_envs=1, progress=False, seed=3)
        models.append((out / "model.plx").read_bytes())
        bundle = create_bundle(ir.load(res["model_file"]), tmp_path / f"b{i}", steps=6, seed=1, plots=False)
        hashes.append(json.loads((bundle / "manifest.json").read_text()))
    assert models[0] == models[1]
    assert hashes[0]["files"] == hashes[1]["files"]
    assert hashes[0]["bundle_sha256"] == hashes[1]["bundle_sha256"]
    assert load_bundle(tmp_path / "b0")[1]["bundle_sha256"] == hashes[0]["bundle_sha256"]


def test_npz_bytes_are_deterministic_and_readable(tmp_path, monkeypatch):
    arrays = {"x": np.arange(6.0).reshape(3, 2), "r": np.ones((3, 1))}
    first = npz_bytes(arrays)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    assert npz_bytes(arrays) == first
    (tmp_path / "a.npz").write_bytes(first)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert np.array_equal(z["x"], arrays["x"]) and np.array_equal(z["r"], arrays["r"])
