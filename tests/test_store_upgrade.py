"""One schema per store: `noisebench store upgrade` rewrites the shards of older schemas
in place and atomically, so that readers taking one file's schema for all (polars)
read the whole store; `check_uniform` says when a store needs it."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import helpers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shards import bad_shard, dead_pid, write_raw
from typer.testing import CliRunner

from noisebench import store as st
from noisebench.cli import app
from noisebench.errors import UserError
from noisebench.store import (
    ADDED_IN,
    SCHEMA,
    SCHEMA_VERSION,
    check_uniform,
    read_records,
    runs_dir,
    shard_schema_version,
    upgrade_store,
    write_records,
)

METHOD = "upgrade_fake"  # not a registered method: its rows are shown whatever


def layout(version: int, *, metadata: bool = True) -> pa.Schema:
    """SCHEMA as schema `version` wrote it: without the columns added after it."""
    old = pa.schema([f for f in SCHEMA if ADDED_IN.get(f.name, 1) <= version])
    meta = {"noisebench_schema_version": str(version)} if metadata else None
    return old.with_metadata(meta)


def rows_of(version: int, seeds: tuple[int, ...]) -> list[dict]:
    """Rows as schema `version` wrote them, with a value in every column it had."""
    full = {
        "schema_version": version,
        "class_map": '{"1": 2}',
        "method_origin": "builtin",
        "method_sha": helpers.SHA,
        "model_params": 1234,
        "input_shape": [64],
        "confusion": [5, 1, 2, 6],
        "mem_noisy_curve": [0.25, 0.5],
        "mem_clean_curve": [0.75, 0.5],
        "reliability_count": [3, 4],
        "reliability_correct": [1, 2],
        "reliability_confidence": [0.5, 1.5],
        "val_acc_curve": [0.1, 0.2],
        "teacher": '{"method": "ls"}',
    }
    names = layout(version).names
    rows = []
    for s in seeds:
        row = helpers.record(method=METHOD, seed=s, run_id=f"v{version}-{s}", **full)
        rows.append({k: v for k, v in row.items() if k in names})
    return rows


def mixed_store(root: Path) -> Path:
    """Shards of schemas 1 to 4 (named to sort first, as polars would meet them), one
    of schema 1 that another tool wrote without our metadata, and two current ones."""
    store = root / "store"
    for version in (1, 2, 3, 4):
        write_raw(
            store, f"0-v{version}.parquet", rows_of(version, (0, 1)), layout(version)
        )
    write_raw(store, "0-v1-bare.parquet", rows_of(1, (2,)), layout(1, metadata=False))
    write_records(rows_of(SCHEMA_VERSION, (0, 1)), store)
    write_records(rows_of(SCHEMA_VERSION, (2,)), store)
    return store


def shards(store: Path) -> list[Path]:
    return sorted(runs_dir(store).glob("*.parquet"))


def snapshot(store: Path) -> dict[str, tuple[str, int]]:
    """Every file of the runs folder (hidden ones too): its hash and mtime."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in runs_dir(store).iterdir()
    }


def file_schema(path: Path) -> pa.Schema:
    return pq.read_schema(path)


def written_schema() -> pa.Schema:
    """SCHEMA as a Parquet file gives it back (lists' item fields renamed)."""
    buffer = io.BytesIO()
    pq.write_table(SCHEMA.empty_table(), buffer)
    return pq.read_schema(io.BytesIO(buffer.getvalue()))


def concat_as_polars_does(store: Path) -> pa.Table:
    """Every shard taken in the first shard's schema, as polars reads a glob."""
    paths = shards(store)
    first = file_schema(paths[0])
    return pa.concat_tables([pq.read_table(p).cast(first) for p in paths])


def temporaries(store: Path) -> list[str]:
    return [p.name for p in runs_dir(store).iterdir() if p.name.startswith(".")]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# what the files say


