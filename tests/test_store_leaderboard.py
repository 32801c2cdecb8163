"""Records round-trip through the pinned schema atomically; the leaderboard is honest."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import SHA, T0, record

from noisebench import leaderboard as lb
from noisebench.store import SCHEMA, read_records, write_records


def test_round_trip_keeps_schema_and_values(tmp_path):
    rows = [
        record(seed=s, test_acc=0.1 * s, val_acc_curve=[0.1, 0.2]) for s in range(3)
    ]
    path = write_records(rows, tmp_path)
    table = read_records(tmp_path)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.column("test_acc").to_pylist() == pytest.approx([0.0, 0.1, 0.2])
    assert [p.name for p in path.parent.iterdir()] == [
        path.name
    ]  # no temporary left behind
    assert table.column("finished_at").to_pylist()[0] == T0


def test_shards_of_schema_1_read_their_missing_columns_as_null(tmp_path):
    import pyarrow.parquet as pq

    from noisebench.store import ADDED_COLUMNS, runs_dir

    old_schema = pa.schema([f for f in SCHEMA if f.name not in ADDED_COLUMNS])
    rows = [
        {k: v for k, v in record(seed=s).items() if k in old_schema.names}
        for s in (0, 1)
    ]
    runs_dir(tmp_path).mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=old_schema),
        runs_dir(tmp_path) / "old.parquet",
    )
    write_records([record(seed=2, class_map='{"0":1}')], tmp_path)
    table = read_records(tmp_path)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert sorted(table.column("seed").to_pylist()) == [0, 1, 2]
    by_seed = dict(
        zip(table.column("seed").to_pylist(), table.column("class_map").to_pylist())
    )
    assert by_seed == {0: None, 1: None, 2: '{"0":1}'}


def test_rows_that_do_not_fit_the_schema_write_nothing(tmp_path):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_records([record(seed="not an int")], tmp_path)
    assert len(read_records(tmp_path)) == 0


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def half_write(table, where):
        where.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_records([record()], tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []
    assert len(read_records(tmp_path)) == 0


def test_dedupe_keeps_the_newest_record_per_key():
    old, new = (
        record(test_acc=0.1),
        record(test_acc=0.9, finished_at=T0 + timedelta(hours=1)),
    )
    other_seed = record(seed=1)
    kept = lb.dedupe([new, old, other_seed])
    assert sorted((r["seed"], r["test_acc"]) for r in kept) == [(0, 0.9), (1, 0.5)]


@pytest.fixture
def registered(monkeypatch):
    """Registers `ls` (version 2, builtin, source SHA) in a registry of its own, so the
    staleness rules are tested without the real methods' hashes."""
    from types import SimpleNamespace

    from noisebench import registry

    registry.discover()  # now, so that it cannot load the real methods into ours
    fake = registry.Registry("method")
    fake.register(
        "ls",
        SimpleNamespace(
            version=2,
            origin="builtin",
            source_sha=SHA,
            requires=(),
            search_space={"smoothing": None},
        ),
        origin="test",
    )
    monkeypatch.setattr(registry, "METHODS", fake)


def test_stale_method_versions_and_code_are_set_aside(registered):
    other = "fedcba9876543210"
    rows = {
        "current": record(method="ls", method_version=2),
        "old version": record(method="ls", method_version=1),
        "other code": record(method="ls", method_version=2, method_sha=other),
        "schema 2": record(
            method="ls", method_version=2, method_origin=None, method_sha=None
        ),
        # another origin's code cannot be compared with ours: only its version counts
        "plugin": record(
            method="ls",
            method_version=2,
            method_origin="entry-point:lsplug",
            method_sha=other,
        ),
        "plugin, old version": record(
            method="ls", method_version=1, method_origin="entry-point:lsplug"
        ),
        # an unknown method's rows are shown, not judged, whatever they say
        "not installed": record(method="gone", method_sha=None, method_origin=None),
    }
    for name, row in rows.items():
        row["run_id"] = name
    current, stale = lb.split_stale(rows.values())
    assert sorted(r["run_id"] for r in current) == [
        "current",
        "not installed",
        "plugin",
    ]
    assert sorted(r["run_id"] for r in stale) == [
        "old version",
        "other code",
        "plugin, old version",
        "schema 2",
    ]


