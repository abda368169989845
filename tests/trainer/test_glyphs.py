"""One-shot character recognition (Meta-SpikePropamine, Figs. 5-6): the CNN + DP-SNN + NM-SNN model,
its episode timing, a tiny meta-training run, resume, export and evaluation of model.plx, the digits set."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import plastix.ir as ir
from plastix.cli import app
from plastix.ir import EligibilityTrace, ModulationMode, ThreeFactor, TripletSTDP
from plastix.ir.examples import one_shot_glyph_net
from plastix.tasks.glyphs import DIGITS_SOURCE, build_glyph_standin, load_digit_glyphs
from plastix.tasks.one_shot_glyphs import one_shot_glyph_problems
from plastix.trainer.experiments.glyphs import (CONFIGS, READOUT_LAG, GlyphCNN, GlyphJob, GlyphModel, build_graph,
                                                diagnostics, gate_signal, static_graph)
from plastix.trainer.experiments.glyphs_run import TrainedGlyphModel, evaluate_model, train_glyphs

TINY = CONFIGS["tiny"]


@pytest.fixture(scope="module")
def small():
    return build_glyph_standin(0, small=True)


def _problems(glyphs, cfg, batch=8, seed=0, split="train"):
    return one_shot_glyph_problems(batch, glyphs, cfg.task_config(split), generator=torch.Generator().manual_seed(seed))


def test_cnn_gives_the_papers_196_features_and_survives_the_metadata():
    cnn = GlyphCNN((4, 4), seed=3)
    x = torch.rand(5, 28, 28)
    assert cnn(x).shape == (5, 196) and cnn.n_features() == 196
    assert bool((cnn(x) >= 0).all())  # ReLU before the pooling
    cnn.train()(torch.rand(16, 28, 28))  # move the batch-norm statistics off their defaults
    back = GlyphCNN.from_metadata(json.loads(json.dumps(cnn.to_metadata())))
    cnn.eval()
    assert torch.allclose(back(x), cnn(x), atol=1e-6)
    assert torch.equal(GlyphCNN(seed=3).conv1.weight, GlyphCNN(seed=3).conv1.weight)  # seeded, no global RNG
    assert not torch.equal(GlyphCNN(seed=3).conv1.weight, GlyphCNN(seed=4).conv1.weight)
    with pytest.raises(ValueError, match="front end"):
        GlyphCNN.from_metadata({"frontend": "{}"})


def test_graph_is_the_papers_network():
    g = one_shot_glyph_net()
    sizes = {p.name: p.size for p in g.populations}
    assert sizes == {"features": 196, "sensory": 196, "hidden": 48, "readout": 1, "nm_gate": 1, "nm1": 64, "nm2": 64}
    proj = g.projection("sensory_to_hidden")
    rule = proj.rule
    assert isinstance(rule, ThreeFactor) and rule.mode == ModulationMode.PER_PRE
    assert isinstance(rule.base, EligibilityTrace) and isinstance(rule.base.base, TripletSTDP)
    assert rule.base.base.mu == 0.0  # additive
    mod = g.modulator(rule.modulator)
    assert (mod.source, mod.size, mod.channels) == ("nm2", 196, 2)  # M_i for LTP and LTD
    assert {(p.pre, p.post) for p in g.projections if p.post == "nm1"} == {("sensory", "nm1"), ("hidden", "nm1")}
    assert 0.4 < float(np.mean(proj.mask)) < 0.6 and 0.15 < float(np.mean(proj.sign == -1)) < 0.25
    still = one_shot_glyph_net(plastic=False)
    assert not still.plastic_projections and not still.modulators and still.inputs == ("features",)
    assert np.array_equal(still.projection("sensory_to_hidden").weight, proj.weight)  # same initial DP-SNN
    stat = static_graph(g)
    assert {p.name for p in stat.populations} == {"features", "sensory", "hidden", "readout"}


def test_modulation_is_on_in_phase_one_only(small):
    cfg = TINY
    gate = gate_signal(cfg.task_config().total_steps + READOUT_LAG, cfg.present_steps)[:, 0]
    assert gate[:19].sum() == 0 and bool(gate[19:].eq(1).all())  # one step ahead of phase 2 (the latency)
    model = GlyphModel(build_graph(cfg), cfg)
    diag = diagnostics(model, _problems(small, cfg, 16))
    assert diag["mod_phase1"] > 0.01 and diag["mod_after"] == 0.0
    assert diag["rate_nm2_p2"] == 0.0


def test_split_episode_is_the_full_episode(small):
    """Phase 2 on the static DP-SNN with each problem's learnt weights gives the same readout."""
    cfg = dataclasses.replace(TINY, eta=0.2)
    model = GlyphModel(build_graph(cfg), cfg)
    pr = _problems(small, cfg, 12)
    with torch.no_grad():
        s_split, o_split = model.episode(pr, split=True)
        s_full, o_full = model.episode(pr, split=False)
    T = cfg.task_config().total_steps + READOUT_LAG
    assert o_full["readout"].shape == (T, 12, 1) and s_full.shape == (12, cfg.n_way)
    assert torch.allclose(o_split["readout"], o_full["readout"], atol=1e-6)
    assert torch.equal(o_split["hidden"], o_full["hidden"])
    # and the plasticity matters: without it the answers' scores differ
    frozen = GlyphModel(build_graph(dataclasses.replace(cfg, eta=0.0)), cfg)
    with torch.no_grad():
        assert not torch.allclose(frozen.episode(pr)[0], s_full)


