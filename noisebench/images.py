"""Image datasets: PNGs in parquet (the Hugging Face hub's layout) -> uint8 pixel arrays.

A card with `pixels = true` (mnist, fashion_mnist, cifar10, cifar100), a folder holding
`data/train-*.parquet` and `data/test-*.parquet`, or one such parquet file: its image
column holds `{"bytes": PNG bytes, "path": ...}` structs as the hub stores them, or
plain PNG bytes. The PNGs are decoded once, with PIL, into an (N, C*H*W) uint8 array in
channel, height, width order, cached under `data.cache_dir()/images` and memory-mapped
on later runs, which then need neither PIL, nor `datasets`, nor the network.

The pixels stay raw (0..255): the engine normalizes them on the device with the card's
per-channel `mean` and `std` (or, when the card gives none, the training pool's).

The cache is keyed by what was decoded: a local folder or file by the content of its
files, a hub dataset by its id, config, splits and columns (the hub's releases of these
datasets are frozen, and reading the hub to learn its revision would need the network
on every run). Each cached array's sha256 is stored beside it and checked on every
load, so a damaged cache is a miss, and that check's digests make `Dataset.sha`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shlex
import shutil
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from noisebench.data import (
    AUGMENT_FIELDS,
    LABEL_COLUMN,
    Card,
    Dataset,
    _check_field,
    _clip,
    _column_values,
    _encode,
    _is_dir,
    _is_file,
    _labels,
    _no_progress_bars,
    cache_dir,
    card_files,
    class_count,
    clean_test_split,
    encode_test_labels,
)
from noisebench.errors import UserError, did_you_mean

# bump when the cached arrays' layout or meaning changes: older caches become misses
CACHE_FORMAT = 1
MAX_SIDE = 4096  # pixels; checked from the PNG header, before decoding
CHUNK = 4096  # rows decoded, hashed or counted at a time
GREY, RGB = 1, 3


@dataclass(frozen=True)
class Pixels:
    """Decoded splits, as cached: raw labels, images (N, C*H*W) uint8 in C, H, W order."""

    x: np.ndarray
    y: np.ndarray
    shape: tuple[int, int, int]  # (C, H, W)
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    superclass: np.ndarray | None = None  # per training row, for class_map "superclass"
    digests: dict[str, str] = field(default_factory=dict)  # sha256 per array
    fingerprints: dict[str, str] = field(default_factory=dict)  # `datasets`' own
    where: Path | None = None  # the cache folder, None when it could not be written

    def arrays(self) -> dict[str, np.ndarray]:
        named = {
            "x": self.x,
            "y": self.y,
            "x_test": self.x_test,
            "y_test": self.y_test,
            "superclass": self.superclass,
        }
        return {k: v for k, v in named.items() if v is not None}


# --------------------------------------------------------------------------------------
# cards
# --------------------------------------------------------------------------------------


def check_image_fields(where: str, raw: dict[str, Any]) -> None:
    """How a card's image keys fit together (each key's own type is checked already)."""
    for key, value in raw.get("augment", {}).items():
        if key not in AUGMENT_FIELDS:
            raise UserError(
                f"{where}: unknown augmentation '{key}'{did_you_mean(key, AUGMENT_FIELDS)}; "
                f"[augment] takes: {', '.join(AUGMENT_FIELDS)}"
            )
        _check_field(where, f"augment.{key}", value, AUGMENT_FIELDS[key])
    if "augment" in raw and "image_shape" not in raw:
        raise UserError(
            f"{where}: [augment] needs image_shape (it crops and flips images)"
        )
    superclass = raw.get("class_map") == "superclass"
    if superclass and "superclass_column" not in raw:
        raise UserError(
            f'{where}: class_map = "superclass" needs superclass_column (e.g. "coarse_label")'
        )
    if "superclass_column" in raw and not superclass:
        raise UserError(
            f'{where}: superclass_column is read only for class_map = "superclass"'
        )
    names, k = raw.get("class_names"), raw.get("num_classes")
    if names is not None and k is not None and len(names) != k:
        raise UserError(f"{where}: {len(names)} class_names for num_classes = {k}")
    if not raw.get("pixels", False):
        for key in ("image_column", "mean", "std"):
            if key in raw:
                raise UserError(f"{where}: {key} needs pixels = true")
        if superclass:
            raise UserError(f'{where}: class_map = "superclass" needs pixels = true')
        return
    _check_pixel_card(where, raw)


def _check_pixel_card(where: str, raw: dict[str, Any]) -> None:
    source = raw["source"]
    if source not in ("huggingface", "file"):
        raise UserError(
            f"{where}: pixels = true needs source huggingface or file (parquet images), "
            f"not {source}"
        )
    if source == "file" and Path(raw["path"]).suffix != ".parquet":
        raise UserError(f"{where}: pixels = true needs a .parquet file of images")
    if "image_shape" not in raw:
        raise UserError(
            f"{where}: pixels = true needs image_shape = [channels, height, width]"
        )
    channels = raw["image_shape"][0]
    if channels not in (GREY, RGB):
        raise UserError(
            f"{where}: image_shape must have 1 (grey) or 3 (RGB) channels for pixels, "
            f"got {channels}"
        )
    if raw.get("standardize", False):
        raise UserError(
            f"{where}: standardize must be false for pixels: they are normalized on the "
            "device with mean and std"
        )
    if "features" in raw:
        raise UserError(
            f"{where}: features does not apply to pixels (see image_column)"
        )
    if ("mean" in raw) != ("std" in raw):
        raise UserError(f"{where}: give mean and std together, or neither")
    for key in ("mean", "std"):
        if key in raw and len(raw[key]) != channels:
            raise UserError(
                f"{where}: {key} has {len(raw[key])} values for {channels} channel(s)"
            )
    columns = [
        (key, raw.get(key, default))
        for key, default in (
            ("image_column", None),
            ("label", LABEL_COLUMN),
            ("superclass_column", None),
        )
    ]
    seen: dict[str, str] = {}
    for key, column in columns:
        if column is not None and column in seen:
            raise UserError(
                f"{where}: {key} and {seen[column]} name the same column '{column}'"
            )
        if column is not None:
            seen[column] = key


def folder_card(path: Path) -> Card:
    """`--dataset FOLDER`: parquet images as on the hub (data/train-*.parquet, and
    data/test-*.parquet for a clean test split), read through `datasets`."""
    files = _data_files(path)
    if not any(f.suffix == ".parquet" for f in files):
        raise UserError(
            f"{_clip(str(path), 300)}: a dataset folder needs parquet files of images "
            "(data/train-*.parquet, data/test-*.parquet, as on the Hugging Face hub)"
        )
    tested = any(f.suffix == ".parquet" and f.name.startswith("test") for f in files)
    return Card(
        name=path.resolve().name or "images",
        source="huggingface",
        options={"path": str(path), **({"test_split": "test"} if tested else {})},
        pixels=True,
        standardize=False,
        origin=str(path),
    )


def parquet_card(path: Path) -> Card:
    """`--dataset FILE.parquet` whose columns include images: one split, from which the
    clean test split is held out as for any table."""
    return Card(
        name=path.stem,
        source="file",
        options={"path": str(path)},
        pixels=True,
        standardize=False,
        origin=str(path),
    )


def has_image_column(path: Path) -> bool:
    """Whether a parquet file's schema has a column of images (cheap: no rows read)."""
    try:
        import pyarrow.parquet as pq

        return bool(_image_columns(pq.read_schema(path)))
    except Exception:  # noqa: BLE001 - unreadable: the table loader will say why
        return False


