"""Synthetic label noise, exactly: transition matrices and sampling from them.

Convention: `T[i, j] = P(noisy = j | clean = i)`, row-stochastic. Every noise type
is a function that builds T; sampling only ever sees T. See DESIGN.md §3.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noisebench.errors import UserError, dtype_name, unknown
from noisebench.sampling import largest_remainder

if TYPE_CHECKING:
    from noisebench.data import Dataset

NOISE_TYPES = (
    "symmetric",
    "uniform",
    "pairflip",
    "asymmetric",
    "transition",
    "instance",
    "human",
)
MODES = ("exact", "random")
# The mode of human noise: its labels are data read from a file, not draws from T.
FIXED = "fixed"
# The mode of instance noise: each label is drawn from its own row of T(x), so there
# are no per-class counts to make exact.
PER_SAMPLE = "random"
# Rates at or above these make the noisy label no longer the most likely one in some row.
_LIMITS = {
    "symmetric": lambda k: (k - 1) / k,
    "uniform": lambda k: 1.0,
    "pairflip": lambda k: 0.5,
    "asymmetric": lambda k: 0.5,
}


def transition_matrix(
    kind: str,
    num_classes: int,
    rate: float,
    *,
    class_map: dict[int, int] | None = None,
    allow_unidentifiable: bool = False,
) -> np.ndarray:
    """The K x K transition matrix of a named noise model (float64, rows sum to 1).

    symmetric:  (1-r) I + r/(K-1) (J - I)   flips only to other classes
    uniform:    (1-r) I + (r/K) J           "replace by a uniform label", true class included
    pairflip:   T[i,i] = 1-r, T[i,(i+1) mod K] = r
    asymmetric: T[i,i] = 1-r, T[i,m(i)] = r for the classes in `class_map`, identity elsewhere
    """
    if kind not in _LIMITS:
        raise unknown("noise type", kind, _LIMITS)
    k = _class_count(num_classes)
    if k < 2:
        raise UserError(f"noise needs at least 2 classes, got {k}")
    if not (_is_real(rate) and 0.0 <= rate <= 1.0):  # NaN fails the comparison too
        raise UserError(f"noise rate must lie in [0, 1], got {_number(rate)}")
    limit = _LIMITS[kind](k)
    if rate >= limit and rate > 0 and not allow_unidentifiable:
        raise UserError(
            f"{kind} noise rate {rate:g} >= {limit:g} for K={k}: the noisy label is no longer "
            "the most likely one and T is not identifiable; pass --allow-unidentifiable to run it"
        )
    eye = np.eye(k)
    if kind == "symmetric":
        t = (1 - rate) * eye + rate / (k - 1) * (1 - eye)
    elif kind == "uniform":
        t = (1 - rate) * eye + rate / k
    elif kind == "pairflip":
        t = (1 - rate) * eye + rate * np.roll(eye, 1, axis=1)
    else:  # asymmetric
        if not class_map:
            raise UserError(
                "asymmetric noise needs a class map; this dataset card has none"
            )
        t = eye.copy()
        for src, dst in class_map.items():
            if not (
                _is_index(src) and _is_index(dst) and 0 <= src < k and 0 <= dst < k
            ):
                raise UserError(f"class map entry {src}->{dst} is outside 0..{k - 1}")
            if src != dst:
                t[src, src], t[src, dst] = 1 - rate, rate
    return t


def validate_transition(
    t: Any, *, num_classes: int, allow_unidentifiable: bool = False
) -> np.ndarray:
    """Check a user-supplied T: real numbers, shape K x K, finite, non-negative, rows
    summing to 1, identifiable. Returns it as float64 with rows renormalized."""
    k = _class_count(num_classes)
    t = _real_matrix(t)
    if t.shape != (k, k):
        dims = "" if t.ndim == 2 else f"a {t.ndim}-D array of "
        raise UserError(
            f"transition matrix must be {k}x{k} for this dataset, got {dims}shape {t.shape}"
        )
    sums = _check_stochastic(t)
    t = t / sums[:, None]
    off = t - np.diag(np.diag(t))
    if not allow_unidentifiable:
        bad_rows = np.flatnonzero(np.diag(t) <= off.max(axis=1))
        if bad_rows.size:
            raise UserError(
                f"transition matrix row {bad_rows[0]}: the diagonal is not the largest entry, so "
                "T is not identifiable; pass --allow-unidentifiable to run it"
            )
        if np.linalg.matrix_rank(t) < k:
            raise UserError(
                "transition matrix is singular; pass --allow-unidentifiable to run it"
            )
    return t


def load_transition(
    path: str | Path, *, num_classes: int, allow_unidentifiable: bool = False
) -> np.ndarray:
    """Read a K x K matrix from `.npy` or `.csv` and validate it. Never unpickles."""
    path = Path(path)
    k = _class_count(num_classes)
    if not _is_file(path):
        raise UserError(f"transition file not found: {path}")
    if path.suffix not in (".npy", ".csv"):
        raise UserError(f"transition file must be .npy or .csv, got '{path.suffix}'")
    try:
        t = _read_npy(path, k) if path.suffix == ".npy" else _read_csv(path)
    except UserError as err:
        raise UserError(f"transition file {path}: {err}") from None
    except (OSError, ValueError, EOFError) as err:  # UnicodeDecodeError is a ValueError
        raise UserError(f"cannot read transition file {path}: {err}") from None
    return validate_transition(
        t, num_classes=num_classes, allow_unidentifiable=allow_unidentifiable
    )


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an .npy file's header, without reading (or unpickling) its
    data; an unknown format version is a UserError, an unreadable file an OSError or
    ValueError for the caller to word."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise UserError(f"unsupported .npy format version {version}")
    return shape, dtype


def _read_npy(path: Path, k: int) -> np.ndarray:
    """The header first: a pickled (object) array is refused before any data is read,
    and so are a non-numeric one and one of the wrong shape (however large it says it is)."""
    shape, dtype = npy_header(path)
    if dtype.hasobject:
        raise UserError("holds pickled Python objects, which noisebench never loads")
    if dtype.kind not in "iuf":
        raise UserError(f"must hold real numbers, not {dtype_name(dtype)}")
    if shape != (k, k):
        raise UserError(
            f"must hold a {k}x{k} matrix for this dataset, got shape {shape}"
        )
    t = np.load(path, allow_pickle=False)
    if not isinstance(t, np.ndarray):  # np.load returns an archive for a zip file
        t.close()
        raise UserError("is an .npz archive, not one .npy array")
    return t


def _read_csv(path: Path) -> np.ndarray:
    """Comma-separated rows of numbers; blank lines and `#` comments are skipped. A
    malformed file is a ValueError, which the caller reports as unreadable."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(cell) for cell in line.split(",")])
        except ValueError:
            raise ValueError(f"line {number} is not comma-separated numbers") from None
        if len(rows[-1]) != len(rows[0]):
            raise ValueError(
                f"line {number} has {len(rows[-1])} entries, the first row {len(rows[0])}"
            )
    if not rows:
        raise ValueError("the file holds no numbers")
    return np.array(rows, dtype=np.float64)


