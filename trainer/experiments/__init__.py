"""plastix.trainer.experiments — the papers' experiments wired from the algorithms, tasks and IR.

``registry`` (the (method, task) experiments the CLI dispatches through), ``bptt`` / ``bptt_run``
+ ``cue_eval`` (Meta-SpikePropamine one-shot cue association), ``pg`` / ``pg_run`` (SpikePropamine
cue T-maze, policy gradient), ``es_run`` + ``enu_net`` (ENU mimic tasks and T-maze networks),
``synq_run`` (synaptic Q-learning on the OCR tasks), ``locomotion`` / ``locomotion_run`` (SpikePropamine
Half-Cheetah, PPO).
"""
