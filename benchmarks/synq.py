"""Iterations/second of vectorised synaptic Q-learning vs a per-synapse Python loop, side by side.

Two networks, in one run:

* ``ocr32``: the paper's 32-hidden-unit OCR net, 784-32-10 (25,450 synapses), ReLU, cross-entropy,
  on random 28x28 inputs (timing does not depend on pixel content; the notMNIST stand-in has this
  shape; scikit-learn digits would be 64-32-10 = 2,410 synapses);
* ``boundary``: the 2-100-1 tanh decision-boundary net (401 synapses), 2,000 points.

Both implementations do the same iteration (ε-greedy actions from the same counter-based stream,
weight move, minibatch loss, reward, TD update of the shared table;
:func:`plastix.trainer.algorithms.synq.loop_step` is the loop, :meth:`plastix.trainer.algorithms.synq.SynQ.step` the
vectorised one). The loop gets its stream draws from one vectorised call per iteration (inside
its timed region), which favours the loop. Each iteration splits into the minibatch *forward*
(loss evaluation: the same torch forward in both; the loop also converts its list to a tensor)
and the *synapse update* (everything else); both parts are timed and reported, so the speed-up of
the vectorised part is visible apart from the forward pass, which dominates at large minibatches. Run:

    python benchmarks/synq.py            # full (a minute or two)
    python benchmarks/synq.py --quick    # seconds; used by the test suite (no timing asserts)
    python benchmarks/synq.py --compiled # also SynQ(compiled=True) (torch.compile of the decision step)

Times are CPU seconds of the calling thread (``time.thread_time``), so other jobs on a shared box
slow both sides alike instead of adding their waiting time; with ``--threads`` > 1 they miss the
worker threads' time. Prints one line per network and the machine's load average. Uses one torch
thread unless ``--threads`` says otherwise.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from plastix.trainer.algorithms.synq import MLPSpec, SynQ, SynQParams, init_state, loop_step


def _setup(name: str, batch: int, g: torch.Generator):
    if name == "ocr32":
        spec = MLPSpec((784, 32, 10), hidden="relu")
        x = torch.rand(batch, 784, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)

        def loss(th):
            return torch.nn.functional.cross_entropy(spec.forward(th, x), y)
    else:
        spec = MLPSpec((2, 100, 1), hidden="tanh", output="tanh")
        x = (torch.rand(batch, 2, generator=g) * 2 - 1) * 10
        y = torch.where(torch.rand(batch, 1, generator=g) > 0.5, 1.0, -1.0)

        def loss(th):
            return ((spec.forward(th, x) - y) ** 2).mean()
    return spec, loss


_clock = time.thread_time  # CPU time of this thread: on a shared, loaded box wall time mostly measures waiting


class _Timed:
    """Wraps a loss function and accumulates the CPU time spent inside it (the forward part)."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, th):
        t0 = _clock()
        out = self.fn(th)
        self.seconds += _clock() - t0
        return out


def bench(name: str, *, batch: int, vec_iters: int, loop_iters: int, seed: int = 0, compiled: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    spec, loss = _setup(name, batch, g)
    params = SynQParams(step=1e-4, epsilon=0.1, seed=seed)
    theta = spec.init(generator=g, scale=0.1)

    algo = SynQ(params, spec.bias_mask(), compiled=compiled)
    st = init_state(theta, loss(theta))
    with torch.no_grad():
        st = algo.run(st, loss, 3)  # warm-up
        vloss = _Timed(loss)
        t0 = _clock()
        st = algo.run(st, vloss, vec_iters)
        t_vec = _clock() - t0

    bias = spec.bias_mask().tolist()
    lloss = _Timed(lambda th: loss(torch.tensor(th, dtype=torch.float32)))
    consts = algo.constants(theta)
    ref = (theta.tolist(), torch.zeros(81, 3).tolist(), [1] * spec.n_params, [40] * spec.n_params, 1,
           float(loss(theta)))
    with torch.no_grad():
        t0 = _clock()
        for it in range(loop_iters):
            h = algo.draws(it, consts).tolist()
            ref = loop_step(*ref, lloss, h, bias, params)
        t_loop = _clock() - t0
    vec_upd = (t_vec - vloss.seconds) / vec_iters
    loop_upd = (t_loop - lloss.seconds) / loop_iters
    return {"net": name + (" (compiled)" if compiled else ""), "synapses": spec.n_params, "batch": batch,
            "vectorised_it_s": vec_iters / t_vec,
            "loop_it_s": loop_iters / t_loop, "ratio": (vec_iters / t_vec) / (loop_iters / t_loop),
            "vec_forward_ms": 1e3 * vloss.seconds / vec_iters, "vec_update_ms": 1e3 * vec_upd,
            "loop_forward_ms": 1e3 * lloss.seconds / loop_iters, "loop_update_ms": 1e3 * loop_upd,
            "update_ratio": loop_upd / vec_upd}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few iterations, small batches (seconds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compiled", action="store_true", help="also time the torch.compile'd decision step "
                                                            "(SynQ(compiled=True); one-off compile not timed)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        runs = [("ocr32", 64, 20, 1), ("boundary", 64, 50, 3)]
    else:
        runs = [("ocr32", 5000, 300, 5), ("ocr32", 100, 1000, 5), ("boundary", 2000, 2000, 50)]
    out = []
    print(f"synaptic Q, torch {torch.__version__}, {a.threads} thread(s), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}" + (" [quick]" if a.quick else ""))
    jobs = [(r, False) for r in runs] + ([(r, True) for r in runs] if a.compiled else [])
    for (name, batch, vi, li), comp in jobs:
        r = bench(name, batch=batch, vec_iters=vi, loop_iters=li, compiled=comp)
        out.append(r)
        print(f"{r['net']:>20s}  synapses {r['synapses']:>6d}  batch {r['batch']:>5d}  "
              f"vectorised {r['vectorised_it_s']:8.1f} it/s (forward {r['vec_forward_ms']:7.3f} ms + update "
              f"{r['vec_update_ms']:6.3f} ms)  loop {r['loop_it_s']:7.2f} it/s (forward {r['loop_forward_ms']:7.3f} "
              f"ms + update {r['loop_update_ms']:8.3f} ms)  ratio {r['ratio']:6.1f}x  "
              f"update-only ratio {r['update_ratio']:7.1f}x")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return out


if __name__ == "__main__":
    main()
