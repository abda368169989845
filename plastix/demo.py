"""``make demo``: train plasticity offline -> export the IR -> run it on torch and on Lava.

1. A short, visible BPTT meta-training phase of the one-shot cue-association network
   (Meta-SpikePropamine; the ``quick`` config: M = 1 cue per trial) through the shared trainer loop
   (checkpoint, metrics log, learning curve).
2. Export: the trained network is written to the versioned IR file (``model.plx``) and to NIR
   (static part + plasticity extension), and both are read back and checked.
3. The same test problems run on the torch backend (batched) and on the Lava backend (Loihi
   emulation; per rule "learning engine" or "host-emulated" as ``support()`` reports), and the demo
   prints both accuracies and how often the two backends give the same decision and spike train.
4. Plots under the output folder: learning curve, spike raster, weight change over a trial.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch


def run_demo(out: Path, *, iterations: int = 12, problems: int = 16, seed: int = 0) -> dict:
    import plastix.ir as ir
    from plastix.ir.nir_interop import read_nir, write_nir
    from plastix.tasks.cue_association import OneShotCueConfig, one_shot_cue_problems
    from plastix.trainer.bptt import accuracy
    from plastix.trainer.bptt_run import train_bptt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_dir = out / "train"
    print(f"[1/4] BPTT meta-training ({iterations} iterations of the quick config) -> {train_dir}")
    res = train_bptt("one_shot_cue", "quick", train_dir, iterations=iterations, seed=seed,
                     resume=(train_dir / "checkpoint.pt").exists(), eval_every=max(1, iterations // 3))
    print(f"      test accuracy after training: {res['test_accuracy']:.3f} on {res['test_problems']} problems "
          f"({res['wall_time_s']:.0f}s)")

    print("[2/4] export")
    graph = ir.load(res["model"])
    path = ir.save(graph, out / "model.plx")
    assert ir.load(path) == graph
    nir_path = write_nir(graph, out / "model.nir")
    assert read_nir(nir_path) == graph
    print(f"      {path} and {nir_path}: written, read back identical (plasticity kept in the NIR extension)")

    print(f"[3/4] the same {problems} test problems on torch and on Lava")
    cfg = OneShotCueConfig(n_cues=1)
    pr = one_shot_cue_problems(problems, cfg, generator=torch.Generator().manual_seed(10_000 + seed))
    g2 = graph.replace(outputs=("action", "hidden"))
    torch_act, torch_hidden, torch_w = _run_torch(g2, pr)
    acc_torch = float(accuracy(torch_act[pr.decision].sum(0), pr.test_labels))
    print(f"      torch: accuracy {acc_torch:.3f}")
    lava = _run_lava(g2, pr)
    summary = {"train": res, "accuracy_torch": acc_torch, "problems": problems}
    if lava is not None:
        lava_act, report = lava
        acc_lava = float(accuracy(lava_act[pr.decision].sum(0), pr.test_labels))
        same_decision = float((lava_act[pr.decision].sum(0).argmax(-1) == torch_act[pr.decision].sum(0).argmax(-1))
                              .float().mean())
        same_spikes = float((lava_act == torch_act).all(dim=(0, 2)).float().mean())
        print(f"      lava : accuracy {acc_lava:.3f}; same decision as torch on {same_decision:.1%} of problems, "
              f"identical output spike trains on {same_spikes:.1%}")
        print("      lowering: " + ", ".join(f"{k}: {v['how']}" for k, v in report["rules"].items()))
        summary.update(accuracy_lava=acc_lava, agreement_decision=same_decision, identical_spike_trains=same_spikes)

    print(f"[4/4] plots -> {out}")
    _plots(out, pr, torch_act, torch_hidden, graph, torch_w)
    (out / "curve.png").write_bytes((train_dir / "curve.png").read_bytes()) if (train_dir / "curve.png").exists() else None
    summary["wall_time_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"done in {summary['wall_time_s']:.0f}s; summary in {out / 'summary.json'}")
    return summary


def _run_torch(graph, pr):
    from plastix.backends.torch import compile as compile_torch

    net = compile_torch(graph, dtype=torch.float64)
    with torch.no_grad():
        outs, state = net.run({"cues": pr.cues.double(), "learning_signal": pr.signal.double()})
    w = state.projs["cues_to_hidden"].rule.w[0]  # (B, n_post, n_pre) after the episode
    return outs["action"][:, 0], outs["hidden"][:, 0], w


def _run_lava(graph, pr):
    try:
        from plastix.backends.lava import compile as compile_lava
        from plastix.backends.lava import support
    except ImportError as exc:  # pragma: no cover - lava is part of the setup
        print(f"      lava backend unavailable: {exc}")
        return None
    report = support(graph, "float")
    acts = []
    for b in range(pr.cues.shape[1]):
        with compile_lava(graph, precision="float", timeout=300.0) as net:
            o = net.run({"cues": pr.cues[:, b].double().numpy(), "learning_signal": pr.signal[:, b].double().numpy()},
                        pr.cues.shape[0])
        acts.append(torch.as_tensor(np.asarray(o["action"]), dtype=torch.float64))
    return torch.stack(acts, dim=1), report


def _plots(out: Path, pr, act, hidden, graph, w) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (name, data) in zip(axes, (("sensory input", pr.cues[:, 0]), ("hidden", hidden[:, 0]),
                                       ("action", act[:, 0]))):
        t, n = np.nonzero(data.numpy() > 0)
        ax.scatter(t, n, s=1.5, c="k")
        ax.set_ylabel(name)
    dec = np.nonzero(pr.decision.numpy())[0]
    for ax in axes:
        ax.axvspan(dec[0], dec[-1], color="tab:orange", alpha=0.2)
    axes[-1].set_xlabel("step (1 ms); shaded: test decision window")
    fig.suptitle(f"one problem: 2 training trials + 1 test trial (label: {'left' if pr.test_labels[0] else 'right'})")
    fig.tight_layout()
    fig.savefig(out / "raster.png", dpi=110)

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
    fig.savefig(out / "weight_change.png", dpi=110)
