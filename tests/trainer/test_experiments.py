"""The experiment registry: one list that the CLI dispatches through and the docs name."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plastix.cli import app
from plastix.trainer.experiments.registry import EXPERIMENTS, METHODS, check_options, get, tasks_of

ROOT = Path(__file__).resolve().parents[2]
COMMON = {"out", "config", "seed", "steps", "resume"}


@pytest.mark.parametrize("key", list(EXPERIMENTS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_each_experiment_takes_exactly_its_options_and_has_presets(key):
    exp = EXPERIMENTS[key]
    params = set(inspect.signature(exp.train).parameters)
    assert params - COMMON == set(exp.options) and COMMON <= params
    configs = exp.configs()
    assert {"quick", "paper"} <= set(configs), configs
    assert exp.source


def test_every_method_has_tasks_and_lookups_fail_clearly():
    assert all(tasks_of(m) for m in METHODS)
    with pytest.raises(KeyError, match="its tasks: iaf"):
        get("es", "one_shot_cue")
    with pytest.raises(KeyError, match="unknown method"):
        get("hebbian", "iaf")
    with pytest.raises(ValueError, match="--policy does not apply"):
        check_options(get("gd", "digits_0hu"), {"policy": "shipped", "gd_protocol": None})


def test_readme_and_cli_help_name_every_task():
    readme = (ROOT / "README.md").read_text()
    help_text = CliRunner().invoke(app, ["train", "--help"], terminal_width=400).output
    for method, task in EXPERIMENTS:
        assert f"`{task}`" in readme, f"README does not name {task}"
        assert task in help_text, f"plastix train --help does not name {task}"


def test_experiments_command_lists_the_registry():
    res = CliRunner().invoke(app, ["experiments", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {(r["method"], r["task"]) for r in rows} == set(EXPERIMENTS)


def test_the_registry_and_es_run_name_the_same_network_tasks():
    from plastix.trainer.experiments import es_run, registry

    assert set(registry._ES_NETWORK_TASKS) == set(es_run.NETWORK_TASKS)
