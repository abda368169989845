"""``plastix train one_shot_cue --method bptt``: run the BPTT meta-learning loop and export the model."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

from plastix.ir import load as load_graph
from plastix.ir import save as save_graph
from plastix.ir.serialize import atomic_write_bytes

from .bptt import CONFIGS, BPTTConfig, BPTTJob, evaluate
from ..runner import RunOptions, config_preset, run


def bptt_config(config: str, **overrides) -> BPTTConfig:
    """A preset of :data:`plastix.trainer.experiments.bptt.CONFIGS` with non-None ``overrides`` applied."""
    return config_preset(CONFIGS, config, "config", **overrides)


def train_bptt(task: str = "one_shot_cue", config: str = "quick", out_dir: str | Path = "runs/bptt", *,
               resume: bool = False, seed: int = 0, iterations: int | None = None, batch: int | None = None,
               checkpoint_every: int = 5, progress: bool = True, jit: bool = False, **overrides) -> dict:
    """Meta-train the plastic cue-association network; writes ``model.plx`` and ``result.json``
    (plus the runner's checkpoint, metrics log and learning curve, and ``best.plx``: the model where the
    test accuracy -- in fixed point with ``fixed_in_loop`` -- peaked) into ``out_dir``. ``overrides``
    replace further :class:`BPTTConfig` fields (e.g. ``n_hidden`` for tests). ``jit`` runs the
    network through ``compile(graph, jit=True)`` (same math; pays a compile per batch shape, so it
    helps long runs, not tiny ones)."""
    cfg = bptt_config(config, task=task, seed=seed, iterations=iterations, batch=batch, **overrides)
    job = BPTTJob(cfg, jit=jit, metadata=dict(task=task, config=config, seed=seed))
    out = Path(out_dir)
    t0 = time.perf_counter()
    res = run(job, RunOptions(out_dir=out, total_steps=cfg.iterations, resume=resume,
                              checkpoint_every=checkpoint_every, progress=progress,
                              plot_keys=("loss", "train_accuracy", "test_accuracy"), postfix_key="test_accuracy",
                              step_name="iteration", desc=f"bptt {task}/{config}",
                              best_key="test_accuracy_fixed" if cfg.fixed_in_loop else "test_accuracy"))
    model = res.state.model
    ev = evaluate(model, cfg.eval_problems, n_cues=cfg.n_cues, seed=BPTTJob.EVAL_SEED)
    graph = job.model_graph(model)
    meta = {**graph.metadata, "iterations": res.steps_done}
    path = save_graph(graph.replace(metadata=meta), out / "model.plx")
    if cfg.hardware_aware:  # the same model in Loihi units: what deploys on the learning engine
        from ..algorithms.hardware_aware import LoihiUnits, deployable

        units = LoihiUnits.of(graph, trace_impulse=cfg.trace_impulse, mod_gain=cfg.mod_gain)
        save_graph(deployable(graph.replace(metadata=meta), units), out / "model_loihi.plx")  # marks loihi.units
    summary = {"task": task, "config": config, "seed": seed, "iterations": res.steps_done,
               "test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "test_problems": cfg.eval_problems,
               "n_cues": cfg.n_cues, "wall_time_s": time.perf_counter() - t0, "model": str(path),
               "resumed_from": res.resumed_from}
    if cfg.hardware_aware:  # what it is trained for: the accuracy in Loihi fixed point, same problems
        from .cue_eval import evaluate_model

        summary["test_accuracy_fixed"] = evaluate_model(load_graph(path), n_problems=cfg.eval_problems,
                                                        seed=BPTTJob.EVAL_SEED, precision="fixed")["accuracy"]
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def model_config(graph) -> BPTTConfig:
    """The task settings a trained ``model.plx`` was trained with (from its metadata)."""
    meta = dict(graph.metadata or {})
    if meta.get("trainer") != "bptt":
        raise ValueError("not a model written by train_bptt (metadata 'trainer' != 'bptt')")
    return BPTTConfig(n_cues=int(meta["n_cues"]), readout=str(meta["readout"]), permute=bool(meta["permute"]),
                      timing=tuple(int(t) for t in str(meta["timing"]).split(",")))


SWEEP_CUES = (1, 3, 5, 7, 9, 11, 13, 15)


def sweep_cues(model: str | Path, n_problems: int = 500, cues: tuple[int, ...] = SWEEP_CUES, *,
               seed: int = BPTTJob.EVAL_SEED) -> dict[int, dict]:
    """Test accuracy (ties wrong) of a trained model on ``n_problems`` fixed problems for each cue
    count M on the torch backend (float64), as in Meta-SpikePropamine Fig. 4 (trained at one M,
    tested at M = 1..15 without retraining)."""
    from plastix.ir import load

    from .cue_eval import evaluate_model

    graph = load(model)
    return {M: evaluate_model(graph, n_problems=n_problems, n_cues=M, seed=seed) for M in cues}


#: Meta-SpikePropamine's one-shot accuracies (Results, Fig. 4; rule trained at M = 5, 30 trainings)
PAPER_SWEEP = {1: 0.981, 3: 0.967, 5: 0.956, 7: 0.942, 15: 0.687}


def plot_sweep(sweeps: dict[str, dict[int, float]], path: str | Path, *, title: str = "") -> Path:
    """Accuracy against the cue count M for each labelled sweep, next to the paper's (Fig. 4)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(list(PAPER_SWEEP), [100 * v for v in PAPER_SWEEP.values()], "k--o", label="paper (trained at M = 5)")
    for label, sweep in sweeps.items():
        ms = sorted(sweep)
        ax.plot(ms, [100 * sweep[m] for m in ms], "-o", label=label)
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_xlabel("cues per trial M")
    ax.set_ylabel("one-shot test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def diagnose(config: str = "quick", *, seed: int = 0, batch: int = 16, **overrides) -> dict:
    """One training batch of a fresh model: :func:`plastix.trainer.experiments.bptt.diagnostics` (rates,
    modulator inside / outside the learning-signal windows, |ΔW| / |W0|, time constants) and the
    (unclipped) gradient norm of every trainable parameter."""
    import torch

    from plastix.tasks.cue_association import one_shot_cue_problems

    from .bptt import CueModel, build_graph, diagnostics, task_config

    cfg = bptt_config(config, seed=seed, batch=batch, **overrides)
    model = CueModel(build_graph(cfg), cfg)
    pr = one_shot_cue_problems(batch, task_config(cfg), generator=torch.Generator().manual_seed(seed))
    window = model.window(pr)
    counts = model(pr.cues, pr.signal, window)
    model.loss(counts, pr.test_labels, int(window.sum())).backward()
    grads = {n.removeprefix("net.params."): round(float(p.grad.norm()), 4)
             for n, p in model.named_parameters() if p.grad is not None}
    return {"config": config, **{k: round(v, 5) for k, v in diagnostics(model, pr).items()}, "grad_norms": grads}
