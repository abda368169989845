"""The ``plastix`` command line (typer). Every command validates its inputs, prints a clear
error on bad files or options and exits non-zero on failure."""
from __future__ import annotations

import dataclasses
import inspect
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(help="plastix: train plastic networks and their learning rules, export one IR, "
                       "run it on torch or on Lava (Loihi emulation).", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _fail(msg: str, code: int = 2) -> "typer.Exit":
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _load(model: Path):
    from plastix.ir import IRValidationError, load
    from plastix.ir.nir_interop import read_nir

    try:
        if model.suffix in (".nir", ".h5", ".hdf5"):
            return read_nir(model)
        return load(model)
    except IRValidationError as exc:
        raise _fail(str(exc))


@app.command()
def info(model: Path = typer.Argument(..., help="a .plx model file (or a NIR file written by plastix)")) -> None:
    """Validate a model file and print its summary."""
    typer.echo(_load(model).summary())


@app.command()
def kinds() -> None:
    """List every IR kind (populations, cells, projections, modulators, rules) with its fields and equation."""
    from plastix.ir.registry import CATEGORIES, kinds as registered
    from plastix.ir.spec import spec_of

    for cat in CATEGORIES:
        for name, cls in registered(cat).items():
            typer.secho(f"[{cat}] {name}  ({cls.__name__})", bold=True)
            doc = inspect.cleandoc(cls.__doc__ or "")
            typer.echo("    " + doc.replace("\n", "\n    "))
            for f in dataclasses.fields(cls):
                spec = spec_of(f)
                kind = spec.role if spec.role != "array" else f"{spec.dtype} array {spec.shape or ''}".strip()
                default = "" if f.default is dataclasses.MISSING else f" = {getattr(f.default, 'value', f.default)!r}"
                typer.echo(f"      - {f.name}: {kind}{default}")
            typer.echo("")


class ExportFormat(str, Enum):
    nir = "nir"
    plx = "plx"


@app.command()
def export(model: Path = typer.Argument(..., help="input model (.plx, or NIR written by plastix)"),
           to: ExportFormat = typer.Option(ExportFormat.nir, help="output format"),
           out: Path = typer.Option(None, help="output path (default: next to the model)"),
           dt: float = typer.Option(None, help="nir only: the step (s) the time constants are written for (default "
                                    "the model's; spikes do not depend on it; snnTorch's import_from_nir needs 1e-4)")) -> None:
    """Convert a model: .plx -> NIR (static part + plasticity extension) or NIR -> .plx."""
    from plastix.ir import IRValidationError, UnsupportedKindError, save
    from plastix.ir.nir_interop import write_nir

    graph = _load(model)
    out = out or model.with_suffix(f".{to.value}")
    if dt is not None and to is not ExportFormat.nir:
        raise _fail("--dt applies to --to nir only")
    try:
        if to is ExportFormat.nir:
            write_nir(graph, out, dt=dt)
        else:
            save(graph, out)
    except (IRValidationError, UnsupportedKindError) as exc:
        raise _fail(f"cannot export to {to.value}: {exc}")
    typer.echo(f"wrote {out}")


class Reset(str, Enum):
    zero = "zero"
    snntorch_zero = "snntorch-zero"
    subtract = "subtract"


@app.command("import-nir")
def import_nir(path: Path = typer.Argument(..., help="a NIR file (e.g. from snnTorch, Norse, SpikingJelly, Lava-dl, "
                                                     "Sinabs)"),
               dt: float = typer.Option(None, help="seconds per step used to discretise NIR's ODEs (default: inferred "
                                        "from the file where it determines it, e.g. snnTorch's r = tau_mem / dt)"),
               reset: Reset = typer.Option(Reset.zero, help="how the writer reset its neurons: zero (NIR: to 0 in the "
                                           "step of the spike), snntorch-zero (snnTorch reset_mechanism='zero'), "
                                           "subtract (snnTorch's default; not representable)"),
               out: Path = typer.Option(None, help="output .plx path")) -> None:
    """Import a NIR graph written by a peer library into a .plx model; prints the dt it used and why."""
    from plastix.ir import IRValidationError, UnsupportedKindError, save
    from plastix.ir.nir_interop import import_nir_file

    try:
        res = import_nir_file(path, dt=dt, reset=reset.value)
    except (IRValidationError, UnsupportedKindError) as exc:
        raise _fail(str(exc))
    typer.echo(f"dt = {res.dt:g} s: {res.dt_source}")
    for note in res.notes:
        typer.echo(f"note: {note}")
    out = out or path.with_suffix(".plx")
    save(res.graph, out)
    typer.echo(res.graph.summary())
    typer.echo(f"wrote {out}")


@app.command("nir-peers")
def nir_peers(steps: int = typer.Option(300, min=10, help="steps of random input per case"),
              seed: int = typer.Option(0, help="seed of the nets and inputs")) -> None:
    """snnTorch and Norse write, read and simulate NIR files next to plastix: the spike comparison table of
    docs/results.md (needs the dev extras). Exits 1 when a verdict is not the documented one."""
    try:
        import norse.torch  # noqa: F401
        import snntorch  # noqa: F401
    except ImportError as exc:
        raise _fail(f"the peer check needs snnTorch and Norse ({exc}); install the dev extras: pip install -e '.[dev]'")
    from plastix.deploy.peers import check, table

    results, bad = check(steps, seed)
    typer.echo(table(results))
    for r in bad:
        typer.echo(f"UNEXPECTED: {r.case.peer} {r.case.direction} {r.case.net}: {r.verdict} (documented: {r.case.expect})")
    if bad:
        raise typer.Exit(1)


class Method(str, Enum):
    es = "es"
    bptt = "bptt"
    synq = "synq"
    gd = "gd"


@app.command()
def train(task: str = typer.Argument(..., help="es: iaf | stdp | complex_stdp | tmaze | double_tmaze; bptt: one_shot_cue | cue_tmaze; "
                                               "synq: boundary | digits_0hu | digits_32hu | notmnist_standin_0hu | notmnist_standin_32hu"),
          method: Method = typer.Option(..., help="trainer: es (OpenAI-ES), bptt (surrogate-gradient BPTT), "
                                                  "synq (synaptic Q-learning), gd (the synq tasks' "
                                                  "gradient-descent baseline)"),
          config: str = typer.Option("quick", help="quick (tests, demos) or paper (reproduction); synq/gd "
                                                     "also authors (the authors' public-code settings); "
                                                     "bptt one_shot_cue also unpermuted (sanity check)"),
          model: str = typer.Option("enu", help="es only: enu | gru | lstm | nfenu | sharedenu"),
          out: Path = typer.Option(None, help="run folder (checkpoint, metrics, plots, model.plx)"),
          seed: int = typer.Option(0, help="random seed"),
          resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
          steps: int = typer.Option(None, help="override the number of generations / iterations"),
          form: str = typer.Option("additive", help="synq only: additive (authors' code) | multiplicative (paper text)"),
          policy: Path = typer.Option(None, help="synq only: start from the Q table of this policy.plx (static "
                                                 "unless --train-policy)"),
          train_policy: bool = typer.Option(None, help="synq only: keep learning the Q table"),
          variant: str = typer.Option("ndp_oja", help="bptt cue_tmaze only: non_plastic | dp_linear_decay | dp_oja | "
                                                      "dp_bcm | ndp_oja | ndp_bcm"),
          ray: bool = typer.Option(False, "--ray", help="es only: evaluate the population on a local Ray instance"),
          ray_address: str = typer.Option(None, help="es only: evaluate on this Ray cluster (host:port or auto; token-auth clusters need RAY_AUTH_MODE=token)"),
          jit: bool = typer.Option(True, help="bptt one_shot_cue only: run the network torch.compile'd (same math, "
                                              "3-4x faster per iteration after a compile per batch shape)")) -> None:
    """Train a model; writes checkpoints, a metrics log, a learning curve and model.plx into --out."""
    import json

    sub = model if method is Method.es else variant if task == "cue_tmaze" else ""
    out = out or Path("runs") / f"{method.value}_{task}_{config}" / sub
    try:
        if method is Method.es:
            from plastix.trainer.es_run import train_es
            res = train_es(task, model, config, out, resume=resume, seed=seed, generations=steps, ray=ray,
                           ray_address=ray_address)
        elif method is Method.bptt and task == "cue_tmaze":
            from plastix.trainer.pg_run import train_pg
            res = train_pg(variant, config, out, resume=resume, seed=seed, iterations=steps)
        elif method is Method.bptt:
            from plastix.trainer.bptt_run import train_bptt
            res = train_bptt(task, config, out, resume=resume, seed=seed, iterations=steps, jit=jit)
        elif method is Method.synq:
            from plastix.trainer.synq_run import train_synq
            res = train_synq(task, config, out, seed=seed, form=form, resume=resume, iterations=steps,
                             policy=policy, train_policy=train_policy)
        else:
            from plastix.trainer.synq_run import train_gd_baseline
            res = train_gd_baseline(task, config, out, seed=seed, resume=resume, iterations=steps)
    except (KeyError, ValueError, FileExistsError) as exc:
        raise _fail(str(exc).strip("'\""))
    typer.echo(json.dumps(res, indent=2, default=str))


class EvalBackend(str, Enum):
    torch = "torch"
    lava = "lava"


@app.command()
def evaluate(model: Path = typer.Argument(..., help="a trained model.plx"),
             task: str = typer.Option("one_shot_cue", help="the task the model is evaluated on (one_shot_cue)"),
             cues: int = typer.Option(None, help="cue count M per trial (default: the M the model was trained at)"),
             problems: int = typer.Option(500, help="number of fresh test problems"),
             seed: int = typer.Option(12345, help="seed of the test problems (the same seed gives the same problems on every backend)"),
             backend: EvalBackend = typer.Option(EvalBackend.torch, help="torch (batched, float64) or lava (one Lava run per problem)"),
             precision: str = typer.Option("float", help="float, or fixed (Loihi fixed point; the model must be representable)"),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object (key 'accuracy')")) -> None:
    """Accuracy of a trained model on fresh problems (ties count as wrong)."""
    import json

    if task != "one_shot_cue":
        raise _fail(f"unknown task {task!r}; evaluate knows: one_shot_cue")
    if problems < 1:
        raise _fail(f"--problems must be >= 1, got {problems}")
    if cues is not None and cues < 1:
        raise _fail(f"--cues must be >= 1, got {cues}")
    graph = _load(model)
    from plastix.trainer.cue_eval import evaluate_model

    try:
        res = evaluate_model(graph, n_problems=problems, n_cues=cues, seed=seed, backend=backend.value,
                             precision=precision, progress=not as_json)
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\""))
    res = {k: v for k, v in res.items() if k not in ("counts", "labels")}
    if as_json:
        typer.echo(json.dumps(res))
    else:
        typer.echo(f"accuracy {res['accuracy']:.4f} on {problems} problems (M = {res['cues']}, seed {seed}, "
                   f"{backend.value} {precision}; ties {res['ties']:.3f}; {res['wall_time_s']:.1f}s)")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="output folder"),
         iterations: int = typer.Option(12, help="BPTT meta-training iterations (the visible training phase)"),
         problems: int = typer.Option(16, help="test problems run on both torch and Lava"),
         seed: int = typer.Option(0, help="random seed")) -> None:
    """End to end: train a plastic cue-association net with BPTT, export the IR and NIR, run it on torch and Lava."""
    from plastix.demo import run_demo

    run_demo(out, iterations=iterations, problems=problems, seed=seed)


