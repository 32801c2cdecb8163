"""`sweep --status`: each cell's state read from the store and the storage, the hours
summed from the records, and nothing written."""

from __future__ import annotations

import json
from statistics import fmean

import pytest
from helpers import write_suite
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.store import read_records
from noisebench.sweep import load_suite, sweep
from noisebench.sweep_status import DONE, FINAL, NOT_STARTED, TUNING, sweep_status
from noisebench.tune import default_storage, open_storage


def hours_of(store, study: str) -> float:
    rows = read_records(store).to_pylist()
    return sum(r["wall_time_s"] for r in rows if r["study"] == study) / 3600


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished sweep of two methods x two rates (2 trials, 2 final seeds)."""
    store = tmp_path_factory.mktemp("swept")
    name = write_suite(store, "tiny", methods=["ls", "flip"], rates=[0.2, 0.4])
    suite = load_suite(name, store)
    sweep(suite, store=store)
    return store, suite


def test_a_sweep_not_begun_has_every_cell_not_started_and_no_pace(tmp_path):
    suite = load_suite(
        write_suite(tmp_path, "new", methods=["ls"], rates=[0.2]), tmp_path
    )
    status = sweep_status(suite, store=tmp_path)
    assert [c.state for c in status.cells] == [NOT_STARTED]
    assert status.cells[0].trials == 0 and status.cells[0].hours == 0
    assert status.hours_left() is None
    # reading created nothing: no database, no runs folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suites"]


def test_a_finished_sweep_is_done_with_its_hours_from_the_records(swept):
    store, suite = swept
    status = sweep_status(suite, store=store)
    assert [c.state for c in status.cells] == [DONE] * 4
    assert all(c.trials == suite.trials for c in status.cells)
    for c in status.cells:
        assert c.hours == pytest.approx(hours_of(store, c.study)) and c.hours > 0
    assert status.hours_left() == 0


def test_cells_mid_way_are_tuning_or_at_their_final_runs(swept, tmp_path):
    """The same sweep's work, copied into a new store without one cell's final records
    and with another cell's study holding one trial of its two."""
    import shutil

    import optuna
    import pyarrow as pa
    import pyarrow.parquet as pq
    from optuna.trial import TrialState, create_trial

    store, suite = swept
    status = sweep_status(suite, store=store)
    ls_02, ls_04, flip_02, flip_04 = status.cells
    copy = tmp_path / "copy"
    (copy / "runs").mkdir(parents=True)
    shutil.copytree(store / "suites", copy / "suites")
    rows = [
        r
        for r in read_records(store).to_pylist()
        if not (r["study"] == ls_04.study and r["phase"] == "final")
        and r["study"] != flip_04.study
    ]
    table = pa.Table.from_pylist(rows, schema=read_records(store).schema)
    pq.write_table(table, copy / "runs" / "copy.parquet")
    shutil.copy(store / "optuna.db", copy / "optuna.db")
    storage = open_storage(default_storage(copy), heartbeat=10)
    optuna.delete_study(study_name=flip_04.study, storage=storage)
    half = optuna.create_study(study_name=flip_04.study, storage=storage)
    half.add_trial(create_trial(state=TrialState.PRUNED))

    again = sweep_status(suite, store=copy)
    states = {c.cell.label(): (c.state, c.trials) for c in again.cells}
    assert states == {
        "ls / symmetric 0.2": (DONE, 2),
        "ls / symmetric 0.4": (FINAL, 2),
        "flip / symmetric 0.2": (DONE, 2),
        "flip / symmetric 0.4": (TUNING, 1),
    }
    # each unfinished cell costs its method's done pace less what it has spent
    spent_ls = hours_of(copy, ls_04.study)
    assert 0 < spent_ls < ls_04.hours
    expected = max(ls_02.hours - spent_ls, 0.0) + flip_02.hours
    assert again.hours_left() == pytest.approx(expected) and expected > 0