def test_tiny_meta_training_lowers_the_loss(small):
    """Repeated outer-loop steps on one batch of problems lower the cross entropy (a real check: the
    gradient flows through the CNN, the SNN and its plasticity; the softmax gain is frozen, so that
    sharpening already-right answers cannot lower the loss alone)."""
    cfg = dataclasses.replace(TINY, batch=16, micro_batch=8, eval_every=10_000, lr=0.01)
    job = GlyphJob(cfg, small)
    state = job.init_state()
    state.model.gain.requires_grad_(False)
    state.optimizer = torch.optim.Adam(state.model.param_groups())
    losses = []
    for i in range(12):
        state.generator.manual_seed(7)  # the same batch every time
        state, m = job.step(state, i)
        losses.append(m["loss"])
    assert min(losses[-3:]) < losses[0] - 0.5, losses
    grads = dict(state.model.named_parameters())
    assert grads["cnn.conv1.weight"].grad is not None
    assert float(grads["net.params.dopamine/weight"].grad.abs().sum()) > 0  # through the modulation


def test_resume_continues_bit_for_bit(small, tmp_path):
    kw = dict(progress=False, glyphs=small, checkpoint_every=2, final_problems=8)
    whole = train_glyphs("plastic", "tiny", tmp_path / "a", iterations=4, **kw)
    train_glyphs("plastic", "tiny", tmp_path / "b", iterations=2, **kw)
    resumed = train_glyphs("plastic", "tiny", tmp_path / "b", iterations=4, resume=True, **kw)
    assert resumed["resumed_from"] == 2
    log = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == [r["loss"] for r in log_b]
    assert resumed["test_error"] == whole["test_error"]
    ga, gb = ir.load(tmp_path / "a" / "model.plx"), ir.load(tmp_path / "b" / "model.plx")
    assert np.array_equal(ga.projection("sensory_to_hidden").weight, gb.projection("sensory_to_hidden").weight)
    assert ga.metadata["frontend"] == gb.metadata["frontend"]
    for f in ("checkpoint.pt", "curve.png", "best.plx", "result.json"):
        assert (tmp_path / "b" / f).exists()


def test_exported_model_evaluates_alike_and_via_the_cli(small, tmp_path, monkeypatch):
    res = train_glyphs("plastic", "tiny", tmp_path / "run", iterations=2, progress=False, glyphs=small,
                       final_problems=32)
    graph = ir.load(res["model"])
    assert graph.metadata["task"] == "one_shot_glyphs" and "not an IR node" in graph.metadata["frontend_note"]
    m = TrainedGlyphModel.of(graph)
    pr = _problems(small, TINY, 16, split="test")
    assert torch.equal(m.scores(pr).argmax(-1), m.scores(pr, split=False).argmax(-1))
    monkeypatch.setattr("plastix.trainer.experiments.glyphs_run.load_glyph_standin", lambda *a, **k: small)
    ev = evaluate_model(graph, data="test", n_problems=32)
    assert abs(ev["error"] - res["test_error"]) <= 0.1  # float64 export vs the float32 trainer
    res_cli = CliRunner().invoke(app, ["evaluate", res["model"], "--data", "digits", "--problems", "16", "--json"])
    assert res_cli.exit_code == 0, res_cli.output
    out = json.loads(res_cli.output)
    assert out["dataset"] == "sklearn_digits" and out["problems"] == 16 and 0.0 <= out["error"] <= 1.0


def test_nonplastic_baseline_trains_the_same_dp_snn(small, tmp_path):
    res = train_glyphs("nonplastic", "tiny", tmp_path, iterations=1, progress=False, glyphs=small, final_problems=8)
    g = ir.load(res["model"])
    assert not g.plastic_projections and g.metadata["variant"] == "nonplastic"
    assert g.projection("sensory_to_hidden").weight.shape == (TINY.n_hidden, 196)


def test_digit_glyphs_for_zero_shot_transfer():
    d = load_digit_glyphs()
    assert d.images.shape == (10, 174, 28, 28) and d.source == DIGITS_SOURCE
    assert len(d.train_classes) == 0 and d.test_classes.tolist() == list(range(10))
    assert float(d.images.min()) >= 0.0 and float(d.images.max()) <= 1.0
    assert float(d.images[..., :4, :].abs().sum()) == 0.0  # centred in the glyph box, a blank margin
    pr = one_shot_glyph_problems(64, d, TINY.task_config("test"), generator=torch.Generator().manual_seed(0))
    assert bool((pr.classes[:, 1:] == pr.classes[:, :1]).sum(1).eq(1).all())
