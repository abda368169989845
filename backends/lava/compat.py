"""Make lava-nc 0.10.0 importable on Python 3.11 without touching site-packages.

lava-nc 0.10.0 (archived) declares Python < 3.11. The only import-time break on 3.11 is in
``lava/magma/compiler/var_model.py``: a dataclass field ``x: ByteEncoder = ByteEncoder()`` whose
default is an instance of a mutable (unhashable) dataclass, which 3.11's ``dataclasses`` rejects.
:func:`install` puts a :class:`sys.meta_path` finder in front of the normal ones that intercepts that
single module, rewrites the default to ``field(default_factory=ByteEncoder)`` in its source text,
compiles and executes it. Nothing on disk changes; Lava's forked worker processes inherit the
patched module. On Python < 3.11 that rewrite is skipped (Lava imports as is).

Lava also calls ``multiprocessing.set_start_method('fork')`` when
``lava.magma.runtime.message_infrastructure.multiprocessing`` is imported (it is pulled in by any
Process import), i.e. it changes the start method of the *whole program* to ``fork``, and raises
``RuntimeError: context has already been set`` if anything chose a start method before. The finder
also rewrites that call to ``set_start_method('fork')`` only when no method is set yet, and
:func:`check_start_method` raises a clear error before Lava is imported if a different start method
was already chosen (Lava's workers need ``fork``: models and callables are inherited, not pickled).

Only this package imports lava (see ``tests/test_layering.py``).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import re
import sys

from plastix.ir.errors import BackendUnavailableError

__all__ = ["LavaImportError", "install", "installed", "check_start_method", "PATCHED_MODULES"]

_VAR_MODEL = "lava.magma.compiler.var_model"
_MP_INFRA = "lava.magma.runtime.message_infrastructure.multiprocessing"
PATCHED_MODULES = (_VAR_MODEL, _MP_INFRA)

_BYTE_ENCODER_DEFAULT = re.compile(r"(:\s*ByteEncoder\s*=\s*)ByteEncoder\(\)")
_SET_FORK = re.compile(r"^(\s*)mp\.set_start_method\('fork'\)\s*$", re.MULTILINE)


class LavaImportError(BackendUnavailableError):
    """Lava cannot be imported the way plastix needs it (shim missing, wrong start method, ...)."""


def _patch_var_model(src: str) -> str:
    new, n = _BYTE_ENCODER_DEFAULT.subn(r"\1field(default_factory=ByteEncoder)", src)
    if n == 0:  # already compatible (e.g. a fixed Lava release)
        return src
    if "from dataclasses import dataclass, InitVar\n" in new:
        return new.replace("from dataclasses import dataclass, InitVar\n",
                           "from dataclasses import dataclass, InitVar, field\n", 1)
    return "from dataclasses import field\n" + new


def _patch_mp_infra(src: str) -> str:
    return _SET_FORK.sub(r"\1if mp.get_start_method(allow_none=True) is None:\n\1    mp.set_start_method('fork')",
                         src)


# the var_model rewrite is the 3.11 shim (a no-op before 3.11); the start-method guard applies always
_PATCHES = {_MP_INFRA: _patch_mp_infra}
if sys.version_info >= (3, 11):
    _PATCHES[_VAR_MODEL] = _patch_var_model


class _PatchedSourceLoader(importlib.abc.Loader):
    """Executes a module from its (patched) source text instead of its cached bytecode."""

    def __init__(self, orig_loader, origin: str, patch) -> None:
        self._orig = orig_loader
        self._origin = origin
        self._patch = patch

    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module) -> None:
        src = self._orig.get_source(module.__name__)
        code = compile(self._patch(src), self._origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Intercepts only the modules in :data:`PATCHED_MODULES`; everything else falls through."""

    def find_spec(self, fullname, path, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or spec.loader is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.loader, spec.origin, patch))


def installed() -> bool:
    return any(isinstance(f, LavaCompatFinder) for f in sys.meta_path)


def check_start_method() -> None:
    """Raise :class:`LavaImportError` if the program already chose a start method other than fork."""
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork"):
        raise LavaImportError(
            f"multiprocessing start method is already {method!r}, but Lava (lava-nc 0.10.0) needs 'fork' "
            "and sets it globally when imported. Import plastix.backends.lava before anything calls "
            "multiprocessing.set_start_method(), or do not set a different method in this program.")


def install() -> None:
    """Install the import hook (idempotent). Must run before any ``lava`` module is imported."""
    check_start_method()
    if installed():
        return
    # an already imported Lava is only a problem where it needed the rewrite (3.11+); it then set the
    # start method itself, which check_start_method() accepted
    early = [m for m in (_VAR_MODEL,) if m in _PATCHES and m in sys.modules]
    if early:
        raise LavaImportError(
            f"{', '.join(early)} was imported before the plastix Lava shim was installed; "
            "import plastix.backends.lava before importing anything from lava")
    sys.meta_path.insert(0, LavaCompatFinder())
