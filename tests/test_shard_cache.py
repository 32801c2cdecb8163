"""The store's read cache saves time and changes nothing: every read equals a read
without it (same rows, same order, same skipped shards), whatever happened to the
shards in between, and a missing, broken or unwritable cache only costs time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from pyarrow import ipc
from shards import bad_shard, good_rows, record, write_raw

from noisebench import shard_cache, store
from noisebench.errors import UserError
from noisebench.store import check_uniform, read_store, runs_dir, write_records


def cold(root: Path) -> store.StoreContents:
    """A read of `root` that cannot use a cache: the reference."""
    shutil.rmtree(shard_cache.cache_path(root).parent, ignore_errors=True)
    contents = read_store(root)
    shutil.rmtree(shard_cache.cache_path(root).parent, ignore_errors=True)
    return contents


def same(a: store.StoreContents, b: store.StoreContents) -> None:
    assert a.table.to_pylist() == b.table.to_pylist()
    assert [(s.path, s.reason) for s in a.skipped] == [
        (s.path, s.reason) for s in b.skipped
    ]
    assert (a.shards, a.outdated) == (b.shards, b.outdated)


@pytest.fixture
def opened(monkeypatch) -> list[Path]:
    """The shard files read from disk, in order."""
    paths: list[Path] = []
    real = store._read_shard

    def counting(path: Path):
        paths.append(path)
        return real(path)

    monkeypatch.setattr(store, "_read_shard", counting)
    return paths


def rows(n: int, tag: str) -> list[dict]:
    return [record(seed=s, run_id=f"{tag}{s}", config_hash=tag) for s in range(n)]


def test_a_warm_read_opens_no_shard_and_equals_a_cold_one(tmp_path, opened):
    for tag in ("a", "b", "c"):
        write_records(rows(2, tag), tmp_path)
    reference = cold(tmp_path)
    first = read_store(tmp_path)  # fills the cache
    assert len(opened) == 2 * 3 and shard_cache.cache_path(tmp_path).is_file()
    opened.clear()
    warm = read_store(tmp_path)
    assert opened == []
    same(warm, reference)
    same(first, reference)
    assert warm.table.schema == store.SCHEMA


def test_added_replaced_and_removed_shards_are_seen(tmp_path, opened):
    a = write_records(rows(2, "a"), tmp_path)
    b = write_records(rows(3, "b"), tmp_path)
    read_store(tmp_path)
    opened.clear()
    c = write_records(rows(1, "c"), tmp_path)
    same(read_store(tmp_path), cold(tmp_path))
    assert opened[0] == c  # the new shard only, then the cold read's
    # a shard replaced in place (as `store upgrade` does: a new file, renamed over it)
    replacement = write_records(rows(4, "a2"), tmp_path / "elsewhere")
    os.replace(replacement, a)
    read_store(tmp_path)
    got = read_store(tmp_path)
    assert sorted({r["config_hash"] for r in got.table.to_pylist()}) == ["a2", "b", "c"]
    same(got, cold(tmp_path))
    b.unlink()
    got = read_store(tmp_path)
    assert "b" not in {r["config_hash"] for r in got.table.to_pylist()}
    same(got, cold(tmp_path))


def test_a_replacement_of_the_same_size_and_time_is_still_seen(tmp_path):
    """The stamp holds the inode too: a file renamed over a shard is another file,
    even with the old one's size and modification time."""
    shard = write_records([record(seed=0, test_acc=0.25)], tmp_path)
    read_store(tmp_path)
    other = write_records([record(seed=0, test_acc=0.75)], tmp_path / "elsewhere")
    if other.stat().st_size != shard.stat().st_size:
        pytest.skip("the two shards differ in size; the test needs equal ones")
    before = shard.stat()
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, shard)
    (row,) = read_store(tmp_path).table.to_pylist()
    assert row["test_acc"] == 0.75


def test_config_hash_reads_agree_with_and_without_the_cache(tmp_path):
    for tag in ("a", "b"):
        write_records(rows(2, tag), tmp_path)
    write_records(rows(1, "a") + rows(1, "c"), tmp_path)
    reference = cold(tmp_path)
    for _ in range(2):  # cold, then warm
        got = read_store(tmp_path, config_hash="a").table.to_pylist()
        want = [
            r
            for r in reference.table.to_pylist()
            if r["config_hash"] in ("a", "c")  # shards holding "a", whole
        ]
        assert got == want


def test_bad_shards_are_never_cached_and_always_reported(tmp_path, opened):
    write_records(good_rows(), tmp_path)
    bad, _ = bad_shard("truncated", tmp_path, tmp_path)
    reference = cold(tmp_path)
    assert [s.path for s in reference.skipped] == [bad]
    read_store(tmp_path)
    opened.clear()
    same(read_store(tmp_path), reference)
    assert opened == [bad]  # tried again, in case it was repaired


@pytest.mark.parametrize("damage", ["garbage", "empty", "another schema", "no index"])
def test_a_broken_cache_is_ignored_and_rebuilt(tmp_path, damage):
    write_records(rows(2, "a"), tmp_path)
    reference = cold(tmp_path)
    path = shard_cache.cache_path(tmp_path)
    path.parent.mkdir(exist_ok=True)
    if damage in ("garbage", "empty"):
        path.write_bytes(b"not arrow at all" if damage == "garbage" else b"")
    else:
        table = pa.table({"x": [1, 2]})
        if damage == "no index":
            table = read_store(tmp_path).table.replace_schema_metadata({})
        with (
            pa.OSFile(str(path), "wb") as sink,
            ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
    same(read_store(tmp_path), reference)
    assert shard_cache.load(tmp_path, store.SCHEMA)  # rebuilt and usable


def test_a_store_that_cannot_take_a_cache_still_reads(tmp_path):
    write_records(rows(2, "a"), tmp_path)
    reference = cold(tmp_path)
    (tmp_path / ".cache").write_text("a file where the cache folder would go")
    same(read_store(tmp_path), reference)
    same(read_store(tmp_path), reference)
    assert (tmp_path / ".cache").read_text().startswith("a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache", "runs"]


def test_a_failed_save_leaves_no_folder_or_temporary(tmp_path, monkeypatch):
    write_records(rows(2, "a"), tmp_path)

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    assert len(read_store(tmp_path).table) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_reading_an_empty_or_missing_store_writes_nothing(tmp_path):
    assert len(read_store(tmp_path / "missing").table) == 0
    runs_dir(tmp_path).mkdir(parents=True)
    assert len(read_store(tmp_path).table) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_check_uniform_knows_old_shards_from_the_cache_too(tmp_path):
    """The cache keeps whether each file has the current schema: an old shard is
    refused on a warm read as on a cold one, and accepted once upgraded."""
    write_records(rows(2, "a"), tmp_path)
    old_schema = pa.schema([f for f in store.SCHEMA if f.name != "ece_scaled"])
    write_raw(tmp_path, "old.parquet", [record(seed=9)], schema=old_schema)
    for _ in range(2):  # cold, then warm
        with pytest.raises(UserError, match="mixes shard schemas"):
            check_uniform(tmp_path)
    store.upgrade_store(tmp_path)
    for _ in range(2):
        check_uniform(tmp_path)
