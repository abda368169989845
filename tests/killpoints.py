"""Kill injection: run a writer in a forked child that SIGKILLs itself just before its n-th file
system operation under a folder, for n = 1, 2, ... until a run completes, and check after every
kill that the artefact is the old one or the complete new one.

File system operations are Python's audit events (``open``, ``os.rename`` (also ``os.replace``),
``os.remove``, ``os.rmdir``, ``os.mkdir``, ``shutil.rmtree``, ``tempfile.mkstemp``/``mkdtemp``, ...)
plus ``plastix.exchange`` (the atomic folder swap); an audit hook runs before the operation, so
killing at event n stops the writer between operations n - 1 and n. At an ``open`` that
truncates a file the hook truncates it first (the state after the open, before any write).

Run as ``python -m tests.killpoints SCENARIO FOLDER`` (the tests do, in a fresh process that uses
one thread, so forking is safe); prints one JSON line with the counts.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

FS_EVENTS = frozenset({"open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod",
                       "os.link", "os.symlink", "shutil.rmtree", "shutil.move", "shutil.copyfile",
                       "tempfile.mkstemp", "tempfile.mkdtemp", "plastix.exchange"})
MAX_POINTS = 2000


def _touches(args: tuple, root: str) -> bool:
    for a in args:
        if isinstance(a, (str, bytes, os.PathLike)):
            p = os.path.abspath(os.fsdecode(a))
            if p == root or p.startswith(root + os.sep):
                return True
    return False


def _truncate_first(event: str, args: tuple) -> None:
    """A writer killed between an ``open`` that truncates a file and its first write leaves the file
    empty, but no audit event lies between the two: at an ``open`` kill point, do the truncating
    open the writer was about to do, then die."""
    if event != "open" or len(args) < 3 or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    flags = args[2] if isinstance(args[2], int) else 0
    if flags & os.O_TRUNC and flags & (os.O_WRONLY | os.O_RDWR):
        os.close(os.open(args[0], flags & ~os.O_EXCL, 0o644))


def run_killed_at(fn: Callable[[], None], n: int, root: Path) -> bool:
    """Run ``fn`` in a child killed before its ``n``-th file system operation under ``root``.
    True if it was killed, False if ``fn`` finished first."""
    root_s = os.path.abspath(root)
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            count = [0]

            def hook(event: str, args: tuple) -> None:
                if event in FS_EVENTS and _touches(args, root_s):
                    count[0] += 1
                    if count[0] == n:
                        _truncate_first(event, args)
                        os.kill(os.getpid(), signal.SIGKILL)

            sys.addaudithook(hook)
            fn()
        except BaseException:  # noqa: BLE001 - reported through the exit code
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return False
    raise AssertionError(f"writer failed at kill point {n} (status {status})")


def sweep(write: Callable[[], None], root: Path, check: Callable[[int], None], reset: Callable[[], None]) -> int:
    """Kill ``write`` at every point 1, 2, ... until it completes; ``check(n)`` after each run
    (killed or not), ``reset()`` before the next. Returns the number of kill points."""
    for n in range(1, MAX_POINTS):
        killed = run_killed_at(write, n, root)
        check(n)
        reset()
        if not killed:
            return n - 1
    raise AssertionError(f"writer still running after {MAX_POINTS} kill points")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def clean_folder(folder: Path) -> None:
    """``clean_stale`` for every target that has temporaries in ``folder``."""
    import re

    from plastix.ir.atomic import clean_stale

    for name in _leftovers(folder):
        m = re.match(r"^\.(.+)\.(tmp|old)-[a-z0-9_]{8}$", name)
        if m:
            clean_stale(folder / m.group(1))


# ---------------------------------------------------------------------------------------------
# scenarios


def _graphs():
    import numpy as np

    import plastix.ir as ir

    def net(seed: int):
        b = ir.GraphBuilder(seed=seed)
        x, h = b.input("x", 4), b.cuba_lif("h", 3, du=0.3, dv=0.2, vth=0.5)
        b.connect(x, h, rule=ir.PairSTDP(eta_plus=0.01, eta_minus=0.01, decay_pre=0.8, decay_post=0.8))
        return b.build(outputs=[h], metadata={"version": seed})

    return net(0), net(1), np


def scenario_save(folder: Path, exchange: bool = True) -> dict:
    import plastix.ir as ir
    from plastix.ir.atomic import clean_stale

    old, new, _ = _graphs()
    out = folder / "model.plx"
    ir.save(old, out)

    def check(n: int) -> None:
        got = ir.load(out)
        assert got == old or got == new, f"kill point {n}: model.plx is neither the old nor the new model"
        clean_stale(out)
        assert _leftovers(folder) == [], f"kill point {n}: left {_leftovers(folder)}"

    points = sweep(lambda: ir.save(new, out), folder, check, lambda: ir.save(old, out))
    return {"points": points}


def scenario_bundle(folder: Path, exchange: bool = True) -> dict:
    from plastix.deploy.bundle import MANIFEST, create_bundle, load_bundle
    from plastix.ir import atomic

    old, new, _ = _graphs()
    out, pristine = folder / "work" / "bundle", folder / "pristine"
    create_bundle(old, pristine, steps=8, plots=False)
    (folder / "work").mkdir()
    shutil.copytree(pristine, out)
    root = folder / "work"
    seen = {"old": 0, "new": 0, "restored": 0}

    def write() -> None:
        if not exchange:
            atomic._exchange = lambda a, b: False  # the two-rename fallback of file systems without it
        create_bundle(new, out, steps=9, plots=False, overwrite=True)

    def check(n: int) -> None:
        if not out.exists():
            assert not exchange, f"kill point {n}: the bundle is gone"
            atomic.clean_stale(out)  # the next writer moves the old bundle back
            seen["restored"] += 1
        graph, manifest = load_bundle(out)  # every hash checked
        kind = "old" if graph == old else "new" if graph == new else None
        assert kind, f"kill point {n}: the bundle holds neither model"
        assert manifest["inputs"]["steps"] == {"old": 8, "new": 9}[kind], f"kill point {n}: files of both bundles"
        seen[kind] += 1
        atomic.clean_stale(out)
        assert _leftovers(root) == [], f"kill point {n}: left {_leftovers(root)}"

    def reset() -> None:
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        assert json.loads((out / MANIFEST).read_text())["inputs"]["steps"] == 8

    points = sweep(write, root, check, reset)
    return {"points": points, **seen}


def scenario_train(folder: Path, exchange: bool = True) -> dict:
    from plastix.ir import load
    from plastix.trainer.experiments.es_run import train_es
    from plastix.trainer.runner import load_checkpoint, read_metrics

    def train(out: Path, generations: int, resume: bool) -> dict:
        return train_es("iaf", "enu", "quick", out, generations=generations, population=4, num_envs=1,
                        progress=False, checkpoint_every=1, resume=resume)

    ref = folder / "reference"
    train(ref, 4, False)
    reference = (ref / "model.plx").read_bytes()
    pristine, out = folder / "pristine", folder / "work" / "run"
    train(pristine, 2, False)
    old_model = load(pristine / "model.plx")
    shutil.copytree(pristine, out)
    root = folder / "work"
    resumed = [0]

    def check(n: int) -> None:
        ck = load_checkpoint(out / "checkpoint.pt")  # always a complete checkpoint
        assert 2 <= int(ck["step"]) <= 4, f"kill point {n}: checkpoint step {ck['step']}"
        model = load(out / "model.plx")  # the old model or the complete new one
        assert model == old_model or (out / "model.plx").read_bytes() == reference, f"kill point {n}: model.plx"
        steps = [r["step"] for r in read_metrics(out / "metrics.jsonl")]
        assert steps == list(range(len(steps))) and len(steps) >= 2, f"kill point {n}: metrics {steps}"
        json.loads((out / "config.json").read_text())
        if (out / "result.json").exists():
            json.loads((out / "result.json").read_text())
        if n % 7 == 1:  # resume the interrupted run: it ends exactly like an uninterrupted one
            train(out, 4, True)
            assert (out / "model.plx").read_bytes() == reference, f"kill point {n}: resumed run differs"
            resumed[0] += 1
        clean_folder(out)
        assert _leftovers(out) == [], f"kill point {n}: left {_leftovers(out)}"

    def reset() -> None:
        shutil.rmtree(out)
        shutil.copytree(pristine, out)

    points = sweep(lambda: train(out, 4, True), root, check, reset)
    return {"points": points, "resumed_and_compared": resumed[0]}


SCENARIOS = {"save": scenario_save, "bundle": scenario_bundle, "train": scenario_train}


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)  # forked children must not inherit a thread pool
    name, folder = argv[0], Path(argv[1])
    exchange = "--no-exchange" not in argv
    print(json.dumps(SCENARIOS[name](folder, exchange=exchange)))


if __name__ == "__main__":
    main(sys.argv[1:])
