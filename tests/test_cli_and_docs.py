"""The CLI's IR commands, the README quickstart and docstring examples actually run."""
import doctest
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plastix.ir as ir
import plastix.backends.torch.hardware_aware
import plastix.ir.builder
from plastix.cli import app
from plastix.ir.examples import cue_association_net

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_info_and_export_roundtrip(tmp_path):
    path = ir.save(cue_association_net(), tmp_path / "m.plx")
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0 and "cues_to_hidden" in res.output and "three_factor" in res.output
    res = runner.invoke(app, ["export", str(path), "--to", "nir", "--out", str(tmp_path / "m.nir")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(tmp_path / "m.nir"), "--to", "plx", "--out", str(tmp_path / "back.plx")])
    assert res.exit_code == 0, res.output
    assert ir.load(tmp_path / "back.plx") == ir.load(path)


def test_bad_file_gives_clear_error_and_nonzero_exit(tmp_path):
    bad = tmp_path / "bad.plx"
    bad.write_bytes(b"not a model")
    res = runner.invoke(app, ["info", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output and "zip" in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "missing.plx")])
    assert res.exit_code == 2 and "missing.plx: no such file" in res.output


def test_kinds_lists_every_kind():
    res = runner.invoke(app, ["kinds"])
    assert res.exit_code == 0
    for kind in ir.kinds():
        assert f"] {kind} " in res.output


def test_readme_examples_run(tmp_path, monkeypatch):
    """Every python block of the README runs, in order, in one namespace (torch and Lava included)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md block {i}", "exec"), ns)
    assert ir.load(tmp_path / "model.plx").population("hidden").size == 48
    assert ns["out"]["action"].shape == (100, 1, 8, 2)
    assert ns["spikes"]["action"].shape == (100, 2)


@pytest.mark.parametrize("module", [plastix.ir.builder, plastix.backends.torch.hardware_aware])
def test_doctests(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0


def test_train_es_via_cli_and_unknown_task(tmp_path):
    res = runner.invoke(app, ["train", "iaf", "--method", "es", "--steps", "2", "--out", str(tmp_path / "es")])
    assert res.exit_code == 0, res.output
    assert ir.load(tmp_path / "es" / "model.plx").populations
    res = runner.invoke(app, ["train", "nope", "--method", "es", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "nope" in res.output
