"""Instance-dependent label noise (Xia et al., NeurIPS 2020, "Part-dependent label
noise", arXiv:2006.07836): the generator the field calls IDN. See DESIGN.md §3.

With nominal rate r, for the N samples x_i of the training pool with clean labels y_i:
  1. q_i ~ N(r, STD²) truncated to [0, 1], each sample's flip rate (STD = 0.1). The
     bounds are in standard units, (0 - r)/STD and (1 - r)/STD, as in the authors'
     `tools.py`; AQuA's copy passes (0, 1), which truncates to [r, r + STD] and shifts
     the mean rate by +0.046.
  2. W[c] ~ N(0, 1) of shape (D, K), one per clean class c, drawn in class order.
  3. a = x_i @ W[y_i]; a[y_i] = -inf; row_i = q_i softmax(a); row_i[y_i] += 1 - q_i.
     row_i is sample i's row of T(x): it keeps its label with probability 1 - q_i
     exactly, and a flip never lands on the clean class.
  4. The noisy label is drawn from row_i.

Everything comes from one `np.random.default_rng(seed)`, in that order (q, then W,
then the label draws), never from global random state: the same (data, r, seed) gives
the same labels. The flip rates are drawn by inverting the normal CDF (`ndtri`), so
the draw does not depend on the internals of scipy's samplers.

The features x (our convention; Xia et al. use the raw float pixels, 0..255):
  what the model sees before training, flattened, in float64. Tables are standardized
  per feature with the training pool's statistics (as the card's `standardize` does on
  loading; a card that does not standardize gets the same standardization here), pixels
  are normalized per channel, (x / 255 - mean) / std, with the dataset's mean and std.
  Never augmented. So the features are a deterministic function of the stored data,
  and x @ W[c] has the same scale whatever the units of the data.

Conventions the benchmark adds:
  - r = 0 is clean labels (q_i = 0), the noise-free column of every table. The
    truncated normal at r = 0 is a half-normal, whose mean flip rate is 0.08.
  - The expected flip rate is the truncated normal's mean, `mean_flip_rate(r)`: r to
    within 1e-4 for r in [0.3, 0.7], above it near 0 (0.129 at r = 0.1, 0.206 at
    r = 0.2). Records store the nominal r and the realized rate.
  - r must lie in [0, 1), and r >= 0.5 needs `allow_unidentifiable`: with features of
    many dimensions the softmax is nearly one-hot, so each sample's row is close to a
    pair flip with rate q_i, and from r = 0.5 on, for half the samples or more, the
    most likely noisy label is not the clean one (the rule of pairflip noise).
  - The expected T over the draws of W and q is symmetric with rate
    `mean_flip_rate(r)` (the K - 1 other classes are exchangeable under W): that is
    the noise's nominal T. The T of a draw, which methods that require T get as the
    oracle, is the per-class mean of its per-sample rows (`class_transition`).

numpy and scipy only: no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from noisebench.errors import UserError

if TYPE_CHECKING:
    from noisebench.data import Dataset

# the standard deviation of the per-sample flip rates: Xia et al.'s `norm_std`, the
# value every copy of the generator uses
STD = 0.1
# Bumped whenever a draw for the same (dataset, rate, seed) would change (features,
# order of draws): it enters the configuration hash, so old records never pass for new.
GENERATOR = f"xia2020-v1-std{STD:g}"
# nominal rates at or above this make most samples' noisy label more likely wrong
LIMIT = 0.5


def check_rate(rate: Any, *, allow_unidentifiable: bool = False) -> float:
    """`rate` as a float, or a UserError: it must lie in [0, 1), and below LIMIT
    unless `allow_unidentifiable`."""
    real = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(
        rate, (bool, np.bool_)
    )
    if not (real and 0.0 <= rate < 1.0):  # NaN fails the comparison too
        shown = f"{rate:g}" if real else repr(rate)
        raise UserError(f"instance noise rate must lie in [0, 1), got {shown}")
    if rate >= LIMIT and not allow_unidentifiable:
        raise UserError(
            f"instance noise rate {rate:g} >= {LIMIT:g}: for half the samples or more, "
            "the most likely noisy label is not the clean one; pass "
            "--allow-unidentifiable to run it"
        )
    return float(rate)


def mean_flip_rate(rate: float, std: float = STD) -> float:
    """E[q] for q ~ N(rate, std²) truncated to [0, 1]; 0 at rate 0 (clean labels)."""
    if rate == 0:
        return 0.0
    from scipy.special import ndtr
    from scipy.stats import norm

    a, b = (0 - rate) / std, (1 - rate) / std
    mass = ndtr(b) - ndtr(a)
    return float(rate + std * (norm.pdf(a) - norm.pdf(b)) / mass)


def flip_rates(
    n: int, rate: float, *, rng: np.random.Generator, std: float = STD
) -> np.ndarray:
    """n flip rates from N(rate, std²) truncated to [0, 1], by inverting the CDF:
    q = rate + std · Φ⁻¹(Φ(a) + u (Φ(b) - Φ(a))) with a, b the bounds in standard
    units, (0 - rate)/std and (1 - rate)/std. All zero at rate 0."""
    if rate == 0:
        return np.zeros(n)
    from scipy.special import ndtr, ndtri

    a, b = (0 - rate) / std, (1 - rate) / std
    low, high = ndtr(a), ndtr(b)
    q = rate + std * ndtri(low + rng.random(n) * (high - low))
    return np.clip(q, 0.0, 1.0)  # float fuzz at the bounds


def expected_transition(num_classes: int, rate: float, std: float = STD) -> np.ndarray:
    """The nominal T: the expectation of the per-sample rows over W and q, symmetric
    with rate `mean_flip_rate(rate)`."""
    k = num_classes
    m = mean_flip_rate(rate, std)
    eye = np.eye(k)
    return (1 - m) * eye + m / (k - 1) * (1 - eye)


def feature_map(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift), each (D,): the generator's features are x * scale + shift, in
    float64, for the stored (flattened) samples x of the pool. See the module's note."""
    x = dataset.x
    d = x.shape[1]
    if dataset.mean is not None:  # pixels: (x / 255 - mean) / std per channel
        channels = len(dataset.mean)
        per_channel = d // channels  # stored channel-first: C blocks of H*W values
        mean = np.repeat(np.asarray(dataset.mean, dtype=np.float64), per_channel)
        std = np.repeat(np.asarray(dataset.std, dtype=np.float64), per_channel)
        return 1 / (255 * std), -mean / std
    if dataset.card.standardize:  # standardized on loading, with the pool's statistics
        return np.ones(d), np.zeros(d)
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # constant features stay at 0, as load_dataset does
    return 1 / std, -mean / std


