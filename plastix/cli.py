"""The ``plastix`` command line (typer).

Every command checks its arguments (files, output paths, counts, the memory a run would need)
before it does any work. Every error reaches the user as one line ``error: ...`` on stderr, with
exit code 2 for bad input (a missing or invalid file, a bad option, an existing output, a run that
would exceed the memory limit) and 1 for a run that failed (a Lava run, a write that failed, an
internal error). ``plastix --debug ...`` (or ``PLASTIX_DEBUG=1``) also prints the traceback.

Imports: the IR, file and memory helpers are imported here at the top; a command whose work needs torch
or Lava (training, evaluation, simulation, deploy) imports its trainer or deploy module inside the
command, so ``plastix --help``, ``plastix info`` and every argument error answer without loading
torch (~0.2 s instead of ~1.3 s; ``tests/test_cli_bad_arguments.py`` checks it).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import tempfile
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer
from typer.core import TyperGroup

from plastix.backends import memory
from plastix.backends.memory import ENV as MEMORY_ENV
from plastix.backends.memory import parse_size
from plastix.ir import load, save
from plastix.ir.atomic import new_dir, new_file, write_bytes
from plastix.ir.errors import BackendError, BundleError, IRValidationError, MemoryLimitError, UnsupportedKindError
from plastix.ir.nir_interop import import_nir_file, read_nir, write_nir
from plastix.ir.registry import CATEGORIES
from plastix.ir.registry import kinds as registered
from plastix.ir.spec import spec_of

DEBUG_ENV = "PLASTIX_DEBUG"


class CLIError(Exception):
    """An error for the user: ``error: <msg>`` and exit ``code`` (2 bad input, 1 failed run)."""

    def __init__(self, msg: str, code: int = 2) -> None:
        super().__init__(msg)
        self.code = code


def _fail(msg: str, code: int = 2) -> CLIError:
    return CLIError(msg, code)


_BAD_INPUT = (IRValidationError, BundleError, MemoryLimitError, UnsupportedKindError, FileExistsError)


def _classify(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) of an exception that reached the top of a command."""
    if isinstance(exc, CLIError):
        return str(exc), exc.code
    if isinstance(exc, _BAD_INPUT):
        return str(exc).strip("'\""), 2
    if isinstance(exc, BackendError):
        return f"backend run failed: {exc}", 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 1
    if isinstance(exc, MemoryError):
        return "out of memory (lower --steps or --max-memory)", 1
    return (f"internal error ({type(exc).__name__}: {exc}); run `plastix --debug ...` or set {DEBUG_ENV}=1 "
            "for the traceback"), 1