def test_shard_schema_version_reads_metadata_or_infers_it(tmp_path):
    store = mixed_store(tmp_path)
    versions = {p.name: shard_schema_version(p) for p in shards(store)}
    assert versions["0-v1-bare.parquet"] == 1
    assert [versions[f"0-v{v}.parquet"] for v in (1, 2, 3, 4)] == [1, 2, 3, 4]
    current = [v for n, v in versions.items() if not n.startswith("0-")]
    assert current == [SCHEMA_VERSION] * 2
    # another tool's files, without our metadata
    for version in range(2, SCHEMA_VERSION + 1):
        path = write_raw(
            store,
            f"bare{version}.parquet",
            rows_of(version, (9,)),
            layout(version, metadata=False),
        )
        assert shard_schema_version(path) == version
    # the rows' own version when it is newer than the columns tell
    path = write_raw(store, "rows.parquet", rows_of(1, (9,)), layout(1, metadata=False))
    table = pq.read_table(path).set_column(
        0, SCHEMA.field("schema_version"), pa.array([4], pa.int32())
    )
    pq.write_table(table.replace_schema_metadata(None), path)
    assert shard_schema_version(path) == 4


def test_shard_schema_version_of_a_file_that_is_not_parquet_raises(tmp_path):
    path, _ = bad_shard("corrupt", tmp_path, tmp_path)
    with pytest.raises((pa.ArrowException, OSError)):
        shard_schema_version(path)


# check_uniform


def test_a_mixed_store_is_refused_in_one_line_naming_its_versions(tmp_path):
    store = mixed_store(tmp_path)
    with pytest.raises(UserError) as err:
        check_uniform(store)
    assert str(err.value) == (
        f"store {store} mixes shard schemas (v1: 2 shards, v2: 1 shard, v3: 1 shard, "
        f"v4: 1 shard, v{SCHEMA_VERSION}: 2 shards): "
        f"run `noisebench store upgrade --store {store}`"
    )


def test_a_store_of_one_older_schema_is_refused_too(tmp_path):
    write_raw(tmp_path, "a.parquet", rows_of(3, (0,)), layout(3))
    write_raw(tmp_path, "b.parquet", rows_of(3, (1,)), layout(3))
    with pytest.raises(UserError) as err:
        check_uniform(tmp_path)
    message = str(err.value)
    assert f"(v3: 2 shards; current is v{SCHEMA_VERSION})" in message
    assert "\n" not in message
    assert message.endswith(f"run `noisebench store upgrade --store {tmp_path}`")


def test_check_uniform_passes_current_missing_and_skipped_shards(tmp_path):
    check_uniform(tmp_path / "nothing here")
    write_records(rows_of(SCHEMA_VERSION, (0,)), tmp_path)
    check_uniform(tmp_path)
    for kind in ("corrupt", "empty", "foreign", "status"):
        bad_shard(kind, tmp_path, tmp_path)
    # an old-layout shard that readers skip is theirs to report, not an old schema
    rows = rows_of(2, (5,))
    rows[0]["status"] = "okay"
    write_raw(tmp_path, "old-bad.parquet", rows, layout(2))
    check_uniform(tmp_path)


# upgrade


def test_upgrade_rewrites_old_shards_in_the_current_schema_keeping_every_value(
    tmp_path,
):
    store = mixed_store(tmp_path)
    with pytest.raises((pa.ArrowException, ValueError)):
        concat_as_polars_does(store)
    before = read_records(store)
    names = [p.name for p in shards(store)]
    versions = {p.name: shard_schema_version(p) for p in shards(store)}

    report = upgrade_store(store)

    assert {p.name: v for p, v in report.upgraded.items()} == {
        n: v for n, v in versions.items() if n.startswith("0-")
    }
    assert report.current == 2 and report.skipped == [] and not report.dry_run
    assert [p.name for p in shards(store)] == names  # same files, same names
    reference = written_schema()
    for path in shards(store):
        schema = file_schema(path)
        assert schema.equals(reference, check_metadata=False), path.name
        assert (
            schema.metadata[b"noisebench_schema_version"]
            == str(SCHEMA_VERSION).encode()
        )
        table = pq.read_table(path)
        newer = [n for n, v in ADDED_IN.items() if v > versions[path.name]]
        for name in newer:  # the columns added since are null in old rows
            assert table.column(name).null_count == table.num_rows, (path.name, name)
    after = read_records(store)
    assert after.schema.equals(before.schema)
    assert after.to_pylist() == before.to_pylist()  # same rows, order and values
    by_run = dict(zip(after["run_id"].to_pylist(), after["schema_version"].to_pylist()))
    assert (
        by_run["v2-0"] == 2 and by_run[f"v{SCHEMA_VERSION}-0"] == SCHEMA_VERSION
    )  # what each was written under
    assert concat_as_polars_does(store).num_rows == before.num_rows
    check_uniform(store)
    assert temporaries(store) == []


