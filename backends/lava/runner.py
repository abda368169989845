"""Run Lava in a child process we control: a hard timeout, clear errors, no leaked processes or memory.

Lava (lava-nc 0.10.0) runs every Process in its own OS process, forked from the process that calls
``run()``, plus a ``SharedMemoryManager`` server; a deadlocked network blocks the caller forever
and calling ``stop()`` after a worker error hangs too (see ``/work/shared/lava-notes.md``, Q4/Q6).
So plastix never runs Lava in the caller's process. :func:`run_isolated`:

1. forks one child (``multiprocessing`` ``fork`` context, independent of the global start method),
   which calls :func:`os.setsid` so that it and every Lava worker it forks share one process group
   (a watchdog thread there kills that group if the parent dies);
2. in the child, renames Python's shared-memory segments to ``psm_plx<child pid>_<random>`` so the
   parent knows exactly which ``/dev/shm`` entries belong to this run;
3. runs ``job()`` there and sends back ``("ok", result)`` or ``("error", LavaRunError)`` through a
   pipe, then leaves with :func:`os._exit` (an interpreter exit after Lava can hang at exit);
4. in the parent, waits at most ``timeout`` seconds, then always SIGKILLs the whole process group
   (a no-op when everything already exited), reaps the child and unlinks any of its segments left
   in ``/dev/shm``. (The run does not register its segments with the resource tracker, see
   ``_child_main``: the parent owns their cleanup.)

The resource tracker is started in the parent first, so runs do not each leave one behind.
"""
from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import threading
import time
import traceback
from multiprocessing import resource_tracker
from typing import Any, Callable

from plastix.ir.errors import BackendRunError, BackendTimeoutError

__all__ = ["LavaRunError", "LavaTimeoutError", "run_isolated", "shm_entries", "SHM_DIR"]

SHM_DIR = "/dev/shm"
_FORK = multiprocessing.get_context("fork")


class LavaRunError(BackendRunError):
    """A Lava run failed; ``process`` names the failing Lava Process (when known), ``remote_traceback``
    is the worker's traceback text."""

    def __init__(self, msg: str, *, process: str | None = None, remote_traceback: str = "") -> None:
        self.process = process
        self.remote_traceback = remote_traceback
        super().__init__(msg + (f"\n--- traceback in the Lava worker ---\n{remote_traceback}" if remote_traceback else ""))

    def __reduce__(self):  # travels through the result pipe
        return (_rebuild_error, (self.args[0].split("\n--- traceback")[0], self.process, self.remote_traceback))


def _rebuild_error(msg: str, process: str | None, tb: str) -> "LavaRunError":
    return LavaRunError(msg, process=process, remote_traceback=tb)


class LavaTimeoutError(LavaRunError, BackendTimeoutError):
    """A Lava run did not finish within its timeout; all its processes were killed."""


def _shm_prefix(pid: int) -> str:
    return f"psm_plx{pid}_"


def shm_entries(prefix: str = "psm_") -> list[str]:
    """Names in ``/dev/shm`` starting with ``prefix`` (empty if there is no /dev/shm)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _watchdog(parent: int, deadline: float) -> None:
    """In the child: kill our whole process group if the parent dies or long after the deadline
    (the parent normally does this; this covers a parent killed with SIGKILL)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent or time.monotonic() > deadline:
            _unlink_segments(_shm_prefix(os.getpid()))  # nobody else will
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _child_main(job: Callable[[], Any], conn, parent: int, deadline: float) -> None:
    code = 0
    try:
        os.setsid()
        threading.Thread(target=_watchdog, args=(parent, deadline), daemon=True).start()
        prefix = _shm_prefix(os.getpid())
        from multiprocessing import shared_memory

        # Python's SharedMemory(create=True) names new segments with this function.
        shared_memory._make_filename = lambda: prefix + secrets.token_hex(6)  # type: ignore[attr-defined]
        # 3.11 registers every *opened* segment with the resource tracker, from every worker, and the
        # messages race with the unregistrations: stale entries then warn at interpreter exit. The
        # parent removes this run's segments by name, so the run does not track them at all.
        register, unregister = resource_tracker.register, resource_tracker.unregister
        resource_tracker.register = lambda name, rtype: None if rtype == "shared_memory" else register(name, rtype)
        resource_tracker.unregister = (lambda name, rtype: None if rtype == "shared_memory"
                                       else unregister(name, rtype))
        try:
            payload = ("ok", job())
        except LavaRunError as exc:
            payload = ("error", exc)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            payload = ("error", LavaRunError(f"{type(exc).__name__}: {exc}", remote_traceback=traceback.format_exc()))
        try:
            conn.send(payload)
        except Exception as exc:  # unpicklable result
            conn.send(("error", LavaRunError(f"cannot send the run's result back: {exc!r}")))
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _unlink_segments(prefix: str) -> list[str]:
    removed = []
    for name in shm_entries(prefix):
        try:
            os.unlink(os.path.join(SHM_DIR, name))
            removed.append(name)
        except FileNotFoundError:
            continue
    return removed


def run_isolated(job: Callable[[], Any], *, timeout: float, what: str = "Lava run") -> Any:
    """Run ``job()`` in a fresh process group and return its (picklable) result.

    Raises :class:`LavaTimeoutError` after ``timeout`` seconds (everything killed) and
    :class:`LavaRunError` if ``job`` raised or the child died.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    resource_tracker.ensure_running()
    recv, send = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_child_main, args=(job, send, os.getpid(), time.monotonic() + timeout + 30.0),
                          name="plastix-lava-run", daemon=False)
    child.start()
    send.close()
    pid = int(child.pid or 0)
    if pid <= 0:  # pragma: no cover - start() raises instead
        raise LavaRunError(f"{what}: could not start the Lava host process")
    deadline = time.monotonic() + timeout
    payload = None
    try:
        while payload is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if recv.poll(min(left, 0.5)):
                try:
                    payload = recv.recv()
                except EOFError:  # child died without answering
                    break
            elif not child.is_alive() and not recv.poll(0):
                break
    finally:
        _kill_group(pid)
        child.join(5.0)
        if child.is_alive():  # setsid had not run yet: kill the child itself
            child.kill()
            child.join(5.0)
        recv.close()
        _unlink_segments(_shm_prefix(pid))
    if payload is None:
        if time.monotonic() >= deadline:
            raise LavaTimeoutError(f"{what} did not finish within {timeout:g} s; all its Lava processes were killed")
        raise LavaRunError(f"{what}: the Lava host process died (exit code {child.exitcode}) without a result")
    status, value = payload
    if status == "ok":
        return value
    raise value