def _real_matrix(t: Any) -> np.ndarray:
    """`t` as float64, refusing what a float cast would silently mangle: a complex T
    loses its imaginary part, booleans and strings become numbers."""
    if hasattr(t, "detach"):  # a torch tensor
        t = t.detach().cpu().numpy()
    try:
        a = np.asarray(t)
    except (TypeError, ValueError):  # ragged rows
        raise UserError("transition matrix must be a K x K array of numbers") from None
    if a.dtype.kind not in "iuf":
        raise UserError(
            f"transition matrix must hold real numbers, not {dtype_name(a.dtype)}"
        )
    return a.astype(np.float64)


def _check_stochastic(t: np.ndarray) -> np.ndarray:
    """Raise unless every entry is finite and non-negative and every row sums to 1 (to
    1e-6); return the row sums."""
    if not np.isfinite(t).all() or (t < 0).any():
        raise UserError("transition matrix must have finite, non-negative entries")
    sums = t.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        bad = int(np.argmax(np.abs(sums - 1)))
        raise UserError(
            f"transition matrix is not row-stochastic: row {bad} sums to {sums[bad]:.6g}"
        )
    return sums


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _class_count(num_classes: Any) -> int:
    if not _is_index(num_classes):
        raise UserError(
            f"the number of classes must be an integer, got {num_classes!r}"
        )
    return int(num_classes)


