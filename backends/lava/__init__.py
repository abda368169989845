"""plastix.backends.lava — the IR on Lava processes emulating Loihi (lava-nc 0.10.0, CPU simulation).

Importing this package first installs the Python 3.11 import shim (:mod:`.compat`), then imports
Lava. Lava sets the program's multiprocessing start method to ``fork`` when imported (it needs it);
if a different start method was already chosen, the import fails with a clear
:class:`~plastix.backends.lava.compat.LavaImportError`. Nothing outside this package imports lava.

Public API::

    net = compile(graph, precision="fixed" | "float", timeout=120.0, learning_engine="auto" | "exact")
    with net:
        out = net.run({"x": x_T_by_n}, steps)   # {output: (steps, size)}: spikes, or v of LI readouts
        w, s = net.weights(), net.state()       # final plastic weights; u/v, eligibility tags, E
    support(graph, precision) -> {"populations" | "projections" | "rules" | "modulators":
                                  {name: {"how": "native" | "learning engine" | "host-emulated", "why": ...}}}

Lowering (the table is :data:`PROCESS_TABLE`; decisions in :mod:`.plan`, Lava objects in
:mod:`.lowering`, custom Processes in :mod:`.procs`):

* ``Input`` -> ``RingBuffer`` source; ``CubaLIF`` -> ``LIF`` (``LIFRefractory`` with a refractory
  period, float only); ``LIReadout`` -> ``LIF`` with an unreachable threshold, ``v`` via a Monitor;
  static projections -> ``Dense`` (``DelayDense`` with a delay), mask and sign folded in; spiking
  outputs -> sink ``RingBuffer``. Timing equals the IR's (plastix step ``t`` = Lava time step ``t+1``).
* ``LoihiRule`` -> ``LearningDense`` with a ``Loihi2FLearningRule``, or with a modulator a
  ``Loihi3FLearningRule`` + :class:`~.procs.three_factor_lif.ThreeFactorLIF` (y2 = modulator through
  a graded Dense) — exact; additive ``PairSTDP`` and global / per-post ``ThreeFactor`` over pair STDP
  or its ``EligibilityTrace`` (one or two modulator channels: y2, y3) with ``M 2^E`` constants also go
  to the learning engine under ``learning_engine="auto"``, reported as approximate (Loihi's trace
  conventions differ from the IR's; :mod:`plastix.backends.learning_engine`); ``"exact"``
  host-emulates them. A projection whose synapses are all excitatory / inhibitory gets sign mode
  EXCITATORY / INHIBITORY. Initial ``u`` / ``v``, traces and tags come from the IR.
* Everything else that plasticity needs — SpikePropamine Hebbian/Oja/BCM (plain and modulated),
  per-pre / per-synapse modulation, masked or mixed-sign plastic projections, triplet STDP, gated
  (ENU/GRU/LSTM) synapses, synaptic Q-learning — runs host-emulated in
  :class:`~.procs.host_plastic_dense.HostPlasticDense` with the numpy math of :mod:`.hostmath`
  (CPU only, nothing maps to Loihi hardware).
* Gated populations (ENU / GRU / LSTM neurons) run host-emulated (float only) in
  :class:`~.procs.gated_population.HostGatedPopulation`: the cell math of :func:`.hostmath.cell_step`
  in float64, received / sent in the LIF order, so projection latency equals the IR's.
  Multi-channel values (multi-channel ``Input`` sources, gated units' inputs and outputs) travel
  between Lava processes as flat ``(size * channels,)`` vectors, unit-major (``reshape(size,
  channels)``); a static projection over ``C`` channels is a ``Dense`` with ``kron(W, I_C)``, graded
  (``num_message_bits=24``) when its source is a gated population. ``run`` takes multi-channel inputs
  as ``(steps, size, channels)`` and returns gated outputs as ``(steps, size[, channels])``.
* Gated populations in fixed point or with ``init_noise > 0`` (random, not reproducible), plastic
  projections into gated populations or from multi-channel sources, refractory periods in fixed
  point, per-neuron du/dv/vth and plastic projections with delays raise
  :class:`plastix.ir.UnsupportedKindError`.

Precision: ``"float"`` is Lava's ``floating_pt``; ``"fixed"`` is ``fixed_pt`` with the integers of
:mod:`plastix.backends.quantize` (shared with the torch backend's fixed mode; the graph must be
representable, e.g. the output of ``quantize_graph``); learning-engine weights in fixed point are
8-bit mantissas (``-256..255``, weight_exp 0); fractional static weights use ``weight_exp < 0``. Host-emulated rules compute in float64 in both
precisions and send floor'ed integer activations in fixed point.

Robustness (:mod:`.runner`): every ``run`` builds and runs the Lava network in a child process with
its own process group and a hard ``timeout``; a ProcessModel exception surfaces as
:class:`LavaRunError` naming the Lava process; on timeout (:class:`LavaTimeoutError`), error or a
killed caller, every process of the run is killed and its ``/dev/shm`` segments are removed.
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
