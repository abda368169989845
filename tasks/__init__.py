"""plastix.tasks — batched environments (leading (population, envs) dims) and paper configs."""
from .base import AutoresetMode as AutoresetMode
from .base import BatchedTask as BatchedTask
from .base import TensorSpec as TensorSpec
from .mimic import IAFConfig as IAFConfig
from .mimic import IAFTask as IAFTask
from .mimic import STDPConfig as STDPConfig
from .mimic import STDPRule as STDPRule
from .mimic import STDPTask as STDPTask
from .registry import TASKS as TASKS
from .registry import make_task as make_task
from .registry import task_config as task_config
from .registry import task_names as task_names
