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
from plastix.trainer.algorithms.synq import MLPSpec, SynQ, SynQParams, init_state, load_policy, policy_to_graph, save_policy
from plastix.trainer.experiments.synq_run import train_gd_baseline, train_synq

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


# -- issue 19: the paper's protocol, the authors' baselines ------------------------------------


def test_authors_final_config_is_the_final_runs_settings_not_the_sweep():
    from plastix.tasks import synq_configs as c

    for task in ("digits_0hu", "digits_32hu", "notmnist_standin_0hu", "notmnist_standin_32hu"):
        fin, sweep = c.get(task, "authors_final"), c.get(task, "authors")
        assert (fin.epsilon, fin.batch_size, fin.batch_interval) == (0.1, 5000, 5000)
        assert (sweep.epsilon, sweep.batch_size, sweep.batch_interval) == (0.2, 1000, 500)
    assert c.get("boundary", "authors_final") == c.get("boundary", "paper")


def test_gd_protocols_change_init_rate_and_budget_only():
    from plastix.tasks import synq_configs as c

    exp = c.get("digits_0hu", "paper")
    assert c.gd_protocol("strong").apply(exp) == exp
    auth = c.gd_protocol("authors").apply(exp)
    assert (auth.init_scale, auth.gd_lr, auth.iterations) == (1.0, 0.1, 5000)
    assert auth.sizes == exp.sizes and auth.gd_batch_size == exp.gd_batch_size
    with pytest.raises(KeyError, match="known.*authors"):
        c.gd_protocol("notebook")
    with pytest.raises(ValueError, match="GDProtocol.lr"):
        c.GDProtocol(lr=0.0)


def test_gd_authors_protocol_runs_from_wide_weights(tmp_path):
    auth = train_gd_baseline("digits_0hu", "quick", tmp_path / "a", seed=0, protocol="authors", iterations=30)
    strong = train_gd_baseline("digits_0hu", "quick", tmp_path / "s", seed=0, iterations=30)
    assert auth["gd_protocol"] == "authors" and auth["iterations"] == 30
    assert auth["experiment"]["init_scale"] == 1.0 and strong["experiment"]["init_scale"] == 0.1
    # U[-1, 1] logits start far from uniform: the first loss is well above ln 10, the strong init's is near it
    first = [json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0]) for d in ("a", "s")]
    assert first[0]["train_loss"] > first[1]["train_loss"]


def test_bias_init_option_keeps_weights_and_lets_the_multiplicative_form_move_biases():
    spec = MLPSpec((6, 4, 3))
    mask = spec.bias_mask()
    zero = spec.init(generator=torch.Generator().manual_seed(5), scale=0.1)
    wide = spec.init(generator=torch.Generator().manual_seed(5), scale=0.1, zero_bias=False, bias_scale=0.5)
    assert torch.equal(zero[~mask], wide[~mask])  # the weights do not depend on the bias choice
    assert (zero[mask] == 0).all() and (wide[mask] != 0).all() and wide[mask].abs().max() <= 0.5
    assert wide[mask].abs().max() > 0.1  # drawn at the bias scale, not the weights'
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 6, generator=g), torch.randint(0, 3, (200,), generator=g)

    def loss(th):
        return torch.nn.functional.cross_entropy(spec.forward(th, x), y)

    algo = SynQ(SynQParams(step=1e-2, form="multiplicative", epsilon=0.3), mask)
    for th0 in (zero, wide):
        th = algo.run(init_state(th0, loss(th0)), loss, 200).theta
        assert (torch.sign(th) == torch.sign(th0)).all()  # |step| < 1: no weight ever changes sign
        moved = (th != th0)[mask]
        assert moved.all() if th0 is wide else not moved.any()


def test_shipped_policy_is_package_data_and_applies_frozen_or_online(tmp_path):
    from typer.testing import CliRunner

    from plastix.cli import app
    from plastix.trainer.experiments.synq_run import SHIPPED_POLICY, policy_path

    path = policy_path(SHIPPED_POLICY)
    assert path.is_file() and path.parent.name == "data"
    q, params = load_policy(path)
    meta = ir.load(path).metadata
    assert meta["task"] == "boundary" and meta["trained_policy"] and q.abs().sum() > 0
    runner = CliRunner()
    outs = {}
    for mode in ("frozen", "online"):
        r = runner.invoke(app, ["train", "digits_0hu", "--method", "synq", "--policy", "shipped", "--policy-mode", mode,
                                "--steps", "200", "--out", str(tmp_path / mode)])
        assert r.exit_code == 0, r.output
        outs[mode] = json.loads((tmp_path / mode / "result.json").read_text())
        assert outs[mode]["train_policy"] is (mode == "online")
    assert torch.equal(load_policy(tmp_path / "frozen" / "policy.plx")[0], q)
    assert not torch.equal(load_policy(tmp_path / "online" / "policy.plx")[0], q)


def test_frozen_tables_on_digits_shipped_lowers_the_loss_a_constant_table_does_not(tmp_path):
    """The two-phase protocol in miniature (docs/results.md, issue 19): the shipped boundary-learned
    table, frozen, lowers the digits loss; so does the hand-made win-stay/lose-reverse table, further;
    a table whose greedy action never depends on the reward (all zeros: always -step) raises it."""
    from plastix.trainer.algorithms.synq import win_stay_lose_reverse

    def first_and_last(policy, name):
        res = train_synq("digits_0hu", "quick", tmp_path / name, seed=0, policy=policy, iterations=2000)
        first = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])["train_loss"]
        return first, res["final"]["train_loss"], res["final"]["valid_acc"]

    params = SynQParams(step=1e-3)
    f0, f1, _ = first_and_last("shipped", "shipped")
    w0, w1, wacc = first_and_last(save_policy(tmp_path / "wslr.plx", win_stay_lose_reverse(), params), "wslr")
    z0, z1, _ = first_and_last(save_policy(tmp_path / "zero.plx", torch.zeros(81, 3), params), "zero")
    assert f1 < f0 - 0.05 and w1 < w0 - 0.2 and wacc > 0.4
    assert z1 > z0


def test_q_average_from_saves_the_mean_table_and_resumes_bit_for_bit(tmp_path):
    from typer.testing import CliRunner

    from plastix.cli import app

    last = train_synq("boundary", "quick", tmp_path / "last", seed=0)
    full = train_synq("boundary", "quick", tmp_path / "full", seed=0, q_average_from=150)
    assert full["final"] == last["final"]  # averaging does not change the learning
    q_last, _ = load_policy(tmp_path / "last" / "policy.plx")
    q_full, _ = load_policy(tmp_path / "full" / "policy.plx")
    assert not torch.equal(q_full, q_last)
    assert ir.load(tmp_path / "full" / "policy.plx").metadata["q_average_from"] == 150
    r = CliRunner().invoke(app, ["train", "boundary", "--method", "synq", "--q-average-from", "150", "--steps", "200",
                                 "--out", str(tmp_path / "part")])
    assert r.exit_code == 0, r.output
    resumed = train_synq("boundary", "quick", tmp_path / "part", seed=0, q_average_from=150, resume=True)
    assert resumed["iterations"] == 400
    assert torch.equal(load_policy(tmp_path / "part" / "policy.plx")[0], q_full)
