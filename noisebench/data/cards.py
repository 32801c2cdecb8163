"""Reading and resolving dataset cards.

A card is a TOML file in `datasets/` (see `digits.toml`). It names the source, the
clean test split, the asymmetric class map and the training defaults. A user's own
table is loaded straight from `--dataset path/to/file.{parquet,csv,npz}`, and a parquet
file or a folder of images in the Hugging Face hub's layout gets a card of its own
(`folder_card`, `parquet_card`).

Cards are untrusted: every card field is checked against `CARD_FIELDS` and
`SOURCE_OPTIONS` (schema.py), and the image keys for how they fit together
(`check_image_fields`), so a bad card is a `UserError` before anything trains. The
helpers that quote a user's value in a one-line message (`_short`, `_clip`, `_line`)
and the path tests that never raise (`_is_file`, `_is_dir`) live here too; the whole
package uses them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
    _is_int,
    _is_text,
)
from noisebench.errors import UserError, did_you_mean, unknown
from noisebench.registry import builtin_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

GREY, RGB = 1, 3


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


def _line(err: BaseException, limit: int = 300) -> str:
    return _clip(" ".join(str(err).split()), limit)


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
    cards = card_files()
    if dataset in cards:
        return read_card(cards[dataset])
    path = Path(dataset)
    if _is_dir(path):
        return folder_card(path)
    if path.suffix == ".toml":
        if not _is_file(path):
            raise UserError(f"dataset card not found: {_clip(dataset, 500)}")
        return read_card(path)
    if path.suffix in TABLE_SUFFIXES:
        if not _is_file(path):
            raise UserError(f"data file not found: {_clip(dataset, 500)}")
        if path.suffix == ".parquet" and has_image_column(path):
            return parquet_card(path)
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
# image cards
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
