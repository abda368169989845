"""The one list of experiments: (method, task) -> its trainer, presets, source and evaluation.

``plastix train`` dispatches through :func:`get`, ``plastix experiments`` prints :data:`EXPERIMENTS`,
and the docs test checks the README against it. Each entry's ``train`` adapter takes the run folder
and the common settings plus the method's own options (``options``: the only ones it accepts; the CLI
refuses others with a clear error). Presets stay where their trainer defines them; ``configs()``
reads them from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

METHODS = ("es", "bptt", "synq", "gd", "ppo")


@dataclass(frozen=True)
class Experiment:
    """One (method, task) pair. ``train(out, *, config, seed, steps, resume, **options) -> summary``;
    ``configs()`` the preset names; ``variants`` what ``--model`` / ``--variant`` selects (or ());
    ``source`` the paper and figure it reproduces; ``evaluate`` how a trained model is evaluated."""

    method: str
    task: str
    source: str
    train: Callable[..., dict]
    configs: Callable[[], tuple[str, ...]]
    options: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    evaluate: str = "the run's result.json (final and best test figures)"
    defaults: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- adapters

def _es(task: str) -> Callable[..., dict]:
    def train(out, *, config, seed, steps, resume, model="enu", ray=False, ray_address=None, es_step=None,
              sigma=None) -> dict:
        return train_from(out, config=config, seed=seed, steps=steps, resume=resume, model=model, ray=ray,
                          ray_address=ray_address, es_step=es_step, sigma=sigma)

    def train_from(out, *, config, seed, steps, resume, model="enu", ray=False, ray_address=None, es_step=None,
                   sigma=None, init=None) -> dict:
        from .es_run import train_es

        return train_es(task, model, config, out, resume=resume, seed=seed, generations=steps, ray=ray,
                        ray_address=ray_address, step=es_step, sigma=sigma, init=init)
    return train_from if task in _ES_NETWORK_TASKS else train  # only a network can start from a model file


def _es_configs(task: str) -> Callable[[], tuple[str, ...]]:
    def configs() -> tuple[str, ...]:
        from .es_run import ES_CONFIGS

        return tuple(ES_CONFIGS[task])
    return configs


def _bptt_cue(out, *, config, seed, steps, resume, jit=True, init=None, hardware_aware=False,
              fixed_in_loop=False) -> dict:
    from .bptt_run import train_bptt

    extra = {"init": str(init) if init is not None else None, "hardware_aware": hardware_aware or None,
             "fixed_in_loop": fixed_in_loop or None}
    return train_bptt("one_shot_cue", config, out, resume=resume, seed=seed, iterations=steps, jit=jit,
                      **{k: v for k, v in extra.items() if v is not None})


def _bptt_configs() -> tuple[str, ...]:
    from .bptt import CONFIGS

    return tuple(CONFIGS)


def _bptt_glyphs(out, *, config, seed, steps, resume, variant="plastic", jit=False) -> dict:
    from .glyphs_run import train_glyphs

    return train_glyphs(variant, config, out, resume=resume, seed=seed, iterations=steps, jit=jit)


def _glyph_configs() -> tuple[str, ...]:
    from .glyphs import CONFIGS

    return tuple(CONFIGS)


def _pg_tmaze(out, *, config, seed, steps, resume, variant="ndp_oja") -> dict:
    from .pg_run import train_pg

    return train_pg(variant, config, out, resume=resume, seed=seed, iterations=steps)


def _pg_configs() -> tuple[str, ...]:
    from .pg import CONFIGS

    return tuple(CONFIGS)


def _ppo_halfcheetah(out, *, config, seed, steps, resume, variant="non_plastic", jit=None) -> dict:
    from .locomotion_run import train_locomotion

    return train_locomotion(variant, config, out, resume=resume, seed=seed, iterations=steps,
                            **({} if jit is None else {"jit": jit}))


def _ppo_configs() -> tuple[str, ...]:
    from .locomotion import CONFIGS

    return tuple(CONFIGS)


def _synq(task: str) -> Callable[..., dict]:
    def train(out, *, config, seed, steps, resume, form="additive", aggregation=None, policy=None,
              policy_mode=None, bias_init=None, q_average_from=None) -> dict:
        from .synq_run import train_synq

        online = None if policy_mode is None else policy_mode == "online"
        return train_synq(task, config, out, seed=seed, form=form, resume=resume, iterations=steps, policy=policy,
                          train_policy=online, aggregation=aggregation, bias_init_scale=bias_init,
                          q_average_from=q_average_from)
    return train


def _gd(task: str) -> Callable[..., dict]:
    def train(out, *, config, seed, steps, resume, gd_protocol="strong") -> dict:
        from .synq_run import train_gd_baseline

        return train_gd_baseline(task, config, out, seed=seed, resume=resume, iterations=steps, protocol=gd_protocol)
    return train


def _synq_configs() -> tuple[str, ...]:
    from plastix.tasks.synq_configs import CONFIGS

    return tuple(CONFIGS)


# ----------------------------------------------------------------------------------- the registry

_ES_MODELS = ("enu", "nfenu", "gru", "lstm", "sharedenu")
_ES_NETWORK_TASKS = ("tmaze", "double_tmaze")  # networks of cells: they take --init (es_run.NETWORK_TASKS)
_ES_SOURCES = {"iaf": "ENU (Bertens & Lee 2020), Fig. 3 / Table 1: integrate-and-fire mimic",
               "stdp": "ENU, Fig. 3 / Table 1: neuromodulated STDP mimic",
               "complex_stdp": "ENU, Extended Data Fig. 3: complex STDP mimic",
               "tmaze": "ENU, Fig. 4-5: T-maze, learning within an episode",
               "double_tmaze": "ENU, Extended Data Fig. 4: double T-maze"}
_SYNQ_SOURCES = {"boundary": "Synaptic RL (Bhargava et al. 2022), Fig. 1a: decision-boundary task (learns the policy)",
                 "digits_0hu": "Synaptic RL, Table 1: digits, no hidden layer",
                 "digits_32hu": "Synaptic RL, Table 1: digits, 32 hidden units",
                 "notmnist_standin_0hu": "Synaptic RL, Table 1: notMNIST (generated stand-in), no hidden layer",
                 "notmnist_standin_32hu": "Synaptic RL, Table 1: notMNIST (generated stand-in), 32 hidden units"}
_CUE_EVAL = "plastix evaluate MODEL (accuracy; --sweep for the M sweep, --compare-lava for torch vs Lava)"
_LOCOMOTION_EVAL = ("plastix evaluate MODEL --noise friction|action|observation --std S[,S...] (mean return over "
                    "--episodes; --compare-lava K for K environment steps on torch vs Lava)")
_GLYPH_EVAL = ("plastix evaluate MODEL (test error on held-out stand-in classes; --data digits for the zero-shot "
               "transfer, --compare-lava for torch vs Lava)")


def _entries() -> list[Experiment]:
    es_opts = ("model", "ray", "ray_address", "es_step", "sigma")
    out = [Experiment("es", t, src, _es(t), _es_configs(t), es_opts + (("init",) if t in _ES_NETWORK_TASKS else ()),
                      _ES_MODELS)
           for t, src in _ES_SOURCES.items()]
    out.append(Experiment("bptt", "one_shot_cue", "Meta-SpikePropamine (Schmidgall & Hays 2022), Fig. 4: "
                          "one-shot cue association", _bptt_cue, _bptt_configs,
                          ("jit", "init", "hardware_aware", "fixed_in_loop"), evaluate=_CUE_EVAL))
    out.append(Experiment("bptt", "one_shot_glyphs", "Meta-SpikePropamine (Schmidgall & Hays 2022), Figs. 5-6: "
                          "one-shot character recognition (on a generated Omniglot stand-in)", _bptt_glyphs,
                          _glyph_configs, ("variant", "jit"), ("plastic", "nonplastic"), evaluate=_GLYPH_EVAL))
    out.append(Experiment("bptt", "cue_tmaze", "SpikePropamine (Schmidgall et al. 2021): noisy cue-association "
                          "T-maze, policy gradient", _pg_tmaze, _pg_configs, ("variant",),
                          ("non_plastic", "dp_linear_decay", "dp_oja", "dp_bcm", "ndp_oja", "ndp_bcm")))
    out.append(Experiment("ppo", "halfcheetah", "SpikePropamine (Schmidgall et al. 2021), sec. 3.2 / Fig. 4: "
                          "Half-Cheetah locomotion with plastic SNN policies, PPO", _ppo_halfcheetah, _ppo_configs,
                          ("variant", "jit"), ("non_plastic", "dp_oja", "dp_bcm", "ndp_oja", "ndp_bcm"),
                          evaluate=_LOCOMOTION_EVAL))
    synq_opts = ("form", "aggregation", "policy", "policy_mode", "bias_init", "q_average_from")
    out += [Experiment("synq", t, src, _synq(t), _synq_configs, synq_opts) for t, src in _SYNQ_SOURCES.items()]
    out += [Experiment("gd", t, src + " (gradient-descent baseline)", _gd(t), _synq_configs, ("gd_protocol",))
            for t, src in _SYNQ_SOURCES.items() if t != "boundary"]
    return out


EXPERIMENTS: Mapping[tuple[str, str], Experiment] = MappingProxyType({(e.method, e.task): e for e in _entries()})


def tasks_of(method: str) -> tuple[str, ...]:
    """The tasks ``method`` trains, in registry order."""
    return tuple(t for m, t in EXPERIMENTS if m == method)


def get(method: str, task: str) -> Experiment:
    """The experiment of ``method`` on ``task``; ``KeyError`` naming the tasks the method knows."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    exp = EXPERIMENTS.get((method, task))
    if exp is None:
        raise KeyError(f"--method {method} has no task {task!r}; its tasks: {', '.join(tasks_of(method))}")
    return exp


def check_options(exp: Experiment, given: Mapping[str, Any]) -> None:
    """``ValueError`` for an option the experiment does not take (given: name -> value, None = unset)."""
    bad = sorted(k for k, v in given.items() if v is not None and k not in exp.options)
    if bad:
        flags = ", ".join("--" + b.replace("_", "-") for b in bad)
        raise ValueError(f"{flags} {'does' if len(bad) == 1 else 'do'} not apply to --method {exp.method} "
                         f"{exp.task} (it takes: {', '.join('--' + o.replace('_', '-') for o in exp.options) or 'none'})")
