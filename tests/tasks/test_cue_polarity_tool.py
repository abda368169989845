"""tools/cue_polarity.py: the per-neuron sign of the stored association (docs/results.md, issue 14)."""
import importlib.util
from pathlib import Path

from plastix.ir import load

_root = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("cue_polarity", _root / "tools" / "cue_polarity.py")
cue_polarity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cue_polarity)


def test_the_shipped_per_post_model_stores_with_both_polarities():
    """The shipped M = 5 model (per-post modulation) has left and right detectors among its hidden neurons
    (200 problems, seed 1: 4 left, 3 right at |polarity| > 0.3; docs/results.md)."""
    r = cue_polarity.polarity(load(_root / "plastix" / "data" / "cue_m5_pool.plx"), problems=60, seed=1)
    assert len(r["polarity"]) == 48 and all(-1 <= p <= 1 for p in r["polarity"])
    assert r["left"] >= 1 and r["right"] >= 1, r