def test_runs_of_another_engine_revision_are_stale_whatever_their_method(
    registered, monkeypatch
):
    from noisebench import __version__, records

    revisions = {__version__: 1, "0.0.9": 1, "0.0.1": 0}
    monkeypatch.setattr(records, "ENGINE_REVISIONS", revisions)
    rows = {
        "current": record(method="ls", method_version=2),
        # a release whose engine gives the same results: its board is still ours
        "same engine": record(
            method="ls", method_version=2, noisebench_version="0.0.9"
        ),
        "old engine": record(method="ls", method_version=2, noisebench_version="0.0.1"),
        "unknown release": record(
            method="ls", method_version=2, noisebench_version="2.0"
        ),
        "no release": record(method="ls", method_version=2, noisebench_version=None),
        "not installed, old engine": record(method="gone", noisebench_version="0.0.1"),
    }
    for name, row in rows.items():
        row["run_id"] = name
    current, stale = lb.split_stale(rows.values())
    assert sorted(r["run_id"] for r in current) == ["current", "same engine"]
    assert sorted(r["run_id"] for r in stale) == [
        "no release",
        "not installed, old engine",
        "old engine",
        "unknown release",
    ]
    text = "\n".join(lb.markdown.render_stale(stale))
    assert "| ls | builtin | v2 01234567 | v2 01234567 | 0.0.1 (engine 0) | 1 |" in text
    assert (
        "| ls | builtin | v2 01234567 | v2 01234567 | 2.0 (engine unknown) | 1 |"
        in text
    )
    assert (
        "| gone | builtin | v1 01234567 | not registered | 0.0.1 (engine 0) | 1 |"
        in text
    )


def test_the_page_names_the_engine_revision_of_its_numbers(monkeypatch, tmp_path):
    from noisebench import __version__, records

    revisions = {"0.0.9": 1, __version__: 2, "9.9.9": 2}
    monkeypatch.setattr(records, "ENGINE_REVISIONS", revisions)
    text = lb.build(tmp_path, write_plots=False)
    line = f"engine revision 2 (releases {__version__}, 9.9.9)"
    assert line in text
    # inside the "how to read it" list, not after it
    assert f"split.\n- Every run in the tables was made by noisebench {line}" in text


def test_this_release_has_an_engine_revision_and_is_the_packaged_one():
    """A release bump that forgets ENGINE_REVISIONS would make every record stale."""
    from noisebench import __version__
    from noisebench.data.cards import tomllib
    from noisebench.records import ENGINE_REVISIONS, same_engine

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["version"] == __version__
    assert __version__ in ENGINE_REVISIONS and same_engine(__version__)


def test_stale_runs_are_listed_apart_on_the_page(registered, tmp_path):
    write_records(
        [record(method="ls", method_version=2, seed=s) for s in (0, 1)]
        + [record(method="ls", method_version=2, method_sha=None, seed=2)]
        # a stale tuning trial would not have been shown anyway
        + [record(method="ls", method_version=1, phase="tune", seed=3)],
        tmp_path,
    )
    text = lb.build(tmp_path, write_plots=False)
    # a column of one method is ranked, never marked: there is no contest
    assert "| ls | 50.0 ± 0.0 (2) #1 | 1.00 |" in text
    stale = text[text.index("## Stale runs") :]
    assert "| ls | builtin | v2 none | v2 01234567 | 0.1.0 | 1 |" in stale
    assert text.endswith("2 runs shown; 1 stale runs listed apart.\n")


