"""Distillation as a stage of a run (DESIGN.md §5): the teacher is trained on the same
noisy labels without the test set, its provenance reaches the student's records and
configuration, one teacher serves many students, and bad requests are refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from noisebench import engine, stages
from noisebench import experiment as ex
from noisebench.cli import app
from noisebench.records import config_hash
from noisebench.sampling import derive_seed
from noisebench.store import read_records

FAST = ["--epochs", "2", "--seeds", "2"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def spec(**teacher):
    from noisebench.data import resolve_card

    base = ex.RunSpec(
        method="ce",
        params={},
        dataset="digits",
        noise=ex.NoiseSpec(kind="symmetric", rate=0.4),
        train=ex.train_config_for(resolve_card("digits"), epochs=2),
        seeds=(0, 1),
    )
    return replace(base, teacher=ex.TeacherSpec(**teacher)) if teacher else base


@pytest.fixture
def fits(monkeypatch):
    """Every engine.fit call's task and method, in order."""
    calls = []
    real = engine.fit

    def spy(task, **kwargs):
        calls.append((task, kwargs["method"].name, dict(kwargs["params"])))
        return real(task, **kwargs)

    monkeypatch.setattr(engine, "fit", spy)
    stages._TEACHERS.clear()
    return calls


def test_the_teacher_learns_the_students_noisy_labels_without_the_test_set(fits):
    prepared = ex.prepare(spec(method="ls", params={"smoothing": 0.3}, temperature=2.0))
    rows = ex.run(prepared)
    (teacher_task, method, params), (student_task, student, _) = fits
    assert (method, params, student) == ("ls", {"smoothing": 0.3}, "ce")
    assert teacher_task.x_test is None and teacher_task.y_test is None
    assert teacher_task.y_clean is None  # nor the clean labels
    assert (teacher_task.y_noisy == student_task.y_noisy).all()
    assert (teacher_task.train_idx == student_task.train_idx).all()
    assert teacher_task.seeds == [derive_seed("teacher", s) for s in (0, 1)]
    soft = student_task.teacher
    assert soft.temperature == 2.0 and soft.alpha == 1.0
    assert soft.probs.shape == (2, len(prepared.dataset.y), 10)
    assert soft.probs.sum(-1).sub(1).abs().max() < 1e-5
    for s, row in enumerate(rows):
        teacher = json.loads(row["teacher"])
        assert teacher["method"] == "ls" and teacher["params"] == {"smoothing": 0.3}
        assert (teacher["temperature"], teacher["alpha"]) == (2.0, 1.0)
        assert teacher["seed"] == derive_seed("teacher", s)
        assert 1 <= teacher["best_epoch"] <= 2 and row["status"] == "ok"


def test_one_teacher_serves_every_student_of_its_configuration(fits):
    for temperature in (1.0, 4.0):  # the temperature is applied to the kept logits
        ex.run(ex.prepare(spec(method="ls", params={}, temperature=temperature)))
    assert [name for _, name, _ in fits] == ["ls", "ce", "ce"]
    ex.run(ex.prepare(spec(method="gls", params={})))  # another teacher: trained anew
    assert [name for _, name, _ in fits][3:] == ["gls", "ce"]


def test_the_teacher_is_part_of_the_configuration():
    plain = config_hash(ex.prepare(spec()))
    taught = {
        config_hash(ex.prepare(spec(method="ls", params={}, **extra)))
        for extra in ({}, {"temperature": 2.0}, {"alpha": 0.5})
    }
    assert plain not in taught and len(taught) == 3
    with_defaults = ex.prepare(spec(method="ls", params={})).spec.teacher
    assert with_defaults.params == {"smoothing": 0.1}  # resolved like any method's


def test_evaluate_with_a_teacher_records_it_and_the_board_keeps_it_apart(tmp_path):
    for extra in (
        [],
        ["--teacher", "ls", "--temperature", "2", "--distill-alpha", "0.5"],
    ):
        result = invoke(
            "evaluate",
            "--method",
            "ce",
            "--noise",
            "0.4",
            *FAST,
            *extra,
            "--store",
            str(tmp_path),
            "--json",
        )
        assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["teacher"]["temperature"] == 2.0
    rows = read_records(tmp_path).to_pylist()
    assert sorted(r["teacher"] is None for r in rows) == [False, False, True, True]
    assert invoke("leaderboard", "--store", str(tmp_path)).exit_code == 0
    page = (tmp_path / "README.md").read_text()
    assert "| ce \\[teacher ls (smoothing=0.1), T=2, alpha=0.5\\] |" in page
    assert "| ce | " in page


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "2"], "--temperature applies only with --teacher"),
        (["--teacher-param", "smoothing=0.2"], "--teacher-param applies only"),
        (["--teacher", "ls", "--temperature", "0"], "temperature must be a finite"),
        (["--teacher", "ls", "--temperature", "inf"], "temperature must be a finite"),
        (["--teacher", "ls", "--distill-alpha", "1.5"], "alpha must lie in [0, 1]"),
        (["--teacher", "lss"], "unknown method 'lss'"),
        (["--teacher", "ls", "--teacher-param", "smoothing=2"], "smoothing"),
    ],
)
def test_bad_distillation_requests_are_one_line_and_write_nothing(
    tmp_path, args, message
):
    result = invoke(
        "evaluate",
        "--method",
        "ce",
        "--noise",
        "0.4",
        *FAST,
        *args,
        "--store",
        str(tmp_path),
    )
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_teacher_that_uses_t_takes_the_true_t_only():
    bad = replace(
        spec(method="backward", params={}), method="forward", transition="estimated"
    )
    with pytest.raises(ex.UserError, match="teacher 'backward' uses T"):
        ex.prepare(bad)
