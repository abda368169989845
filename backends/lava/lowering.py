"""Build and run the Lava processes of a :class:`~plastix.backends.lava.plan.Plan` (imports lava).

Runs inside the child process of :func:`plastix.backends.lava.runner.run_isolated`. One run:
RingBuffer sources (inputs, column ``t`` = plastix step ``t``) -> Dense / LearningDense /
host-emulated synapses -> LIF / ThreeFactorLIF / LIF-as-LI / HostGatedPopulation; spikes of spiking
outputs and gated units' outputs (flat ``(size * channels,)``, unit-major) go to sink RingBuffers, ``v`` of LI outputs to Monitors, all read once at the end, then weights and ``u``/``v``.
Timing equals the IR's (ir/synapses.py): plastix step ``t`` is Lava time step ``t + 1``.

``PROCESS_TABLE`` is the explicit kind -> (Process, ProcessModel per precision) table; it is also
passed to the run configuration as ``exception_proc_model_map``.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.learning.learning_rule import Loihi2FLearningRule, Loihi3FLearningRule
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.models import (PyDelayDenseModelBitAcc, PyDelayDenseModelFloat, PyDenseModelBitAcc,
                                    PyDenseModelFloat, PyLearningDenseModelBitApproximate, PyLearningDenseModelFloat)
from lava.proc.dense.process import DelayDense, Dense, LearningDense
from lava.proc.io.sink import PyReceiveModelFixed, PyReceiveModelFloat
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import PySendModelFixed, PySendModelFloat
from lava.proc.io.source import RingBuffer as Source
from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat, PyLifRefractoryModelFloat
from lava.proc.lif.process import LIF, LIFRefractory
from lava.proc.monitor.process import Monitor
from lava.utils.weightutils import SignMode

from . import hostmath
from .plan import ENGINE, HOST, Plan
from .procs.fault import FaultInjector, PyFaultInjectorFixed, PyFaultInjectorFloat
from .procs.gated_population import HostGatedPopulation, PyHostGatedPopulationModel
from .procs.host_plastic_dense import HostPlasticDense, PyHostPlasticDenseModel, PyHostPlasticDenseModelFixed
from .procs.three_factor_lif import PyThreeFactorLIFFixed, PyThreeFactorLIFFloat, ThreeFactorLIF
from .runner import LavaRunError

__all__ = ["PROCESS_TABLE", "run_plan"]

# kind -> (Process, {"float": model, "fixed": model})
PROCESS_TABLE = {
    "input": (Source, {"float": PySendModelFloat, "fixed": PySendModelFixed}),
    "output": (Sink, {"float": PyReceiveModelFloat, "fixed": PyReceiveModelFixed}),
    "cuba_lif": (LIF, {"float": PyLifModelFloat, "fixed": PyLifModelBitAcc}),
    "cuba_lif(refractory)": (LIFRefractory, {"float": PyLifRefractoryModelFloat}),
    "cuba_lif(three-factor post)": (ThreeFactorLIF, {"float": PyThreeFactorLIFFloat, "fixed": PyThreeFactorLIFFixed}),
    "li": (LIF, {"float": PyLifModelFloat, "fixed": PyLifModelBitAcc}),
    "projection": (Dense, {"float": PyDenseModelFloat, "fixed": PyDenseModelBitAcc}),
    "projection(delay)": (DelayDense, {"float": PyDelayDenseModelFloat, "fixed": PyDelayDenseModelBitAcc}),
    "projection(learning engine)": (LearningDense, {"float": PyLearningDenseModelFloat,
                                                    "fixed": PyLearningDenseModelBitApproximate}),
    "projection(host-emulated)": (HostPlasticDense, {"float": PyHostPlasticDenseModel,
                                                           "fixed": PyHostPlasticDenseModelFixed}),
    "gated": (HostGatedPopulation, {"float": PyHostGatedPopulationModel}),
    "fault": (FaultInjector, {"float": PyFaultInjectorFloat, "fixed": PyFaultInjectorFixed}),
}

_TAG = {"float": "floating_pt", "fixed": "fixed_pt"}


def _run_cfg(precision: str) -> Loihi2SimCfg:
    exc = {proc: models[precision] for proc, models in PROCESS_TABLE.values() if precision in models}
    return Loihi2SimCfg(select_tag=_TAG[precision], exception_proc_model_map=exc)


def _learning_rule(engine, precision: str):
    common = dict(dw=engine["dw"], dt=engine["dt"] if engine["dt"].strip() else None,
                  dd=engine["dd"] if engine["dd"].strip() else None,
                  x1_impulse=engine["x1_impulse"], x1_tau=engine["x1_tau"],
                  x2_impulse=engine["x2_impulse"], x2_tau=engine["x2_tau"],
                  t_epoch=engine["t_epoch"], rng_seed=engine["rng_seed"])
    if engine["kind"] == "3f":
        return Loihi3FLearningRule(**common)
    return Loihi2FLearningRule(**common, y1_impulse=engine["y1_impulse"], y1_tau=engine["y1_tau"])


def _keep_received_y(rule) -> None:
    """Loihi3FLearningRule leaves the y traces to the neuron but still gives them tau 2^16 - 1, so
    the engine would decay the y1 / y2 / y3 it received once more in each epoch (float: by
    exp(-1/65535); fixed: stochastically, sometimes by 1). tau = inf makes that decay exactly 1, so
    the engine uses ThreeFactorLIF's values as sent. Set after the LearningDense exists (its tau
    Vars keep Lava's integers; the ProcessModel reads the rule object)."""
    rule._y1_tau = rule._y2_tau = rule._y3_tau = np.inf


