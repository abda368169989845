"""The shared run loop: atomic checkpoints, bit-exact resume (RNG state included), logs, plot."""
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from plastix.trainer.experiments.es_run import ESJob, es_config, train_es
from plastix.trainer.runner import CHECKPOINT, CURVE, METRICS, RunOptions, load_checkpoint, read_metrics, run


@dataclass(frozen=True)
class WalkState:
    x: torch.Tensor
    rng: torch.Tensor


class RandomWalk:
    """A toy job whose every step consumes randomness."""

    def __init__(self, fail_at=None, scale=1.0):
        self.fail_at, self.scale = fail_at, scale

    def config(self):
        return {"job": "walk", "scale": self.scale}

    def init_state(self):
        g = torch.Generator().manual_seed(0)
        return WalkState(torch.zeros(3), g.get_state())

    def step(self, state, index):
        if index == self.fail_at:
            raise KeyboardInterrupt  # a simulated kill in the middle of a step
        g = torch.Generator()
        g.set_state(state.rng)
        x = state.x + self.scale * torch.randn(3, generator=g)
        return WalkState(x, g.get_state()), {"fitness_mean": float(x.sum()), "fitness_max": float(x.max())}

    def state_dict(self, s):
        return {"x": s.x, "rng": s.rng}

    def load_state_dict(self, d):
        return WalkState(d["x"], d["rng"])


