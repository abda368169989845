"""The Python 3.11 import shim: lava imports through plastix, site-packages stays untouched."""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


def _var_model_file() -> Path:
    spec = importlib.util.find_spec("lava")  # a namespace package: no origin, only search locations
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "magma" / "compiler" / "var_model.py"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_works_via_the_shim_and_site_packages_is_untouched():
    path = _var_model_file()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    code = ("import sys, multiprocessing as mp\n"
            "import plastix.backends.lava as L\n"
            "from plastix.backends.lava.compat import LavaCompatFinder\n"
            "assert isinstance(sys.meta_path[0], LavaCompatFinder)\n"
            "import lava.proc.lif.process, lava.proc.dense.process\n"
            "from lava.magma.compiler.var_model import CoreEncoder\n"
            "a, b = CoreEncoder(), CoreEncoder()\n"
            "assert a.x is not b.x\n"
            "print(mp.get_start_method())\n")
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "fork"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    if sys.version_info >= (3, 11):
        assert "ByteEncoder = ByteEncoder()" in path.read_text(), "site-packages must keep the original source"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="lava imports unpatched before 3.11")
def test_plain_lava_import_still_fails_without_the_shim():
    res = _run("import lava.proc.lif.process")
    assert res.returncode != 0 and "mutable default" in res.stderr


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the shim is a no-op before 3.11")
def test_lava_imported_before_the_shim_gives_a_clear_error():
    res = _run("import lava.magma.compiler.var_model\n")
    assert res.returncode != 0  # cannot even import it unpatched; simulate with a stub module instead
    res = _run("import sys, types\n"
               "sys.modules['lava.magma.compiler.var_model'] = types.ModuleType('x')\n"
               "import plastix.backends.lava\n")
    assert res.returncode != 0
    assert "imported before the plastix Lava shim" in res.stderr


def test_other_start_method_gives_a_clear_error():
    res = _run("import multiprocessing as mp\nmp.set_start_method('spawn')\nimport plastix.backends.lava\n")
    assert res.returncode != 0
    assert "LavaImportError" in res.stderr and "'spawn'" in res.stderr and "fork" in res.stderr


def test_fork_already_chosen_is_fine():
    res = _run("import multiprocessing as mp\nmp.set_start_method('fork')\nimport plastix.backends.lava\nprint('ok')\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
