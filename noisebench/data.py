"""Dataset cards -> arrays: scikit-learn, Hugging Face datasets, and local files.

A card is a TOML file in `datasets/` (see `digits.toml`). It names the source, the
clean test split, the asymmetric class map and the training defaults. A user's own
table is loaded straight from `--dataset path/to/file.{parquet,csv,npz}`. The clean
test split is fixed per dataset and never depends on the run's seed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisebench.errors import UserError, unknown
from noisebench.registry import builtin_dir
from noisebench.sampling import derive_seed, largest_remainder

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SOURCES = ("sklearn", "huggingface", "file")
TABLE_SUFFIXES = (".parquet", ".csv", ".npz")
LABEL_COLUMN = "label"


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
    class_map: dict[int, int] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # source-specific settings
    origin: str = ""


@dataclass(frozen=True)
class Dataset:
    """A training pool (to be corrupted and split into train/val) and a clean test set."""

    name: str
    x: np.ndarray  # (N, D) float32
    y: np.ndarray  # (N,) int64, clean labels
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    card: Card
    sha: str  # content hash of all four arrays

    @property
    def class_map(self) -> dict[int, int] | None:
        return self.card.class_map


def card_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir("datasets").glob("*.toml"))}


def list_cards() -> list[Card]:
    return [read_card(path) for path in card_files().values()]


def read_card(path: str | Path) -> Card:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"cannot read dataset card {path}: {err}") from None
    known = {
        "name",
        "source",
        "description",
        "num_classes",
        "test_fraction",
        "split_seed",
    }
    known |= {"standardize", "class_map", "train"}
    source = raw.get("source")
    if source not in SOURCES:
        raise UserError(
            f"dataset card {path}: source must be one of {', '.join(SOURCES)}"
        )
    try:
        class_map = {
            int(k): int(v) for k, v in raw.get("class_map", {}).items()
        } or None
    except ValueError:
        raise UserError(
            f"dataset card {path}: class_map keys and values must be integers"
        ) from None
    return Card(
        name=raw.get("name", path.stem),
        source=source,
        description=raw.get("description", ""),
        num_classes=raw.get("num_classes"),
        test_fraction=float(raw.get("test_fraction", 0.2)),
        split_seed=int(raw.get("split_seed", 0)),
        standardize=bool(raw.get("standardize", True)),
        class_map=class_map,
        train=dict(raw.get("train", {})),
        options={k: v for k, v in raw.items() if k not in known},
        origin=str(path),
    )


def resolve_card(dataset: str) -> Card:
    """A card name (`digits`), a card file (`my.toml`) or a data file (`my.parquet`)."""
    cards = card_files()
    if dataset in cards:
        return read_card(cards[dataset])
    path = Path(dataset)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"dataset card not found: {path}")
        return read_card(path)
    if path.suffix in TABLE_SUFFIXES:
        if not path.is_file():
            raise UserError(f"data file not found: {path}")
        return Card(
            name=path.stem, source="file", options={"path": str(path)}, origin=str(path)
        )
    if path.suffix or "/" in dataset:
        raise UserError(
            f"cannot load '{dataset}': a data file must end in {', '.join(TABLE_SUFFIXES)}"
        )
    raise unknown("dataset", dataset, cards)


def load_dataset(dataset: str | Card) -> Dataset:
    """Load, encode and split a dataset. The test split is fixed by the card's `split_seed`."""
    card = dataset if isinstance(dataset, Card) else resolve_card(dataset)
    loaders = {
        "sklearn": _load_sklearn,
        "huggingface": _load_huggingface,
        "file": _load_file,
    }
    x, y, test = loaders[card.source](card)
    x, y, classes = _clean(card, x, y)
    if test is None:
        pool, held = stratified_split(
            y, card.test_fraction, seed=derive_seed("test", card.name, card.split_seed)
        )
        x, y, x_test, y_test = x[pool], y[pool], x[held], y[held]
    else:
        x_test, y_test_raw = np.asarray(test[0], dtype=np.float32), np.asarray(test[1])
        lookup = {c: i for i, c in enumerate(classes)}
        try:
            y_test = np.array([lookup[v] for v in y_test_raw.tolist()], dtype=np.int64)
        except KeyError as err:
            raise UserError(
                f"dataset {card.name}: test label {err} never occurs in training"
            ) from None
    k = len(classes) if card.num_classes is None else int(card.num_classes)
    if len(classes) > k:
        raise UserError(
            f"dataset {card.name}: card says {k} classes, data has {len(classes)}"
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
    return Dataset(card.name, *arrays, num_classes=k, card=card, sha=digest)


def stratified_split(
    labels: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) sorted index arrays. `held` has exactly round(fraction * n) samples,
    allotted to classes by largest remainder, so every split of the same labels has the
    same size whatever the seed."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = largest_remainder(
        round(fraction * labels.size), counts / labels.size, rng
    )
    held = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), size=m, replace=False)
            for c, m in zip(classes, per_class, strict=True)
        ]
    )
    mask = np.zeros(labels.size, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _clean(card: Card, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, list]:
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(
            f"dataset {card.name}: feature columns must be numeric"
        ) from None
    if x.ndim == 1:
        x = x[:, None]
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y) or len(y) == 0:
        raise UserError(
            f"dataset {card.name}: {len(x)} feature rows but {len(y)} labels"
        )
    if not np.isfinite(x).all():
        raise UserError(f"dataset {card.name}: features contain NaN or infinite values")
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise UserError(
            f"dataset {card.name}: needs at least 2 classes, found {len(classes)}"
        )
    return x, y.astype(np.int64), classes.tolist()


