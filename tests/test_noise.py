"""Synthetic label noise (DESIGN.md §3): transition matrices, exact and random sampling.

Every expected value is written out from the DESIGN formulas, computed with numpy /
sklearn / hashlib, or is a statistical property with a tolerance from the sample size.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import confusion_matrix

from noisebench.errors import UserError
from noisebench.noise import (
    confusion,
    corrupt,
    load_transition,
    realized_rate,
    transition_matrix,
    validate_transition,
)
from noisebench.sampling import derive_seed

# Patrini et al. 2017's MNIST map, as written in DESIGN.md §3: 2->7, 3->8, 5<->6, 7->1.
DIGITS_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
KS = (2, 3, 10)


def _rates_below(limit: float) -> list[float]:
    return [r for r in (0.0, 0.05, 0.2, 0.3, 0.45, 0.49, 0.6, 0.85) if r < limit]


def _labels(sizes, seed=0) -> np.ndarray:
    """Shuffled labels with `sizes[i]` samples of class i (shuffled so that a
    position bug cannot hide behind sorted input)."""
    y = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(y)


def _sk_confusion(clean, noisy, k) -> np.ndarray:
    return confusion_matrix(np.asarray(clean), np.asarray(noisy), labels=np.arange(k))


# --------------------------------------------------------------------------------------
# transition_matrix: every entry against the DESIGN formula, written out entry by entry
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", KS)
def test_symmetric_entries_match_the_formula(k):
    for r in _rates_below((k - 1) / k):
        t = transition_matrix("symmetric", k, r)
        assert t.shape == (k, k) and t.dtype == np.float64
        for i, j in itertools.product(range(k), range(k)):
            expected = 1 - r if i == j else r / (k - 1)
            assert t[i, j] == pytest.approx(expected, abs=1e-15), (k, r, i, j)
        np.testing.assert_allclose(t.sum(axis=1), np.ones(k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", KS)
def test_uniform_entries_match_the_formula(k):
    for r in _rates_below(1.0) + [0.95]:
        t = transition_matrix("uniform", k, r)
        for i, j in itertools.product(range(k), range(k)):
            # replace by a uniform label over all K classes, the true class included
            expected = (1 - r) + r / k if i == j else r / k
            assert t[i, j] == pytest.approx(expected, abs=1e-15), (k, r, i, j)
        np.testing.assert_allclose(t.sum(axis=1), np.ones(k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", KS)
def test_pairflip_entries_match_the_formula(k):
    for r in _rates_below(0.5):
        t = transition_matrix("pairflip", k, r)
        for i, j in itertools.product(range(k), range(k)):
            if i == j:
                expected = 1 - r
            elif j == (i + 1) % k:
                expected = r
            else:
                expected = 0.0
            assert t[i, j] == pytest.approx(expected, abs=1e-15), (k, r, i, j)
        np.testing.assert_allclose(t.sum(axis=1), np.ones(k), rtol=0, atol=1e-12)


def test_digits_card_has_the_design_class_map():
    from noisebench.data import resolve_card

    assert resolve_card("digits").class_map == DIGITS_MAP


@pytest.mark.parametrize("r", [0.0, 0.1, 0.3, 0.49])
def test_asymmetric_with_the_digits_map(r):
    t = transition_matrix("asymmetric", 10, r, class_map=DIGITS_MAP)
    expected = np.eye(10)
    expected[2, 2], expected[2, 7] = 1 - r, r
    expected[3, 3], expected[3, 8] = 1 - r, r
    expected[5, 5], expected[5, 6] = 1 - r, r
    expected[6, 6], expected[6, 5] = 1 - r, r
    expected[7, 7], expected[7, 1] = 1 - r, r
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-15)
    for unmapped in (0, 1, 4, 8, 9):
        np.testing.assert_array_equal(t[unmapped], np.eye(10)[unmapped])
    np.testing.assert_allclose(t.sum(axis=1), np.ones(10), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# transition_matrix: validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symmetric", "uniform", "pairflip", "asymmetric"])
@pytest.mark.parametrize("rate", [-0.1, -1e-9, 1.0 + 1e-9, 1.5, float("nan")])
def test_rate_outside_unit_interval_is_rejected_even_when_allowed(kind, rate):
    for allow in (False, True):
        with pytest.raises(UserError, match=r"\[0, 1\]"):
            transition_matrix(
                kind, 10, rate, class_map=DIGITS_MAP, allow_unidentifiable=allow
            )


@pytest.mark.parametrize(
    "kind,k,limit",
    [
        ("symmetric", 2, 1 / 2),
        ("symmetric", 3, 2 / 3),
        ("symmetric", 10, 9 / 10),
        ("pairflip", 2, 0.5),
        ("pairflip", 3, 0.5),
        ("pairflip", 10, 0.5),
        ("asymmetric", 10, 0.5),
        ("uniform", 2, 1.0),
        ("uniform", 3, 1.0),
        ("uniform", 10, 1.0),
    ],
)
def test_unidentifiable_rates_are_rejected_unless_allowed(kind, k, limit):
    cmap = DIGITS_MAP if kind == "asymmetric" else None
    below = limit - 1e-3
    t = transition_matrix(kind, k, below, class_map=cmap)
    # just below the limit the clean label is still the strict row maximum
    off = t - np.diag(np.diag(t))
    assert (np.diag(t) > off.max(axis=1)).all()
    for rate in {limit, min(limit + 0.05, 1.0)}:
        with pytest.raises(UserError, match="allow-unidentifiable"):
            transition_matrix(kind, k, rate, class_map=cmap)
        t = transition_matrix(kind, k, rate, class_map=cmap, allow_unidentifiable=True)
        np.testing.assert_allclose(t.sum(axis=1), np.ones(k), rtol=0, atol=1e-12)
        # at or above the limit some row's diagonal is no longer the strict maximum
        off = t - np.diag(np.diag(t))
        assert (np.diag(t) <= off.max(axis=1) + 1e-12).any()


def test_allowed_unidentifiable_symmetric_still_follows_the_formula():
    t = transition_matrix("symmetric", 3, 0.8, allow_unidentifiable=True)
    expected = np.full((3, 3), 0.8 / 2)
    np.fill_diagonal(expected, 0.2)
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-15)


def test_unknown_noise_type_suggests_the_near_miss():
    with pytest.raises(UserError, match="did you mean 'symmetric'"):
        transition_matrix("symetric", 10, 0.2)
    with pytest.raises(UserError, match="did you mean 'pairflip'"):
        transition_matrix("pairflp", 10, 0.2)


def test_asymmetric_needs_a_valid_class_map():
    with pytest.raises(UserError, match="class map"):
        transition_matrix("asymmetric", 10, 0.2)
    with pytest.raises(UserError, match="outside"):
        transition_matrix("asymmetric", 3, 0.2, class_map={2: 7})


def test_fewer_than_two_classes_is_rejected():
    with pytest.raises(UserError, match="2 classes"):
        transition_matrix("symmetric", 1, 0.0)


# --------------------------------------------------------------------------------------
# validate_transition / load_transition
# --------------------------------------------------------------------------------------

T3 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])


def test_npy_and_csv_round_trip(tmp_path):
    np.save(tmp_path / "t.npy", T3)
    np.savetxt(tmp_path / "t.csv", T3, delimiter=",")
    for name in ("t.npy", "t.csv"):
        loaded = load_transition(tmp_path / name, num_classes=3)
        assert loaded.dtype == np.float64
        np.testing.assert_allclose(loaded, T3, rtol=0, atol=1e-15)
        loaded = load_transition(str(tmp_path / name), num_classes=3)
        np.testing.assert_allclose(loaded, T3, rtol=0, atol=1e-15)


def test_validate_renormalizes_rows_within_tolerance():
    t = T3 * (1 + np.array([3e-7, -4e-7, 0.0]))[:, None]
    out = validate_transition(t, num_classes=3)
    np.testing.assert_allclose(out.sum(axis=1), np.ones(3), rtol=0, atol=1e-15)
    np.testing.assert_allclose(out, T3, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "matrix,k,match",
    [
        (T3[:2], 3, "3x3"),  # 2x3
        (T3, 4, "4x4"),  # right shape for another dataset
        (np.ones(3) / 3, 3, "3x3"),  # a vector
        ([[1.1, -0.1], [0.0, 1.0]], 2, "non-negative"),
        ([[0.9, 0.1], [np.nan, 1.0]], 2, "finite"),
        ([[0.8, 0.1], [0.2, 0.8]], 2, "row 0 sums to 0.9"),
        ([[0.9, 0.1], [0.2, 0.9]], 2, "row 1 sums to 1.1"),
        ([[0.4, 0.6], [0.1, 0.9]], 2, "row 0"),  # off-diagonal dominates
        ([[0.9, 0.1], [0.5, 0.5]], 2, "row 1"),  # a tie is not dominance
    ],
)
def test_invalid_matrices_are_rejected(matrix, k, match):
    with pytest.raises(UserError, match=match):
        validate_transition(matrix, num_classes=k)


def test_non_dominant_diagonal_is_accepted_when_allowed(tmp_path):
    t = np.array([[0.4, 0.6], [0.1, 0.9]])
    np.testing.assert_allclose(
        validate_transition(t, num_classes=2, allow_unidentifiable=True), t
    )
    np.save(tmp_path / "t.npy", t)
    with pytest.raises(UserError, match="allow-unidentifiable"):
        load_transition(tmp_path / "t.npy", num_classes=2)
    np.testing.assert_allclose(
        load_transition(tmp_path / "t.npy", num_classes=2, allow_unidentifiable=True), t
    )


def test_load_transition_rejects_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_transition(tmp_path / "missing.npy", num_classes=3)
    (tmp_path / "t.txt").write_text("0.8,0.1,0.1\n0.2,0.7,0.1\n0,0.3,0.7\n")
    with pytest.raises(UserError, match=r"\.npy or \.csv"):
        load_transition(tmp_path / "t.txt", num_classes=3)
    (tmp_path / "bad.csv").write_text("a,b,c\nd,e,f\n")
    with pytest.raises(UserError, match="cannot read"):
        load_transition(tmp_path / "bad.csv", num_classes=3)
    np.save(tmp_path / "wrong.npy", T3[:, :2])
    with pytest.raises(UserError, match="3x3"):
        load_transition(tmp_path / "wrong.npy", num_classes=3)


# --------------------------------------------------------------------------------------
# corrupt, exact mode
# --------------------------------------------------------------------------------------


def _assert_largest_remainder_rows(conf, sizes, t):
    """Row i holds n_i samples and every count is within 1 of n_i * T[i, j]."""
    for i, n_i in enumerate(sizes):
        assert conf[i].sum() == n_i
        quota = n_i * t[i]
        assert (np.abs(conf[i] - quota) < 1 - 1e-9).all(), (i, conf[i], quota)
        # a zero-probability cell is never used
        assert (conf[i][t[i] == 0] == 0).all()


EXACT_CASES = [
    ("symmetric", [7, 13, 1000, 1, 0, 3, 17, 250, 99, 64], 0.2),
    ("symmetric", [7, 13, 100], 0.45),
    ("symmetric", [5, 11], 0.3),
    ("uniform", [31, 17, 23, 9, 4], 0.37),
    ("uniform", [1000, 999, 3], 0.6),
    ("pairflip", [10, 11, 12, 13, 14, 15], 0.33),
    ("pairflip", [3, 2], 0.2),
    ("asymmetric", [178, 182, 177, 183, 181, 182, 181, 179, 174, 180], 0.4),
    ("asymmetric", [5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 0.15),
]


@pytest.mark.parametrize("kind,sizes,rate", EXACT_CASES)
def test_exact_confusion_is_n_times_t_rounded(kind, sizes, rate):
    k = len(sizes)
    t = transition_matrix(kind, k, rate, class_map=DIGITS_MAP)
    clean = _labels(sizes)
    for seed in range(5):
        noisy = corrupt(clean, t, seed=seed)
        conf = _sk_confusion(clean, noisy, k)
        np.testing.assert_array_equal(confusion(clean, noisy, k), conf)
        _assert_largest_remainder_rows(conf, sizes, t)


def test_exact_with_a_user_matrix(tmp_path):
    t = np.array(
        [
            [0.55, 0.15, 0.2, 0.1],
            [0.05, 0.61, 0.17, 0.17],
            [0.0, 0.0, 1.0, 0.0],
            [0.11, 0.22, 0.0, 0.67],
        ]
    )
    np.savetxt(tmp_path / "t.csv", t, delimiter=",")
    t = load_transition(tmp_path / "t.csv", num_classes=4)
    sizes = [37, 101, 5, 19]
    clean = _labels(sizes, seed=4)
    for seed in range(5):
        conf = _sk_confusion(clean, corrupt(clean, t, seed=seed), 4)
        _assert_largest_remainder_rows(conf, sizes, t)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("rate", [0.2, 0.01, 0.005])
def test_small_rates_are_not_rounded_away(k, rate):
    """cleanlab #977: asking for 20% on 1,000 samples per class must give 20%."""
    clean = _labels([1000] * k)
    noisy = corrupt(clean, transition_matrix("symmetric", k, rate), seed=0)
    assert (clean != noisy).sum() == round(rate * 1000 * k)
    assert realized_rate(clean, noisy) == pytest.approx(rate, abs=1e-12)
    # each class keeps exactly 1000 * (1 - r) of its labels
    conf = _sk_confusion(clean, noisy, k)
    np.testing.assert_array_equal(np.diag(conf), [round(1000 * (1 - rate))] * k)


