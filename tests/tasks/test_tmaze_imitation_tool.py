"""tools/tmaze_imitation.py: its episodes are the ES rollout's and the scripted learner's, and a few DAgger steps run."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from plastix.ir import load
from plastix.tasks.registry import task_config
from plastix.tasks.tmaze import TMaze, TMazeConfig
from plastix.tasks.tmaze_scripted import play
from plastix.trainer.algorithms.es_eval import rollout
from plastix.trainer.experiments.enu_net import add_memory_gain, genome_from_graph

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("tmaze_imitation", ROOT / "tools" / "tmaze_imitation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_network_student_alone_scores_what_the_es_rollout_scores(tool):
    student = tool.Network("enu", 4.0, 0)
    genome = genome_from_graph(student.spec, load(ROOT / "docs" / "tmaze_runs" / "fixed_io_enu_s0" / "model.plx"))
    student.genome.data.copy_(genome)
    mine = tool.episode(student, envs=36, steps=60, seed=1, beta=0.0, train=False)["return"]
    ref = rollout(student.spec, genome[None], TMaze(TMazeConfig(num_envs=36, stratify=True, steps=60), population=1),
                  seed=1)["returns"]
    assert mine == pytest.approx(float(ref.mean()), abs=1e-4) and float(ref.abs().sum()) > 0


@pytest.mark.parametrize("make, preset", [(lambda t: t.Network("gru", 4.0, 0), "reduced"),
                                          (lambda t: t.PlainGRU(8, 0), "reduced"),
                                          (lambda t: t.PlainGRU(8, 0), "fixed_io")])
def test_a_student_that_always_follows_scores_what_the_teacher_scores(tool, make, preset):
    student = make(tool)
    mine = tool.episode(student, envs=36, steps=40, seed=3, beta=1.0, train=False, preset=preset)
    base = task_config("tmaze", preset)
    cfg = replace(base, num_envs=36, stratify=bool(base.shuffle), steps=40)
    total, _ = play(TMaze(cfg, population=1), 3)
    assert mine["return"] == pytest.approx(float(total.mean())) and mine["return"] > 0


def test_dagger_steps_run_and_log(tool):
    lines = []
    hist = tool.imitate(tool.PlainGRU(8, 0), iters=2, envs=36, steps=8, lr=1e-2, beta_iters=1, eval_every=10,
                        log=lines.append)
    assert [h["iteration"] for h in hist] == [1, 2] and hist[0]["beta"] == 1.0 and hist[1]["beta"] == 0.0
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist) and "eval" in hist[-1] and len(lines) == 1


def test_the_circulant_readout_rotates_with_the_network_and_the_linear_one_does_not(tool):
    neurons = torch.randn(5, 6, 16)
    rot = [1, 2, 0, 4, 5, 3]               # hidden i -> i + 1, motor j -> j + 1 (the network's symmetry)
    turned = torch.empty_like(neurons)
    turned[:, rot] = neurons
    for readout, rotates in (("circulant", True), ("linear", False)):
        student = tool.Network("enu", 4.0, 0, readout=readout)
        a = student.logits_of(None, neurons)
        b = student.logits_of(None, turned)
        assert torch.allclose(b[:, [1, 2, 0]], a, atol=1e-5) == rotates
    with pytest.raises(ValueError, match="readout"):
        tool.Network("enu", 4.0, 0, readout="softmax")


@pytest.mark.parametrize("readout", ["motor0", "linear"])
def test_a_framed_teacher_follows_the_students_first_press(tool, readout):
    """With --teacher-frame every env's frame is the student's first press, and an always-following student still
    plays the (now equivariant) teacher well; a DAgger step on it gives a finite loss."""
    student = tool.Network("enu", 4.0, 0, readout=readout, teacher_frame=True)
    m = tool.episode(student, envs=36, steps=40, seed=3, beta=1.0, train=False)
    if readout == "linear":    # the linear readout always presses: every env has its frame after decision one
        assert bool((student.frame >= 0).all())
    assert m["return"] > 0
    hist = tool.imitate(student, iters=1, envs=36, steps=6, lr=1e-3, beta_iters=1, eval_every=10, log=lambda _: None)
    assert torch.isfinite(torch.tensor(hist[0]["loss"]))


def test_a_saved_student_loads_into_the_same_shape_only(tool, tmp_path):
    """--save-state / --load-state carry a student between curriculum stages, readout included; a student of another
    shape is refused with a clear message, not half-loaded."""
    a = tool.Network("enu", 4.0, 0, readout="linear")
    tool.save_student(a, str(tmp_path / "a.pt"))
    b = tool.Network("enu", 4.0, 7, readout="linear")
    assert not torch.equal(a.w_read, b.w_read)
    tool.load_student(b, str(tmp_path / "a.pt"))
    assert torch.equal(a.w_read, b.w_read) and torch.equal(a.genome, b.genome)
    with pytest.raises(SystemExit, match="does not fit"):
        tool.load_student(tool.Network("enu", 4.0, 0, readout="circulant"), str(tmp_path / "a.pt"))
    with pytest.raises(SystemExit, match="PlainGRU"):
        tool.load_student(tool.PlainGRU(8, 0), str(tmp_path / "a.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable plastix checkpoint"):
        tool.load_student(b, str(tmp_path / "junk.pt"))


def test_motor_channels_at_full_mix_is_the_papers_readout(tool):
    """Annealed to mix 1 the motor_channels student acts and scores exactly as the paper's motor0 network."""
    a, b = tool.Network("enu", 4.0, 0), tool.Network("enu", 4.0, 0, readout="motor_channels")
    genome = genome_from_graph(a.spec, load(ROOT / "docs" / "tmaze_runs" / "fixed_io_enu_s0" / "model.plx"))
    a.genome.data.copy_(genome)
    b.genome.data.copy_(genome)
    b.mix = 1.0
    ra = tool.episode(a, envs=36, steps=30, seed=2, beta=0.0, train=False, preset="fixed_io")
    rb = tool.episode(b, envs=36, steps=30, seed=2, beta=0.0, train=False, preset="fixed_io")
    assert ra["return"] == rb["return"] and ra["agreement"] == rb["agreement"] and ra["return"] != 0
    b.mix = 0.0
    mixed = tool.episode(b, envs=36, steps=30, seed=2, beta=0.0, train=False, preset="fixed_io")
    assert mixed["return"] != ra["return"]