def _build(plan: Plan, inputs: dict, steps: int, fault):
    fixed = plan.precision == "fixed"
    dtype = np.int32 if fixed else np.float64
    procs: dict[str, object] = {}
    sources, sinks, monitors = {}, {}, {}
    rules = {}
    for p in plan.pops.values():
        if p.kind == "input":
            x = np.asarray(inputs[p.name])
            data = x.reshape(x.shape[0], -1).T.astype(dtype)  # (size * channels, T), unit-major
            sources[p.name] = procs[p.name] = Source(data=data)
            continue
        if p.kind == "gated":
            procs[p.name] = HostGatedPopulation(size=p.size, cell=p.cell, name=p.name)
            continue
        q = p.params
        kw = dict(shape=(p.size,), du=q["du"], dv=q["dv"], vth=q["vth"], bias_mant=q["bias_mant"],
                  bias_exp=q["bias_exp"], u=q["u"], v=q["v"], name=p.name)
        if p.three_factor is not None:
            # the 3F LearningDense needs the rule object on the neuron (LearningNeuronModel reads it)
            rules[p.name] = None
            procs[p.name] = (p.three_factor, kw)  # built after the rules exist
        elif q["refractory"]:
            procs[p.name] = LIFRefractory(refractory_period=q["refractory"], **kw)
        else:
            procs[p.name] = LIF(**kw)
    conns = {}
    for pr in plan.projs.values():
        if pr.how == ENGINE:
            rule = _learning_rule(pr.engine, plan.precision)
            extra = dict(sign_mode=SignMode(pr.dense["sign_mode"]))
            if fixed:
                extra.update(weight_exp=pr.dense["weight_exp"], num_weight_bits=pr.dense["num_weight_bits"])
            tag = np.broadcast_to(pr.inits["t"], pr.weights.shape).astype(pr.weights.dtype)
            ld = LearningDense(weights=pr.weights, learning_rule=rule, name=pr.name, tag_1=tag, **extra)
            for k in ("x1", "x2") + (("y1",) if pr.engine["kind"] == "2f" else ()):
                var = getattr(ld, k)
                var.init = np.broadcast_to(pr.inits[k], var.shape).astype(pr.weights.dtype)
            conns[pr.name] = ld
            if pr.engine["kind"] == "3f":
                _keep_received_y(rule)
                rules[pr.post] = rule
        elif pr.how == HOST:
            conns[pr.name] = HostPlasticDense(weights=pr.weights, rule=pr.host, name=pr.name,
                                              mod_weight=_host_mod_weight(plan, pr), fixed=fixed,
                                              mask=pr.mask, sign=pr.sign)
        else:
            extra = {}
            if fixed:
                extra = dict(weight_exp=pr.dense["weight_exp"], num_weight_bits=pr.dense["num_weight_bits"],
                             sign_mode=SignMode(pr.dense["sign_mode"]))
            x = inputs.get(pr.pre)
            if plan.pops[pr.pre].kind == "gated" or (x is not None and not np.all((x == 0) | (x == 1))):
                extra["num_message_bits"] = 24  # graded input values: a = W x (Dense uses a dot product)
            if pr.delay:
                conns[pr.name] = DelayDense(weights=pr.weights, delays=int(pr.delay), name=pr.name, **extra)
            else:
                conns[pr.name] = Dense(weights=pr.weights, name=pr.name, **extra)
    for name, rule in rules.items():
        post, kw = procs[name]
        procs[name] = ThreeFactorLIF(learning_rule=rule, **post, **kw)
    # wiring
    for pr in plan.projs.values():
        c = conns[pr.name]
        procs[pr.pre].s_out.connect(c.s_in)
        c.a_out.connect(procs[pr.post].a_in)
        if pr.how == ENGINE:
            post = procs[pr.post]
            if pr.engine["kind"] == "3f":
                post.s_out_bap.connect(c.s_in_bap)
                post.s_out_y1.connect(c.s_in_y1)
                post.s_out_y2.connect(c.s_in_y2)
                post.s_out_y3.connect(c.s_in_y3)
            else:
                post.s_out.connect(c.s_in_bap)
        elif pr.how == HOST:
            procs[pr.post].s_out.connect(c.s_post)
            if c.has_mod:
                procs[plan.graph.modulator(pr.modulator).source].s_out.connect(c.s_mod)
    for key, m in plan.mods.items():
        if m.how != "native":
            continue
        extra = {}
        if fixed:
            extra = dict(weight_exp=m.dense["weight_exp"], num_weight_bits=m.dense["num_weight_bits"],
                         sign_mode=SignMode(m.dense["sign_mode"]))
        # graded: a modulator may read graded input values (a reward), passed on as W x
        md = Dense(weights=m.weights, num_message_bits=24, name=f"mod_{m.name}_{m.post}_{m.channel}", **extra)
        procs[m.source].s_out.connect(md.s_in)
        md.a_out.connect(procs[m.post].a_third_factor_in if m.channel == 0 else procs[m.post].a_y3_in)
    for name in plan.outputs:
        p = plan.pops[name]
        if p.kind in ("lif", "gated"):
            sinks[name] = Sink(shape=(p.size * p.out_channels,), buffer=steps)
            procs[name].s_out.connect(sinks[name].a_in)
        elif p.kind == "li":
            mon = Monitor()
            mon.probe(procs[name].v, steps)
            monitors[name] = mon
    extra_procs = []
    if fault is not None:
        anchor = procs[next(n for n, p in plan.pops.items() if p.kind != "input")]
        inj = FaultInjector(shape=anchor.s_out.shape, at=fault.at, message=fault.message, mode=fault.mode, name="fault")
        anchor.s_out.connect(inj.s_in)
        extra_procs.append(inj)
    return procs, conns, sources, sinks, monitors, extra_procs


