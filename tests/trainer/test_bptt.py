"""BPTT meta-learning: losses, a tiny config whose loss decreases, resume after a kill, export."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import plastix.ir as ir
from plastix.trainer.experiments.bptt import BPTTConfig, BPTTJob, accuracy
from plastix.trainer.algorithms.gradient import bce_loss, rate_penalty, reinforce_loss
from plastix.trainer.experiments.bptt_run import train_bptt

TINY = BPTTConfig(iterations=4, batch=4, n_cues=1, n_hidden=8, n_mod=8, eval_problems=8, eval_every=2, lr=5e-3,
                  timing=(6, 4, 6, 4))


def test_bce_loss_matches_hand_computation():
    act = torch.tensor([[3.0, 1.0]])
    loss = bce_loss(act, torch.tensor([0]), torch.tensor(1.0), torch.tensor(-2.0))
    p = torch.sigmoid(torch.tensor([1.0, -1.0]))
    assert torch.isclose(loss, -(torch.log(p[0]) + torch.log(1 - p[1])))


def test_rate_penalty_is_a_floor_that_punishes_silence():
    assert rate_penalty(torch.tensor([[2.0, 2.0]]), 40, 0.05) == 0
    assert rate_penalty(torch.tensor([[20.0, 8.0]]), 40, 0.05) == 0  # above the floor: free
    assert rate_penalty(torch.zeros(3, 2), 40, 0.05) == pytest.approx(0.05 ** 2)


def test_accuracy_counts_ties_as_wrong():
    act = torch.tensor([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    assert accuracy(act, torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)


def test_reinforce_advantage_has_no_gradient():
    logp = torch.tensor([-0.5, -1.0], requires_grad=True)
    r = torch.tensor([1.0, 0.0], requires_grad=True)
    reinforce_loss(logp, r, torch.tensor(0.5)).backward()
    assert torch.allclose(logp.grad, torch.tensor([-0.25, 0.25])) and r.grad is None


def test_loss_decreases_on_a_fixed_batch():
    """The outer loop learns through the network: with the readout frozen (so that fitting its
    offset alone cannot lower the loss), repeated steps on the same problems lower the meta-loss."""
    job = BPTTJob(dataclasses.replace(TINY, eval_every=10_000, lr=0.01, readout="trial"))
    state = job.init_state()
    state.model.gain.requires_grad_(False)
    state.model.offset.requires_grad_(False)
    state.optimizer = torch.optim.Adam(state.model.param_groups())
    losses = []
    for i in range(10):
        state.generator.manual_seed(7)  # same batch every time
        state, m = job.step(state, i)
        losses.append(m["loss"])
    assert min(losses[-3:]) < losses[0] - 0.3, losses


def test_gradients_reach_rule_coefficients_and_modulator():
    job = BPTTJob(TINY)
    state = job.init_state()
    state, _ = job.step(state, 0)
    grads = {n: p.grad for n, p in state.model.net.named_parameters() if p.requires_grad}
    assert grads["params.cues_to_hidden/rule/base/base/eta_plus"].abs().sum() > 0
    assert grads["params.dopamine/weight"].abs().sum() > 0


TINY_KW = dict(batch=4, n_cues=1, n_hidden=8, n_mod=8, eval_problems=8, eval_every=2, progress=False,
               checkpoint_every=1, timing=(6, 4, 6, 4))


def _params(path):
    g = ir.load(path)
    return {p.name: p.weight for p in g.projections}, g


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    """SIGKILL a training process mid-run, resume with resume=True: same result as never killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = train_bptt("one_shot_cue", "quick", tmp_path / "ref", iterations=6, **TINY_KW)
        code = ("import torch, time; torch.set_num_threads(1)\n"
                "import plastix.trainer.experiments.bptt as b\n"
                "orig = b.BPTTJob.step\n"
                "def slow(self, s, i):\n    time.sleep(0.3); return orig(self, s, i)\n"
                "b.BPTTJob.step = slow\n"
                "from plastix.trainer.experiments.bptt_run import train_bptt\n"
                f"train_bptt('one_shot_cue', 'quick', {str(tmp_path / 'run')!r}, iterations=6, **{TINY_KW!r})\n")
        proc = subprocess.Popen([sys.executable, "-c", code])
        log = tmp_path / "run" / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(log.read_text().splitlines()) < 6, "the run finished before it was killed"
        res = train_bptt("one_shot_cue", "quick", tmp_path / "run", iterations=6, resume=True, **TINY_KW)
        assert res["resumed_from"] is not None and res["resumed_from"] >= 2
        (wa, ga), (wb, gb) = _params(ref["model"]), _params(res["model"])
        assert all(np.array_equal(wa[k], wb[k]) for k in wa)
        assert ga == gb
    finally:
        torch.set_num_threads(torch_threads)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="readout"):
        BPTTConfig(readout="membrane")
    with pytest.raises(ValueError, match="timing"):
        BPTTConfig(timing=(10, 10, 0, 10))
    with pytest.raises(ValueError, match="rule"):
        BPTTJob(dataclasses.replace(TINY, rule="hebb")).init_state()


