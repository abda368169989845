"""NIR with the peers' own code (issue 17): snnTorch and Norse write the files, read plastix's, and
simulate; spikes must match plastix's exactly after the documented shift, or differ where the docs
say they differ. Also: the import errors a user meets, and the imported nets on Lava."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
from typer.testing import CliRunner

from plastix.cli import app
from plastix.deploy import peers
from plastix.deploy.report import run_torch
from plastix.deploy.targets import simulate
from plastix.ir.nir_import import NIRImportError, import_nir
from plastix.ir.nir_interop import import_nir_file, read_nir, write_nir

runner = CliRunner()


@pytest.mark.parametrize("case", peers.CASES, ids=lambda c: f"{c.peer}-{c.direction}-{c.net}-{c.reset}"
                         + ("-file" if c.peer_reads_file else ""))
def test_peer_case_has_its_documented_verdict(case):
    r = peers.run_case(case, steps=200, seed=1)
    assert r.verdict.startswith(case.expect), (r.verdict, r.notes)
    if case.expect == "shifted":
        assert r.verdict == f"shifted by {2}"
        assert r.spikes == -1 or r.spikes >= 5, "the net must spike for the comparison to mean something"


def test_compare_finds_the_first_difference():
    a = np.zeros((10, 2))
    b = np.zeros((10, 2))
    b[5, 1] = 1
    assert peers.compare(a, b, 0)[0] == "differs from step 5"
    assert peers.compare(a, b, 2)[0] == "differs from step 3"
    assert peers.compare(b[2:], b, 2)[0] == "shifted by 2"


def test_cli_imports_snntorch_file_without_dt(tmp_path):
    path = peers.write_snntorch_file("rec_cuba", "zero", 0, tmp_path)
    res = runner.invoke(app, ["import-nir", str(path), "--reset", "snntorch-zero", "--out", str(tmp_path / "m.plx")])
    assert res.exit_code == 0, res.output
    assert "dt = 0.0001 s: inferred from r = tau_mem / dt" in res.output
    assert "'1.lif' -> 'n1_lif'" in res.output and "nir_bias" in res.output
    g = read_nir(path, reset="snntorch-zero")
    assert g.population("n1_lif").refractory == 1 and g.population("nir_bias").refractory == 0
    assert '"n1_lif": "1.lif"' in g.metadata["nir.names"]
    assert {p.name for p in g.projections} >= {"n1_w_rec", "n1_lif_bias", "n3_bias"}


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def test_partial_file_from_a_failed_norse_export_says_incomplete(tmp_path):
    import norse.torch as norse
    import torch

    path = tmp_path / "partial.nir"
    net = norse.SequentialState(torch.nn.Linear(3, 2), norse.LIFBoxCell())  # scalar parameters: nir.write fails
    with pytest.raises(TypeError):
        nir.write(path, norse.to_nir(net, torch.zeros(1, 3)))
    line = _one_error_line(runner.invoke(app, ["import-nir", str(path), "--dt", "1e-3"]))
    assert str(path) in line and "file is incomplete" in line and "export the model again" in line


def test_norse_file_without_dt_suggests_the_likely_value(tmp_path):
    import norse.torch as norse
    import torch

    net = peers._norse_net("lif_li", 0)
    path = tmp_path / "norse.nir"
    nir.write(path, norse.to_nir(net, torch.zeros(1, peers.N_IN)))
    line = _one_error_line(runner.invoke(app, ["import-nir", str(path)]))
    assert "does not determine the time step" in line and "likely value is 1e-06 s" in line


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("kind", ["Conv2d", "Flatten", "SumPool2d"])
def test_unsupported_node_is_named(kind):
    bad = {"Conv2d": lambda: nir.Conv2d(None, np.ones((1, 1, 2, 2)), 1, 0, 1, 1, np.zeros(1)),
           "Flatten": lambda: nir.Flatten({"input": np.array([2, 2])}),
           "SumPool2d": lambda: nir.SumPool2d(np.array([2, 2]), np.array([1, 1]), np.array([0, 0]))}[kind]()
    g = _graph({"input": nir.Input({"input": np.array([4])}), "feat.x": bad,
                "lif": nir.LIF(tau=np.ones(4) * 1e-2, r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4)),
                "output": nir.Output({"output": np.array([4])})},
               [("input", "feat.x"), ("feat.x", "lif"), ("lif", "output")])
    with pytest.raises(NIRImportError) as err:
        import_nir(g, dt=1e-3, file="bad.nir")
    line = str(err.value)
    assert line.startswith(f"bad.nir: node 'feat.x': ({kind})") and "not supported" in line and "\n" not in line


def test_nested_subgraph_is_flattened_with_valid_names_and_scale_threshold_delay_map(tmp_path):
    n = 3
    inner = _graph({"in": nir.Input({"input": np.array([n])}), "w": nir.Linear(np.eye(n) * 2.0),
                    "thr": nir.Threshold(np.full(n, 0.5)), "out": nir.Output({"output": np.array([n])})},
                   [("in", "w"), ("w", "thr"), ("thr", "out")])
    g = _graph({"input": nir.Input({"input": np.array([n])}), "sub": inner, "scale": nir.Scale(np.full(n, 3.0)),
                "delay": nir.Delay(np.full(n, 2e-3)), "lin": nir.Linear(np.ones((1, n))),
                "integ": nir.I(np.full(1, 100.0)), "output": nir.Output({"output": np.array([1])})},
               [("input", "sub"), ("sub", "scale"), ("scale", "delay"), ("delay", "lin"), ("lin", "integ"),
                ("integ", "output")])
    imp = import_nir_file(write_nir_raw(g, tmp_path / "nested.nir"), dt=1e-3)
    graph = imp.graph
    assert {p.name for p in graph.populations} == {"input", "sub_thr", "integ"}
    assert json.loads(graph.metadata["nir.names"]) == {"sub_w": "sub.w", "sub_thr": "sub.thr"}
    into_thr = [p for p in graph.projections if p.post == "sub_thr"][0]
    assert into_thr.name == "sub_w" and np.allclose(into_thr.weight, np.eye(n) * 2.0)
    out = [p for p in graph.projections if p.post == "integ"][0]
    assert out.delay == 2 and np.allclose(out.weight, 3.0 * 1e-3 * 100.0)  # Scale folded, gain dt * r
    x = np.zeros((8, n))
    x[0] = [1, 0, 1]
    y = run_torch(graph, {"input": x})[0]["integ"][:, 0]
    # the threshold spikes at step 1 (2 > 0.5); latency 1 + delay 2: the integrator gains 2 * 0.3 at step 4
    np.testing.assert_allclose(y, [0, 0, 0, 0, 0.6, 0.6, 0.6, 0.6])


def write_nir_raw(g, path):
    nir.write(path, g)
    return path


def test_plastix_files_keep_the_plasticity_extension_and_export_dt(tmp_path):
    from plastix.ir.examples import cue_association_net

    g = cue_association_net()
    assert read_nir(write_nir(g, tmp_path / "a.nir")) == g
    g2 = read_nir(write_nir(g, tmp_path / "b.nir", dt=1e-4))
    assert g2.dt == 1e-4 and g2.replace(dt=g.dt) == g


@pytest.mark.parametrize("net,reset", [("ff_cuba_bias", "zero"), ("rec_cuba", "zero"), ("lif", "zero"),
                                       ("rec_cuba", "snntorch-zero")])
def test_imported_snntorch_nets_run_on_lava_like_torch(net, reset, tmp_path):
    """Lava float and Loihi fixed point give torch's spikes (refractory periods: float only on Lava)."""
    g = import_nir_file(peers.write_snntorch_file(net, "zero", 0, tmp_path), reset=reset).graph
    xs = {"input": peers.random_spikes(60, 2).astype(np.float64)}
    for precision in ("float", "fixed") if reset == "zero" else ("float",):
        ref = simulate(g, xs, backend="torch", precision=precision)
        got = simulate(g, xs, backend="lava", precision=precision, timeout=120)
        out = g.outputs[-1]
        assert ref[out].sum() > 0
        np.testing.assert_array_equal(got[out], ref[out], err_msg=precision)


def test_imported_norse_net_with_li_readout_runs_on_lava_like_torch(tmp_path):
    import norse.torch as norse
    import torch

    path = tmp_path / "norse.nir"
    nir.write(path, norse.to_nir(peers._norse_net("lif_li", 0), torch.zeros(1, peers.N_IN)))
    g = import_nir_file(path, dt=1e-6).graph
    xs = {"input": peers.random_spikes(60, 3).astype(np.float64)}
    for precision in ("float", "fixed"):
        ref = simulate(g, xs, backend="torch", precision=precision)
        got = simulate(g, xs, backend="lava", precision=precision, timeout=120)
        assert np.abs(ref[g.outputs[-1]]).max() > 0
        tol = 1e-6 if precision == "float" else 0.0  # deploy.targets.FLOAT_TOL; fixed point is bit-exact
        np.testing.assert_allclose(got[g.outputs[-1]], ref[g.outputs[-1]], rtol=0, atol=tol, err_msg=precision)
