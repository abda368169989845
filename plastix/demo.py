"""``make demo``: the end-to-end path on an embedded default model.

Builds the Meta-SpikePropamine cue-association network, writes it to the versioned IR file and reads
it back, exports it to NIR and back, then simulates it on the torch backend and writes plots.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _cue_inputs(steps: int, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random cue spike trains: p = 0.75 for the active cue group during 25-step windows, 0.15 otherwise."""
    rng = np.random.default_rng(seed)
    p = np.full((steps, batch, 20), 0.15)
    for b in range(batch):
        cue = rng.integers(2)
        for start in range(0, steps, 55):
            p[start:start + 25, b, cue * 5:(cue + 1) * 5] = 0.75
    cues = (rng.random(p.shape) < p).astype(np.float32)
    signal = np.zeros((steps, batch, 2), dtype=np.float32)
    return {"cues": cues, "learning_signal": signal}


def run_demo(out: Path, *, steps: int = 300, batch: int = 4, seed: int = 0) -> dict:
    import plastix.ir as ir
    from plastix.ir.examples import cue_association_net
    from plastix.ir.nir_interop import read_nir, write_nir

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    graph = cue_association_net(seed=seed)
    print(graph.summary())
    path = ir.save(graph, out / "cue_net.plx")
    assert ir.load(path) == graph
    print(f"[ir]   wrote {path} ({path.stat().st_size} bytes), reloaded: identical")
    nir_path = write_nir(graph, out / "cue_net.nir")
    assert read_nir(nir_path) == graph
    print(f"[nir]  wrote {nir_path}; plastix -> NIR -> plastix round trip identical (plasticity kept)")

    result: dict = {"ir": str(path), "nir": str(nir_path)}
    try:
        from plastix.backends.torch import simulate_numpy  # type: ignore[attr-defined]
    except ImportError:
        simulate_numpy = None
    if simulate_numpy is None:
        print("[torch] backend not available in this build; skipped simulation")
        return result
    inputs = _cue_inputs(steps, batch, seed)
    t1 = time.perf_counter()
    outputs, weights = simulate_numpy(graph, inputs)
    dt = time.perf_counter() - t1
    hidden = outputs["hidden"]
    print(f"[torch] simulated {steps} steps x batch {batch} in {dt:.2f}s; "
          f"hidden rate {hidden.mean():.3f} spikes/step, action spikes {outputs['action'].sum(axis=(0, 2)).tolist()}")
    _plots(out, inputs, outputs, graph, weights)
    print(f"[plots] {out / 'raster.png'}, {out / 'weight_change.png'}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    result.update(hidden_rate=float(hidden.mean()))
    return result


def _plots(out: Path, inputs: dict, outputs: dict, graph, weights: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    for ax, (name, data) in zip(axes, (("cues", inputs["cues"]), ("hidden", outputs["hidden"]),
                                       ("action", outputs["action"]))):
        t, n = np.nonzero(data[:, 0])
        ax.scatter(t, n, s=2, c="k")
        ax.set_ylabel(name)
    axes[-1].set_xlabel("step")
    fig.suptitle("spike raster, batch element 0")
    fig.tight_layout()
    fig.savefig(out / "raster.png", dpi=120)
    plt.close(fig)
    w0 = np.asarray(graph.projection("cues_to_hidden").weight)
    w1 = weights["cues_to_hidden"][0]
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(w1 - w0, aspect="auto", cmap="coolwarm")
    ax.set_xlabel("input neuron")
    ax.set_ylabel("hidden neuron")
    ax.set_title("weight change over the run (cues -> hidden)")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out / "weight_change.png", dpi=120)
    plt.close(fig)
