"""`load_dataset`: a card -> a `Dataset`, through its source (one file each), the
checks and encoding of `validate.py`, and the clean test split."""

from __future__ import annotations

import hashlib

import numpy as np

from noisebench.data.cards import resolve_card
from noisebench.data.files import _load_file
from noisebench.data.huggingface import _load_huggingface
from noisebench.data.images import load_images
from noisebench.data.mnist1d import _load_mnist1d
from noisebench.data.schema import Card, Dataset
from noisebench.data.sklearn import _load_sklearn
from noisebench.data.validate import (
    _clean,
    _encode,
    class_count,
    clean_test_split,
    encode_test_labels,
)
from noisebench.errors import UserError


def load_dataset(dataset: str | Card) -> Dataset:
    """Load, encode and split a dataset. The test split is fixed by the card's `split_seed`."""
    card = dataset if isinstance(dataset, Card) else resolve_card(dataset)
    if card.pixels:
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
