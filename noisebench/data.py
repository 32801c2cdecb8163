"""Dataset cards -> arrays: scikit-learn, Hugging Face datasets, and local files.

A card is a TOML file in `datasets/` (see `digits.toml`). It names the source, the
clean test split, the asymmetric class map and the training defaults. A user's own
table is loaded straight from `--dataset path/to/file.{parquet,csv,npz}`. The clean
test split is fixed per dataset and never depends on the run's seed. Image datasets
(`pixels = true`: MNIST, CIFAR, a folder or parquet of PNGs) are decoded and cached by
`noisebench.images`.

Cards and data are untrusted: every card field is checked against `CARD_FIELDS` and
`SOURCE_OPTIONS`, and every table against the rules in `_features`, `_labels` and
`_encode`, so bad input is a `UserError` before anything trains.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisebench.errors import UserError, did_you_mean, dtype_name, unknown
from noisebench.registry import builtin_dir
from noisebench.sampling import derive_seed, largest_remainder

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SOURCES = ("sklearn", "huggingface", "file", "mnist1d")
TABLE_SUFFIXES = (".parquet", ".csv", ".npz")
LABEL_COLUMN = "label"
# A stated limit: noise builds a K x K float64 matrix (800 MB at this K), so more
# classes than this is refused up front instead of exhausting memory later.
MAX_CLASSES = 10_000


@dataclass(frozen=True)
class Card:
    """Where a dataset comes from and how it is split; `train` holds training defaults."""

    name: str
    source: str
    description: str = ""
    num_classes: int | None = None
    test_fraction: float = 0.2
    split_seed: int = 0
    standardize: bool = True
    # the card's table, or "superclass": each class goes to the next one within its
    # true superclass, read from the data (Dataset.class_map holds the result)
    class_map: dict[int, int] | str | None = None
    # (channels, height, width) when the features are an image's pixels, row-major:
    # image models (--model cnn) see them so, the others as a flat vector
    image_shape: tuple[int, ...] | None = None
    # (channels, length) when the features are a signal's samples: for --model cnn1d
    signal_shape: tuple[int, ...] | None = None
    # the features are raw 0..255 pixels, stored as uint8 in channel, height, width
    # order and normalized on the device with `mean` and `std` (in [0, 1] units)
    pixels: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # per-batch augmentation on the device: crop_padding (int), flip (horizontal)
    augment: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # source-specific settings
    origin: str = ""


@dataclass(frozen=True)
class Dataset:
    """A training pool (to be corrupted and split into train/val) and a clean test set."""

    name: str
    x: np.ndarray  # (N, D) float32; pixels: (N, C*H*W) uint8, often memory-mapped
    y: np.ndarray  # (N,) int64, clean labels
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    card: Card
    sha: str  # content hash of all four arrays (and, for pixels, of mean and std)
    class_map: dict[int, int] | None = None  # the asymmetric noise's map, resolved
    # per-channel normalization of pixels, (x / 255 - mean) / std; None otherwise
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        return self.card.image_shape


# --------------------------------------------------------------------------------------
# the card schema
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardField:
    """One card key: `check(value)` says whether the value is valid, and `rule` finishes
    the sentence "<key> must be ..." when it is not."""

    check: Callable[[Any], bool]
    rule: str
    required: bool = False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(_is_text(v) for v in value)
        and len(set(value)) == len(value)
    )


def _is_loader(value: Any) -> bool:
    # only scikit-learn's dataset functions, never an arbitrary attribute of the module
    return (
        isinstance(value, str) and re.fullmatch(r"(load|fetch)_\w+", value) is not None
    )


def _is_table_file(value: Any) -> bool:
    return _is_text(value) and Path(value).suffix in TABLE_SUFFIXES


def _is_unit_list(value: Any, *, low_open: bool) -> bool:
    """A per-channel list (1 or 3 values: grey or RGB) of numbers in [0, 1] or (0, 1]."""
    return (
        isinstance(value, list)
        and len(value) in (1, 3)
        and all(
            _is_real(v) and (0 < v <= 1 if low_open else 0 <= v <= 1) for v in value
        )
    )


CARD_FIELDS: dict[str, CardField] = {
    "name": CardField(_is_text, "a non-empty string"),
    "source": CardField(lambda v: v in SOURCES, f"one of {', '.join(SOURCES)}", True),
    "description": CardField(lambda v: isinstance(v, str), "a string"),
    "num_classes": CardField(
        lambda v: _is_int(v) and 2 <= v <= MAX_CLASSES,
        f"an integer in [2, {MAX_CLASSES}]",
    ),
    # a test split of 0 (or 1) is empty (or leaves no training data): NaN metrics
    "test_fraction": CardField(
        lambda v: _is_real(v) and 0 < v < 1, "a number strictly between 0 and 1"
    ),
    "split_seed": CardField(lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "standardize": CardField(lambda v: isinstance(v, bool), "true or false"),
    "image_shape": CardField(
        lambda v: (
            isinstance(v, list)
            and len(v) == 3
            and all(_is_int(d) and 1 <= d <= 4096 for d in v)
        ),
        "[channels, height, width], positive integers",
    ),
    "signal_shape": CardField(
        lambda v: (
            isinstance(v, list)
            and len(v) == 2
            and all(_is_int(d) and 1 <= d <= 1 << 20 for d in v)
        ),
        "[channels, length], positive integers",
    ),
    # entries are checked by _class_map, values of [train] by TrainConfig
    "class_map": CardField(
        lambda v: isinstance(v, dict) or v == "superclass",
        'a table of class = class, or "superclass"',
    ),
    "class_names": CardField(
        lambda v: _is_names(v) and len(v) <= MAX_CLASSES,
        "a list of distinct non-empty strings, one per class",
    ),
    # images (noisebench.images checks how these fit together)
    "pixels": CardField(lambda v: isinstance(v, bool), "true or false"),
    "mean": CardField(
        lambda v: _is_unit_list(v, low_open=False),
        "a list of 1 or 3 numbers in [0, 1], one per channel",
    ),
    "std": CardField(
        lambda v: _is_unit_list(v, low_open=True),
        "a list of 1 or 3 numbers in (0, 1], one per channel",
    ),
    "augment": CardField(
        lambda v: isinstance(v, dict), "a table of augmentations (crop_padding, flip)"
    ),
    "train": CardField(lambda v: isinstance(v, dict), "a table of training settings"),
}

AUGMENT_FIELDS: dict[str, CardField] = {
    "crop_padding": CardField(
        lambda v: _is_int(v) and 0 <= v <= 4096, "an integer in [0, 4096]"
    ),
    "flip": CardField(lambda v: isinstance(v, bool), "true or false"),
}

SOURCE_OPTIONS: dict[str, dict[str, CardField]] = {
    "sklearn": {
        "loader": CardField(
            _is_loader, "the name of a scikit-learn load_*/fetch_* function", True
        ),
    },
    "huggingface": {
        "path": CardField(_is_text, "a hub id or a local folder", True),
        "config": CardField(_is_text, "a non-empty string"),
        "split": CardField(_is_text, "a non-empty string"),
        "test_split": CardField(_is_text, "a non-empty string"),
        "label": CardField(_is_text, "a non-empty string"),
        "features": CardField(_is_names, "a non-empty list of distinct column names"),
        "image_column": CardField(_is_text, "a non-empty string"),
        "superclass_column": CardField(_is_text, "a non-empty string"),
    },
    "mnist1d": {
        "num_samples": CardField(
            lambda v: _is_int(v) and 100 <= v <= 1_000_000,
            "an integer in [100, 1000000]",
        ),
        "seed": CardField(lambda v: _is_int(v) and 0 <= v < 2**32, "an integer >= 0"),
    },
    "file": {
        "path": CardField(
            _is_table_file, f"a file path ending in {', '.join(TABLE_SUFFIXES)}", True
        ),
    },
}


def card_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir("datasets").glob("*.toml"))}


def list_cards() -> list[Card]:
    return [read_card(path) for path in card_files().values()]


def read_card(path: str | Path) -> Card:
    """Read and validate a card: every field's type and range, the source's options,
    the class map and the [train] table. Any problem is a UserError naming the file."""
    path = Path(path)
    raw = _read_toml(path)
    where = f"dataset card {path}"
    source = raw.get("source")
    _check_field(where, "source", source, CARD_FIELDS["source"])
    schema = {**CARD_FIELDS, **SOURCE_OPTIONS[source]}
    for key, value in raw.items():
        if key not in schema:
            raise UserError(
                f"{where}: unknown key '{key}'{did_you_mean(key, schema)}; "
                f"a {source} card takes: {', '.join(schema)}"
            )
        _check_field(where, key, value, schema[key])
    for key, spec in schema.items():
        if spec.required and key not in raw:
            raise UserError(f"{where}: '{key}' is required for a {source} card")
    options = {k: v for k, v in raw.items() if k in SOURCE_OPTIONS[source]}
    _check_columns(where, options)
    from noisebench.images import check_image_fields

    check_image_fields(where, raw)
    num_classes = raw.get("num_classes")
    train = dict(raw.get("train", {}))
    from noisebench.config import TrainConfig  # torch-free

    TrainConfig.from_mapping(train, where=f"{where}: [train]")
    class_map = raw.get("class_map", {})
    pixels = raw.get("pixels", False)
    return Card(
        name=raw.get("name", path.stem),
        source=source,
        description=raw.get("description", ""),
        num_classes=num_classes,
        test_fraction=float(raw.get("test_fraction", 0.2)),
        split_seed=raw.get("split_seed", 0),
        # pixels are normalized on the device, never standardized per feature
        standardize=raw.get("standardize", not pixels),
        class_map=class_map
        if isinstance(class_map, str)
        else _class_map(where, class_map, num_classes),
        image_shape=tuple(raw["image_shape"]) if "image_shape" in raw else None,
        signal_shape=tuple(raw["signal_shape"]) if "signal_shape" in raw else None,
        pixels=pixels,
        mean=_floats(raw.get("mean")),
        std=_floats(raw.get("std")),
        augment=dict(raw.get("augment", {})),
        class_names=tuple(raw["class_names"]) if "class_names" in raw else None,
        train=train,
        options=options,
        origin=str(path),
    )


def _floats(values: list | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise UserError(f"cannot read dataset card {path}: {err}") from None
    except UnicodeDecodeError:
        raise UserError(f"dataset card {path} is not UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    # TOMLDecodeError is a ValueError; so is an integer of over 4,300 digits, which
    # tomllib lets through; deep nesting exhausts its recursion
    except (ValueError, RecursionError) as err:
        raise UserError(
            f"dataset card {path} is not valid TOML: {_clip(str(err), 200)}"
        ) from None
    if _has_huge_int(raw):
        # TOML integers are 64-bit; tomllib accepts more, and float() of them overflows
        raise UserError(
            f"dataset card {path} is not valid TOML: an integer does not fit in 64 bits"
        )
    return raw


def _has_huge_int(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_huge_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge_int(v) for v in value)
    return _is_int(value) and not -(2**63) <= value < 2**63


def _check_field(where: str, key: str, value: Any, spec: CardField) -> None:
    if value is None and spec.required:
        raise UserError(f"{where}: '{key}' is required; it must be {spec.rule}")
    if not spec.check(value):
        hint = (
            did_you_mean(value, SOURCES) if key == "source" and _is_text(value) else ""
        )
        raise UserError(
            f"{where}: {key} must be {spec.rule}, got {_short(value)}{hint}"
        )


def _check_columns(where: str, options: dict[str, Any]) -> None:
    """Hugging Face cards: the label must not leak into the features, and the clean
    test split must not be the training split itself."""
    label = options.get("label", LABEL_COLUMN)
    if label in options.get("features", ()):
        raise UserError(
            f"{where}: features must not include the label column '{label}'"
        )
    if options.get("test_split") is not None and options["test_split"] == options.get(
        "split", "train"
    ):
        raise UserError(
            f"{where}: test_split '{options['test_split']}' is the training split itself"
        )


def _class_map(
    where: str, table: dict[str, Any], num_classes: int | None
) -> dict[int, int] | None:
    """TOML keys are strings: '5 = 6' maps class 5 to class 6. Classes are 0..K-1."""
    top = (num_classes or MAX_CLASSES) - 1
    out: dict[int, int] = {}
    for key, value in table.items():
        src = int(key) if re.fullmatch(r"[+-]?[0-9]{1,18}", key.strip()) else None
        if src is None or not _is_int(value):
            raise UserError(
                f"{where}: class_map entries must be class = class (integers), "
                f"got {_short(key)} = {_short(value)}"
            )
        if src < 0 or value < 0:
            raise UserError(
                f"{where}: class_map entry {src} = {value} names a negative class"
            )
        if src > top or value > top:
            raise UserError(
                f"{where}: class_map entry {src} = {value} lies outside 0..{top}"
            )
        out[src] = value
    return out or None


def _short(value: Any) -> str:
    return _clip(repr(value))


def _clip(text: str, limit: int = 60) -> str:
    """A user's value in a message, cut short: a one-line error, not a data dump."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_file(path: Path) -> bool:
    """Path.is_file, but a name the OS refuses (too long, bad bytes) is just not a file."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def resolve_card(dataset: str) -> Card:
    """A card name (`digits`), a card file (`my.toml`), a data file (`my.parquet`; a
    parquet of images in the Hugging Face layout too) or a folder of such parquets."""
    from noisebench import images

    cards = card_files()
    if dataset in cards:
        return read_card(cards[dataset])
    path = Path(dataset)
    if _is_dir(path):
        return images.folder_card(path)
    if path.suffix == ".toml":
        if not _is_file(path):
            raise UserError(f"dataset card not found: {_clip(dataset, 500)}")
        return read_card(path)
    if path.suffix in TABLE_SUFFIXES:
        if not _is_file(path):
            raise UserError(f"data file not found: {_clip(dataset, 500)}")
        if path.suffix == ".parquet" and images.has_image_column(path):
            return images.parquet_card(path)
        return Card(
            name=path.stem, source="file", options={"path": str(path)}, origin=str(path)
        )
    if path.suffix or "/" in dataset:
        raise UserError(
            f"cannot load '{_clip(dataset, 500)}': a data file must end in "
            f"{', '.join(TABLE_SUFFIXES)} (or be a folder of parquet images)"
        )
    raise unknown("dataset", dataset, cards)


# --------------------------------------------------------------------------------------
# loading, encoding and splitting
# --------------------------------------------------------------------------------------


def load_dataset(dataset: str | Card) -> Dataset:
    """Load, encode and split a dataset. The test split is fixed by the card's `split_seed`."""
    card = dataset if isinstance(dataset, Card) else resolve_card(dataset)
    if card.pixels:
        from noisebench.images import load_images

        return load_images(card)
    loaders = {
        "sklearn": _load_sklearn,
        "huggingface": _load_huggingface,
        "file": _load_file,
        "mnist1d": _load_mnist1d,
    }
    x, y, test = loaders[card.source](card)
    x, y_raw = _clean(card, x, y, "training")
    classes, y = _encode(card, y_raw)
    if test is None:
        pool, held = clean_test_split(card, y)
        x, y, x_test, y_test = x[pool], y[pool], x[held], y[held]
    else:
        x_test, y_test_raw = _clean(card, *test, "test")
        if x_test.shape[1] != x.shape[1]:
            raise UserError(
                f"dataset {card.name}: the test split has {x_test.shape[1]} features, "
                f"the training split {x.shape[1]}"
            )
        y_test = encode_test_labels(card, classes, y_test_raw)
    k = class_count(card, classes)
    for name in ("image_shape", "signal_shape"):
        shape = getattr(card, name)
        if shape is not None and int(np.prod(shape)) != x.shape[1]:
            raise UserError(
                f"dataset card {card.origin}: {name} {list(shape)} holds "
                f"{int(np.prod(shape))} values, the data has {x.shape[1]} features"
            )
    if card.standardize:
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0  # constant features (digits' blank corners) stay at 0
        x, x_test = (x - mean) / std, (x_test - mean) / std
    arrays = [
        np.ascontiguousarray(a)
        for a in (x.astype(np.float32), y, x_test.astype(np.float32), y_test)
    ]
    digest = hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()[:16]
    return Dataset(
        card.name,
        *arrays,
        num_classes=k,
        card=card,
        sha=digest,
        class_map=card.class_map if isinstance(card.class_map, dict) else None,
    )


