"""Human label noise (CIFAR-10N/100N, Wei et al. 2022): per-sample noisy labels read
from a file and matched by index to the training pool. See DESIGN.md §3.

The labels are data, not draws: every noise seed gets the same ones, and their T is
the one they realize (the row-normalized confusion of clean vs noisy pool labels).
The same T drives the synthetic twin (`--noise-type transition --transition-from`),
which samples class-conditional noise with it, so that human and class-conditional
effects can be told apart.

Files are untrusted. A `.pt` is read with `torch.load(weights_only=True)` only (numpy
arrays allowed as plain arrays, nothing else); `.npy`/`.npz` never unpickle; a parquet
file is read column by column. Anything wrong is a one-line `UserError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noisebench.errors import UserError, did_you_mean, dtype_name
from noisebench.noise import confusion, matrix_sha, npy_header, validate_transition

if TYPE_CHECKING:
    from noisebench.data import Card, Dataset

SUFFIXES = (".pt", ".pth", ".npy", ".npz", ".parquet")
# CIFAR-N files carry the clean labels they were collected for: checked against the
# dataset's, which catches a file for another dataset or another sample order
CLEAN_KEY = "clean_label"


def human_noise(
    dataset: Dataset,
    path: str | Path,
    key: str | None,
    *,
    allow_unidentifiable: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(T realized by the file's labels, the pool's noisy labels as int64).

    T is checked like a user-supplied matrix: a row whose noisy label is not the most
    likely one, or a singular T, needs `allow_unidentifiable`."""
    noisy = human_labels(dataset, path, key)
    t = realized_transition(dataset.y, noisy, dataset.num_classes)
    try:
        validate_transition(
            t,
            num_classes=dataset.num_classes,
            allow_unidentifiable=allow_unidentifiable,
        )
    except UserError as err:
        raise UserError(f"the T realized by {_name(path, key)}: {err}") from None
    return t, noisy


def human_labels(dataset: Dataset, path: str | Path, key: str | None) -> np.ndarray:
    """The file's labels for the training pool, index by index, as int64 in 0..K-1.

    Labels are class indices as the dataset encodes them (sorted distinct labels ->
    0..K-1, the identity for CIFAR's integer labels 0..K-1)."""
    name = dataset.card.name
    if not pool_is_whole_split(dataset.card):
        raise UserError(
            f"human noise is matched by index to the training pool, so it needs a dataset "
            f"whose pool is a whole training split in its original order (a card with a "
            f"test_split); dataset {name} carves its clean test set out of one split"
        )
    noisy, clean = read_label_file(path, key)
    where, n, k = _name(path, key), len(dataset.y), dataset.num_classes
    if len(noisy) != n:
        raise UserError(
            f"{where} holds {len(noisy)} labels; the training pool of {name} has {n}"
        )
    outside = np.flatnonzero((noisy < 0) | (noisy >= k))
    if outside.size:
        i = int(outside[0])
        raise UserError(
            f"{where}: label {noisy[i]} at index {i} lies outside 0..{k - 1} "
            f"(dataset {name} has {k} classes)"
        )
    if clean is not None:
        _check_clean(clean, dataset.y, _name(path, CLEAN_KEY))
    return noisy.astype(np.int64)


def _check_clean(clean: np.ndarray, y: np.ndarray, where: str) -> None:
    """The file's clean labels must be the pool's, index by index."""
    n = min(len(clean), len(y))
    differ = np.flatnonzero(clean[:n] != y[:n])
    first = int(differ[0]) if differ.size else (n if len(clean) != len(y) else None)
    if first is not None:
        raise UserError(
            f"{where} does not match this dataset's training labels (first mismatch at "
            f"index {first}): a file for another dataset or another sample order?"
        )


def pool_is_whole_split(card: Card) -> bool:
    """Whether the dataset's training pool is a whole split in file order. `load_dataset`
    carves the test set out of the one split (reordering the pool) unless the source
    brings its own: a Hugging Face card with test_split, or MNIST-1D's fixed split."""
    return card.source == "mnist1d" or bool(card.options.get("test_split"))


