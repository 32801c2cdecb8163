"""Image datasets: PNGs in parquet (the Hugging Face hub's layout) -> uint8 pixel arrays.

A card with `pixels = true` (mnist, fashion_mnist, cifar10, cifar100), a folder holding
`data/train-*.parquet` and `data/test-*.parquet`, or one such parquet file: its image
column holds `{"bytes": PNG bytes, "path": ...}` structs as the hub stores them, or
plain PNG bytes. The PNGs are decoded once, with PIL (`decode.py`), into an (N, C*H*W)
uint8 array in channel, height, width order, cached under `cache_dir()/images`
(`cache.py`) and memory-mapped on later runs, which then need neither PIL, nor
`datasets`, nor the network.

The pixels stay raw (0..255): the engine normalizes them on the device with the card's
per-channel `mean` and `std` (or, when the card gives none, the training pool's).

This file holds the image source itself: loading a card's pixels as a `Dataset`,
reading the splits from the hub (offline when the hub cannot be reached) or a local
parquet, the pixel statistics and the CIFAR-100 superclass map.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from noisebench.data.cache import Pixels, cache_folder, digest, read_cache, write_cache
from noisebench.data.cards import _clip, _line, card_files
from noisebench.data.decode import CHUNK, decode_tables
from noisebench.data.huggingface import _no_progress_bars
from noisebench.data.schema import Card, Dataset
from noisebench.data.validate import (
    _encode,
    class_count,
    clean_test_split,
    encode_test_labels,
)
from noisebench.errors import UserError

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
