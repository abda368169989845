"""How long a T-maze network of ENUs remembers: a one-step pulse on one input (all other inputs zero), and the
largest difference of the synapse memory ``h`` from the unpulsed run some network steps later (4 network steps are
one T-maze decision; the paper's task needs the food side and the motor map kept for its 400 decisions).

    python tools/enu_pulse_memory.py MODEL.plx [MODEL.plx ...] [--initial SEED] [--memory-gain G] [--input food|sensor0]

``--initial SEED``: also the initial genome of that seed, with ``--memory-gain G`` added to its candidate gate's memory
block (``enu_net.add_memory_gain``, as ``tools/tmaze_imitation.py --memory-gain``).
"""
from __future__ import annotations

import argparse

import torch

from plastix.trainer.experiments.enu_net import NetworkSpec, add_memory_gain, genome_from_graph

Tensor = torch.Tensor
INPUTS = {"food": 3, "sensor0": 0}        # observation index of the pulsed input
PULSE_AT = 8                              # network step of the pulse (after a short settling)


def pulse_memory(spec: NetworkSpec, genome: Tensor, after: tuple[int, ...] = (1, 32, 92, 392), *,
                 pulse_input: int = INPUTS["food"]) -> list[float]:
    """Largest |h_pulsed - h_unpulsed| over the synapse memories, ``after`` network steps after the pulse."""
    model = spec.population_model(genome[None], fused=False)
    state = model.init_state(2, torch.Generator().manual_seed(0))
    diffs = {}
    with torch.no_grad():
        for t in range(PULSE_AT + max(after) + 1):
            obs = torch.zeros(1, 2, 5)
            obs[0, 1, pulse_input] = float(t == PULSE_AT)
            _, state = model.act(obs, state)
            if t - PULSE_AT in after:
                h = state[0].h.view(2, -1)
                diffs[t - PULSE_AT] = float((h[1] - h[0]).abs().max())
    return [diffs[a] for a in after]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--initial", type=int, default=None, help="also the initial genome of this seed")
    ap.add_argument("--memory-gain", type=float, default=0.0, help="added to the initial genome (with --initial)")
    ap.add_argument("--input", default="food", choices=sorted(INPUTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from plastix.ir import load
    spec = NetworkSpec()
    after = (1, 32, 92, 392)
    rows = [(m, genome_from_graph(spec, load(m))) for m in args.models]
    if args.initial is not None:
        g = spec.init_genome(torch.Generator().manual_seed(args.initial))
        if args.memory_gain:
            add_memory_gain(spec, g, args.memory_gain)
        rows.append((f"initial genome (seed {args.initial}, memory gain {args.memory_gain})", g))
    if not rows:
        raise SystemExit("give a model or --initial SEED")
    print(f"pulse on {args.input}; largest synapse-memory difference " + " / ".join(f"{a}" for a in after)
          + " network steps later")
    for name, g in rows:
        diffs = pulse_memory(spec, g, after, pulse_input=INPUTS[args.input])
        print(f"  {name}: " + " / ".join(f"{d:.1e}" for d in diffs))


if __name__ == "__main__":
    main()