@pytest.mark.parametrize("rule", ["eligibility_pair", "eligibility_triplet", "pair", "triplet"])
@pytest.mark.parametrize("modulation", ["per_pre", "per_post"])
def test_rule_variants_train(rule, modulation):
    """Every paper rule variant builds, runs a short episode and gets gradients on its rates and modulator."""
    cfg = dataclasses.replace(TINY, rule=rule, modulation=modulation, timing=(4, 2, 4, 3), readout="trial")
    job = BPTTJob(cfg)
    state = job.init_state()
    kinds = [p.rule.base.kind for p in state.model.to_graph().plastic_projections]
    assert kinds == [("eligibility" if rule.startswith("eligibility") else rule + "_stdp")]
    state, m = job.step(state, 0)
    grads = {n: p.grad for n, p in state.model.net.named_parameters() if p.grad is not None}
    eta = next(v for k, v in grads.items() if k.endswith("eta_plus"))
    assert eta.abs().sum() > 0 and grads["params.dopamine/weight"].abs().sum() > 0


def test_stdp_rates_get_the_scaled_learning_rate():
    cfg = dataclasses.replace(TINY, lr=1e-3, rule_lr=0.05, readout_lr=4.0)
    groups = BPTTJob(cfg).init_state().optimizer.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 4e-3, 5e-5])
    assert [len(g["params"]) for g in groups][1:] == [2, 2]  # gain, offset; eta_plus, eta_minus


def test_neuron_constants_get_their_own_learning_rate_and_the_hidden_bias_its_start():
    """train_neurons with neuron_lr: the hidden/action bias, thresholds and decays learn at lr * neuron_lr
    (the biases alone at lr * bias_lr if given);
    the memoryless NM neurons of nm_inputs='signal_fast' stay fixed; hidden_bias sets the start."""
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", train_neurons=True, neuron_lr=20.0, lr=1e-3, hidden_bias=-0.1, nm_inputs="signal_fast")
    assert float(build_graph(cfg).population("hidden").bias) == pytest.approx(-0.1)
    state = BPTTJob(cfg).init_state()
    groups = state.optimizer.param_groups
    neuron = [g for g in groups if g["lr"] == pytest.approx(2e-2)]
    assert len(neuron) == 1 and len(neuron[0]["params"]) == 8  # du, dv, vth, bias of hidden and action
    names = {id(p): n for n, p in state.model.net.params.items()}
    assert {names[id(p)].split("/")[0] for p in neuron[0]["params"]} == {"hidden", "action"}
    assert not any(p.requires_grad for n, p in state.model.net.params.items() if n.split("/")[0] in ("nm1", "nm2")
                   and n.rsplit("/", 1)[-1] in ("du", "dv", "vth", "bias"))
    state, _ = BPTTJob(cfg).step(state, 0)
    assert float(state.model.net.params["hidden/bias"]) != pytest.approx(-0.1)  # it learns
    biases = BPTTJob(bptt_config("quick", train_neurons=True, bias_lr=10.0, lr=1e-3,
                                              nm_inputs="signal_fast")).init_state()
    names = {id(p): n for n, p in biases.model.net.params.items()}
    fast = [g for g in biases.optimizer.param_groups if any(names.get(id(p)) == "hidden/bias" for p in g["params"])]
    assert fast[0]["lr"] == pytest.approx(1e-2)
    assert {names[id(p)] for p in fast[0]["params"]} == {"hidden/bias", "action/bias"}
    storing = bptt_config("paper_storing")  # the preset of the best storing run
    assert (storing.nm_inputs, storing.train_neurons, storing.modulation) == ("signal_fast", True, "per_post")
    with pytest.raises(ValueError, match="hidden_bias"):
        bptt_config("quick", hidden_bias=-0.1, init="model.plx")
    with pytest.raises(ValueError, match="neuron_lr"):
        bptt_config("quick", neuron_lr=0.0)
    with pytest.raises(ValueError, match="bias_lr"):
        bptt_config("quick", bias_lr=-1.0)


