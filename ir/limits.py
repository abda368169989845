"""The IR's documented maxima (``docs/format.md``, "Limits").

Every size that drives allocation in a backend is bounded here, so that no valid file can ask for an
absurd amount of memory or time through one field (a population of 10^12 neurons, a delay of 2^63
steps). The bounds are far above every model in the source papers and Loihi 2's own limits; the
memory a *run* needs is bounded separately by each backend's estimate (``plastix.backends.memory``).
"""
from __future__ import annotations

MAX_SIZE = 1 << 20
"""Neurons per population (a Loihi 2 chip has about 10^6)."""
MAX_CHANNELS = 1024
"""Values per neuron and step of an input or a gated cell (``channels``, ``in_channels``, ``out_channels``)."""
MAX_CELL_WIDTH = 4096
"""Memory / hidden units of one gated cell (ENU ``memory``, GRU/LSTM ``hidden``)."""
MAX_MODULATOR_SIZE = 1 << 28
"""Values of one modulator channel (``n_post * n_pre`` for per-synapse modulation)."""
MAX_DELAY = 4096
"""Extra steps of a projection's ``delay`` (Loihi 2 synapses delay by at most 62)."""
MAX_STEPS_PARAM = 65535
"""Step counts inside a node: ``refractory``, a rule's ``interval`` and ``t_epoch``."""
MAX_SEED = (1 << 32) - 1
"""Seeds of random streams stored in a rule (``seed``, ``rng_seed``): 32-bit."""

MAX_MANIFEST_BYTES = 4 << 20
"""Size of a ``.plx`` file's ``plastix.json`` (a graph of 10,000 nodes needs well under 4 MiB)."""
MAX_LOAD_BYTES = 1 << 30
"""Bytes of array data one ``.plx`` load may decompress (an array referenced twice counts twice),
checked against the sizes the archive declares before anything is decompressed."""
FREE_LOAD_BYTES = 64 << 20
LOAD_EXPANSION = 16
"""Beyond ``FREE_LOAD_BYTES``, a file may declare at most ``LOAD_EXPANSION`` bytes of array data per
byte of file: a small file never makes plastix allocate gigabytes (a 2 MB file declaring a 2 GB
zero array is refused). An explicit ``max_bytes`` (CLI ``--max-memory``) replaces both rules."""
