"""The tree is the architecture: dependency directions of DESIGN.md, checked on the source."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)
PKG_OF_DIR = {"ir": "plastix.ir", "backends": "plastix.backends", "trainer": "plastix.trainer",
              "tasks": "plastix.tasks", "deploy": "plastix.deploy", "plastix": "plastix"}


def _imports(path: Path):
    """(module, top_level: bool) for every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(ROOT)
    pkg_parts = PKG_OF_DIR[rel.parts[0]].split(".") + list(rel.parts[1:-1])
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, id(node) in top_level


def _files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def _top(mod: str) -> str:
    return mod.split(".")[0]


@pytest.mark.parametrize("path", _files("ir"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ir_imports_only_stdlib_numpy_networkx(path):
    for mod, top in _imports(path):
        allowed = _top(mod) in STDLIB | {"numpy", "networkx"} or mod.startswith("plastix.ir")
        lazy_nir = (not top) and _top(mod) in ("nir", "h5py") and path.name in ("nir_interop.py", "nir_import.py")
        assert allowed or lazy_nir, f"{path.name} imports {mod}"


@pytest.mark.parametrize("folder", ["ir", "backends", "tasks"])
def test_lower_layers_never_import_higher_ones(folder):
    forbidden = {"ir": ("plastix.backends", "plastix.trainer", "plastix.tasks", "plastix.deploy", "plastix.cli"),
                 "backends": ("plastix.trainer", "plastix.tasks", "plastix.deploy", "plastix.cli"),
                 "tasks": ("plastix.backends", "plastix.trainer", "plastix.deploy", "plastix.cli")}[folder]
    for path in _files(folder):
        for mod, _ in _imports(path):
            assert not mod.startswith(forbidden), f"{path.relative_to(ROOT)} imports {mod}"


def test_trainer_algorithms_never_import_experiments():
    """The algorithms (ES, gradient meta-training, synaptic Q) know no paper's wiring; the experiments
    and the registry build on them, never the reverse."""
    for path in _files("trainer/algorithms"):
        for mod, _ in _imports(path):
            assert not mod.startswith("plastix.trainer.experiments"), f"{path.relative_to(ROOT)} imports {mod}"


def test_tasks_import_only_ir_and_torch_at_module_level():
    for path in _files("tasks"):
        for mod, top in _imports(path):
            if top:
                ok = _top(mod) in STDLIB | {"numpy", "torch"} or mod.startswith(("plastix.ir", "plastix.tasks"))
                assert ok, f"{path.relative_to(ROOT)} imports {mod} at module level"


def test_only_backends_lava_imports_lava():
    for folder in ("ir", "backends", "trainer", "tasks", "deploy", "plastix", "benchmarks"):
        for path in _files(folder) if (ROOT / folder).exists() else []:
            if (ROOT / "backends" / "lava") in path.parents:
                continue
            for mod, _ in (_imports(path) if folder in PKG_OF_DIR else _bench_imports(path)):
                assert _top(mod) != "lava", f"{path.relative_to(ROOT)} imports lava; only backends/lava may"


def _bench_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, True) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, True


def test_importing_the_ir_loads_neither_torch_nor_lava():
    code = ("import sys, plastix.ir, plastix.ir.nir_interop; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'lava', 'nir', 'h5py'}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"plastix.ir pulled in: {out.stdout}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = PKG_OF_DIR[rel.parts[0]].split(".") + list(rel.parts[1:])
    parts[-1] = parts[-1][:-3]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_between_modules():
    """No module reaches itself through imports, lazy (function-local) ones included: two modules that
    need each other are one module, or share a third."""
    import networkx as nx

    mods = {}
    for folder in PKG_OF_DIR:
        for path in _files(folder):
            if folder != "plastix" or len(path.relative_to(ROOT / "plastix").parts) == 1:
                mods[_module_name(path)] = path
    graph = nx.DiGraph()
    for name, path in mods.items():
        for mod, _ in _imports(path):
            target = mod
            while target and target not in mods:  # "plastix.ir.rules.X" -> the module plastix.ir.rules
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own __init__
                graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import circles: {cycles[:5]}"


_PUBLIC_UNDERSCORE = {"_replace", "_fields", "_asdict", "_make", "_exit"}  # NamedTuple API, os._exit


@pytest.mark.parametrize("folder", ["ir", "trainer", "tasks", "deploy", "plastix"])
def test_no_private_access_outside_the_backends(folder):
    """Only a backend touches its own (and its simulator's) private state: code above the backends
    reaches them through their public interface (``bind``/``pure_step``/``input_shape``, ...), and
    no module imports another package's ``_private`` names."""
    own = PKG_OF_DIR[folder]
    for path in _files(folder):
        if folder == "plastix" and len(path.relative_to(ROOT / "plastix").parts) > 1:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in _PUBLIC_UNDERSCORE
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                mod = _imports_of_name(tree, node.value)
                if mod is None or not (mod == "<relative>" or mod.startswith(own)):
                    pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno}: private access .{node.attr}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("plastix") \
                    and not node.module.startswith(own):
                bad = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{bad[0]}"


def _imports_of_name(tree: ast.AST, value: ast.AST):
    """The module a bare name was imported from in ``tree`` ("<relative>" for a relative import, which
    stays inside the package), else None."""
    if not isinstance(value, ast.Name):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if (a.asname or a.name) == value.id:
                    return f"{node.module or ''}.{a.name}" if node.level == 0 else "<relative>"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if (a.asname or a.name) == value.id:
                    return a.name
    return None
