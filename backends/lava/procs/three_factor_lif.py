"""ThreeFactorLIF: a LearningLIF whose models actually feed a three-factor LearningDense.

lava-nc 0.10.0's own ``LearningLIF`` models never read ``a_third_factor_in`` and never send
``s_out_bap`` / ``s_out_y1..y3``, so a ``LearningDense`` with a ``Loihi3FLearningRule`` deadlocks
waiting for them (lava-notes.md, Q4). These models, per time step, after the LIF dynamics:

* ``y1`` = post trace: ``y1 <- y1 * exp(-1 / y1_tau) + y1_impulse * s`` including this step's
  spikes, as the learning engine's own y1 of a two-factor rule (fixed point: floor, clipped to the
  7-bit range 0..127);
* ``y2`` = the third factor read from ``a_third_factor_in`` (the modulator, delivered through a
  graded ``Dense``); ``y3`` stays 0;
* sends ``s_out_bap`` (this step's spikes) and ``y1, y2, y3``.

``y1_impulse`` / ``y1_tau`` are process parameters (Loihi3F rules leave the y traces to the
neuron). Lava matches models by exact Process type, so this subclass ships its own models.
No import-time side effects: Lava executes this file when it searches for ProcessModels.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.neuron import LearningNeuronModelFixed, LearningNeuronModelFloat
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat
from lava.proc.lif.process import LearningLIF


class ThreeFactorLIF(LearningLIF):
    """LearningLIF with working bAP / y1 / y2 / y3 outputs (see module docstring).

    Extra keyword parameters: ``y1_impulse`` (default 16), ``y1_tau`` (default 10).
    """

    def __init__(self, *, y1_impulse: float = 16.0, y1_tau: float = 10.0, **kwargs) -> None:
        super().__init__(y1_impulse=y1_impulse, y1_tau=y1_tau, **kwargs)


class _ThreeFactorMixin:
    def _init_trace(self, shape) -> None:
        self.s_out_buff = np.zeros(shape, dtype=bool)
        self._y1_decay = float(np.exp(-1.0 / float(self.proc_params.get("y1_tau", 10.0))))
        self._y1_impulse = float(self.proc_params.get("y1_impulse", 16.0))

    def run_spk(self) -> None:
        super().run_spk()  # LIF dynamics; sets s_out_buff and sends s_out
        self.y1 = self._cast_trace(self.y1 * self._y1_decay + self._y1_impulse * self.s_out_buff)
        self.y2 = self._cast_third(self.a_third_factor_in.recv())
        self.s_out_bap.send(self.s_out_buff)
        self.s_out_y1.send(self.y1)
        self.s_out_y2.send(self.y2)
        self.s_out_y3.send(self.y3)


@implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyThreeFactorLIFFloat(_ThreeFactorMixin, LearningNeuronModelFloat, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: float = LavaPyType(float, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._init_trace(proc_params["shape"])

    @staticmethod
    def _cast_trace(y):
        return y

    @staticmethod
    def _cast_third(y):
        return y

    def spiking_activation(self):
        return self.v > self.vth


@implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyThreeFactorLIFFixed(_ThreeFactorMixin, LearningNeuronModelFixed, AbstractPyLifModelFixed):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.effective_vth = 0
        self._init_trace(proc_params["shape"])

    @staticmethod
    def _cast_trace(y):
        return np.clip(np.floor(y), 0, 127).astype(np.int32)

    @staticmethod
    def _cast_third(y):
        return np.clip(y, -128, 127).astype(np.int32)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth
