"""Run records: a pinned Parquet schema, append-only shards, atomic writes (DESIGN.md §6).

One row per (configuration, seed). A shard is written to a hidden temporary file in
the same folder and then `os.replace`d into place, so a reader never sees half a file
and concurrent writers never collide. Shard names carry no information: the rows do.
Readers check each shard on its own and skip (and name) the ones they cannot trust,
so one bad file never hides the rest of a store; writers remove the temporaries that
killed writers left.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from noisebench.errors import UserError

# 2: class_map; 3: method_origin, method_sha; 4: model_params, input_shape;
# 5: confusion, reliability_*, mem_*_curve (what the leaderboard's plots draw);
# 6: teacher (distillation's provenance); 7: temperature, ece_scaled
SCHEMA_VERSION = 8
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
        ("method_origin", _str),  # builtin | entry-point:<distribution>
        ("method_sha", _str),  # 16 hex digits of a hash of the method's source
        ("params", _str),  # canonical JSON
        ("params_hash", _str),
        ("dataset", _str),
        ("dataset_sha", _str),
        ("model", _str),
        ("model_params", _i64),  # parameters of one member
        ("input_shape", pa.list_(_i64)),  # one sample as the model takes it
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
        ("confusion", pa.list_(_i64)),  # that matrix, row-major (K * K counts)
        ("transition_sha", _str),  # of the nominal T
        ("transition_source", _str),  # oracle | estimated
        # distillation: the teacher as JSON (method, version, params, temperature,
        # alpha, and this member's teacher seed and best epoch); null without one
        ("teacher", _str),
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
        # temperature scaling: T fitted on the noisy validation split (NLL), and the
        # test ECE of softmax(logits / T); the calibration a practitioner gets for free
        ("temperature", _f64),
        ("ece_scaled", _f64),
        ("nll", _f64),
        ("brier", _f64),
        ("mem_noisy", _f64),
        ("mem_clean", _f64),
        ("flip_auroc", _f64),
        # a selecting method's last selected_clean_curve value; null for other methods
        ("label_precision", _f64),
        ("transition_error", _f64),
        ("wall_time_s", _f64),  # the ensemble's wall time divided by its members
        ("ensemble_size", _i32),  # members trained together
        ("val_acc_curve", pa.list_(pa.float32())),
        # per epoch, of the corrupted training samples: the fraction the training
        # forward passes predicted as the noisy label, and as the clean label
        ("mem_noisy_curve", pa.list_(pa.float32())),
        ("mem_clean_curve", pa.list_(pa.float32())),
        # per epoch, for a method that selects the samples it trains on (Co-teaching):
        # the fraction of training samples selected, and the fraction of those whose
        # noisy label is clean (the label precision, or "pure ratio"); null for others
        ("selected_curve", pa.list_(pa.float32())),
        ("selected_clean_curve", pa.list_(pa.float32())),
        # the final model's test reliability diagram, 15 equal-width confidence bins:
        # samples, correct predictions, and the sum of max-probabilities per bin
        ("reliability_count", pa.list_(_i64)),
        ("reliability_correct", pa.list_(_i64)),
        ("reliability_confidence", pa.list_(_f64)),
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


# Columns added since schema 1, with the version that added each; older shards read
# them as null, and a shard without metadata shows its version by which it has.
ADDED_IN = {
    "class_map": 2,
    "method_origin": 3,
    "method_sha": 3,
    "model_params": 4,
    "input_shape": 4,
    "confusion": 5,
    "mem_noisy_curve": 5,
    "mem_clean_curve": 5,
    "reliability_count": 5,
    "reliability_correct": 5,
    "reliability_confidence": 5,
    "teacher": 6,
    "temperature": 7,
    "ece_scaled": 7,
    "label_precision": 8,
    "selected_curve": 8,
    "selected_clean_curve": 8,
}
ADDED_COLUMNS = tuple(ADDED_IN)
_VERSION_KEY = b"noisebench_schema_version"

STATUSES = ("ok", "diverged", "failed")
PHASES = ("evaluate", "tune", "final")
# Columns that readers key, group or sort on (dedupe, split_stale, the tables, the
# tuner): a row without them cannot be shown or reused, so its shard is refused.
REQUIRED = (
    "config_hash",
    "method",
    "method_version",
    "params",
    "dataset",
    "dataset_sha",
    "train_config",
    "noise_type",
    "noise_mode",
    "noise_rate",
    "seed",
    "noise_seed",
    "run_seeds",
    "phase",
    "status",
    "finished_at",
)
# A temporary left this long is abandoned whoever made it: a shard takes milliseconds
# to write, and a pid seen from another host (or recycled here) proves nothing.
STALE_TEMPORARY_S = 3600.0
# `.<final name>~<host>~<pid>~<nonce>.tmp`: '~' never occurs in a sanitized host name
# nor in the names we write, so the fields split without ambiguity.
_TEMPORARY = re.compile(
    r"^\.(?P<final>[^~]+)~(?P<host>[^~]+)~(?P<pid>[0-9]+)~[0-9a-f]+\.tmp$"
)
_REPORTED: set[str] = set()  # shards already warned about by read_records


@dataclass(frozen=True)
class SkippedShard:
    path: Path
    reason: str  # one line


@dataclass(frozen=True)
class StoreContents:
    table: pa.Table  # every row of every valid shard, cast to SCHEMA
    skipped: list[SkippedShard]
    shards: int = 0  # valid shards
    outdated: tuple[Path, ...] = ()  # valid shards whose files have an older schema


class BadShard(ValueError):
    """A shard (or rows about to become one) that readers would refuse."""


def default_store() -> Path:
    return Path(os.environ.get(STORE_ENV) or "leaderboard")


def runs_dir(store: str | Path) -> Path:
    return Path(store) / "runs"


def write_records(records: Sequence[dict[str, Any]], store: str | Path) -> Path:
    """Write one shard atomically and return its path. Rows must match SCHEMA exactly,
    and pass the checks readers apply (BadShard otherwise): a shard we write is never
    one we would skip."""
    table = validate(pa.Table.from_pylist(list(records), schema=SCHEMA))
    ensure_writable(store)
    folder = runs_dir(store)
    clean_temporaries(folder)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    final = folder / f"{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    _write_atomically(table, final)
    return final


def _write_atomically(table: pa.Table, final: Path, *, mode: int | None = None) -> None:
    """Write `table` to a hidden temporary beside `final`, then `os.replace` it there:
    readers see the old file or the new one, never half of either. `mode`: the
    permission bits to give it (an upgraded shard keeps its own)."""
    tmp = temporary_path(final)
    try:
        # A file object, never a path: pyarrow would parse `a:b/runs/...` as a URI.
        with open(tmp, "xb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())  # the rename must not outlive the bytes on a crash
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def read_store(store: str | Path, *, config_hash: str | None = None) -> StoreContents:
    """Every valid shard's rows, and the shards skipped with the reason why.

    Each shard is read and checked on its own, so one corrupt, truncated or foreign
    file costs its own rows, never the store's. Hidden files (temporaries) are ignored.
    Shards read before come from the store's cache (`shard_cache`) while their files
    are unchanged. With `config_hash`, only the shards holding that configuration are
    returned, whole.
    """
    from noisebench import shard_cache

    cached = shard_cache.load(store, SCHEMA)
    tables, skipped, known, outdated, read, valid = [], [], [], [], 0, 0
    for path in _shard_paths(store):
        stamp = shard_cache.stamp(path)
        hit = cached.get(path.name)
        if hit is not None and stamp is not None and hit.stamp == stamp:
            table, current = hit.table, hit.current
        else:
            try:
                table, current = _read_shard(path)
            except (pa.ArrowException, OSError, ValueError, KeyError) as err:
                skipped.append(SkippedShard(path, _one_line(err)))
                continue
            read += 1
        valid += 1
        if not current:
            outdated.append(path)
        if stamp is not None:
            known.append(shard_cache.Entry(path.name, stamp, table, current))
        if (
            config_hash is None
            or config_hash in table.column("config_hash").to_pylist()
        ):
            tables.append(table)
    # a shard read from its file, or a cached one gone: the cache is out of date
    if read or len(known) != len(cached):
        shard_cache.save(store, known, SCHEMA)
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return StoreContents(table, skipped, valid, tuple(outdated))


def _shard_paths(store: str | Path) -> list[Path]:
    """The store's shards, sorted; hidden files (temporaries) are not shards."""
    folder = runs_dir(store)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []  # a store nothing was written to yet
    except OSError as err:
        # unreadable is not empty: an empty table here would read as "no runs yet"
        raise UserError(
            f"cannot read the store folder {folder}: {err.strerror or err}"
        ) from None
    return sorted(
        folder / n for n in names if n.endswith(".parquet") and not n.startswith(".")
    )


def read_records(store: str | Path, *, config_hash: str | None = None) -> pa.Table:
    """`read_store(store).table`, warning on stderr (once per process per file) about
    each skipped shard."""
    contents = read_store(store, config_hash=config_hash)
    for shard in contents.skipped:
        key = os.path.abspath(shard.path)
        if key not in _REPORTED:
            _REPORTED.add(key)
            where = str(shard.path)
            where = where if where.isprintable() else repr(where)  # one line, always
            print(f"warning: skipped shard {where}: {shard.reason}", file=sys.stderr)
    return contents.table


def read_shard(path: Path) -> pa.Table:
    """One shard cast to SCHEMA; BadShard (or an Arrow/OS error) when it is not valid."""
    return _read_shard(path)[0]


def _read_shard(path: Path) -> tuple[pa.Table, bool]:
    """`read_shard`, and whether the file already has the current schema."""
    if path.stat().st_size == 0:
        raise BadShard("empty file (0 bytes)")
    # A file object, never a path: pyarrow would parse `a:b/runs/...` as a URI.
    with open(path, "rb") as f:
        table = _read_table(f)
    return validate(_conform(table)), _is_current(table.schema)


def _read_table(f: BinaryIO, columns: list[str] | None = None) -> pa.Table:
    """pyarrow's reader on a Python file object, without its thread pool: with it,
    pyarrow 26 aborts the process at exit ("terminate called without an active
    exception") in about half the runs that read a few hundred shards, after all the
    work is done. A shard is one small row group; threads bought nothing."""
    return pq.read_table(f, columns=columns, use_threads=False)