def test_one_method_name_from_two_origins_is_two_rows():
    rows = [record(method="ls", seed=s, test_acc=0.8) for s in (0, 1)]
    rows += [
        record(
            method="ls",
            method_origin="entry-point:ls-plugin",
            config_hash="c-plugin",
            seed=s,
            test_acc=0.4,
        )
        for s in (0, 1)
    ]
    text = lb.render_markdown(rows)
    assert "| ls | **80.0 ± 0.0** (2) #1 | 1.00 |" in text
    assert "| ls \\[entry-point:ls-plugin\\] | 40.0 ± 0.0 (2) #2 | 2.00 |" in text


def test_legacy_rows_without_an_origin_are_labelled_plainly():
    rows = [
        record(method="gone", method_origin=None, method_sha=None, seed=s)
        for s in (0, 1)
    ]
    assert "| gone | 50.0 ± 0.0 (2) #1 | 1.00 |" in lb.render_markdown(rows)


def test_stat_is_mean_and_sample_std():
    values = [0.61, 0.64, 0.7, 0.55]
    s = lb.Stat.of(values)
    assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(
        np.std(values, ddof=1)
    )
    assert s.n == 4 and np.isnan(lb.Stat.of([0.5]).std)


def test_incomplete_and_diverged_cells_are_never_averaged():
    rows = [
        record(method="ce", seed=0, run_seeds=[0, 1, 2]),  # seeds 1 and 2 missing
        record(method="ls", seed=0, test_acc=0.7),
        record(method="ls", seed=1, status="diverged", test_acc=None),
        record(method="gls", seed=0, test_acc=0.8),
        record(method="gls", seed=1, test_acc=0.6),
    ]
    text = lb.render_markdown(rows)
    assert "| ce | — (1/3) |  |" in text
    assert "| ls | diverged 1/2 |  |" in text
    assert "| gls | 70.0 ± 14.1 (2) #1 | 1.00 |" in text


def test_a_significantly_best_cell_is_bold_per_column():
    rows = [
        record(method=m, seed=s, noise_rate=r, test_acc=acc + 0.01 * s)
        for m, acc in (("ce", 0.5), ("ls", 0.6))
        for s in (0, 1)
        for r in (0.2, 0.4)
    ]
    rows += [record(method="ce", seed=s, noise_rate=0.6, test_acc=0.3) for s in (0, 1)]
    text = lb.render_markdown(rows)
    # ls beats ce by 0.1 on each shared noise seed: no spread, p = 0
    assert (
        "| ce | 50.5 ± 0.7 (2) #2 | 50.5 ± 0.7 (2) #2 | 30.0 ± 0.0 (2) #1 | 1.67 |"
        in text
    )
    assert "| ls | **60.5 ± 0.7** (2) #1 | **60.5 ± 0.7** (2) #1 | · |  |" in text


def test_rendering_is_deterministic_and_order_free():
    rows = [
        record(method=m, seed=s, noise_rate=r)
        for m in ("ce", "ls")
        for s in (0, 1)
        for r in (0.2, 0.4)
    ]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert lb.render_markdown(rows) == lb.render_markdown(shuffled)


def test_tuning_rows_stay_off_the_tables():
    text = lb.render_markdown([record(phase="tune", seed=s) for s in (0, 1)])
    assert "| ce |" not in text


def test_user_strings_are_escaped():
    name = "evil|name*<script>"
    rows = [
        record(method=name, params=json.dumps({"a|b": "x_y"}), seed=s) for s in (0, 1)
    ]
    text = lb.render_markdown(rows)
    assert "evil\\|name\\*\\<script\\>" in text and "<script>" not in text
    assert "a\\|b=x\\_y" in text