def test_the_surrogate_pushes_a_silent_motor_and_changes_no_forward_value(tool):
    """Where the clamp holds a motor at 0 the exact gradient is 0; the surrogate's is not, and values are equal."""
    grads, values = [], []
    for sur in (0.0, 1.0):
        s = tool.Network("enu", 4.0, 0, surrogate=sur)
        state = s.start(4, 0)
        obs = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(0))
        out, state = s.model.act(obs, state)
        m = s.motor0(out[0], state)
        values.append(m.detach())
        assert bool((m == 0).any())                       # some motor is silent at the initial genome
        (g,) = torch.autograd.grad(m.sum(), s.genome, allow_unused=True)
        grads.append(0.0 if g is None else float(g.abs().sum()))
    assert torch.equal(values[0], values[1]) and grads[1] > grads[0]
    with pytest.raises(ValueError, match="surrogate"):
        tool.Network("enu", 4.0, 0, readout="linear", surrogate=1.0)


def test_keep_best_ends_on_the_best_evaluation(tool, monkeypatch):
    """--keep-best: the student ends with the weights of its best evaluation (ties: the later), and says which."""
    scores = iter([3.0, 7.0, 5.0])
    monkeypatch.setattr(tool, "evaluate", lambda student, preset: next(scores))
    student = tool.PlainGRU(8, 0)
    snapshots = []
    hist = tool.imitate(student, iters=3, envs=36, steps=4, lr=1e-2, beta_iters=1, eval_every=1, keep_best=True,
                        lr_min_frac=0.1, log=lambda _: snapshots.append(
                            {k: v.clone() for k, v in student.state_dict().items()}))
    assert hist[-1]["kept_iteration"] == 2
    assert all(torch.equal(v, snapshots[1][k]) for k, v in student.state_dict().items())
    assert not all(torch.equal(v, snapshots[2][k]) for k, v in student.state_dict().items())