# -- deploy (issue 10) -------------------------------------------------------------------------


class Target(str, Enum):
    bundle = "bundle"
    lava = "lava"
    nir = "nir"
    onnx = "onnx"


class SimBackend(str, Enum):
    torch = "torch"
    lava = "lava"


class Precision(str, Enum):
    float = "float"
    fixed = "fixed"


_MODEL_HELP = "a .plx model (e.g. a trainer's model.plx), a plastix-written NIR file, or a deploy bundle folder"


def _load_model_or_bundle(model: Path):
    """(graph, bundle inputs or None) from a model file or a bundle folder."""
    from plastix.deploy.bundle import BundleError, bundle_inputs, load_bundle

    if model.is_dir():
        try:
            graph, _ = load_bundle(model)
            return graph, bundle_inputs(model)
        except (BundleError, ValueError) as exc:
            raise _fail(str(exc))
    if not model.exists():
        raise _fail(f"{model}: no such file or bundle folder")
    return _load(model), None


def _input_set(graph, inputs: "Path | None", stored, steps: int, seed: int):
    from plastix.deploy.report import check_inputs, load_inputs, probe_inputs

    try:
        xs = load_inputs(inputs) if inputs is not None else stored if stored is not None else probe_inputs(graph, steps, seed)
        check_inputs(graph, xs)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc))
    return xs