def _conform(table: pa.Table) -> pa.Table:
    """`table` with exactly SCHEMA's columns and types, older schemas upgraded."""
    names = table.column_names
    if len(set(names)) != len(names):
        raise BadShard("duplicate column names")
    missing = [n for n in SCHEMA.names if n not in names and n not in ADDED_COLUMNS]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BadShard(f"not a noisebench shard: no column {missing[0]!r}{more}")
    table = _upgrade(table)
    for field in SCHEMA:
        actual = table.schema.field(field.name).type
        if not _same_type(actual, field.type):
            raise BadShard(f"column {field.name!r} is {actual}, expected {field.type}")
    return table.select(SCHEMA.names).cast(SCHEMA)


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    # Parquet renames a list's item field ("element"); only the value type matters.
    if pa.types.is_list(actual) and pa.types.is_list(expected):
        return _same_type(actual.value_type, expected.value_type)
    return actual.equals(expected)


def _upgrade(table: pa.Table) -> pa.Table:
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


# One schema per store. Readers here conform old shards as they read them, but tools
# that take one file's schema for all (polars) fail on a mixed store: `upgrade_store`
# rewrites the old shards in the current layout, and `check_uniform` says when to.


@dataclass(frozen=True)
class UpgradeReport:
    # each shard rewritten (in a dry run: to be) -> the schema version it had
    upgraded: dict[Path, int]
    current: int  # shards already in the current schema
    skipped: list[SkippedShard]  # those read_store skips: left as they are
    dry_run: bool


def shard_schema_version(path: Path) -> int:
    """The schema version a shard's file says it has: its metadata's, else inferred
    from its columns. Reads the footer (and at most the `schema_version` column), never
    the rows; an Arrow or OS error for a file that is not Parquet."""
    schema = _file_schema(path)
    try:
        return int((schema.metadata or {})[_VERSION_KEY])
    except (KeyError, ValueError):
        pass  # written by another tool: infer it
    # The rows' own versions may be older than the layout (an upgraded shard keeps
    # them), never newer; the added columns give the layout itself.
    layout = max((ADDED_IN[n] for n in schema.names if n in ADDED_IN), default=1)
    if "schema_version" not in schema.names:
        return layout
    with open(path, "rb") as f:
        column = _read_table(f, columns=["schema_version"]).column(0)
    return max(layout, pc.max(column).as_py() or 1)


