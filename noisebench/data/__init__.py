"""Dataset cards -> arrays: scikit-learn, Hugging Face datasets, local files and images.

A card is a TOML file in `datasets/` (see `digits.toml`). It names the source, the
clean test split, the asymmetric class map and the training defaults. A user's own
table is loaded straight from `--dataset path/to/file.{parquet,csv,npz}`. The clean
test split is fixed per dataset and never depends on the run's seed. Image datasets
(`pixels = true`: MNIST, CIFAR, a folder or parquet of PNGs) are decoded and cached by
`images.py`.

Cards and data are untrusted: every card field is checked against `CARD_FIELDS` and
`SOURCE_OPTIONS`, and every table against the rules in `_features`, `_labels` and
`_encode`, so bad input is a `UserError` before anything trains.

The package, in the order its modules import each other (none imports a later one):
  schema.py       the `Card` and `Dataset` records and the card schema
  cards.py        reading, checking and resolving cards (image cards included)
  validate.py     a source's arrays checked and encoded; the clean test split
  cache.py        `cache_dir()`, the .npz cache and the uint8 image cache
  sklearn.py, mnist1d.py, huggingface.py, files.py: one source each, for tables
  decode.py       PNG bytes -> uint8 arrays (the one place PIL is used)
  images.py       the image source: a card's pixels as a `Dataset`
  load.py         `load_dataset`, for every source
This file re-exports the public API.
"""

from __future__ import annotations

from noisebench.data.cache import (
    CACHE_FORMAT,
    Pixels,
    cache_dir,
    cache_folder,
    cache_key,
    read_cache,
    write_cache,
)
from noisebench.data.cards import (
    card_files,
    check_image_fields,
    folder_card,
    has_image_column,
    list_cards,
    parquet_card,
    read_card,
    resolve_card,
)
from noisebench.data.images import (
    cache_images,
    download_command,
    load_images,
    pixel_stats,
    superclass_map,
)
from noisebench.data.load import load_dataset
from noisebench.data.schema import (
    AUGMENT_FIELDS,
    CARD_FIELDS,
    LABEL_COLUMN,
    MAX_CLASSES,
    SOURCE_OPTIONS,
    SOURCES,
    TABLE_SUFFIXES,
    Card,
    CardField,
    Dataset,
)
from noisebench.data.validate import (
    class_count,
    clean_test_split,
    encode_test_labels,
    stratified_split,
)

__all__ = [
    "AUGMENT_FIELDS",
    "CACHE_FORMAT",
    "CARD_FIELDS",
    "LABEL_COLUMN",
    "MAX_CLASSES",
    "SOURCES",
    "SOURCE_OPTIONS",
    "TABLE_SUFFIXES",
    "Card",
    "CardField",
    "Dataset",
    "Pixels",
    "cache_dir",
    "cache_folder",
    "cache_images",
    "cache_key",
    "card_files",
    "check_image_fields",
    "class_count",
    "clean_test_split",
    "download_command",
    "encode_test_labels",
    "folder_card",
    "has_image_column",
    "list_cards",
    "load_dataset",
    "load_images",
    "parquet_card",
    "pixel_stats",
    "read_cache",
    "read_card",
    "resolve_card",
    "stratified_split",
    "superclass_map",
    "write_cache",
]
