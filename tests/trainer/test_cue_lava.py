"""A BPTT-trained cue-association model on Lava: same accuracy as torch on the same 500 problems."""
import pytest
import torch

import plastix.ir as ir
from plastix.trainer.experiments.cue_eval import compare_backends
from plastix.trainer.experiments.bptt_run import train_bptt


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_trained_model_on_lava_matches_torch_on_500_problems(tmp_path):
    """The unpermuted config is the one that learns on this budget (docs/results.md), so the
    accuracies compared are far from chance; Lava runs the float emulation, one problem per run."""
    torch.set_num_threads(1)
    res = train_bptt("one_shot_cue", "unpermuted", tmp_path, progress=False)
    cmp = compare_backends(ir.load(res["model"]), 500, seed=4321)
    assert cmp["accuracy_torch"] > 0.7, cmp["accuracy_torch"]
    assert abs(cmp["accuracy_lava"] - cmp["accuracy_torch"]) <= 0.02
    assert cmp["agreement_decision"] >= 0.98