def _stages(names: list[str], desc: str):
    from tqdm import tqdm

    bar = tqdm(total=len(names), desc=desc, unit="stage")
    return bar, lambda stage: (bar.set_postfix_str(stage), bar.update(1))


@app.command()
def deploy(model: Path = typer.Argument(..., help=_MODEL_HELP),
           target: Target = typer.Option(Target.bundle, help="bundle: IR + NIR + manifest + Loihi report; lava: the "
                                         "bundle plus a Lava run that must reproduce torch; nir: one NIR file; "
                                         "onnx: one simulation step as ONNX, checked with onnxruntime"),
           out: Path = typer.Option(None, help="output folder (bundle, lava) or file (nir, onnx); default next to "
                                    "the model"),
           inputs: Path = typer.Option(None, help=".npz input set, one (steps, size) array per model input "
                                       "(default: Bernoulli(0.2) spikes)"),
           steps: int = typer.Option(100, min=1, help="steps of the generated input set"),
           seed: int = typer.Option(0, help="seed of the generated input set"),
           onnx: bool = typer.Option(False, help="bundle/lava: also add the ONNX step model"),
           plots: bool = typer.Option(True, help="bundle/lava: PNG plots next to the report"),
           overwrite: bool = typer.Option(False, help="replace an existing output"),
           timeout: float = typer.Option(300.0, help="seconds allowed for the Lava run")) -> None:
    """Deploy a model to a target; every output is written atomically (all or nothing)."""
    import json

    from plastix.deploy.bundle import BundleError
    from plastix.ir import IRValidationError, UnsupportedKindError

    graph, stored = _load_model_or_bundle(model)
    xs = _input_set(graph, inputs, stored, steps, seed)
    stem = model.name if model.is_dir() else model.stem
    try:
        if target is Target.nir:
            from plastix.ir.nir_interop import write_nir

            out = out or model.with_name(f"{stem}.nir")
            if out.exists() and not overwrite:
                raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
            write_nir(graph, out)
            typer.echo(f"wrote {out}")
            return
        if target is Target.onnx:
            from plastix.deploy.onnx_export import check_step, export_step

            out = out or model.with_name(f"{stem}.onnx")
            if out.exists() and not overwrite:
                raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
            with tempfile_beside(out) as tmp:
                export_step(graph, tmp)
                from tqdm import tqdm

                with tqdm(total=len(next(iter(xs.values()))), desc="onnxruntime vs torch", unit="step") as bar:
                    res = check_step(graph, tmp, xs, progress=bar.update)
                tmp.replace(out)
            typer.echo(f"wrote {out}; onnxruntime vs torch over {res['steps']} steps: max abs error "
                       f"{res['max_abs_error']:.3g} (outputs), {res['state_max_abs_error']:.3g} (state)")
            return
        from plastix.deploy.bundle import create_bundle

        out = out or model.with_name(f"{stem}_bundle")
        lava = target is Target.lava
        names = ["ir", "nir", "report"] + (["onnx"] if onnx else []) + (["lava"] if lava else [])
        bar, tick = _stages(names, f"deploy {target.value}")
        try:
            path = create_bundle(graph, out, inputs=xs, seed=seed, lava=lava, onnx=onnx, plots=plots,
                                 overwrite=overwrite, source=None if model.is_dir() else model, timeout=timeout,
                                 progress=tick)
        finally:
            bar.close()
    except (FileExistsError, BundleError, IRValidationError, UnsupportedKindError, ValueError) as exc:
        raise _fail(f"cannot deploy to {target.value}: {exc}")
    except Exception as exc:  # Lava run failures (timeouts, process errors) name themselves
        if type(exc).__name__ in ("LavaRunError", "LavaTimeoutError", "LavaImportError"):
            raise _fail(f"cannot deploy to {target.value}: {exc}", code=1)
        raise
    m = json.loads((path / "manifest.json").read_text())
    typer.echo(f"wrote bundle {path} ({', '.join(m['files'])})")
    for name, why in m["skipped"].items():
        typer.echo(f"  skipped {name}: {why}")
    if "lava_check" in m["metrics"]:
        c = m["metrics"]["lava_check"]
        typer.echo(f"  Lava reproduces torch: {c['criterion']}; max abs error {c['max_abs_error']:.3g}")