def _opts(out, total, **kw):
    return RunOptions(out_dir=out, total_steps=total, progress=False, **{"checkpoint_every": 1, **kw})


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    full = run(RandomWalk(), _opts(tmp_path / "a", 6))
    with pytest.raises(KeyboardInterrupt):
        run(RandomWalk(fail_at=3), _opts(tmp_path / "b", 6))
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)["step"] == 3
    res = run(RandomWalk(), _opts(tmp_path / "b", 6, resume=True))
    assert res.resumed_from == 3 and res.steps_done == 6
    assert torch.equal(res.state.x, full.state.x) and torch.equal(res.state.rng, full.state.rng)
    assert _strip(read_metrics(tmp_path / "b" / METRICS)) == _strip(read_metrics(tmp_path / "a" / METRICS))
    assert (tmp_path / "b" / CURVE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hard_kill_after_checkpoint_drops_unsaved_log_lines(tmp_path):
    full = run(RandomWalk(), _opts(tmp_path / "a", 6))
    run(RandomWalk(), _opts(tmp_path / "b", 4, checkpoint_every=2))  # checkpoints at 2 and 4
    # the killed process had logged steps 4 and 5 (one torn) without checkpointing them
    with (tmp_path / "b" / METRICS).open("a") as fh:
        fh.write(json.dumps({"step": 4, "fitness_mean": 123.0}) + "\n" + '{"step": 5, "fitn')
    res = run(RandomWalk(), _opts(tmp_path / "b", 6, resume=True))
    assert res.resumed_from == 4 and torch.equal(res.state.x, full.state.x)
    assert _strip(read_metrics(tmp_path / "b" / METRICS)) == _strip(full.records)


def test_refuses_to_clobber_or_resume_another_config(tmp_path):
    run(RandomWalk(), _opts(tmp_path, 2))
    with pytest.raises(FileExistsError, match="resume"):
        run(RandomWalk(), _opts(tmp_path, 2))
    with pytest.raises(ValueError, match="another config"):
        run(RandomWalk(scale=2.0), _opts(tmp_path, 3, resume=True))
    assert run(RandomWalk(), _opts(tmp_path / "fresh", 1, resume=True)).resumed_from is None


def _tiny_job(seed=0):
    es = es_config("iaf", "quick", population=4, generations=6, checkpoint_every=1)
    return ESJob("iaf", "enu", "quick", seed=seed, es=es, task_overrides={"num_envs": 2, "steps": 15})


def test_es_resume_after_kill_is_bit_exact(tmp_path):
    full = run(_tiny_job(), _opts(tmp_path / "a", 6))
    job = _tiny_job()
    job.fail_at = 3
    step = job.step

    def killing_step(state, index):
        if index == 3:
            raise KeyboardInterrupt
        return step(state, index)
    job.step = killing_step
    with pytest.raises(KeyboardInterrupt):
        run(job, _opts(tmp_path / "b", 6))
    res = run(_tiny_job(), _opts(tmp_path / "b", 6, resume=True))
    a, b = full.state.es, res.state.es
    for f in ("mean", "opt_m", "opt_v", "best_member"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert (a.generation, a.best_fitness, a.opt_t) == (b.generation, b.best_fitness, b.opt_t) == (6, a.best_fitness, 6)
    assert _strip(read_metrics(tmp_path / "b" / METRICS)) == _strip(full.records)
    other = run(_tiny_job(seed=1), _opts(tmp_path / "c", 2))
    assert not torch.equal(other.state.es.mean, run(_tiny_job(), _opts(tmp_path / "d", 2)).state.es.mean)


def test_an_es_checkpoint_from_before_a_new_task_setting_resumes_at_its_default(tmp_path):
    """TMazeConfig.stratify was added after runs had started: their checkpoints lack it and resume while it is at
    its default (False), not when it is set; the error names the nested setting."""
    import json

    from plastix.trainer.runner import CHECKPOINT, load_checkpoint, save_checkpoint

    def job(**task):
        es = es_config("tmaze", "quick", population=2, generations=2, checkpoint_every=1)
        return ESJob("tmaze", "gru", "quick", es=es, task_overrides={"num_envs": 1, "steps": 3, **task})

    run(job(), _opts(tmp_path, 1))
    data = load_checkpoint(tmp_path / CHECKPOINT)
    old = json.loads(data["config_json"])
    del old["task_config"]["stratify"], old["es"]["step"]
    save_checkpoint(tmp_path / CHECKPOINT, data["step"], data["state"], old)
    assert run(job(), _opts(tmp_path, 2, resume=True)).resumed_from == 1
    save_checkpoint(tmp_path / CHECKPOINT, data["step"], data["state"], old)
    with pytest.raises(ValueError, match=r"task_config.stratify: saved '\(absent\)', now True"):
        run(job(num_envs=36, stratify=True), _opts(tmp_path, 2, resume=True))


def test_train_es_writes_run_folder(tmp_path):
    from plastix.ir import load
    out = tmp_path / "run"
    s = train_es("stdp", "gru", "quick", out, seed=0, generations=2, population=4, num_envs=2, progress=False)
    assert s["generations"] == 2 and s["num_params"] == 5328
    for f in ("checkpoint.pt", "metrics.jsonl", "curve.png", "config.json", "model.plx", "result.json"):
        assert (out / f).exists(), f
    g = load(out / "model.plx")
    assert g.metadata["model"] == "gru" and g.population("unit").cell.kind == "gru_cell"
    s2 = train_es("stdp", "gru", "quick", out, resume=True, seed=0, generations=3, population=4, num_envs=2,
                  progress=False)
    assert s2["resumed_from"] == 2 and s2["generations"] == 3  # a run can be extended


_PWNED = Path(tempfile.gettempdir()) / "plastix-test-pwned"


class _Evil:
    """Unpickling it would create a file: a stand-in for arbitrary code."""

    def __reduce__(self):
        return (Path.touch, (_PWNED,))


@pytest.mark.parametrize("payload", [b"garbage", b"PK\x03\x04" + b"\x00" * 40, b""])
def test_garbage_checkpoint_is_a_clear_error(tmp_path, payload):
    (tmp_path / CHECKPOINT).write_bytes(payload)
    with pytest.raises(ValueError, match="not a readable plastix checkpoint"):
        run(RandomWalk(), _opts(tmp_path, 2, resume=True))


def test_checkpoint_never_unpickles_arbitrary_objects(tmp_path):
    """A checkpoint holding a pickled object (here one that would run code when unpickled) is
    refused by torch.load(weights_only=True) before the object is built."""
    ck = tmp_path / CHECKPOINT
    _PWNED.unlink(missing_ok=True)
    torch.save({"format": 1, "step": 1, "state": {"x": _Evil()}, "config_json": "{}"}, ck)
    with pytest.raises(ValueError, match="not a readable plastix checkpoint"):
        load_checkpoint(ck)
    assert not _PWNED.exists()


def test_checkpoint_declared_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    """A checkpoint whose zip records declare more than the memory limit is refused unread."""
    import zipfile

    from plastix.backends.memory import ENV, MemoryLimitError

    run(RandomWalk(), _opts(tmp_path, 2))
    ck = tmp_path / CHECKPOINT
    declared = sum(i.file_size for i in zipfile.ZipFile(ck).infolist())
    monkeypatch.setenv(ENV, str(declared - 1))
    with pytest.raises(MemoryLimitError, match="loading the checkpoint"):
        load_checkpoint(ck)
    monkeypatch.setenv(ENV, str(declared))
    assert load_checkpoint(ck)["step"] == 2


class BestWalk(RandomWalk):
    """The walk, remembering the step at which ``save_best`` was called."""

    def save_best(self, state, out_dir):
        (Path(out_dir) / "best.json").write_text(json.dumps({"x": state.x.tolist()}))
        self.saved = getattr(self, "saved", []) + [float(state.x.sum())]


def test_best_model_is_kept_across_a_resume(tmp_path):
    job = BestWalk()
    res = run(job, _opts(tmp_path / "a", 8, best_key="fitness_mean"))
    sums = [r["fitness_mean"] for r in res.records]
    peaks = [v for i, v in enumerate(sums) if v > max(sums[:i], default=-float("inf"))]
    assert job.saved == peaks and len(peaks) < len(sums)  # only new maxima, in order
    assert sum(json.loads((tmp_path / "a" / "best.json").read_text())["x"]) == pytest.approx(max(sums), abs=1e-5)
    # interrupted and resumed: the maximum seen before the interruption still counts
    with pytest.raises(KeyboardInterrupt):
        run(BestWalk(fail_at=5), _opts(tmp_path / "b", 8, best_key="fitness_mean"))
    again = BestWalk()
    run(again, _opts(tmp_path / "b", 8, resume=True, best_key="fitness_mean"))
    assert getattr(again, "saved", []) == [v for v in peaks if sums.index(v) >= 5]
