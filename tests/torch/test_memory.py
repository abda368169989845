"""Every backend estimates the memory of a run before allocating it and refuses above the limit
(plastix.backends.memory): the message names the estimate and its largest parts, and the limit can
be raised for the rare real need."""
from __future__ import annotations

import resource

import numpy as np
import pytest
import torch

from plastix.backends import memory
from plastix.backends.memory import MemoryLimitError
from plastix.backends.torch import compile as torch_compile
from plastix.ir.examples import cue_association_net


def test_parse_size():
    assert memory.parse_size("512M") == 512 << 20 and memory.parse_size("16GiB") == 16 << 30
    assert memory.parse_size("1.5g") == 3 << 29 and memory.parse_size("1000") == 1000
    assert memory.parse_size("none") is None
    for bad in ("-1", "0", "lots", "12Q", ""):
        with pytest.raises(ValueError):
            memory.parse_size(bad)


def test_limit_precedence(monkeypatch):
    monkeypatch.delenv(memory.ENV, raising=False)
    assert memory.limit() == memory._physical() // 2
    monkeypatch.setenv(memory.ENV, "3G")
    assert memory.limit() == 3 << 30 and memory.limit("1M") == 1 << 20
    monkeypatch.setenv(memory.ENV, "none")
    assert memory.limit() is None


def _xs(graph, T, B):
    return {n: torch.zeros(T, B, graph.population(n).size) for n in graph.inputs}


def test_torch_run_is_refused_before_allocating_and_allowed_with_a_higher_limit():
    g = cue_association_net()
    net = torch_compile(g, memory_limit="8M")
    with pytest.raises(MemoryLimitError, match=r"torch run of 3000 steps \(P=1, B=64\) would need about") as info:
        net.run(_xs(g, 3000, 64))
    assert "recorded outputs" in str(info.value) or "network state" in str(info.value)
    assert "--max-memory" in str(info.value)
    with torch.no_grad():
        out, _ = torch_compile(g, memory_limit="1G").run(_xs(g, 30, 4))
    assert out["action"].shape == (30, 1, 4, 2)


def test_autograd_is_counted():
    g = cue_association_net()
    small = memory.torch_run(g, 400, B=64).total
    with_grad = memory.torch_run(g, 400, B=64, grad=True).total
    assert with_grad > 50 * small  # BPTT keeps every step (measured: 1.75 GiB for this run)
    net = torch_compile(g, memory_limit="500M")
    with pytest.raises(MemoryLimitError, match="autograd"):
        net.run(_xs(g, 400, 64))
    with torch.no_grad():
        net.run(_xs(g, 40, 64))  # the same run without autograd fits


def test_huge_population_is_refused_in_init_state():
    g = cue_association_net()
    with pytest.raises(MemoryLimitError, match="P=100000"):
        torch_compile(g, memory_limit="1G").init_state(100_000, 64)


def test_fixed_point_run_is_checked():
    from plastix.backends.quantize import quantize_graph
    from tests.deploy.conftest import static_ff

    g = quantize_graph(static_ff())
    net = torch_compile(g, precision="fixed", memory_limit="1M")
    with pytest.raises(MemoryLimitError, match="20000 steps"):
        net.run({"x": torch.zeros(20000, 1, 12)})
    out, _ = torch_compile(g, precision="fixed").run({"x": torch.zeros(20, 1, 12)})
    assert out["y"].shape == (20, 1, 1, 3)


def test_lava_run_is_refused_before_any_process_starts():
    import plastix.backends.lava as lava
    from tests.deploy.conftest import static_ff

    g = static_ff()
    with lava.compile(g, "float", memory_limit="64M") as net:
        with pytest.raises(MemoryLimitError, match="Lava run of 10 steps"):
            net.run({"x": np.zeros((10, 12))}, 10)  # the Lava processes alone exceed 64 MiB


def test_cli_refuses_a_huge_simulation_without_allocating_it(tmp_path):
    """The issue's case: `simulate --steps 100000000` on a small model grew to 10 GB."""
    from typer.testing import CliRunner

    import plastix.ir as ir
    from plastix.cli import app
    from tests.deploy.conftest import static_ff

    path = ir.save(static_ff(), tmp_path / "m.plx")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = CliRunner().invoke(app, ["simulate", str(path), "--steps", "100000000"])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert res.exit_code == 2 and "more than the limit" in res.output and grown_mib < 256
    res = CliRunner().invoke(app, ["simulate", str(path), "--steps", "2000", "--max-memory", "64K"])
    assert res.exit_code == 2 and "64 KiB" in res.output
    res = CliRunner().invoke(app, ["simulate", str(path), "--steps", "2000", "--max-memory", "64M"])
    assert res.exit_code == 0, res.output
