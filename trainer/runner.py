"""The one checkpoint / resume / progress / metrics-log / plot path shared by every trainer.

A trainer plugs in as a :class:`Job`: an object with an explicit, serialisable loop state (the
trainer state *and* its RNG state, e.g. ``torch.Generator.get_state()``), a pure-ish ``step`` and
a JSON-able ``config``. :func:`run` drives it:

* ``out_dir/checkpoint.pt`` — written atomically (temp file + fsync + ``os.replace``) every
  ``checkpoint_every`` steps, at the end, and when the loop is interrupted by an exception
  (``KeyboardInterrupt`` included; the state saved is the last *completed* step). A process
  killed outright loses at most ``checkpoint_every - 1`` steps.
* ``resume=True`` continues from the checkpoint; because the RNG state is part of the loop
  state, a resumed run reproduces an uninterrupted one bit for bit. Log lines written after the
  checkpoint are dropped and recomputed.
* ``out_dir/metrics.jsonl`` — one JSON object per step (``step`` + the step's metrics +
  ``wall_time`` seconds spent in that step).
* ``out_dir/curve.png`` — the chosen metrics against the step (matplotlib, Agg canvas; no global
  backend switch), written at the end and on interruption.
* ``out_dir/config.json`` — ``job.config()``; resuming with a different config is refused.
* ``out_dir/best.*`` — with ``RunOptions.best_key`` and a job that has ``save_best(state, out_dir)``:
  the model at the step where that metric was highest so far (ties keep the earlier one), written
  when it improves (model selection on the job's evaluation problems; report its accuracy on others).
* a tqdm progress bar (``progress=False`` for tests).
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import torch

from plastix.ir.serialize import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CURVE = "curve.png"
CONFIG = "config.json"
CHECKPOINT_FORMAT = 1


class Job(Protocol):
    """What :func:`run` drives. ``state_dict``'s values must be tensors, numbers, strings, bools,
    None, lists/tuples or dicts of those (``torch.load(weights_only=True)`` reads them back)."""

    def config(self) -> dict: ...

    # optional: ``config_defaults() -> dict``, the default of every config key (JSON form), so that a
    # checkpoint written before a setting existed resumes when the setting is at its default;
    # ``save_best(state, out_dir)``, called when ``RunOptions.best_key`` reaches a new maximum

    def init_state(self) -> Any: ...

    def step(self, state: Any, index: int) -> tuple[Any, dict[str, float]]: ...

    def state_dict(self, state: Any) -> dict: ...

    def load_state_dict(self, data: dict) -> Any: ...


@dataclass(frozen=True)
class RunOptions:
    """How the loop runs. ``plot_keys``: metrics drawn in ``curve.png``; ``postfix_key``: metric
    shown on the progress bar."""

    out_dir: Path
    total_steps: int
    resume: bool = False
    checkpoint_every: int = 10
    progress: bool = True
    plot: bool = True
    plot_keys: tuple[str, ...] = ("fitness_mean", "fitness_max")
    postfix_key: str | None = "fitness_mean"
    step_name: str = "generation"
    desc: str = "train"
    best_key: str | None = None  # keep the model where this metric peaked (job.save_best)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.total_steps < 0:
            raise ValueError(f"RunOptions.total_steps must be >= 0, got {self.total_steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"RunOptions.checkpoint_every must be >= 1, got {self.checkpoint_every}")


@dataclass(frozen=True)
class RunResult:
    state: Any
    steps_done: int
    resumed_from: int | None
    records: list = field(default_factory=list)
    out_dir: Path | None = None


# ---------------------------------------------------------------------------------------------
# checkpoints


def config_preset(presets: Mapping[str, Any], name: str, what: str = "config", **overrides: Any) -> Any:
    """The dataclass preset ``presets[name]`` with every non-None ``overrides`` field replaced;
    an unknown ``name`` raises a ValueError that lists the known presets."""
    if name not in presets:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(presets)}")
    return dataclasses.replace(presets[name], **{k: v for k, v in overrides.items() if v is not None})


def save_checkpoint(path: Path, step: int, state_dict: dict, config: dict) -> None:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "step": int(step), "state": state_dict,
                "config_json": json.dumps(config, sort_keys=True)}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint`. ``torch.load(weights_only=True)`` unpickles
    only tensors and plain containers (never arbitrary objects); anything unreadable, foreign or
    incomplete raises a ``ValueError`` naming the file. The sizes its zip records declare must fit
    the memory limit (:mod:`plastix.backends.memory`) before anything is read."""
    _check_declared_sizes(Path(path))
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # UnpicklingError, a damaged zip, a truncated file, a forbidden global
        # (torch's own text suggests weights_only=False, which would unpickle arbitrary objects: not shown)
        why = ("not a torch file, or it holds objects other than tensors and plain containers"
               if isinstance(exc, pickle.UnpicklingError) else f"{type(exc).__name__}: {str(exc).split('. ')[0][:200]}")
        raise ValueError(f"{path}: not a readable plastix checkpoint ({why})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a plastix checkpoint (format {CHECKPOINT_FORMAT})")
    if not isinstance(data.get("step"), int) or not isinstance(data.get("config_json"), str) or "state" not in data:
        raise ValueError(f"{path}: incomplete plastix checkpoint (needs step, state and config_json)")
    return data


