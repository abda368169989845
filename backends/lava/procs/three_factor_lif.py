"""ThreeFactorLIF: a LearningLIF whose models actually feed a three-factor LearningDense.

lava-nc 0.10.0's own ``LearningLIF`` models never read ``a_third_factor_in`` and never send
``s_out_bap`` / ``s_out_y1..y3``, so a ``LearningDense`` with a ``Loihi3FLearningRule`` deadlocks
waiting for them (lava-notes.md, Q4). These models, per time step, after the LIF dynamics:

* ``y1`` = post trace, computed exactly as a two-factor ``LearningDense`` computes its own ``y1``
  from ``s_in_bap`` at the end of a one-step epoch (``PyLearningConnection._compute_trace_histories``):
  floating point ``y1 <- exp(-1 / y1_tau) y1 + y1_impulse s``; fixed point
  ``y1 <- clip(sround(exp(-1 / y1_tau) y1) + [s] sround(y1_impulse), 0, 127)`` with the stochastic
  rounding of ``LearningConnectionModelBitApproximate._decay_trace`` / ``_add_impulse`` and the same
  random streams (``TraceRandom`` seeded ``rng_seed + 2`` / ``rng_seed + 3``, advanced twice per
  step, as the synapse's y generator). So a three-factor rule sees the same ``y1`` as the same rule
  in two-factor form (the synapse's 3F rule must leave the received traces undecayed: y taus inf);
* ``y2`` = the third factor read from ``a_third_factor_in`` and ``y3`` = a second one read from
  ``a_y3_in`` (the LTD channel of a two-channel modulator; 0 when unconnected), both graded
  ``Dense`` outputs (fixed point: clipped to the 8-bit range -128..127);
* sends ``s_out_bap`` (this step's spikes) and ``y1, y2, y3``.

``y1_impulse`` / ``y1_tau`` / ``rng_seed`` / ``y1_init`` are process parameters (Loihi3F rules leave
the y traces to the neuron). Lava matches models by exact Process type, so this subclass ships its
own models. No import-time side effects: Lava executes this file when it searches for ProcessModels.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.learning.random import TraceRandom
from lava.magma.core.model.py.connection import LearningConnectionModelBitApproximate as _BitApprox
from lava.magma.core.model.py.neuron import LearningNeuronModelFixed, LearningNeuronModelFloat
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat
from lava.proc.lif.process import LearningLIF


class ThreeFactorLIF(LearningLIF):
    """LearningLIF with working bAP / y1 / y2 / y3 outputs (see module docstring).

    Extra keyword parameters: ``y1_impulse`` (default 16), ``y1_tau`` (default 10), ``rng_seed``
    (default 0, the synapse rule's), ``y1_init`` (the post trace before the first step, default 0).
    """

    def __init__(self, *, y1_impulse: float = 16.0, y1_tau: float = 10.0, rng_seed: int = 0, y1_init=0.0,
                 **kwargs) -> None:
        super().__init__(y1_impulse=y1_impulse, y1_tau=y1_tau, rng_seed=rng_seed, **kwargs)
        self.a_y3_in = InPort(shape=(self.proc_params["shape"][0],))
        self.y1.init = np.broadcast_to(np.asarray(y1_init), self.proc_params["shape"]).copy()


class _ThreeFactorMixin:
    def _init_trace(self, shape) -> None:
        self.s_out_buff = np.zeros(shape, dtype=bool)
        self._y1_tau = float(self.proc_params.get("y1_tau", 10.0))
        self._y1_decay = float(np.exp(-1.0 / self._y1_tau))
        self._y1_impulse = float(self.proc_params.get("y1_impulse", 16.0))

    def run_spk(self) -> None:
        super().run_spk()  # LIF dynamics; sets s_out_buff and sends s_out
        self.y1 = self._post_trace(self.y1, self.s_out_buff.astype(bool))
        self.y2 = self._cast_third(self.a_third_factor_in.recv())
        self.y3 = self._cast_third(self.a_y3_in.recv())
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
    a_y3_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._init_trace(proc_params["shape"])

    def _post_trace(self, y, s):
        """``PyLearningConnection``'s float ``y1`` history step: ``exp(-1/tau) y`` (+ impulse at a spike)."""
        out = self._y1_decay * y
        out[s] += self._y1_impulse
        return out

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
    a_y3_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=7)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.effective_vth = 0
        self._init_trace(proc_params["shape"])
        seed = int(proc_params.get("rng_seed", 0))
        self._y_random = TraceRandom(seed_trace_decay=seed + 2, seed_impulse_addition=seed + 3)
        imp = np.array([self._y1_impulse])
        self._imp_int = np.floor(imp).astype(int)  # _decompose_impulses: integer part, fraction in 1/256
        self._imp_frac = np.round((imp - np.floor(imp)) * 2 ** 8).astype(int)

    def _post_trace(self, y, s):
        """``LearningConnectionModelBitApproximate``'s ``y1`` history step for a one-step epoch:
        stochastic decay, then the stochastically rounded impulse where the neuron spiked."""
        self._y_random.advance()  # recv_traces advances the trace generators twice per time step
        self._y_random.advance()
        out = _BitApprox._decay_trace(np.asarray(y).astype(int), 1, self._y1_tau,
                                      self._y_random.random_trace_decay)
        out[s] = _BitApprox._add_impulse(out[s], self._y_random.random_impulse_addition, self._imp_int,
                                         self._imp_frac)
        return out.astype(np.int32)

    @staticmethod
    def _cast_third(y):
        return np.clip(y, -128, 127).astype(np.int32)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth
