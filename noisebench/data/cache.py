"""The caches under `cache_dir()`: .npz arrays of the sources that are slow to build
(scikit-learn's loaders, mnist1d), and the uint8 image cache.

The image cache holds each card's decoded splits under `cache_dir()/images`, which
later runs memory-map. It is keyed by what was decoded: a local folder or file by the
content of its files, a hub dataset by its id, config, splits and columns (the hub's
releases of these datasets are frozen, and reading the hub to learn its revision would
need the network on every run). Each cached array's sha256 is stored beside it and
checked on every load, so a damaged cache is a miss, and that check's digests make
`Dataset.sha`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from noisebench.data.cards import _clip, _data_files, _is_dir, _is_file
from noisebench.data.schema import Card
from noisebench.errors import UserError


def cache_dir() -> Path:
    """$NOISEBENCH_CACHE, else $XDG_CACHE_HOME/noisebench, else ~/.cache/noisebench."""
    if os.environ.get("NOISEBENCH_CACHE"):
        return Path(os.environ["NOISEBENCH_CACHE"])
    return (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noisebench"
    )


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (x, y), or None when the file is missing, unreadable or not ours (a
    miss: the caller rebuilds and overwrites it). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except Exception:  # noqa: BLE001 - a corrupt cache is a cache miss, not an error
        return None
    return (x, y) if x.ndim >= 1 and y.ndim == 1 and len(x) == len(y) else None


def _write_cache(path: Path, **arrays: np.ndarray) -> None:
    """Best effort and atomic: a cache that cannot be written is simply not used."""
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except (OSError, ValueError):  # ValueError: arrays numpy cannot save without pickle
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# the image cache
# --------------------------------------------------------------------------------------


# bump when the cached arrays' layout or meaning changes: older caches become misses
CACHE_FORMAT = 1


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
