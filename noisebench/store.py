"""Run records: a pinned Parquet schema, append-only shards, atomic writes (DESIGN.md §6).

One row per (configuration, seed). A shard is written to a hidden temporary file in
the same folder and then `os.replace`d into place, so a reader never sees half a file
and concurrent writers never collide. Shard names carry no information: the rows do.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from noisebench.errors import UserError

SCHEMA_VERSION = 2  # 2: class_map
STORE_ENV = "NOISEBENCH_STORE"
_f64, _str, _i64, _i32 = pa.float64(), pa.string(), pa.int64(), pa.int32()

SCHEMA = pa.schema(
    [
        ("schema_version", _i32),
        ("run_id", _str),
        (
            "config_hash",
            _str,
        ),  # everything that defines the experiment except the seeds
        ("method", _str),
        ("method_version", _i32),
        ("params", _str),  # canonical JSON
        ("params_hash", _str),
        ("dataset", _str),
        ("dataset_sha", _str),
        ("model", _str),
        ("train_config", _str),  # canonical JSON of TrainConfig
        ("epochs", _i32),
        ("noise_type", _str),
        ("noise_mode", _str),
        ("noise_rate", _f64),  # nominal
        (
            "realized_rate",
            _f64,
        ),  # on the whole noisy training pool (train + validation)
        ("confusion_sha", _str),  # of the realized clean x noisy count matrix
        ("transition_sha", _str),  # of the nominal T
        ("transition_source", _str),  # oracle | estimated
        ("class_map", _str),  # asymmetric noise: its class map as JSON; else null
        ("seed", _i64),
        ("noise_seed", _i64),
        ("run_seeds", pa.list_(_i64)),  # all seeds asked for in this configuration
        ("phase", _str),  # evaluate | tune | final
        ("study", _str),
        ("trial", _i32),
        ("status", _str),  # ok | diverged | failed
        ("error", _str),
        ("test_acc", _f64),  # clean test accuracy at the last epoch
        (
            "test_acc_at_best_val",
            _f64,
        ),  # ... at the epoch of best noisy-validation accuracy
        ("best_epoch", _i32),  # 1-based
        ("val_acc", _f64),  # noisy validation accuracy at the last epoch
        ("best_val_acc", _f64),
        ("ece", _f64),
        ("nll", _f64),
        ("brier", _f64),
        ("mem_noisy", _f64),
        ("mem_clean", _f64),
        ("flip_auroc", _f64),
        ("transition_error", _f64),
        ("wall_time_s", _f64),  # the ensemble's wall time divided by its members
        ("ensemble_size", _i32),  # members trained together
        ("val_acc_curve", pa.list_(pa.float32())),
        ("noisebench_version", _str),
        ("torch_version", _str),
        ("python_version", _str),
        ("device", _str),
        ("device_name", _str),
        ("git_sha", _str),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ],
    metadata={"noisebench_schema_version": str(SCHEMA_VERSION)},
)


def default_store() -> Path:
    return Path(os.environ.get(STORE_ENV) or "leaderboard")


def runs_dir(store: str | Path) -> Path:
    return Path(store) / "runs"


def write_records(records: Sequence[dict[str, Any]], store: str | Path) -> Path:
    """Write one shard atomically and return its path. Rows must match SCHEMA exactly."""
    table = pa.Table.from_pylist(list(records), schema=SCHEMA)
    ensure_writable(store)
    folder = runs_dir(store)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    final = folder / f"{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = folder / f".{final.name}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_records(store: str | Path) -> pa.Table:
    """Every row of every shard, cast to the current schema (older shards must be castable)."""
    shards = sorted(
        p for p in runs_dir(store).glob("*.parquet") if not p.name.startswith(".")
    )
    tables = []
    for path in shards:
        try:
            tables.append(
                _upgrade(pq.read_table(path)).select(SCHEMA.names).cast(SCHEMA)
            )
        except (pa.ArrowInvalid, KeyError, OSError) as err:
            raise UserError(f"unreadable shard {path}: {err}") from None
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


# Columns added since schema 1; older shards read them as null.
ADDED_COLUMNS = ("class_map",)


def _upgrade(table: pa.Table) -> pa.Table:
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


def ensure_writable(store: str | Path) -> None:
    """Fail before training, not after, when records could not be written."""
    folder = runs_dir(store)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create the store folder {folder}: {err.strerror}"
        ) from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"the store folder {folder} is not writable")
