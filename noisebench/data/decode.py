"""Decoding (the one place PIL is used): the PNG bytes of arrow tables -> uint8 arrays.

An image column holds `{"bytes": PNG bytes, "path": ...}` structs as the hub stores
them, or plain PNG bytes. Each image is decoded with PIL into channel, height, width
order and flattened, so a split becomes an (N, C*H*W) uint8 array.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from noisebench.data.cache import Pixels
from noisebench.data.cards import _clip, _image_columns, _line
from noisebench.data.schema import LABEL_COLUMN, Card
from noisebench.data.validate import _column_values, _labels
from noisebench.errors import UserError

MAX_SIDE = 4096  # pixels; checked from the PNG header, before decoding
CHUNK = 4096  # rows decoded, hashed or counted at a time


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
