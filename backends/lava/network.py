"""``compile(graph) -> LavaNetwork``: the public face of the Lava backend.

A :class:`LavaNetwork` holds a checked lowering :class:`~plastix.backends.lava.plan.Plan`; every
:meth:`LavaNetwork.run` builds the Lava processes in a fresh child process (see
:mod:`plastix.backends.lava.runner`), runs them for ``steps`` steps from the graph's initial state (an
episode: plastic weights start from the stored ``weight``), reads outputs, plastic weights and
neuron state once at the end, stops every Lava process and returns. A run never outlives its
``timeout``; on timeout or error every process of the run is killed and its shared memory removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from plastix.ir import Graph

from .. import memory
from ..base import Episode
from .plan import Plan, make_plan
from .runner import run_isolated

__all__ = ["LavaNetwork", "FaultSpec", "compile"]


@dataclass(frozen=True)
class FaultSpec:
    """Debug/testing hook: add a process that raises (``mode="raise"``) or hangs (``"hang"``) at
    Lava time step ``at``."""

    at: int
    message: str = "injected fault"
    mode: str = "raise"


class LavaNetwork:
    """A graph lowered to Lava. Use as a context manager or call :meth:`close` (both idempotent).

    Inputs are ``(steps, size)`` arrays (``(steps, size, channels)`` for multi-channel inputs):
    spikes (0/1), or graded values (integers in fixed precision) for inputs that feed only static
    projections (their Dense then takes graded messages). Between Lava processes, multi-channel
    values travel as flat ``(size * channels,)`` vectors, unit-major (``reshape(size, channels)``).

    ``run(inputs, steps)`` -> ``{output name: (steps, size) array}``: spikes (0/1) of CubaLIF
    outputs, ``v`` of LI outputs (IR units in both precisions), the cell outputs of gated
    (ENU/GRU/LSTM) outputs (``(steps, size, channels)`` when ``channels > 1``), the inputs themselves
    for Input outputs. :meth:`weights` / :meth:`state` return the last run's final plastic weights (IR
    units; ``W + alpha E`` for the SpikePropamine rules) and neuron state (``"<pop>.u"``, ``"<pop>.v"``;
    Lava's own units: fixed point is 2^6-scaled), learning-engine eligibility tags (``"<proj>.tag_1"``)
    and SpikePropamine traces ``E`` (``"<proj>.e"``).
    """

    def __init__(self, plan: Plan, *, graph: Graph, timeout: float, fault: FaultSpec | None = None,
                 memory_limit: int | str | None = None) -> None:
        self.plan = plan
        self.graph = graph
        self.memory_limit = memory_limit  # bytes, "16G" or None (backends.memory.limit)
        self.timeout = float(timeout)
        self.fault = fault
        self._last: dict | None = None
        self._closed = False

    @property
    def precision(self) -> str:
        return self.plan.precision

    def _check_inputs(self, inputs: Mapping[str, np.ndarray], steps: int) -> dict:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        missing = [n for n in self.plan.inputs if n not in inputs]
        extra = [n for n in inputs if n not in self.plan.inputs]
        if missing or extra:
            raise ValueError(f"inputs: missing {missing}, unknown {extra}; the graph's inputs are {list(self.plan.inputs)}")
        out = {}
        for name in self.plan.inputs:
            x = np.asarray(inputs[name], dtype=np.float64)
            size, ch = self.plan.pops[name].size, self.plan.pops[name].out_channels
            want = (size,) if ch == 1 else (size, ch)
            if x.ndim != 1 + len(want) or x.shape[1:] != want or x.shape[0] < steps:
                raise ValueError(f"inputs[{name!r}]: expected shape {(steps,) + want}, got {x.shape}")
            x = x[:steps]
            if not np.all(np.isfinite(x)):
                raise ValueError(f"inputs[{name!r}]: values must be finite")
            binary = bool(np.all((x == 0) | (x == 1)))
            if not binary:
                if self.plan.precision == "fixed" and not np.all(x == np.round(x)):
                    raise ValueError(f"inputs[{name!r}]: fixed precision takes integer (graded) inputs")
                bad = [pr.name for pr in self.plan.projs.values() if pr.pre == name and pr.how != "native"]
                if bad:  # modulators take graded values (a reward signal); plastic synapses need spikes
                    raise ValueError(f"inputs[{name!r}]: graded (non 0/1) inputs can only feed static projections "
                                     f"and modulators; {bad} need spikes")
            out[name] = x
        return out

    def run(self, inputs: Mapping[str, np.ndarray], steps: int, *, readback: bool = True,
            timeout: float | None = None) -> dict:
        """Run one episode of ``steps`` steps; see the class docstring."""
        if self._closed:
            raise RuntimeError("this LavaNetwork is closed")
        x = self._check_inputs(inputs, int(steps))
        memory.check(memory.lava_run(self.graph, int(steps)), self.memory_limit)
        plan, fault, n = self.plan, self.fault, int(steps)

        def job():
            from .lowering import run_plan  # imported in the child; lava is already loaded

            return run_plan(plan, x, n, readback=readback, fault=fault)

        result = run_isolated(job, timeout=timeout or self.timeout, what=f"Lava run ({n} steps)")
        self._last = result
        return result["outputs"]

    def episode(self, inputs: Mapping[str, np.ndarray]) -> Episode:
        """One episode of ``inputs`` (its length from the first input): outputs and final plastic
        weights (:class:`plastix.backends.base.Episode`, the interface every backend's network offers)."""
        if not inputs:
            raise ValueError("episode: no inputs (the run length comes from them)")
        steps = int(np.shape(next(iter(inputs.values())))[0])
        outputs = self.run(inputs, steps)
        return Episode({k: np.asarray(v) for k, v in outputs.items()}, self.weights())

    def weights(self) -> dict:
        """Final weights ``(n_post, n_pre)`` of every plastic projection after the last run, in IR
        units before mask and sign (the learning engine's integers in fixed point): ``W``, or for the
        SpikePropamine rules (HebbianDecay / Oja / BCM) the weight in effect ``W + alpha E``
        (:mod:`plastix.ir.rules`; their ``W`` never changes, ``E`` alone is in :meth:`state` as
        ``"<proj>.e"``), as the torch backend's ``weights(state)`` returns them."""
        if self._last is None:
            raise RuntimeError("run() the network first")
        return {k: v.copy() for k, v in self._last["weights"].items()}

    def state(self) -> dict:
        if self._last is None:
            raise RuntimeError("run() the network first")
        return {k: v.copy() for k, v in self._last["state"].items()}

    def support(self) -> dict:
        return self.plan.report()

    def close(self) -> None:
        """Nothing stays alive between runs; this only marks the network unusable."""
        self._closed = True

    def __enter__(self) -> "LavaNetwork":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compile(graph: Graph, precision: str = "fixed", *, timeout: float = 120.0, learning_engine: str = "auto",
            debug_fault: FaultSpec | None = None, memory_limit: int | str | None = None) -> LavaNetwork:  # noqa: A001
    """Lower ``graph`` for Lava in ``"fixed"`` (Loihi ``fixed_pt``) or ``"float"`` (``floating_pt``).

    ``timeout`` (seconds) bounds every run, compile and process start-up included.
    ``learning_engine="auto"`` puts every rule the Loihi learning engine can run on a LearningDense
    (exact for LoihiRule, approximate for pair / global three-factor STDP, as :func:`support` says);
    ``"exact"`` host-emulates the approximate ones with the IR's own math. Every ``run`` first
    estimates its memory (:func:`plastix.backends.memory.lava_run`) and refuses above ``memory_limit``.
    Raises :class:`plastix.ir.UnsupportedKindError` for kinds the backend cannot run and
    ``ValueError`` for values fixed point cannot represent.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"compile() takes a plastix.ir.Graph, got {type(graph).__name__}")
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    plan = make_plan(graph, precision, learning_engine=learning_engine)
    return LavaNetwork(plan, timeout=timeout, fault=debug_fault, graph=graph, memory_limit=memory_limit)

