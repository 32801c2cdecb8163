"""A cache of a store's checked rows, so that reading a store of thousands of shards
costs one file instead of thousands (each small Parquet file costs milliseconds to
open, whatever its size).

`<store>/.cache/shards.arrow` is an Arrow IPC file of rows already read, checked and
cast to the schema, grouped by shard. Its metadata names, per shard, the file it was
read from by stamp (size, modification time in ns, inode) and where its rows are. A
shard is taken from the cache only while its file has that very stamp: a rewritten,
replaced or copied file has another one and is read again. The cache never decides
what a store holds (the folder's listing does), so deleting it, or a store where it
cannot be written, costs time and nothing else.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyarrow import ipc

Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class Entry:
    """One shard as the cache holds it."""

    name: str  # the file's name in the store's runs folder
    stamp: Stamp  # the file's, when it was read
    table: pa.Table  # its rows, checked and cast to the schema
    current: bool  # whether the file has the current schema (else readers upgrade it)


FORMAT = "1"  # bump when the layout below changes
_KEY = b"noisebench.shard_cache"


def cache_path(store: str | Path) -> Path:
    return Path(store) / ".cache" / "shards.arrow"


def stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def load(store: str | Path, schema: pa.Schema) -> dict[str, Entry]:
    """The cached shards by file name; empty when there is no usable cache (missing,
    unreadable, another layout or schema)."""
    try:
        with pa.memory_map(str(cache_path(store))) as source:
            table = ipc.open_file(source).read_all()
        index = json.loads((table.schema.metadata or {})[_KEY])
        if index["format"] != FORMAT or not table.schema.remove_metadata().equals(
            schema
        ):
            return {}
        return {
            name: Entry(
                name,
                tuple(entry["stamp"]),
                table.slice(entry["start"], entry["rows"]),
                entry["current"],
            )
            for name, entry in index["shards"].items()
        }
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError):
        return {}


def save(store: str | Path, shards: list[Entry], schema: pa.Schema) -> None:
    """Replace the cache with these shards, atomically; silently nothing where the
    store cannot take it (read-only, full): the cache only saves time."""
    index, start = {}, 0
    for e in shards:
        index[e.name] = {
            "stamp": list(e.stamp),
            "start": start,
            "rows": len(e.table),
            "current": e.current,
        }
        start += len(e.table)
    tables = [e.table for e in shards]
    # one record batch, uncompressed: memory-mapped, it loads without a copy, and
    # slicing it per shard costs nothing (per-batch decompression cost 10x the read)
    table = (
        pa.concat_tables(tables) if tables else schema.empty_table()
    ).combine_chunks()
    meta = {_KEY: json.dumps({"format": FORMAT, "shards": index}).encode()}
    table = table.replace_schema_metadata(meta)
    final = cache_path(store)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        final.parent.mkdir(exist_ok=True)
        with (
            pa.OSFile(str(tmp), "wb") as sink,
            ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
        os.replace(tmp, final)
    except (OSError, pa.ArrowException):
        try:
            tmp.unlink(missing_ok=True)
            final.parent.rmdir()  # only if empty: a failed first save leaves nothing
        except OSError:
            pass