def _number(value: Any) -> str:
    return f"{value:g}" if _is_real(value) else repr(value)


def _is_file(path: Path) -> bool:
    """Path.is_file, but a name the OS refuses (too long, bad bytes) is just not a file."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def corrupt(labels: Any, t: Any, *, seed: int | list[int], mode: str = "exact") -> Any:
    """Noisy labels drawn from `T`, returned as the same type as `labels` (numpy or torch).

    exact:  within each clean class i exactly `largest_remainder(n_i, T[i])` samples go to
            each class j, chosen at random, so the realized confusion matrix is n_i T
            rounded. Each label is flipped from its clean value once, never chained.
    random: every label is drawn independently from its row of T.
    The same seed gives the same labels.
    """
    if mode not in MODES:
        raise unknown("noise mode", mode, MODES)
    is_torch = type(labels).__module__.startswith("torch")
    clean = labels.detach().cpu().numpy() if is_torch else np.asarray(labels)
    if clean.size and clean.dtype.kind not in "iu":
        raise UserError(f"labels must be integers, not {dtype_name(clean.dtype)}")
    t = _real_matrix(t)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise UserError(f"transition matrix must be square, got shape {t.shape}")
    _check_stochastic(t)
    k = t.shape[0]
    if clean.size and (clean.min() < 0 or clean.max() >= k):
        raise UserError(
            f"labels must lie in 0..{k - 1} for a {k}x{k} transition matrix"
        )
    rng = np.random.default_rng(seed)
    if mode == "exact":
        flat = clean.ravel()  # flat indices: labels of any shape
        noisy = flat.copy()
        for i in range(k):  # a loop over classes, not samples
            idx = np.flatnonzero(flat == i)
            counts = largest_remainder(idx.size, t[i], rng)
            noisy[rng.permutation(idx)] = np.repeat(np.arange(k), counts)
        noisy = noisy.reshape(clean.shape)
    else:
        cdf = np.cumsum(t, axis=1)[clean]
        # a row's cumulative sum may end a hair below 1 (ten 0.1s sum to 1 - 2**-53); a
        # draw above it goes to the row's last possible class, never to one with T = 0
        last = k - 1 - np.argmax(t[:, ::-1] > 0, axis=1)
        noisy = np.minimum(
            (rng.random(clean.shape)[..., None] >= cdf).sum(axis=-1), last[clean]
        )
        noisy = noisy.astype(clean.dtype)
    if is_torch:
        import torch

        return torch.as_tensor(noisy, dtype=labels.dtype, device=labels.device)
    return noisy


def confusion(clean: Any, noisy: Any, num_classes: int) -> np.ndarray:
    """Counts C[i, j] = #{clean = i, noisy = j}."""
    clean, noisy = np.asarray(clean).ravel(), np.asarray(noisy).ravel()
    return np.bincount(clean * num_classes + noisy, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def realized_rate(clean: Any, noisy: Any) -> float:
    """The fraction of labels that differ from the clean label."""
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    return float((clean != noisy).mean()) if clean.size else 0.0


def matrix_sha(matrix: np.ndarray) -> str:
    """A short content hash of a matrix (shape, dtype and values)."""
    m = np.ascontiguousarray(matrix)
    digest = hashlib.sha256(f"{m.shape}{m.dtype}".encode() + m.tobytes()).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class NoiseSpec:
    """Which noise to apply. `rate` is the nominal rate (for `transition`: 1 - mean diag;
    for `human`: the flip rate its labels realize, set by `realize`).

    human:      per-sample labels `noise_key` of `noise_file`, the same for every noise
                seed; its mode is "fixed" (the default "exact" is read so; "random" is
                refused), and `labels_sha` (set by `realize`) identifies the labels.
    instance:   Xia et al. 2020's instance-dependent noise (`noisebench.instance`):
                each label drawn from its own row of T(x), so its mode is "random"
                (the default "exact" is read so); `rate` in [0, 1), below 0.5 unless
                `allow_unidentifiable`. Its nominal T is the expected one, symmetric
                with the mean flip rate; each draw's own T is the oracle.
    transition: T from `transition_file`, or the T that the labels of a human-noise
                file realize (`transition_from`, `noise_key`): its synthetic twin.
    """

    kind: str = "symmetric"
    rate: float = 0.0
    mode: str = "exact"
    transition_file: str | None = None
    allow_unidentifiable: bool = False
    noise_file: str | None = None
    noise_key: str | None = None
    transition_from: str | None = None
    labels_sha: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in NOISE_TYPES:
            raise unknown("noise type", self.kind, NOISE_TYPES)
        if self.kind == "human" and self.mode in ("exact", FIXED):
            object.__setattr__(self, "mode", FIXED)  # frozen: normalized once, here
        elif self.kind == "human":
            raise UserError(
                f"--noise-mode {self.mode} does not apply to human noise: its labels "
                "are fixed by the file, not drawn"
            )
        elif self.kind == "instance" and self.mode in MODES:
            # per sample whatever the mode: "exact" (the default) is read as "random"
            object.__setattr__(self, "mode", PER_SAMPLE)
        elif self.mode not in MODES:
            raise unknown("noise mode", self.mode, MODES)
        if (self.kind == "human") != (self.noise_file is not None):
            raise UserError(
                "--noise-file goes with --noise-type human, and only with it"
            )
        if self.transition_file is not None and self.transition_from is not None:
            raise UserError("give --transition-file or --transition-from, not both")
        if self.transition_from is not None and self.kind != "transition":
            raise UserError(
                "--transition-from goes with --noise-type transition, and only with it"
            )
        if (self.kind == "transition") != (
            self.transition_file is not None or self.transition_from is not None
        ):
            raise UserError(
                "--transition-file goes with --noise-type transition, and only with it "
                "(or --transition-from, the T of a human-noise file)"
            )
        if self.noise_key is not None and not (self.noise_file or self.transition_from):
            raise UserError(
                "--noise-key names the labels in --noise-file or --transition-from"
            )

    def matrix(
        self, num_classes: int, class_map: dict[int, int] | None = None
    ) -> np.ndarray:
        """T of a noise model that needs no data (not human noise or its twin); for
        instance noise, the expected T over its draws."""
        if self.kind == "human" or self.transition_from is not None:
            raise ValueError("human noise and its twin need the data: use realize()")
        if self.kind == "instance":
            from noisebench.instance import check_rate, expected_transition

            k = _class_count(num_classes)
            if k < 2:
                raise UserError(f"noise needs at least 2 classes, got {k}")
            rate = check_rate(self.rate, allow_unidentifiable=self.allow_unidentifiable)
            return expected_transition(k, rate)
        if self.kind == "transition":
            return load_transition(
                self.transition_file,
                num_classes=num_classes,
                allow_unidentifiable=self.allow_unidentifiable,
            )
        return transition_matrix(
            self.kind,
            num_classes,
            self.rate,
            class_map=class_map,
            allow_unidentifiable=self.allow_unidentifiable,
        )

    def realize(
        self, dataset: Dataset
    ) -> tuple[NoiseSpec, np.ndarray, np.ndarray | None]:
        """(this spec as records state it, T, the pool's fixed noisy labels or None).

        A `transition` spec's rate becomes T's mean flip probability; a `human` spec's
        the rate its labels realize, with their hash. None: labels are drawn from T, or
        for instance noise per sample (`experiment.draw_member`; T is then the
        expected one, as data-free as the rate)."""
        from dataclasses import replace

        if self.kind == "human" or self.transition_from is not None:
            from noisebench.human import human_noise, labels_sha

            t, noisy = human_noise(
                dataset,
                self.noise_file or self.transition_from,
                self.noise_key,
                allow_unidentifiable=self.allow_unidentifiable,
            )
        else:
            t, noisy = self.matrix(dataset.num_classes, dataset.class_map), None
        if self.kind == "transition":  # its nominal rate is the mean flip probability
            return replace(self, rate=round(float(1 - np.diag(t).mean()), 6)), t, None
        if self.kind == "human":
            rate = round(realized_rate(dataset.y, noisy), 6)
            return replace(self, rate=rate, labels_sha=labels_sha(noisy)), t, noisy
        return self, t, None

    def as_dict(self) -> dict[str, Any]:
        """The fields, without those of human noise and its twin when they are unset:
        other noise types read as they always did."""
        optional = ("noise_file", "noise_key", "transition_from", "labels_sha")
        return {
            k: v for k, v in asdict(self).items() if k not in optional or v is not None
        }