def test_hidden_floor_keeps_every_hidden_neuron_firing(monkeypatch):
    """hidden_floor: each hidden neuron's mean rate is held above the floor by the rate penalty (weight
    rate_reg), so a fast-learnt negative hidden bias cannot silence the layer; it needs rate_reg."""
    import plastix.trainer.experiments.bptt as bptt
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", train_neurons=True, neuron_lr=50.0, hidden_bias=-3.0, hidden_floor=0.2)
    seen = []
    monkeypatch.setattr(bptt, "rate_penalty", lambda a, steps, target: seen.append((tuple(a.shape), target))
                        or rate_penalty(a, steps, target))
    job = BPTTJob(cfg)
    state = job.init_state()
    for i in range(3):
        state, _ = job.step(state, i)
    assert ((cfg.n_hidden,), 0.2) in seen  # the floor sees one rate per hidden neuron
    assert float(state.model.net.params["hidden/bias"]) > -3.0 + 0.05  # pushed up out of silence
    with pytest.raises(ValueError, match="hidden_floor"):
        bptt_config("quick", hidden_floor=0.1, rate_reg=0.0)
    with pytest.raises(ValueError, match="hidden_floor"):
        bptt_config("quick", hidden_floor=-0.1)


def test_a_signal_fast_model_given_by_init_keeps_its_nm_weights(tmp_path):
    """signal_driven_nm is idempotent: continuing a signal_fast model (--init) must not scale its
    nm1 -> nm2 weights by the fast gain a second time."""
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    first = build_graph(bptt_config("quick", nm_inputs="signal_fast"))
    ir.save(first, tmp_path / "m.plx")
    again = build_graph(bptt_config("quick", nm_inputs="signal_fast", init=str(tmp_path / "m.plx")))
    w = [np.asarray(g.projection("nm1_to_nm2").weight) for g in (first, again)]
    assert np.array_equal(w[0], w[1]) and np.abs(w[0]).max() > 0


def test_stdp_trace_selects_the_saturating_traces_of_eq_10():
    """stdp_trace='saturating' builds the plastic rule with eq. 10 traces (a spike sets the trace to ~1);
    the paper_storing_sat preset uses it with a slow post trace; unknown kinds are clear errors."""
    from plastix.ir.rules import TraceKind
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    stdp = lambda cfg: build_graph(cfg).projection("cues_to_hidden").rule.base.base
    assert stdp(bptt_config("quick")).trace is TraceKind.LINEAR
    sat = stdp(bptt_config("paper_storing_sat"))
    assert (sat.trace, sat.decay_post, sat.beta, sat.x_max) == (TraceKind.SATURATING, 0.995, 1.0, 1.0)
    with pytest.raises(ValueError, match="stdp_trace"):
        bptt_config("quick", stdp_trace="quadratic")