def instance_features(
    dataset: Dataset,
    index: np.ndarray | None = None,
    mapping: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The generator's features of the pool samples `index` (all by default), (n, D)
    float64; `mapping` is `feature_map(dataset)` when the caller has it."""
    scale, shift = feature_map(dataset) if mapping is None else mapping
    x = dataset.x if index is None else dataset.x[index]
    return np.asarray(x, dtype=np.float64) * scale + shift


def instance_rows(
    dataset: Dataset, q: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Each pool sample's row of T(x), (N, K) float64: q_i softmax(x_i @ W[y_i]) with
    the clean class masked out, plus 1 - q_i on the clean class. W[c] is drawn from
    `rng` for every class c in order, whether or not the pool holds that class."""
    y, k = dataset.y, dataset.num_classes
    mapping = feature_map(dataset)
    rows = np.zeros((y.size, k))
    for c in range(k):  # a loop over classes; each class's samples at once
        w = rng.standard_normal((dataset.x.shape[1], k))
        idx = np.flatnonzero(y == c)
        if not idx.size:
            continue
        a = instance_features(dataset, idx, mapping) @ w
        a[:, c] = -np.inf
        a = np.exp(a - a.max(axis=1, keepdims=True))
        rows[idx] = q[idx, None] * (a / a.sum(axis=1, keepdims=True))
        rows[idx, c] = 1 - q[idx]
    return rows


def sample_rows(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from it (inverse CDF on one uniform per row)."""
    k = rows.shape[1]
    cdf = np.cumsum(rows, axis=1)
    # a row's cumulative sum may end a hair below 1: a draw above it goes to the row's
    # last possible class, never to one of probability 0
    last = k - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    drawn = (rng.random(rows.shape[0])[:, None] >= cdf).sum(axis=1)
    return np.minimum(drawn, last)


def instance_noise(
    dataset: Dataset, rate: float, *, seed: int, std: float = STD
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels of the pool in the dtype of `dataset.y`, each sample's row of T(x)
    (N, K)), all drawn from `np.random.default_rng(seed)`: the flip rates, then W, then
    the labels. At rate 0 the labels are the clean ones and the rows one-hot."""
    y, k = dataset.y, dataset.num_classes
    if k < 2:
        raise UserError(f"noise needs at least 2 classes, got {k}")
    rng = np.random.default_rng(seed)
    if rate == 0:
        return y.copy(), np.eye(k)[y]
    q = flip_rates(y.size, rate, rng=rng, std=std)
    rows = instance_rows(dataset, q, rng)
    return sample_rows(rows, rng).astype(y.dtype), rows


def class_transition(clean: Any, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """The class-conditional T a draw implies: row c is the mean of the per-sample rows
    of the samples of clean class c (identity for a class the pool lacks)."""
    clean = np.asarray(clean).ravel()
    t = np.eye(num_classes)
    for c in range(num_classes):
        mine = rows[clean == c]
        if mine.size:
            t[c] = mine.mean(axis=0)
    return t