def clean_test_split(card: Card, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pool, held) of the card's clean test split, fixed by its name and split_seed."""
    try:
        return stratified_split(
            y, card.test_fraction, seed=derive_seed("test", card.name, card.split_seed)
        )
    except UserError as err:
        raise UserError(f"dataset {card.name}: clean test split: {err}") from None


def encode_test_labels(card: Card, classes: list, y_test_raw: np.ndarray) -> np.ndarray:
    """A separate test split's labels in the training split's encoding (0..K-1)."""
    lookup = {c: i for i, c in enumerate(classes)}
    unseen = [v for v in y_test_raw.tolist() if v not in lookup]
    if unseen:
        raise UserError(
            f"dataset {card.name}: test label {_short(unseen[0])} never occurs in training"
        )
    return np.array([lookup[v] for v in y_test_raw.tolist()], dtype=np.int64)


def class_count(card: Card, classes: list) -> int:
    """K: the card's num_classes, else the data's; the class map and names must fit it."""
    k = len(classes) if card.num_classes is None else int(card.num_classes)
    if len(classes) > k:
        raise UserError(
            f"dataset {card.name}: card says {k} classes, data has {len(classes)}"
        )
    table = card.class_map if isinstance(card.class_map, dict) else {}
    outside = [(s, d) for s, d in table.items() if max(s, d) >= k]
    if outside:
        s, d = outside[0]
        raise UserError(
            f"dataset card {card.origin}: class_map entry {s} = {d} lies outside "
            f"0..{k - 1} (the data has {k} classes)"
        )
    if card.class_names is not None and len(card.class_names) != k:
        raise UserError(
            f"dataset card {card.origin}: {len(card.class_names)} class_names for "
            f"{k} classes"
        )
    return k


