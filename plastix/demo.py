"""``make demo``: train plasticity offline -> export the IR -> run it on torch and on Loihi's learning engine.

1. A short, visible BPTT meta-training phase of the one-shot cue-association network
   (Meta-SpikePropamine's task with the paper's trial timing, at the cue count M the shipped model
   was trained at: M = 1; M = 5 is issue 14) in hardware-aware mode, continuing from the shipped
   trained model: the network trains on the values Loihi's learning
   engine runs (rule literals, 8-bit plastic weights, Loihi units), through the shared trainer loop
   (checkpoint, metrics log, learning curve).
2. Export: the trained network in Loihi units (``model.plx``) and in NIR (static part + plasticity
   extension), both read back and checked.
3. The same test problems on the torch backend (float, and Loihi fixed point) and on Lava in fixed
   point, where the plastic projection runs on the learning engine (``LearningDense`` + a
   three-factor LIF); the demo prints the lowering, the three accuracies and how often torch and
   Lava give identical spike trains (bit-exact in fixed point).
4. Plots under the output folder: learning curve, spike raster, weight change over a trial.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


#: the hardware-aware model the project trained (command in docs/results.md, "Trained plasticity on
#: Loihi's learning engine"); the demo's visible training phase continues from it
SHIPPED_MODEL = Path(__file__).parent / "data" / "cue_engine.plx"


def run_demo(out: Path, *, iterations: int = 4, problems: int = 16, seed: int = 0,
             start: Path | None = SHIPPED_MODEL, config: str = "paper_engine", **overrides) -> dict:
    """Train (continuing from the trained model.plx ``start`` if given), export, compare torch and Lava
    in fixed point, plot. ``overrides`` replace fields of the ``config`` preset (tests shrink it)."""
    import plastix.ir as ir
    from plastix.ir.atomic import write_bytes
    from plastix.ir.nir_interop import read_nir, write_nir
    from plastix.trainer.experiments.bptt_run import train_bptt
    from plastix.trainer.experiments.cue_eval import compare_backends

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_dir = out / "train"
    init = None if start is None else str(start)
    if start is not None and "n_cues" not in overrides:  # continue at the cue count the model was trained at
        overrides["n_cues"] = int(dict(ir.load(start).metadata or {}).get("n_cues", 5))
    # lr 3e-4: the rate the shipped model was fine-tuned with (hardware-aware steps at 1e-3 can jump
    # across rounding boundaries and lose accuracy for a while); the forward pass is the fixed-point run
    overrides = {"curriculum": (), "hardware_aware": True, "fixed_in_loop": True, "eval_problems": 64, "lr": 3e-4,
                 **overrides}
    print(f"[1/4] hardware-in-the-loop BPTT meta-training ({iterations} iterations of the {config} config"
          f"{', starting from ' + init if init else ', from scratch'}) -> {train_dir}")
    res = train_bptt("one_shot_cue", config, train_dir, iterations=iterations, seed=seed, init=init,
                     resume=(train_dir / "checkpoint.pt").exists(), eval_every=max(1, iterations), **overrides)
    print(f"      test accuracy after training: float {res['test_accuracy']:.3f}, fixed point "
          f"{res['test_accuracy_fixed']:.3f} on {res['test_problems']} problems "
          f"({res['wall_time_s']:.0f}s)")

    print("[2/4] export (Loihi units, every value as the learning engine runs it)")
    graph = ir.load(train_dir / "model_loihi.plx")
    path = ir.save(graph, out / "model.plx")
    assert ir.load(path) == graph
    nir_path = write_nir(graph, out / "model.nir")
    assert read_nir(nir_path) == graph
    print(f"      {path} and {nir_path}: written, read back identical (plasticity kept in the NIR extension)")

    print(f"[3/4] the same {problems} test problems on torch (float, fixed point) and on Lava (fixed point)")
    cmp = compare_backends(graph, problems, seed=10_000 + seed, precision="fixed")
    summary = {"train": res, **{k: v for k, v in cmp.items() if not k.startswith("_")}}
    print("      lowering: " + ", ".join(f"{k}: {v['how']}" for k, v in cmp["lowering"].items()))
    print(f"      torch float: accuracy {cmp['accuracy_torch_float']:.3f}")
    print(f"      torch fixed: accuracy {cmp['accuracy_torch']:.3f}")
    print(f"      lava  fixed: accuracy {cmp['accuracy_lava']:.3f}; identical to torch fixed on: output spike trains "
          f"{cmp['identical_spike_trains']:.1%}, hidden spike trains {cmp['identical_hidden_spike_trains']:.1%}, "
          f"final plastic weights {cmp['identical_final_weights']:.1%} of problems; same decision on "
          f"{cmp['agreement_decision']:.1%}")

    print(f"[4/4] plots -> {out}")
    pr, (torch_act, torch_hidden, torch_w) = cmp["_problems"], cmp["_torch"]
    _plots(out, pr, torch_act, torch_hidden, graph, torch_w, cmp["_window"])
    if (train_dir / "curve.png").exists():
        write_bytes(out / "curve.png", (train_dir / "curve.png").read_bytes())
    summary["wall_time_s"] = time.perf_counter() - t0
    write_bytes(out / "summary.json", (json.dumps(summary, indent=2, default=str) + "\n").encode())
    print(f"done in {summary['wall_time_s']:.0f}s; summary in {out / 'summary.json'}")
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
