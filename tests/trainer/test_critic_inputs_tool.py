"""tools/critic_inputs.py: the held-out explained variance it reports (docs/results.md, issue 20)."""
import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location("critic_inputs", Path(__file__).parents[2] / "tools" / "critic_inputs.py")
critic_inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(critic_inputs)


def test_a_critic_explains_returns_only_from_inputs_that_carry_them():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 16, 3, generator=g)
    ret = torch.tanh(x[..., 0]) + 0.1 * torch.randn(50, 16, generator=g)
    held, fitted = critic_inputs.explained(x[..., :1], ret, fit_steps=300, seed=0)
    assert held > 0.8 and fitted > 0.8
    held_noise, _ = critic_inputs.explained(x[..., 1:], ret, fit_steps=300, seed=0)
    assert held_noise < 0.2