def test_trial_readout_learns_the_unpermuted_task():
    """Sanity check of the whole gradient path: without the permutation the cue -> action map is fixed,
    so a plain network must learn it within a few iterations (the readout counts the whole test trial)."""
    cfg = dataclasses.replace(TINY, permute=False, readout="trial", timing=(6, 4, 6, 4), batch=16, lr=0.01,
                              n_hidden=16, n_mod=8, eval_every=10_000)
    job = BPTTJob(cfg)
    state = job.init_state()
    losses = []
    for i in range(40):
        state, m = job.step(state, i)
        losses.append(m["loss"])
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3, losses
    ev = __import__("plastix.trainer.experiments.bptt", fromlist=["evaluate"]).evaluate(state.model, 64, n_cues=1, seed=3)
    assert ev["accuracy"] > 0.8, ev


def test_resume_with_a_larger_budget_extends_the_run(tmp_path):
    """The checkpoint does not pin the iteration budget: resuming with more iterations continues."""
    first = train_bptt("one_shot_cue", "quick", tmp_path / "run", iterations=2, **TINY_KW)
    more = train_bptt("one_shot_cue", "quick", tmp_path / "run", iterations=4, resume=True, **TINY_KW)
    assert first["iterations"] == 2 and more["resumed_from"] == 2 and more["iterations"] == 4
    best = ir.load(tmp_path / "run" / "best.plx")  # the model at the peak of test_accuracy, a usable cue model
    assert best.metadata["trainer"] == "bptt" and best.metadata["n_cues"] == 1 and best.metadata["task"] == "one_shot_cue"
    with pytest.raises(ValueError, match="another config"):
        train_bptt("one_shot_cue", "quick", tmp_path / "run", iterations=5, resume=True, **{**TINY_KW, "batch": 5})


def test_a_checkpoint_from_before_a_new_setting_resumes_at_its_default():
    """A run checkpointed before a config field existed resumes when the field is at its default
    (the old run ran with that behaviour), and not when it is set otherwise; the error names the field."""
    from plastix.trainer.runner import config_changes

    job = BPTTJob(TINY)
    now = json.loads(json.dumps(job.config()))
    old = {k: v for k, v in now.items() if k != "trace_impulse"}
    assert config_changes(old, now, job.config_defaults()) == {}
    changed = config_changes(old, {**now, "trace_impulse": 16.0}, job.config_defaults())
    assert changed == {"trace_impulse": ("(absent)", 16.0)}
    assert config_changes({**old, "batch": 3}, now, job.config_defaults())["batch"] == (3, now["batch"])


def test_curriculum_trains_at_fewer_cues_first():
    cfg = dataclasses.replace(TINY, n_cues=5, curriculum=((0, 1), (3, 3), (5, 5)))
    assert [cfg.cues_at(i) for i in range(7)] == [1, 1, 1, 3, 3, 5, 5]
    with pytest.raises(ValueError, match="curriculum"):
        BPTTConfig(curriculum=((5, 1), (2, 3)))
    job = BPTTJob(dataclasses.replace(cfg, timing=(4, 2, 4, 3), eval_every=10_000))
    state = job.init_state()
    _, m = job.step(state, 0)
    assert m["train_cues"] == 1


@pytest.mark.slow
def test_quick_config_loss_falls(tmp_path):
    """The meta-loss falls over a few dozen iterations of the quick config (no accuracy claim)."""
    torch.set_num_threads(1)
    res = train_bptt("one_shot_cue", "quick", tmp_path, iterations=48, progress=False, eval_every=1000)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert res["iterations"] == 48
    assert sum(losses[-12:]) / 12 < sum(losses[:12]) / 12 - 0.05, losses


