"""A partly broken store still works: bad shards are skipped and named, the rest loads;
killed writers' temporaries are cleaned; odd store paths are never lost or guessed at."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from shards import (
    bad_shard,
    dead_pid,
    good_rows,
    record,
    write_raw,
)
from typer.testing import CliRunner

from noisebench import store as st
from noisebench.cli import app
from noisebench.errors import UserError
from noisebench.store import SCHEMA, read_records, runs_dir, write_records

KINDS = [
    "corrupt",
    "truncated",
    "empty",
    "foreign",
    "wrong-type",
    "unknown-noise",
    "params-not-json",
    "params-not-object",
    "train-config-not-json",
    "class-map-not-json",
    "status",
    "phase",
    "method-name",
    "null-key",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_shard_is_skipped_whole_and_named(tmp_path, kind):
    store = tmp_path / "store"
    write_records(good_rows(), store)
    bad, word = bad_shard(kind, store, tmp_path)
    contents = st.read_store(store)
    assert sorted(contents.table.column("run_id").to_pylist()) == ["good0", "good1"]
    (skipped,) = contents.skipped
    assert skipped.path == bad
    assert word in skipped.reason and skipped.reason.strip()
    assert "\n" not in skipped.reason and "\r" not in skipped.reason


def test_read_records_warns_once_per_bad_shard_and_keeps_the_rest(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(st, "_REPORTED", set())
    store = tmp_path / "store"
    write_records(good_rows(), store)
    bad = [bad_shard(kind, store, tmp_path)[0] for kind in ("corrupt", "foreign")]
    assert read_records(store).num_rows == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, sorted(bad), strict=True):
        assert line.startswith(f"warning: skipped shard {path}: ")
    assert read_records(store).num_rows == 2
    assert capsys.readouterr().err == ""  # once per process


def test_leaderboard_renders_beside_bad_shards_and_warns_per_shard(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(st, "_REPORTED", set())
    store = tmp_path / "store"
    write_records(good_rows(), store)
    bad = sorted(bad_shard(k, store, tmp_path)[0] for k in ("truncated", "status"))
    result = CliRunner().invoke(app, ["leaderboard", "--store", str(store)])
    assert result.exit_code == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2
    for line, path in zip(warnings, bad, strict=True):
        assert line.startswith(f"warning: skipped shard {path}: ")
    readme = (store / "README.md").read_text(encoding="utf-8")
    assert "| robust\\_fake | 50.0 ± 0.0 (2) #1 | 1.00 |" in readme


def test_an_unlistable_runs_folder_is_an_error_not_an_empty_store(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(UserError, match="cannot read the store folder"):
        st.read_store(tmp_path)


def test_a_shard_name_with_a_newline_still_warns_on_one_line(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(st, "_REPORTED", set())
    write_records(good_rows(), tmp_path)
    (runs_dir(tmp_path) / "bad\nname.parquet").write_bytes(b"junk")
    assert read_records(tmp_path).num_rows == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: skipped shard ") and "bad\\nname" in line


def test_rows_readers_would_skip_are_never_written(tmp_path):
    with pytest.raises(ValueError, match="noise_type"):
        write_records([record(), record(noise_type="gaussian")], tmp_path)
    assert list(tmp_path.iterdir()) == []  # checked before anything is created


def test_schema_2_shards_read_origin_and_sha_as_null(tmp_path):
    old = pa.schema(
        [f for f in SCHEMA if f.name not in ("method_origin", "method_sha")]
    )
    rows = [
        {
            k: v
            for k, v in record(seed=s, class_map='{"1": 2}').items()
            if k in old.names
        }
        for s in (0, 1)
    ]
    write_raw(tmp_path, "old.parquet", rows, old)
    write_records([record(seed=2)], tmp_path)
    contents = st.read_store(tmp_path)
    assert contents.skipped == []
    table = contents.table
    assert table.schema.equals(SCHEMA, check_metadata=False)
    by_seed = {
        r["seed"]: (r["method_origin"], r["method_sha"], r["class_map"])
        for r in table.to_pylist()
    }
    assert by_seed == {
        0: (None, None, '{"1": 2}'),
        1: (None, None, '{"1": 2}'),
        2: ("builtin", "0123456789abcdef", None),
    }


def test_schema_places_origin_and_sha_after_the_method_version():
    names = SCHEMA.names
    at = names.index("method_version")
    assert names[at + 1 : at + 3] == ["method_origin", "method_sha"]
    assert SCHEMA.field("method_origin").type == SCHEMA.field("method_sha").type
    assert SCHEMA.field("method_sha").type == pa.string()
    assert st.SCHEMA_VERSION == 8  # 8 added the selection curves
    assert {"method_origin", "method_sha"} <= set(st.ADDED_COLUMNS)
    assert {"model_params", "input_shape"} <= set(st.ADDED_COLUMNS)
    assert {"confusion", "mem_noisy_curve", "reliability_count"} <= set(
        st.ADDED_COLUMNS
    )


def test_a_store_path_with_a_colon_is_a_path_not_a_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shard = write_records(good_rows(), "x:y")
    assert shard.resolve().parent == (tmp_path / "x:y" / "runs").resolve()
    contents = st.read_store("x:y")
    assert contents.skipped == []
    assert sorted(contents.table.column("run_id").to_pylist()) == ["good0", "good1"]
    assert read_records(Path("x:y")).num_rows == 2


def test_a_killed_writer_leaves_a_hidden_temporary_the_next_write_removes(tmp_path):
    # a writer really SIGKILLed between writing its temporary and os.replace
    code = (
        "import os, signal, sys; from pathlib import Path; "
        "from noisebench.store import temporary_path; "
        "tmp = temporary_path(Path(sys.argv[1]) / 'x.parquet'); "
        "tmp.write_bytes(b'PAR1 half'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    folder = runs_dir(tmp_path)
    folder.mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", code, str(folder)], check=False)
    assert killed.returncode == -9
    (left,) = folder.iterdir()
    assert left.name.startswith(".") and left.name.endswith(".tmp")
    assert read_records(tmp_path).num_rows == 0  # hidden: never read
    shard = write_records(good_rows(), tmp_path)
    assert list(folder.iterdir()) == [shard]


def test_cleaning_keeps_young_temporaries_of_live_processes_and_other_hosts(tmp_path):
    folder = runs_dir(tmp_path)
    folder.mkdir(parents=True)
    here = st.temporary_path(folder / "a.parquet").name.split("~")[1]
    dead = dead_pid()

    def temporary(name: str, *, age_s: float = 0.0) -> Path:
        path = folder / name
        path.write_bytes(b"half")
        if age_s:
            then = time.time() - age_s
            os.utime(path, (then, then))
        return path

    removed = {
        temporary(f".a.parquet~{here}~{dead}~0a.tmp"),  # dead process of this host
        temporary(f".b.parquet~other-host~{dead}~0b.tmp", age_s=7200),  # abandoned
        temporary(".c.parquet.tmp", age_s=7200),  # old-style name, abandoned
    }
    live = st.temporary_path(folder / "d.parquet")  # of this process (os.getpid())
    live.write_bytes(b"half")
    kept = {
        live,
        temporary(f".e.parquet~other-host~{dead}~0e.tmp"),  # young, of another host
        temporary(f".f.parquet~other-host~{os.getpid()}~0f.tmp", age_s=1800),
        temporary(".g.parquet.tmp", age_s=60),  # young, whose it is unknown
    }
    shard = write_records(good_rows(), tmp_path)
    assert set(folder.iterdir()) == kept | {shard}
    assert all(not p.exists() for p in removed)


def test_temporaries_name_their_host_and_process(tmp_path):
    name = st.temporary_path(tmp_path / "s.parquet").name
    final, host, pid, _ = name.removesuffix(".tmp").split("~")
    assert final == ".s.parquet" and pid == str(os.getpid()) and host
    assert st.temporary_path(tmp_path / "s.parquet").name != name


def listing(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize("check", ["check_store", "ensure_writable"])
def test_a_store_under_a_regular_file_is_refused_and_nothing_created(tmp_path, check):
    check = getattr(st, check)
    blocker = tmp_path / "file"
    blocker.write_text("")
    before = listing(tmp_path)
    for store in (blocker, blocker / "store", blocker / "a" / "b"):
        with pytest.raises(UserError) as err:
            check(store)
        assert f"{blocker} is not a directory" in str(err.value)
        assert "\n" not in str(err.value)
    assert listing(tmp_path) == before


def test_a_runs_entry_that_is_not_a_folder_is_refused(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(UserError, match="runs"):
        st.check_store(tmp_path)


def test_check_store_creates_nothing_where_all_is_well(tmp_path):
    st.check_store(tmp_path / "new" / "store")
    assert listing(tmp_path) == []
    st.ensure_writable(tmp_path / "new" / "store")
    assert runs_dir(tmp_path / "new" / "store").is_dir()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write anywhere",
)
def test_a_read_only_location_is_refused_and_nothing_created(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UserError, match="not writable"):
            st.check_store(locked / "a" / "store")
        with pytest.raises(UserError, match="not writable"):
            st.ensure_writable(locked / "a" / "store")
        assert listing(locked) == []
    finally:
        locked.chmod(0o755)


def test_an_unwritable_ancestor_is_refused_even_as_root(tmp_path, monkeypatch):
    # root passes any permission check, so deny it through os.access itself
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p) != locked and real(p, mode)
    )
    with pytest.raises(UserError, match=f"{locked} is not writable"):
        st.ensure_writable(locked / "a" / "store")
    assert listing(locked) == []


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_leaderboard_of_a_missing_store_is_an_error_and_creates_nothing(tmp_path):
    result = invoke("leaderboard", "--store", str(tmp_path / "nope"))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no records in ") and "nope" in line
    assert listing(tmp_path) == []


def test_a_failed_readme_write_leaves_no_temporary(tmp_path, monkeypatch):
    write_records(good_rows(), tmp_path)

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    result = invoke("leaderboard", "--store", str(tmp_path))
    assert result.exit_code != 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not (tmp_path / "README.md").exists()


def test_readme_temporaries_are_unique_per_render_and_name_their_process(
    tmp_path, monkeypatch
):
    write_records(good_rows(), tmp_path)
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(2):
        assert invoke("leaderboard", "--store", str(tmp_path)).exit_code == 0
    readme_tmps = [n for n in seen if n.startswith(".README.md")]
    assert len(readme_tmps) == 2 and len(set(readme_tmps)) == 2
    assert all(f"~{os.getpid()}~" in n for n in readme_tmps)


def test_a_dead_renders_readme_temporary_is_cleaned(tmp_path):
    write_records(good_rows(), tmp_path)
    here = st.temporary_path(tmp_path / "README.md").name.split("~")[1]
    left = tmp_path / f".README.md~{here}~{dead_pid()}~0a.tmp"
    left.write_text("half a page")
    assert invoke("leaderboard", "--store", str(tmp_path)).exit_code == 0
    assert not left.exists()
    assert (tmp_path / "README.md").is_file()
