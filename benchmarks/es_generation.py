"""Seconds per ES generation: plastix's batched evaluator vs a per-individual loop vs evosax (JAX).

One generation = OpenAI-ES ``ask`` (antithetic), evaluation of the whole population on the IAF
mimic task (Bertens & Lee 2020, eqs 2-3: ``E`` episodes of ``T`` steps, inputs common to the
population), ``tell``. Model: the paper's ENU (memory 32, 16 channels, output-gate feedback;
6,656 parameters). Side by side, in one run:

* ``plastix``: :class:`plastix.trainer.OpenAIES` + :func:`plastix.trainer.algorithms.es_eval.evaluate_population`
  on :class:`plastix.tasks.mimic.IAFTask` (what ``train_es`` runs), 1 and 2 torch threads;
* ``loop``: the same ES, but every individual's ENU run on its own (plain ``torch.mm`` per step,
  a Python loop over individuals), fitness by :func:`plastix.tasks.mimic.iaf_fitness`. Timed on
  ``--loop-individuals`` individuals and scaled to the population (stated in the output);
* ``evosax``: ``evosax.algorithms.Open_ES`` with the same ENU and IAF fitness written in JAX; the
  whole generation (ask, ``vmap`` over the population of a ``lax.scan`` over time, tell) is one
  ``jax.jit``-compiled function. Skipped when jax / evosax are not installed. Install into the
  venv with numpy kept < 2 (lava-nc needs it): ``pip install "jax<0.7" "jaxlib<0.7" evosax "numpy<2"``.
  EvoTorch is not included (not installed here; it would run the same torch model).

Also printed: the analytic matmul FLOPs of the model per generation and the fraction of this
machine's single-thread fp32 matmul peak (a 2048 x 2048 ``torch.mm`` measured in the same run)
that each variant reaches. Everything runs on 1 thread (``torch.set_num_threads(1)``; XLA's
Eigen thread pool off and intra-op parallelism 1) except the explicit 2-thread plastix row.
Timings on a shared machine are noisy: the best of ``--reps`` generations is reported.

    python benchmarks/es_generation.py            # population 1024, 32 envs, 100 steps
    python benchmarks/es_generation.py --quick    # seconds; used by the test suite (no timing asserts)
"""
from __future__ import annotations

import argparse
import os
import time

# one thread for XLA; must be set before jax is imported (and harmless if it never is)
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import sys  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared helper next to this file
from _peak import load_average, matmul_peak  # noqa: E402

from plastix.tasks.mimic import IAFConfig, IAFTask, iaf_fitness, iaf_reference  # noqa: E402
from plastix.trainer import ESParams, OpenAIES  # noqa: E402
from plastix.trainer.algorithms.es_eval import evaluate_population  # noqa: E402
from plastix.trainer.algorithms.models import ModelKind, ModelSpec  # noqa: E402

SPEC = ModelSpec(ModelKind.ENU, memory=32, channels=16)


def enu_flops_per_step(spec: ModelSpec = SPEC) -> int:
    """Matmul FLOPs (2 per multiply-add) of one ENU step for one individual and one env:
    the z/r gates (2M x concat), the candidate (M x concat) and the output gate (C x M)."""
    m, c = spec.memory, spec.channels
    concat = m + (c if spec.feedback else 0) + c
    return 2 * (2 * m * concat + m * concat + c * m)