def _file_schema(path: Path) -> pa.Schema:
    # A file object, never a path: pyarrow would parse `a:b/runs/...` as a URI.
    with open(path, "rb") as f:
        return pq.ParquetFile(f).schema_arrow


def _is_current(schema: pa.Schema) -> bool:
    """Whether a file's schema is SCHEMA (item names of lists aside: Parquet renames
    them) and its metadata says the current version."""
    if (schema.metadata or {}).get(_VERSION_KEY) != str(SCHEMA_VERSION).encode():
        return False
    return schema.names == SCHEMA.names and all(
        _same_type(a.type, b.type) and a.nullable == b.nullable
        for a, b in zip(schema, SCHEMA, strict=True)
    )


def check_uniform(store: str | Path) -> None:
    """Raise UserError (one line) unless every shard of `store` has the current schema.

    Shards that read_store skips are not counted (readers name them already). Cheap
    where all is well: the store's cache knows each unchanged shard's schema, and only
    an old-looking shard has its version read.
    """
    contents = read_store(store)
    current = f"v{SCHEMA_VERSION}"
    versions = {current: contents.shards - len(contents.outdated)}
    for path in contents.outdated:
        try:
            version = shard_schema_version(path)
        except (pa.ArrowException, OSError, ValueError, KeyError):
            continue  # replaced since: the next reader sees what it is now
        label = f"v{version}" + (", off-schema" * (version == SCHEMA_VERSION))
        versions[label] = versions.get(label, 0) + 1
    versions = {label: n for label, n in versions.items() if n}
    if set(versions) <= {current}:
        return
    counts = ", ".join(
        f"{label}: {n} shard{'s' * (n != 1)}"
        for label, n in sorted(versions.items(), key=lambda kv: _label_order(kv[0]))
    )
    fix = f"run `noisebench store upgrade --store {store}`"
    if len(versions) == 1:
        raise UserError(
            f"store {store} has shards of an older schema ({counts}; current is "
            f"v{SCHEMA_VERSION}): {fix}"
        )
    raise UserError(f"store {store} mixes shard schemas ({counts}): {fix}")


def _label_order(label: str) -> tuple[int, str]:
    number = label[1:].partition(",")[0]
    return (int(number), label)


def upgrade_store(store: str | Path, *, dry_run: bool = False) -> UpgradeReport:
    """Rewrite in place every valid shard of `store` not in the current schema, so that
    any Parquet reader sees one schema across the store.

    Each is read as readers read it (same rows, same order, same values, the columns
    added since null, each row's `schema_version` kept: it says what the row was
    written under) and replaced atomically under its own name. A shard read_store
    skips is left byte for byte and reported. Running it again rewrites nothing; a
    kill leaves each shard old or upgraded, never half. `dry_run` writes nothing.
    """
    folder = runs_dir(store)
    if not folder.is_dir():
        raise UserError(f"no run store at {store}: {folder} is not a folder")
    if not dry_run:
        clean_temporaries(folder)
    upgraded: dict[Path, int] = {}
    current, skipped = 0, []
    for path in _shard_paths(store):
        try:
            table = read_shard(path)  # as read_store reads it, so skipped alike
            if _is_current(_file_schema(path)):
                current += 1
                continue
            version = shard_schema_version(path)
        except (pa.ArrowException, OSError, ValueError, KeyError) as err:
            skipped.append(SkippedShard(path, _one_line(err)))
            continue
        if not dry_run:
            _rewrite(table, path)
        upgraded[path] = version
    return UpgradeReport(upgraded, current, skipped, dry_run)


def _rewrite(table: pa.Table, path: Path) -> None:
    table = table.replace_schema_metadata(SCHEMA.metadata)
    try:
        _write_atomically(table, path, mode=path.stat().st_mode & 0o7777)
    except OSError as err:
        raise UserError(
            f"cannot rewrite the shard {path}: {err.strerror or err} (it is as it "
            "was; the shards before it are upgraded: run the upgrade again)"
        ) from None