def _host_mod_weight(plan: Plan, pr):
    if not pr.modulator:
        return None
    m = plan.graph.modulator(pr.modulator)
    return {"weight": np.asarray(m.weight, dtype=np.float64), "bias": np.asarray(m.bias, dtype=np.float64),
            "channels": int(m.channels), "size": int(m.size), "activation": m.activation.value}


def _worker_errors(root) -> tuple[str | None, str]:
    """(process name, message + traceback) of the first Lava worker that raised."""
    runtime = getattr(root, "runtime", None) or getattr(root, "_runtime", None)
    if runtime is None:
        return None, ""
    infra = runtime._messaging_infrastructure
    procs = list(runtime._executable.proc_builders.keys()) if runtime._executable.proc_builders else []
    for i, actor in enumerate(infra.actors):
        try:
            exc = actor.exception
        except Exception:  # noqa: BLE001
            continue
        if exc:
            err, tb = exc
            pname = None
            if i < len(procs):
                pr = procs[i]
                pname = f"{type(pr).__name__} {getattr(pr, 'name', '')!r}"
            return pname or "the Lava runtime service", f"{type(err).__name__}: {err}\n{tb}"
    return None, ""


def _shutdown_after_error(root) -> None:
    """``stop()`` hangs after a worker error (lava-notes Q6); stop the messaging infrastructure only."""
    runtime = getattr(root, "runtime", None) or getattr(root, "_runtime", None)
    if runtime is None:
        return
    try:
        runtime._messaging_infrastructure.stop()
    except Exception:  # noqa: BLE001 - the whole process group is killed afterwards anyway
        pass