def _image_columns(schema: Any) -> list[str]:
    """Columns holding images: the hub's {bytes, path} structs, or plain binary."""
    import pyarrow as pa

    def binary(t: Any) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t)

    out = []
    for f in schema:
        t = f.type
        if binary(t) or (
            pa.types.is_struct(t)
            and t.get_field_index("bytes") >= 0
            and binary(t.field("bytes").type)
        ):
            out.append(f.name)
    return out


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------


def load_images(card: Card) -> Dataset:
    """The card's pixels as a Dataset: uint8 (N, C*H*W), the clean test split (the
    source's own, or held out as for tables), the class map, mean and std."""
    pixels = cache_images(card)
    if card.image_shape is not None and tuple(card.image_shape) != pixels.shape:
        raise UserError(
            f"dataset card {card.origin}: image_shape {list(card.image_shape)}, but the "
            f"images are {list(pixels.shape)} (channels, height, width)"
        )
    card = replace(card, image_shape=pixels.shape)
    classes, y_all = _encode(card, pixels.y)
    k = class_count(card, classes)
    if card.class_map == "superclass":
        class_map = superclass_map(card, classes, y_all, pixels.superclass)
    else:
        class_map = card.class_map
    if pixels.x_test is None:
        pool, held = clean_test_split(card, y_all)
        x, y, x_test, y_test = pixels.x[pool], y_all[pool], pixels.x[held], y_all[held]
    else:
        x, y, x_test = pixels.x, y_all, pixels.x_test
        y_test = encode_test_labels(card, classes, pixels.y_test)
    mean, std = _normalization(card, x, pixels.shape[0])
    # the pixels were hashed when the cache was read (or written): hashed once a run
    parts = [
        pixels.digests["x"] if x is pixels.x else digest(x),
        digest(y),
        pixels.digests["x_test"] if x_test is pixels.x_test else digest(x_test),
        digest(y_test),
        json.dumps([list(mean), list(std)]),  # they shape the inputs, as pixels do
    ]
    sha = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return Dataset(
        card.name,
        x,
        y,
        x_test,
        y_test,
        num_classes=k,
        card=card,
        sha=sha,
        class_map=class_map,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def _normalization(
    card: Card, pool: np.ndarray, channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The card's mean and std, else the training pool's own (never the test split's)."""
    if card.mean is not None and card.std is not None:
        return card.mean, card.std
    mean, std = pixel_stats(pool, channels)
    flat = [c for c, s in enumerate(std) if s == 0]
    if flat:
        raise UserError(
            f"dataset {card.name}: channel {flat[0]} has the same value in every "
            "training image (std 0); give mean and std in a card"
        )
    return mean, std


def cache_images(
    card: Card, *, refresh: bool = False, progress: bool = False
) -> Pixels:
    """The card's decoded splits: from the cache when it holds them intact (unless
    `refresh`), else read from the source, decoded and cached."""
    folder = cache_folder(card)
    if not refresh:
        hit = read_cache(folder)
        if hit is not None:
            return hit
    tables, fingerprints = _source_tables(card, progress=progress)
    pixels = decode_tables(card, tables)
    pixels = replace(pixels, fingerprints=fingerprints)
    return write_cache(folder, pixels)


def cache_folder(card: Card) -> Path:
    return cache_dir() / "images" / f"{_slug(card)}-{cache_key(card)}"


def cache_key(card: Card) -> str:
    """What the decoded arrays depend on: the source's content (or hub id) and columns."""
    opts = card.options
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "source": card.source,
        **{
            key: opts.get(key)
            for key in ("config", "split", "test_split", "image_column", "label")
        },
        "superclass": opts.get("superclass_column")
        if card.class_map == "superclass"
        else None,
    }
    location = Path(opts["path"])
    if card.source == "file":
        if not _is_file(location):
            raise UserError(f"data file not found: {_clip(str(location), 500)}")
        parts["content"] = _file_digest(location)
    elif _is_dir(location):
        parts["content"] = {
            f.relative_to(location).as_posix(): _file_digest(f)
            for f in _data_files(location)
        }
    else:
        parts["hub"] = opts["path"]
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _data_files(folder: Path) -> list[Path]:
    """A dataset folder's files, hidden ones (.git, .cache) left out."""
    try:
        return sorted(
            f
            for f in folder.rglob("*")
            if f.is_file()
            and not any(p.startswith(".") for p in f.relative_to(folder).parts)
        )
    except OSError as err:
        raise UserError(f"cannot read {_clip(str(folder), 300)}: {err}") from None


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    except OSError as err:
        raise UserError(f"cannot read {_clip(str(path), 300)}: {err}") from None
    return h.hexdigest()


def _slug(card: Card) -> str:
    """A readable, safe folder-name prefix: the source's last path component."""
    name = Path(card.options["path"]).name or card.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "images"


def _source_tables(card: Card, *, progress: bool) -> tuple[dict[str, Any], dict]:
    """{"train": table, "test": table or absent} as pyarrow, and `datasets`' fingerprints."""
    opts = card.options
    if card.source == "file":
        return {"train": _read_parquet(Path(opts["path"]))}, {}
    import datasets

    tables, fingerprints = {}, {}
    for role, split in (
        ("train", opts.get("split", "train")),
        ("test", opts.get("test_split")),
    ):
        if split is None:
            continue
        quiet = nullcontext() if progress else _no_progress_bars(datasets)
        try:
            with quiet, _hub_logs_silenced(), _offline_unless_reachable(opts["path"]):
                ds = datasets.load_dataset(
                    opts["path"], name=opts.get("config"), split=split
                )
            # raw arrow: the image column stays PNG bytes, no PIL objects per row
            tables[role] = ds.with_format("arrow")[:]
        except Exception as err:  # noqa: BLE001 - whatever `datasets` raises, say it in one line
            raise _load_error(card, split, err) from None
        fingerprints[role] = str(getattr(ds, "_fingerprint", ""))
    return tables, fingerprints


@contextmanager
def _hub_logs_silenced() -> Iterator[None]:
    """huggingface_hub logs a warning per retry of a failed request ('Retrying in 1s
    ...'): our one-line error says it better."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _offline_unless_reachable(path: str) -> Iterator[None]:
    """With no route to the hub, `datasets` retries for about 30 s before it gives up.
    A hub id whose host does not answer a TCP connection within 3 s is loaded in
    offline mode instead: from the Hugging Face cache if it is there, or failing at
    once. Local folders, an explicit offline mode and proxies (which a direct
    connection cannot judge) go through unchanged."""
    import huggingface_hub.constants as hub

    import datasets

    proxied = any(
        os.environ.get(v)
        for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    )
    if Path(path).exists() or hub.HF_HUB_OFFLINE or proxied or _reachable(hub.ENDPOINT):
        yield
        return
    saved = hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


def _read_parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(
            f"cannot read {_clip(str(path), 300)}: {type(err).__name__}: {_line(err)}"
        ) from None
    names = table.column_names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{path}: duplicate column names {', '.join(twice)}")
    return table


_OFFLINE = {
    "ConnectionError",
    "ConnectError",
    "ConnectTimeout",
    "TimeoutError",
    "Timeout",
    "ReadTimeout",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
}


def _load_error(card: Card, split: str, err: Exception) -> UserError:
    """Offline with nothing cached says what to run once online; anything else says
    what `datasets` said, on one line."""
    kinds = {t.__name__ for t in type(err).__mro__}
    if kinds & _OFFLINE:
        return UserError(
            f"dataset {card.name} is not cached here and the Hugging Face hub cannot be "
            f"reached ({type(err).__name__}); when online, run: {download_command(card)}"
        )
    return UserError(
        f"cannot load Hugging Face dataset '{_clip(card.options['path'], 200)}' "
        f"(split {split}): {type(err).__name__}: {_line(err)}"
    )


def download_command(card: Card) -> str:
    shipped = card_files().get(card.name)
    target = (
        card.name
        if shipped is not None and str(shipped) == card.origin
        else card.origin
    )
    return f"noisebench datasets download {shlex.quote(target)}"


def _line(err: BaseException, limit: int = 300) -> str:
    return _clip(" ".join(str(err).split()), limit)


# --------------------------------------------------------------------------------------
# decoding (the one place PIL is used)
# --------------------------------------------------------------------------------------


def decode_tables(card: Card, tables: dict[str, Any]) -> Pixels:
    """Decode each split's images and read its labels (and superclasses)."""
    train = tables["train"]
    x, y, shape = _decode_split(card, train, "training")
    superclass = None
    if card.class_map == "superclass":
        column = card.options["superclass_column"]
        superclass = _labels(card, _column(card, train, column, "training"), "training")
    x_test = y_test = None
    if "test" in tables:
        x_test, y_test, test_shape = _decode_split(card, tables["test"], "test")
        if test_shape != shape:
            raise UserError(
                f"dataset {card.name}: the test split's images are {list(test_shape)}, "
                f"the training split's {list(shape)} (channels, height, width)"
            )
    return Pixels(x, y, shape, x_test, y_test, superclass)


def _decode_split(card: Card, table: Any, what: str):
    where = f"dataset {card.name} ({what} split)"
    if table.num_rows == 0:
        raise UserError(f"{where}: the data has no rows")
    column = card.options.get("image_column") or _the_image_column(where, table)
    y = _labels(
        card, _column(card, table, card.options.get("label", LABEL_COLUMN), what), what
    )
    x, shape = decode_images(
        f"{where}, column '{column}'", _png_bytes(where, table, column)
    )
    return x, y, shape


def _the_image_column(where: str, table: Any) -> str:
    found = _image_columns(table.schema)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(
            f"{where}: no image column (PNG bytes, or structs of bytes and path); "
            f"columns: {_clip(', '.join(table.column_names), 200)}"
        )
    raise UserError(
        f"{where}: several image columns ({', '.join(found)}); name one in a card's image_column"
    )


def _column(card: Card, table: Any, name: str, what: str) -> np.ndarray:
    if name not in table.column_names:
        raise UserError(
            f"dataset {card.name} ({what} split): no '{name}' column "
            f"(columns: {_clip(', '.join(table.column_names), 200)})"
        )
    return _column_values(table.column(name))


def _png_bytes(where: str, table: Any, name: str) -> Any:
    """The column's PNG bytes as one pyarrow binary array, every row present."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        raise UserError(
            f"{where}: no image column '{name}' "
            f"(columns: {_clip(', '.join(table.column_names), 200)})"
        )
    if name not in _image_columns(table.schema):
        raise UserError(
            f"{where}: column '{name}' must hold PNG bytes (binary, or structs with "
            f"'bytes' as the hub stores images), not {table.schema.field(name).type}"
        )
    values = table.column(name).combine_chunks()
    if pa.types.is_struct(values.type):
        missing = values.is_null()
        values = values.field("bytes")
        missing = pc.or_(missing, values.is_null())
    else:
        missing = values.is_null()
    absent = pc.sum(missing).as_py() or 0
    if absent:
        raise UserError(
            f"{where}: {absent} of {len(values)} rows of column '{name}' have no image bytes"
        )
    return values


def decode_images(where: str, values: Any) -> tuple[np.ndarray, tuple[int, int, int]]:
    """PNGs -> (N, C*H*W) uint8, each image flattened in channel, height, width order.
    Every image must have the first one's size and channels."""
    out: np.ndarray | None = None
    first: tuple[int, int, int] = (0, 0, 0)
    for start in range(0, len(values), CHUNK):
        for i, data in enumerate(values.slice(start, CHUNK).to_pylist(), start):
            image = decode_png(f"{where}: image {i}", data)
            if out is None:
                first = image.shape
                out = np.empty((len(values), image.size), dtype=np.uint8)
            elif image.shape != first:
                raise UserError(_mismatch(where, i, image.shape, first))
            out[i] = image.reshape(-1)
    assert out is not None  # values has rows: checked by the caller
    return out, first


def _mismatch(where: str, i: int, shape: tuple, first: tuple) -> str:
    if shape[0] != first[0]:
        return (
            f"{where}: image {i} has {shape[0]} channel(s), image 0 has {first[0]}; "
            "every image needs the same channels (grey or RGB)"
        )
    return (
        f"{where}: image {i} is {shape[1]}x{shape[2]} (height x width), image 0 is "
        f"{first[1]}x{first[2]}; every image needs the same size"
    )


def decode_png(where: str, data: bytes) -> np.ndarray:
    """One PNG -> (C, H, W) uint8: grey (L, or 1 as 0/255) has C = 1, RGB (or a palette,
    expanded) C = 3. PNG only: lossless, so the cached pixels are the stored ones on
    every machine (a JPEG decoder may differ by a pixel value here and there)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            width, height = image.size
            if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
                raise UserError(
                    f"{where} is {height}x{width}: sides must lie in [1, {MAX_SIDE}]"
                )
            mode = image.mode
            if mode in ("L", "RGB"):
                pixels = np.asarray(image)
            elif mode in ("1", "P"):
                pixels = np.asarray(image.convert("L" if mode == "1" else "RGB"))
            else:
                raise UserError(
                    f"{where} is {mode}; images must be 8-bit grey (L) or RGB"
                )
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many kinds for bad bytes
        raise UserError(
            f"{where} is not a readable PNG ({type(err).__name__}: {_line(err, 120)})"
        ) from None
    if pixels.ndim == 2:
        return pixels[None]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # H, W, C -> C, H, W


# --------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------

_MMAP = ("x", "x_test")  # the pixels; labels are small and read whole


def read_cache(folder: Path) -> Pixels | None:
    """The cached splits, or None when missing, unreadable, damaged (a digest differs)
    or of another format: a miss, rebuilt by the caller. Never unpickles."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT:
            return None
        arrays, digests = {}, {}
        for name, info in meta["arrays"].items():
            if name not in ("x", "y", "x_test", "y_test", "superclass"):
                return None
            mode = "r" if name in _MMAP else None
            a = np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
            a = np.asarray(a)  # a plain (read-only) view of the map
            if list(a.shape) != info["shape"] or a.dtype.str != info["dtype"]:
                return None
            digests[name] = digest(a)
            if digests[name] != info["sha256"]:
                return None
            arrays[name] = a
        shape = tuple(int(d) for d in meta["image_shape"])
        pixels = Pixels(
            shape=shape,  # type: ignore[arg-type]
            digests=digests,
            fingerprints=dict(meta.get("fingerprints", {})),
            where=folder,
            **arrays,
        )
    except Exception:  # noqa: BLE001 - a damaged cache is a cache miss, not an error
        return None
    return pixels if _consistent(pixels) else None


def _consistent(p: Pixels) -> bool:
    def fits(x: np.ndarray | None, y: np.ndarray | None) -> bool:
        return (
            x is not None
            and y is not None
            and x.dtype == np.uint8
            and x.ndim == 2
            and x.shape[1] == math.prod(p.shape)
            and y.ndim == 1
            and len(x) == len(y) > 0
        )

    test = (p.x_test is None and p.y_test is None) or fits(p.x_test, p.y_test)
    extra = p.superclass is None or p.superclass.shape == p.y.shape
    return len(p.shape) == 3 and fits(p.x, p.y) and test and extra


def write_cache(folder: Path, pixels: Pixels) -> Pixels:
    """Cache the decoded splits (best effort: an unwritable cache is simply not used),
    written whole in a temporary folder and then renamed into place."""
    digests = {name: digest(a) for name, a in pixels.arrays().items()}
    pixels = replace(pixels, digests=digests)
    meta = {
        "format": CACHE_FORMAT,
        "image_shape": list(pixels.shape),
        "fingerprints": pixels.fingerprints,
        "arrays": {
            name: {
                "shape": list(a.shape),
                "dtype": a.dtype.str,
                "sha256": digests[name],
            }
            for name, a in pixels.arrays().items()
        },
    }
    tmp = folder.with_name(f".{folder.name}-{os.getpid()}.tmp")
    old = folder.with_name(f".{folder.name}-{os.getpid()}.old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, a in pixels.arrays().items():
            np.save(tmp / f"{name}.npy", a, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if folder.exists():  # a damaged cache: moved aside, then removed
            os.replace(folder, old)
        os.replace(tmp, folder)  # fails if another process has just put one there
    except (OSError, ValueError):
        return pixels
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return replace(pixels, where=folder)


def digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes, read in place (a memory map too)."""
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    flat = np.ascontiguousarray(a).reshape(-1)
    h.update(flat.view(np.uint8) if flat.size else b"")
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# statistics and the CIFAR-100 class map
# --------------------------------------------------------------------------------------


def pixel_stats(
    x: np.ndarray, channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of x / 255 (torchvision's units), over
    every pixel of every image: exact, from each channel's histogram of the 256 values,
    in float64 (the population std, not an average of per-image stds)."""
    per = x.shape[1] // channels
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(x), CHUNK):
        block = np.asarray(x[start : start + CHUNK]).reshape(-1, channels, per)
        for c in range(channels):
            counts[c] += np.bincount(block[:, c].reshape(-1), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255
    total = counts.sum(axis=1).astype(np.float64)
    mean = counts @ values / total
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return tuple(mean.tolist()), tuple(np.sqrt(var).tolist())


def superclass_map(
    card: Card, classes: list, fine: np.ndarray, coarse: np.ndarray | None
) -> dict[int, int]:
    """Each class -> the next class of its own superclass, cyclically, in increasing
    class order (CIFAR-100's asymmetric noise), read from the training split's
    superclass column: never assumed to be blocks of 5 consecutive classes. A
    superclass of one class maps nothing."""
    assert coarse is not None and len(coarse) == len(fine)
    groups, coarse_idx = np.unique(coarse, return_inverse=True)
    pairs = np.unique(np.stack([fine, coarse_idx.reshape(-1)], axis=1), axis=0)
    per_class = np.bincount(pairs[:, 0], minlength=len(classes))
    split = np.flatnonzero(per_class > 1)
    if split.size:
        c = int(split[0])
        where = [groups[g] for g in pairs[pairs[:, 0] == c, 1]]
        raise UserError(
            f"dataset {card.name}: class {classes[c]!r} lies in {len(where)} superclasses "
            f"({', '.join(repr(w.item()) for w in where[:4])}); each class needs exactly one"
        )
    out: dict[int, int] = {}
    for g in range(len(groups)):
        members = sorted(int(c) for c in pairs[pairs[:, 1] == g, 0])
        if len(members) > 1:
            out.update(zip(members, members[1:] + members[:1], strict=True))
    return dict(sorted(out.items()))
