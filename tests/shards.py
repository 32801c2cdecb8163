"""Shards for the store tests: good ones, and bad ones of every kind readers refuse
(test_store_robust, test_store_upgrade)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import helpers
import pyarrow as pa
import pyarrow.parquet as pq

from noisebench.store import SCHEMA, runs_dir, write_records

# not a registered method, so its rows are shown whatever the registry holds
METHOD = "robust_fake"


def record(**overrides):
    return helpers.record(**{"method": METHOD, "config_hash": "c", **overrides})


def good_rows():
    return [record(seed=s, run_id=f"good{s}") for s in (0, 1)]


def write_raw(store: Path, name: str, rows, schema=SCHEMA) -> Path:
    """A shard written around write_records' checks, as another tool or version might."""
    path = runs_dir(store) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def real_shard_bytes(tmp_path: Path) -> bytes:
    return write_records(good_rows(), tmp_path / "elsewhere").read_bytes()


def with_type(name: str, type_: pa.DataType) -> pa.Schema:
    return SCHEMA.set(SCHEMA.get_field_index(name), pa.field(name, type_))


def bad_shard(kind: str, store: Path, tmp_path: Path) -> tuple[Path, str]:
    """Write one bad shard of `kind` into `store`; return it and a word its reason has."""
    path = runs_dir(store) / f"bad-{kind}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        path.write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
        return path, ""
    if kind == "truncated":
        data = real_shard_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])
        return path, ""
    if kind == "empty":
        path.write_bytes(b"")
        return path, "0 bytes"
    if kind == "foreign":
        pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), path)
        return path, "not a noisebench shard"
    if kind == "wrong-type":
        rows = [record(seed=str(s), run_id="bad") for s in (5, 6)]
        return write_raw(store, path.name, rows, with_type("seed", pa.string())), "seed"
    overrides, word = {
        "unknown-noise": ({"noise_type": "gaussian"}, "noise_type"),
        "params-not-json": ({"params": "{not json"}, "params"),
        "params-not-object": ({"params": "[1, 2]"}, "params"),
        "train-config-not-json": ({"train_config": "mlp"}, "train_config"),
        "class-map-not-json": ({"class_map": "2->7"}, "class_map"),
        "status": ({"status": "okay"}, "status"),
        "phase": ({"phase": "train"}, "phase"),
        "method-name": ({"method": "Bad Name|x"}, "method"),
        "null-key": ({"config_hash": None}, "config_hash"),
    }[kind]
    rows = [record(seed=5, run_id="bad"), record(seed=6, run_id="bad", **overrides)]
    return write_raw(store, path.name, rows), word


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)