def realized_transition(clean: Any, noisy: Any, num_classes: int) -> np.ndarray:
    """T[i, j] = #{clean = i, noisy = j} / #{clean = i}; a class without samples keeps
    an identity row (nothing is known about it, and T stays row-stochastic)."""
    counts = confusion(clean, noisy, num_classes)
    sizes = counts.sum(axis=1)
    t = np.eye(num_classes)
    seen = sizes > 0
    t[seen] = counts[seen] / sizes[seen, None]
    return t


def labels_sha(noisy: Any) -> str:
    """A short content hash of noisy labels: two files with the same T but different
    labels are different configurations."""
    return matrix_sha(np.ascontiguousarray(noisy, dtype=np.int64))


# --------------------------------------------------------------------------------------
# reading the file
# --------------------------------------------------------------------------------------


def read_label_file(
    path: str | Path, key: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(the labels under `key`, the file's `clean_label` or None), both 1-D integer
    arrays. A `.npy` holds one array and takes no key."""
    path = Path(path)
    if not _is_file(path):
        raise UserError(f"noise file not found: {_clip(str(path), 500)}")
    if path.suffix not in SUFFIXES:
        raise UserError(
            f"noise file must end in {', '.join(SUFFIXES)}, got '{_clip(path.name)}'"
        )
    if path.suffix == ".npy":
        if key is not None:
            raise UserError(
                f"--noise-key does not apply to {path.name}: a .npy file holds one array"
            )
        return _labels(_read_npy(path), path, None), None
    readers = {".npz": _read_npz, ".parquet": _read_parquet}
    columns = readers.get(path.suffix, _read_pt)(path)
    key = _pick(columns, key, path)
    noisy = _labels(columns[key], path, key)
    clean = None
    if CLEAN_KEY in columns and key != CLEAN_KEY:
        clean = _labels(columns[CLEAN_KEY], path, CLEAN_KEY)
    return noisy, clean


def _pick(columns: Mapping[str, Any], key: str | None, path: Path) -> str:
    names = ", ".join(sorted(map(str, columns)))
    if key is None:
        raise UserError(
            f"noise file {path.name} holds {names}; name the noisy labels with --noise-key"
        )
    if key not in columns:
        hint = did_you_mean(key, [str(c) for c in columns])
        raise UserError(
            f"noise file {path.name} has no '{_clip(key)}'{hint}; it holds: {names}"
        )
    return key


def _labels(values: Any, path: Path, key: str | None) -> np.ndarray:
    """One 1-D array of integers, or a UserError saying what it is instead."""
    where = _name(path, key)
    if hasattr(values, "detach"):  # a torch tensor: bfloat16 has no numpy twin
        tensor = values.detach().cpu()
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
            raise UserError(
                f"{where} must hold integer class labels, not {tensor.dtype}"
            )
        values = tensor.numpy()
    if isinstance(values, Mapping):
        raise UserError(f"{where} must be an array of labels, not a dictionary")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):  # ragged lists
        raise UserError(f"{where} must be one label per sample") from None
    if array.ndim != 1:
        raise UserError(
            f"{where} must be a 1-D array of labels, got shape {array.shape}"
        )
    if array.size and (array.dtype.kind not in "iu"):
        what = (
            "floating-point numbers"
            if array.dtype.kind == "f"
            else dtype_name(array.dtype)
        )
        raise UserError(f"{where} must hold integer class labels, not {what}")
    return array


def _read_pt(path: Path) -> Mapping[str, Any]:
    """A dictionary of label arrays, through torch's weights-only unpickler. CIFAR-N's
    files hold numpy arrays, so numpy's array reconstruction is allowed as well (under
    its numpy 1 and numpy 2 names), with dtypes of numbers and booleans; an array of
    Python objects, like any other global, is still refused by torch."""
    import pickle
    import zipfile

    import torch

    try:
        with _numpy_arrays_allowed(torch):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):  # torch.save writes zip files since torch 1.6
            raise UserError(
                f"noise file {path.name} is not a .pt file that torch.load can read "
                "safely (weights_only)"
            ) from None
        # torch's message is a page of advice; the line that says what was refused
        # follows "WeightsUnpickler error:"
        detail = str(err).partition("WeightsUnpickler error:")[2] or str(err)
        reason = _clip(
            " ".join(
                re.split(r" Please use|Check the documentation", detail)[0].split()
            ),
            160,
        )
        raise UserError(
            f"noise file {path.name} holds objects a weights-only load refuses ({reason}); "
            "noisebench never unpickles anything else"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(
            f"cannot read noise file {path.name}: {type(err).__name__}: "
            f"{_clip(' '.join(str(err).split()), 120)}"
        ) from None
    if not isinstance(data, Mapping):
        raise UserError(
            f"noise file {path.name} holds a {type(data).__name__}, not a dictionary of "
            "label arrays by name (as CIFAR-N's .pt files do)"
        )
    return data


def _numpy_arrays_allowed(torch: Any) -> Any:
    """A context in which torch's weights-only load also rebuilds plain numpy arrays.
    torch < 2.5 has no such context: numpy arrays are then refused like anything else."""
    from contextlib import nullcontext

    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        return nullcontext()
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct
    # a dtype is rebuilt as an instance of its own class (numpy.dtypes.Int64DType):
    # numbers and booleans only, so that `_labels` can say what a wrong array holds;
    # object arrays stay refused
    dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}
    return safe_globals(
        [
            (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray,
            np.dtype,
            *sorted(dtypes, key=str),
        ]
    )


def _read_npy(path: Path) -> np.ndarray:
    """The header first: a pickled (object) array is refused before any data is read."""
    try:
        _, dtype = npy_header(path)
        if dtype.hasobject:
            raise UserError(
                f"noise file {path.name} holds pickled Python objects, which noisebench "
                "never loads"
            )
        return np.load(path, allow_pickle=False)
    except UserError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise UserError(
            f"cannot read noise file {path.name}: {_clip(str(err), 120)}"
        ) from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise UserError(
                f"noise file {path.name} holds pickled Python objects, which noisebench "
                "never loads"
            ) from None
        raise UserError(
            f"cannot read noise file {path.name}: {_clip(str(err), 120)}"
        ) from None
    except Exception as err:  # noqa: BLE001 - zipfile and numpy raise many types
        raise UserError(
            f"cannot read noise file {path.name}: {type(err).__name__}: {_clip(str(err), 120)}"
        ) from None


def _read_parquet(path: Path) -> Mapping[str, Any]:
    """Columns by name, read only when asked for: a wide table costs one column."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(
            f"cannot read noise file {path.name}: {type(err).__name__}: {_clip(str(err), 120)}"
        ) from None
    return _ParquetColumns(path, names)


class _ParquetColumns(Mapping):
    """A parquet file's columns as a read-only mapping; a column is read on access."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path, self.names = path, names

    def __getitem__(self, name: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if name not in self.names:
            raise KeyError(name)
        try:
            column = pq.read_table(self.path, columns=[name]).column(name)
        except Exception as err:  # noqa: BLE001
            raise UserError(
                f"cannot read column '{name}' of noise file {self.path.name}: "
                f"{type(err).__name__}: {_clip(str(err), 120)}"
            ) from None
        where = _name(self.path, name)
        if not pa.types.is_integer(column.type):
            raise UserError(
                f"{where} must hold integer class labels, not {column.type}"
            )
        if column.null_count:
            raise UserError(f"{where}: {column.null_count} labels are missing")
        return column.to_numpy()

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _name(path: str | Path, key: str | None) -> str:
    """How messages name the labels: `file.pt['worse_label']`, or the file alone."""
    name = Path(path).name
    return name if key is None else f"{name}['{_clip(str(key))}']"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
