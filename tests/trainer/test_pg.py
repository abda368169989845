"""Policy-gradient BPTT on the SpikePropamine T-maze: variant graphs, policy, loss decrease, resume, CLI."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import plastix.ir as ir
from plastix.backends.torch import compile as compile_torch
from plastix.tasks.cue_tmaze import cue_tmaze_episodes, maze_config
from plastix.trainer.experiments.pg import (
    PGConfig,
    PGJob,
    TMazeModel,
    TMazeVariant,
    cue_tmaze_net,
    evaluate,
    expected_accuracy,
    first_reaching,
    loo_baseline,
    sample_turns,
)
from plastix.trainer.experiments.pg_run import train_pg
from plastix.trainer.runner import RunOptions, run

SHORT = maze_config("quick").replace(n_cues=1, cue_steps=6, gap_steps=2, delay_steps=4, decision_steps=6)
TINY = PGConfig(iterations=4, batch=8, n_hidden=12, eval_episodes=16, eval_every=2, lr=0.01, maze=SHORT)

RULE_OF = {TMazeVariant.DP_LINEAR_DECAY: ir.HebbianDecay, TMazeVariant.DP_OJA: ir.Oja, TMazeVariant.DP_BCM: ir.BCM,
           TMazeVariant.NDP_OJA: ir.Oja, TMazeVariant.NDP_BCM: ir.BCM}


@pytest.mark.parametrize("variant", list(TMazeVariant))
def test_every_variant_is_a_valid_graph_that_runs_on_torch(variant, tmp_path):
    g = cue_tmaze_net(variant, seed=1)
    assert [p.size for p in g.populations] == [40, 64, 2]
    assert [(p.pre, p.post) for p in g.projections] == [("cues", "hidden"), ("hidden", "action")]
    if variant is TMazeVariant.NON_PLASTIC:
        assert not g.plastic_projections and not g.modulators
    else:
        assert all(type(p.rule) is RULE_OF[variant] for p in g.projections)
        mods = {p.rule.modulator for p in g.projections}
        if variant.neuromodulated:  # per-post M = W_m r_post + b from the projection's own post population
            assert mods == {"m_hidden", "m_action"}
            assert {(m.source, m.size) for m in g.modulators} == {("hidden", 64), ("action", 2)}
        else:
            assert mods == {None} and not g.modulators
    g2 = ir.load(ir.save(g, tmp_path / "m.plx"))  # the IR file round-trips
    ep = cue_tmaze_episodes(3, maze_config("quick"), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, state = compile_torch(g2).run({"cues": ep.spikes})
    assert out["action"].shape == (90, 1, 3, 2) and out["action"].sum() > 0  # the outputs spike
    if variant is not TMazeVariant.NON_PLASTIC:
        assert state.projs["cues_to_hidden"].rule.e.abs().sum() > 0  # the trace moved


def test_policy_helpers():
    assert torch.allclose(loo_baseline(torch.tensor([1.0, -1.0, 1.0])), torch.tensor([0.0, 1.0, 0.0]))
    logits = torch.tensor([[0.0, 30.0], [30.0, 0.0]])
    turn, logp = sample_turns(logits, torch.Generator().manual_seed(0))
    assert turn.tolist() == [1, 0] and torch.allclose(logp, torch.zeros(2), atol=1e-6)
    assert expected_accuracy(logits, torch.tensor([1, 1])).item() == pytest.approx(0.5)
    assert first_reaching([-0.5, -0.98, -0.99, -0.96, -0.99], window=2) == 2
    assert first_reaching([-0.5, -0.9], window=2) is None


def test_bad_variant_and_config_are_rejected():
    with pytest.raises(ValueError, match="known"):
        cue_tmaze_net("oja_plus")
    with pytest.raises(ValueError, match="batch"):
        PGConfig(batch=1)


def test_loss_decreases_on_a_fixed_batch():
    """Repeated policy-gradient steps on the same episodes raise the policy's probability of the
    correct turn (the expected value of -loss), through the plastic network."""
    job = PGJob(dataclasses.replace(TINY, variant="ndp_oja", eval_every=10_000, lr=0.02, batch=16))
    state = job.init_state()
    accs = []
    for i in range(12):
        state.generator.manual_seed(3)  # same episodes and sampling noise every time
        state, m = job.step(state, i)
        accs.append(m["expected_accuracy"])
    assert max(accs[-3:]) > accs[0] + 0.05, accs


def test_gradients_reach_plasticity_and_modulator():
    job = PGJob(dataclasses.replace(TINY, variant="ndp_bcm"))
    state = job.init_state()
    state, _ = job.step(state, 0)
    grads = {n: p.grad for n, p in state.model.net.named_parameters() if p.requires_grad}
    for name in ("cues_to_hidden/rule/alpha", "cues_to_hidden/rule/eta", "cues_to_hidden/rule/psi",
                 "m_hidden/weight", "hidden_to_action/weight"):
        assert grads[f"params.{name}"].abs().sum() > 0, name


class _Interrupted(PGJob):
    def step(self, state, index):
        if index == 3:
            raise KeyboardInterrupt
        return super().step(state, index)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    """An interrupted run leaves a checkpoint; ``resume=True`` continues from it and ends with the
    same model as an uninterrupted run (the RNG state is part of the checkpoint)."""
    kw = dict(iterations=5, batch=8, n_hidden=12, eval_episodes=16, eval_every=2, lr=0.01, maze=SHORT, progress=False)
    full = train_pg("dp_bcm", "quick", tmp_path / "full", checkpoint_every=2, **kw)
    cfg = dataclasses.replace(TINY, variant="dp_bcm", iterations=5)
    with pytest.raises(KeyboardInterrupt):
        run(_Interrupted(cfg), RunOptions(out_dir=tmp_path / "cut", total_steps=5, checkpoint_every=2, progress=False,
                                          plot=False))
    res = train_pg("dp_bcm", "quick", tmp_path / "cut", resume=True, checkpoint_every=2, **kw)
    assert res["resumed_from"] == 3 and res["iterations"] == 5
    a, b = ir.load(full["model"]), ir.load(res["model"])
    for pa, pb in zip(a.projections, b.projections):
        np.testing.assert_array_equal(pa.weight, pb.weight)
        np.testing.assert_array_equal(pa.rule.alpha, pb.rule.alpha)
    # the exported model.plx (weights, rule coefficients, readout gain) reproduces the trained policy
    exported = TMazeModel(b, cfg)
    assert evaluate(exported, SHORT, 16, seed=PGJob.EVAL_SEED) == {"accuracy": res["eval_accuracy"],
                                                                   "greedy_accuracy": res["eval_greedy_accuracy"]}
    log = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4]
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["variant"] == "dp_bcm"


def test_cli_trains_a_variant_and_rejects_unknown_ones(tmp_path):
    from typer.testing import CliRunner

    from plastix.cli import app

    r = CliRunner().invoke(app, ["train", "cue_tmaze", "--method", "bptt", "--variant", "dp_oja", "--steps", "1",
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert ir.load(tmp_path / "run" / "model.plx").metadata["variant"] == "dp_oja"
    bad = CliRunner().invoke(app, ["train", "cue_tmaze", "--method", "bptt", "--variant", "hebb",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "known" in bad.output


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_quick_config_plastic_learns_and_static_does_not(tmp_path):
    """The recorded result in miniature (docs/results.md, seed 0): NDP-Oja's reaches the paper's
    stopping loss within 250 quick iterations; the non-plastic net stays near chance."""
    ndp = train_pg("ndp_oja", "quick", tmp_path / "ndp", iterations=250, progress=False)
    static = train_pg("non_plastic", "quick", tmp_path / "static", iterations=250, progress=False)
    assert ndp["reached_stop_loss_at"] is not None and ndp["eval_greedy_accuracy"] > 0.9, ndp
    assert static["reached_stop_loss_at"] is None and static["eval_greedy_accuracy"] < 0.65, static