def test_a_second_upgrade_rewrites_nothing(tmp_path):
    store = mixed_store(tmp_path)
    upgrade_store(store)
    files = snapshot(store)
    report = upgrade_store(store)
    assert report.upgraded == {} and report.current == 7 and report.skipped == []
    assert snapshot(store) == files


def test_a_dry_run_changes_no_byte_and_says_what_it_would_do(tmp_path):
    store = mixed_store(tmp_path)
    bad_shard("corrupt", store, tmp_path)
    files = snapshot(store)
    report = upgrade_store(store, dry_run=True)
    assert report.dry_run and len(report.upgraded) == 5 and report.current == 2
    assert [s.path.name for s in report.skipped] == ["bad-corrupt.parquet"]
    assert snapshot(store) == files
    with pytest.raises(UserError):
        check_uniform(store)  # still mixed


def test_shards_readers_skip_are_reported_and_left_byte_for_byte(tmp_path):
    store = mixed_store(tmp_path)
    bad = [
        bad_shard(kind, store, tmp_path)[0]
        for kind in ("corrupt", "truncated", "status")
    ]
    rows = rows_of(2, (5,))
    rows[0]["status"] = "okay"
    bad.append(write_raw(store, "old-bad.parquet", rows, layout(2)))
    files = snapshot(store)
    report = upgrade_store(store)
    assert sorted(s.path for s in report.skipped) == sorted(bad)
    assert all(s.reason and "\n" not in s.reason for s in report.skipped)
    assert len(report.upgraded) == 5
    after = snapshot(store)
    assert {p.name: after[p.name] for p in bad} == {p.name: files[p.name] for p in bad}
    assert {s.path for s in st.read_store(store).skipped} == set(bad)
    check_uniform(store)


