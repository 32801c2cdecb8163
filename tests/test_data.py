"""Datasets (DESIGN.md §4): the clean test split, standardization, local files, Hugging
Face folders, and the noisy validation split drawn by `draw_noise`.

References are scikit-learn's raw digits, numpy statistics written out in the test, or
counting properties; nothing is checked against the code's own output alone.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits

from noisebench.data import load_dataset, resolve_card, stratified_split
from noisebench.errors import UserError
from noisebench.experiment import draw_noise
from noisebench.noise import transition_matrix


@pytest.fixture(scope="module")
def raw_digits():
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _standardize(pool: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-feature (x - mean) / std with the pool's statistics; std 0 -> 1."""
    mean, std = pool.mean(axis=0), pool.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)
    return [(a - mean) / std for a in (pool, *others)]


def _undo_monotone(z: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Map standardized columns back to raw values. Each column of `z` is a strictly
    increasing affine image of the same column of `raw` (same multiset of rows), so the
    k-th smallest distinct value of z is the k-th smallest distinct raw value."""
    out = np.empty(z.shape, dtype=raw.dtype)
    for j in range(raw.shape[1]):
        values = np.unique(raw[:, j])
        zvalues, rank = np.unique(z[:, j], return_inverse=True)
        assert len(zvalues) == len(values), f"feature {j} is not a monotone map"
        out[:, j] = values[rank]
    return out


# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------


def test_digits_shapes_and_classes(digits, raw_digits):
    _, y_raw = raw_digits
    n_test = round(0.2 * len(y_raw))
    assert n_test == 359
    assert digits.x.shape == (len(y_raw) - n_test, 64) and digits.x.dtype == np.float32
    assert digits.x_test.shape == (n_test, 64) and digits.x_test.dtype == np.float32
    assert digits.y.shape == (len(y_raw) - n_test,) and digits.y.dtype == np.int64
    assert digits.y_test.shape == (n_test,) and digits.y_test.dtype == np.int64
    assert digits.num_classes == 10
    assert set(np.unique(digits.y_test)) == set(range(10))


def test_digits_test_split_is_stratified(digits, raw_digits):
    _, y_raw = raw_digits
    n_c = np.bincount(y_raw, minlength=10)
    held = np.bincount(digits.y_test, minlength=10)
    assert (np.abs(held - 0.2 * n_c) < 1).all(), (held, 0.2 * n_c)
    np.testing.assert_array_equal(held + np.bincount(digits.y, minlength=10), n_c)


def test_digits_pool_and_test_partition_the_raw_data(digits, raw_digits):
    """Recover the raw rows behind the standardized ones: every raw sample is in exactly
    one of pool and test, with its own label (digits has 1,797 distinct rows)."""
    x_raw, y_raw = raw_digits
    z = np.concatenate([digits.x, digits.x_test]).astype(np.float64)
    rows = _undo_monotone(z, x_raw)
    where = {row.tobytes(): i for i, row in enumerate(x_raw)}
    assert len(where) == len(x_raw)
    idx = np.array([where[row.tobytes()] for row in rows])
    pool, test = idx[: len(digits.x)], idx[len(digits.x) :]
    np.testing.assert_array_equal(
        np.sort(idx), np.arange(len(x_raw))
    )  # disjoint, covering
    np.testing.assert_array_equal(digits.y, y_raw[pool])
    np.testing.assert_array_equal(digits.y_test, y_raw[test])
    # standardized with the statistics of the pool only, applied to both. The tolerance
    # allows float32 statistics: summing N rows in float32 is exact to ~N * eps32.
    x_ref, x_test_ref = _standardize(x_raw[pool], x_raw[test])
    rtol = len(pool) * np.finfo(np.float32).eps
    np.testing.assert_allclose(digits.x, x_ref, rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(digits.x_test, x_test_ref, rtol=rtol, atol=1e-5)


def test_digits_pool_is_standardized(digits):
    x = digits.x.astype(np.float64)
    assert np.abs(x.mean(axis=0)).max() < 1e-5
    std = x.std(axis=0)
    constant = std < 1e-6
    assert constant.any()  # digits' blank corners
    assert (x[:, constant] == 0).all()
    np.testing.assert_allclose(std[~constant], 1.0, rtol=0, atol=1e-4)
    # the test set is not standardized with its own statistics
    assert np.abs(digits.x_test.astype(np.float64).mean(axis=0)).max() > 1e-3


def test_digits_split_is_fixed(digits):
    np.random.seed(12345)  # the global RNGs play no part
    torch.manual_seed(6789)
    again = load_dataset("digits")
    assert again.sha == digits.sha
    for a, b in [
        (again.x, digits.x),
        (again.y, digits.y),
        (again.x_test, digits.x_test),
        (again.y_test, digits.y_test),
    ]:
        np.testing.assert_array_equal(a, b)


def test_resolve_card_suggests_the_near_miss(tmp_path):
    with pytest.raises(UserError, match="did you mean 'digits'"):
        resolve_card("digit")
    with pytest.raises(UserError, match="not found"):
        resolve_card(str(tmp_path / "nope.toml"))
    (tmp_path / "bad.toml").write_text('source = "ftp"\n')
    with pytest.raises(UserError, match="source must be one of"):
        resolve_card(str(tmp_path / "bad.toml"))


# --------------------------------------------------------------------------------------
# stratified_split
# --------------------------------------------------------------------------------------

SPLIT_CASES = [
    ([37, 5, 120, 1, 64], 0.1),
    ([37, 5, 120, 1, 64], 0.2),
    ([37, 5, 120, 1, 64], 0.33),
    ([10, 10, 10], 0.1),
    ([178, 182, 177, 183, 181, 182, 181, 179, 174, 180], 0.2),
    ([3, 997], 0.01),
    ([50, 51, 49], 0.9),
]


@pytest.mark.parametrize("sizes,fraction", SPLIT_CASES)
def test_stratified_split_sizes_and_strata(sizes, fraction):
    labels = np.random.default_rng(1).permutation(
        np.repeat(np.arange(len(sizes)), sizes)
    )
    n = labels.size
    assert abs(fraction * n - math.floor(fraction * n) - 0.5) > 1e-6  # no rounding tie
    n_held = math.floor(fraction * n + 0.5)
    helds = []
    for seed in range(8):
        kept, held = stratified_split(labels, fraction, seed=seed)
        assert held.size == n_held
        assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()
        np.testing.assert_array_equal(np.union1d(kept, held), np.arange(n))
        assert np.intersect1d(kept, held).size == 0
        per_class = np.bincount(labels[held], minlength=len(sizes))
        quota = n_held * np.asarray(sizes) / n
        assert (np.abs(per_class - quota) < 1).all(), (per_class, quota)
        again = stratified_split(labels, fraction, seed=seed)
        np.testing.assert_array_equal(again[0], kept)
        np.testing.assert_array_equal(again[1], held)
        helds.append(held)
    assert len({h.tobytes() for h in helds}) > 1  # the seed matters


def test_stratified_split_draws_members_uniformly_within_a_class():
    labels = np.repeat([0, 1], [20, 30])
    seeds = 800
    hits = np.zeros(labels.size)
    for seed in range(seeds):
        hits[stratified_split(labels, 0.2, seed=seed)[1]] += 1
    # 10 held: 4 of the 20 zeros and 6 of the 30 ones, so every sample has p = 0.2
    p = 0.2
    assert (np.abs(hits - seeds * p) < 5 * math.sqrt(seeds * p * (1 - p))).all(), hits


def test_stratified_split_breaks_remainder_ties_at_random():
    """Classes of 13, 23, 33, 31 (n=100), 10% held: quotas 1.3, 2.3, 3.3, 3.1. Floors
    give 9; the 10th sample ties between classes 0, 1 and 2 (remainder 0.3 each) and
    must go to each with probability 1/3, not by float fuzz (1.3 - 1 > 2.3 - 2)."""
    labels = np.repeat(np.arange(4), [13, 23, 33, 31])
    seeds = 600
    extra = np.zeros(4)
    for seed in range(seeds):
        held = stratified_split(labels, 0.1, seed=seed)[1]
        extra += np.bincount(labels[held], minlength=4) - np.array([1, 2, 3, 3])
    assert extra.sum() == seeds and extra[3] == 0
    p = 1 / 3
    sigma = math.sqrt(seeds * p * (1 - p))
    assert (np.abs(extra[:3] - seeds * p) < 5 * sigma).all(), extra


# --------------------------------------------------------------------------------------
# local files
# --------------------------------------------------------------------------------------

N_ROWS = 60
NAMES = np.array(["dog", "cat", "emu"])  # encoded in sorted order: cat 0, dog 1, emu 2


def _table(n: int = N_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """`id` makes rows traceable after standardization; `label` sits between features."""
    rng = np.random.default_rng(seed)
    label = NAMES[
        rng.permutation(np.repeat([0, 1, 2], [n // 2, n // 3, n - n // 2 - n // 3]))
    ]
    return {
        "id": np.arange(n, dtype=np.float64),
        "f1": rng.normal(size=n),
        "label": label,
        "f2": rng.integers(-5, 5, size=n),
    }


def _features(cols) -> np.ndarray:
    return np.stack([cols["id"], cols["f1"], cols["f2"]], axis=1).astype(np.float64)


def _write(path, cols) -> None:
    if path.suffix == ".npz":
        np.savez(path, x=_features(cols), label=cols["label"])
    elif path.suffix == ".parquet":
        pq.write_table(pa.table(cols), path)
    else:
        pacsv.write_csv(pa.table(cols), path)


def _check_against_source(ds, x_all, labels_all, test_fraction=0.2):
    """Trace every row by its `id` feature and compare with numpy's own standardization
    (pool statistics) and label encoding (sorted distinct labels -> 0..K-1)."""
    classes = sorted(set(labels_all.tolist()))
    encoded = np.array([classes.index(v) for v in labels_all.tolist()])
    n = len(labels_all)
    n_test = math.floor(test_fraction * n + 0.5)
    assert len(ds.x_test) == n_test and len(ds.x) == n - n_test
    assert ds.num_classes == len(classes)
    ids = np.concatenate([ds.x[:, 0], ds.x_test[:, 0]]).astype(np.float64)
    order = np.unique(ids, return_inverse=True)[1]  # rank of id == original row
    pool, test = order[: len(ds.x)], order[len(ds.x) :]
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(ds.y, encoded[pool])
    np.testing.assert_array_equal(ds.y_test, encoded[test])
    ref, ref_test = _standardize(x_all[pool], x_all[test])
    np.testing.assert_allclose(ds.x, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ds.x_test, ref_test, rtol=0, atol=1e-5)
    counts = np.bincount(encoded, minlength=len(classes))
    quota = n_test * counts / n
    assert (np.abs(np.bincount(ds.y_test, minlength=len(classes)) - quota) < 1).all()


def test_local_files_load_identically_in_every_format(tmp_path):
    cols = _table()
    loaded = {}
    for suffix in (".parquet", ".csv", ".npz"):
        path = tmp_path / f"table{suffix}"  # one stem: the card name seeds the split
        _write(path, cols)
        loaded[suffix] = load_dataset(str(path))
    ds = loaded[".parquet"]
    _check_against_source(ds, _features(cols), cols["label"])
    for other in (loaded[".csv"], loaded[".npz"]):
        assert other.sha == ds.sha
        for a, b in [
            (other.x, ds.x),
            (other.y, ds.y),
            (other.x_test, ds.x_test),
            (other.y_test, ds.y_test),
        ]:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_integer_labels_are_encoded_to_a_dense_range(tmp_path):
    cols = _table(seed=3)
    cols["label"] = np.array([10, 3, 42])[
        np.searchsorted(np.sort(NAMES), cols["label"])
    ]
    _write(tmp_path / "ints.parquet", cols)
    ds = load_dataset(str(tmp_path / "ints.parquet"))
    _check_against_source(ds, _features(cols), cols["label"])
    assert set(np.unique(ds.y)) == {0, 1, 2}


def test_bad_local_files_give_helpful_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(str(tmp_path / "missing.parquet"))
    (tmp_path / "data.txt").write_text("id,label\n1,a\n")
    with pytest.raises(UserError, match=r"must end in \.parquet, \.csv, \.npz"):
        load_dataset(str(tmp_path / "data.txt"))

    cols = _table()
    no_label = {k: v for k, v in cols.items() if k != "label"}
    _write(tmp_path / "nolabel.parquet", no_label)
    with pytest.raises(UserError, match="no 'label' column"):
        load_dataset(str(tmp_path / "nolabel.parquet"))
    _write(tmp_path / "nolabel.csv", no_label)
    with pytest.raises(UserError, match="no 'label' column"):
        load_dataset(str(tmp_path / "nolabel.csv"))
    np.savez(tmp_path / "nolabel.npz", x=_features(cols), target=cols["label"])
    with pytest.raises(UserError, match="'x' and 'label'"):
        load_dataset(str(tmp_path / "nolabel.npz"))

    text = {**cols, "color": np.array(["red", "green"] * (N_ROWS // 2))}
    _write(tmp_path / "text.parquet", text)
    with pytest.raises(UserError, match="must be numeric, not color"):
        load_dataset(str(tmp_path / "text.parquet"))

    nan = {**cols, "f1": np.where(np.arange(N_ROWS) == 7, np.nan, cols["f1"])}
    _write(tmp_path / "nan.parquet", nan)
    with pytest.raises(UserError, match="NaN"):
        load_dataset(str(tmp_path / "nan.parquet"))
    (tmp_path / "hole.csv").write_text("id,f1,label\n0,1.5,a\n1,,b\n2,0.5,a\n3,2.5,b\n")
    with pytest.raises(UserError, match="NaN"):
        load_dataset(str(tmp_path / "hole.csv"))
    inf = {**cols, "f1": np.where(np.arange(N_ROWS) == 7, np.inf, cols["f1"])}
    _write(tmp_path / "inf.npz", inf)
    with pytest.raises(UserError, match="infinite"):
        load_dataset(str(tmp_path / "inf.npz"))

    one = {**cols, "label": np.array(["dog"] * N_ROWS)}
    for suffix in (".parquet", ".csv", ".npz"):
        _write(tmp_path / f"one{suffix}", one)
        with pytest.raises(UserError, match="at least 2 classes"):
            load_dataset(str(tmp_path / f"one{suffix}"))

    np.savez(tmp_path / "ragged.npz", x=_features(cols), label=cols["label"][:-1])
    with pytest.raises(UserError, match="feature rows"):
        load_dataset(str(tmp_path / "ragged.npz"))


# --------------------------------------------------------------------------------------
# Hugging Face `datasets` (a local folder: the same code path as a hub id, no network)
# --------------------------------------------------------------------------------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf_cache"


def _card(card_path, **fields) -> str:
    lines = []
    for key, value in fields.items():
        if isinstance(value, str):
            lines.append(f"{key} = '{value}'")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]")
        else:
            lines.append(f"{key} = {value}")
    card_path.write_text("\n".join(lines) + "\n")
    return str(card_path)


def test_huggingface_folder_loads_through_datasets(tmp_path, hf_cache):
    folder = tmp_path / "tiny"
    folder.mkdir()
    cols = _table(n=80, seed=5)
    pq.write_table(pa.table(cols), folder / "data.parquet")
    card = _card(
        tmp_path / "tiny.toml",
        name="tiny",
        source="huggingface",
        path=str(folder),
        test_fraction=0.25,
    )
    ds = load_dataset(card)
    assert ds.name == "tiny" and ds.card.source == "huggingface"
    _check_against_source(ds, _features(cols), cols["label"], test_fraction=0.25)
    assert any(hf_cache.iterdir())  # it really went through `datasets`, cached in tmp


def test_huggingface_folder_with_a_test_split(tmp_path, hf_cache):
    folder = tmp_path / "split"
    folder.mkdir()
    train, test = _table(n=70, seed=6), _table(n=21, seed=7)
    for cols in (train, test):
        cols["target"] = cols.pop("label")
        cols["junk"] = np.full(len(cols["id"]), 1e6)  # not among `features`
    pq.write_table(pa.table(train), folder / "train-00000-of-00001.parquet")
    pq.write_table(pa.table(test), folder / "test-00000-of-00001.parquet")
    card = _card(
        tmp_path / "split.toml",
        source="huggingface",
        path=str(folder),
        test_split="test",
        label="target",
        features=["id", "f1", "f2"],
    )
    ds = load_dataset(card)
    assert ds.name == "split"  # from the card's file name
    # the whole train split is the pool, in file order; the test split is the test set
    classes = sorted(set(train["target"].tolist()))
    ref, ref_test = _standardize(_features(train), _features(test))
    np.testing.assert_allclose(ds.x, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ds.x_test, ref_test, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(
        ds.y, [classes.index(v) for v in train["target"].tolist()]
    )
    np.testing.assert_array_equal(
        ds.y_test, [classes.index(v) for v in test["target"].tolist()]
    )
    assert ds.num_classes == 3

    # a test label the training split never had cannot be encoded
    test["target"] = np.where(np.arange(21) == 4, "yak", test["target"])
    pq.write_table(pa.table(test), folder / "test-00000-of-00001.parquet")
    with pytest.raises(UserError, match="never occurs in training"):
        load_dataset(card)


# --------------------------------------------------------------------------------------
# draw_noise: the noisy validation split
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "random"])
def test_validation_split_is_stratified_by_noisy_label(digits, mode):
    t = transition_matrix("symmetric", 10, 0.4)
    n = len(digits.y)
    n_val = math.floor(0.1 * n + 0.5)
    sizes = set()
    for seed in range(6):
        noisy, train, val = draw_noise(digits, t, mode, seed, 0.1)
        sizes.add(val.size)
        np.testing.assert_array_equal(np.union1d(train, val), np.arange(n))
        assert np.intersect1d(train, val).size == 0
        quota = n_val * np.bincount(noisy, minlength=10) / n
        per_class = np.bincount(noisy[val], minlength=10)
        assert (np.abs(per_class - quota) < 1).all(), (per_class, quota)
    assert sizes == {n_val}


def test_exact_draw_on_digits_realizes_the_quotas(digits):
    t = transition_matrix("asymmetric", 10, 0.3, class_map=digits.class_map)
    noisy, _, _ = draw_noise(digits, t, "exact", 0, 0.1)
    n_c = np.bincount(digits.y, minlength=10)
    conf = np.zeros((10, 10), dtype=np.int64)
    np.add.at(conf, (digits.y, noisy), 1)
    np.testing.assert_array_equal(conf.sum(axis=1), n_c)
    assert (np.abs(conf - n_c[:, None] * t) < 1).all()


@pytest.mark.parametrize("mode", ["exact", "random"])
def test_noisy_labels_depend_on_the_noise_seed_only(digits, mode):
    t = transition_matrix("symmetric", 10, 0.4)
    noisy, train, val = draw_noise(digits, t, mode, 3, 0.1)
    np.random.seed(99)  # global RNG state plays no part
    torch.manual_seed(99)
    again = draw_noise(load_dataset("digits"), t, mode, 3, 0.1)
    np.testing.assert_array_equal(again[0], noisy)
    np.testing.assert_array_equal(again[1], train)
    np.testing.assert_array_equal(again[2], val)
    # the validation fraction changes the split, never the labels
    other_fraction = draw_noise(digits, t, mode, 3, 0.2)
    np.testing.assert_array_equal(other_fraction[0], noisy)
    assert other_fraction[2].size == math.floor(0.2 * len(digits.y) + 0.5)
    # another noise seed gives another corruption and another split
    other_seed = draw_noise(digits, t, mode, 4, 0.1)
    assert (other_seed[0] != noisy).sum() > 100
    assert not np.array_equal(other_seed[2], val)


def test_sklearn_arrays_are_cached_and_equal_the_loader(tmp_path, monkeypatch):

    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    first = load_dataset("digits")
    (cached,) = tmp_path.glob("digits-*.npz")
    with np.load(cached) as arrays:
        x, y = load_digits(return_X_y=True)
        np.testing.assert_array_equal(arrays["x"], x)
        np.testing.assert_array_equal(arrays["y"], y)
    second = load_dataset("digits")
    assert second.sha == first.sha


# --------------------------------------------------------------------------------------
# stratified_split: every class keeps a training sample (issue 9)
# --------------------------------------------------------------------------------------

KEEP_CASES = [
    ([30, 2, 8], 0.9),  # round(36) held of 40: the 2-sample class would go whole
    ([2, 2, 2, 2, 2], 0.5),
    ([1, 1, 1, 50], 0.6),  # single samples stay for training, not in the held split
    ([3, 97], 0.97),
    ([2] * 40, 0.45),
]


@pytest.mark.parametrize("sizes,fraction", KEEP_CASES)
def test_stratified_split_leaves_every_class_a_sample(sizes, fraction):
    labels = np.random.default_rng(2).permutation(
        np.repeat(np.arange(len(sizes)), sizes)
    )
    n = labels.size
    n_held = math.floor(fraction * n + 0.5)
    assert n_held <= n - len(sizes)  # feasible: one per class fits outside
    for seed in range(20):
        kept, held = stratified_split(labels, fraction, seed=seed)
        assert held.size == n_held  # the size is still exact
        np.testing.assert_array_equal(np.union1d(kept, held), np.arange(n))
        assert np.intersect1d(kept, held).size == 0
        kept_per_class = np.bincount(labels[kept], minlength=len(sizes))
        assert (kept_per_class >= 1).all(), (seed, kept_per_class)


@pytest.mark.parametrize(
    "sizes,fraction,match",
    [
        ([2, 2, 2], 0.9, "would leave some class without a sample"),  # 5 of 6 held
        ([1, 1], 0.5, "would leave some class without a sample"),
        ([10, 10], 0.01, "holds out no sample"),  # round(0.2) = 0
    ],
)
def test_stratified_split_refuses_impossible_splits(sizes, fraction, match):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    with pytest.raises(UserError, match=match):
        stratified_split(labels, fraction, seed=0)


# --------------------------------------------------------------------------------------
# the scikit-learn cache: a corrupt file is a miss, rebuilt from the loader
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"not a zip file",
        b"PK\x03\x04" + bytes(200),  # a broken zip header
        b"",
    ],
    ids=["text", "broken zip", "empty"],
)
def test_a_corrupt_sklearn_cache_is_rebuilt(tmp_path, monkeypatch, garbage):
    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    first = load_dataset("digits")
    (cached,) = tmp_path.glob("digits-*.npz")
    cached.write_bytes(garbage)
    again = load_dataset("digits")
    assert again.sha == first.sha
    with np.load(cached, allow_pickle=False) as arrays:  # rewritten, and whole
        x, y = load_digits(return_X_y=True)
        np.testing.assert_array_equal(arrays["x"], x)
        np.testing.assert_array_equal(arrays["y"], y)


def test_a_cache_with_other_arrays_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    first = load_dataset("digits")
    (cached,) = tmp_path.glob("digits-*.npz")
    np.savez(cached, x=np.zeros((3, 64)), y=np.zeros(5))  # rows and labels disagree
    assert load_dataset("digits").sha == first.sha


def test_digits_card_views_its_features_as_8x8_images(digits, raw_digits):
    """image_shape is row-major: the reshaped pool is the standardized 8x8 image."""
    assert digits.image_shape == (1, 8, 8)
    images = digits.x.reshape(-1, *digits.image_shape)
    (i,) = np.flatnonzero(digits.y == digits.y[0])[:1]
    assert images[i, 0, 3, 5] == digits.x[i, 3 * 8 + 5]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"8x8"', "image_shape"),
        ("[1, 8]", "image_shape"),
        ("[1, 0, 8]", "image_shape"),
        ("[1, 4, 4]", "holds 16 values, the data has 64 features"),
    ],
)
def test_a_bad_image_shape_is_refused(tmp_path, value, message):
    card = tmp_path / "d.toml"
    card.write_text(
        f'source = "sklearn"\nloader = "load_digits"\nimage_shape = {value}\n'
    )
    with pytest.raises(UserError, match=message):
        load_dataset(resolve_card(str(card)))


def test_mnist1d_is_generated_offline_as_the_package_makes_it(tmp_path, monkeypatch):
    """The card's data are the mnist1d package's own make_dataset() output (its 80/20
    split, per-feature standardized by the pool), generated without a download, and
    numpy's global generator, which make_dataset seeds, is left as it was."""
    pytest.importorskip("mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    np.random.seed(123)
    state = np.random.get_state()
    ds = load_dataset("mnist1d")
    after = np.random.get_state()
    assert all(
        np.array_equal(a, b) for a, b in zip(state[1:2], after[1:2], strict=True)
    )
    assert state[2:] == after[2:]
    ref = make_dataset(get_dataset_args())
    assert ds.x.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.card.signal_shape == (1, 40) and ds.num_classes == 10
    assert np.array_equal(ds.y, ref["y"]) and np.array_equal(ds.y_test, ref["y_test"])
    mean, std = ref["x"].mean(0), ref["x"].std(0)
    np.testing.assert_allclose(ds.x, (ref["x"] - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        ds.x_test, (ref["x_test"] - mean) / std, rtol=1e-4, atol=1e-5
    )
    assert load_dataset("mnist1d").sha == ds.sha  # from the cache, the same data


def test_mnist1d_without_its_package_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mnist1d(name, *args, **kwargs):
        if name.startswith("mnist1d"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mnist1d)
    with pytest.raises(UserError, match=r"pip install 'noisebench\[mnist1d\]'"):
        load_dataset("mnist1d")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("signal_shape", "[1, 40, 1]", "signal_shape"),
        ("signal_shape", "[1, 39]", "holds 39 values, the data has 40 features"),
        ("num_samples", "5", "num_samples"),
        ("seed", "-1", "seed"),
    ],
)
def test_a_bad_mnist1d_card_is_refused(tmp_path, monkeypatch, field, value, message):
    pytest.importorskip("mnist1d")
    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    card = tmp_path / "m.toml"
    size = "" if field == "num_samples" else "num_samples = 200\n"
    card.write_text(f'source = "mnist1d"\n{size}{field} = {value}\n')
    with pytest.raises(UserError, match=message):
        load_dataset(resolve_card(str(card)))