def test_two_presets_alternate_by_iteration(tool, monkeypatch):
    """--task-config A,B trains on A and B in turn (rehearsal) and evaluates on B by default."""
    seen, evals = [], []
    real = tool.episode
    monkeypatch.setattr(tool, "episode", lambda *a, **k: (seen.append(k["preset"]), real(*a, **k))[1])
    monkeypatch.setattr(tool, "evaluate", lambda student, preset: (evals.append(preset), 0.0)[1])
    tool.imitate(tool.PlainGRU(8, 0), iters=3, envs=36, steps=4, lr=1e-2, beta_iters=1, eval_every=10,
                 preset="fixed_io,shuffle_outputs", log=lambda _: None)
    assert seen == ["fixed_io", "shuffle_outputs", "fixed_io"] and evals == ["shuffle_outputs"]


@pytest.mark.parametrize("anneal, mixes, kept", [((1, 3), [0.0, 0.0, 0.5, 1.0], 4), ((2, 2), [0.0, 0.0, 1.0, 1.0], 3)])
def test_the_anneal_schedule_and_keep_best_counts_only_the_papers_readout(tool, monkeypatch, anneal, mixes, kept):
    """mix rises linearly from iteration a to b (a == b: a step); --keep-best then keeps only evaluations at mix 1,
    whose weights a .plx can hold, even when an earlier mixed readout evaluated better."""
    student = tool.Network("enu", 4.0, 0, readout="motor_channels")
    seen, scores = [], iter([9.0, 8.0, 3.0, 2.0])
    monkeypatch.setattr(tool, "episode", lambda s, **k: (seen.append(s.mix), {
        "loss": (s.genome * 0).sum() + s.w_read.sum(), "agreement": 0.0, "return": 0.0})[1])
    monkeypatch.setattr(tool, "evaluate", lambda s, preset: next(scores))
    hist = tool.imitate(student, iters=4, envs=36, steps=4, lr=1e-3, beta_iters=1, eval_every=1, anneal=anneal,
                        keep_best=True, log=lambda _: None)
    assert seen == pytest.approx(mixes)
    assert hist[-1]["kept_iteration"] == kept


def test_memory_gain_adds_identity_to_the_candidate_memory_block_of_both_cells(tool):
    student = tool.Network("enu", 4.0, 0)
    before = student.genome.detach().clone()
    add_memory_gain(student.spec, student.genome.data, 1.0)
    cs = student.spec.cell
    for old, new in zip(student.spec.split(before), student.spec.split(student.genome.detach())):
        d = {k: cs.unflatten(new)[k] - cs.unflatten(old)[k] for k in ("w_z", "w_r", "w_c", "w_o")}
        assert torch.allclose(d["w_c"][:, :cs.memory], torch.eye(cs.memory))
        assert all(float(v.abs().max()) == 0 for k, v in d.items() if k != "w_c")
        assert float(d["w_c"][:, cs.memory:].abs().max()) == 0
    # the point of it: a pulse is still felt 92 network steps later (at the plain initial genome it is gone)
    spec = importlib.util.spec_from_file_location("enu_pulse_memory", ROOT / "tools" / "enu_pulse_memory.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    (with_gain,), (plain,) = (probe.pulse_memory(student.spec, g, (92,)) for g in (student.genome.detach(), before))
    assert with_gain > 1e-3 > 1e3 * plain
    with pytest.raises(ValueError, match="only for ENU"):
        gru = tool.Network("gru", 4.0, 0)
        add_memory_gain(gru.spec, gru.genome.data, 1.0)


def test_sure_labels_accept_the_teachers_motor_and_its_equals(tool):
    student = tool.Network("enu", 4.0, 0, surrogate=1.0)
    student.genome.data.copy_(genome_from_graph(student.spec, load(ROOT / "docs" / "tmaze_runs" / "fixed_io_enu_s0" /
                                                                    "model.plx")))
    # teacher-forced, so both runs see the same decisions: every label set holds the teacher's motor, some more
    run = {labels: tool.episode(student, envs=36, steps=40, seed=2, beta=1.0, train=False, labels=labels)
           for labels in ("teacher", "sure")}
    assert run["sure"]["return"] == run["teacher"]["return"]
    assert float(run["sure"]["loss"]) < float(run["teacher"]["loss"])
    assert run["sure"]["agreement"] > run["teacher"]["agreement"]
    with pytest.raises(ValueError, match="labels"):
        tool.episode(student, envs=36, steps=2, seed=2, beta=1.0, train=False, labels="union")