def stratified_split(
    labels: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) sorted index arrays. `held` has exactly round(fraction * n) samples,
    allotted to classes by largest remainder, so every split of the same labels has the
    same size whatever the seed. Every class keeps at least one sample: a split that
    cannot (or that holds nothing) is a UserError."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n_held = round(fraction * labels.size)
    if n_held < 1:
        raise UserError(
            f"a {fraction:g} split of {labels.size} samples holds out no sample"
        )
    if n_held > labels.size - len(classes):
        raise UserError(
            f"a {fraction:g} split of {labels.size} samples in {len(classes)} classes "
            "would leave some class without a sample outside it"
        )
    quota = n_held * counts / labels.size
    per_class = largest_remainder(n_held, counts / labels.size, rng)
    if (per_class >= counts).any():  # rare: tiny classes, or a fraction close to 1
        per_class = _keep_one_per_class(per_class, counts, quota, rng)
    held = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), size=m, replace=False)
            for c, m in zip(classes, per_class, strict=True)
        ]
    )
    mask = np.zeros(labels.size, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _keep_one_per_class(
    per_class: np.ndarray,
    counts: np.ndarray,
    quota: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Take back one sample from every class that would be held out whole, and hold out
    instead samples of the classes furthest below their quota (ties at random), so the
    split keeps its size. The caller made sure that enough room exists."""
    n_held = int(per_class.sum())
    per_class = np.minimum(per_class, counts - 1)
    for _ in range(n_held - int(per_class.sum())):
        room = per_class < counts - 1
        deficit = np.where(room, quota - per_class, -np.inf)
        best = np.flatnonzero(deficit >= deficit.max() - 1e-9)
        per_class[rng.choice(best)] += 1
    return per_class


def _clean(card: Card, x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (features, raw labels) of one split: finite numeric rows, 1-D labels."""
    x = _features(card, x, what)
    y = _labels(card, y, what)
    if len(x) != len(y):
        raise UserError(
            f"dataset {card.name}: {len(x)} feature rows but {len(y)} labels ({what} split)"
        )
    return x, y


def _features(card: Card, x: Any, what: str) -> np.ndarray:
    """(N, D) float32, D >= 1, finite. An (N, H, W) image stack becomes (N, H*W)."""
    where = f"dataset {card.name} ({what} split)"
    try:
        x = np.asarray(x)
    except (TypeError, ValueError):  # ragged rows
        raise UserError(f"{where}: features must be a table of numbers") from None
    if x.dtype.kind not in "biuf":
        raise UserError(f"{where}: features must be numbers, got {dtype_name(x.dtype)}")
    if x.ndim == 0:
        raise UserError(f"{where}: features must be a table of numbers, got a scalar")
    if len(x) == 0:
        raise UserError(f"{where}: the data has no rows")
    x = x.reshape(len(x), -1)
    if x.shape[1] == 0:
        raise UserError(f"{where}: the data has no feature columns")
    with np.errstate(over="ignore"):  # beyond float32's range -> inf, reported below
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(
            f"{where}: features contain NaN or infinite values (or values beyond float32)"
        )
    return x


def _labels(card: Card, y: Any, what: str) -> np.ndarray:
    """1-D integers, whole floats, booleans or strings, none missing: anything else
    (an empty cell, a regression target, a list per row) would become a bogus class."""
    where = f"dataset {card.name} ({what} split)"
    try:
        y = np.asarray(y)
    except (TypeError, ValueError):  # ragged lists
        raise UserError(f"{where}: labels must be one value per row") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(
            f"{where}: labels must be one value per row, got an array of shape {y.shape}"
        )
    if y.dtype.kind == "O":
        y = _plain_labels(where, y)
    kind = y.dtype.kind
    if kind not in "biufUS":
        raise UserError(
            f"{where}: labels must be integers or strings, not {dtype_name(y.dtype)}"
        )
    if kind == "f":
        missing = np.isnan(y)
    elif kind in "US":
        missing = np.char.strip(y) == y.dtype.type()
    else:
        missing = np.zeros(len(y), dtype=bool)
    if missing.any():
        raise UserError(
            f"{where}: {int(missing.sum())} of {len(y)} rows have an empty label"
        )
    if kind == "f":
        fractional = ~np.isfinite(y) | (y != np.floor(y))
        if fractional.any():
            raise UserError(
                f"{where}: labels must be classes, but {int(fractional.sum())} are not "
                f"whole numbers (e.g. {y[fractional][0]:g}); is this a regression target?"
            )
    return y


def _plain_labels(where: str, y: np.ndarray) -> np.ndarray:
    """An object column (pyarrow with nulls, mixed cells) as a typed array."""
    cells = [v.item() if isinstance(v, np.generic) else v for v in y.tolist()]
    empty = sum(
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, (str, bytes)) and not v.strip())
        for v in cells
    )
    if empty:
        raise UserError(f"{where}: {empty} of {len(cells)} rows have an empty label")
    kinds = {type(v) for v in cells}
    odd = kinds - {bool, int, float, str, bytes}
    if odd:
        nested = odd & {list, tuple, dict, np.ndarray}
        what = "lists or structs" if nested else next(iter(odd)).__name__
        raise UserError(
            f"{where}: labels must be one integer or string per row, not {what}"
        )
    text = kinds & {str, bytes}
    if len(text) > 1 or (text and kinds - text):
        raise UserError(f"{where}: labels mix strings and numbers")
    y = np.array(cells)
    if y.dtype.kind == "O":  # Python ints beyond 64 bits
        raise UserError(f"{where}: labels are integers too large to encode")
    return y


