"""The committed board's recipe: `leaderboard/reproduce.sh` and the suites it sweeps
cover every built-in method, so a method added without its board runs fails here rather
than leaving a gap on the page. The script runs against a stand-in `noisebench` that
logs its arguments: what it would train, without training."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from noisebench.registry import builtin_names, get_method
from noisebench.sweep import load_suite

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {  # setup -> (evaluate's data and model args, its suite)
    "digits-mlp": (("--dataset", "digits"), "standard"),
    "digits-cnn": (("--dataset", "digits", "--model", "cnn"), "digits-cnn"),
    "mnist1d": (("--dataset", "mnist1d"), "mnist1d"),
}
SETTINGS = {  # the grid: rate 0 and each class-conditional setting
    ("symmetric", 0.0),
    ("symmetric", 0.2),
    ("symmetric", 0.4),
    ("symmetric", 0.6),
    ("symmetric", 0.8),
    ("uniform", 0.4),
    ("pairflip", 0.2),
    ("pairflip", 0.4),
    ("asymmetric", 0.4),
}


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """reproduce.sh ARGS with a stand-in `noisebench` first on PATH that appends each
    call's arguments, one line per call, to tmp_path/calls.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "noisebench"
    log = tmp_path / "calls.txt"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%q " "$@" >> {log}\necho >> {log}\n')
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", str(ROOT / "leaderboard" / "reproduce.sh"), *args],
        env=os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def script_calls(tmp_path: Path, *setups: str) -> list[list[str]]:
    done = run_script(tmp_path, str(tmp_path / "store"), *setups)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "calls.txt").read_text().splitlines()
    return [shlex.split(line) for line in lines]


def option(call: list[str], name: str) -> str | None:
    return call[call.index(name) + 1] if name in call else None


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_the_script_runs_every_builtin_method_at_every_setting(tmp_path, setup):
    calls = script_calls(tmp_path, setup)
    data_args, suite = SETUPS[setup]
    runs = [c for c in calls if c[0] == "evaluate"]
    cells = {
        (
            option(c, "--method"),
            option(c, "--noise-type"),
            float(option(c, "--noise")),
            option(c, "--transition") or "oracle",
        )
        for c in runs
    }
    expected = {
        (m, kind, rate, "oracle") for m in builtin_names() for kind, rate in SETTINGS
    } | {
        (m, kind, rate, "estimated")
        for m in ("forward", "backward")
        for kind, rate in SETTINGS
    }
    assert cells == expected and len(runs) == len(expected)  # each cell once
    for call in runs:
        assert tuple(call[1 : 1 + len(data_args)]) == data_args
        assert option(call, "--seeds") == "5"
        assert "--any-commit" in call  # resumes a board made over many commits
        assert option(call, "--store") == str(tmp_path / "store")
    sweeps = [c for c in calls if c[0] == "sweep"]
    assert [option(c, "--suite") for c in sweeps] == [suite]
    assert calls[-1][0] == "leaderboard"  # rendered once, after all the work


def test_an_unknown_setup_is_refused_before_any_work(tmp_path):
    done = run_script(tmp_path, str(tmp_path / "store"), "cifar")
    assert done.returncode == 2
    assert "unknown setup 'cifar'" in done.stderr
    assert not (tmp_path / "calls.txt").exists()


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_each_suite_tunes_every_method_with_params_on_the_same_grid(setup):
    """The tuned table's grid: each built-in method with a search space, at every
    setting, with one trial budget for all of them (a suite has one `trials`)."""
    data_args, name = SETUPS[setup]
    suite = load_suite(name, ROOT / "leaderboard")
    tunable = {m for m in builtin_names() if get_method(m).search_space}
    assert set(suite.methods) == tunable and len(suite.methods) == len(tunable)
    assert set(suite.noise) == SETTINGS
    assert suite.dataset == data_args[1]
    assert suite.train.get("model") == option(list(data_args), "--model")
    assert suite.final_seeds == 5 and suite.trials > 0


class Captured(Exception):
    """Raised by the stand-in trainer once it has the configuration."""


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_the_ci_as_run_rows_are_the_configuration_the_script_runs(setup, monkeypatch):
    """ci/check_methods.py adds a new method's as-run row through the suite
    (`sweep.as_run_spec`); it must be the row the script's `noisebench evaluate` makes,
    or a method's board row would split in two. Both configurations are captured
    before training and their leaderboard keys compared."""
    from typer.testing import CliRunner

    from noisebench import experiment
    from noisebench.cli import app
    from noisebench.records import config_hash
    from noisebench.sweep import Cell, as_run_spec

    data_args, name = SETUPS[setup]
    suite = load_suite(name, ROOT / "leaderboard")
    captured = []

    def capture(prepared, **_):
        captured.append(prepared)
        raise Captured

    monkeypatch.setattr(experiment, "run", capture)
    for method, transition in (("gce", "oracle"), ("forward", "estimated")):
        captured.clear()
        args = ["evaluate", *data_args, "--method", method, "--noise-type", "pairflip"]
        args += ["--noise", "0.2", "--seeds", "5", "--transition", transition]
        CliRunner().invoke(app, [*args, "--no-record", "--json"])
        (from_cli,) = captured
        cell = Cell(method, "pairflip", 0.2, transition)
        from_suite = experiment.prepare(as_run_spec(suite, cell))
        assert config_hash(from_suite) == config_hash(from_cli)
        assert from_suite.spec.seeds == from_cli.spec.seeds == (0, 1, 2, 3, 4)
        assert from_suite.spec.phase == from_cli.spec.phase == "evaluate"


def test_the_committed_page_is_what_the_committed_runs_give():
    """`noisebench leaderboard --check` on the committed board: a change to how the
    page renders, or shards copied in without rendering, fails here and not only in a
    method pull request's CI."""
    from typer.testing import CliRunner

    from noisebench.cli import app

    result = CliRunner().invoke(
        app, ["leaderboard", "--check", "--store", str(ROOT / "leaderboard")]
    )
    assert result.exit_code == 0, result.output
    assert "README.md is up to date" in result.output
