"""plastix.trainer.algorithms — the training methods, independent of any paper's task wiring.

``base`` / ``openai_es`` (ask/tell evolution strategies), ``models`` + ``es_eval`` (genomes of gated
cells and their whole-population evaluation through the torch backend's cells), ``es_ray`` (that
evaluation across Ray workers), ``gradient`` (meta-training a plastic network by BPTT: losses, the
rule reparametrisation, ``PlasticNet``), ``hardware_aware`` (training on Loihi's learning-engine
values), ``synq`` (synaptic Q-learning), ``ppo`` (PPO for stateful policies: GAE, clipped loss,
Gaussian actions with a learned log std). Nothing here imports :mod:`plastix.trainer.experiments`
(``tests/test_layering.py``).
"""