def _check_declared_sizes(path: Path) -> None:
    """Refuse (``MemoryLimitError``) a checkpoint whose records declare more than the memory limit."""
    import zipfile

    from plastix.backends import memory

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip: torch.load says what it is
    with zf:
        est = memory.Estimate(f"loading the checkpoint {path}")
        for info in zf.infolist():
            est.add(info.filename, info.file_size)
    memory.check(est)


# ---------------------------------------------------------------------------------------------
# metrics log and plot


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line from a killed process
                break
    return out


def _json_safe(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    return v


def plot_metrics(records: Sequence[dict], keys: Sequence[str], path: Path, *, xlabel: str = "generation",
                 title: str = "") -> Path | None:
    """Draw ``keys`` against ``step`` into a PNG (Agg canvas, no pyplot state). Returns the path,
    or None when there is nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in records)]
    if not records or not keys:
        return None
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for k in keys:
        pts = [(r["step"] + 1, r[k]) for r in records if isinstance(r.get(k), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("value")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def config_changes(saved: dict, now: dict, defaults: dict, prefix: str = "") -> dict[str, tuple]:
    """``key -> (saved, now)`` for every setting that differs between a checkpoint's config and the
    current one. A key the checkpoint does not have (a setting added to plastix after the run
    started) is no change when its current value is its default (``defaults``, JSON form): the old
    run ran with that behaviour. Nested settings (dicts, e.g. an ES run's ``task_config``) compare
    key by key against the nested ``defaults`` and are named ``outer.inner``."""
    missing = object()
    out = {}
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k, missing), now.get(k, missing)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            inner = defaults.get(k)
            out.update(config_changes(a, b, inner if isinstance(inner, dict) else {}, f"{prefix}{k}."))
            continue
        if a is missing and k in defaults and defaults[k] == b:
            continue
        out[prefix + k] = ("(absent)" if a is missing else a, "(absent)" if b is missing else b)
    return out


# ---------------------------------------------------------------------------------------------
# the loop


def run(job: Job, options: RunOptions) -> RunResult:
    """Run ``job`` for ``options.total_steps`` steps in ``options.out_dir`` (see module docs)."""
    from tqdm.auto import tqdm

    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / CHECKPOINT, out / METRICS
    config = job.config()
    config_json = json.dumps(config, sort_keys=True)

    resumed_from = None
    if ckpt_path.exists():
        if not options.resume:
            raise FileExistsError(f"{out} already holds a run ({CHECKPOINT}); pass resume=True to continue it "
                                  "or choose another output folder")
        data = load_checkpoint(ckpt_path)
        if data["config_json"] != config_json:
            changed = config_changes(json.loads(data["config_json"]), json.loads(config_json), getattr(job, "config_defaults", dict)())
            if changed:
                raise ValueError(f"{ckpt_path}: the checkpoint was written with another config; changed: " +
                                 "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in changed.items()))
        state = job.load_state_dict(data["state"])
        start = resumed_from = int(data["step"])
    else:
        state, start = job.init_state(), 0
    # the log keeps exactly the steps the state has seen
    records = [r for r in read_metrics(log_path) if r.get("step", math.inf) < start]
    atomic_write_bytes(log_path, "".join(json.dumps(r) + "\n" for r in records).encode())
    atomic_write_bytes(out / CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())

    save_best = getattr(job, "save_best", None) if options.best_key else None
    best = max((r[options.best_key] for r in records if options.best_key in r), default=-math.inf)
    done = start
    bar = tqdm(total=options.total_steps, initial=start, disable=not options.progress, desc=options.desc,
               unit=options.step_name[:3], dynamic_ncols=True)
    try:
        with log_path.open("a") as log:
            for i in range(start, options.total_steps):
                t0 = time.perf_counter()
                new_state, metrics = job.step(state, i)
                rec = {"step": i, **{k: _json_safe(v) for k, v in metrics.items()},
                       "wall_time": time.perf_counter() - t0}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                records.append(rec)
                state, done = new_state, i + 1
                if save_best is not None and rec.get(options.best_key, -math.inf) > best:
                    best = rec[options.best_key]
                    save_best(state, out)
                if done % options.checkpoint_every == 0 or done == options.total_steps:
                    save_checkpoint(ckpt_path, done, job.state_dict(state), config)
                bar.update(1)
                if options.postfix_key and options.postfix_key in rec:
                    bar.set_postfix({options.postfix_key: rec[options.postfix_key]})
    except BaseException:
        if done > start:  # keep the last completed step
            save_checkpoint(ckpt_path, done, job.state_dict(state), config)
        raise
    finally:
        bar.close()
        if options.plot:
            plot_metrics(records, options.plot_keys, out / CURVE, xlabel=options.step_name, title=options.desc)
    if done == start and not ckpt_path.exists():
        save_checkpoint(ckpt_path, done, job.state_dict(state), config)
    return RunResult(state=state, steps_done=done, resumed_from=resumed_from, records=records, out_dir=out)
