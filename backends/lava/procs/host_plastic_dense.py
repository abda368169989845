"""HostPlasticDense: a dense synapse whose plasticity rule runs as numpy code on the host.

For IR rules Loihi's learning engine cannot express (SpikePropamine Hebbian/Oja/BCM, per-pre /
per-post / per-synapse modulated STDP, triplet STDP, gated (ENU) synapses, synaptic Q-learning). Per time step, in this order (the
``Dense`` order, so timing equals a Lava ``Dense`` and the IR): send the activation computed in the
previous step; receive the pre spikes ``x[t]``, the post spikes ``y[t]`` and the modulator source's
output; project ``a = W_eff[t] x[t]`` (gated synapses: the cells' outputs); update the weights and traces with
:func:`plastix.backends.lava.hostmath.rule_step` (``M[t]`` from the source's previous output).

Fixed precision: weights and rule math stay float64; the activation sent to the fixed-point LIF is
truncated to integers (floor). CPU simulation only; nothing here maps to Loihi hardware.
No import-time side effects: Lava executes this file when it searches for ProcessModels.
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


class HostPlasticDense(AbstractProcess):
    """Dense synapse with an IR plasticity ``rule`` computed on the host.

    ``weights`` ``(n_post, n_pre)`` the initial plastic weight W (the IR's ``weight``); ``mask`` and
    ``sign`` (or None) are applied on top when projecting; ``rule`` the IR rule object;
    ``mod_weight`` the modulator readout (dict with weight, bias, channels, size, activation) or
    None; ``mod_src_size`` the width of the modulator's source population.
    """

    def __init__(self, *, weights, rule, mod_weight=None, fixed: bool = False, seed: int = 0, mask=None, sign=None,
                 **kwargs) -> None:
        super().__init__(weights=weights, rule=rule, mod_weight=mod_weight, fixed=fixed, seed=seed, mask=mask,
                         sign=sign, **kwargs)
        n_post, n_pre = weights.shape
        self.s_in = InPort(shape=(n_pre,))
        self.s_post = InPort(shape=(n_post,))
        self.has_mod = mod_weight is not None
        # always present (a model cannot type a port its process lacks); unconnected without a modulator
        self.s_mod = InPort(shape=(mod_weight["weight"].shape[1] if self.has_mod else 1,))
        self.a_out = OutPort(shape=(n_post,))
        self.weights = Var(shape=weights.shape, init=np.asarray(weights, dtype=np.float64))
        # SpikePropamine rules: the plastic part E of W_eff = W + alpha E (zeros for other rules)
        self.e = Var(shape=weights.shape, init=np.zeros(weights.shape))


class _HostPlasticModel(PyLoihiProcessModel):
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    e: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._rule = proc_params["rule"]
        self._mod = proc_params["mod_weight"]
        self._fixed = bool(proc_params["fixed"])
        self._mask = None if proc_params.get("mask") is None else np.asarray(proc_params["mask"], dtype=np.float64)
        self._sign = None if proc_params.get("sign") is None else np.asarray(proc_params["sign"], dtype=np.float64)
        n_post, n_pre = proc_params["weights"].shape
        self._state = hostmath.init_state(self._rule, n_post, n_pre, seed=int(proc_params.get("seed", 0)))
        self._a = np.zeros(n_post)
        self._src_prev = None if self._mod is None else np.zeros(self._mod["weight"].shape[1])

    def run_spk(self) -> None:
        self.a_out.send(self._out(self._a))
        x = np.asarray(self.s_in.recv(), dtype=np.float64)
        y = np.asarray(self.s_post.recv(), dtype=np.float64)
        m = None
        if self._mod is not None:
            src = np.asarray(self.s_mod.recv(), dtype=np.float64)
            m = hostmath.modulator_value(self._mod, self._src_prev)
            self._src_prev = src
        w = np.asarray(self.weights, dtype=np.float64)
        self._a, self._state = hostmath.synapse_output(self._rule, w, self._state, x, self._sign, self._mask)
        w_new, self._state = hostmath.rule_step(self._rule, w, self._state, x, y, m, self.time_step - 1, self._mask,
                                                    self._sign)
        self.weights[:] = w_new
        if "e" in self._state:
            self.e[:] = self._state["e"]

    def _out(self, a):
        return np.floor(a).astype(np.int32) if self._fixed else a


@implements(proc=HostPlasticDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyHostPlasticDenseModel(_HostPlasticModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_post: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_mod: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=HostPlasticDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHostPlasticDenseModelFixed(_HostPlasticModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_post: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_mod: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
