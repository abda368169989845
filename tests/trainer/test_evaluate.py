"""``plastix evaluate``: a trained cue model's accuracy on seeded problems, on torch and on Lava."""
import json
from pathlib import Path

import pytest
import numpy as np
import torch
from typer.testing import CliRunner

import plastix.ir as ir
from plastix.cli import app
from plastix.demo import DATA, ENGINE_MODEL
from plastix.trainer.experiments.bptt import BPTTJob, evaluate
from plastix.trainer.experiments.cue_eval import CueSetting, evaluate_model, problem_batches

runner = CliRunner()


def test_problem_batches_are_the_trainers_evaluation_problems():
    """``evaluate_model`` draws exactly the problems the trainer's own evaluation draws (same seed,
    same batches), so a figure in the training log can be re-measured from the exported model."""
    graph = ir.load(ENGINE_MODEL)
    setting = CueSetting.of(graph)
    job = BPTTJob(__import__("plastix.trainer.experiments.bptt_run", fromlist=["model_config"]).model_config(graph), graph)
    model = job.init_state().model  # float32 (evaluate_model runs float64: counts may differ by a spike)
    ours = evaluate_model(graph, n_problems=40, seed=7)
    theirs = evaluate(model, 40, n_cues=setting.task.n_cues, seed=7, return_counts=True)
    assert torch.equal(torch.tensor(ours["labels"]), theirs["labels"])
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=3 / 40)
    assert sum(b.cues.shape[1] for b, _ in problem_batches(setting, 300, seed=7)) == 384  # 3 full batches of 128