def _es(pop: int, seed: int = 0):
    es = OpenAIES(pop, SPEC.num_params, antithetic=True)
    params = ESParams(sigma=0.01, lr=1.0, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    state = es.init(SPEC.init_genome(g), params, generator=g)
    return es, params, state, g


def time_plastix(pop: int, envs: int, steps: int, reps: int) -> float:
    es, params, state, g = _es(pop)
    task = IAFTask(IAFConfig(steps=steps, num_envs=envs), population=pop)
    best = float("inf")
    for r in range(reps + 1):  # first generation is a warm-up
        t0 = time.perf_counter()
        popn, state = es.ask(state, params, generator=g)
        fit = evaluate_population(SPEC, popn, task, seed=r)
        state, _ = es.tell(popn, fit, state, params)
        if r:
            best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def _loop_fitness(genomes: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The per-individual reference: one ENU at a time, one ``torch.mm`` per gate and step."""
    m, c = SPEC.memory, SPEC.channels
    E, T = x.shape
    fits = []
    for genome in genomes:
        p = SPEC.unflatten(genome)
        w_zr, w_c, w_o = torch.cat([p["w_z"], p["w_r"]]).t(), p["w_c"].t(), p["w_o"].t()
        h, o = torch.zeros(E, m), torch.zeros(E, c)
        pad = torch.zeros(E, c - 1)
        outs = []
        for t in range(T):
            xt = torch.cat([x[:, t:t + 1], pad], dim=1)
            zr = torch.sigmoid(torch.mm(torch.cat([h, o, xt], dim=1), w_zr))
            z, r = zr[:, :m], zr[:, m:]
            h_tilde = torch.tanh(torch.mm(torch.cat([r * h, o, xt], dim=1), w_c))
            h = (1 - z) * h + z * h_tilde
            o = torch.mm(h, w_o).clamp(0.0, 1.0)
            outs.append(o[:, 0])
        fits.append(iaf_fitness(target, torch.stack(outs, dim=1)).mean())
    return torch.stack(fits)


def time_loop(pop: int, envs: int, steps: int, individuals: int) -> tuple[float, int]:
    """Seconds per generation, measured on ``individuals`` of the population and scaled to all."""
    es, params, state, g = _es(pop)
    cfg = IAFConfig(steps=steps, num_envs=envs)
    x = cfg.input_low + (cfg.input_high - cfg.input_low) * torch.rand(envs, steps, generator=g)
    target = iaf_reference(x, cfg.threshold)
    n = min(individuals, pop)
    t0 = time.perf_counter()
    popn, state = es.ask(state, params, generator=g)
    t_ask = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = _loop_fitness(popn[:n], x, target)
    t_eval = (time.perf_counter() - t0) * pop / n
    fit = torch.cat([fit, fit.new_zeros(pop - n)])
    t0 = time.perf_counter()
    es.tell(popn, fit, state, params)
    return t_ask + t_eval + time.perf_counter() - t0, n


def time_evosax(pop: int, envs: int, steps: int, reps: int) -> tuple[float | None, str]:
    try:
        import jax
        import jax.numpy as jnp
        from evosax.algorithms import Open_ES
    except ImportError as e:
        return None, f"skipped ({e.name} not installed)"
    import optax

    m, c = SPEC.memory, SPEC.channels
    concat = m + c + c
    shapes = SPEC.param_shapes()
    lo, hi, thr = 0.01, 0.11, 0.5

    def unflatten(v):
        out, i = {}, 0
        for name, shape in shapes:
            n = shape[0] * shape[1]
            out[name] = v[i:i + n].reshape(shape)
            i += n
        return out

    def spike_events(values, spikes):  # one (T,) trace; as plastix.tasks.mimic.spike_events
        t = jnp.arange(steps)
        last_incl = jax.lax.cummax(jnp.where(spikes, t, -1))
        last_excl = jnp.concatenate([jnp.array([-1]), last_incl[:-1]])
        isi = (t - last_excl).astype(values.dtype)
        slot = jnp.where(spikes, jnp.cumsum(spikes) - 1, steps)
        vals = jnp.zeros(steps + 1).at[slot].set(jnp.where(spikes, values, 0.0))[:steps]
        isis = jnp.zeros(steps + 1).at[slot].set(jnp.where(spikes, isi, 0.0))[:steps]
        return vals, isis

    def fitness_one(target, out):  # eq. 3 for one (T,) episode
        yv, yt = spike_events(target, target > 0.5)
        ov, ot = spike_events(out, out > 0.0)
        return -(((yv - ov) ** 2).sum() + ((yt - ot) ** 2).sum())

    def rollout(genome, x, target):  # one individual, E envs
        p = unflatten(genome)
        w_zr = jnp.concatenate([p["w_z"], p["w_r"]]).T
        w_c, w_o = p["w_c"].T, p["w_o"].T

        def step(carry, xt):
            h, o = carry
            xin = jnp.concatenate([xt[:, None], jnp.zeros((envs, c - 1))], axis=1)
            zr = jax.nn.sigmoid(jnp.concatenate([h, o, xin], axis=1) @ w_zr)
            z, r = zr[:, :m], zr[:, m:]
            h_tilde = jnp.tanh(jnp.concatenate([r * h, o, xin], axis=1) @ w_c)
            h = (1 - z) * h + z * h_tilde
            o = jnp.clip(h @ w_o, 0.0, 1.0)
            return (h, o), o[:, 0]

        _, outs = jax.lax.scan(step, (jnp.zeros((envs, m)), jnp.zeros((envs, c))), x.T)
        return jax.vmap(fitness_one)(target, outs.T).mean()

    def reference(x):
        def step(u, xt):
            u = u + xt
            s = u >= thr
            return jnp.where(s, 0.0, u), s.astype(x.dtype)
        _, s = jax.lax.scan(step, jnp.zeros(envs), x.T)
        return s.T

    strategy = Open_ES(population_size=pop, solution=jnp.zeros(SPEC.num_params),
                       optimizer=optax.sgd(learning_rate=1.0, momentum=0.9),
                       std_schedule=optax.constant_schedule(0.01))
    es_params = strategy.default_params
    g = torch.Generator().manual_seed(0)
    mean = jnp.asarray(SPEC.init_genome(g).numpy())
    key = jax.random.key(0)
    state = strategy.init(key, mean, es_params)

    @jax.jit
    def generation(key, state):
        k_ask, k_task, k_tell = jax.random.split(key, 3)
        population, state = strategy.ask(k_ask, state, es_params)
        x = lo + (hi - lo) * jax.random.uniform(k_task, (envs, steps))
        fit = jax.vmap(rollout, in_axes=(0, None, None))(population, x, reference(x))
        state, _ = strategy.tell(k_tell, population, -fit, state, es_params)  # evosax minimises
        return state

    t0 = time.perf_counter()
    for _ in range(2):  # the second call retraces once (weak-typed scalars in evosax's initial state)
        key, k = jax.random.split(key)
        state = jax.block_until_ready(generation(k, state))
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(reps):
        key, k = jax.random.split(key)
        t0 = time.perf_counter()
        state = jax.block_until_ready(generation(k, state))
        best = min(best, time.perf_counter() - t0)
    return best, f"jax {jax.__version__}, first 2 calls (compile + run) {compile_s:.1f} s"


def main(argv=None) -> list[tuple[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--population", type=int, default=1024)
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loop-individuals", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="population 16, 4 envs, 10 steps, 1 rep")
    ap.add_argument("--no-evosax", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.population, a.envs, a.steps, a.reps, a.loop_individuals = 16, 4, 10, 1, 4
    P, E, T = a.population, a.envs, a.steps
    torch.set_num_threads(1)
    peak = matmul_peak(1024 if a.quick else 2048)
    flops = enu_flops_per_step() * P * E * T
    print(f"ENU memory {SPEC.memory}, {SPEC.channels} channels ({SPEC.num_params} params); IAF task; "
          f"population {P}, {E} envs, {T} steps", flush=True)
    print(f"model matmul FLOPs / generation: {flops / 1e9:.3f} GFLOP "
          f"({enu_flops_per_step()} per step, individual and env)")
    print(f"fp32 matmul peak, 1 thread (torch.mm): {peak / 1e9:.1f} GFLOP/s; {load_average()}", flush=True)

    # the machine may be shared: the peak is measured again right before each variant, and each
    # variant's fraction uses that adjacent peak (1 thread, also for the 2-thread row)
    n_peak = 1024 if a.quick else 2048
    rows: list[tuple[str, float]] = []
    peaks: list[float] = []

    def add(name: str, seconds: float, pk: float) -> None:
        rows.append((name, seconds))
        peaks.append(pk)
        print(f"  {name}: {seconds:.3f} s (adjacent peak {pk / 1e9:.1f} GFLOP/s)", flush=True)

    pk = matmul_peak(n_peak)
    add("plastix, 1 thread", time_plastix(P, E, T, a.reps), pk)
    pk = matmul_peak(n_peak)
    torch.set_num_threads(2)
    add("plastix, 2 threads", time_plastix(P, E, T, a.reps), pk)
    torch.set_num_threads(1)
    pk = matmul_peak(n_peak)
    t_loop, n = time_loop(P, E, T, a.loop_individuals)
    add(f"per-individual loop, 1 thread ({n} of {P} timed, scaled)", t_loop, pk)
    if not a.no_evosax:
        pk = matmul_peak(n_peak)
        t_ev, note = time_evosax(P, E, T, a.reps)
        if t_ev is None:
            print(f"  evosax: {note}")
        else:
            add(f"evosax Open_ES, jit whole generation, 1 thread ({note})", t_ev, pk)

    print("\n| variant | s / generation | GFLOP/s | % of adjacent 1-thread matmul peak | % of best peak |")
    print("|---|---:|---:|---:|---:|")
    best = max(peaks + [peak])
    for (name, s), pk in zip(rows, peaks):
        print(f"| {name} | {s:.3f} | {flops / s / 1e9:.1f} | {100 * flops / s / pk:.1f} | {100 * flops / s / best:.1f} |")
    print(f"best 1-thread matmul peak seen in this run: {best / 1e9:.1f} GFLOP/s")
    print("\nratios (row / column, > 1 = the column is faster):")
    names = [r[0].split(",")[0] + (" 2t" if "2 threads" in r[0] else "") for r in rows]
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(rows))
    for (nm, s), short in zip(rows, names):
        print(f"| {short} | " + " | ".join(f"{s / s2:.2f}" for _, s2 in rows) + " |")
    return rows


if __name__ == "__main__":
    main()
