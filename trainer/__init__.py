"""plastix.trainer — ask/tell evolution strategies, the shared run loop, ENU-paper models and runs.

Further modules: ``experiments`` (the registry of (method, task) experiments the CLI dispatches
through), ``models``, ``es_eval``, ``es_run`` (``train_es``), ``bptt`` / ``bptt_run``, ``pg`` /
``pg_run``, ``synq`` / ``synq_run``, ``cue_eval``.
"""
from .base import ESParams as ESParams
from .base import ESState as ESState
from .base import Optimizer as Optimizer
from .base import Shaping as Shaping
from .base import Strategy as Strategy
from .base import centered_rank as centered_rank
from .base import paper_rank as paper_rank
from .base import standardize as standardize
from .openai_es import OpenAIES as OpenAIES
from .runner import Job as Job
from .runner import RunOptions as RunOptions
from .runner import RunResult as RunResult
from .runner import run as run
