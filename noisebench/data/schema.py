"""What a dataset card and a loaded dataset are: the `Card` and `Dataset` records, and
the card schema that every card is checked against: each key's rule (`CARD_FIELDS`,
`AUGMENT_FIELDS`) and each source's own options (`SOURCE_OPTIONS`). Reading a card
through it is `cards.py`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    # images (check_image_fields, in cards.py, checks how these fit together)
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
