r"""The Loihi report of a model (issue 10): lowering status, quantisation error, resources,
measured activity and a modelled energy per step.

:func:`build_report` runs the model on the torch backend (float64) over an input set (given, or
:func:`probe_inputs`) and returns a JSON-able dict; :func:`write_report` writes it as
``report.json`` + ``report.md`` (+ PNG plots, :mod:`plastix.deploy.plots`) into a folder.

* **status** -- :func:`plastix.backends.lava.support` in float and, when the graph has a fixed-point
  form, in fixed point (of :func:`plastix.backends.quantize.quantize_graph`'s output): per
  population, projection, rule and modulator ``native`` / ``learning engine`` / ``host-emulated``
  with the reason.
* **quantisation** -- Loihi formats (8-bit weight mantissa + exponent, 12-bit decays, 24-bit state):
  per projection the weight error ``|W_q / s - W|`` (``s`` the post population's power-of-two
  scale) relative to ``max |W|``; and the spike-train change on the input set: the fraction of
  (step, neuron) entries of every spiking population that differ between the float model and the
  quantised one (run in Loihi fixed point, bit-exact to Lava, for static graphs with a fixed-point
  form; otherwise the Loihi-rounded values, divided back by the scale, run in float64 with the
  rules in their own units).
* **resources** -- :func:`plastix.deploy.loihi2.resources`.
* **activity** (measured on the input set, per step, averaged): ``spikes`` sent by spiking and input
  populations, ``synaptic_ops`` (each spike times the synapses it reaches; nonzero graded values
  count as events), ``plasticity_ops`` (plastic synapses updated: all of them every step,
  ``/t_epoch`` for Loihi rules), ``neuron_updates`` (CUBA LIF / LI neurons; host-emulated gated
  units are not neurocore work and are not counted).
* **energy** -- :func:`plastix.deploy.loihi2.energy_per_step`, labelled ``"model"``.
* **frontend** (only if the graph's metadata has a ``frontend_note``) -- a stage the trainer runs
  outside the IR before the graph's inputs (the one-shot character model's CNN), named so that the
  report does not pass for the whole model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

import plastix.backends as backends
from plastix.ir import Graph, UnsupportedKindError

from . import loihi2

DEFAULT_STEPS = 100
PROBE_RATE = 0.2


def probe_inputs(graph: Graph, steps: int = DEFAULT_STEPS, seed: int = 0) -> dict[str, np.ndarray]:
    """A reproducible input set: Bernoulli(0.2) spikes (0/1) for every input, ``(steps, size[, channels])``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    out = {}
    for name in graph.inputs:
        p = graph.population(name)
        shape = (steps, p.size) if p.channels == 1 else (steps, p.size, p.channels)
        out[name] = (rng.random(shape) < PROBE_RATE).astype(np.float64)
    return out


