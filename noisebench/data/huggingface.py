"""The `huggingface` source for tables: a hub dataset or a local folder, read with
Hugging Face `datasets`. (Images from the hub are `images.py`'s.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from noisebench.data.schema import LABEL_COLUMN, Card, _is_text
from noisebench.data.validate import _columns
from noisebench.errors import UserError


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
