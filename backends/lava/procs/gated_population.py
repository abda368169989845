"""HostGatedPopulation: ``size`` gated units (ENU / GRU / LSTM neurons) computed with numpy on the host.

Multi-channel data layout on Lava ports: flat vectors of shape ``(size * channels,)``, unit-major
(element ``i * channels + c`` is channel ``c`` of unit ``i``; i.e. ``x.reshape(size, channels)``).
Per time step, in the LIF order (so timing equals a Lava ``LIF`` and the IR): receive the summed
synaptic input ``a_in`` ``(size * in_channels,)``, advance every unit's cell with
:func:`plastix.backends.lava.hostmath.cell_step` (float64), send the outputs
``(size * out_channels,)`` on ``s_out``. Float precision only (``floating_pt``); CPU simulation,
nothing maps to Loihi hardware. No import-time side effects: Lava executes this file when it
searches for ProcessModels.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from plastix.backends.lava import hostmath


class HostGatedPopulation(AbstractProcess):
    """``size`` units sharing the IR ``cell`` (ENUCell / GRUCell / LSTMCell); ports are flat
    ``(size * channels,)`` vectors, unit-major. ``h`` holds the final hidden/memory state ``(size, n)``."""

    def __init__(self, *, size: int, cell, **kwargs) -> None:
        super().__init__(size=size, cell=cell, **kwargs)
        self.a_in = InPort(shape=(size * cell.in_channels,))
        self.s_out = OutPort(shape=(size * cell.out_channels,))
        n = cell.memory if cell.kind == "enu_cell" else cell.hidden
        self.h = Var(shape=(size, n), init=np.zeros((size, n)))


@implements(proc=HostGatedPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyHostGatedPopulationModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._cell = proc_params["cell"]
        self._size = int(proc_params["size"])
        self._state = hostmath.cell_init(self._cell, (self._size,))

    def run_spk(self) -> None:
        a = np.asarray(self.a_in.recv(), dtype=np.float64).reshape(self._size, self._cell.in_channels)
        y, self._state = hostmath.cell_step(self._cell, a, self._state)
        self.h[:] = self._state["h"]
        self.s_out.send(np.asarray(y, dtype=np.float64).reshape(-1))
