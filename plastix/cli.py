"""The ``plastix`` command line (typer)."""
from __future__ import annotations

import typer

app = typer.Typer(help="plastix: train plastic networks and their learning rules, export one IR, run on torch or Lava.",
                  no_args_is_help=True)


@app.command()
def info(model: str = typer.Argument(..., help="a .plx model file")) -> None:
    """Validate a model file and print its summary."""
    from plastix.ir import IRValidationError, load

    try:
        graph = load(model)
    except IRValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(graph.summary())
