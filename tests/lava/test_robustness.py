"""Timeouts, worker errors, and no leaks across many compile/run cycles."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from .conftest import spikes, static_graph


def _children() -> set[int]:
    """PIDs of this process's live (non-zombie) children, from /proc."""
    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            out.add(int(pid))
    return out


def _shm() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
    except FileNotFoundError:
        return set()


@pytest.fixture(scope="module", autouse=True)
def _warm_up(lava):
    """One run first: it starts multiprocessing's resource tracker, the one long-lived child."""
    g = static_graph("float", readout=False, recurrent=False)
    lava.compile(g, "float", timeout=60).run({"x": spikes(5, 20)}, 5)


def test_worker_exception_is_reported_with_process_name(lava):
    g = static_graph("float", readout=False)
    net = lava.compile(g, "float", timeout=60, debug_fault=lava.FaultSpec(at=7, message="boom at step seven"))
    before_children, before_shm = _children(), _shm()
    t0 = time.monotonic()
    with pytest.raises(lava.LavaRunError) as info:
        net.run({"x": spikes(50, 20)}, 50)
    assert time.monotonic() - t0 < 30
    err = info.value
    assert "FaultInjector" in str(err) and "boom at step seven" in str(err)
    assert err.process and "FaultInjector" in err.process
    assert "RuntimeError" in err.remote_traceback
    assert not isinstance(err, lava.LavaTimeoutError)
    assert _children() <= before_children
    assert _shm() <= before_shm


def test_hanging_run_times_out_and_is_cleaned_up(lava):
    g = static_graph("fixed", readout=False)
    net = lava.compile(g, "fixed", timeout=4, debug_fault=lava.FaultSpec(at=3, mode="hang"))
    before_children, before_shm = _children(), _shm()
    t0 = time.monotonic()
    with pytest.raises(lava.LavaTimeoutError, match="did not finish within 4"):
        net.run({"x": spikes(30, 20)}, 30)
    assert time.monotonic() - t0 < 15
    assert _children() <= before_children
    assert _shm() <= before_shm
    # the network is still usable after a timeout
    net2 = lava.compile(g, "fixed", timeout=60)
    assert net2.run({"x": spikes(30, 20)}, 30)["y"].shape == (30, 2)


def test_fifty_cycles_leak_nothing(lava):
    g = static_graph("fixed", readout=False, recurrent=False)
    x = {"x": spikes(20, 20, seed=5)}
    with lava.compile(g, "fixed", timeout=60) as net:
        first = net.run(x, 20)
    children, shm = _children(), _shm()
    for i in range(50):
        with lava.compile(g, "fixed", timeout=60) as net:
            out = net.run(x, 20, readback=False)
        np.testing.assert_array_equal(out["y"], first["y"])
    assert _children() <= children, "child processes left behind"
    assert _shm() <= shm, "/dev/shm segments left behind"


_HANGING_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import plastix.backends.lava as lava
from tests.lava.conftest import static_graph, spikes
net = lava.compile(static_graph("float", readout=False), "float", timeout=300,
                   debug_fault=lava.FaultSpec(at=3, mode="hang"))
print("running", flush=True)
net.run({{"x": spikes(30, 20)}}, 30)
"""


def test_killed_parent_leaves_no_lava_processes_or_memory():
    """SIGKILL the process that called run(): the run's watchdog kills its workers and frees its memory."""
    import pathlib
    import signal
    import subprocess
    import sys

    root = str(pathlib.Path(__file__).resolve().parents[2])
    before = _shm()
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_SCRIPT.format(root=root)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 60
        mine: set[str] = set()
        while not mine and time.monotonic() < deadline:  # wait until the Lava run is up
            mine = {n for n in _shm() - before if n.startswith("psm_plx")}
            time.sleep(0.2)
        assert mine, "the run never started"
        host = int(next(iter(mine))[len("psm_plx"):].split("_")[0])  # pid of the run's host process
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (os.path.exists(f"/proc/{host}") or _shm() & mine):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{host}"), "the run's host process survived its parent"
    assert not (_shm() & mine), "shared memory of the killed run left in /dev/shm"
