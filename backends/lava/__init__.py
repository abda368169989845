"""plastix.backends.lava — lowering of the IR to Lava processes (Loihi emulation, lava-nc 0.10.0).

Importing this package first installs the Python 3.11 import shim (:mod:`.compat`), then imports
Lava. Lava sets the program's multiprocessing start method to ``fork`` when imported (it needs it);
if a different start method was already chosen, the import fails with a clear
:class:`~plastix.backends.lava.compat.LavaImportError`. Nothing outside this package imports lava.

Public API::

    net = compile(graph, precision="fixed" | "float", timeout=120.0)
    with net:
        out = net.run({"x": spikes_T_by_n}, steps)   # {output: (steps, size)}
        w, s = net.weights(), net.state()
    support(graph) -> {"populations": ..., "projections": ..., "rules": ..., "modulators": ...}
"""
from . import compat as _compat

_compat.install()

from . import lowering as _lowering  # noqa: E402  (imports lava, after the shim)
from .compat import LavaImportError as LavaImportError  # noqa: E402
from .network import FaultSpec as FaultSpec  # noqa: E402
from .network import LavaNetwork as LavaNetwork  # noqa: E402
from .network import compile as compile  # noqa: E402
from .plan import ENGINE as ENGINE  # noqa: E402
from .plan import HOST as HOST  # noqa: E402
from .plan import NATIVE as NATIVE  # noqa: E402
from .plan import support as support  # noqa: E402
from .runner import LavaRunError as LavaRunError  # noqa: E402
from .runner import LavaTimeoutError as LavaTimeoutError  # noqa: E402

PROCESS_TABLE = _lowering.PROCESS_TABLE
