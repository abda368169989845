"""Iterations/second of vectorised synaptic Q-learning vs a per-synapse Python loop, side by side.

Two networks, in one run:

* ``ocr32``: the paper's 32-hidden-unit OCR net, 784-32-10 (25,450 synapses), ReLU, cross-entropy,
  on random 28x28 inputs (timing does not depend on pixel content; the notMNIST stand-in has this
  shape; scikit-learn digits would be 64-32-10 = 2,410 synapses);
* ``boundary``: the 2-100-1 tanh decision-boundary net (401 synapses), 2,000 points.

Both implementations do the same iteration (ε-greedy actions, weight move, minibatch loss,
reward, TD update of the shared table; :func:`plastix.trainer.synq.loop_step` is the loop, the
:class:`plastix.trainer.synq.SynQ` step the vectorised one). Run:

    python benchmarks/synq.py            # full (a minute or two)
    python benchmarks/synq.py --quick    # seconds; used by the test suite (no timing asserts)

Prints one line per network with both rates and the ratio. Uses one torch thread unless
``--threads`` says otherwise.
"""
from __future__ import annotations

import argparse
import time

import torch

from plastix.trainer.synq import MLPSpec, SynQ, SynQParams, init_state, loop_step


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


def bench(name: str, *, batch: int, vec_iters: int, loop_iters: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    spec, loss = _setup(name, batch, g)
    params = SynQParams(step=1e-4, epsilon=0.1)
    theta = spec.init(generator=g, scale=0.1)

    algo = SynQ(params, spec.bias_mask())
    st = init_state(theta, loss(theta))
    with torch.no_grad():
        st = algo.run(st, loss, 3, generator=g)  # warm-up
        t0 = time.perf_counter()
        st = algo.run(st, loss, vec_iters, generator=g)
        t_vec = time.perf_counter() - t0

    bias = spec.bias_mask().tolist()

    def loss_list(th):
        return loss(torch.tensor(th, dtype=torch.float32))

    ref = (theta.tolist(), torch.zeros(81, 3).tolist(), [1] * spec.n_params, [40] * spec.n_params, 1,
           float(loss(theta)))
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(loop_iters):
            u = torch.rand(spec.n_params, generator=g).tolist()
            ref = loop_step(*ref, loss_list, u, bias, params)
        t_loop = time.perf_counter() - t0
    vec, loop = vec_iters / t_vec, loop_iters / t_loop
    return {"net": name, "synapses": spec.n_params, "batch": batch, "vectorised_it_s": vec, "loop_it_s": loop,
            "ratio": vec / loop}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few iterations, small batches (seconds)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        runs = [("ocr32", 64, 20, 1), ("boundary", 64, 50, 3)]
    else:
        runs = [("ocr32", 5000, 300, 5), ("ocr32", 100, 1000, 5), ("boundary", 2000, 2000, 50)]
    out = []
    print(f"synaptic Q, torch {torch.__version__}, {a.threads} thread(s)" + (" [quick]" if a.quick else ""))
    for name, batch, vi, li in runs:
        r = bench(name, batch=batch, vec_iters=vi, loop_iters=li)
        out.append(r)
        print(f"{r['net']:>9s}  synapses {r['synapses']:>6d}  batch {r['batch']:>5d}  "
              f"vectorised {r['vectorised_it_s']:9.1f} it/s  loop {r['loop_it_s']:8.2f} it/s  "
              f"ratio {r['ratio']:8.1f}x")
    return out


if __name__ == "__main__":
    main()
