"""The reference one-shot learner: a boxcar memory of a trial solves M = 5; an exponential
eligibility trace that leaks into the next trial caps what a rule storing the trial in it can do."""
from plastix.tasks.cue_association import OneShotCueConfig
from plastix.tasks.cue_bounds import boxcar, exponential, learner_accuracy

CFG = OneShotCueConfig(n_cues=5)


def test_centred_hebbian_learner_solves_m5():
    assert learner_accuracy(boxcar(CFG.trial_steps), CFG, n_problems=600) > 0.95
    assert learner_accuracy(boxcar(CFG.trial_steps), CFG, n_problems=600, centre=False) < 0.85


def test_a_leaking_trace_costs_accuracy():
    leak = learner_accuracy(exponential(500.0), CFG, n_problems=600)
    clean = learner_accuracy(exponential(500.0), CFG, n_problems=600, leak=False)
    assert leak < 0.8 < 0.93 < clean


def test_a_smaller_second_write_undoes_the_leak():
    """Scaling the second trial's write by 1 / (1 + leak) recovers what the leak cost."""
    comp = learner_accuracy(exponential(1000.0), CFG, n_problems=600, compensate=True)
    assert learner_accuracy(exponential(1000.0), CFG, n_problems=600) < 0.7 < 0.93 < comp


def test_cli_prints_one_json_row_per_kernel():
    import json

    from typer.testing import CliRunner

    from plastix.cli import app

    res = CliRunner().invoke(app, ["cue-bounds", "--cues", "1", "--problems", "16"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["kernel"] for r in rows][:2] == ["boxcar (one trial)", "exp tau=50"] and len(rows) == 8
    assert all(0.0 <= r["with_leak"] <= 1.0 and r["M"] == 1 for r in rows)
    assert all("with_leak_compensated" in r for r in rows[1:])
