"""What a source returns -> checked, encoded and split arrays.

Data are untrusted: every table is checked against the rules in `_features`, `_labels`
and `_encode`, so bad input is a `UserError` before anything trains. `_columns` turns
a table's columns (a Hugging Face split, a parquet or csv file) into features and
labels. The clean test split is fixed per dataset by `clean_test_split` and never
depends on the run's seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from noisebench.data.cards import _short
from noisebench.data.schema import MAX_CLASSES, Card
from noisebench.errors import UserError, dtype_name
from noisebench.sampling import derive_seed, largest_remainder

# --------------------------------------------------------------------------------------
# checking and encoding
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# the clean test split and the classes
# --------------------------------------------------------------------------------------


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
