"""T-maze networks of cells: genome layout, chunk-invariant evaluation, determinism, IR export,
renders."""
from pathlib import Path

import pytest
import torch

from plastix.ir import Graph, load, save
from plastix.tasks.registry import get_entry, make_task, task_config
from plastix.trainer.experiments.enu_net import (N_NEURONS, SYN_PER_NEURON, NetworkSpec, add_memory_gain, connectivity,
                                                 genome_from_graph)
from plastix.trainer.algorithms.es_eval import evaluate_population, rollout
from plastix.trainer.experiments.es_run import model_for_task
from plastix.trainer.algorithms.models import ModelSpec


SHIPPED_M2 = Path(__file__).resolve().parents[2] / "docs" / "tmaze_runs" / "shuffle_outputs_m2_es_mem_s0" / "model.plx"


def _population(spec, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([spec.init_genome(g) for _ in range(n)])


def test_genome_sizes_follow_the_paper():
    assert NetworkSpec("enu").num_params == 2 * 6656          # synapse ENU + neuron ENU (Methods)
    assert NetworkSpec("sharedenu").num_params == 6656        # one ENU for both
    assert NetworkSpec("gru").num_params == 2 * ModelSpec("gru").num_params
    assert isinstance(model_for_task("tmaze", "lstm"), NetworkSpec)
    assert isinstance(model_for_task("iaf", "lstm"), ModelSpec)
    with pytest.raises(ValueError, match="unknown model"):
        NetworkSpec("rnn")


def test_connectivity_eight_synapses_per_neuron_with_self_and_reward():
    conn = connectivity()
    assert conn.shape == (N_NEURONS, SYN_PER_NEURON)
    for j, row in enumerate(conn.tolist()):
        assert len(set(row)) == 8 and 3 in row and 4 + j in row   # reward neuron and itself
        assert sum(s < 3 for s in row) == 2                       # two sensory synapses


@pytest.mark.parametrize("kind", ["enu", "nfenu", "gru", "lstm", "sharedenu"])
def test_evaluation_of_a_chunk_equals_the_whole_population(kind):
    spec = NetworkSpec(kind)
    pop = _population(spec, 4)
    cfg = task_config("tmaze", "quick", steps=30)
    run = lambda p: rollout(spec, p, make_task("tmaze", cfg, population=p.shape[0]), seed=5, record=True)  # noqa: E731
    whole, part = run(pop), run(pop[1:3])
    assert torch.equal(whole["returns"][1:3], part["returns"])
    assert torch.equal(whole["actions"][:, 1:3], part["actions"])          # motor activity, step by step
    assert torch.equal(whole["infos"]["x"][:, 1:3], part["infos"]["x"])
    again = run(pop)
    assert torch.equal(whole["actions"], again["actions"])                  # determinism for a seed


def test_some_random_networks_collect_rewards():
    """Guards the chunk test against comparing all-zero fitness."""
    spec = NetworkSpec("enu")
    env = make_task("tmaze", task_config("tmaze", "quick", steps=60, num_envs=8), population=6)
    fit = evaluate_population(spec, _population(spec, 6), env, seed=5)
    assert (fit != 0).any() and fit.unique().numel() > 1


def test_export_is_a_valid_ir_graph(tmp_path):
    spec = NetworkSpec("enu")
    g = spec.to_graph(_population(spec, 1)[0].numpy())
    assert isinstance(g, Graph)
    assert sum(int(p.mask.sum()) for p in g.projections) == N_NEURONS * SYN_PER_NEURON
    back = load(save(g, tmp_path / "m.plx"))
    assert back.summary() == g.summary()


@pytest.mark.parametrize("kind,scale", [("enu", 1.0), ("gru", 3.0), ("sharedenu", 1.0)])
def test_dropping_ended_agents_gives_the_same_returns(kind, scale):
    """rollout stops simulating individuals whose every env ended (fused ENU and functional GRU
    state alike): the returns are bit-identical to simulating everyone to the end."""
    spec = NetworkSpec(kind)
    pop = _population(spec, 9, seed=1) * scale  # (chosen so that some die early and some eat and live on)
    task = make_task("tmaze", task_config("tmaze", "quick", num_envs=3, energy=12, shuffle=False), population=9)
    full = rollout(spec, pop, task, seed=4, compact=False)
    assert task.population == 9
    fast = rollout(spec, pop, task, seed=4)
    assert task.population < 9  # some were dropped before the last step
    assert torch.equal(fast["returns"], full["returns"])
    assert torch.equal(rollout(spec, pop, task, seed=4, compact=False)["returns"], full["returns"])  # reset restores


@pytest.mark.parametrize("kind", ["enu", "nfenu", "gru", "lstm", "sharedenu"])
def test_genome_comes_back_from_the_saved_graph(kind, tmp_path):
    spec = NetworkSpec(kind)
    genome = _population(spec, 1, seed=3)[0]
    back = genome_from_graph(spec, load(save(spec.to_graph(genome.numpy()), tmp_path / "m.plx")))
    assert torch.equal(back, genome)
    other = NetworkSpec("gru" if kind != "gru" else "lstm")
    with pytest.raises(ValueError, match="not a"):
        genome_from_graph(other, spec.to_graph(genome.numpy()))
    if kind == "enu":
        with pytest.raises(ValueError, match="post neuron"):
            genome_from_graph(NetworkSpec("enu", post_feedback=False), spec.to_graph(genome.numpy()))


def test_es_run_starts_from_an_earlier_stage(tmp_path):
    """The fixed_io curriculum stage's model.plx is the next stage's initial search mean (--init)."""
    from plastix.trainer.experiments.es_run import ESJob

    spec = NetworkSpec("enu")
    genome = _population(spec, 1, seed=5)[0]
    path = save(spec.to_graph(genome.numpy()), tmp_path / "stage1.plx")
    job = ESJob("tmaze", "enu", "quick", seed=0, init=path)
    assert torch.equal(job.init_state().es.mean, genome)
    assert job.config()["init"] == str(path)
    assert not torch.equal(ESJob("tmaze", "enu", "quick", seed=0).init_state().es.mean, genome)
    with pytest.raises(ValueError, match="only the T-maze networks"):
        ESJob("iaf", "enu", "quick", init=path).init_state()
    assert task_config("tmaze", "fixed_io").shuffle is False and task_config("tmaze", "reduced").shuffle
    assert task_config("tmaze", "navigate").swap_prob == 0.0 and task_config("tmaze", "reduced_e32").num_envs == 32


def test_render_writes_gif_and_reward_plot(tmp_path):
    from PIL import Image

    spec = NetworkSpec("enu")
    cfg = task_config("tmaze", "quick", steps=12, num_envs=2)
    rec = rollout(spec, _population(spec, 1), make_task("tmaze", cfg, population=1), seed=1, record=True)
    paths = get_entry("tmaze").render(rec["infos"], cfg, tmp_path)
    assert [p.name for p in paths] == ["episode.gif", "episode_reward.png"]
    assert Image.open(paths[0]).n_frames == 12
    with pytest.raises(ValueError, match="infos lack"):
        get_entry("tmaze").render({"t": rec["infos"]["t"]}, cfg, tmp_path)


def test_cli_trains_tmaze_and_renders(tmp_path):
    import json

    from typer.testing import CliRunner

    from plastix.cli import app

    runner = CliRunner()
    out = tmp_path / "tm"
    res = runner.invoke(app, ["train", "tmaze", "--method", "es", "--model", "sharedenu", "--steps", "1",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "result.json").read_text())
    assert summary["generations"] == 1 and summary["num_params"] == 6656
    assert (out / "episode.gif").exists() and (out / "episode_reward.png").exists()
    assert load(out / "model.plx").outputs == ("motor",)
    res = runner.invoke(app, ["train", "double_tmaze", "--method", "es", "--model", "rnn", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "unknown model" in res.output


@pytest.mark.parametrize("kind", ["enu", "nfenu", "sharedenu"])
def test_fused_enu_network_matches_the_functional_one(kind):
    spec = NetworkSpec(kind)
    pop = _population(spec, 3)
    task = make_task("tmaze", task_config("tmaze", "quick", num_envs=4), population=3)
    obs, _ = task.reset(seed=2)
    models = [spec.population_model(pop, fused=f) for f in (True, False)]
    states = [m.init_state(4, torch.Generator().manual_seed(9)) for m in models]
    assert models[0].fused and not models[1].fused
    for _ in range(12):
        acts = []
        for i, m in enumerate(models):
            a, states[i] = m.act(obs, states[i])
            acts.append(a)
        torch.testing.assert_close(acts[0], acts[1], rtol=1e-4, atol=1e-5)
        obs, *_ = task.step(acts[1])


def test_synapses_see_their_post_neuron():
    """post_feedback (default for ENU cells): the synapse cells' feedback input is the post neuron's
    output, the IR export says so, and it changes behaviour; fused and unfused paths agree."""
    from plastix.ir import GatedSynapse

    spec, own = NetworkSpec("enu"), NetworkSpec("enu", post_feedback=False)
    assert spec.synapses_see_post and not own.synapses_see_post and not NetworkSpec("gru").synapses_see_post
    g = spec.to_graph(_population(spec, 1)[0].numpy())
    assert all(isinstance(p.rule, GatedSynapse) and p.rule.post_feedback for p in g.projections)
    pop = _population(spec, 3)
    cfg = task_config("tmaze", "quick", steps=20, num_envs=2)

    def motor(sp, fused=True):  # motor activity over 30 network steps of the same episode
        task = make_task("tmaze", cfg, population=3)
        obs, _ = task.reset(seed=2)
        model = sp.population_model(pop, fused=fused)
        state = model.init_state(task.num_envs, torch.Generator().manual_seed(2))
        acts = []
        for _ in range(30):
            act, state = model.act(obs, state)
            acts.append(act.clone())
            obs, *_ = task.step(act)
        return torch.stack(acts)

    a = motor(spec)
    assert torch.allclose(a, motor(spec, fused=False), atol=1e-4)
    assert not torch.allclose(a, motor(own), atol=1e-4)


def test_cli_evaluates_a_tmaze_network(tmp_path):
    import json

    from typer.testing import CliRunner

    from plastix.cli import app

    spec = NetworkSpec("gru")
    genome = _population(spec, 1, seed=1)[0] * 3.0
    path = save(spec.to_graph(genome.numpy(), metadata={"task": "tmaze", "config": "quick"}), tmp_path / "m.plx")
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(path), "--episodes", "6", "--seed", "2", "--json", "--render",
                              str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    task = make_task("tmaze", task_config("tmaze", "quick", num_envs=6), population=1)
    expected = rollout(spec, genome[None], task, seed=2)["returns"][0]
    assert out["mean_return"] == pytest.approx(float(expected.mean()))
    assert out["foods_per_episode"] - out["poisons_per_episode"] == pytest.approx(out["mean_return"])
    assert (tmp_path / "r" / "episode.gif").exists() and out["config"] == "quick"
    res = runner.invoke(app, ["evaluate", str(path), "--task-config", "navigate", "--episodes", "2", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["config"] == "navigate"
    res = runner.invoke(app, ["evaluate", str(path), "--by-assignment", "--episodes", "72", "--json"])
    out = json.loads(res.output)
    rows = out["by_assignment"]
    task = make_task("tmaze", task_config("tmaze", "quick", num_envs=72, stratify=True), population=1)
    per = rollout(spec, genome[None], task, seed=1)["returns"][0].reshape(2, 36).mean(0)  # env e: assignment e % 36
    assert len({(r["inputs"], r["outputs"]) for r in rows}) == 36 and out["episodes"] == 72
    assert sorted(r["mean_return"] for r in rows) == pytest.approx(sorted(per.tolist()))
    assert [r["mean_return"] for r in rows] == sorted((r["mean_return"] for r in rows), reverse=True)
    assert {"inputs": "WGR", "outputs": "FLR", "mean_return": pytest.approx(float(per[0]))} in rows  # identity first
    res = runner.invoke(app, ["evaluate", str(path), "--by-assignment", "--plot", str(tmp_path / "map.png")])
    assert res.exit_code == 0 and "72 episodes" in res.output and res.output.count("\n  inputs ") == 36, res.output
    assert (tmp_path / "map.png").stat().st_size > 1000                   # default 72 episodes; a heat map
    res = runner.invoke(app, ["evaluate", str(path), "--task-config", "shuffle_outputs", "--json"])  # stratified preset
    assert res.exit_code == 0 and json.loads(res.output)["episodes"] == 66, res.output  # 64 -> a multiple of 6
    for bad in (["--cues", "3"], ["--backend", "lava"], ["--task-config", "nope"], ["--by-assignment", "--episodes", "8"],
                ["--plot", str(tmp_path / "p.png")]):
        res = runner.invoke(app, ["evaluate", str(path), *bad])
        assert res.exit_code != 0 and "Traceback" not in res.output, res.output


@pytest.mark.parametrize("kind", ["enu", "gru"])
def test_motors_differ_in_a_symmetric_situation_only_through_the_initial_noise(kind):
    """The wiring is invariant under rotating sensor, hidden and motor indices together and every neuron is the
    same cell (docs/results.md, thirteenth session): with all sensors equal the three motors are equal, unless the
    initial output noise (ENU cells only) tells them apart."""
    quiet = NetworkSpec(kind, init_noise=0.0)
    genome = 2 * quiet.init_genome(torch.Generator().manual_seed(3))

    def motors(spec):
        model = spec.population_model(genome[None], fused=False)
        state = model.init_state(2, torch.Generator().manual_seed(1))
        obs = torch.zeros(1, 2, 5)
        obs[0, 1, :3] = 1.0      # env 1: every sensor on (still symmetric)
        obs[0, 1, 3] = 1.0       # and a reward
        for _ in range(30):
            out, state = model.act(obs, state)
        return out[0]

    out = motors(quiet)
    torch.testing.assert_close(out[:, 0], out[:, 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, 1], out[:, 2], rtol=0, atol=1e-6)
    if kind == "enu":
        noisy = motors(NetworkSpec(kind, init_noise=0.1))
        assert (noisy.max(-1).values - noisy.min(-1).values).max() > 1e-3


@pytest.mark.parametrize("kind", ["enu", "sharedenu"])
def test_memory_gain_is_added_once_per_cell_genome(kind):
    """A shared genome (one ENU serving synapses and neurons) gets the gain once, not once per role."""
    spec = NetworkSpec(kind)
    before = spec.init_genome(torch.Generator().manual_seed(0))
    after = before.clone()
    add_memory_gain(spec, after, 0.5)
    cs, m = spec.cell, spec.cell.memory
    parts = spec.split(after - before)[:1] if spec.shared else spec.split(after - before)
    for diff in parts:
        assert torch.allclose(cs.unflatten(diff)["w_c"][:, :m], 0.5 * torch.eye(m))
    assert float((after - before).sum()) == pytest.approx(0.5 * m * len(parts), rel=1e-5)



@pytest.mark.parametrize("kind,fused", [("enu", True), ("enu", False), ("gru", False)])
def test_rotating_inputs_and_motors_together_leaves_a_network_unchanged(kind, fused):
    """The ring wiring with shared cells is equivariant to rotating inputs, hidden neurons and motors together:
    from the zero state, an env whose input k shows what input k + s shows in another env drives motor k as that
    env drives motor k + s (why the ``reduced_s12`` preset's two input orders stand for all six)."""
    spec = NetworkSpec(kind)
    population = _population(spec, 2, seed=3)
    if kind == "enu":                                                      # and a trained one
        population[1] = genome_from_graph(spec, load(SHIPPED_M2))
    model = spec.population_model(population, fused=fused)
    state = model.init_state(3)                                            # no generator: o_0 = 0
    g = torch.Generator().manual_seed(1)
    rot = [torch.tensor([(k + s) % 3 for k in range(3)]) for s in range(3)]
    spread = 0.0
    for t in range(12):
        obs = torch.cat([torch.rand(1, 1, 3, generator=g).round(), torch.rand(1, 1, 2, generator=g).round()], -1)
        obs = torch.cat([torch.cat([obs[..., r], obs[..., 3:]], -1) for r in rot], dim=1)   # env s: rotated by s
        motors, state = model.act(obs, state)
        for s in (1, 2):
            assert torch.allclose(motors[:, s], motors[:, 0, rot[s]], atol=1e-6)
        spread = max(spread, float((motors[:, 0] - motors[:, 0].mean(-1, keepdim=True)).abs().max()))
    assert spread > 1e-3                                                   # the motors do differ


def test_cli_sigma_overrides_the_presets_noise(tmp_path):
    import json

    from typer.testing import CliRunner

    from plastix.cli import app

    runner = CliRunner()
    out = tmp_path / "tm"
    res = runner.invoke(app, ["train", "tmaze", "--method", "es", "--steps", "1", "--sigma", "0.03", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["es"]["sigma"] == 0.03      # the preset's is 0.02
    res = runner.invoke(app, ["train", "tmaze", "--method", "es", "--sigma", "0", "--out", str(tmp_path / "z")])
    assert res.exit_code != 0 and "sigma" in res.output
    res = runner.invoke(app, ["train", "one_shot_cue", "--method", "bptt", "--sigma", "0.1",
                              "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "sigma" in res.output