def test_exact_same_seed_same_labels_different_seed_different_labels():
    clean = _labels([300] * 10)
    t = transition_matrix("symmetric", 10, 0.4)
    a = corrupt(clean, t, seed=7)
    np.testing.assert_array_equal(a, corrupt(clean, t, seed=7))
    np.testing.assert_array_equal(a, corrupt(clean, t, seed=[7]))
    others = [corrupt(clean, t, seed=s) for s in (8, 9, [7, 1])]
    for b in others:
        # 1,200 flipped positions: two independent draws agree nearly nowhere by chance
        assert (a != b).sum() > 100
        # but every class keeps exactly 300 * 0.6 of its labels (exact mode)
        np.testing.assert_array_equal(np.diag(_sk_confusion(clean, b, 10)), [180] * 10)


@pytest.mark.parametrize("mode", ["exact", "random"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8])
def test_numpy_in_numpy_out(mode, dtype):
    clean = _labels([50] * 4).astype(dtype)
    noisy = corrupt(clean, transition_matrix("symmetric", 4, 0.3), seed=1, mode=mode)
    assert type(noisy) is np.ndarray
    assert noisy.dtype == dtype and noisy.shape == clean.shape
    assert 0 < (noisy != clean).mean() < 1


@pytest.mark.parametrize("mode", ["exact", "random"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_torch_in_torch_out(mode, dtype):
    clean_np = _labels([50] * 4)
    clean = torch.as_tensor(clean_np, dtype=dtype)
    t = transition_matrix("symmetric", 4, 0.3)
    noisy = corrupt(clean, t, seed=1, mode=mode)
    assert isinstance(noisy, torch.Tensor)
    assert noisy.dtype == dtype and noisy.device == clean.device
    assert noisy.shape == clean.shape
    # the container type does not change the draw
    np.testing.assert_array_equal(
        noisy.numpy(), corrupt(clean_np, t, seed=1, mode=mode)
    )
    # a torch T works too
    np.testing.assert_array_equal(
        corrupt(clean, torch.as_tensor(t), seed=1, mode=mode).numpy(), noisy.numpy()
    )


@pytest.mark.parametrize("mode", ["exact", "random"])
def test_flips_start_from_the_clean_label_and_never_chain(mode):
    """ELR #16: 5<->6 must not turn a flipped 5 back into 5, nor 2->7 continue to 1."""
    r = 0.45
    t = transition_matrix("asymmetric", 10, r, class_map=DIGITS_MAP)
    sizes = [400] * 10
    clean = _labels(sizes, seed=3)
    noisy = corrupt(clean, t, seed=11, mode=mode)
    conf = _sk_confusion(clean, noisy, 10)
    support = np.eye(10, dtype=bool)
    for src, dst in DIGITS_MAP.items():
        support[src, dst] = True
    # nothing lands outside T's support (a chained 2->7->1 would put mass on [2, 1])
    assert (conf[~support] == 0).all()
    assert conf[2, 1] == 0 and conf[6, 6] > 0 and conf[5, 5] > 0
    if mode == "exact":
        for src, dst in DIGITS_MAP.items():
            assert conf[src, dst] == round(400 * r)  # 180 each, none flipped back
            assert conf[src, src] == 400 - round(400 * r)
        for unmapped in (0, 1, 4, 8, 9):
            assert conf[unmapped, unmapped] == 400
    else:
        se = math.sqrt(r * (1 - r) / 400)
        for src, dst in DIGITS_MAP.items():
            assert abs(conf[src, dst] / 400 - r) < 5 * se


def test_labels_outside_the_matrix_are_rejected():
    t = transition_matrix("symmetric", 3, 0.2)
    with pytest.raises(UserError, match="0..2"):
        corrupt(np.array([0, 1, 3]), t, seed=0)
    with pytest.raises(UserError, match="0..2"):
        corrupt(np.array([0, -1, 2]), t, seed=0)


def test_unknown_mode_is_rejected():
    with pytest.raises(UserError, match="did you mean 'exact'"):
        corrupt(np.array([0, 1]), np.eye(2), seed=0, mode="exat")


# --------------------------------------------------------------------------------------
# corrupt, random mode
# --------------------------------------------------------------------------------------

T_RANDOM = np.array(
    [
        [0.7, 0.2, 0.1, 0.0],
        [0.05, 0.6, 0.25, 0.1],
        [0.0, 0.0, 0.9, 0.1],
        [0.3, 0.0, 0.0, 0.7],
    ]
)


def test_random_rows_match_t_within_five_standard_errors():
    n = 40_000
    clean = _labels([n] * 4, seed=5)
    noisy = corrupt(clean, T_RANDOM, seed=2, mode="random")
    conf = _sk_confusion(clean, noisy, 4)
    assert (conf.sum(axis=1) == n).all()
    freq = conf / n
    se = np.sqrt(T_RANDOM * (1 - T_RANDOM) / n)
    assert (np.abs(freq - T_RANDOM) <= 5 * se).all(), freq - T_RANDOM
    assert (conf[T_RANDOM == 0] == 0).all()


def test_random_mode_draws_independently_per_label():
    """Flip counts vary like Binomial(n, r) across seeds (exact mode would give 0)."""
    n, r, seeds = 200, 0.3, 400
    clean = np.zeros(n, dtype=np.int64)
    t = transition_matrix("symmetric", 2, r)
    flips = np.array(
        [(corrupt(clean, t, seed=s, mode="random") != 0).sum() for s in range(seeds)]
    )
    assert abs(flips.mean() - n * r) < 5 * math.sqrt(n * r * (1 - r) / seeds)
    # the sample variance has relative standard error ~ sqrt(2 / (S - 1))
    assert abs(flips.var(ddof=1) / (n * r * (1 - r)) - 1) < 5 * math.sqrt(
        2 / (seeds - 1)
    )


def test_random_mode_is_reproducible():
    clean = _labels([100] * 5)
    t = transition_matrix("uniform", 5, 0.5)
    a = corrupt(clean, t, seed=3, mode="random")
    np.testing.assert_array_equal(a, corrupt(clean, t, seed=3, mode="random"))
    assert (a != corrupt(clean, t, seed=4, mode="random")).sum() > 50


# --------------------------------------------------------------------------------------
# tie-breaking: the leftover counts go to tied classes at random, not to low ids
# --------------------------------------------------------------------------------------


def test_ties_among_equal_quotas_spread_evenly():
    """K=10, r=0.3, 10 samples per class: the diagonal gets 7, each of the 9 off-diagonal
    quotas is 1/3 and 3 of the 9 get one sample. Each cell gets it with p = 1/3."""
    k, n, seeds = 10, 10, 1500
    t = transition_matrix("symmetric", k, 0.3)
    clean = _labels([n] * k)
    total = np.zeros((k, k))
    for s in range(seeds):
        noisy = corrupt(clean, t, seed=s)
        total += np.bincount(clean * k + noisy, minlength=k * k).reshape(k, k)
    assert (np.diag(total) == 7 * seeds).all()
    off = ~np.eye(k, dtype=bool)
    p = 1 / 3
    sigma = math.sqrt(seeds * p * (1 - p))
    assert (np.abs(total[off] - seeds * p) < 5 * sigma).all(), total
    # per row, the extras are spread uniformly over the 9 other classes
    for i in range(k):
        row = total[i][off[i]]
        assert stats.chisquare(row).pvalue > 1e-6, (i, row)


def test_ties_among_equal_remainders_of_unequal_quotas_spread_evenly():
    """10 samples of class 0 with row [0.43, 0.13, 0.23, 0.21]: quotas 4.3, 1.3, 2.3, 2.1.
    The floors sum to 9; the one left over ties between classes 0, 1 and 2 (remainder
    0.3 each) and must go to each with probability 1/3, whatever float fuzz says
    (4.3 - 4 and 2.3 - 2 are 0.2999..98 in binary, 1.3 - 1 is 0.3000..04)."""
    t = np.array(
        [
            [0.43, 0.13, 0.23, 0.21],
            [0.1, 0.7, 0.1, 0.1],
            [0.1, 0.1, 0.7, 0.1],
            [0.1, 0.1, 0.1, 0.7],
        ]
    )
    t = validate_transition(t, num_classes=4)
    clean = np.zeros(10, dtype=np.int64)
    seeds = 600
    extra = np.zeros(4)
    for s in range(seeds):
        counts = np.bincount(corrupt(clean, t, seed=s), minlength=4)
        extra += counts - np.array([4, 1, 2, 2])
    assert extra.sum() == seeds and extra[3] == 0
    p = 1 / 3
    sigma = math.sqrt(seeds * p * (1 - p))
    assert (np.abs(extra[:3] - seeds * p) < 5 * sigma).all(), extra


# --------------------------------------------------------------------------------------
# realized_rate
# --------------------------------------------------------------------------------------


def test_realized_rate_is_the_fraction_that_differs():
    clean = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    noisy = np.array([0, 2, 2, 3, 1, 1, 0, 3])
    assert realized_rate(clean, noisy) == 3 / 8
    assert realized_rate(torch.as_tensor(clean), torch.as_tensor(noisy)) == 3 / 8
    assert realized_rate(np.array([], dtype=int), np.array([], dtype=int)) == 0.0


@pytest.mark.parametrize("k,r", [(2, 0.3), (10, 0.4), (10, 0.85)])
def test_realized_rate_symmetric_random_is_r(k, r):
    n = 100_000
    clean = _labels([n // k] * k)
    noisy = corrupt(clean, transition_matrix("symmetric", k, r), seed=0, mode="random")
    assert abs(realized_rate(clean, noisy) - r) < 5 * math.sqrt(r * (1 - r) / n)


@pytest.mark.parametrize("k,r", [(2, 0.6), (4, 0.4), (10, 0.8)])
def test_realized_rate_uniform_is_r_times_k_minus_1_over_k(k, r):
    n = 100_000
    clean = _labels([n // k] * k)
    noisy = corrupt(clean, transition_matrix("uniform", k, r), seed=0, mode="random")
    expected = r * (k - 1) / k
    tol = 5 * math.sqrt(expected * (1 - expected) / n)
    assert abs(realized_rate(clean, noisy) - expected) < tol
    # exact mode with 1000 per class: diagonal quota 1000 (1 - r + r / K) is integral
    clean = _labels([1000] * k)
    noisy = corrupt(clean, transition_matrix("uniform", k, r), seed=0)
    assert realized_rate(clean, noisy) == pytest.approx(expected, abs=1e-12)


def test_realized_rate_asymmetric_is_r_times_the_mapped_fraction():
    r = 0.3
    t = transition_matrix("asymmetric", 10, r, class_map=DIGITS_MAP)
    # 100 per class: 5 mapped classes flip exactly 30 each -> 150 / 1000
    clean = _labels([100] * 10)
    noisy = corrupt(clean, t, seed=0)
    assert realized_rate(clean, noisy) == pytest.approx(r * 0.5, abs=1e-12)
    # uneven classes: r * (mapped fraction), up to one rounding per mapped class
    sizes = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    clean = _labels(sizes)
    noisy = corrupt(clean, t, seed=0)
    mapped_fraction = sizes[list(DIGITS_MAP)].sum() / sizes.sum()
    assert abs(realized_rate(clean, noisy) - r * mapped_fraction) < 5 / sizes.sum()


# --------------------------------------------------------------------------------------
# derive_seed
# --------------------------------------------------------------------------------------


def test_derive_seed_is_a_fixed_function_of_its_parts():
    # JSON of the parts (json.dumps' default separators), sha256, first 8 bytes little
    # endian, shifted to 63 bits. Written out by hand, and pinned as a literal.
    blob = b'["noise", "digits", "abc", "exact", 3]'
    expected = int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1
    assert expected == 5449000928819042600
    assert derive_seed("noise", "digits", "abc", "exact", 3) == expected
    blob = b'["test", "digits", 0]'
    expected = int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1
    assert derive_seed("test", "digits", 0) == expected


def test_derive_seed_changes_when_any_part_changes():
    base = ("noise", "digits", "abc", "exact", 3)
    variants = [
        ("val", "digits", "abc", "exact", 3),
        ("noise", "mnist", "abc", "exact", 3),
        ("noise", "digits", "abd", "exact", 3),
        ("noise", "digits", "abc", "random", 3),
        ("noise", "digits", "abc", "exact", 4),
        ("noise", "digits", "abc", "exact", "3"),  # a string is not an int
        ("digits", "noise", "abc", "exact", 3),  # order matters
        ("noise", "digits", "abc", "exact"),
        ("noise", "digits", "abc", "exact", 3, 0),
    ]
    seeds = {derive_seed(*base)} | {derive_seed(*v) for v in variants}
    assert len(seeds) == len(variants) + 1
    assert all(0 <= s < 2**63 for s in seeds)


def test_derive_seed_treats_numpy_integers_as_the_same_seed():
    """A noise seed read back from a Parquet record or taken from np.arange is a numpy
    integer; it must give the same corruption as the same Python int (DESIGN §3: the
    noise depends on the noise seed's value), not the one of the string '3'."""
    assert derive_seed("noise", "digits", np.int64(3)) == derive_seed(
        "noise", "digits", 3
    )


# --------------------------------------------------------------------------------------
# bad matrices and bad arguments are UserErrors (issue 9)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "matrix,match",
    [
        (T3 + 0.01j, "real numbers, not complex numbers"),  # not silently made real
        (T3.astype(str), "real numbers, not strings"),
        (np.array([["a", "b", "c"]] * 3), "real numbers, not strings"),
        (np.eye(3, dtype=bool), "real numbers, not booleans"),
        (T3.astype(object), "real numbers, not Python objects"),
        ([[0.8, 0.2], [0.1, 0.8, 0.1], [0, 0, 1]], "array of numbers"),  # ragged
        (T3[None], "3x3 for this dataset, got a 3-D array of shape (1, 3, 3)"),
        (np.float64(1.0), "got a 0-D array"),
        (np.where(np.eye(3) > 0, np.inf, 0.0), "finite"),
    ],
    ids=["complex", "numeric strings", "strings", "bool", "object", "ragged", "3-D",
         "scalar", "inf"],
)  # fmt: skip
def test_matrices_that_a_float_cast_would_mangle_are_rejected(matrix, match):
    with pytest.raises(UserError, match=re.escape(match)):
        validate_transition(matrix, num_classes=3)


def test_csv_comments_and_blank_lines_are_skipped(tmp_path):
    np.savetxt(tmp_path / "t.csv", T3, delimiter=",", header="my T", footer="end")
    text = (tmp_path / "t.csv").read_text()
    (tmp_path / "t.csv").write_text("\n" + text.replace("\n", "\n\n"))
    np.testing.assert_allclose(
        load_transition(tmp_path / "t.csv", num_classes=3), T3, rtol=0, atol=1e-15
    )


@pytest.mark.parametrize(
    "rate", ["0.2", None, [0.2], complex(0.2, 0.0), True], ids=repr
)
def test_a_rate_that_is_not_a_number_is_rejected(rate):
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        transition_matrix("symmetric", 3, rate)


@pytest.mark.parametrize(
    "t,match",
    [
        (np.array([[0.9, 0.2], [0.1, 0.9]]), "row 0 sums to 1.1"),
        (np.array([[1.2, -0.2], [0.0, 1.0]]), "non-negative"),
        (np.ones((2, 3)) / 3, "square"),
        (np.ones(2) / 2, "square"),
    ],
)
def test_corrupt_refuses_a_matrix_that_is_not_row_stochastic(t, match):
    """Exact mode would hand largest_remainder rows that do not sum to 1 (counts no
    longer summing to n_i); random mode would sample from a broken CDF."""
    for mode in ("exact", "random"):
        with pytest.raises(UserError, match=match):
            corrupt(np.array([0, 1, 1, 0]), t, seed=0, mode=mode)


def test_corrupt_refuses_labels_that_are_not_integers():
    t = transition_matrix("symmetric", 3, 0.2)
    for labels in (np.array([0.0, 1.5, 2.0]), np.array(["0", "1"]), np.array([True])):
        with pytest.raises(UserError, match="labels must be integers"):
            corrupt(labels, t, seed=0)


def test_exact_mode_on_a_label_matrix_counts_per_class():
    """Labels of any shape: each class's counts are n_i T rounded, as for a vector."""
    sizes = [120, 60, 20]
    clean = _labels(sizes, seed=9).reshape(20, 10)
    t = transition_matrix("symmetric", 3, 0.3)
    noisy = corrupt(clean, t, seed=1)
    assert noisy.shape == (20, 10) and noisy.dtype == clean.dtype
    conf = _sk_confusion(clean.ravel(), noisy.ravel(), 3)
    _assert_largest_remainder_rows(conf, sizes, t)


class _TopOfTheUnitInterval:
    """An RNG whose every uniform draw is the largest double below 1, the one draw in
    2**53 that default_rng can return above a CDF ending at 1 - 2**-53."""

    def random(self, shape):
        return np.full(shape, np.nextafter(1.0, 0.0))


def test_random_mode_never_draws_a_class_of_probability_zero(monkeypatch):
    # ten 0.1s sum to 1 - 2**-53: before the fix a draw above that landed on class 10
    t = np.zeros((11, 11))
    t[:10, :10] = 0.1
    t[10, 10] = 1.0
    assert np.cumsum(t[0])[-1] < 1.0
    monkeypatch.setattr(np.random, "default_rng", lambda seed: _TopOfTheUnitInterval())
    noisy = corrupt(np.arange(11), t, seed=0, mode="random")
    assert (t[np.arange(11), noisy] > 0).all(), noisy
    np.testing.assert_array_equal(noisy, [9] * 10 + [10])  # each row's last class
