"""Tuning: fair by construction, resumable, and shared by workers through a database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import finish, spawn, write_suite

from noisebench.data import resolve_card
from noisebench.errors import UserError
from noisebench.experiment import RunSpec, train_config_for
from noisebench.noise import NoiseSpec
from noisebench.store import read_records
from noisebench.tune import TuneSpec, default_storage, open_storage, tune

FAST_TRAIN = {"epochs": 4, "hidden": (32,)}


def spec_for(method="ls", rate=0.4, trials=4, **kw) -> TuneSpec:
    train = train_config_for(resolve_card("digits"), **FAST_TRAIN)
    base = RunSpec(
        method=method,
        params={},
        dataset="digits",
        noise=NoiseSpec("symmetric", rate),
        train=train,
    )
    return TuneSpec(
        base=base, trials=trials, tune_seeds=1, final_seeds=2, heartbeat=1, **kw
    )


def trials_of(result):
    return sorted(result.trials, key=lambda t: t.number)


def test_trial_zero_is_the_defaults_and_the_budget_is_exact(tmp_path):
    result = tune(spec_for(trials=5), store=tmp_path)
    trials = trials_of(result)
    assert trials[0].params == {"smoothing": 0.1} and trials[0].user_attrs["defaults"]
    assert len(trials) == 5
    # the pruner sees the running best noisy-validation accuracy after every epoch
    curve = [
        trials[0].intermediate_values[e] for e in sorted(trials[0].intermediate_values)
    ]
    assert len(curve) == FAST_TRAIN["epochs"] and curve == sorted(curve)
    assert trials[0].value == pytest.approx(curve[-1])
    assert [r["phase"] for r in result.final] == ["final", "final"]
    assert [r["seed"] for r in result.final] == [0, 1]  # fresh seeds: tuning used 1000
    assert all(
        r["study"] == result.study and r["trial"] == result.best_trial
        for r in result.final
    )
    assert result.best_params == max(result.trials, key=lambda t: t.value).params


def test_the_test_split_is_never_read_while_tuning(tmp_path, monkeypatch):
    """Poison the test set: the trial values must not move, while the final runs do."""
    clean = tune(spec_for(), store=tmp_path / "clean")

    from noisebench import experiment

    real = experiment.load_dataset

    def poisoned(card):
        ds = real(card)
        rng = np.random.default_rng(0)
        return replace(
            ds,
            x_test=np.full_like(ds.x_test, np.nan),
            y_test=rng.permutation(ds.y_test),
        )

    monkeypatch.setattr(experiment, "load_dataset", poisoned)
    dirty = tune(spec_for(), store=tmp_path / "dirty")
    assert [t.value for t in trials_of(dirty)] == [t.value for t in trials_of(clean)]
    assert [t.params for t in trials_of(dirty)] == [t.params for t in trials_of(clean)]
    assert all(
        np.isnan(r["test_acc_at_best_val"]) or r["test_acc_at_best_val"] < 0.5
        for r in dirty.final
    )
    tune_rows = [
        r for r in read_records(tmp_path / "dirty").to_pylist() if r["phase"] == "tune"
    ]
    assert tune_rows and all(r["test_acc"] is None for r in tune_rows)


def test_rerunning_resumes_and_a_finished_study_is_not_rerun(tmp_path):
    first = tune(spec_for(trials=3), store=tmp_path)
    second = tune(spec_for(trials=3), store=tmp_path)
    assert [t.number for t in trials_of(second)] == [t.number for t in trials_of(first)]
    assert second.final_was_cached and not first.final_was_cached
    more = tune(spec_for(trials=5), store=tmp_path)  # a larger budget extends the study
    assert len(more.trials) == 5
    assert all(r["trial"] == more.best_trial for r in more.final)  # finals of the best


def test_final_runs_in_the_store_spare_a_lost_study(tmp_path):
    first = tune(spec_for(trials=3), store=tmp_path)
    (tmp_path / "optuna.db").unlink()  # the study is gone, its results are not
    rows = read_records(tmp_path).num_rows
    again = tune(spec_for(trials=3), store=tmp_path)
    assert again.final_was_cached and again.best_params == first.best_params
    assert read_records(tmp_path).num_rows == rows  # no trial and no final ran again


def test_a_study_name_of_another_spec_is_refused(tmp_path):
    result = tune(spec_for(trials=2), store=tmp_path)
    with pytest.raises(UserError, match="belongs to a different spec"):
        tune(spec_for(trials=2, rate=0.2, study=result.study), store=tmp_path)


def test_local_workers_share_one_study(tmp_path):
    result = tune(spec_for(trials=4), store=tmp_path, workers=2)
    assert len(result.trials) == 4
    assert len({json.dumps(t.params, sort_keys=True) for t in result.trials}) == 4


def test_empty_search_space_skips_the_search(tmp_path):
    result = tune(spec_for(method="ce"), store=tmp_path)
    assert result.trials == [] and result.best_trial is None and len(result.final) == 2


@pytest.mark.parametrize(
    "url", ["sqlite", "not a url", "postgresql+psycopg://u:pw@127.0.0.1:1/x"]
)
def test_bad_storage_urls(tmp_path, url):
    if url == "sqlite":
        assert open_storage(default_storage(tmp_path), heartbeat=1) is not None
        return
    with pytest.raises(UserError, match="cannot open storage") as err:
        open_storage(url, heartbeat=1)
    assert "pw" not in str(err.value)  # passwords are never printed


def test_trials_must_be_positive():
    with pytest.raises(UserError, match="--trials must be >= 1"):
        spec_for(trials=0)


def test_sweep_twice_does_no_work_the_second_time(tmp_path, monkeypatch):
    import noisebench.store
    from noisebench.sweep import load_suite, sweep

    name = write_suite(tmp_path, "tiny", methods=["ce", "ls"], rates=[0.2, 0.4])
    suite = load_suite(name, tmp_path)
    first = sweep(suite, store=tmp_path)
    rows = len(read_records(tmp_path))
    reads = []
    monkeypatch.setattr(
        noisebench.store,
        "read_records",
        lambda *a, **k: reads.append(a) or read_records(*a, **k),
    )
    second = sweep(suite, store=tmp_path)
    # the finished cells' results come from one read of the store, not one per cell
    # (a 90-cell sweep over a 2,000-shard store took 14 minutes to say it had no work)
    assert len(reads) == 1
    assert all(c.ran for c in first) and not any(c.ran for c in second)
    assert len(read_records(tmp_path)) == rows
    assert [c.final[0]["run_id"] for c in second] == [
        c.final[0]["run_id"] for c in first
    ]
    final = [r for r in read_records(tmp_path).to_pylist() if r["phase"] == "final"]
    assert len(final) == 4 * 2


# --- several worker processes on one study -------------------------------------------


def postgres_url() -> str:
    url = os.environ.get("NOISEBENCH_TEST_POSTGRES")
    if not url:
        pytest.skip(
            "NOISEBENCH_TEST_POSTGRES is unset (.ci/run sets it when PostgreSQL can be started)"
        )
    return url


def worker(url: str, store, study: str, trials: int) -> subprocess.Popen:
    return spawn(
        *("tune", "--method", "ls", "--noise", "0.4", "--epochs", "60"),
        *("--hidden", "64", "--tune-seeds", "2", "--final-seeds", "1"),
        *("--trials", str(trials), "--storage", url, "--study", study),
        *("--heartbeat", "1", "--no-prune", "--store", str(store), "--json"),
    )


def kill_one_mid_trial(url: str, store, study_name: str, budget: int):
    """Start two workers, SIGKILL one while both run a trial, let the other finish.
    Returns (the survivor's stdout, whether a trial was left behind by the killed one)."""
    import optuna
    from optuna.trial import TrialState

    a = worker(url, store, study_name, budget)
    b = worker(url, store, study_name, budget)
    storage = open_storage(url, heartbeat=1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            trials = optuna.load_study(
                study_name=study_name, storage=storage
            ).get_trials()
        except KeyError:
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if any(t.state == TrialState.COMPLETE for t in trials) and len(running) == 2:
            a.send_signal(signal.SIGKILL)
            break
    else:
        pytest.fail("never saw both workers in the middle of a trial")
    out, err = finish(b)
    a.wait()
    assert b.returncode == 0, err
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    orphaned = [
        t
        for t in trials
        if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")
    ]
    return out, trials, orphaned


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_share_a_study_and_a_killed_workers_trial_is_retried(
    tmp_path, backend
):
    from optuna.trial import TrialState

    url = default_storage(tmp_path) if backend == "sqlite" else postgres_url()
    budget = 6
    for attempt in range(3):  # the kill may land just after a trial finished: try again
        study_name = f"shared-{backend}-{os.getpid()}-{time.time_ns()}"
        out, trials, orphaned = kill_one_mid_trial(url, tmp_path, study_name, budget)
        if orphaned:
            break
    assert orphaned, "three kills in a row landed between trials"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget  # exactly the budget: none lost, none extra
    # the killed worker's trial ran again, with its params if it had drawn them already
    for lost in orphaned:
        retry = [
            t for t in complete if t.system_attrs.get("failed_trial") == lost.number
        ]
        assert len(retry) == 1 and (retry[0].params == lost.params or not lost.params)
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == budget
    assert json.loads(out)["final"]["summary"]["test_acc"]["n"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--storage", "not a url"], "cannot open storage"),
        (
            ["--storage", "postgresql+psycopg://u:pw@127.0.0.1:1/x"],
            "cannot open storage",
        ),
        (["--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_tune_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    from typer.testing import CliRunner

    from noisebench.cli import app

    result = CliRunner().invoke(
        app, ["tune", "--method", "ls", "--store", str(tmp_path), *args]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line and "pw" not in line
    assert read_records(tmp_path).num_rows == 0


def test_two_sweep_workers_split_the_cells_without_running_one_twice(tmp_path):
    name = write_suite(
        tmp_path, "pair", methods=["ce", "ls"], rates=[0.2, 0.4], epochs=20, hidden=32
    )
    workers = [
        spawn("sweep", "--suite", name, "--store", str(tmp_path), "--json")
        for _ in range(2)
    ]
    outputs = [finish(w) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    ran = [sum(c["ran"] for c in json.loads(out)["cells"]) for out, _ in outputs]
    assert sum(ran) == 4  # every cell ran exactly once, in one of the two workers
    rows = read_records(tmp_path).to_pylist()
    final = [(r["study"], r["seed"]) for r in rows if r["phase"] == "final"]
    assert len(final) == len(set(final)) == 4 * 2


def test_a_suite_can_run_methods_with_an_estimated_t(tmp_path):
    from noisebench.sweep import load_suite, sweep

    name = write_suite(
        tmp_path,
        "est",
        methods=["forward"],
        estimated=["forward"],
        noise="pairflip",
        rates=[0.3],
    )
    suite = load_suite(name, tmp_path)
    assert [c.label() for c in suite.cells()] == [
        "forward / pairflip 0.3",
        "forward [estimated T] / pairflip 0.3",
    ]
    oracle, estimated = sweep(suite, store=tmp_path)
    assert oracle.study != estimated.study
    assert {r["transition_source"] for r in oracle.final} == {"oracle"}
    assert {r["transition_source"] for r in estimated.final} == {"estimated"}
    assert all(r["transition_error"] is not None for r in estimated.final)


def test_a_sweep_redoes_final_runs_missing_from_its_store(tmp_path):
    """A finished cell whose final records are not in this store (deleted shards, or
    another --store on the same storage) gets them again, from its finished study."""
    from noisebench.sweep import load_suite, sweep

    suite = load_suite(
        write_suite(tmp_path, "one", methods=["ls"], rates=[0.4]), tmp_path
    )
    (first,) = sweep(suite, store=tmp_path)
    for shard in (tmp_path / "runs").glob("*.parquet"):
        shard.unlink()
    (again,) = sweep(suite, store=tmp_path, storage=default_storage(tmp_path))
    assert again.ran and again.study == first.study
    assert again.best_params == first.best_params
    assert [r["test_acc"] for r in again.final] == [r["test_acc"] for r in first.final]
    assert len(read_records(tmp_path)) == 2  # the two final seeds, and no new trials


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried(tmp_path):
    """Optuna never takes a trial without any heartbeat as stale, so a worker killed
    between creating a trial and its first beat left the study unable to finish (the
    survivor of the kill test once waited for ever). Ours does, after the grace period."""
    import optuna
    from optuna.trial import TrialState

    url = default_storage(tmp_path)
    storage = open_storage(url, heartbeat=1)
    study = optuna.create_study(storage=storage, study_name="s")
    study_id = storage.get_study_id_from_name("s")
    dead = storage.create_new_trial(study_id)  # RUNNING, and it never beats
    time.sleep(2.5)  # past the 2 s grace period
    alive = storage.create_new_trial(study_id)  # just started: not stale yet
    stock = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
    assert stock._get_stale_trial_ids(study_id) == []  # upstream: never stale
    optuna.storages.fail_stale_trials(study)
    assert storage.get_trial(dead).state == TrialState.FAIL
    assert storage.get_trial(alive).state == TrialState.RUNNING
    # and the retry callback queued the dead trial again
    assert [t.state for t in study.get_trials()].count(TrialState.WAITING) == 1


def test_a_failed_cell_says_why_and_the_same_command_retries_it(tmp_path, monkeypatch):
    import noisebench.tune
    from noisebench.sweep import load_suite, sweep

    name = write_suite(tmp_path, "flaky", methods=["ce", "ls"], rates=[0.2])
    suite = load_suite(name, tmp_path)
    real = noisebench.tune.tune

    def flaky(spec, **kw):
        if spec.base.method == "ls":
            raise RuntimeError("out of disk, say")
        return real(spec, **kw)

    monkeypatch.setattr(noisebench.tune, "tune", flaky)
    with pytest.raises(UserError) as err:
        sweep(suite, store=tmp_path)
    message = str(err.value)
    assert "ls / symmetric 0.2 (RuntimeError: out of disk, say)" in message
    assert "ce /" not in message and "retries" in message
    monkeypatch.setattr(noisebench.tune, "tune", real)
    cells = sweep(suite, store=tmp_path)  # before the fix: "cells failed" for ever
    assert [(c.cell.method, c.ran, len(c.final)) for c in cells] == [
        ("ce", False, 2),
        ("ls", True, 2),
    ]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test asks by hand
def test_a_cell_left_failed_by_killed_workers_is_queued_again(tmp_path):
    """Four kills used to exhaust the retries of a cell's trial, after which every
    rerun exited with 'cells failed'. A killed worker is not a failed cell."""
    from optuna.trial import TrialState

    from noisebench.sweep import _open_sweep_study, load_suite, sweep

    name = write_suite(tmp_path, "killed", methods=["ce"], rates=[0.2])
    suite = load_suite(name, tmp_path)
    study = _open_sweep_study(
        suite, open_storage(default_storage(tmp_path), heartbeat=1), 1
    )
    # what the fourth kill left: the cell's trial failed, and no retry queued
    trial = study.ask()
    assert trial.user_attrs["cell"] == 0
    study.tell(trial, state=TrialState.FAIL)
    (cell,) = sweep(suite, store=tmp_path)
    assert cell.ran and len(cell.final) == 2


@pytest.mark.parametrize(
    "workers, cores, threads", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)]
)
def test_local_workers_share_the_cores(workers, cores, threads):
    from noisebench.tune import worker_threads

    assert worker_threads(workers, cores) == threads
    assert worker_threads(workers) >= 1  # this machine's own cores


# --- a creator killed between creating its study and filling it ------------------------


@pytest.fixture
def short_wait(monkeypatch):
    """Joiners wait 30 s for a study's creator to finish filling it; here, 0.5 s."""
    from noisebench import tune as tune_module

    real = tune_module.wait_for_attr
    monkeypatch.setattr(
        tune_module, "wait_for_attr", lambda study, key: real(study, key, seconds=0.5)
    )


def test_a_study_whose_creator_was_killed_before_signing_it_is_finished(
    tmp_path, short_wait
):
    """Killed after create_study, before the defaults were queued and the spec
    signed: the next run used to refuse the study as another spec's for ever."""
    import optuna

    from noisebench.tune import study_name, tuning_run

    spec = spec_for(trials=3)
    name = study_name(spec, tuning_run(spec))
    storage = open_storage(default_storage(tmp_path), heartbeat=1)
    optuna.create_study(storage=storage, study_name=name, direction="maximize")
    result = tune(spec, store=tmp_path)
    trials = trials_of(result)
    assert len(trials) == 3 and trials[0].user_attrs["defaults"]
    assert trials[0].params == {"smoothing": 0.1}
    assert sum(bool(t.user_attrs.get("defaults")) for t in trials) == 1


def test_a_sweep_whose_creator_was_killed_while_queueing_its_cells_is_finished(
    tmp_path, short_wait
):
    """Killed after queueing 1 of 3 cells: the next run used to stop with 'never
    filled with its cells'. Found by the kill test on a loaded machine."""
    import optuna

    from noisebench.sweep import load_suite, sweep

    suite = load_suite(
        write_suite(tmp_path, "three", methods=["ce"], rates=[0.2, 0.4, 0.6]), tmp_path
    )
    storage = open_storage(default_storage(tmp_path), heartbeat=1)
    study = optuna.create_study(
        storage=storage,
        study_name=f"sweep-{suite.name}-{suite.sha()}",
        direction="maximize",
    )
    study.enqueue_trial({}, user_attrs={"cell": 0})
    cells = sweep(suite, store=tmp_path)
    assert [c.cell.rate for c in cells] == [0.2, 0.4, 0.6]
    assert all(c.final for c in cells)
    final = [r for r in read_records(tmp_path).to_pylist() if r["phase"] == "final"]
    assert sorted(r["noise_rate"] for r in final) == [0.2, 0.2, 0.4, 0.4, 0.6, 0.6]


def test_a_failed_test_leaves_no_spawned_process_running():
    """The conftest fixture's guarantee, checked on a process that would outlive any test."""
    from helpers import reap_spawned

    proc = spawn("evaluate", "--method", "ce", "--epochs", "100000", "--no-record")
    assert proc.poll() is None
    assert reap_spawned() == [proc.pid]
    assert proc.returncode == -signal.SIGKILL  # killed, not exited on its own
