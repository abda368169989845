"""Synaptic-Q runs: policy save/load through the IR and reuse on a new network, resume, GD baseline,
benchmark smoke test."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from plastix import ir
from plastix.trainer.synq import MLPSpec, SynQ, SynQParams, init_state, load_policy, policy_to_graph, save_policy
from plastix.trainer.synq_run import train_gd_baseline, train_synq

ROOT = Path(__file__).resolve().parents[2]


def test_policy_round_trips_through_the_ir(tmp_path):
    q = torch.randn(81, 3, generator=torch.Generator().manual_seed(0))
    params = SynQParams(step=2e-4, form="multiplicative", epsilon=0.2, gamma=0.8, lr=0.05, bias_step_scale=3.0,
                        aggregation="mean", seed=7)
    path = save_policy(tmp_path / "pol.plx", q, params, metadata={"task": "unit"})
    graph = ir.load(path)  # a plain, fully validated IR file
    rules = [pr.rule for pr in graph.projections if isinstance(pr.rule, ir.SynapticQ)]
    assert len(rules) == 1 and np.asarray(rules[0].q_table).shape == (81, 3)
    assert rules[0].form is ir.QUpdateForm.MULTIPLICATIVE and graph.metadata["task"] == "unit"
    q2, p2 = load_policy(path)
    assert torch.allclose(q, q2)
    assert p2 == params
    # the in-memory graph and the IR's own dict round trip agree too
    g2 = ir.from_dict(ir.to_dict(policy_to_graph(q, params)))
    assert np.allclose(g2.projections[0].rule.q_table, q.numpy())


def test_load_policy_without_synaptic_q_fails_clearly(tmp_path):
    g = ir.Graph(populations=(ir.Input(name="pre", size=1), ir.LIReadout(name="post", size=1, du=1.0, dv=1.0)),
                 projections=(ir.Projection(name="p", pre="pre", post="post", weight=np.ones((1, 1))),),
                 outputs=("post",))
    ir.save(g, tmp_path / "none.plx")
    with pytest.raises(ValueError, match="no SynapticQ"):
        load_policy(tmp_path / "none.plx")


def test_trained_policy_reloads_and_trains_a_new_network(tmp_path):
    res = train_synq("boundary", "quick", tmp_path / "learn", seed=0, form="additive", iterations=1000)
    assert res["train_policy"] and Path(res["policy_out"]).exists()
    q, params = load_policy(res["policy_out"])
    assert q.abs().sum() > 0
    # reuse statically on a different, freshly initialised network and problem
    g = torch.Generator().manual_seed(0)
    spec = MLPSpec((5, 16, 3), hidden="tanh")
    x = torch.randn(300, 5, generator=g)
    y = (x[:, :2].sum(1) > 0).long() + (x[:, 2] > 1).long()

    def loss(th):
        return torch.nn.functional.cross_entropy(spec.forward(th, x), y)

    theta = spec.init(generator=g, scale=0.3)
    static = SynQParams(step=5e-3, epsilon=0.1, train_policy=False)
    st = SynQ(static, spec.bias_mask()).run(init_state(theta, loss(theta), q), loss, 1500)
    assert torch.equal(st.q, q)  # static: table untouched
    assert float(loss(st.theta)) < 0.9 * float(loss(theta))
    # and through train_synq: a given policy is static by default and is written back unchanged
    res2 = train_synq("digits_0hu", "quick", tmp_path / "reuse", seed=1, policy=res["policy_out"])
    assert not res2["train_policy"]
    q_out, _ = load_policy(res2["policy_out"])
    assert torch.equal(q_out, q)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    full = train_synq("digits_32hu", "quick", tmp_path / "full", seed=3)
    part = train_synq("digits_32hu", "quick", tmp_path / "part", seed=3, iterations=200)
    assert part["iterations"] == 200
    resumed = train_synq("digits_32hu", "quick", tmp_path / "part", seed=3, resume=True)
    assert resumed["iterations"] == full["iterations"] == 400
    assert resumed["final"] == full["final"]
    qa, _ = load_policy(tmp_path / "full" / "policy.plx")
    qb, _ = load_policy(tmp_path / "part" / "policy.plx")
    assert torch.equal(qa, qb)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [100, 200, 300, 400]


def test_run_writes_files_and_multiplicative_form(tmp_path):
    res = train_synq("boundary", "quick", tmp_path, seed=0, form="multiplicative")
    assert res["form"] == "multiplicative"
    for name in ("checkpoint.pt", "metrics.jsonl", "result.json", "policy.plx"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "result.json").read_text())["iterations"] == 400


def test_gd_baseline_learns_digits(tmp_path):
    res = train_gd_baseline("digits_0hu", "quick", tmp_path, seed=0)
    assert res["method"] == "gradient_descent" and res["iterations"] == 400
    assert res["final"]["valid_acc"] > 0.7


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="known"):
        train_synq("nope", "quick", tmp_path, seed=0)
    with pytest.raises(KeyError, match="known"):
        train_synq("boundary", "huge", tmp_path, seed=0)


def test_benchmark_quick_runs():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "synq.py"), "--quick"], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "ratio" in out.stdout and "ocr32" in out.stdout and "boundary" in out.stdout