def test_evaluate_cli_json_on_the_shipped_model():
    res = runner.invoke(app, ["evaluate", str(ENGINE_MODEL), "--task", "one_shot_cue", "--cues", "3",
                              "--problems", "64", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    # the stored figure: the shipped model (trained at M = 1) on these 64 problems at M = 3 (torch, float64)
    assert out["accuracy"] == pytest.approx(36 / 64, abs=1e-9)
    assert out["problems"] == 64 and out["cues"] == 3 and out["backend"] == "torch"


def test_evaluate_lava_gives_the_same_counts_as_torch():
    """Float Lava runs the same problems and gives the same output spike counts as torch."""
    graph = ir.load(ENGINE_MODEL)
    t = evaluate_model(graph, n_problems=2, seed=5)
    lv = evaluate_model(graph, n_problems=2, seed=5, backend="lava")
    assert t["counts"] == lv["counts"] and t["accuracy"] == lv["accuracy"]


def test_sweep_plot_is_written(tmp_path):
    from plastix.trainer.experiments.bptt_run import PAPER_SWEEP, plot_sweep

    path = plot_sweep({"model": {1: 0.9, 3: 0.7, 5: 0.6}}, tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and PAPER_SWEEP[5] == 0.956


def test_evaluate_the_shipped_m5_model_against_its_stored_figure():
    """The best M = 5 model trained here (paper protocol, per-post modulation, the association stored in the
    synapses with pooled anti-Hebbian input; docs/results.md, issue 14), and the earlier one that computed in the
    test trial; and the global-modulation model (mixed polarity, the same pool; 0.956 on 500 held-out problems)."""
    from pathlib import Path

    for name, right in (("cue_m5_pool.plx", 29), ("cue_m5_per_post.plx", 25), ("cue_m5_global.plx", 29)):
        model = DATA / name
        res = runner.invoke(app, ["evaluate", str(model), "--problems", "32", "--seed", "3", "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["cues"] == 5 and out["accuracy"] == pytest.approx(right / 32, abs=1e-9), name  # stored figures


def test_freeze_test_shows_the_shipped_m5_model_computes_in_the_test_trial():
    """``--freeze-test`` silences the modulators in the test trial: the shipped M = 5 model then falls
    to chance (it answers with plasticity during the test, not from what it stored; docs/results.md,
    issue 14), and a frozen evaluation of a model with nothing to modulate changes nothing."""
    from pathlib import Path

    model = DATA / "cue_m5_per_post.plx"
    acc = {}
    for flag in ([], ["--freeze-test"]):
        res = runner.invoke(app, ["evaluate", str(model), "--problems", "64", "--seed", "1", "--json", *flag])
        assert res.exit_code == 0, res.output
        acc[bool(flag)] = json.loads(res.output)["accuracy"]
    assert acc[False] > 0.75 and acc[True] < 0.65
    stored = DATA / "cue_m5_pool.plx"  # the best model answers from its synapses
    res = runner.invoke(app, ["evaluate", str(stored), "--problems", "64", "--seed", "1", "--json", "--freeze-test"])
    assert res.exit_code == 0 and json.loads(res.output)["accuracy"] > 0.9, res.output
    graph = ir.load(model)
    still = graph.replace(modulators=tuple(m.replace(weight=m.weight * 0.0, bias=m.bias * 0.0) for m in graph.modulators))
    a, b = (evaluate_model(still, n_problems=16, seed=2, freeze_test=f)["counts"] for f in (False, True))
    assert a == b
    bad = runner.invoke(app, ["evaluate", str(model), "--problems", "4", "--freeze-test", "--sweep", "1,3"])
    assert bad.exit_code == 2 and "--freeze-test" in bad.output


def test_evaluate_sweep_matches_single_evaluations_and_plots(tmp_path):
    res = runner.invoke(app, ["evaluate", str(ENGINE_MODEL), "--problems", "16", "--seed", "3", "--sweep", "1,3",
                              "--plot", str(tmp_path / "s.png"), "--json"])
    assert res.exit_code == 0, res.output
    sweep = json.loads(res.output.splitlines()[0])["sweep"]
    graph = ir.load(ENGINE_MODEL)
    for m in (1, 3):
        assert sweep[str(m)] == pytest.approx(evaluate_model(graph, n_problems=16, n_cues=m, seed=3)["accuracy"], abs=1e-4)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args", [["--sweep", "1,x"], ["--sweep", "0,3"], ["--plot", "a.png"]])
def test_evaluate_sweep_bad_arguments_exit_2(args):
    res = runner.invoke(app, ["evaluate", str(ENGINE_MODEL), *args])
    assert res.exit_code == 2 and "error:" in res.output


def test_evaluate_compare_lava_reports_identical_runs():
    res = runner.invoke(app, ["evaluate", str(ENGINE_MODEL), "--compare-lava", "1", "--cues", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["problems"] == 1 and out["accuracy_torch"] == out["accuracy_lava"]
    assert out["identical_spike_trains"] == 1.0 and out["identical_final_weights"] == 1.0


def test_no_plasticity_baseline_of_the_shipped_m5_model_is_near_chance():
    """``--no-plasticity``: the same network without rules and modulators cannot solve the permuted task (the
    cue -> action map changes every problem), far below the plastic model's stored 29 / 32."""
    res = runner.invoke(app, ["evaluate", str(DATA / "cue_m5_pool.plx"), "--problems", "64", "--seed", "3",
                              "--no-plasticity", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["accuracy"] < 0.75
    res = runner.invoke(app, ["evaluate", str(DATA / "cue_m5_pool.plx"), "--no-plasticity", "--sweep", "1,3"])
    assert res.exit_code != 0 and "--no-plasticity goes with" in res.output


def test_without_plasticity_drops_rules_and_modulators_and_refuses_gated_synapses():
    from plastix.trainer.experiments.enu_net import NetworkSpec

    g = ir.load(DATA / "cue_m5_pool.plx")
    s = g.without_plasticity()
    assert s.plastic_projections == () and s.modulators == ()
    np.testing.assert_array_equal(np.asarray(s.projection("cues_to_hidden").weight),
                                  np.asarray(g.projection("cues_to_hidden").weight))
    spec = NetworkSpec("enu")
    with pytest.raises(ValueError, match="gated synapses"):
        spec.to_graph(spec.init_genome(torch.Generator().manual_seed(0))).without_plasticity()


def test_evaluate_a_mimic_cell_reports_its_fitness_and_the_trivial_outputs(tmp_path):
    """``plastix evaluate`` of an IAF / STDP cell: its fitness on seeded episodes next to the trivial output's. A
    cell with all-zero weights is silent, so on IAF it scores exactly the silent baseline; the kept paper-budget ENU
    does far better (docs/results.md)."""
    from plastix.trainer.algorithms.models import ModelSpec

    spec = ModelSpec("enu")
    path = tmp_path / "silent.plx"
    ir.save(spec.to_graph(np.zeros(spec.num_params, dtype=np.float32), metadata={"task": "iaf", "config": "quick"}), path)
    res = runner.invoke(app, ["evaluate", str(path), "--episodes", "8", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["task"], out["model"], out["episodes"], out["trivial"]) == ("iaf", "enu", 8, "silent")
    assert out["fitness"] == pytest.approx(out["trivial_fitness"]) and out["fitness"] < -100
    kept = Path(__file__).resolve().parents[2] / "docs" / "iaf_runs" / "paper_budget_enu_s0" / "model.plx"
    trained = runner.invoke(app, ["evaluate", str(kept), "--episodes", "8",
                                  "--seed", "3", "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["fitness"] > out["fitness"] / 4
    bad = runner.invoke(app, ["evaluate", str(path), "--by-assignment"])
    assert bad.exit_code != 0 and "mimic-task cells" in bad.output
    bad = runner.invoke(app, ["evaluate", str(path), "--task", "stdp"])
    assert bad.exit_code != 0 and "trained on 'iaf'" in bad.output