def run_plan(plan: Plan, inputs: dict, steps: int, *, readback: bool = True, fault=None) -> dict:
    """Build, run ``steps`` steps, read outputs (and weights / state), stop. Runs in the child."""
    procs, conns, sources, sinks, monitors, extra = _build(plan, inputs, steps, fault)
    root = next(iter(sinks.values()), None) or next(iter(procs.values()))
    if not hasattr(root, "run"):  # pragma: no cover
        raise LavaRunError("nothing to run")
    cfg = _run_cfg(plan.precision)
    try:
        root.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    except Exception as exc:  # noqa: BLE001
        pname, detail = _worker_errors(root)
        _shutdown_after_error(root)
        if pname:
            first = detail.strip().splitlines()[0] if detail else ""
            raise LavaRunError(f"Lava process {pname} raised during the run: {first}", process=pname,
                               remote_traceback=detail) from None
        raise LavaRunError(f"Lava run failed: {type(exc).__name__}: {exc}") from None
    try:
        out = {}
        for name, sink in sinks.items():
            data = np.asarray(sink.data.get()).T.astype(np.float64)  # (T, size * channels)
            ch = plan.pops[name].out_channels
            out[name] = (data if ch == 1 else data.reshape(data.shape[0], -1, ch)).copy()
        for name, mon in monitors.items():
            v = np.asarray(mon.get_data()[name]["v"], dtype=np.float64)
            out[name] = v / plan.pops[name].params["v_scale"]
        for name in plan.outputs:
            if plan.pops[name].kind == "input":
                out[name] = np.asarray(inputs[name], dtype=np.float64).copy()
        result = {"outputs": out, "weights": {}, "state": {}}
        if readback:
            for pr in plan.projs.values():
                if pr.how in (ENGINE, HOST):
                    w = np.asarray(conns[pr.name].weights.get(), dtype=np.float64)
                    if plan.precision == "fixed" and pr.how == ENGINE:
                        w = w * 2.0 ** pr.dense["weight_exp"]
                    if pr.how == HOST and hasattr(pr.host, "alpha"):  # SpikePropamine: W stays, E learns
                        e = np.asarray(conns[pr.name].e.get(), dtype=np.float64)
                        result["state"][f"{pr.name}.e"] = e
                        w = hostmath.effective_weight(pr.host, w, {"e": e})  # W + alpha E, the IR's weight in effect
                    result["weights"][pr.name] = w
                    if pr.how == ENGINE and pr.engine["dt"].strip():
                        result["state"][f"{pr.name}.tag_1"] = np.asarray(conns[pr.name].tag_1.get(), dtype=np.float64)
                    if pr.how == ENGINE and pr.engine["dd"].strip():
                        result["state"][f"{pr.name}.tag_2"] = np.asarray(conns[pr.name].tag_2.get(), dtype=np.float64)
            for name, p in plan.pops.items():
                if p.kind in ("lif", "li"):
                    result["state"][f"{name}.u"] = np.asarray(procs[name].u.get(), dtype=np.float64)
                    result["state"][f"{name}.v"] = np.asarray(procs[name].v.get(), dtype=np.float64)
                elif p.kind == "gated":
                    result["state"][f"{name}.h"] = np.asarray(procs[name].h.get(), dtype=np.float64)
    except Exception:
        _shutdown_after_error(root)
        raise
    root.stop()
    return result