def check_inputs(graph: Graph, inputs: dict[str, np.ndarray]) -> int:
    """Validate an input set against the graph; returns its number of steps."""
    missing = [n for n in graph.inputs if n not in inputs]
    extra = [n for n in inputs if n not in graph.inputs]
    if missing or extra:
        raise ValueError(f"inputs: missing {missing}, unknown {extra}; the model's inputs are {list(graph.inputs)}")
    steps = None
    for n in graph.inputs:
        p = graph.population(n)
        want = (p.size,) if p.channels == 1 else (p.size, p.channels)
        x = np.asarray(inputs[n])
        if x.ndim != 1 + len(want) or tuple(x.shape[1:]) != want:
            raise ValueError(f"inputs[{n!r}]: expected shape (steps, {', '.join(map(str, want))}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"inputs[{n!r}]: values must be finite")
        if steps is not None and x.shape[0] != steps:
            raise ValueError(f"inputs[{n!r}]: {x.shape[0]} steps, others have {steps}")
        steps = int(x.shape[0])
    return steps or 0


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """An input set from an ``.npz`` file (one array per graph input). The archive's declared
    sizes (as float64) must fit the memory limit (:mod:`plastix.backends.memory`) before anything
    is decompressed; pickled arrays are refused."""
    import zipfile

    from plastix.backends import memory

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input set {path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            est = memory.Estimate(f"the input set {path}")
            for info in zf.infolist():  # each .npy member becomes a float64 array (at most 8x a byte array)
                est.add(info.filename, 8 * info.file_size)
        memory.check(est)
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except memory.MemoryLimitError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"input set {path}: not a readable .npz file ({exc})") from None


def run_torch(graph: Graph, inputs: dict[str, np.ndarray], *, all_populations: bool = False) -> tuple[dict, dict]:
    """Run ``graph`` on the torch backend in float64 (P = B = 1); outputs name -> ``(T, size[, ch])``
    numpy arrays (every population with ``all_populations``) and the final plastic weights (IR units,
    before mask and sign; ``TorchNetwork.weights``)."""
    g = graph.replace(outputs=tuple(p.name for p in graph.populations)) if all_populations else graph
    ep = backends.compile(g, "torch", "float").episode(inputs)
    return ep.outputs, ep.weights


def _events(x: np.ndarray) -> np.ndarray:
    """(T, size): 1 where a population sends something (spike / nonzero graded value)."""
    x = np.asarray(x)
    return (x != 0).reshape(x.shape[0], x.shape[1], -1).any(-1)


def measure_activity(graph: Graph, outs: dict) -> dict:
    """Per-step averages of spikes, synaptic ops, plasticity ops and neuron updates (module doc)."""
    T = int(next(iter(outs.values())).shape[0]) if outs else 0
    spiking = {p.name for p in graph.populations if p.kind in ("input", "cuba_lif")}
    spikes = sum(float(_events(outs[n]).sum()) for n in spiking) / max(T, 1)
    syn = 0.0
    plast = 0.0
    for pr in graph.projections:
        fan = loihi2._nnz(pr).sum(0)  # (n_pre,) synapses each pre neuron reaches
        syn += float((_events(outs[pr.pre]) * fan).sum()) / max(T, 1)
        if pr.rule is not None:
            n = float(loihi2._nnz(pr).sum())
            plast += n / max(int(getattr(pr.rule, "t_epoch", 1)), 1)
    neurons = sum(p.size for p in graph.populations if p.kind in ("cuba_lif", "li"))  # gated units run on the host
    per_pop = {n: float(_events(outs[n]).mean()) for n in spiking}
    return {"steps": T, "spikes": spikes, "synaptic_ops": syn, "plasticity_ops": plast, "neuron_updates": float(neurons),
            "spike_rate": per_pop}


def _fixed_form(graph: Graph) -> tuple[Graph, str]:
    """The graph both the torch fixed mode and the Lava backend run in Loihi fixed point and ``""``,
    or the reason why not (the backends' own error): ``graph`` itself when it is already
    representable (a model trained in Loihi units, e.g. projected with
    :func:`plastix.backends.hardware_aware.project_to_engine`: its rule coefficients stay in the
    units they were trained in), else ``quantize_graph(graph)``."""
    from plastix.backends.lava.plan import make_plan
    from plastix.backends.quantize import quantize_graph

    for q in (graph, quantize_graph(graph)):
        try:
            backends.compile(q, "torch", "fixed")
            make_plan(q, "fixed")
        except (UnsupportedKindError, ValueError) as exc:
            why = f"no fixed-point form: {exc}"
            continue
        return q, ""
    return q, why


def _dequantised(q: Graph, scales: dict) -> Graph:
    """``q`` with every scaled value divided by its population's scale (IR units again, Loihi rounding kept)."""
    pops = []
    for p in q.populations:
        s = scales.get(p.name)
        if s is None:
            pops.append(p)
        elif p.kind == "cuba_lif":
            pops.append(p.replace(vth=np.asarray(p.vth) / s, bias=np.asarray(p.bias) / s))
        else:
            pops.append(p.replace(bias=np.asarray(p.bias) / s))
    projs = [pr.replace(weight=np.asarray(pr.weight) / scales[pr.post]) if pr.post in scales else pr
             for pr in q.projections]
    return q.replace(populations=tuple(pops), projections=tuple(projs))


def quantisation(graph: Graph, inputs: dict, float_outs: dict) -> dict:
    """Weight and spike-train errors of the Loihi-quantised model (module doc)."""
    from plastix.backends.quantize import effective_weight

    q, why_not = _fixed_form(graph)
    if not why_not and graph.plastic_projections and q is not graph:  # quantize_graph scales weights, not rules
        why_not = "plastic: quantize_graph leaves rule coefficients in IR units"
    scales = {k.split("quantize.scale.", 1)[1]: float(v) for k, v in (q.metadata or {}).items()
              if k.startswith("quantize.scale.") and k not in (graph.metadata or {})}
    weights, errs = {}, []
    for pr, qpr in zip(graph.projections, q.projections):
        if pr.post not in scales:
            continue
        w = effective_weight(pr)
        e = np.abs(effective_weight(qpr) / scales[pr.post] - w)
        rel = e / max(float(np.abs(w).max()), 1e-300)
        errs.append(rel[loihi2._nnz(pr)].ravel())
        weights[pr.name] = {"max_abs": float(e.max()), "max_rel": float(rel.max()), "mean_rel": float(rel.mean()),
                            "scale": scales[pr.post]}
    if why_not:
        mode = (f"Loihi-rounded values divided back by each population's scale, run in float64 with the rules "
                f"in their own units ({why_not})")
        q_outs, _ = run_torch(_dequantised(q, scales), inputs, all_populations=True)
        scales = {}
    else:
        mode = "Loihi fixed point (torch fixed mode, bit-exact to Lava fixed_pt)"
        qa = q.replace(outputs=tuple(p.name for p in q.populations))
        q_outs = backends.compile(qa, "torch", "fixed").episode(inputs).outputs
    spikes = {}
    for p in graph.populations:
        if p.kind == "cuba_lif":
            a, b = float_outs[p.name] != 0, q_outs[p.name] != 0
            spikes[p.name] = {"changed_fraction": float((a != b).mean()), "spikes_float": int(a.sum()),
                              "spikes_quantised": int(b.sum())}
        elif p.kind == "li":
            d = np.abs(q_outs[p.name] / scales.get(p.name, 1.0) - float_outs[p.name])
            spikes[p.name] = {"readout_max_abs_change": float(d.max())}
    hist = np.concatenate(errs) if errs else np.zeros(0)
    return {"mode": mode, "formats": "8-bit weight mantissa + per-projection exponent, 12-bit du/dv, 24-bit u/v",
            "weights": weights, "outputs": spikes, "weight_rel_errors": hist.tolist(),
            "as_given": bool(not why_not and q is graph)}


def build_report(graph: Graph, inputs: Optional[dict] = None, *, steps: int = DEFAULT_STEPS, seed: int = 0) -> dict:
    """The full report dict (module doc). ``inputs`` name -> ``(T, size[, ch])``; default
    :func:`probe_inputs` (``steps``, ``seed``)."""
    from plastix.backends.lava import support
    from plastix.backends.lava.plan import make_plan

    source = "probe (Bernoulli spikes)" if inputs is None else "given"
    inputs = probe_inputs(graph, steps, seed) if inputs is None else inputs
    T = check_inputs(graph, inputs)
    status = {"float": support(graph, "float")}
    q, why_not = _fixed_form(graph)
    try:
        status["fixed"] = support(q, "fixed") if not why_not else {"unsupported": why_not}
    except (UnsupportedKindError, ValueError) as exc:
        status["fixed"] = {"unsupported": str(exc)}
    engines = {n: p.engine for n, p in make_plan(graph, "float").projs.items() if p.engine}
    outs, w_end = run_torch(graph, inputs, all_populations=True)
    act = measure_activity(graph, outs)
    w_change = {}
    for n, w in w_end.items():  # absent (masked) synapses have no weight to change
        pr = graph.projection(n)
        w_change[n] = ((w - np.asarray(pr.weight)) * (1.0 if pr.mask is None else np.asarray(pr.mask))).tolist()
    note = (graph.metadata or {}).get("frontend_note")  # a trainer-side stage outside the IR (e.g. a CNN)
    return {"graph": graph.summary(), **({"frontend": str(note)} if note else {}),
            "input_set": {"steps": T, "source": source, "seed": seed, "probe_rate": PROBE_RATE},
            "status": status, "quantisation": quantisation(graph, inputs, outs),
            "resources": loihi2.resources(graph, status["float"], engines), "activity": act,
            "energy": loihi2.energy_per_step(act),
            "_raster": {n: np.asarray(outs[n]).reshape(T, -1).tolist() for n in outs
                        if graph.population(n).kind in ("input", "cuba_lif")},
            "_weight_change": w_change}


def nodes_listed(report: dict) -> set[str]:
    """Every node and rule name the report gives a status for."""
    st = report["status"]["float"]
    return set(st["populations"]) | set(st["projections"]) | {f"rule:{n}" for n in st["rules"]} | set(st["modulators"])


def write_report(report: dict, folder: str | Path, *, plots: bool = True) -> list[Path]:
    """Write ``report.json``, ``report.md`` and (``plots``) the PNGs into ``folder`` (must exist).
    Returns the written paths."""
    folder = Path(folder)
    data = {k: v for k, v in report.items() if not k.startswith("_")}
    paths = [folder / "report.json"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    figs = []
    if plots:
        from .plots import save_plots

        figs = save_plots(report, folder)
    md = folder / "report.md"
    md.write_text(render_markdown(report, [p.name for p in figs]))
    return paths + [md] + figs


def _table(rows: list[list[Any]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render_markdown(report: dict, figures: list[str] = ()) -> str:
    """The report as Markdown (the summary people read; numbers as in ``report.json``)."""
    st, q, res, act, en = (report[k] for k in ("status", "quantisation", "resources", "activity", "energy"))
    f = st["float"]
    lines = ["# Loihi report", "", "```", report["graph"], "```", ""]
    if "frontend" in report:
        lines += ["## Front end (not in the IR, not deployed)", "", report["frontend"] + ". The report covers the "
                  "graph only; the front end runs on the host.", ""]
    lines += [f"Input set: {report['input_set']['steps']} steps ({report['input_set']['source']}).", "",
             "## Lowering status (Lava, float)", ""]
    rows = [[f"population {n}", v["kind"], v["how"], v["why"]] for n, v in f["populations"].items()]
    rows += [[f"projection {n}", "", v["how"], v["why"]] for n, v in f["projections"].items()]
    rows += [[f"rule on {n}", v["kind"], v["how"], v["why"]] for n, v in f["rules"].items()]
    rows += [[f"modulator {n}", "", v["how"], v["why"]] for n, v in f["modulators"].items()]
    lines += [_table(rows, ["node", "kind", "how", "why"]), ""]
    fx = st.get("fixed", {})
    lines += ["Fixed point: " + (f"unsupported ({fx['unsupported']})" if "unsupported" in fx else
                                 "every node lowers in Loihi fixed point (" +
                                 ("the model as given" if q.get("as_given") else "`quantize_graph` output") + ")"), ""]
    lines += ["## Quantisation", "", f"Formats: {q['formats']}. Spike-train comparison: {q['mode']}.", ""]
    if q["weights"]:
        lines += [_table([[n, f"{v['max_rel']:.3g}", f"{v['mean_rel']:.3g}", v["scale"]]
                          for n, v in q["weights"].items()],
                         ["projection", "max rel. weight error", "mean rel. weight error", "scale"]), ""]
        lines += [_table([[n, *(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())]
                          for n, d in q["outputs"].items()], ["population", "change", "", ""]), ""]
    elif q.get("as_given"):
        lines += ["The model is already Loihi-representable: it runs in fixed point as given (no rounding).", ""]
    else:
        lines += ["No CUBA LIF / LI population: nothing is quantised to Loihi formats.", ""]
    lines += ["## Resources (Loihi 2 model)", "",
              "Limits: " + ", ".join(f"{k} = {v:,}" for k, v in res["limits"].items()) +
              " (sources: `plastix.deploy.loihi2`).", ""]
    rows = [[n, v["kind"], v["neurons"], v["synapses_in"], v["max_fan_in"], v["max_fan_out"],
             v["cores"] if v["on_neurocores"] else ("spike source" if v["kind"] == "input" else "host"), v["fits"]] for n, v in res["populations"].items()]
    lines += [_table(rows, ["population", "kind", "neurons", "synapses in", "max fan-in", "max fan-out", "cores", "fits"]),
              "", f"Cores needed: {res['cores']} ({res['chips']} chip(s)).", ""]
    if res["rules"]:
        rows = [[n, v["kind"], v["how"], v["synapses"], v["pre_traces"], v["post_traces"], v["tag"],
                 v.get("delay_var", False)] for n, v in res["rules"].items()]
        lines += [_table(rows, ["rule on", "kind", "how", "plastic synapses", "pre traces", "post traces", "tag",
                                "d (delay var.)"]), ""]
    lines += ["## Activity per step (measured, torch float64 on the input set)", "",
              _table([[k, f"{act[k]:.4g}"] for k in ("spikes", "synaptic_ops", "plasticity_ops", "neuron_updates")],
                     ["quantity", "per step"]), "",
              "## Energy per step (**model**, not a measurement)", "", f"Source: {en['source']}.", "",
              _table([[k, f"{act[k]:.4g}", f"{en['coefficients_pJ'][c]} pJ", f"{en['terms_pJ'][k]:.4g} pJ"]
                      for k, c in (("synaptic_ops", "synaptic_op"), ("plasticity_ops", "plasticity_op"),
                                   ("neuron_updates", "neuron_update"), ("spikes", "spike"))],
                     ["op", "count / step", "coefficient (model)", "energy (model)"]), "",
              f"Total (model): {en['total_pJ']:.4g} pJ per step.", ""]
    if "task" in report:
        t = report["task"]
        lines += [f"## Task accuracy ({t['problems']} seeded problems, seed {t['seed']}, M = {t['cues']})", "",
                  _table([[k, f"{a:.4f}"] for k, a in t["accuracy"].items()], ["backend and precision", "accuracy"]), ""]
        if "fixed_unsupported" in t:
            lines += [f"Fixed point not run: {t['fixed_unsupported']}", ""]
        if "identical_counts_fixed" in t:
            lines += [f"torch fixed and Lava fixed give the same output spike counts on "
                      f"{t['identical_counts_fixed']:.1%} of problems.", ""]
    if figures:
        lines += ["## Plots", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)