def _debug(args: Sequence[str]) -> bool:
    return "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class _Group(TyperGroup):
    """The root command: turns every exception into ``error: ...`` and an exit code."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:

        args = list(sys.argv[1:] if args is None else args)
        saved = os.environ.get(MEMORY_ENV)  # --max-memory sets it for one command only
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except typer.Abort:
            typer.secho("error: aborted", err=True, fg=typer.colors.RED)
            code = 130
        except typer.TyperException as exc:  # usage errors: bad or missing options and arguments
            names = {c.__name__ for c in type(exc).__mro__}
            ctx = getattr(exc, "ctx", None)
            if "NoArgsIsHelpError" in names:
                typer.echo(ctx.get_help() if ctx is not None else str(exc))
                code = 2
            else:
                hint = f"\nTry '{ctx.command_path} --help' for help." if "UsageError" in names and ctx else ""
                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                typer.secho(f"error: {message}{hint}", err=True, fg=typer.colors.RED)
                code = getattr(exc, "exit_code", 2)
        except Exception as exc:  # noqa: BLE001 - the one place errors become messages
            if _debug(args):
                traceback.print_exception(exc)
            msg, code = _classify(exc)
            typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
        finally:
            if saved is None:
                os.environ.pop(MEMORY_ENV, None)
            else:
                os.environ[MEMORY_ENV] = saved
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(cls=_Group, help="plastix: train plastic networks and their learning rules, export one IR, "
                                   "run it on torch or on Lava (Loihi emulation).", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", envvar=DEBUG_ENV,
                                     help=f"print the traceback of an error (also: {DEBUG_ENV}=1)")) -> None:
    """plastix: train plastic networks and their learning rules, export one IR, run it on torch or
    on Lava (Loihi emulation)."""


# -- argument checks (before any work) ---------------------------------------------------------

MAX_MEMORY = typer.Option(None, "--max-memory", metavar="SIZE",
                          help="memory this command may use for the model and its run (e.g. 16G, or none); "
                               "default: half the machine's memory (or $PLASTIX_MAX_MEMORY)")


def _max_memory(value: Optional[str]) -> Optional[int]:
    """Apply ``--max-memory``: every run in this process (and its Lava children) uses it; returns the
    loader's byte budget (None: the loader's own rules)."""

    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise _fail(f"--max-memory: {exc}") from None
    os.environ[MEMORY_ENV] = value
    return (1 << 62) if size is None else size


def _positive(value: float) -> float:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value


def _existing(path: Path, what: str = "file or bundle folder") -> Path:
    if not os.path.lexists(path):
        raise _fail(f"{path}: no such {what}")
    return path


def _probe_folder(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we can create files in."""
    anc = folder
    while not os.path.lexists(anc) and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise _fail(f"cannot write under {folder}: {anc} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".plastix-probe-", dir=anc)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise _fail(f"cannot write under {folder}: {anc} is not writable ({exc.strerror})") from None


def _out_file(path: Path, *, overwrite: Optional[bool] = None, what: str = "--out") -> Path:
    """An output file path: not a folder, in an existing writable folder, and (when the command has
    ``--overwrite``) not an existing file unless asked to replace it."""
    if path.is_dir():
        raise _fail(f"{what} {path} is a folder; give a file path")
    if overwrite is False and os.path.lexists(path):
        raise _fail(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise _fail(f"cannot write {path}: folder {path.parent} does not exist")
    _probe_folder(path.parent)
    return path


def _out_folder(path: Path, *, overwrite: Optional[bool] = None, what: str = "--out") -> Path:
    """An output folder: a folder or nothing yet (missing parents are created), writable, and (when
    the command has ``--overwrite``) not existing unless asked to replace it."""
    if os.path.lexists(path) and not path.is_dir():
        raise _fail(f"{what} {path} exists and is not a folder")
    if overwrite is False and path.exists():
        raise _fail(f"{path} exists; pass --overwrite to replace it")
    _probe_folder(path)
    return path


def _load(model: Path, max_bytes: Optional[int] = None):

    _existing(model, "file")
    try:
        if model.suffix in (".nir", ".h5", ".hdf5"):
            return read_nir(model, max_bytes=max_bytes)
        return load(model, max_bytes=max_bytes)
    except IRValidationError as exc:
        raise _fail(str(exc)) from None


def _check_run_memory(graph, steps: int, backend: str = "torch") -> None:
    """Refuse a run the memory limit cannot hold before its input set is even generated."""

    est = (memory.lava_run(graph, steps) if backend == "lava" else
           memory.torch_run(graph, steps, itemsize=8, inputs_given=False, what=f"a run of {steps} steps"))
    memory.check(est)


# -- IR commands -----------------------------------------------------------------------------


@app.command()
def info(model: Path = typer.Argument(..., help="a .plx model file (or a NIR file written by plastix)"),
         max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Validate a model file and print its summary."""
    typer.echo(_load(model, _max_memory(max_memory)).summary())


@app.command()
def kinds() -> None:
    """List every IR kind (populations, cells, projections, modulators, rules) with its fields and equation."""

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
                                    "the model's; spikes do not depend on it; snnTorch's import_from_nir needs 1e-4)"),
           max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Convert a model: .plx -> NIR (static part + plasticity extension) or NIR -> .plx."""

    out = _out_file(out or model.with_suffix(f".{to.value}"))
    if dt is not None and to is not ExportFormat.nir:
        raise _fail("--dt applies to --to nir only")
    graph = _load(model, _max_memory(max_memory))
    try:
        if to is ExportFormat.nir:
            write_nir(graph, out, dt=dt)
        else:
            save(graph, out)
    except Exception as exc:
        if isinstance(exc, (IRValidationError, UnsupportedKindError)):
            raise _fail(f"cannot export to {to.value}: {exc}") from None
        raise
    typer.echo(f"wrote {out}")


class Reset(str, Enum):
    zero = "zero"
    snntorch_zero = "snntorch-zero"
    subtract = "subtract"


@app.command("import-nir")
def import_nir(path: Path = typer.Argument(..., help="a NIR file (e.g. from snnTorch, Norse, SpikingJelly, Lava-dl, "
                                                     "Sinabs)"),
               dt: float = typer.Option(None, callback=_positive, help="seconds per step used to discretise NIR's ODEs (default: inferred "
                                        "from the file where it determines it, e.g. snnTorch's r = tau_mem / dt)"),
               reset: Reset = typer.Option(Reset.zero, help="how the writer reset its neurons: zero (NIR: to 0 in the "
                                           "step of the spike), snntorch-zero (snnTorch reset_mechanism='zero'), "
                                           "subtract (snnTorch's default; not representable)"),
               out: Path = typer.Option(None, help="output .plx path"),
               max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Import a NIR graph written by a peer library into a .plx model; prints the dt it used and why."""

    _existing(path, "NIR file")
    out = _out_file(out or path.with_suffix(".plx"))
    try:
        res = import_nir_file(path, dt=dt, reset=reset.value, max_bytes=_max_memory(max_memory))
    except (IRValidationError, UnsupportedKindError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"dt = {res.dt:g} s: {res.dt_source}")
    for note in res.notes:
        typer.echo(f"note: {note}")
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


# -- training --------------------------------------------------------------------------------


class Method(str, Enum):
    es = "es"
    bptt = "bptt"
    synq = "synq"
    gd = "gd"
    ppo = "ppo"


class PolicyMode(str, Enum):
    frozen = "frozen"
    online = "online"


class GDProtocolName(str, Enum):
    strong = "strong"
    authors = "authors"


class ESStep(str, Enum):
    offspring_mean = "offspring_mean"
    paper_literal = "paper_literal"


@app.command()
def train(task: str = typer.Argument(..., help="the experiment's task (plastix experiments lists them): "
                                               "es: iaf | stdp | complex_stdp | tmaze | double_tmaze; bptt: one_shot_cue | "
                                               "one_shot_glyphs | cue_tmaze; "
                                               "synq: boundary | digits_0hu | digits_32hu | notmnist_standin_0hu | notmnist_standin_32hu; "
                                               "gd: the synq tasks but boundary; ppo: halfcheetah"),
          method: Method = typer.Option(..., help="trainer: es (OpenAI-ES), bptt (surrogate-gradient BPTT), "
                                                  "synq (synaptic Q-learning), gd (the synq tasks' "
                                                  "gradient-descent baseline), ppo (PPO through BPTT)"),
          config: str = typer.Option("quick", help="quick (tests, demos) or paper (reproduction); synq/gd "
                                                     "also authors (the authors' public-code settings) and "
                                                     "authors_final (their final runs' settings); "
                                                     "bptt one_shot_cue also unpermuted (sanity check)"),
          model: str = typer.Option(None, help="es only: enu (default) | gru | lstm | nfenu | sharedenu"),
          out: Path = typer.Option(None, help="run folder (checkpoint, metrics, plots, model.plx)"),
          seed: int = typer.Option(0, min=0, help="random seed"),
          resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
          steps: int = typer.Option(None, min=1, help="override the number of generations / iterations"),
          form: str = typer.Option(None, help="synq only: additive (default; authors' code) | multiplicative (paper text)"),
          aggregation: str = typer.Option(None, help="synq only: how the TD updates of the synapses sharing a table "
                                                     "cell combine: mean | sequential (default: the preset's)"),
          policy: str = typer.Option(None, help="synq only: apply the Q table of this policy.plx (e.g. the "
                                                "policy.plx of a boundary run), or 'shipped' for the package's "
                                                "boundary-learned table"),
          policy_mode: PolicyMode = typer.Option(None, help="synq only: frozen (the paper's OCR protocol; default "
                                                            "with --policy) or online (keep learning the table; "
                                                            "the default without --policy, from zeros)"),
          bias_init: float = typer.Option(None, min=0.0, help="synq only: initial biases ~ U[-b, b] (default 0, "
                                                              "the authors' code; the multiplicative form cannot "
                                                              "move zero biases)"),
          q_average_from: int = typer.Option(None, min=-1, help="synq only: save as policy.plx the mean of the "
                                                                 "learned tables after iteration N .. the end "
                                                                 "(Polyak averaging; default -1: the last table)"),
          gd_protocol: GDProtocolName = typer.Option(None, help="gd only: strong (default; the synq run's "
                                                     "init and budget) or authors (U[-1, 1] weights, lr 0.1, "
                                                     "5,000 iterations)"),
          variant: str = typer.Option(None, help="bptt cue_tmaze only: non_plastic | dp_linear_decay | dp_oja | "
                                                 "dp_bcm | ndp_oja (default) | ndp_bcm; bptt one_shot_glyphs: "
                                                 "plastic (default) | nonplastic; ppo halfcheetah: non_plastic (default) | dp_oja | dp_bcm | ndp_oja | ndp_bcm"),
          es_step: ESStep = typer.Option(None, help="es only: offspring_mean (default: a step to the rank-weighted "
                                                  "offspring mean, damped momentum) or paper_literal (Algorithm 1 "
                                                  "as written: G = sum F_i eps_i, classic momentum)"),
          sigma: float = typer.Option(None, help="es only: the offspring's noise std "
                                      "(default: the preset's; e.g. a wider search from a network a stage trained)"),
          ray: bool = typer.Option(False, "--ray", help="es only: evaluate the population on a local Ray instance"),
          ray_address: str = typer.Option(None, help="es only: evaluate on this Ray cluster (host:port or auto; token-auth clusters need RAY_AUTH_MODE=token)"),
          jit: Optional[bool] = typer.Option(None, "--jit/--no-jit", help="bptt one_shot_cue only: run the network "
                                             "torch.compile'd (default; same math, 3-4x faster per iteration after "
                                             "a compile per batch shape); bptt one_shot_glyphs: opt-in (no gain "
                                             "measured there); ppo halfcheetah: on by default"),
          init: Path = typer.Option(None, help="bptt one_shot_cue, es tmaze / double_tmaze: start from this trained model.plx "
                                              "(es: the same model's network, e.g. a --config fixed_io stage)"),
          hardware_aware: bool = typer.Option(False, "--hardware-aware", help="bptt one_shot_cue only: train on the values "
                                              "Loihi's learning engine runs (straight-through rounding; also writes "
                                              "model_loihi.plx); needs an engine-form config such as paper_engine"),
          fixed_in_loop: bool = typer.Option(False, "--fixed-in-loop", help="bptt one_shot_cue with --hardware-aware: "
                                             "the forward pass is the bit-exact Loihi fixed-point run (its spikes "
                                             "straight-through into the float graph for the gradient)"),
          max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Train a model; writes checkpoints, a metrics log, a learning curve and model.plx into --out."""

    from plastix.trainer.experiments.registry import check_options, get
    from plastix.trainer.runner import CHECKPOINT, load_checkpoint

    _max_memory(max_memory)
    if sigma is not None and not sigma > 0:
        raise _fail(f"--sigma must be > 0, got {sigma}")
    try:
        exp = get(method.value, task)
    except KeyError as exc:
        raise _fail(str(exc).strip("'\"")) from None
    options = {"model": model, "ray": ray or None, "ray_address": ray_address, "jit": jit,
               "init": str(_existing(init, "model file")) if init is not None else None,
               "hardware_aware": hardware_aware or None, "fixed_in_loop": fixed_in_loop or None,
               "variant": variant, "form": form, "aggregation": aggregation, "policy": policy,
               "policy_mode": None if policy_mode is None else policy_mode.value, "bias_init": bias_init,
               "q_average_from": q_average_from,
               "gd_protocol": None if gd_protocol is None else gd_protocol.value,
               "es_step": None if es_step is None else es_step.value, "sigma": sigma}
    try:
        check_options(exp, options)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    sub = (model or "enu") if method is Method.es else (variant or "ndp_oja") if task == "cue_tmaze" else \
        (variant or "plastic") if task == "one_shot_glyphs" else ""
    if task == "halfcheetah":
        sub = variant or "non_plastic"
    out = _out_folder(out or Path("runs") / f"{method.value}_{task}_{config}" / sub)
    if policy is not None:
        from plastix.trainer.experiments.synq_run import policy_path
        _existing(policy_path(policy), "policy file")
    if policy_mode is PolicyMode.frozen and policy is None:
        raise _fail("--policy-mode frozen needs --policy (a policy.plx, or 'shipped')")
    if resume and (out / CHECKPOINT).exists():
        try:
            load_checkpoint(out / CHECKPOINT)
        except ValueError as exc:
            raise _fail(f"cannot resume: {exc}") from None
    try:
        res = exp.train(out, config=config, seed=seed, steps=steps, resume=resume,
                        **{k: v for k, v in options.items() if v is not None})
    except (KeyError, ValueError, FileExistsError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    typer.echo(json.dumps(res, indent=2, default=str))


@app.command()
def experiments(as_json: bool = typer.Option(False, "--json", help="print one JSON list")) -> None:
    """Every experiment plastix trains: method, task, presets, options, the paper figure it reproduces."""

    from plastix.trainer.experiments.registry import EXPERIMENTS

    rows = [{"method": e.method, "task": e.task, "configs": list(e.configs()), "options": list(e.options),
             "variants": list(e.variants), "source": e.source, "evaluate": e.evaluate} for e in EXPERIMENTS.values()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['method']:5s} {r['task']:22s} configs: {', '.join(r['configs'])}")
        typer.echo(f"      {r['source']}")
        if r["variants"]:
            typer.echo(f"      --model/--variant: {', '.join(r['variants'])}")


@app.command("cue-bounds")
def cue_bounds(cues: int = typer.Option(5, "--cues", min=1, help="cues per trial (M)"),
               problems: int = typer.Option(2000, "--problems", min=1, help="problems per learner")) -> None:
    """Accuracy ceilings of one-shot learners on the cue task (label x the trials' spike counts through an
    eligibility kernel, with and without the first trial leaking into the second): what a trained rule
    of that family can reach (docs/results.md, issue 14). One JSON line per kernel."""
    from plastix.tasks.cue_bounds import rows

    for row in rows(cues, problems):
        typer.echo(json.dumps(row))


class SimBackend(str, Enum):
    torch = "torch"
    lava = "lava"


class Precision(str, Enum):
    float = "float"
    fixed = "fixed"


class Noise(str, Enum):
    none = "none"
    friction = "friction"
    action = "action"
    observation = "observation"


class GlyphData(str, Enum):
    test = "test"
    train = "train"
    digits = "digits"


@app.command()
def evaluate(model: Path = typer.Argument(..., help="a trained model.plx"),
             task: str = typer.Option(None, help="the task the model is evaluated on: one_shot_cue | one_shot_glyphs "
                                                 "(default: the model's own, from its metadata; also halfcheetah, "
                                                 "tmaze, double_tmaze, iaf, stdp, complex_stdp)"),
             data: GlyphData = typer.Option(None, help="one_shot_glyphs only: draw the problems from test (the "
                                                       "held-out stand-in classes; default), train, or digits "
                                                       "(scikit-learn's, upsampled: zero-shot transfer)"),
             cues: int = typer.Option(None, min=1, help="cue count M per trial (default: the M the model was trained at)"),
             problems: int = typer.Option(500, min=1, help="number of fresh test problems"),
             seed: int = typer.Option(1, min=0, help="seed of the test problems or episodes (the same seed gives "
                                                     "the same problems on every backend); the default is held out: "
                                                     "the trainers pick their best checkpoints on seed 12345"),
             backend: SimBackend = typer.Option(SimBackend.torch, help="torch (batched, float64) or lava (one Lava "
                                                                         "run per problem)"),
             precision: Precision = typer.Option(Precision.float, help="float, or fixed (Loihi fixed point; "
                                                                               "the model must be representable)"),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object (key 'accuracy')"),
             sweep: str = typer.Option(None, help="accuracy at each cue count of this comma list instead (torch "
                                                  "float64; Meta-SpikePropamine Fig. 4), e.g. 1,3,5,7,9,11,13,15"),
             plot: Path = typer.Option(None, help="with --sweep: draw it next to the paper's into this PNG; with "
                                                  "--by-assignment: a heat map of the returns"),
             freeze_test: bool = typer.Option(False, help="one_shot_cue only (torch, float): silence every modulator "
                                              "in the test trial, so the answer comes from what the training "
                                              "trials stored in the synapses"),
             no_plasticity: bool = typer.Option(False, help="one_shot_cue only: the non-plastic baseline -- the same "
                                                "network with every learning rule and modulator removed "
                                                "(ir.Graph.without_plasticity); stays at chance on the permuted task"),
             compare_lava: int = typer.Option(0, min=0, help="also run this many of the problems on torch and on "
                                                             "Lava in --precision: accuracies, identical spike trains "
                                                             "and final plastic weights"),
             noise: Noise = typer.Option(None, help="halfcheetah only: evaluate under this noise (SpikePropamine "
                                                    "Fig. 4B-D; default none)"),
             std: str = typer.Option(None, help="halfcheetah only: the noise's standard deviation, or a comma list "
                                                "of them (friction: a fraction of the constants, e.g. 0,0.1,0.2)"),
             episodes: int = typer.Option(None, min=1, help="halfcheetah: episodes per point (default 100, as "
                                                           "the paper); tmaze, iaf, stdp, complex_stdp: episodes (default 64; the "
                                                           "mimic tables in docs/results.md use --seed 12345)"),
             task_config: str = typer.Option(None, help="tmaze / double_tmaze / mimic tasks only: the task preset the "
                                                        "episodes are drawn from (default: the model's own; e.g. "
                                                        "reduced, fixed_io, navigate, shuffle_inputs; quick, paper)"),
             render: Path = typer.Option(None, help="tmaze / double_tmaze only: also draw the first episode "
                                                    "(episode.gif, episode_reward.png) into this folder"),
             by_assignment: bool = typer.Option(False, help="tmaze / double_tmaze only: cover every input order / "
                                                "motor assignment equally often and print the mean return of "
                                                "each (a network that learns within episodes does well on all)"),
             max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Accuracy of a trained model on fresh problems (ties count as wrong); a Half-Cheetah policy's mean
    return under noise; a T-maze network's mean episode return."""

    mimic = ("iaf", "stdp", "complex_stdp")
    if task not in (None, "one_shot_cue", "one_shot_glyphs", "halfcheetah", "tmaze", "double_tmaze") + mimic:
        raise _fail(f"unknown task {task!r}; evaluate knows: one_shot_cue, one_shot_glyphs, halfcheetah, tmaze, "
                    "double_tmaze, iaf, stdp, complex_stdp")
    if plot is not None and sweep is None and not by_assignment:
        raise _fail("--plot needs --sweep (or --by-assignment for a T-maze network)")
    graph = _load(model, _max_memory(max_memory))
    if task in (None, "tmaze", "double_tmaze") and (graph.metadata or {}).get("task") in ("tmaze", "double_tmaze"):
        _evaluate_tmaze(graph, config=task_config, episodes=episodes, seed=seed, as_json=as_json,
                        render=render, by_assignment=by_assignment, plot=plot,
                        others={"--cues": cues, "--sweep": sweep, "--data": data, "--noise": noise, "--std": std,
                                "--freeze-test": freeze_test or None, "--no-plasticity": no_plasticity or None,
                                "--compare-lava": compare_lava or None},
                        backend=backend, precision=precision)
        return
    if task in (None,) + mimic and (graph.metadata or {}).get("task") in mimic:
        if task is not None and task != graph.metadata["task"]:
            raise _fail(f"--task {task}: the model was trained on {graph.metadata['task']!r}")
        _evaluate_mimic(graph, config=task_config, episodes=episodes or 64, seed=seed, as_json=as_json,
                        others={"--cues": cues, "--sweep": sweep, "--data": data, "--noise": noise, "--std": std,
                                "--render": render, "--by-assignment": by_assignment or None, "--plot": plot,
                                "--freeze-test": freeze_test or None, "--no-plasticity": no_plasticity or None,
                                "--compare-lava": compare_lava or None},
                        backend=backend, precision=precision)
        return
    if task in mimic:
        raise _fail(f"--task {task}: the model is not a mimic-task cell (its task: {(graph.metadata or {}).get('task')!r})")
    if task in ("tmaze", "double_tmaze"):
        raise _fail(f"--task {task}: the model is not a T-maze network (its task: {(graph.metadata or {}).get('task')!r})")
    if task_config is not None or render is not None or by_assignment:
        raise _fail("--task-config applies to T-maze networks and mimic-task cells, --render and --by-assignment "
                    "to T-maze networks only")
    if task is None and (graph.metadata or {}).get("task") == "halfcheetah":
        task = "halfcheetah"
    locomotion = {"--noise": noise, "--std": std, "--episodes": episodes}
    if task == "halfcheetah":
        _evaluate_locomotion(graph, noise=noise or Noise.none, std=std, episodes=episodes or 100, seed=seed,
                             backend=backend, precision=precision, as_json=as_json, compare_lava=compare_lava,
                             others={"--cues": cues, "--sweep": sweep, "--plot": plot, "--data": data,
                                     "--freeze-test": freeze_test or None, "--no-plasticity": no_plasticity or None})
        return
    if any(v is not None for v in locomotion.values()):
        raise _fail(f"{', '.join(k for k, v in locomotion.items() if v is not None)}: for Half-Cheetah models only "
                    "(--task halfcheetah)")
    task = task or ("one_shot_glyphs" if (graph.metadata or {}).get("task") == "one_shot_glyphs" else "one_shot_cue")
    if task == "one_shot_glyphs":
        _evaluate_glyphs(graph, data=(data or GlyphData.test).value, problems=problems, seed=seed, backend=backend,
                         precision=precision, as_json=as_json, compare_lava=compare_lava,
                         cue_only={"--cues": cues, "--sweep": sweep, "--freeze-test": freeze_test or None,
                                   "--no-plasticity": no_plasticity or None})
        return
    if data is not None:
        raise _fail("--data applies to --task one_shot_glyphs only")
    from plastix.trainer.experiments.cue_eval import compare_backends, evaluate_model

    if freeze_test and (sweep is not None or compare_lava):
        raise _fail("--freeze-test goes with a plain evaluation (not --sweep or --compare-lava)")
    if no_plasticity:
        if sweep is not None or freeze_test:
            raise _fail("--no-plasticity goes with a plain evaluation or --compare-lava (not --sweep or --freeze-test)")
        graph = graph.without_plasticity()
    if sweep is not None:
        from plastix.trainer.experiments.bptt_run import plot_sweep, sweep_cues

        try:
            ms = tuple(int(m) for m in sweep.split(","))
            if min(ms) < 1:
                raise ValueError
        except ValueError:
            raise _fail(f"--sweep must be a comma list of cue counts >= 1, got {sweep!r}") from None
        res = {m: round(r["accuracy"], 4) for m, r in sweep_cues(model, problems, ms, seed=seed).items()}
        typer.echo(json.dumps({"sweep": res}) if as_json else
                   "\n".join(f"M = {m:2d}: accuracy {a:.4f}" for m, a in res.items()))
        if plot is not None:
            label = model.parent.name if model.stem in ("model", "best") and model.parent.name else model.stem
            typer.echo(f"wrote {plot_sweep({label: res}, plot)}")  # a run folder's name, else the file's
        return
    if compare_lava:
        cmp = compare_backends(graph, compare_lava, seed=seed, n_cues=cues, precision=precision.value)
        cmp = {k: v for k, v in cmp.items() if not k.startswith("_")}
        typer.echo(json.dumps(cmp, default=str, indent=None if as_json else 1))
        return

    try:
        res = evaluate_model(graph, n_problems=problems, n_cues=cues, seed=seed, backend=backend.value,
                             precision=precision.value, progress=not as_json, freeze_test=freeze_test)
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\""))
    res = {k: v for k, v in res.items() if k not in ("counts", "labels")}
    if as_json:
        typer.echo(json.dumps(res))
    else:
        typer.echo(f"accuracy {res['accuracy']:.4f} on {problems} problems (M = {res['cues']}, seed {seed}, "
                   f"{backend.value} {precision.value}{', test-trial plasticity silenced' if freeze_test else ''}"
                   f"{', no plasticity' if no_plasticity else ''}; "
                   f"ties {res['ties']:.3f}; {res['wall_time_s']:.1f}s)")


def _evaluate_glyphs(graph, *, data: str, problems: int, seed: int, backend: "SimBackend", precision: "Precision",
                     as_json: bool, compare_lava: int, cue_only: dict) -> None:
    """``plastix evaluate`` of a one-shot character model (trainer/experiments/glyphs_run.py)."""
    bad = [flag for flag, v in cue_only.items() if v is not None]
    if bad:
        raise _fail(f"{', '.join(bad)} {'applies' if len(bad) == 1 else 'apply'} to one_shot_cue only")
    if precision is not Precision.float:
        raise _fail("one_shot_glyphs models are evaluated in float: per-pre three-factor modulation has no "
                    "learning-engine form, so the torch backend has no fixed-point reference for it (Lava "
                    "host-emulates it)")
    from plastix.trainer.experiments.glyphs_run import compare_lava as glyph_compare
    from plastix.trainer.experiments.glyphs_run import evaluate_model as glyph_evaluate

    try:
        if compare_lava:
            res = glyph_compare(graph, compare_lava, data=data, seed=seed, progress=not as_json)
            typer.echo(json.dumps(res, default=str, indent=None if as_json else 1))
            return
        res = glyph_evaluate(graph, data=data, n_problems=problems, seed=seed, backend=backend.value,
                             progress=not as_json)
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    if as_json:
        typer.echo(json.dumps(res))
    else:
        typer.echo(f"error {res['error']:.4f} (accuracy {res['accuracy']:.4f}; chance error {res['chance_error']:.2f}) "
                   f"on {problems} problems of {res['dataset']} ({data}; seed {seed}, {backend.value} float; "
                   f"{res['wall_time_s']:.1f}s)")


def _reject_flags(given: dict, what: str) -> None:
    """A clear error naming every flag of ``given`` (flag -> value, None = unset) that was set: they do
    not apply to ``what``."""
    bad = [flag for flag, v in given.items() if v is not None]
    if bad:
        raise _fail(f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply to {what}")


def _evaluated(evaluate: Callable[[], dict], as_json: bool) -> Optional[dict]:
    """Run an evaluation, a ValueError / KeyError as a clear error; with ``--json`` print it and return None."""
    try:
        res = evaluate()
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    if as_json:
        typer.echo(json.dumps(res))
        return None
    return res


def _evaluate_tmaze(graph, *, config: Optional[str], episodes: Optional[int], seed: int, as_json: bool,
                    render: Optional[Path], by_assignment: bool, plot: Optional[Path], others: dict,
                    backend: "SimBackend", precision: "Precision") -> None:
    """``plastix evaluate`` of a T-maze network (trainer/experiments/es_run.py ``evaluate_tmaze``)."""
    _reject_flags(others, "T-maze networks")
    if backend is not SimBackend.torch or precision is not Precision.float:
        raise _fail("T-maze networks are evaluated on torch in float (Lava has no post-feedback gated synapses)")
    from plastix.trainer.experiments.es_run import evaluate_tmaze

    res = _evaluated(lambda: evaluate_tmaze(graph, config=config, episodes=episodes, seed=seed, render_dir=render,
                                            by_assignment=by_assignment, plot=plot), as_json)
    if res is None:
        return
    typer.echo(f"{res['task']} ({res['config']}), {res['model']} network, {res['episodes']} episodes (seed {seed}): "
               f"return {res['mean_return']:.2f} +- {res['std_return']:.2f} (min {res['min_return']:.1f}, max "
               f"{res['max_return']:.1f}); per episode {res['foods_per_episode']:.1f} foods, "
               f"{res['poisons_per_episode']:.1f} poisons; {100 * res['survived_fraction']:.0f} % ran to the end")
    rows = res.get("by_assignment", [])
    if rows:
        typer.echo(f"per assignment ({res['episodes'] // len(rows)} episodes each; inputs = the sensor each input "
                   "shows, W wall / G green / R red; outputs = the action of each motor, F forward / L left / R right):")
        for r in rows:
            typer.echo(f"  inputs {r['inputs']}  outputs {r['outputs']}  {r['mean_return']:7.2f}")
    for p in res.get("renders", []) + ([res["plot"]] if "plot" in res else []):
        typer.echo(f"wrote {p}")


def _evaluate_mimic(graph, *, config: Optional[str], episodes: int, seed: int, as_json: bool, others: dict,
                    backend: "SimBackend", precision: "Precision") -> None:
    """``plastix evaluate`` of a mimic-task cell (trainer/experiments/es_run.py ``evaluate_mimic``)."""
    _reject_flags(others, "mimic-task cells")
    if backend is not SimBackend.torch or precision is not Precision.float:
        raise _fail("mimic-task cells are evaluated on torch in float")
    from plastix.trainer.experiments.es_run import evaluate_mimic

    res = _evaluated(lambda: evaluate_mimic(graph, episodes=episodes, seed=seed, config=config), as_json)
    if res is None:
        return
    typer.echo(f"{res['task']} ({res['config']}), {res['model']}, {episodes} episodes (seed {seed}): fitness "
               f"{res['fitness']:.3f} (closer to 0 is better); {res['trivial']}: {res['trivial_fitness']:.3f}")


def _evaluate_locomotion(graph, *, noise: "Noise", std: Optional[str], episodes: int, seed: int,
                         backend: "SimBackend", precision: "Precision", as_json: bool, compare_lava: int,
                         others: dict) -> None:
    """``plastix evaluate`` of a Half-Cheetah policy (trainer/experiments/locomotion_run.py): the mean return
    over ``episodes`` at every std, or with ``--compare-lava K`` K environment steps on torch vs Lava."""
    _reject_flags(others, "Half-Cheetah models")
    if backend is not SimBackend.torch or precision is not Precision.float:
        raise _fail("Half-Cheetah policies are evaluated on torch in float; --compare-lava K checks K environment "
                    "steps on Lava")
    try:
        stds = tuple(float(x) for x in (std or "0").split(","))
        if not all(s >= 0 and s == s for s in stds):
            raise ValueError
    except ValueError:
        raise _fail(f"--std must be a number >= 0 or a comma list of them, got {std!r}") from None
    if noise is Noise.none and any(stds):
        raise _fail("--std needs --noise friction|action|observation")
    from plastix.trainer.experiments.locomotion import compare_lava as locomotion_compare
    from plastix.trainer.experiments.locomotion_run import evaluate_locomotion

    try:
        if compare_lava:
            typer.echo(json.dumps(locomotion_compare(graph, env_steps=compare_lava, seed=seed),
                                  indent=None if as_json else 1))
            return
        rows = evaluate_locomotion(graph, noise=noise.value, stds=stds, episodes=episodes, seed=seed)
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r))
        else:
            typer.echo(f"{r['noise']} std {r['std']:g}: mean return {r['mean_return']:.1f} +- {r['std_return']:.1f} over "
                       f"{r['episodes']} episodes of {r['steps']} steps (seed {seed}; {r['wall_time_s']:.1f}s)")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="output folder"),
         iterations: int = typer.Option(4, min=0, help="BPTT iterations per stage (the visible training phase, "
                                                       "continuing from the shipped models)"),
         problems: int = typer.Option(16, min=1, help="test problems run on torch and on Lava in each stage"),
         seed: int = typer.Option(0, min=0, help="random seed"),
         max_memory: Optional[str] = MAX_MEMORY) -> None:
    """End to end, in two stages: continue the shipped M = 5 cue-association model with BPTT, export the IR and
    NIR, run it on torch and on Lava in float; then the same for the hardware-aware model, whose trained rule runs
    on Loihi's learning engine in fixed point."""
    from plastix.demo import run_demo

    _max_memory(max_memory)
    run_demo(_out_folder(out), iterations=iterations, problems=problems, seed=seed)


# -- deploy (issue 10) -------------------------------------------------------------------------


class Target(str, Enum):
    bundle = "bundle"
    lava = "lava"
    nir = "nir"
    onnx = "onnx"


_MODEL_HELP = "a .plx model (e.g. a trainer's model.plx), a plastix-written NIR file, or a deploy bundle folder"
STEPS = typer.Option(100, min=1, help="steps of the generated input set")
SEED = typer.Option(0, min=0, help="seed of the generated input set")
TIMEOUT = typer.Option(300.0, callback=_positive, help="seconds allowed for a Lava run")
INPUTS = typer.Option(None, help=".npz input set, one (steps, size) array per model input (default: the bundle's, "
                                 "else Bernoulli(0.2) spikes)")


def _model_args(model: Path, inputs: Optional[Path], max_memory: Optional[str]) -> Optional[int]:
    """The checks every model command starts with: ``--max-memory`` applied, the model and the
    input set exist. Returns the loader's byte budget."""
    max_bytes = _max_memory(max_memory)
    _existing(model)
    if inputs is not None:
        _existing(inputs, "input set")
    return max_bytes


def _load_model_or_bundle(model: Path, max_bytes: Optional[int]):
    """(graph, bundle inputs or None) from a model file or a bundle folder."""
    from plastix.deploy.bundle import bundle_inputs, load_bundle

    _existing(model)
    if model.is_dir():
        try:
            graph, _ = load_bundle(model, max_bytes=max_bytes)
            return graph, bundle_inputs(model)
        except (BundleError, IRValidationError, ValueError) as exc:
            raise _fail(str(exc)) from None
    return _load(model, max_bytes), None


def _input_set(graph, inputs: "Path | None", stored, steps: int, seed: int, backend: str = "torch"):
    """The run's input set, after checking that a run of its length fits the memory limit."""
    from plastix.deploy.report import check_inputs, load_inputs, probe_inputs

    try:
        if inputs is not None:
            xs = load_inputs(inputs)
        elif stored is not None:
            xs = stored
        else:
            _check_run_memory(graph, steps, backend)
            xs = probe_inputs(graph, steps, seed)
        _check_run_memory(graph, check_inputs(graph, xs), backend)
    except (FileNotFoundError, ValueError) as exc:
        if isinstance(exc, MemoryLimitError):
            raise
        raise _fail(str(exc)) from None
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
           inputs: Path = INPUTS,
           steps: int = STEPS,
           seed: int = SEED,
           onnx: bool = typer.Option(False, help="bundle/lava: also add the ONNX step model"),
           plots: bool = typer.Option(True, help="bundle/lava: PNG plots next to the report"),
           overwrite: bool = typer.Option(False, help="replace an existing output"),
           timeout: float = TIMEOUT,
           task_problems: int = typer.Option(64, min=0, help="bundle/lava of a trained one_shot_cue model: the "
                                             "report's task accuracy in torch float, torch fixed and (lava) Lava "
                                             "fixed point on this many seeded problems (0: skip)"),
           max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Deploy a model to a target; every output is written atomically (all or nothing)."""

    from plastix.deploy.bundle import check_bundle_target

    max_bytes = _model_args(model, inputs, max_memory)
    stem = model.name if model.is_dir() else model.stem
    default = {Target.nir: f"{stem}.nir", Target.onnx: f"{stem}.onnx"}.get(target, f"{stem}_bundle")
    out = out or model.with_name(default)
    if target in (Target.nir, Target.onnx):
        _out_file(out, overwrite=overwrite)
    else:
        _out_folder(out, overwrite=None)
        check_bundle_target(out, overwrite)
    graph, stored = _load_model_or_bundle(model, max_bytes)
    from plastix.trainer.algorithms.hardware_aware import for_fixed_point, is_hardware_aware

    if is_hardware_aware(graph):  # what deploys is the model as the learning engine runs it
        graph = for_fixed_point(graph)
        typer.echo("hardware-aware model: deploying it in Loihi units (the scales stored in its metadata)")
    xs = _input_set(graph, inputs, stored, steps, seed, "lava" if target is Target.lava else "torch")
    try:
        if target is Target.nir:

            write_nir(graph, out)
            typer.echo(f"wrote {out}")
            return
        if target is Target.onnx:
            from tqdm import tqdm

            from plastix.deploy.onnx_export import check_step, export_step

            with new_file(out) as tmp:
                export_step(graph, tmp)
                with tqdm(total=len(next(iter(xs.values()))), desc="onnxruntime vs torch", unit="step") as bar:
                    res = check_step(graph, tmp, xs, progress=bar.update)
            typer.echo(f"wrote {out}; onnxruntime vs torch over {res['steps']} steps: max abs error "
                       f"{res['max_abs_error']:.3g} (outputs), {res['state_max_abs_error']:.3g} (state)")
            return
        from plastix.deploy.bundle import create_bundle

        lava = target is Target.lava
        task_eval = None
        from plastix.trainer.experiments.cue_eval import is_cue_model, task_accuracy

        if task_problems and is_cue_model(graph):
            def task_eval(on_lava: bool) -> dict:
                return task_accuracy(graph, n_problems=task_problems, seed=seed, lava=on_lava, timeout_per_problem=timeout)
        names = ["ir", "nir", "report"] + (["onnx"] if onnx else []) + (["lava"] if lava else [])
        bar, tick = _stages(names, f"deploy {target.value}")
        try:
            path = create_bundle(graph, out, inputs=xs, seed=seed, lava=lava, onnx=onnx, plots=plots,
                                 overwrite=overwrite, source=None if model.is_dir() else model, timeout=timeout,
                                 progress=tick, task_eval=task_eval)
        finally:
            bar.close()
    except Exception as exc:
        if isinstance(exc, BackendError):
            raise _fail(f"cannot deploy to {target.value}: {exc}", code=1) from None
        if isinstance(exc, (*_BAD_INPUT, ValueError)):
            raise _fail(f"cannot deploy to {target.value}: {exc}") from None
        raise
    m = json.loads((path / "manifest.json").read_text())
    typer.echo(f"wrote bundle {path} ({', '.join(m['files'])})")
    for name, why in m["skipped"].items():
        typer.echo(f"  skipped {name}: {why}")
    if "lava_check" in m["metrics"]:
        c = m["metrics"]["lava_check"]
        typer.echo(f"  Lava reproduces torch: {c['criterion']}; max abs error {c['max_abs_error']:.3g}")
    if "task" in m["metrics"]:
        t = m["metrics"]["task"]
        typer.echo(f"  task accuracy on {t['problems']} problems (M = {t['cues']}): " +
                   ", ".join(f"{k} {a:.3f}" for k, a in t["accuracy"].items()))
        if "identical_counts_fixed" in t:
            typer.echo(f"  torch fixed vs Lava fixed: same output counts on {t['identical_counts_fixed']:.1%} of problems")


@app.command()
def report(model: Path = typer.Argument(..., help=_MODEL_HELP),
           out: Path = typer.Option(None, help="folder for report.json, report.md and the plots "
                                    "(default: <model>_report)"),
           inputs: Path = INPUTS,
           steps: int = STEPS,
           seed: int = SEED,
           plots: bool = typer.Option(True, help="write the PNG plots"),
           overwrite: bool = typer.Option(False, help="replace an existing report folder"),
           max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Loihi report: per node/rule lowering status, quantisation error, Loihi 2 resources, measured
    synaptic/plasticity ops and spikes per step, modelled energy."""
    from plastix.deploy.report import build_report, write_report

    max_bytes = _model_args(model, inputs, max_memory)
    out = _out_folder(out or model.with_name(f"{model.name if model.is_dir() else model.stem}_report"),
                      overwrite=overwrite)
    if out.exists() and not (out / "report.json").is_file():
        raise _fail(f"{out} exists and is not a report folder (no report.json); not replacing it")
    graph, stored = _load_model_or_bundle(model, max_bytes)
    xs = _input_set(graph, inputs, stored, steps, seed)
    bar, tick = _stages(["report", "files"], "report")
    try:
        rep = build_report(graph, xs, seed=seed)
        tick("report")
        with new_dir(out) as tmp:
            write_report(rep, tmp, plots=plots)
        tick("files")
    except (UnsupportedKindError, ValueError) as exc:
        if isinstance(exc, MemoryLimitError):
            raise
        raise _fail(f"cannot report: {exc}") from None
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
             inputs: Path = INPUTS,
             steps: int = STEPS,
             seed: int = SEED,
             out: Path = typer.Option(None, help="write the outputs to this .npz file"),
             timeout: float = TIMEOUT,
             max_memory: Optional[str] = MAX_MEMORY) -> None:
    """Run a model on an input set on torch or Lava and print (optionally save) its outputs."""
    from plastix.deploy.bundle import npz_bytes
    from plastix.deploy.targets import outputs_summary
    from plastix.deploy.targets import simulate as run_sim

    max_bytes = _model_args(model, inputs, max_memory)
    if out is not None:
        _out_file(out)
    graph, stored = _load_model_or_bundle(model, max_bytes)
    xs = _input_set(graph, inputs, stored, steps, seed, backend.value)
    try:
        outs = run_sim(graph, xs, backend=backend.value, precision=precision.value, timeout=timeout)
    except (UnsupportedKindError, ValueError) as exc:
        if isinstance(exc, MemoryLimitError):
            raise
        raise _fail(f"cannot simulate on {backend.value} ({precision.value}): {exc}") from None
    except Exception as exc:
        if isinstance(exc, BackendError):
            raise _fail(f"Lava run failed: {exc}", code=1) from None
        raise
    typer.echo(outputs_summary(outs))
    if out is not None:
        write_bytes(out, npz_bytes(outs))
        typer.echo(f"wrote {out}")


def main() -> None:  # pragma: no cover
    app(prog_name="plastix")
