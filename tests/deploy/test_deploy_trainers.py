"""`plastix deploy --target lava` on a model from each trainer: a complete bundle, a report listing
every node and rule, and a Lava run that reproduces the torch backend."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import plastix.ir as ir
from plastix.cli import app
from plastix.deploy import load_bundle
from plastix.deploy.report import nodes_listed

runner = CliRunner()


def _names(graph) -> set[str]:
    return ({p.name for p in graph.populations} | {p.name for p in graph.projections}
            | {f"rule:{p.name}" for p in graph.projections if p.rule is not None} | {m.name for m in graph.modulators})


@pytest.mark.parametrize("trainer", ["bptt", "es", "synq"])
def test_deploy_lava_reproduces_torch(trainer, request, tmp_path):
    model = request.getfixturevalue({"bptt": "bptt_model", "es": "es_model", "synq": "synq_net"}[trainer])
    out = tmp_path / "bundle"
    res = runner.invoke(app, ["deploy", str(model), "--target", "lava", "--out", str(out), "--steps", "80",
                              "--no-plots"])
    assert res.exit_code == 0, res.output
    graph, manifest = load_bundle(out)
    assert graph == ir.load(model)
    check = manifest["metrics"]["lava_check"]
    assert check["passed"] and check["spikes_identical"] and check["steps"] == 80
    assert check["precision"] == "float" and check["max_abs_error"] <= 1e-6
    assert set(check["per_output"]) == {p.name for p in graph.populations if p.kind != "input"}
    active = [n for n, v in check["per_output"].items() if v["activity"] > 0]
    assert active, check  # a silent net proves nothing
    report = json.loads((out / "report.json").read_text())
    assert nodes_listed(report) == _names(graph)
    for v in report["status"]["float"]["rules"].values():
        assert v["how"] in ("native", "learning engine", "host-emulated") and v["why"]
    assert set(manifest["files"]) >= {"model.plx", "manifest.json", "report.md", "report.json", "inputs.npz"} - {"manifest.json"}
    assert manifest["versions"]["torch"] and manifest["versions"]["lava-nc"] and manifest["versions"]["nir"]
    if trainer == "es":  # gated units have no NIR form: the bundle says so instead of writing a partial file
        assert "model.nir" in manifest["skipped"] and not (out / "model.nir").exists()
        assert report["resources"]["populations"]["unit"]["on_neurocores"] is False  # host-emulated ENU
    else:
        assert "model.nir" in manifest["files"]
    if trainer == "synq":
        assert any("epsilon = 0" in n for n in check["notes"])


def test_deploy_bundle_of_the_synq_policy_file(synq_policy, tmp_path):
    """The synaptic-Q trainer's own artefact (policy.plx) deploys; its rule is in the report."""
    out = tmp_path / "policy_bundle"
    res = runner.invoke(app, ["deploy", str(synq_policy), "--out", str(out), "--steps", "20", "--no-plots"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["status"]["float"]["rules"]["synapse"]["kind"] == "synaptic_q"
    assert "does not learn" in report["status"]["float"]["rules"]["synapse"]["why"]


def test_static_net_is_bit_exact_in_fixed_point(tmp_path):
    from plastix.deploy import lava_check, probe_inputs

    from .conftest import static_ff

    g = static_ff()
    xs = probe_inputs(g, 120, seed=1)
    res = lava_check(g, xs, timeout=120)
    assert res["precision"] == "fixed" and res["passed"] and res["max_abs_error"] == 0.0
    assert res["per_output"]["h"]["activity"] > 20 and res["per_output"]["y"]["activity"] > 5


def test_report_and_simulate_commands_on_a_bundle(bptt_model, tmp_path):
    out = tmp_path / "b"
    assert runner.invoke(app, ["deploy", str(bptt_model), "--out", str(out), "--steps", "40"]).exit_code == 0
    for png in ("resources.png", "quantisation_error.png", "raster.png", "weight_change.png"):
        assert (out / png).stat().st_size > 1000, png
    md = (out / "report.md").read_text()
    assert "**model**" in md and "pJ" in md and "cues_to_hidden" in md
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r"), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "cues_to_hidden" in res.output and "pJ/step" in res.output
    res = runner.invoke(app, ["simulate", str(out), "--out", str(tmp_path / "o.npz")])
    assert res.exit_code == 0, res.output
    stored = np.load(tmp_path / "o.npz")["action"]
    assert stored.shape == (40, 2)
    res = runner.invoke(app, ["simulate", str(out), "--backend", "lava", "--out", str(tmp_path / "l.npz")])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.load(tmp_path / "l.npz")["action"], stored)  # the bundle's inputs, both backends


def test_learning_engine_rule_is_bit_exact_in_fixed_point():
    """Plasticity on Loihi's learning engine (additive pair STDP) runs bit-exactly in fixed point."""
    from plastix.deploy import lava_check

    rng = np.random.default_rng(3)
    b = ir.GraphBuilder(seed=3)
    x = b.input("x", 6)
    h = b.cuba_lif("h", 5, du=1024 / 4096, dv=512 / 4096, vth=250)
    o = b.cuba_lif("o", 3, du=1024 / 4096, dv=512 / 4096, vth=150)
    stdp = ir.PairSTDP(eta_plus=2.0 ** -3, eta_minus=5 * 2.0 ** -5, decay_pre=0.8, decay_post=0.7, beta=16.0)
    b.connect(x, h, weight=rng.integers(-8, 30, (5, 6)).astype(float), rule=stdp, name="plastic")
    b.connect(h, o, weight=rng.integers(-5, 40, (3, 5)).astype(float))
    g = b.build(outputs=[o])
    xs = {"x": (np.random.default_rng(11).random((150, 6)) < 0.3).astype(float)}
    res = lava_check(g, xs, timeout=120)
    assert res["precision"] == "fixed" and res["passed"] and res["max_abs_error"] == 0.0, res
    assert res["per_output"]["h"]["activity"] > 10


def test_per_post_three_factor_model_deploys_on_the_learning_engine_in_fixed_point(tmp_path):
    """A per-post three-factor eligibility model in Loihi units (projected with
    hardware_aware.project_to_engine) is reported on the learning engine and `deploy --target lava`
    runs it in fixed_pt on Lava, bit-exact to the torch fixed mode."""
    from plastix.backends.hardware_aware import engine_violations, project_to_engine

    rng = np.random.default_rng(3)
    b = ir.GraphBuilder(seed=3)
    x, s = b.input("cues", 6), b.input("signal", 2)
    h = b.cuba_lif("hidden", 5, du=0.25, dv=0.125, vth=180)
    nm = b.cuba_lif("nm", 4, du=0.25, dv=0.125, vth=150)
    b.connect(s, nm, weight=rng.normal(60, 10, (4, 2)))
    b.modulator("dopamine", nm, 5, weight=rng.uniform(0, 0.4, (5, 4)))
    stdp = ir.PairSTDP(eta_plus=0.02, eta_minus=0.03, decay_pre=0.85, decay_post=0.8, beta=15.6,
                       trace_includes_spike=True)
    rule = ir.ThreeFactor(base=ir.EligibilityTrace(base=stdp, gamma=0.8), modulator="dopamine",
                          mode=ir.ModulationMode.PER_POST)
    b.connect(x, h, weight=rng.normal(30, 10, (5, 6)), rule=rule, name="plastic")
    g = project_to_engine(b.build(outputs=[h]))
    assert engine_violations(g) == []
    model = tmp_path / "engine.plx"
    ir.save(g, model)
    out = tmp_path / "bundle"
    res = runner.invoke(app, ["deploy", str(model), "--target", "lava", "--out", str(out), "--steps", "120",
                              "--no-plots"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    for precision in ("float", "fixed"):
        assert report["status"][precision]["rules"]["plastic"]["how"] == "learning engine"
    assert report["status"]["fixed"]["populations"]["hidden"]["why"].startswith("ThreeFactorLIF")
    check = json.loads((out / "manifest.json").read_text())["metrics"]["lava_check"]
    assert check["precision"] == "fixed" and check["passed"] and check["max_abs_error"] == 0.0, check
    assert check["per_output"]["hidden"]["activity"] > 5
    res = runner.invoke(app, ["report", str(model), "--out", str(tmp_path / "r"), "--no-plots"])
    assert res.exit_code == 0 and "learning engine" in res.output, res.output


def test_deploy_of_the_shipped_cue_model_reports_task_accuracy_on_the_learning_engine(tmp_path):
    """The trained hardware-aware cue model: every plastic projection on the learning engine, and the
    report gives its accuracy in torch float, torch fixed and Lava fixed on the same problems, with
    torch fixed and Lava fixed agreeing spike count for spike count (issue 15)."""
    from plastix.demo import ENGINE_MODEL
    from plastix.trainer.algorithms.hardware_aware import LoihiUnits, deployable

    graph = ir.load(ENGINE_MODEL)
    model = tmp_path / "cue_loihi.plx"
    ir.save(deployable(graph, LoihiUnits.of(graph)), model)
    out = tmp_path / "bundle"
    res = runner.invoke(app, ["deploy", str(model), "--target", "lava", "--out", str(out), "--steps", "60",
                              "--no-plots", "--task-problems", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["status"]["fixed"]["rules"]["cues_to_hidden"]["how"] == "learning engine"
    task = report["task"]
    assert set(task["accuracy"]) == {"torch float", "torch fixed", "lava fixed"} and task["problems"] == 2
    assert task["identical_counts_fixed"] == 1.0 and task["accuracy"]["lava fixed"] == task["accuracy"]["torch fixed"]
    assert "## Task accuracy" in (out / "report.md").read_text() and "lava fixed" in res.output