def validate(table: pa.Table) -> pa.Table:
    """`table` (of SCHEMA) itself, or BadShard naming the first value readers would
    choke on or misread: nulls where readers key or group, unknown noise types,
    statuses and phases, invalid method names, and JSON fields that are not objects."""
    from noisebench.noise import NOISE_TYPES
    from noisebench.registry import NAME_RE

    for name in REQUIRED:
        if table.column(name).null_count:
            raise BadShard(f"column {name!r} has nulls")

    def column(name: str) -> list[Any]:
        return table.column(name).to_pylist()

    checks = {
        "noise_type": lambda v: v in NOISE_TYPES,
        "status": lambda v: v in STATUSES,
        "phase": lambda v: v in PHASES,
        "method": lambda v: NAME_RE.match(v) is not None,
        "params": _is_json_object,
        "train_config": _is_json_object,
        "class_map": lambda v: v is None or _is_json_object(v),
        "teacher": lambda v: v is None or _is_json_object(v),
    }
    for name, ok in checks.items():
        for i, value in enumerate(column(name)):
            if not ok(value):
                raise BadShard(f"row {i}: invalid {name} {_show(value)}")
    for i, (kind, sha) in enumerate(
        zip(column("noise_type"), column("transition_sha"), strict=True)
    ):
        if kind == "transition" and sha is None:
            raise BadShard(f"row {i}: transition noise without a transition_sha")
    return table


def _is_json_object(text: str | None) -> bool:
    if text is None:
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return False


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)  # repr keeps control characters off the warning line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def temporary_path(final: Path) -> Path:
    """A hidden sibling of `final` to write before `os.replace`; its name says which
    host and process made it, so `clean_temporaries` knows when it is abandoned."""
    return final.with_name(
        f".{final.name}~{_host()}~{os.getpid()}~{uuid.uuid4().hex[:8]}.tmp"
    )


def clean_temporaries(
    folder: Path, *, final_name: str | None = None, now: float | None = None
) -> list[Path]:
    """Remove the hidden temporaries (of `final_name` only, if given) in `folder` that a
    killed writer left: those of dead processes of this host, and those older than
    STALE_TEMPORARY_S whoever made them. Never a young one of another host (stores may
    live on a network file system) or of a live process. Returns what it removed."""
    now = time.time() if now is None else now
    prefix = f".{final_name}" if final_name else "."
    host = _host()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # no folder, or unreadable: nothing we could clean
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue  # gone meanwhile
        match = _TEMPORARY.match(entry.name)
        orphan = (
            match is not None
            and match["host"] == host
            and not _alive(int(match["pid"]))
        )
        if orphan or age > STALE_TEMPORARY_S:
            try:
                os.unlink(entry.path)
            except OSError:
                continue  # another cleaner was faster, or we may not: harmless
            removed.append(Path(entry.path))
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "unknown-host"


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host may still be running (True when unsure)."""
    if pid <= 0 or os.name == "nt":  # kill(pid, 0) would signal a group, or kill
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # EPERM: it exists, as another user
        return True
    return True


def check_store(store: str | Path) -> None:
    """Raise UserError (one line) unless records could be written under `store`.

    Creates nothing, so a command that is rejected later leaves no folder behind: the
    nearest existing ancestor of `<store>/runs` must be a writable directory.
    """
    folder = runs_dir(store)
    probe = folder
    try:
        while not probe.exists():
            if probe.is_symlink():
                raise UserError(
                    f"cannot use the store {store}: {probe} is a broken symbolic link"
                )
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"cannot use the store {store}: {probe} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UserError(f"cannot use the store {store}: {probe} is not writable")
    except OSError as err:
        raise UserError(
            f"cannot use the store {store}: {err.strerror or err}"
        ) from None


def ensure_writable(store: str | Path) -> None:
    """check_store, then create `<store>/runs`. Fail before training, not after."""
    check_store(store)
    folder = runs_dir(store)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create the store folder {folder}: {err.strerror}"
        ) from None
