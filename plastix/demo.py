"""``make demo``: train plasticity offline -> export the IR -> run it on torch and on Lava.

Two stages, each continuing a model the project trained and ships (commands in docs/results.md):

* ``m5`` -- Meta-SpikePropamine's one-shot cue association at the paper's M = 5 cues
  (``cue_m5_pool.plx``: per-post three-factor eligibility STDP with the anti-Hebbian input pool, 96.0 %
  on held-out problems, paper 95.6 %). A few float BPTT iterations, export (IR + NIR), then the same
  test problems on torch and on Lava in float, where the modulated rules run as host-emulated Lava
  processes; the demo prints how often both give identical spike trains.
* ``engine`` -- the same task in the form Loihi's learning engine runs (``cue_engine.plx``, M = 1):
  hardware-aware training on the values the engine runs (rule literals, 8-bit plastic weights, Loihi
  units), export in Loihi units, torch (float and fixed point) vs Lava in fixed point with the plastic
  projection on the learning engine (``LearningDense`` + a three-factor LIF): bit-exact.

Each stage goes through the shared trainer loop (checkpoint, metrics log, learning curve) and leaves
plots under its folder: learning curve, spike raster, weight change over a problem.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
#: the flagship: trained at M = 5 (docs/results.md, "Meta-SpikePropamine at paper accuracy")
M5_MODEL = DATA / "cue_m5_pool.plx"
#: the hardware-aware model (docs/results.md, "Trained plasticity on Loihi's learning engine")
ENGINE_MODEL = DATA / "cue_engine.plx"


@dataclasses.dataclass(frozen=True)
class DemoStage:
    """One trained model the demo continues, exports and runs on both backends."""
    name: str                 # sub-folder of the demo's output and key of its summary
    title: str
    model: Path | None        # the shipped model.plx to continue from (None: a fresh network)
    config: str               # the BPTT preset it was trained with
    precision: str            # "float" (torch float vs Lava float) | "fixed" (Loihi units, learning engine)
    batch: int | None = None  # training batch (None: the preset's); the M = 5 BPTT at the preset's 64 holds 5.7 GB


STAGES = (
    DemoStage("m5", "Meta-SpikePropamine, M = 5 cues, float", M5_MODEL, "paper_storing_pool_tune", "float", batch=16),
    DemoStage("engine", "the same task on Loihi's learning engine, M = 1, fixed point", ENGINE_MODEL, "paper_engine",
              "fixed"),
)


def run_demo(out: Path, *, iterations: int = 4, problems: int = 16, seed: int = 0,
             stages: tuple[DemoStage, ...] = STAGES, **overrides) -> dict:
    """Every stage in ``stages``: train (continuing from its model), export, compare torch and Lava,
    plot; ``overrides`` replace fields of each stage's preset (tests shrink it). Returns the summaries
    by stage name (also written to ``out/summary.json``)."""
    from plastix.ir.atomic import write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = {}
    for i, stage in enumerate(stages, 1):
        print(f"== stage {i}/{len(stages)}: {stage.title} -> {out / stage.name}")
        summary[stage.name] = _run_stage(stage, out / stage.name, iterations=iterations, problems=problems,
                                         seed=seed, **overrides)
    summary["wall_time_s"] = time.perf_counter() - t0
    write_bytes(out / "summary.json", (json.dumps(summary, indent=2, default=str) + "\n").encode())
    print(f"done in {summary['wall_time_s']:.0f}s; summary in {out / 'summary.json'}")
    return summary


def _run_stage(stage: DemoStage, out: Path, *, iterations: int, problems: int, seed: int, **overrides) -> dict:
    import plastix.ir as ir
    from plastix.ir.atomic import write_bytes
    from plastix.ir.nir_interop import read_nir, write_nir
    from plastix.trainer.experiments.bptt_run import train_bptt
    from plastix.trainer.experiments.cue_eval import compare_backends

    fixed = stage.precision == "fixed"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_dir = out / "train"
    init = None if stage.model is None else str(stage.model)
    if init is not None and "n_cues" not in overrides:  # continue at the cue count the model was trained at
        overrides["n_cues"] = int(dict(ir.load(init).metadata or {}).get("n_cues", 5))
    # lr 3e-4: a few careful steps on a trained model (hardware-aware steps at 1e-3 can jump across rounding
    # boundaries and lose accuracy for a while); in fixed point the forward pass is the fixed-point run
    overrides = {"curriculum": (), "eval_problems": 64, "lr": 3e-4,
                 **({"hardware_aware": True, "fixed_in_loop": True} if fixed else {}), **overrides}
    print(f"[1/4] {'hardware-in-the-loop ' if fixed else ''}BPTT meta-training ({iterations} iterations of the "
          f"{stage.config} config{', starting from ' + init if init else ', from scratch'}) -> {train_dir}")
    batch = overrides.pop("batch", stage.batch)
    res = train_bptt("one_shot_cue", stage.config, train_dir, iterations=iterations, seed=seed, init=init, batch=batch,
                     resume=(train_dir / "checkpoint.pt").exists(), eval_every=max(1, iterations), **overrides)
    acc = f"float {res['test_accuracy']:.3f}" + (f", fixed point {res['test_accuracy_fixed']:.3f}" if fixed else "")
    print(f"      test accuracy after training: {acc} on {res['test_problems']} problems ({res['wall_time_s']:.0f}s)")

    if fixed:
        print("[2/4] export (Loihi units, every value as the learning engine runs it)")
        graph = ir.load(train_dir / "model_loihi.plx")
    else:
        print("[2/4] export (IR, float)")
        graph = ir.load(train_dir / "model.plx")
    path = ir.save(graph, out / "model.plx")
    assert ir.load(path) == graph
    nir_path = write_nir(graph, out / "model.nir")
    assert read_nir(nir_path) == graph
    print(f"      {path} and {nir_path}: written, read back identical (plasticity kept in the NIR extension)")

    kind = "torch (float, fixed point) and on Lava (fixed point)" if fixed else "torch and on Lava (float)"
    print(f"[3/4] the same {problems} test problems on {kind}")
    cmp = compare_backends(graph, problems, seed=10_000 + seed, precision=stage.precision)
    summary = {"train": res, **{k: v for k, v in cmp.items() if not k.startswith("_")}}
    print("      lowering: " + ", ".join(f"{k}: {v['how']}" for k, v in cmp["lowering"].items()))
    if fixed:
        print(f"      torch float: accuracy {cmp['accuracy_torch_float']:.3f}")
    print(f"      torch {stage.precision}: accuracy {cmp['accuracy_torch']:.3f}")
    print(f"      lava  {stage.precision}: accuracy {cmp['accuracy_lava']:.3f}; identical to torch on: output spike "
          f"trains {cmp['identical_spike_trains']:.1%}, hidden spike trains {cmp['identical_hidden_spike_trains']:.1%}, "
          f"final plastic weights {cmp['identical_final_weights']:.1%} of problems; same decision on "
          f"{cmp['agreement_decision']:.1%}")

    print(f"[4/4] plots -> {out}")
    pr, (torch_act, torch_hidden, torch_w) = cmp["_problems"], cmp["_torch"]
    _plots(out, pr, torch_act, torch_hidden, graph, torch_w, cmp["_window"])
    if (train_dir / "curve.png").exists():
        write_bytes(out / "curve.png", (train_dir / "curve.png").read_bytes())
    summary["wall_time_s"] = time.perf_counter() - t0
    return summary


def _plots(out: Path, pr, act, hidden, graph, w, window) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (name, data) in zip(axes, (("sensory input", pr.cues[:, 0]), ("hidden", hidden[:, 0]),
                                       ("action", act[:, 0]))):
        t, n = np.nonzero(data.numpy() > 0)
        ax.scatter(t, n, s=1.5, c="k")
        ax.set_ylabel(name)
    dec = np.nonzero(window.numpy())[0]
    for ax in axes:
        ax.axvspan(dec[0], dec[-1], color="tab:orange", alpha=0.2)
    axes[-1].set_xlabel("step (1 ms); shaded: readout window")
    fig.suptitle(f"one problem: 2 training trials + 1 test trial (label: {'left' if pr.test_labels[0] else 'right'})")
    fig.tight_layout()
    _save_png(fig, out / "raster.png")

    w0 = np.asarray(graph.projection("cues_to_hidden").weight)
    mask = graph.projection("cues_to_hidden").mask
    dw = (w[0].numpy() - w0) * (mask if mask is not None else 1)
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    lim = float(np.abs(dw).max()) or 1.0
    im = ax.imshow(dw, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim)
    ax.set_xlabel("sensory neuron (permuted)")
    ax.set_ylabel("hidden neuron")
    ax.set_title("weight change over one problem, cues -> hidden (three-factor STDP)")
    fig.colorbar(im)
    fig.tight_layout()
    _save_png(fig, out / "weight_change.png")


def _save_png(fig, path: Path) -> None:
    """A figure as a PNG, written atomically (a killed demo leaves the old plot or the new one)."""
    from plastix.ir.atomic import new_file

    with new_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
