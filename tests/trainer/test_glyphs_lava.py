"""A trained one-shot character model on Lava: the SNN of model.plx (its per-pre triplet rule
host-emulated, floating point) gives torch's answers and readout on the same problems."""
import torch

import plastix.ir as ir
from plastix.tasks.glyphs import build_glyph_standin
from plastix.trainer.experiments.glyphs_run import compare_lava, train_glyphs


def test_tiny_trained_model_gives_the_same_answers_on_lava(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    small = build_glyph_standin(0, small=True)
    res = train_glyphs("plastic", "tiny", tmp_path, iterations=2, progress=False, glyphs=small, final_problems=8)
    monkeypatch.setattr("plastix.trainer.experiments.glyphs_run.load_glyph_standin", lambda *a, **k: small)
    cmp = compare_lava(ir.load(res["model"]), 3, timeout=120.0)
    assert cmp["lowering"]["sensory_to_hidden"]["how"] == "host-emulated"
    assert cmp["same_answers"] == 1.0 and cmp["same_answers_split"] == 1.0
    assert cmp["max_abs_readout_difference"] <= 1e-6, cmp