class tempfile_beside:  # noqa: N801 - used as a context manager
    """A temporary path next to ``path`` (same file system), removed on error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent)
        import os

        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, *exc) -> None:
        self.tmp.unlink(missing_ok=True)


@app.command()
def report(model: Path = typer.Argument(..., help=_MODEL_HELP),
           out: Path = typer.Option(None, help="folder for report.json, report.md and the plots "
                                    "(default: <model>_report)"),
           inputs: Path = typer.Option(None, help=".npz input set (default: the bundle's, else Bernoulli(0.2) spikes)"),
           steps: int = typer.Option(100, min=1, help="steps of the generated input set"),
           seed: int = typer.Option(0, help="seed of the generated input set"),
           plots: bool = typer.Option(True, help="write the PNG plots"),
           overwrite: bool = typer.Option(False, help="replace an existing report folder")) -> None:
    """Loihi report: per node/rule lowering status, quantisation error, Loihi 2 resources, measured
    synaptic/plasticity ops and spikes per step, modelled energy."""
    import shutil
    import tempfile

    from plastix.deploy.report import build_report, write_report
    from plastix.ir import UnsupportedKindError

    graph, stored = _load_model_or_bundle(model)
    xs = _input_set(graph, inputs, stored, steps, seed)
    out = out or model.with_name(f"{model.name if model.is_dir() else model.stem}_report")
    if out.exists() and not overwrite:
        raise _fail(f"{out} exists; pass --overwrite to replace it")
    if out.exists() and not (out / "report.json").is_file():
        raise _fail(f"{out} exists and is not a report folder (no report.json); not replacing it")
    bar, tick = _stages(["report", "files"], "report")
    try:
        rep = build_report(graph, xs, seed=seed)
        tick("report")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            write_report(rep, tmp, plots=plots)
            if out.exists():
                shutil.rmtree(out)
            tmp.replace(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tick("files")
    except (UnsupportedKindError, ValueError) as exc:
        raise _fail(f"cannot report: {exc}")
    finally:
        bar.close()
    st = rep["status"]["float"]
    for sect in ("populations", "projections", "rules", "modulators"):
        for name, v in st[sect].items():
            typer.echo(f"  {sect[:-1]:<10} {name:<24} {v['how']:<16} {v['why']}")
    e = rep["energy"]
    typer.echo(f"cores: {rep['resources']['cores']}; per step: {rep['activity']['spikes']:.4g} spikes, "
               f"{rep['activity']['synaptic_ops']:.4g} synaptic ops, {rep['activity']['plasticity_ops']:.4g} "
               f"plasticity ops; energy {e['total_pJ']:.4g} pJ/step ({e['source']})")
    typer.echo(f"wrote {out}/report.md")


@app.command()
def simulate(model: Path = typer.Argument(..., help=_MODEL_HELP),
             backend: SimBackend = typer.Option(SimBackend.torch, help="torch (simulator) or lava (Loihi emulation)"),
             precision: Precision = typer.Option(Precision.float, help="float, or Loihi fixed point (static "
                                                 "CUBA nets; runs quantize_graph's output)"),
             inputs: Path = typer.Option(None, help=".npz input set (default: the bundle's, else Bernoulli(0.2) spikes)"),
             steps: int = typer.Option(100, min=1, help="steps of the generated input set"),
             seed: int = typer.Option(0, help="seed of the generated input set"),
             out: Path = typer.Option(None, help="write the outputs to this .npz file"),
             timeout: float = typer.Option(300.0, help="seconds allowed for a Lava run")) -> None:
    """Run a model on an input set on torch or Lava and print (optionally save) its outputs."""
    import io

    import numpy as np

    from plastix.deploy.targets import outputs_summary
    from plastix.deploy.targets import simulate as run_sim
    from plastix.ir import UnsupportedKindError
    from plastix.ir.serialize import atomic_write_bytes

    graph, stored = _load_model_or_bundle(model)
    xs = _input_set(graph, inputs, stored, steps, seed)
    try:
        outs = run_sim(graph, xs, backend=backend.value, precision=precision.value, timeout=timeout)
    except (UnsupportedKindError, ValueError) as exc:
        raise _fail(f"cannot simulate on {backend.value} ({precision.value}): {exc}")
    except Exception as exc:
        if type(exc).__name__ in ("LavaRunError", "LavaTimeoutError", "LavaImportError"):
            raise _fail(f"Lava run failed: {exc}", code=1)
        raise
    typer.echo(outputs_summary(outs))
    if out is not None:
        buf = io.BytesIO()
        np.savez(buf, **outs)
        atomic_write_bytes(out, buf.getvalue())
        typer.echo(f"wrote {out}")


def main() -> None:  # pragma: no cover
    app(prog_name="plastix")