def _load_sklearn(card: Card):
    """A scikit-learn loader's (X, y), cached as .npz: importing sklearn alone takes about
    a second, more than a small training run."""
    from importlib.metadata import version

    loader = card.options.get("loader", "")
    key = f"{loader}-sklearn{version('scikit-learn')}"
    cached = (
        cache_dir() / f"{card.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    )
    if cached.is_file():
        with np.load(cached) as arrays:
            return arrays["x"], arrays["y"], None
    import sklearn.datasets

    if not hasattr(sklearn.datasets, loader):
        raise UserError(
            f"dataset card {card.origin}: sklearn.datasets has no loader '{loader}'"
        )
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    _write_cache(cached, x=x, y=y)
    return x, y, None


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
    except OSError:
        tmp.unlink(missing_ok=True)


def _load_huggingface(card: Card):
    """`datasets.load_dataset(path, name=config, split=...)`. `path` is a hub id or a local
    folder of parquet/csv files; online or cached, the code is the same."""
    import datasets

    opts = card.options
    label = opts.get("label", LABEL_COLUMN)
    try:
        train = datasets.load_dataset(
            opts["path"], name=opts.get("config"), split=opts.get("split", "train")
        )
        test = None
        if opts.get("test_split"):
            test = datasets.load_dataset(
                opts["path"], name=opts.get("config"), split=opts["test_split"]
            )
    except KeyError:
        raise UserError(
            f"dataset card {card.origin}: a huggingface card needs 'path'"
        ) from None
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        raise UserError(
            f"cannot load Hugging Face dataset '{opts['path']}': {err}"
        ) from None
    x, y = _columns(card, train.with_format("numpy")[:], label, opts.get("features"))
    return (
        x,
        y,
        None
        if test is None
        else _columns(card, test.with_format("numpy")[:], label, opts.get("features")),
    )


def _load_file(card: Card):
    path = Path(card.options["path"])
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
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    columns = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in table.column_names
    }
    x, y = _columns(card, columns, LABEL_COLUMN, None)
    return x, y, None


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
    bad = [
        c for c in names if not np.issubdtype(np.asarray(columns[c]).dtype, np.number)
    ]
    if bad:
        raise UserError(
            f"dataset {card.name}: feature columns must be numeric, not {', '.join(bad)}"
        )
    parts = [
        np.asarray(columns[c], dtype=np.float32).reshape(len(columns[c]), -1)
        for c in names
    ]
    return np.concatenate(parts, axis=1), np.asarray(columns[label])
