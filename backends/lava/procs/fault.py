"""FaultInjector: a one-neuron process that raises (or hangs) at a chosen time step.

Used to test the backend's error and timeout paths with a real failing Lava ProcessModel
(``compile(..., debug_fault=FaultSpec(...))``). Outputs nothing; reads nothing.
No import-time side effects: Lava executes this file when it searches for ProcessModels.
"""
import time

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class FaultInjector(AbstractProcess):
    """Raises ``RuntimeError(message)`` (``mode="raise"``) or sleeps forever (``mode="hang"``) in
    time step ``at`` (Lava time steps start at 1)."""

    def __init__(self, *, shape: tuple = (1,), at: int, message: str = "injected fault", mode: str = "raise",
                 **kwargs) -> None:
        super().__init__(shape=shape, at=at, message=message, mode=mode, **kwargs)
        self.s_in = InPort(shape=shape)
        self.count = Var(shape=(1,), init=0)


class _FaultModel(PyLoihiProcessModel):
    count: np.ndarray = LavaPyType(np.ndarray, int)

    def run_spk(self) -> None:
        self.s_in.recv()
        self.count[0] = self.time_step
        if self.time_step == int(self.proc_params["at"]):
            if self.proc_params["mode"] == "hang":
                while True:
                    time.sleep(1.0)
            raise RuntimeError(self.proc_params["message"])


@implements(proc=FaultInjector, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFaultInjectorFloat(_FaultModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=FaultInjector, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFaultInjectorFixed(_FaultModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
