r"""NIR round trips with the peers' own code: snnTorch and Norse write and read the files, simulate
their nets, and plastix's spikes are compared with theirs (``plastix nir-peers``).

Every case builds a small net (``n_in`` 6, hidden 12, out 3), runs ``steps`` of Bernoulli(0.3)
input spikes through both simulators and compares the outputs with :func:`compare`:

* **import**: the peer builds the net, writes it with its own ``to_nir`` / ``export_to_nir`` and
  ``nir.write``, and simulates it; plastix imports the file (``import_nir_file``, dt inferred
  where the file determines it) and runs it on the torch backend;
* **export**: plastix builds the net (:class:`~plastix.ir.GraphBuilder`), writes it with
  ``write_nir`` and runs it; the peer loads the file (``import_from_nir`` / ``norse.torch.from_nir``)
  and simulates it.

plastix projections take one step (``docs/semantics.md``); the peers' feed-forward layers take
none and their recurrent connections one, so a net with ``k`` layers gives plastix's spikes ``k``
steps later: a verdict ``shifted by k`` means identical spikes after that shift. snnTorch and
Norse are dev dependencies, imported only inside the functions that use them. The table in
``docs/results.md`` is ``plastix nir-peers --steps 300``.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

N_IN, N_HID, N_OUT = 6, 12, 3
RATE = 0.3


@dataclass(frozen=True)
class PeerCase:
    """One row of the table: who writes, who reads, which net, and what the docs say to expect."""

    peer: str  # snntorch | norse
    direction: str  # import (peer -> NIR -> plastix) | export (plastix -> NIR -> peer)
    net: str
    expect: str  # shifted | differs | not loadable
    why: str
    command: str = ""  # the plastix command a user runs for this direction
    reset: str = "zero"
    peer_reads_file: bool = False  # import: the peer simulates the file (its from_nir), not its own net


@dataclass(frozen=True)
class PeerResult:
    case: PeerCase
    verdict: str  # "shifted by k" | "identical" | "differs from step s" | "not loadable: ..."
    steps: int
    spikes: int  # output spikes (plastix) over the run; -1 for a continuous (LI) output
    max_abs_diff: float = 0.0  # continuous outputs (LI v) after the shift
    notes: tuple[str, ...] = field(default_factory=tuple)


def compare(peer: np.ndarray, ours: np.ndarray, shift: int, *, atol: float = 0.0) -> tuple[str, float]:
    """Verdict of ``ours[t + shift] == peer[t]`` for every ``t`` (within ``atol`` for voltages)."""
    a, b = np.asarray(peer, dtype=np.float64), np.asarray(ours, dtype=np.float64)
    n = min(len(a), len(b) - shift)
    a, b = a[:n].reshape(n, -1), b[shift:shift + n].reshape(n, -1)
    diff = np.abs(a - b)
    bad = np.nonzero(diff.max(axis=1) > atol)[0]
    err = float(diff.max()) if diff.size else 0.0
    if bad.size == 0:
        return ("identical" if shift == 0 else f"shifted by {shift}"), err
    return f"differs from step {int(bad[0])}", err


def random_spikes(steps: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, N_IN)) < RATE).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# snnTorch


def _snntorch_net(net: str, reset: str, seed: int):
    import snntorch as snn
    import torch

    torch.manual_seed(seed)
    full = lambda n, v: torch.full((n,), float(v))  # noqa: E731 - per-neuron parameters (NIR types need shapes)
    kw = dict(init_hidden=True, reset_mechanism=reset)
    cuba = lambda n, **k: snn.Synaptic(alpha=full(n, 0.8), beta=full(n, 0.9), threshold=full(n, 1.0), **kw, **k)  # noqa: E731
    fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
    with torch.no_grad():
        fc1.weight.mul_(2.0)
        fc2.weight.mul_(2.0)
    if net == "ff_cuba_bias":
        layers = [fc1, cuba(N_HID), fc2, cuba(N_OUT, output=True)]
    elif net == "rec_cuba":
        rec = snn.RSynaptic(alpha=full(N_HID, 0.8), beta=full(N_HID, 0.9), threshold=full(N_HID, 1.0),
                            linear_features=N_HID, **kw)
        with torch.no_grad():
            rec.recurrent.weight.mul_(2.0)
        layers = [fc1, rec, fc2, cuba(N_OUT, output=True)]
    elif net == "lif":
        leaky = lambda n, **k: snn.Leaky(beta=full(n, 0.9), threshold=full(n, 1.0), **kw, **k)  # noqa: E731
        layers = [fc1, leaky(N_HID), fc2, leaky(N_OUT, output=True)]
    else:
        raise ValueError(f"unknown snnTorch net {net!r}")
    return torch.nn.Sequential(*layers)


def _run_torch_module(step: Callable, x: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for t in range(len(x)):
            o = step(torch.as_tensor(x[t])[None])
            o = o[0] if isinstance(o, tuple) else o
            out.append(o[0].detach().numpy().astype(np.float64))
    return np.array(out)


def write_snntorch_file(net: str, reset: str, seed: int, folder: Path) -> Path:
    """The NIR file snnTorch's ``export_to_nir`` writes for one of :func:`_snntorch_net`'s nets."""
    import nir
    from snntorch.export_nir import export_to_nir
    import torch

    path = folder / f"snntorch_{net}_{reset}.nir"
    nir.write(path, export_to_nir(_snntorch_net(net, reset, seed), torch.zeros(1, N_IN), ignore_dims=[0]))
    return path


def snntorch_import(case: PeerCase, steps: int, seed: int, folder: Path) -> PeerResult:
    """snnTorch writes and simulates; plastix imports and simulates."""
    reset = "zero" if case.reset == "snntorch-zero" else "subtract"
    path = write_snntorch_file(case.net, reset, seed, folder)
    x = random_spikes(steps, seed)
    peer = _run_torch_module(_snntorch_net(case.net, reset, seed), x)  # a fresh net: export ran a forward pass
    return _plastix_side(case, path, x, peer, reset=case.reset if case.reset != "subtract" else "zero")


def _plastix_side(case: PeerCase, path: Path, x: np.ndarray, peer: np.ndarray, *, reset: str,
                  dt: float | None = None, atol: float = 0.0) -> PeerResult:
    from plastix.ir.nir_interop import import_nir_file

    from .report import run_torch

    imp = import_nir_file(path, dt=dt, reset=reset)
    g = imp.graph
    ours = run_torch(g, {g.inputs[0]: x.astype(np.float64)})[0][g.outputs[-1]]
    verdict, err = compare(peer, ours, layers(g), atol=atol)
    return PeerResult(case, verdict, len(x), _count(g, ours), err, (f"dt = {imp.dt:g} s ({imp.dt_source})",) + imp.notes)


def _count(graph, out: np.ndarray) -> int:  # noqa: ANN001
    return int(out.sum()) if graph.population(graph.outputs[-1]).spiking else -1


def layers(graph) -> int:  # noqa: ANN001 - a plastix Graph
    """Projections on the shortest path from an input to the last output: the step shift."""
    depth = {n: 0 for n in graph.inputs}
    frontier = list(depth)
    while frontier:
        nxt = []
        for pr in graph.projections:
            if pr.pre in frontier and pr.post not in depth:
                depth[pr.post] = depth[pr.pre] + 1
                nxt.append(pr.post)
        frontier = nxt
    return depth[graph.outputs[-1]]


# ---------------------------------------------------------------------------------------------
# Norse


NORSE_DT = 1e-3  # Norse's default step


def _norse_net(net: str, seed: int):
    import norse.torch as norse
    import torch

    torch.manual_seed(seed)
    full = lambda n, v: torch.full((n,), float(v))  # noqa: E731
    fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
    with torch.no_grad():
        fc1.weight.mul_(10.0)
        fc2.weight.mul_(10.0)
    if net == "ff_cuba_bias":
        with torch.no_grad():  # NIR reads Norse's CUBA input with gain du = 0.2 (see the cases): drive it harder
            fc1.weight.mul_(5.0)
            fc2.weight.mul_(5.0)
        cuba = lambda n: norse.LIFCell(norse.LIFParameters(  # noqa: E731
            tau_syn_inv=full(n, 200.0), tau_mem_inv=full(n, 100.0), v_leak=full(n, 0.0), v_th=full(n, 1.0)))
        layers_ = [fc1, cuba(N_HID), fc2, cuba(N_OUT)]
    elif net in ("lif_li", "lif"):
        lif = lambda n: norse.LIFBoxCell(norse.LIFBoxParameters(  # noqa: E731
            tau_mem_inv=full(n, 100.0), v_leak=full(n, 0.0), v_th=full(n, 1.0)))
        last = norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=full(N_OUT, 50.0), v_leak=full(N_OUT, 0.0))) \
            if net == "lif_li" else lif(N_OUT)
        layers_ = [fc1, lif(N_HID), fc2, last]
    else:
        raise ValueError(f"unknown Norse net {net!r}")
    return norse.SequentialState(*layers_)


def _run_stateful(module, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 - (out, state) = module(x, state)
    import torch

    state, out = None, []
    with torch.no_grad():
        for t in range(len(x)):
            o, state = module(torch.as_tensor(x[t])[None], state)
            out.append(o[0].detach().numpy().astype(np.float64))
    return np.array(out)


def norse_import(case: PeerCase, steps: int, seed: int, folder: Path) -> PeerResult:
    """Norse writes and simulates its own net; plastix imports the file (dt: Norse 1.1 writes
    ``tau = dt / tau_inv``, so the file's step is ``NORSE_DT**2``) and simulates it."""
    import nir
    import norse.torch as norse
    import torch

    net = _norse_net(case.net, seed)
    path = folder / f"norse_{case.net}.nir"
    nir.write(path, norse.to_nir(net, torch.zeros(1, N_IN), dt=NORSE_DT))
    x = random_spikes(steps, seed)
    file_net = lambda: norse.from_nir(nir.read(path, type_check=False), dt=NORSE_DT ** 2)  # noqa: E731 (Norse writes (1, n) inputs)
    peer = _run_stateful(file_net() if case.peer_reads_file else net, x)
    li = case.net == "lif_li"
    return _plastix_side(case, path, x, peer, reset="zero", dt=NORSE_DT ** 2, atol=1e-5 if li else 0.0)


# ---------------------------------------------------------------------------------------------
# export: plastix -> NIR -> peer


def plastix_net(net: str, seed: int, dt: float = 1e-3):
    """The plastix side of an export case: input -> hidden (CUBA, or recurrent CUBA) -> out."""
    from plastix.ir import GraphBuilder

    b = GraphBuilder(dt=dt, seed=seed)
    x = b.input("x", N_IN)
    h = b.cuba_lif("h", N_HID, du=0.2, dv=0.1, vth=1.0)
    b.connect(x, h, scale=3.0)
    if net == "rec_cuba":
        b.connect(h, h, scale=1.0)
    out = b.li("y", N_OUT, du=0.2, dv=0.02) if net == "cuba_li" else b.cuba_lif("y", N_OUT, du=0.2, dv=0.1, vth=1.0)
    b.connect(h, out, scale=3.0)
    return b.build(outputs=[out])


def _load_peer(peer: str, path: Path, dt: float):
    import nir

    g = nir.read(path)
    if peer == "snntorch":
        from snntorch.import_nir import import_from_nir

        with contextlib.redirect_stdout(io.StringIO()):  # it prints progress to stdout
            return import_from_nir(g), False
    import norse.torch as norse

    return norse.from_nir(g, dt=dt), True


def export_case(case: PeerCase, steps: int, seed: int, folder: Path) -> PeerResult:
    """plastix writes (snnTorch: at its fixed dt 1e-4) and simulates; the peer loads and simulates."""
    from plastix.ir.nir_interop import write_nir

    from .report import run_torch

    g = plastix_net(case.net, seed)
    dt = 1e-4 if case.peer == "snntorch" else g.dt
    path = write_nir(g, folder / f"plastix_{case.net}_{case.peer}.nir", dt=dt)
    x = random_spikes(steps, seed)
    ours = run_torch(g, {"x": x.astype(np.float64)})[0]["y"]
    try:
        module, stateful = _load_peer(case.peer, path, dt)
        peer = _run_stateful(module, x) if stateful else _run_torch_module(module, x)
    except Exception as exc:  # the peer refuses the file: the documented "not loadable" rows
        return PeerResult(case, f"not loadable: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}",
                          steps, _count(g, ours))
    li = case.net == "cuba_li"
    verdict, err = compare(peer, ours, layers(g), atol=1e-5 if li else 0.0)
    return PeerResult(case, verdict, steps, _count(g, ours), err)


# ---------------------------------------------------------------------------------------------
# the table


CASES: tuple[PeerCase, ...] = (
    PeerCase("snntorch", "import", "ff_cuba_bias", "shifted", "reset_mechanism='zero' (reset one step late) = "
             "refractory 1; Affine biases via the bias neuron", "plastix import-nir F --reset snntorch-zero",
             reset="snntorch-zero"),
    PeerCase("snntorch", "import", "rec_cuba", "shifted", "RSynaptic: nested names flattened; recurrence takes one "
             "step in both", "plastix import-nir F --reset snntorch-zero", reset="snntorch-zero"),
    PeerCase("snntorch", "import", "lif", "shifted", "Leaky -> LIF", "plastix import-nir F --reset snntorch-zero",
             reset="snntorch-zero"),
    PeerCase("snntorch", "import", "ff_cuba_bias", "differs", "snnTorch's default reset subtracts the threshold one "
             "step late; plastix (NIR, Loihi) resets to 0: equal up to the first spike",
             "plastix import-nir F --reset zero", reset="subtract"),
    PeerCase("norse", "import", "lif_li", "shifted", "LIFBoxCell -> LIF, LIBoxCell -> LI (v within 1e-5); Norse 1.1 "
             "writes tau = dt / tau_inv: import at dt = 1e-6", "plastix import-nir F --dt 1e-6"),
    PeerCase("norse", "import", "ff_cuba_bias", "differs", "Norse's LIFCell adds input to the current as a jump "
             "(gain 1); its to_nir writes w_in = 1, which NIR integrates with gain dt/tau_syn",
             "plastix import-nir F --dt 1e-6"),
    PeerCase("norse", "import", "ff_cuba_bias", "shifted", "the same file simulated by Norse's own from_nir: plastix "
             "reads it as Norse does", "plastix import-nir F --dt 1e-6", peer_reads_file=True),
    PeerCase("snntorch", "export", "ff_cuba", "shifted", "written at dt = 1e-4 (import_from_nir's fixed step)",
             "plastix export M --to nir --dt 1e-4"),
    PeerCase("snntorch", "export", "rec_cuba", "differs", "snnTorch 1.0's import_from_nir wires the layer's input "
             "through the recurrent weights (its RNN subgraph has the edge input -> w_rec) and simulates a Synaptic, "
             "not an RSynaptic", "plastix export M --to nir --dt 1e-4"),
    PeerCase("snntorch", "export", "cuba_li", "not loadable", "import_from_nir maps no LI / CubaLI node",
             "plastix export M --to nir --dt 1e-4"),
    PeerCase("norse", "export", "ff_cuba", "shifted", "from_nir(dt=the file's dt)", "plastix export M --to nir"),
    PeerCase("norse", "export", "rec_cuba", "shifted", "nirtorch feeds the cycle back one step later",
             "plastix export M --to nir"),
    PeerCase("norse", "export", "cuba_li", "differs", "Norse 1.1's from_nir maps no CubaLI node and silently puts "
             "an identity in its place (the readout becomes its input)", "plastix export M --to nir"),
)


def run_case(case: PeerCase, steps: int = 300, seed: int = 0) -> PeerResult:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if case.direction == "export":
            return export_case(case, steps, seed, folder)
        return (snntorch_import if case.peer == "snntorch" else norse_import)(case, steps, seed, folder)


def table(results: list[PeerResult]) -> str:
    """The docs/results.md table."""
    rows = ["| peer | direction | net | command | spikes (plastix vs peer) | output spikes | why |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        c = r.case
        vs = f"{c.peer} from_nir of the file" if c.peer_reads_file else c.peer
        spikes = "LI (v)" if r.spikes < 0 else str(r.spikes)
        rows.append(f"| {vs} | {c.direction} | {c.net} | `{c.command}` | {r.verdict} | {spikes} | {c.why} |")
    return "\n".join(rows)


def check(steps: int = 300, seed: int = 0) -> tuple[list[PeerResult], list[PeerResult]]:
    """(all results, those whose verdict is not the documented one)."""
    results = [run_case(c, steps, seed) for c in CASES]
    prefix = {"shifted": "shifted", "differs": "differs", "not loadable": "not loadable"}
    return results, [r for r in results if not r.verdict.startswith(prefix[r.case.expect])]
