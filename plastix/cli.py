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
           out: Path = typer.Option(None, help="output path (default: next to the model)")) -> None:
    """Convert a model: .plx -> NIR (static part + plasticity extension) or NIR -> .plx."""
    from plastix.ir import IRValidationError, UnsupportedKindError, save
    from plastix.ir.nir_interop import write_nir

    graph = _load(model)
    out = out or model.with_suffix(f".{to.value}")
    try:
        if to is ExportFormat.nir:
            write_nir(graph, out)
        else:
            save(graph, out)
    except (IRValidationError, UnsupportedKindError) as exc:
        raise _fail(f"cannot export to {to.value}: {exc}")
    typer.echo(f"wrote {out}")


@app.command("import-nir")
def import_nir(path: Path = typer.Argument(..., help="a NIR file (e.g. from snnTorch or Norse)"),
               dt: float = typer.Option(..., help="seconds per discrete step used to discretise NIR's ODEs"),
               out: Path = typer.Option(None, help="output .plx path")) -> None:
    """Import a NIR graph written by a peer library into a .plx model."""
    from plastix.ir import IRValidationError, UnsupportedKindError, save
    from plastix.ir.nir_interop import read_nir

    try:
        graph = read_nir(path, dt=dt)
    except (IRValidationError, UnsupportedKindError) as exc:
        raise _fail(str(exc))
    out = out or path.with_suffix(".plx")
    save(graph, out)
    typer.echo(graph.summary())
    typer.echo(f"wrote {out}")


class Method(str, Enum):
    es = "es"
    bptt = "bptt"
    synq = "synq"
    gd = "gd"


@app.command()
def train(task: str = typer.Argument(..., help="es: iaf | stdp | complex_stdp; bptt: one_shot_cue; "
                                               "synq: boundary | digits_0hu | digits_32hu | notmnist_standin_0hu | notmnist_standin_32hu"),
          method: Method = typer.Option(..., help="trainer: es (OpenAI-ES), bptt (surrogate-gradient BPTT), "
                                                  "synq (synaptic Q-learning), gd (the synq tasks' "
                                                  "gradient-descent baseline)"),
          config: str = typer.Option("quick", help="quick (tests, demos) or paper (reproduction)"),
          model: str = typer.Option("enu", help="es only: enu | gru | lstm | nfenu | sharedenu"),
          out: Path = typer.Option(None, help="run folder (checkpoint, metrics, plots, model.plx)"),
          seed: int = typer.Option(0, help="random seed"),
          resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
          steps: int = typer.Option(None, help="override the number of generations / iterations"),
          form: str = typer.Option("additive", help="synq only: additive (authors' code) | multiplicative (paper text)"),
          policy: Path = typer.Option(None, help="synq only: start from the Q table of this policy.plx (static "
                                                 "unless --train-policy)"),
          train_policy: bool = typer.Option(None, help="synq only: keep learning the Q table")) -> None:
    """Train a model; writes checkpoints, a metrics log, a learning curve and model.plx into --out."""
    import json

    out = out or Path("runs") / f"{method.value}_{task}_{config}" / (model if method is Method.es else "")
    try:
        if method is Method.es:
            from plastix.trainer.es_run import train_es
            res = train_es(task, model, config, out, resume=resume, seed=seed, generations=steps)
        elif method is Method.bptt:
            from plastix.trainer.bptt_run import train_bptt
            res = train_bptt(task, config, out, resume=resume, seed=seed, iterations=steps)
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


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="output folder"),
         iterations: int = typer.Option(12, help="BPTT meta-training iterations (the visible training phase)"),
         problems: int = typer.Option(16, help="test problems run on both torch and Lava"),
         seed: int = typer.Option(0, help="random seed")) -> None:
    """End to end: train a plastic cue-association net with BPTT, export the IR and NIR, run it on torch and Lava."""
    from plastix.demo import run_demo

    run_demo(out, iterations=iterations, problems=problems, seed=seed)


def main() -> None:  # pragma: no cover
    app(prog_name="plastix")