def test_an_upgraded_shard_keeps_its_permissions(tmp_path):
    store = mixed_store(tmp_path)
    old = runs_dir(store) / "0-v2.parquet"
    old.chmod(0o640)
    upgrade_store(store)
    assert old.stat().st_mode & 0o777 == 0o640


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it."""


def test_a_kill_before_the_rename_leaves_every_shard_as_it_was(tmp_path, monkeypatch):
    store = mixed_store(tmp_path)
    files = snapshot(store)
    written = []

    def killed(src, dst):
        pq.read_table(src)  # the temporary was written whole
        written.append(src)
        raise Killed

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(Killed):
        upgrade_store(store)
    assert len(written) == 1
    assert snapshot(store) == files
    assert temporaries(store) == []


def test_a_kill_midway_leaves_each_shard_old_or_upgraded(tmp_path, monkeypatch):
    store = mixed_store(tmp_path)
    before = read_records(store)
    files = snapshot(store)
    real, calls = os.replace, []

    def second_call_killed(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise Killed
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_call_killed)
    with pytest.raises(Killed):
        upgrade_store(store)
    monkeypatch.setattr(os, "replace", real)
    after = snapshot(store)
    changed = {n for n in files if after[n] != files[n]}
    assert changed == {Path(calls[0]).name}
    assert file_schema(Path(calls[0])).equals(written_schema(), check_metadata=False)
    assert temporaries(store) == []
    assert read_records(store).to_pylist() == before.to_pylist()
    assert len(upgrade_store(store).upgraded) == 4  # the rest, on the next run


def test_a_failed_rename_is_one_line_and_changes_nothing(tmp_path, monkeypatch):
    store = mixed_store(tmp_path)
    files = snapshot(store)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(UserError) as err:
        upgrade_store(store)
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    assert snapshot(store) == files


def test_upgrade_removes_a_killed_upgrades_temporary(tmp_path):
    store = mixed_store(tmp_path)
    here = st.temporary_path(runs_dir(store) / "x").name.split("~")[1]
    left = runs_dir(store) / f".0-v1.parquet~{here}~{dead_pid()}~0a.tmp"
    left.write_bytes(b"PAR1 half")
    upgrade_store(store)
    assert temporaries(store) == []


def test_upgrade_refuses_a_store_that_does_not_exist(tmp_path):
    for store in (tmp_path / "nope", tmp_path):  # no store; a folder with no runs/
        with pytest.raises(UserError, match="no run store at"):
            upgrade_store(store)
    assert list(tmp_path.iterdir()) == []


# the command


def test_cli_upgrade_prints_a_line_per_shard_and_a_summary(tmp_path):
    store = mixed_store(tmp_path)
    bad_shard("corrupt", store, tmp_path)
    result = invoke("store", "upgrade", "--store", str(store), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"would upgrade 5 shards to schema {SCHEMA_VERSION}; 2 already current; 1 skipped "
        "(dry run: nothing written)\n"
    )
    result = invoke("store", "upgrade", "--store", str(store))
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout
        == f"upgraded 5 shards to schema {SCHEMA_VERSION}; 2 already current; 1 skipped\n"
    )
    lines = result.stderr.splitlines()
    assert (
        f"upgraded {runs_dir(store) / '0-v3.parquet'} (schema 3 -> {SCHEMA_VERSION})"
        in lines
    )
    assert lines[-1].startswith(f"skipped {runs_dir(store) / 'bad-corrupt.parquet'}: ")
    assert len(lines) == 6
    result = invoke("store", "upgrade", "--store", str(store))
    assert (
        result.stdout
        == f"upgraded 0 shards to schema {SCHEMA_VERSION}; 7 already current; 1 skipped\n"
    )


def test_cli_upgrade_json_is_one_object_on_stdout_only(tmp_path):
    store = mixed_store(tmp_path)
    result = invoke("store", "upgrade", "--store", str(store), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    out = json.loads(result.stdout)
    assert out["schema_version"] == SCHEMA_VERSION and out["dry_run"] is False
    assert out["already_current"] == 2 and out["skipped"] == []
    assert sorted(u["from_version"] for u in out["upgraded"]) == [1, 1, 2, 3, 4]
    assert out["store"] == str(store)


def test_cli_upgrade_of_a_missing_store_is_exit_2_and_one_line(tmp_path):
    result = invoke("store", "upgrade", "--store", str(tmp_path / "nope"))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no run store at ") and "nope" in line
    assert list(tmp_path.iterdir()) == []


# other readers


def test_polars_reads_the_store_after_the_upgrade_not_before(tmp_path):
    polars = pytest.importorskip("polars")
    store = mixed_store(tmp_path)
    pattern = str(runs_dir(store) / "*.parquet")
    with pytest.raises(Exception, match="column"):
        polars.read_parquet(pattern)
    upgrade_store(store)
    frame = polars.read_parquet(pattern)
    assert frame.shape == (read_records(store).num_rows, len(SCHEMA))
    assert frame.columns == SCHEMA.names


def test_duckdb_reads_every_column_after_the_upgrade(tmp_path):
    # without union_by_name duckdb takes the first file's columns and silently drops
    # the others' (it does not fail): a mixed store loses the newer columns
    duckdb = pytest.importorskip("duckdb")
    store = mixed_store(tmp_path)
    query = f"select * from read_parquet('{runs_dir(store) / '*.parquet'}')"
    assert duckdb.sql(query).columns == layout(1).names
    upgrade_store(store)
    result = duckdb.sql(query)
    assert result.columns == SCHEMA.names
    assert result.shape == (read_records(store).num_rows, len(SCHEMA))
