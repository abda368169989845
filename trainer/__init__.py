"""plastix.trainer — the shared run loop (``runner``: checkpoints, resume, progress, metrics) and two
subpackages: ``algorithms`` (ES, population evaluation, gradient meta-training, synaptic Q; no task
wiring) and ``experiments`` (the papers' experiments built from them, and ``experiments.registry``, the
(method, task) table the CLI dispatches through). Re-exported here: the ask/tell ES API and ``run``.
"""
from .algorithms.base import ESParams as ESParams
from .algorithms.base import ESState as ESState
from .algorithms.base import Optimizer as Optimizer
from .algorithms.base import Shaping as Shaping
from .algorithms.base import Strategy as Strategy
from .algorithms.base import centered_rank as centered_rank
from .algorithms.base import paper_rank as paper_rank
from .algorithms.base import standardize as standardize
from .algorithms.openai_es import OpenAIES as OpenAIES
from .runner import Job as Job
from .runner import RunOptions as RunOptions
from .runner import RunResult as RunResult
from .runner import run as run
