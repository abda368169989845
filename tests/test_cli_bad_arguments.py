"""Every subcommand, given bad arguments (missing, a folder, garbage, an unwritable output, negative
counts), exits with code 2 and one ``error: ...`` line that names the problem: never a traceback,
and no work done first (nothing written)."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

import plastix.ir as ir
from plastix.cli import app

runner = CliRunner()
UNWRITABLE = "/sys/plastix-cli-test"  # not writable, not even by root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.deploy.conftest import static_ff

    d = tmp_path_factory.mktemp("cli")
    model = ir.save(static_ff(), d / "m.plx")
    from plastix.ir.nir_interop import write_nir

    write_nir(static_ff(), d / "m.nir")
    (d / "garbage.plx").write_bytes(b"\x00garbage" * 50)
    (d / "garbage.nir").write_bytes(b"\x89HDF-not-really" * 20)
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not an npz")
    (d / "afile").write_text("a plain file")
    (d / "folder").mkdir()
    (d / "run").mkdir()
    (d / "run" / "checkpoint.pt").write_bytes(b"\x80\x04garbage pickle")
    return {"dir": d, "model": str(model), "nir": str(d / "m.nir"), "garbage": str(d / "garbage.plx"),
            "garbage_nir": str(d / "garbage.nir"), "garbage_npz": str(d / "garbage.npz"), "file": str(d / "afile"),
            "folder": str(d / "folder"), "missing": str(d / "missing.plx"), "run": str(d / "run")}


CASES = [
    # command, arguments, text the message must contain
    ("info", ["{missing}"], "missing.plx: no such file"),
    ("info", ["{folder}"], "is a folder"),
    ("info", ["{garbage}"], "not a plastix model file"),
    ("info", ["{garbage_nir}"], "not a readable NIR file"),
    ("info", [], "Missing argument 'model'"),
    ("info", ["{model}", "--max-memory", "-5"], "--max-memory"),
    ("kinds", ["extra"], "unexpected extra argument"),
    ("cue-bounds", ["--cues", "0"], "'--cues'"),
    ("export", ["{missing}"], "no such file"),
    ("export", ["{garbage}", "--out", "{dir}/x.nir"], "not a plastix model file"),
    ("export", ["{model}", "--out", "{folder}"], "is a folder"),
    ("export", ["{model}", "--out", "/nonexistent-plastix/x.nir"], "folder /nonexistent-plastix does not exist"),
    ("export", ["{model}", "--out", "/sys/x.nir"], "/sys is not writable"),
    ("export", ["{model}", "--out", "{file}/x.nir"], "does not exist"),
    ("export", ["{model}", "--to", "onnx"], "'onnx' is not one of"),
    ("import-nir", ["{missing}", "--dt", "1e-3"], "no such NIR file"),
    ("import-nir", ["{garbage_nir}", "--dt", "1e-3", "--out", "{dir}/imp.plx"], "not a readable NIR file"),
    ("import-nir", ["{nir}", "--dt", "-1"], "'--dt': must be > 0"),
    ("import-nir", ["{nir}", "--dt", "0"], "'--dt': must be > 0"),
    ("import-nir", ["{nir}", "--reset", "sideways"], "'sideways' is not one of"),
    ("nir-peers", ["--steps", "3"], "'--steps'"),
    ("evaluate", ["{missing}"], "no such file"),
    ("evaluate", ["{garbage}"], "not a plastix model file"),
    ("evaluate", ["{model}", "--problems", "0"], "'--problems'"),
    ("evaluate", ["{model}", "--cues", "0"], "'--cues'"),
    ("evaluate", ["{model}", "--task", "mnist"], "unknown task"),
    ("evaluate", ["{model}", "--task", "tmaze"], "not a T-maze network"),
    ("evaluate", ["{model}", "--task-config", "reduced"], "T-maze networks only"),
    ("evaluate", ["{model}", "--backend", "gpu"], "'gpu' is not one of"),
    ("evaluate", ["{model}", "--precision", "double"], "'double' is not one of"),
    ("evaluate", ["{model}"], "no 'n_cues'"),
    ("evaluate", ["{model}", "--task", "one_shot_glyphs"], "not a one-shot character model"),
    ("evaluate", ["{model}", "--data", "mnist"], "'mnist' is not one of"),
    ("evaluate", ["{model}", "--data", "digits"], "--data applies to --task one_shot_glyphs only"),
    ("evaluate", ["{model}", "--noise", "wind"], "'wind' is not one of"),
    ("evaluate", ["{model}", "--noise", "action", "--std", "0.1"], "--noise, --std: for Half-Cheetah models only"),
    ("evaluate", ["{model}", "--episodes", "0"], "'--episodes'"),
    ("import-nir", ["{nir}", "--dt", "1e-3", "--out", "{folder}"], "is a folder"),
    ("train", ["nope", "--method", "es", "--out", "{dir}/t1"], "nope"),
    ("train", ["iaf"], "Missing option '--method'"),
    ("train", ["iaf", "--method", "es", "--steps", "-1", "--out", "{dir}/t2"], "'--steps'"),
    ("train", ["iaf", "--method", "es", "--seed", "-1", "--out", "{dir}/t3"], "'--seed'"),
    ("train", ["iaf", "--method", "es", "--out", "{file}"], "exists and is not a folder"),
    ("train", ["iaf", "--method", "es", "--out", UNWRITABLE + "/run"], "not writable"),
    ("train", ["iaf", "--method", "es", "--out", "{run}", "--resume"], "not a readable plastix checkpoint"),
    ("train", ["boundary", "--method", "synq", "--policy", "{missing}", "--out", "{dir}/t4"], "no such policy file"),
    ("train", ["digits_0hu", "--method", "synq", "--policy-mode", "frozen", "--out", "{dir}/t5"], "needs --policy"),
    ("train", ["one_shot_cue", "--method", "bptt", "--form", "multiplicative", "--out", "{dir}/t6"],
     "--form does not apply to --method bptt one_shot_cue"),
    ("train", ["boundary", "--method", "gd", "--out", "{dir}/t7"], "its tasks: digits_0hu"),
    ("train", ["iaf", "--method", "es", "--variant", "dp_oja", "--model", "gru", "--out", "{dir}/t8"], "--variant"),
    ("train", ["one_shot_glyphs", "--method", "bptt", "--variant", "hebbian", "--out", "{dir}/t9"], "unknown variant"),
    ("train", ["one_shot_glyphs", "--method", "bptt", "--form", "additive", "--out", "{dir}/t10"], "--form does not apply"),
    ("train", ["halfcheetah", "--method", "ppo", "--variant", "dp_linear_decay", "--out", "{dir}/t11"],
     "not one of the locomotion networks"),
    ("train", ["halfcheetah", "--method", "ppo", "--form", "additive", "--out", "{dir}/t12"], "--form does not apply"),
    ("train", ["halfcheetah", "--method", "bptt", "--out", "{dir}/t13"], "--method bptt has no task 'halfcheetah'"),
    ("experiments", ["--nope"], "No such option"),
    ("train", ["digits_0hu", "--method", "synq", "--policy-mode", "static", "--out", "{dir}/t6"], "'static' is not one of"),
    ("train", ["digits_0hu", "--method", "synq", "--bias-init", "-1", "--out", "{dir}/t7"], "'--bias-init'"),
    ("train", ["digits_0hu", "--method", "gd", "--gd-protocol", "notebook", "--out", "{dir}/t8"], "'notebook' is not one of"),
    ("demo", ["--iterations", "-1"], "'--iterations'"),
    ("demo", ["--problems", "0"], "'--problems'"),
    ("demo", ["--out", "{file}"], "exists and is not a folder"),
    ("demo", ["--out", UNWRITABLE + "/demo"], "not writable"),
    ("deploy", ["{missing}"], "no such file or bundle folder"),
    ("deploy", ["{folder}", "--out", "{dir}/b1"], "manifest.json is missing"),
    ("deploy", ["{garbage}", "--out", "{dir}/b2"], "not a plastix model file"),
    ("deploy", ["{model}", "--out", UNWRITABLE + "/b"], "not writable"),
    ("deploy", ["{model}", "--out", "{file}"], "exists and is not a folder"),
    ("deploy", ["{model}", "--out", "{folder}", "--overwrite"], "not a plastix bundle"),
    ("deploy", ["{model}", "--target", "nir", "--out", "{folder}"], "is a folder"),
    ("deploy", ["{model}", "--steps", "0"], "'--steps'"),
    ("deploy", ["{model}", "--seed", "-2"], "'--seed'"),
    ("deploy", ["{model}", "--timeout", "-5"], "'--timeout': must be > 0"),
    ("deploy", ["{model}", "--inputs", "{dir}/none.npz"], "no such input set"),
    ("deploy", ["{model}", "--inputs", "{garbage_npz}", "--out", "{dir}/b3"], "not a readable .npz file"),
    ("deploy", ["{model}", "--target", "loihi3"], "'loihi3' is not one of"),
    ("report", ["{missing}"], "no such file or bundle folder"),
    ("report", ["{garbage}", "--out", "{dir}/r1"], "not a plastix model file"),
    ("report", ["{model}", "--out", UNWRITABLE + "/r"], "not writable"),
    ("report", ["{model}", "--out", "{folder}", "--overwrite"], "not a report folder"),
    ("report", ["{model}", "--steps", "-1"], "'--steps'"),
    ("simulate", ["{missing}"], "no such file or bundle folder"),
    ("simulate", ["{garbage}"], "not a plastix model file"),
    ("simulate", ["{model}", "--out", "{folder}"], "is a folder"),
    ("simulate", ["{model}", "--out", "/sys/o.npz"], "/sys is not writable"),
    ("simulate", ["{model}", "--steps", "-1"], "'--steps'"),
    ("simulate", ["{model}", "--timeout", "0"], "'--timeout': must be > 0"),
    ("simulate", ["{model}", "--backend", "spinnaker"], "'spinnaker' is not one of"),
    ("simulate", ["{model}", "--steps", "1000000000"], "more than the limit"),
    ("simulate", ["{model}", "--max-memory", "lots"], "not a memory size"),
]


def test_every_subcommand_is_covered():
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert commands == {case[0] for case in CASES}


@pytest.mark.parametrize("command,args,needle", CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_bad_arguments_exit_2_with_one_clear_error(files, command, args, needle):
    before = sorted(os.listdir(files["dir"]))
    res = runner.invoke(app, [command, *(a.format(**files) for a in args)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.output.lstrip().startswith("error: "), res.output
    assert needle in res.output, res.output
    assert sorted(os.listdir(files["dir"])) == before  # no work done, nothing written


def test_debug_shows_the_traceback(files, monkeypatch):
    res = runner.invoke(app, ["--debug", "info", files["garbage"]])
    assert res.exit_code == 2 and "Traceback" in res.output and "error: " in res.output
    monkeypatch.setenv("PLASTIX_DEBUG", "1")
    res = runner.invoke(app, ["info", files["garbage"]])
    assert res.exit_code == 2 and "Traceback" in res.output


def test_internal_errors_exit_1_and_point_to_debug(files, monkeypatch):
    import plastix.deploy.targets as targets

    def boom(*a, **k):
        raise RuntimeError("something broke")

    monkeypatch.setattr(targets, "simulate", boom)
    res = runner.invoke(app, ["simulate", files["model"], "--steps", "3"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "error: internal error (RuntimeError: something broke)" in res.output and "--debug" in res.output


def test_failed_lava_run_exits_1(files, monkeypatch):
    import plastix.deploy.targets as targets
    from plastix.backends.lava.runner import LavaTimeoutError

    def hang(*a, **k):
        raise LavaTimeoutError("Lava run (3 steps) did not finish within 1 s")

    monkeypatch.setattr(targets, "simulate", hang)
    res = runner.invoke(app, ["simulate", files["model"], "--steps", "3", "--backend", "lava"])
    assert res.exit_code == 1 and "error: Lava run failed" in res.output and "within 1 s" in res.output


def test_cli_help_and_info_do_not_load_torch(tmp_path):
    """The CLI imports torch-heavy modules inside the commands that need them (plastix/cli.py docstring)."""
    import subprocess
    import sys

    from plastix.ir.examples import cue_association_net

    path = tmp_path / "m.plx"
    ir.save(cue_association_net(), path)
    code = ("import sys; from typer.testing import CliRunner; from plastix.cli import app; "
            f"r = CliRunner().invoke(app, ['info', {str(path)!r}]); assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(app, ['--help']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