def test_the_pace_falls_back_to_every_done_cell_for_a_method_with_none_done(swept):
    from dataclasses import replace

    store, suite = swept
    status = sweep_status(suite, store=store)
    cells = list(status.cells)
    cells[3] = replace(cells[3], state=NOT_STARTED, trials=0, hours=0.0)
    cells[2] = replace(cells[2], state=NOT_STARTED, trials=0, hours=0.0)
    partial = replace(status, cells=tuple(cells))
    ls_mean = fmean([cells[0].hours, cells[1].hours])
    assert partial.hours_left() == pytest.approx(2 * ls_mean)
    # and the estimate says which methods it guessed at
    assert partial.unmeasured() == ["flip"] and status.unmeasured() == []


def test_the_cli_prints_the_grid_and_json_and_writes_nothing(swept):
    store, suite = swept
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*"))
    runner = CliRunner()
    text = runner.invoke(
        app, ["sweep", "--suite", suite.name, "--store", str(store), "--status"]
    )
    assert text.exit_code == 0, text.output
    assert "tiny: 4/4 cells done" in text.output
    assert "4 done, 0 at their final runs" in text.output
    assert "about 0 min left" in text.output
    out = runner.invoke(
        app,
        ["sweep", "--suite", suite.name, "--store", str(store), "--status", "--json"],
    )
    report = json.loads(out.stdout)
    assert (report["done"], report["total"]) == (4, 4)
    assert {c["state"] for c in report["cells"]} == {DONE}
    assert report["hours_spent"] == pytest.approx(
        sum(hours_of(store, c["study"]) for c in report["cells"])
    )
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*")) == before


def test_an_unreadable_storage_is_a_one_line_error(swept):
    store, suite = swept
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "--suite",
            suite.name,
            "--store",
            str(store),
            "--status",
            "--storage",
            "postgresql+psycopg://u:pw@127.0.0.1:1/none",
        ],
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot read storage") and "pw" not in line


def test_a_heartbeat_below_one_second_is_refused(swept):
    store, suite = swept
    args = ["sweep", "--suite", suite.name, "--store", str(store), "--status"]
    result = CliRunner().invoke(app, [*args, "--heartbeat", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --heartbeat must be >= 1 second, got 0"


# held by hand with `ask`, not `optimize`, so that no heartbeat thread keeps them alive
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_trials_of_a_stopped_worker_are_marked_stale(tmp_path):
    """Three trials held at once: one whose worker beat and then went silent, one
    whose worker died before its first beat, and one beating now. With a 1 s heartbeat,
    silence for over 2 s is stale (SQLite's clock counts whole seconds, hence 3.2 s)."""
    import time

    import optuna

    suite = load_suite(
        write_suite(tmp_path, "held", methods=["ls"], rates=[0.2]), tmp_path
    )
    (study,) = (c.study for c in sweep_status(suite, store=tmp_path).cells)
    storage = open_storage(default_storage(tmp_path), heartbeat=1)
    held = optuna.create_study(study_name=study, storage=storage)
    silenced = held.ask()
    storage.record_heartbeat(silenced._trial_id)
    held.ask()  # never beats
    time.sleep(3.2)
    beating = held.ask()
    storage.record_heartbeat(beating._trial_id)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    (cell,) = sweep_status(suite, store=tmp_path, heartbeat=1).cells
    assert (cell.state, cell.trials, cell.running, cell.stale) == (TUNING, 0, 3, 2)
    # with the default 10 s heartbeat none has been silent long enough
    (patient,) = sweep_status(suite, store=tmp_path).cells
    assert (patient.running, patient.stale) == (3, 0)

    args = ["sweep", "--suite", suite.name, "--store", str(tmp_path), "--status"]
    result = CliRunner().invoke(app, [*args, "--heartbeat", "1"])
    assert result.exit_code == 0, result.output
    assert f"0/{suite.trials}!" in result.output
    assert "1 trial running now" in result.output
    assert "!: 2 trials held by a worker that stopped" in result.output
    report = json.loads(
        CliRunner().invoke(app, [*args, "--heartbeat", "1", "--json"]).stdout
    )
    assert [(c["running"], c["stale"]) for c in report["cells"]] == [(3, 2)]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