def test_tuned_runs_share_one_row_per_method():
    rows = [
        record(
            method="ls",
            phase="final",
            params=json.dumps({"smoothing": a}),
            noise_rate=r,
            seed=s,
            study=f"st{r}",
        )
        for r, a in ((0.2, 0.31), (0.4, 0.62))
        for s in (0, 1)
    ]
    rows += [
        record(method="ls", params=json.dumps({"smoothing": 0.1}), seed=s)
        for s in (0, 1)
    ]
    text = lb.render_markdown(rows)
    tuned = text[text.index("### Tuned") :]
    assert "| ls (tuned) | 50.0 ± 0.0 (2) #1 | 50.0 ± 0.0 (2) #1 | 1.00 |" in tuned
    as_run = text[: text.index("### Tuned")]
    assert "| ls (smoothing=0.1) | 50.0 ± 0.0 (2) #1 | · |  |" in as_run
    assert "(tuned)" not in as_run and "smoothing=0.1" not in tuned


def test_estimated_t_runs_are_their_own_row():
    rows = [
        record(method="forward", transition_source="oracle", test_acc=0.8, seed=s)
        for s in (0, 1)
    ]
    rows += [
        record(
            method="forward",
            config_hash="c-est",
            transition_source="estimated",
            test_acc=0.7,
            seed=s,
        )
        for s in (0, 1)
    ]
    text = lb.render_markdown(rows)
    # the oracle T is an upper bound, shown apart; the estimate competes
    assert "| forward \\[estimated T\\] | 70.0 ± 0.0 (2) #1 | 1.00 |" in text
    upper = text[text.index("*upper bounds: T known, not ranked*") :]
    assert "| forward | 80.0 ± 0.0 (2) |  |" in upper


def test_asymmetric_runs_with_different_class_maps_never_share_a_table():
    def asym(class_map, seed):
        return record(
            noise_type="asymmetric",
            class_map=class_map,
            config_hash=f"c-{class_map}",
            seed=seed,
        )

    rows = [asym('{"2":7,"3":8}', s) for s in (0, 1)]
    rows += [asym('{"5":6,"6":5}', s) for s in (0, 1)]
    rows += [asym(None, s) for s in (0, 1)]  # written before schema 2
    tables = lb.boards(rows)
    assert sorted(b.noise_detail for b in tables) == [
        "class map 2→7, 3→8",
        "class map 5→6, 6→5",
        "class map not recorded (schema 1)",
    ]
    assert all(len(next(iter(b.cells.values()))[0.2].records) == 2 for b in tables)
    assert len({b.slug for b in tables}) == 3
    assert "class map 2→7, 3→8" in lb.render_markdown(rows)


def test_the_setup_line_names_the_recipe():
    """Two boards that differ only in their SGD recipe must not read alike."""
    from noisebench.leaderboard import describe_setup

    base = {
        "model": "resnet32",
        "hidden": [16, 32, 64],
        "epochs": 200,
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 128,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "val_fraction": 0.1,
    }
    plain = describe_setup(json.dumps(base))
    recipe = describe_setup(
        json.dumps(
            base
            | {
                "nesterov": True,
                "schedule": "step",
                "milestones": [100, 150],
                "gamma": 0.1,
            }
        )
    )
    assert plain == (
        "resnet32 16-32-64, 200 epochs, sgd lr 0.1, batch 128, momentum 0.9, "
        "wd 0.0001, 0.1 noisy validation"
    )
    assert recipe == (
        "resnet32 16-32-64, 200 epochs, sgd lr 0.1, batch 128, Nesterov momentum 0.9, "
        "wd 0.0001, lr x0.1 at epochs 100,150, 0.1 noisy validation"
    )
    cosine = describe_setup(json.dumps(base | {"schedule": "cosine"}))
    assert cosine.endswith("wd 0.0001, cosine schedule, 0.1 noisy validation")


def test_the_setup_line_says_how_much_of_training_is_a_ce_warm_up():
    from noisebench.leaderboard import describe_setup

    config = {
        "model": "mlp",
        "hidden": [8],
        "epochs": 100,
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 32,
        "val_fraction": 0.1,
    }
    assert describe_setup(json.dumps(config | {"warmup": 0.5})) == (
        "mlp 8, 100 epochs, adam lr 0.001, batch 32, CE for the first 50% of epochs,"
        " 0.1 noisy validation"
    )
    assert "CE" not in describe_setup(json.dumps(config | {"warmup": 0.0}))
