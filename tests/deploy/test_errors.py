"""Bad inputs give a clear error naming the problem, a non-zero exit code and no partial output."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import plastix.ir as ir
from plastix.cli import app
from plastix.deploy import BundleError, create_bundle, load_bundle

from .conftest import static_ff

runner = CliRunner()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_missing_model_file(tmp_path):
    for cmd in (["deploy"], ["report"], ["simulate"]):
        res = runner.invoke(app, cmd + [str(tmp_path / "nope.plx")])
        assert res.exit_code == 2 and "nope.plx" in res.output and "no such file" in res.output, res.output


def test_unknown_target_and_backend(tmp_path):
    path = ir.save(static_ff(), tmp_path / "m.plx")
    res = runner.invoke(app, ["deploy", str(path), "--target", "loihi3"])
    assert res.exit_code == 2 and "loihi3" in res.output
    res = runner.invoke(app, ["simulate", str(path), "--backend", "spinnaker"])
    assert res.exit_code == 2 and "spinnaker" in res.output


def test_corrupted_and_incomplete_bundles(tmp_path):
    good = create_bundle(static_ff(), tmp_path / "b", steps=10, plots=False)
    load_bundle(good)
    original = (good / "model.plx").read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    (good / "model.plx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.plx is corrupted"):
        load_bundle(good)
    res = runner.invoke(app, ["simulate", str(good)])
    assert res.exit_code == 2 and "corrupted" in res.output
    (good / "model.plx").write_bytes(original)
    (good / "report.md").unlink()
    res = runner.invoke(app, ["report", str(good)])
    assert res.exit_code == 2 and "report.md is missing" in res.output
    (good / "manifest.json").write_text("{not json")
    res = runner.invoke(app, ["deploy", str(good), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "manifest.json is not valid JSON" in res.output
    assert not (tmp_path / "c").exists()
    res = runner.invoke(app, ["report", str(tmp_path)])  # a folder that is no bundle
    assert res.exit_code == 2 and "manifest.json is missing" in res.output


def test_unsupported_rule_for_target_writes_nothing(es_model, tmp_path):
    # NIR has no gated units
    res = runner.invoke(app, ["deploy", str(es_model), "--target", "nir", "--out", str(tmp_path / "m.nir")])
    assert res.exit_code == 2 and "cannot deploy to nir" in res.output and "gated (unit)" in res.output, res.output
    # Lava cannot run a plastic projection with a delay
    b = ir.GraphBuilder(seed=0)
    x, h = b.input("x", 3), b.cuba_lif("h", 2, du=0.5, dv=0.5, vth=1.0)
    b.connect(x, h, weight=np.ones((2, 3)), delay=2, name="slow",
              rule=ir.PairSTDP(eta_plus=0.01, eta_minus=0.01, decay_pre=0.8, decay_post=0.8))
    path = ir.save(b.build(outputs=[h]), tmp_path / "delayed.plx")
    res = runner.invoke(app, ["deploy", str(path), "--target", "lava", "--out", str(tmp_path / "bundle")])
    assert res.exit_code == 2 and "cannot deploy to lava" in res.output and "delay" in res.output, res.output
    # ONNX cannot hold random exploration
    q = ir.SynapticQ(q_table=np.zeros((81, 3)), epsilon=0.1)
    b = ir.GraphBuilder(seed=0)
    x, h = b.input("x", 3), b.cuba_lif("h", 2, du=0.5, dv=0.5, vth=1.0)
    b.connect(x, h, weight=np.ones((2, 3)), rule=q, name="q")
    path = ir.save(b.build(outputs=[h]), tmp_path / "q.plx")
    res = runner.invoke(app, ["deploy", str(path), "--target", "onnx", "--out", str(tmp_path / "q.onnx")])
    assert res.exit_code == 2 and "epsilon" in res.output and "'q'" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["delayed.plx", "q.plx"]


def test_failure_midway_leaves_no_partial_bundle(tmp_path, monkeypatch):
    import plastix.deploy.report as report

    def boom(*a, **k):
        raise ValueError("report exploded")

    monkeypatch.setattr(report, "write_report", boom)
    with pytest.raises(ValueError, match="exploded"):
        create_bundle(static_ff(), tmp_path / "b", steps=10)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    path = ir.save(static_ff(), tmp_path / "m.plx")
    out = tmp_path / "b"
    assert runner.invoke(app, ["deploy", str(path), "--out", str(out), "--no-plots", "--steps", "10"]).exit_code == 0
    first = json.loads((out / "manifest.json").read_text())["files"]
    res = runner.invoke(app, ["deploy", str(path), "--out", str(out), "--no-plots"])
    assert res.exit_code == 2 and "exists" in res.output and "--overwrite" in res.output
    res = runner.invoke(app, ["deploy", str(path), "--out", str(out), "--no-plots", "--steps", "12", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["inputs"]["steps"] == 12 and first
    assert _leftovers(tmp_path) == []


def test_bad_input_set(tmp_path):
    path = ir.save(static_ff(), tmp_path / "m.plx")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((10, 5)))
    res = runner.invoke(app, ["simulate", str(path), "--inputs", str(tmp_path / "wrong.npz")])
    assert res.exit_code == 2 and "inputs['x']" in res.output and "(steps, 12)" in res.output, res.output
    res = runner.invoke(app, ["report", str(path), "--inputs", str(tmp_path / "none.npz")])
    assert res.exit_code == 2 and "none.npz" in res.output


def test_report_never_replaces_a_foreign_folder(tmp_path):
    path = ir.save(static_ff(), tmp_path / "m.plx")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "keep"), "--no-plots"])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "keep"), "--no-plots", "--overwrite"])
    assert res.exit_code == 2 and "not a report folder" in res.output
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"
    res = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r"), "--no-plots", "--steps", "10"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "r"), "--no-plots", "--overwrite"])
    assert res.exit_code == 0 and (tmp_path / "r" / "report.md").is_file()
    assert _leftovers(tmp_path) == []


def test_fixed_precision_needs_a_fixed_point_form(tmp_path):
    from plastix.ir.examples import cue_association_net

    path = ir.save(cue_association_net(), tmp_path / "cue.plx")
    res = runner.invoke(app, ["simulate", str(path), "--precision", "fixed", "--steps", "5"])
    assert res.exit_code == 2 and "no fixed-point form" in res.output and "per_pre" in res.output, res.output
    path = ir.save(static_ff(), tmp_path / "ff.plx")
    res = runner.invoke(app, ["simulate", str(path), "--precision", "fixed", "--steps", "30"])
    assert res.exit_code == 0 and "y: shape (30, 3)" in res.output, res.output


@pytest.mark.parametrize("cmd", ["deploy", "report", "simulate"])
def test_help(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0 and "--inputs" in res.output and "--steps" in res.output


def test_overwrite_never_replaces_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("mine")
    with pytest.raises(FileExistsError, match="not a plastix bundle"):
        create_bundle(static_ff(), tmp_path / "docs", steps=5, plots=False, overwrite=True)
    (tmp_path / "f").write_text("a file")
    with pytest.raises(FileExistsError, match="not a bundle folder"):
        create_bundle(static_ff(), tmp_path / "f", steps=5, plots=False, overwrite=True)
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "mine" and _leftovers(tmp_path) == []