def _encode(card: Card, y: np.ndarray) -> tuple[list, np.ndarray]:
    """(sorted distinct labels, labels as 0..K-1). Every class needs two samples: one
    for training and one for the clean test split."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise UserError(
            f"dataset {card.name}: needs at least 2 classes, found {len(classes)}"
        )
    if len(classes) > MAX_CLASSES:
        raise UserError(
            f"dataset {card.name}: {len(classes)} classes, more than the {MAX_CLASSES} "
            "noisebench supports (is the label column a sample id?)"
        )
    rare = int((counts < 2).sum())
    if rare:
        raise UserError(
            f"dataset {card.name}: {rare} of {len(classes)} classes have fewer than 2 "
            "samples; each class needs one for training and one for the clean test split"
        )
    return classes.tolist(), inverse.reshape(-1).astype(np.int64)


def _load_sklearn(card: Card):
    """A scikit-learn loader's (X, y), cached as .npz: importing sklearn alone takes about
    a second, more than a small training run."""
    from importlib.metadata import version

    loader = card.options.get("loader", "")
    key = f"{loader}-sklearn{version('scikit-learn')}"
    cached = (
        cache_dir() / f"{card.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    )
    hit = _read_cache(cached)
    if hit is not None:
        return (*hit, None)
    import sklearn.datasets

    fn = getattr(sklearn.datasets, loader, None)
    if not callable(fn):
        raise UserError(
            f"dataset card {card.origin}: sklearn.datasets has no loader '{loader}'"
        )
    try:
        x, y = fn(return_X_y=True)
    except Exception as err:  # noqa: BLE001 - a loader that cannot run is the card's to fix
        raise UserError(
            f"dataset card {card.origin}: sklearn.datasets.{loader}(return_X_y=True) "
            f"failed: {type(err).__name__}: {err}"
        ) from None
    _write_cache(cached, x=x, y=y)
    return x, y, None


def _load_mnist1d(card: Card):
    """MNIST-1D (Greydanus 2020), generated offline by the mnist1d package's
    `make_dataset()` (never its pickled download) and cached as .npz. Its own 80/20
    train/test split gives the clean test set. `make_dataset` seeds numpy's global
    generator, so that generator's state is put back afterwards."""
    from importlib.metadata import version

    try:
        from mnist1d.data import get_dataset_args, make_dataset
        from mnist1d.utils import ObjectView
    except ImportError:
        raise UserError(
            "the mnist1d card needs the mnist1d package: pip install 'noisebench[mnist1d]'"
        ) from None
    args = get_dataset_args(as_dict=True)
    args |= {k: card.options[k] for k in ("num_samples", "seed") if k in card.options}
    args.pop("url", None)
    key = json.dumps(args, sort_keys=True) + version("mnist1d")
    cached = (
        cache_dir() / f"{card.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    )
    hit = _read_cache(cached)
    if hit is None:
        state = np.random.get_state()
        try:
            data = make_dataset(ObjectView(args))
        finally:
            np.random.set_state(state)
        hit = (
            np.concatenate([data["x"], data["x_test"]]),
            np.concatenate([data["y"], data["y_test"]]),
        )
        _write_cache(cached, x=hit[0], y=hit[1])
    x, y = hit
    train = int(len(y) * args["train_split"])  # the package's own split
    return x[:train], y[:train], (x[train:], y[train:])


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (x, y), or None when the file is missing, unreadable or not ours (a
    miss: the caller rebuilds and overwrites it). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except Exception:  # noqa: BLE001 - a corrupt cache is a cache miss, not an error
        return None
    return (x, y) if x.ndim >= 1 and y.ndim == 1 and len(x) == len(y) else None


def cache_dir() -> Path:
    """$NOISEBENCH_CACHE, else $XDG_CACHE_HOME/noisebench, else ~/.cache/noisebench."""
    if os.environ.get("NOISEBENCH_CACHE"):
        return Path(os.environ["NOISEBENCH_CACHE"])
    return (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noisebench"
    )


def _write_cache(path: Path, **arrays: np.ndarray) -> None:
    """Best effort and atomic: a cache that cannot be written is simply not used."""
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except (OSError, ValueError):  # ValueError: arrays numpy cannot save without pickle
        tmp.unlink(missing_ok=True)


def _load_huggingface(card: Card):
    """`datasets.load_dataset(path, name=config, split=...)`. `path` is a hub id or a local
    folder of parquet/csv files; online or cached, the code is the same."""
    import datasets

    opts = card.options
    label = opts.get("label", LABEL_COLUMN)
    if not _is_text(opts.get("path")):
        raise UserError(f"dataset card {card.origin}: a huggingface card needs 'path'")

    def split(name: str) -> dict[str, Any]:
        try:
            with _no_progress_bars(datasets):
                ds = datasets.load_dataset(
                    opts["path"], name=opts.get("config"), split=name
                )
            return ds.with_format("numpy")[:]
        except Exception as err:  # noqa: BLE001 - whatever `datasets` raises, the data is the user's to fix
            raise UserError(
                f"cannot load Hugging Face dataset '{opts['path']}' (split {name}): "
                f"{type(err).__name__}: {err}"
            ) from None

    x, y = _columns(
        card, split(opts.get("split", "train")), label, opts.get("features")
    )
    test = None
    if opts.get("test_split"):
        test = _columns(card, split(opts["test_split"]), label, opts.get("features"))
    return x, y, test


@contextmanager
def _no_progress_bars(datasets: Any) -> Iterator[None]:
    """`datasets` draws a bar per split on stderr, before our checks run: a rejected
    table must leave one line there. An explicit HF_DATASETS_DISABLE_PROGRESS_BARS wins."""
    if "HF_DATASETS_DISABLE_PROGRESS_BARS" in os.environ or not (
        datasets.is_progress_bar_enabled()
    ):
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()


def _load_file(card: Card):
    path = Path(card.options["path"])
    if not _is_file(path):
        raise UserError(f"data file not found: {_clip(str(path), 500)}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                xk = next((k for k in ("x", "X", "features") if k in arrays), None)
                yk = next((k for k in ("label", "y", "labels") if k in arrays), None)
                if xk is None or yk is None:
                    raise UserError(
                        f"{path}: an .npz needs arrays 'x' and 'label' (has {', '.join(arrays)})"
                    )
                return arrays[xk], arrays[yk], None
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        names = table.column_names
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"{path}: duplicate column names {', '.join(twice)}")
        columns = {name: _column_values(table.column(name)) for name in names}
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    x, y = _columns(card, columns, LABEL_COLUMN, None)
    return x, y, None


def _column_values(column: Any) -> np.ndarray:
    """A pyarrow column as numpy, nulls as None or NaN. A dictionary column (a pandas
    categorical) is decoded first: ChunkedArray.to_numpy fills its nulls with some
    category, so a missing label would silently become a class."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.to_numpy(zero_copy_only=False)


def _columns(
    card: Card, columns: dict[str, Any], label: str, features: list[str] | None
):
    if label not in columns:
        raise UserError(
            f"dataset {card.name}: no '{label}' column (columns: {', '.join(columns)})"
        )
    names = features or [c for c in columns if c != label]
    missing = [c for c in names if c not in columns]
    if missing or not names:
        raise UserError(
            f"dataset {card.name}: missing feature columns {missing or 'all'}"
        )
    arrays = {c: _array(columns[c]) for c in names}
    bad = [
        c
        for c, a in arrays.items()
        if a is None or a.dtype.kind not in "biuf" or a.ndim == 0
    ]
    if bad:
        raise UserError(
            f"dataset {card.name}: feature columns must be numeric, not {', '.join(bad)}"
        )
    if any(len(a) == 0 for a in arrays.values()):
        raise UserError(f"dataset {card.name}: the data has no rows")
    parts = [a.reshape(len(a), -1) for a in arrays.values()]
    if len({len(p) for p in parts}) > 1:
        raise UserError(f"dataset {card.name}: feature columns differ in length")
    return np.concatenate(parts, axis=1), columns[label]


def _array(values: Any) -> np.ndarray | None:
    """np.asarray, or None for cells numpy cannot stack (ragged lists)."""
    try:
        return np.asarray(values)
    except (TypeError, ValueError):
        return None
