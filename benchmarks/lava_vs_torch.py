"""Steps per second of one fixed-point 20 -> 48 -> 2 CUBA LIF network on Lava vs the torch fixed mode.

    .venv/bin/python benchmarks/lava_vs_torch.py [--quick] [--steps N]

Two nets: static, and plastic (global three-factor STDP with eligibility on 20 -> 48, lowered to
Lava's learning engine: LearningDense + Loihi3F rule + ThreeFactorLIF; the torch fixed mode
emulates that engine bit for bit). The plastic comparison first checks that torch and Lava give
identical spikes and final weights on the same inputs (batch 1), then times both.

Plastic batch 64: a 64-replica Lava net is not 64 independent samples (a dense LearningDense would
learn the cross-replica synapses too), so Lava's per-sample throughput at batch 64 is its batch-1
throughput (one network per sample; Lava cannot batch); torch runs a (T, 64, ...) batch.

Batch B means B independent input sequences. torch runs them as one (T, B, 20) tensor. Lava runs
one sequence per network, so batch 64 is one Lava network of 64 replicas (block-diagonal weights,
1280 -> 3072 -> 128): the same work in one run. For Lava we report (a) wall time of a whole
``run()`` (fork + compile + process start-up + steps + read-out + stop) and (b) the steady-state
per-step cost from the difference of two run lengths. Throughput is sample-steps per second
(B * steps / time). Ratios are torch / Lava. This is a side-by-side measurement on a shared 2-core
machine (numbers vary by tens of percent between runs), never a timed assertion.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

N_IN, N_HID, N_OUT = 20, 48, 2


def build(batch: int = 1, *, plastic: bool = False):
    """The integer (Loihi-representable) 20 -> 48 -> 2 graph, replicated ``batch`` times."""
    from plastix.ir import EligibilityTrace, GraphBuilder, ModulationMode, PairSTDP, ThreeFactor

    rng = np.random.default_rng(0)
    w_in = rng.integers(-9, 24, (N_HID, N_IN)).astype(float)
    w_out = rng.integers(-5, 12, (N_OUT, N_HID)).astype(float)
    b = GraphBuilder(seed=0)
    x = b.input("x", N_IN * batch)
    h = b.cuba_lif("h", N_HID * batch, du=819 / 4096, dv=410 / 4096, vth=30)
    y = b.cuba_lif("y", N_OUT * batch, du=1024 / 4096, dv=205 / 4096, vth=20)
    rule = None
    if plastic:
        r = b.input("reward", 1)
        b.modulator("dopamine", r, 1, weight=np.array([[2.0]]))
        stdp = PairSTDP(eta_plus=2.0 ** -2, eta_minus=2.0 ** -3, decay_pre=0.9, decay_post=0.9, beta=16.0)
        rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.5), modulator="dopamine",
                           mode=ModulationMode.GLOBAL)
    b.connect(x, h, weight=np.kron(np.eye(batch), w_in), rule=rule, name="in_hid")
    b.connect(h, y, weight=np.kron(np.eye(batch), w_out), name="hid_out")
    return b.build(outputs=[y])


def inputs(steps: int, batch: int, *, plastic: bool = False) -> dict:
    rng = np.random.default_rng(1)
    x = (rng.random((steps, N_IN * batch)) < 0.2).astype(np.float64)
    out = {"x": x}
    if plastic:
        rew = np.zeros((steps, 1))
        rew[steps // 2: steps // 2 + 50] = 1
        out["reward"] = rew
    return out


def time_lava(lava, batch: int, steps: int, *, plastic: bool = False, repeats: int = 1) -> tuple[float, float]:
    """(seconds of a whole run of ``steps`` steps, steady-state seconds per step)."""
    net = lava.compile(build(batch, plastic=plastic), "fixed", timeout=600)
    short = max(10, steps // 4)
    best_long, best_short = float("inf"), float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.run(inputs(steps, batch, plastic=plastic), steps, readback=False)
        best_long = min(best_long, time.perf_counter() - t0)
        t0 = time.perf_counter()
        net.run(inputs(short, batch, plastic=plastic), short, readback=False)
        best_short = min(best_short, time.perf_counter() - t0)
    return best_long, max(best_long - best_short, 1e-9) / (steps - short)


def torch_inputs(steps: int, batch: int, *, plastic: bool = False) -> dict:
    """(T, B, n) tensors; batch 1 uses exactly the Lava inputs."""
    import torch

    if batch == 1:
        inp = inputs(steps, 1, plastic=plastic)
        return {k: torch.as_tensor(v).reshape(steps, 1, -1) for k, v in inp.items()}
    rng = np.random.default_rng(1)
    out = {"x": torch.as_tensor((rng.random((steps, batch, N_IN)) < 0.2).astype(np.float64))}
    if plastic:
        rew = torch.zeros(steps, batch, 1, dtype=torch.float64)
        rew[steps // 2: steps // 2 + 50] = 1
        out["reward"] = rew
    return out


def time_torch(torch_backend, batch: int, steps: int, repeats: int = 3, *, plastic: bool = False,
               compiled: bool = False) -> float:
    """Best wall time of a whole ``run`` of ``steps`` steps; ``compiled``: ``compile_step()`` first,
    compile time (a short warm-up run) excluded and printed."""
    import torch

    torch.set_num_threads(1)
    net = torch_backend.compile(build(1, plastic=plastic), precision="fixed")
    xt = torch_inputs(steps, batch, plastic=plastic)
    if compiled:
        net.compile_step()
        t0 = time.perf_counter()
        with torch.no_grad():
            net.run({k: v[:3] for k, v in xt.items()})
        print(f"  (torch.compile of the step, batch {batch}: {time.perf_counter() - t0:.1f} s, not counted)")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            net.run(xt)
        best = min(best, time.perf_counter() - t0)
    return best


def check_plastic_bit_exact(lava, torch_backend, steps: int) -> tuple[bool, float]:
    """Same inputs, batch 1: (spikes and final plastic weights identical, mean |w - w0|)."""
    g = build(1, plastic=True)
    net = lava.compile(g, "fixed", timeout=600)
    out = net.run(inputs(steps, 1, plastic=True), steps)
    res, state = torch_backend.compile(g, precision="fixed").run(torch_inputs(steps, 1, plastic=True))
    w_lava = net.weights()["in_hid"]
    w_torch = state.projs["in_hid"].rule.w[0, 0].numpy()
    same = bool(np.array_equal(out["y"], res["y"].numpy().reshape(steps, -1)) and np.array_equal(w_lava, w_torch))
    return same, float(np.abs(w_lava - np.asarray(g.projection("in_hid").weight)).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI smoke test)")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args(argv)
    steps = args.steps or (200 if args.quick else 1000)
    repeats = 1 if args.quick else 2

    import plastix.backends.lava as lava  # before torch: Lava fixes the multiprocessing start method

    try:
        import plastix.backends.torch as torch_backend

        has_torch = hasattr(torch_backend, "compile")
    except ImportError:  # pragma: no cover
        torch_backend, has_torch = None, False

    import os

    t_start = time.perf_counter()
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    print(f"fixed-point 20 -> 48 -> 2 CUBA LIF, static, {steps} steps, sample-steps/s (higher is better)")
    rows = []
    for batch in (1, 64):
        whole, per_step = time_lava(lava, batch, steps, repeats=repeats)
        lava_run = batch * steps / whole
        lava_steady = batch / per_step
        if has_torch:
            tr = batch * steps / time_torch(torch_backend, batch, steps)
            tc = batch * steps / time_torch(torch_backend, batch, steps, compiled=True)
            rows.append(f"{batch:>5} | {lava_run:>26.0f} | {lava_steady:>18.0f} | {tr:>12.0f} | {tc:>14.0f} | "
                        f"{tr / lava_run:>16.1f} | {tc / lava_steady:>22.1f}")
        else:
            rows.append(f"{batch:>5} | {lava_run:>26.0f} | {lava_steady:>18.0f} | n/a")
    print(f"{'batch':>5} | {'lava run() incl. start-up':>26} | {'lava steady state':>18} | {'torch eager':>12} | "
          f"{'torch compiled':>14} | {'eager/lava (run)':>16} | {'compiled/lava (steady)':>22}")
    print("\n".join(rows))
    if not has_torch:
        print("torch backend not available: Lava alone")
    if not has_torch:
        whole, per_step = time_lava(lava, 1, steps, plastic=True, repeats=repeats)
        print(f"lava only, with global three-factor STDP, batch 1: {steps / whole:.0f} steps/s per run(), "
              f"{1 / per_step:.0f} steady state")
        return
    same, dw = check_plastic_bit_exact(lava, torch_backend, steps)
    print(f"\nplastic (global three-factor STDP on 20 -> 48, learning engine), {steps} steps: torch fixed vs Lava "
          f"fixed_pt spikes and final weights bit-identical: {'yes' if same else 'NO'} (mean |w - w0| = {dw:.2f})")
    whole, per_step = time_lava(lava, 1, steps, plastic=True, repeats=repeats)
    lava_run, lava_steady = steps / whole, 1 / per_step
    rows = []
    for batch in (1, 64):
        eager = batch * steps / time_torch(torch_backend, batch, steps, plastic=True)
        comp = batch * steps / time_torch(torch_backend, batch, steps, plastic=True, compiled=True)
        rows.append((batch, eager, comp))
    print(f"{'batch':>5} | {'lava run() per sample':>22} | {'lava steady per sample':>22} | {'torch eager':>11} | "
          f"{'torch compiled':>14} | {'compiled/lava (run)':>19} | {'compiled/lava (steady)':>22}")
    for batch, eager, comp in rows:
        print(f"{batch:>5} | {lava_run:>22.0f} | {lava_steady:>22.0f} | {eager:>11.0f} | {comp:>14.0f} | "
              f"{comp / lava_run:>19.1f} | {comp / lava_steady:>22.1f}")
    print(f"load average at end: {os.getloadavg()}; wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