def test_nm_memory_fires_only_after_a_feedback_and_gets_gradients():
    """The slow NM neurons (ir.examples.add_nm_memory) are silent until the first training trial's
    feedback, then fire tonically into the next trial; BPTT reaches their synapses."""
    from plastix.backends.torch import compile as compile_torch
    from plastix.ir.examples import add_nm_memory
    from plastix.tasks.cue_association import OneShotCueConfig, one_shot_cue_problems

    cfg = dataclasses.replace(TINY, nm_memory=6, nm_memory_du=0.002, timing=(6, 4, 6, 25))  # paper-length feedback
    from plastix.trainer.experiments.bptt import build_graph

    graph = build_graph(cfg)
    job = BPTTJob(cfg, graph)
    assert graph.population("nm_mem").size == 6
    net = compile_torch(graph.replace(outputs=("nm_mem",)))
    task = OneShotCueConfig(n_cues=1, cue_steps=6, rest_steps=4, delay_steps=6, decision_steps=25)
    pr = one_shot_cue_problems(4, task, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, _ = net.run({"cues": pr.cues, "learning_signal": pr.signal})
    mem = out["nm_mem"][:, 0].sum((1, 2))
    first = int(pr.signal.sum((1, 2)).nonzero()[0])
    assert mem[: first + 1].sum() == 0 and mem[first + 1:].sum() > 0
    state = job.init_state()
    state, _ = job.step(state, 0)
    grads = {n: p.grad for n, p in state.model.net.named_parameters() if p.requires_grad}
    assert grads["params.nm_mem_to_nm2/weight"].abs().sum() > 0
    assert grads["params.learning_signal_to_nm_mem/weight"].abs().sum() > 0
    with pytest.raises(ValueError, match="nm_mem"):
        add_nm_memory(graph, 3)


def test_consume_at_feedback_wires_a_fixed_reset_and_learns_c():
    """BPTTConfig.consume_at_feedback: the learning signal (a fixed |signal| modulator, the rule's
    consume_by) uses the trace up; c is learnt, the reset wire is not."""
    from plastix.trainer.experiments.bptt import FEEDBACK_RESET, build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", consume=0.2, consume_at_feedback=True, batch=4)
    g = build_graph(cfg)
    rule = next(p.rule for p in g.projections if p.rule is not None)
    assert rule.consume_by == FEEDBACK_RESET and ir.consumes(rule)
    assert g.modulator(FEEDBACK_RESET).source == "learning_signal"
    with pytest.raises(ValueError, match="consume > 0"):
        build_graph(bptt_config("quick", consume_at_feedback=True))
    job = BPTTJob(cfg)
    state = job.init_state()
    model = state.model
    wire = [p for n, p in model.net.params.items() if n.startswith(FEEDBACK_RESET + "/")]
    assert wire and not any(p.requires_grad for p in wire)
    before = float(model.reparam.log_consume.detach())
    state, _ = job.step(state, 0)
    assert float(model.reparam.log_consume.detach()) != before  # c moves with the loss
    assert all(torch.equal(p, torch.ones_like(p)) for n, p in model.net.params.items() if n == FEEDBACK_RESET + "/weight")


def test_signal_driven_nm_confines_plasticity_to_the_feedback():
    """BPTTConfig.nm_inputs='signal': the NM-SNN sees the learning signal alone and the modulator bias
    stays 0 through training, so M is exactly 0 once the NM-SNN has gone silent after the last
    feedback: the test trial cannot compute with plasticity."""
    import numpy as np

    from plastix.tasks.cue_association import one_shot_cue_problems
    from plastix.trainer.experiments.bptt import CueModel, build_graph, task_config
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", nm_inputs="signal", batch=4, timing=(6, 4, 40, 10))  # a long delay: the NM goes quiet
    g = build_graph(cfg)
    assert {(p.pre, p.post) for p in g.projections if p.post == "nm1"} == {("learning_signal", "nm1")}
    job = BPTTJob(cfg)
    state = job.init_state()
    state, _ = job.step(state, 0)
    model = state.model
    bias = model.net.params["dopamine/bias"]
    assert not bias.requires_grad and torch.equal(bias, torch.zeros_like(bias))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.net.params.items()
               if n.startswith("dopamine/weight"))  # the readout of the signal-driven NM still learns
    pr = one_shot_cue_problems(4, task_config(cfg), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs, _ = model.run(pr.cues, pr.signal)
        m = model.net.modulator_values("dopamine", outs["nm2"], params=model.overrides())[:, 0]
    t0 = int(pr.test.nonzero()[0])
    assert m[:t0].abs().sum() > 0 and torch.equal(m[t0 + 30:], torch.zeros_like(m[t0 + 30:]))
    # memoryless NM neurons: M follows the signal within 3 steps
    fast = build_graph(bptt_config("quick", nm_inputs="signal_fast"))
    assert all(np.all(np.asarray(p.du) == 1.0) and np.all(np.asarray(p.dv) == 1.0)
               for p in fast.populations if p.name in ("nm1", "nm2"))
    pr = one_shot_cue_problems(4, task_config(cfg), generator=torch.Generator().manual_seed(0))
    fm = CueModel(fast, cfg)
    with torch.no_grad():
        outs, _ = fm.run(pr.cues, pr.signal)
        mf = fm.net.modulator_values("dopamine", outs["nm2"], params=fm.overrides())[:, 0].abs().sum((1, 2, 3))
    on = (pr.signal.sum(-1) > 0).any(1)
    near = on.clone()
    for k in range(1, 4):  # the 3-step lag: signal -> nm1 -> nm2 -> M
        near[k:] |= on[:-k]
    assert mf[on].sum() > 0 and torch.equal(mf[~near], torch.zeros_like(mf[~near]))
    with pytest.raises(ValueError, match="nm_memory"):
        bptt_config("quick", nm_inputs="signal", nm_memory=4)
    with pytest.raises(ValueError, match="unknown nm_inputs"):
        bptt_config("quick", nm_inputs="cues")


def test_frozen_test_accuracy_silences_only_the_test_trial():
    """diagnostics' accuracy_frozen_test: M = 0 from the test trial's first step. Equal to the plain
    accuracy for a net without modulation; for a net whose plasticity acts during the test trial the
    test-trial spikes change."""
    import numpy as np

    from plastix.tasks.cue_association import one_shot_cue_problems
    from plastix.trainer.experiments.bptt import CueModel, build_graph, frozen_test_accuracy, task_config
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", batch=4)
    pr = one_shot_cue_problems(64, task_config(cfg), generator=torch.Generator().manual_seed(2))
    g = build_graph(cfg)
    silent = g.replace(modulators=tuple(m.replace(weight=np.zeros_like(np.asarray(m.weight))) for m in g.modulators))
    model = CueModel(silent, cfg)
    with torch.no_grad():
        counts = model(pr.cues, pr.signal, model.window(pr))
    assert frozen_test_accuracy(model, pr) == pytest.approx(float(accuracy(counts, pr.test_labels)))
    # a strongly modulated net: silencing the test trial changes its answers' spike counts
    loud = g.replace(modulators=tuple(m.replace(weight=np.asarray(m.weight) * 50.0) for m in g.modulators))
    model = CueModel(loud, cfg)
    t0 = int(pr.test.nonzero()[0])
    with torch.no_grad():
        _, s = model.net.run({"cues": pr.cues[:t0], "learning_signal": pr.signal[:t0]})
        a, _ = model.net.run({"cues": pr.cues[t0:], "learning_signal": pr.signal[t0:]}, s)
        zero = {k: torch.zeros((1, *v.shape)) for k, v in model.net.params.items() if k.startswith("dopamine/")}
        b, _ = model.net.run({"cues": pr.cues[t0:], "learning_signal": pr.signal[t0:]}, s, params=zero)
    window = model.window(pr)[t0:]
    plain, frozen = (float(accuracy(o["action"][:, 0][window].sum(0), pr.test_labels)) for o in (a, b))
    assert plain != frozen  # the test below can tell the two apart
    assert frozen_test_accuracy(model, pr) == pytest.approx(frozen)


def test_pooled_input_writes_against_the_inputs_and_keeps_its_sign_in_training(tmp_path):
    """BPTTConfig.pool (ir.examples.add_anti_hebbian_pool): pool neurons count every input; their plastic
    synapses onto the hidden layer start at 0 with the input rule's rates negated, so in one episode they
    write with the opposite sign of the inputs' mean write; log-space training keeps the rates negative;
    the model saves and loads with the pool."""
    from plastix.backends.torch import compile as compile_torch
    from plastix.ir.examples import add_anti_hebbian_pool
    from plastix.tasks.cue_association import OneShotCueConfig, one_shot_cue_problems
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", modulation="per_post", pool=4, batch=4, mod_scale=20.0)
    g = build_graph(cfg)
    pool = g.projection("pool_to_hidden")
    inp = g.projection("cues_to_hidden").rule.base.base
    assert g.population("pool").size == 4 and not np.asarray(pool.weight).any() and pool.sign is None
    assert np.all(np.asarray(pool.rule.base.base.eta_plus) < 0) and np.all(np.asarray(inp.eta_plus) > 0)
    np.testing.assert_allclose(-np.asarray(pool.rule.base.base.eta_plus)[:, 0], np.asarray(inp.eta_plus).mean(1))
    net = compile_torch(g.replace(outputs=("pool",)))
    pr = one_shot_cue_problems(8, OneShotCueConfig(n_cues=1, cue_steps=10, rest_steps=10, delay_steps=20,
                                                   decision_steps=10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, state = net.run({"cues": pr.cues, "learning_signal": pr.signal})
    assert 0.05 < float(out["pool"].mean()) < 0.95  # the pool neurons fire, below saturation
    dw_pool = state.projs["pool_to_hidden"].rule.w[0].mean(-1)
    dw_in = state.projs["cues_to_hidden"].rule.w[0] - net.params["cues_to_hidden/weight"]
    moved = dw_pool.abs() > 1e-9
    assert moved.any()
    agree = torch.sign(dw_pool[moved]) == torch.sign(dw_in.mean(-1)[moved])
    assert agree.float().mean() < 0.5  # mostly against the inputs' mean write
    job = BPTTJob(cfg)
    st = job.init_state()
    assert len(st.model.more_reparams) == 1
    for i in range(2):
        st, m = job.step(st, i)
    assert np.isfinite(m["loss"])
    ov = st.model.overrides()
    assert bool((ov["pool_to_hidden/rule/base/base/eta_plus"] < 0).all())
    assert bool((ov["cues_to_hidden/rule/base/base/eta_plus"] > 0).all())
    ir.save(st.model.to_graph(), tmp_path / "m.plx")
    assert ir.load(tmp_path / "m.plx").population("pool").size == 4
    with pytest.raises(ValueError, match="pool must be >= 0"):
        bptt_config("quick", pool=-1)
    with pytest.raises(ValueError, match="no 'pool'"):
        add_anti_hebbian_pool(g, 2)


def test_pool_under_per_pre_modulation_gets_its_own_signals(tmp_path):
    """Per-pre modulation (the paper's M_i) has one signal per input; the pool neurons get their own M_k from
    the same NM-SNN (modulator ``dopamine_pool``), each starting at the mean of the inputs' signals, and train."""
    from plastix.backends.torch import compile as compile_torch
    from plastix.tasks.cue_association import OneShotCueConfig, one_shot_cue_problems
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", modulation="per_pre", pool=4, batch=4, mod_scale=20.0)
    g = build_graph(cfg)
    m_in, m_pool = g.modulator("dopamine"), g.modulator("dopamine_pool")
    assert g.projection("pool_to_hidden").rule.modulator == "dopamine_pool"
    assert g.projection("cues_to_hidden").rule.modulator == "dopamine"
    assert (m_pool.size, m_pool.channels, m_pool.source) == (4, m_in.channels, m_in.source)
    w_in = np.asarray(m_in.weight).reshape(m_in.channels, m_in.size, -1)
    w_pool = np.asarray(m_pool.weight).reshape(m_pool.channels, 4, -1)
    np.testing.assert_allclose(w_pool, np.repeat(w_in.mean(1, keepdims=True), 4, axis=1))
    net = compile_torch(g.replace(outputs=("pool",)))
    pr = one_shot_cue_problems(4, OneShotCueConfig(n_cues=1, cue_steps=10, rest_steps=10, delay_steps=20,
                                                   decision_steps=10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, state = net.run({"cues": pr.cues, "learning_signal": pr.signal})
    assert state.projs["pool_to_hidden"].rule.w[0].abs().sum() > 0  # the pool's own signals drive its writes
    job = BPTTJob(cfg)
    st = job.init_state()
    for i in range(2):
        st, m = job.step(st, i)
    assert np.isfinite(m["loss"])
    assert bool((st.model.overrides()["pool_to_hidden/rule/base/base/eta_plus"] < 0).all())
    ir.save(st.model.to_graph(), tmp_path / "m.plx")
    assert ir.load(tmp_path / "m.plx").modulator("dopamine_pool").size == 4


def test_mixed_polarity_alternates_the_hidden_neurons_rate_signs_and_training_keeps_them():
    """BPTTConfig.mixed_polarity: every second hidden neuron's STDP rates start negated (a differential store under
    per-pre / global modulation); log-space training keeps each sign, the pool's rows write against their neuron's."""
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("quick", modulation="global", mixed_polarity=True, pool=2, batch=4, log_params=True)
    g = build_graph(cfg)
    sign = np.sign(np.asarray(g.projection("cues_to_hidden").rule.base.base.eta_plus))
    np.testing.assert_array_equal(sign[:, 0], np.where(np.arange(sign.shape[0]) % 2 == 0, 1.0, -1.0))
    assert (sign == sign[:, :1]).all()  # one sign per hidden neuron
    pool = np.sign(np.asarray(g.projection("pool_to_hidden").rule.base.base.eta_plus))
    np.testing.assert_array_equal(pool[:, 0], -sign[:, 0])
    job = BPTTJob(cfg)
    st = job.init_state()
    for i in range(2):
        st, m = job.step(st, i)
    assert np.isfinite(m["loss"])
    ov = st.model.overrides()
    trained = torch.sign(ov["cues_to_hidden/rule/base/base/eta_plus"][0]).detach().numpy()
    np.testing.assert_array_equal(trained, sign)
    with pytest.raises(ValueError, match="per-synapse rates"):
        bptt_config("quick", mixed_polarity=True, scalar_rates=True)


def test_shared_mod_init_starts_the_per_pre_modulator_as_a_global_one():
    """BPTTConfig.shared_mod_init: the write modulator's rows start equal within each channel, so every input's M_i
    is the same signal at the start (and only then: the rows are trained apart); refused with an init model."""
    from plastix.trainer.experiments.bptt import build_graph
    from plastix.trainer.experiments.bptt_run import bptt_config

    cfg = bptt_config("paper_storing_per_pre_shared_mixed", batch=2)
    assert cfg.modulation == "per_pre" and cfg.mixed_polarity
    m = build_graph(cfg).modulator("dopamine")
    w = np.asarray(m.weight).reshape(m.channels, m.size, -1)
    assert m.size == 20 and np.abs(w[0, 0]).sum() > 0 and not np.allclose(w[0, 0], w[1, 0])
    np.testing.assert_array_equal(w, np.repeat(w[:, :1], m.size, axis=1))
    plain = build_graph(bptt_config("paper_storing_per_pre_mixed", batch=2)).modulator("dopamine")
    assert not np.allclose(np.asarray(plain.weight).reshape(2, 20, -1)[0, 0], np.asarray(plain.weight).reshape(2, 20, -1)[0, 1])
    with pytest.raises(ValueError, match="shared_mod_init"):
        bptt_config("paper_storing_per_pre_shared_mixed", init="x.plx")
