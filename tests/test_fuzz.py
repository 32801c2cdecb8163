"""Property tests with hypothesis (issue 9): for any input, a valid result or a UserError.

Each property states what a valid result is from the DESIGN formulas and the README's
rules, written out here, not taken from the code. Runs are derandomized (the same
examples every time, no example database) so CI is reproducible.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from noisebench import get_method, list_methods
from noisebench.config import TrainConfig
from noisebench.data import MAX_CLASSES, SOURCES, Card, load_dataset, read_card
from noisebench.errors import UserError
from noisebench.noise import corrupt, transition_matrix
from noisebench.space import Categorical, Float, Int


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------------------
# noise: transition matrices and corrupt
# --------------------------------------------------------------------------------------

KINDS = ("symmetric", "uniform", "pairflip", "asymmetric")


def limit(kind: str, k: int) -> float:
    """README: symmetric r >= (K-1)/K, pair-flip and asymmetric r >= 0.5, uniform r >= 1."""
    return {"symmetric": (k - 1) / k, "uniform": 1.0}.get(kind, 0.5)


def reference_matrix(kind: str, k: int, r: float, cmap: dict | None) -> np.ndarray:
    """The README's table, entry by entry."""
    i, j = np.indices((k, k))
    if kind == "symmetric":
        return np.where(i == j, 1 - r, r / (k - 1))
    if kind == "uniform":
        return np.where(i == j, 1 - r + r / k, r / k)
    if kind == "pairflip":
        return np.where(i == j, 1 - r, np.where(j == (i + 1) % k, r, 0.0))
    ref = np.eye(k)
    for src, dst in cmap.items():
        if src != dst:
            ref[src] = 0.0
            ref[src, src], ref[src, dst] = 1 - r, r
    return ref


@st.composite
def noise_models(draw, max_k: int = 200):
    kind = draw(st.sampled_from(KINDS))
    k = draw(st.integers(2, max_k))
    rate = draw(st.floats(0.0, limit(kind, k), exclude_max=True))
    cmap = None
    if kind == "asymmetric":
        cls = st.integers(0, k - 1)
        cmap = draw(st.dictionaries(cls, cls, min_size=1, max_size=min(k, 25)))
    return kind, k, rate, cmap


@st.composite
def stochastic_matrices(draw):
    """Arbitrary row-stochastic matrices: small integer weights, rows normalized."""
    k = draw(st.integers(2, 12))
    w = np.array(draw(st.lists(st.integers(0, 9), min_size=k * k, max_size=k * k)))
    w = w.reshape(k, k).astype(np.float64)
    w[w.sum(axis=1) == 0, :] = 1.0
    return w / w.sum(axis=1, keepdims=True)


@fuzz(300)
@given(noise_models())
def test_every_generator_gives_its_formula(model):
    kind, k, rate, cmap = model
    t = transition_matrix(kind, k, rate, class_map=cmap)
    assert t.shape == (k, k) and t.dtype == np.float64
    assert (t >= 0).all()
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t, reference_matrix(kind, k, rate, cmap), atol=1e-15)


bad_rates = st.one_of(
    st.floats(allow_nan=False).filter(lambda r: not 0 <= r <= 1),
    st.sampled_from([math.nan, math.inf, -math.inf, -1e-300, 1 + 1e-15]),
)


@fuzz(300)
@given(
    st.sampled_from(KINDS),
    st.integers(2, 200),
    st.one_of(bad_rates, st.floats(0, 1)),
    st.booleans(),
)
def test_invalid_rates_raise_user_errors_only(kind, k, rate, allow):
    invalid = not (0 <= rate <= 1) or (rate >= limit(kind, k) and not allow)
    cmap = {0: 1}
    if not invalid:
        assert transition_matrix(
            kind, k, rate, class_map=cmap, allow_unidentifiable=allow
        ).shape == (k, k)
        return
    with pytest.raises(UserError):
        transition_matrix(kind, k, rate, class_map=cmap, allow_unidentifiable=allow)


@st.composite
def labelled_noise(draw):
    """(T, shuffled clean labels with random class sizes, seed)."""
    if draw(st.booleans()):
        kind, k, rate, cmap = draw(noise_models())
        t = transition_matrix(kind, k, rate, class_map=cmap)
    else:
        t = draw(stochastic_matrices())
    k = len(t)
    sizes = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(
        st.sampled_from([np.int64, np.int32] + ([np.uint8] if k <= 255 else []))
    )
    clean = np.random.default_rng(seed).permutation(np.repeat(np.arange(k), sizes))
    return t, clean.astype(dtype), seed


@fuzz(150)
@given(labelled_noise())
def test_exact_counts_are_largest_remainder_roundings(case):
    """Within each clean class i, the count of each noisy class j is n_i T[i, j]
    rounded down or up, the counts sum to n_i, and the rounded-up ones are those with
    the largest remainders (README: exact sampling)."""
    t, clean, seed = case
    k = len(t)
    noisy = corrupt(clean, t, seed=seed, mode="exact")
    assert noisy.dtype == clean.dtype and noisy.shape == clean.shape
    assert ((noisy >= 0) & (noisy < k)).all()
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (clean.astype(np.int64), noisy.astype(np.int64)), 1)
    sizes = np.bincount(clean.astype(np.int64), minlength=k)
    np.testing.assert_array_equal(conf.sum(axis=1), sizes)
    quota = sizes[:, None] * t
    assert (np.abs(conf - quota) < 1 + 1e-9).all()
    base = np.floor(quota + 1e-6)  # a quota a hair below an integer is that integer
    extra = conf - base
    assert np.isin(extra, (0, 1)).all()
    rem = quota - base
    for i in range(k):
        up, down = rem[i][extra[i] == 1], rem[i][extra[i] == 0]
        if up.size and down.size:
            assert up.min() >= down.max() - 1e-6, (i, quota[i], conf[i])


@fuzz(150)
@given(labelled_noise())
def test_random_mode_gives_labels_that_t_allows(case):
    t, clean, seed = case
    noisy = corrupt(clean, t, seed=seed, mode="random")
    assert noisy.dtype == clean.dtype and noisy.shape == clean.shape
    assert ((noisy >= 0) & (noisy < len(t))).all()
    # never a class that the clean label's row gives probability 0
    assert (t[clean.astype(np.int64), noisy.astype(np.int64)] > 0).all()


# --------------------------------------------------------------------------------------
# the --param parser
# --------------------------------------------------------------------------------------

METHODS = list_methods()
PARAM_NAMES = sorted({p for m in METHODS for p in get_method(m).defaults})
TRICKY = ["nan", "inf", "-inf", "1e309", "", " 0.5 ", "0x10", "1_0", "1e-400", "True",
          "٣", "0.1.2", "--1", "+0.3", "-0", "2**3", "None", "[0.1]"]  # fmt: skip

values = st.one_of(
    st.sampled_from(TRICKY),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-2, 2).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(PARAM_NAMES + ["", " "]), st.text(max_size=8))
assignments = st.one_of(
    st.builds(
        lambda k, sep, v: f"{k}{sep}{v}",
        keys,
        st.sampled_from(["=", " = ", "=="]),
        values,
    ),
    st.text(max_size=16),
)


@fuzz(400)
@given(st.sampled_from(METHODS), st.lists(assignments, max_size=4), st.booleans())
def test_param_parser_gives_typed_values_within_bounds_or_a_user_error(
    name, texts, with_defaults
):
    method = get_method(name)
    try:
        params = method.parse(texts, with_defaults=with_defaults)
    except UserError:
        return
    assert set(params) <= set(method.defaults)
    if with_defaults:
        assert set(params) == set(method.defaults)
    for key, value in params.items():
        method.check_value(key, value)  # the registry's own check agrees
        dist = method.search_space[key]
        if isinstance(dist, Float):
            assert type(value) is float and math.isfinite(value)
        elif isinstance(dist, Int):
            assert type(value) is int
        elif isinstance(dist, Categorical):
            assert value in dist.choices
        bounds = method.bounds.get(key)
        assert bounds is None or bounds.contains(value)


# --------------------------------------------------------------------------------------
# dataset cards
# --------------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    text,
    st.sampled_from(SOURCES + ("load_digits", "fetch_x", "a.parquet", "train", "")),
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(text, st.integers(-2, 12).map(str)), inner, max_size=4
        ),
    ),
    max_leaves=10,
)


def toml(value) -> str:
    """A TOML literal (json's string escapes are TOML's basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return (
        "{" + ", ".join(f"{toml(str(k))} = {toml(v)}" for k, v in value.items()) + "}"
    )


def document(fields: dict) -> str:
    return "".join(f"{toml(str(k))} = {toml(v)}\n" for k, v in fields.items())


OPTIONS = {
    "sklearn": {"loader"},
    "huggingface": {"path", "config", "split", "test_split", "label", "features"},
    "file": {"path"},
    "mnist1d": {"num_samples", "seed"},
}
BASE = {
    "sklearn": {"source": "sklearn", "loader": "load_digits"},
    "huggingface": {"source": "huggingface", "path": "user/data"},
    "file": {"source": "file", "path": "t.parquet"},
    "mnist1d": {"source": "mnist1d"},
}
FIELDS = ["name", "description", "num_classes", "test_fraction", "split_seed",
          "standardize", "class_map", "train", "source", "image_shape",
          "signal_shape"]  # fmt: skip
TRAIN_KEYS = ["model", "hidden", "epochs", "batch_size", "optimizer", "lr",
              "weight_decay", "momentum", "val_fraction", "warmup", "nesterov",
              "schedule", "milestones", "gamma"]  # fmt: skip


def assert_valid_card(card: Card) -> None:
    """The README's and issue's card schema, written out."""
    assert isinstance(card.name, str) and card.name.strip()
    assert card.source in SOURCES
    assert isinstance(card.description, str)
    k = card.num_classes
    assert k is None or (type(k) is int and 2 <= k <= MAX_CLASSES)
    assert type(card.test_fraction) is float and 0 < card.test_fraction < 1
    assert type(card.split_seed) is int and card.split_seed >= 0
    assert type(card.standardize) is bool
    for shape, dims in ((card.image_shape, 3), (card.signal_shape, 2)):
        assert shape is None or (
            len(shape) == dims and all(type(d) is int and d >= 1 for d in shape)
        )
    if card.class_map is not None:
        assert card.class_map
        for src, dst in card.class_map.items():
            assert type(src) is int and type(dst) is int and src >= 0 and dst >= 0
            assert k is None or (src < k and dst < k)
    assert isinstance(card.train, dict)
    TrainConfig.from_mapping(card.train, where="fuzz")  # must not raise
    opts = card.options
    assert set(opts) <= OPTIONS[card.source]
    if card.source == "sklearn":
        assert isinstance(opts["loader"], str) and opts["loader"].startswith(
            ("load_", "fetch_")
        )
    elif card.source == "file":
        assert isinstance(opts["path"], str) and opts["path"].endswith(
            (".parquet", ".csv", ".npz")
        )
    elif card.source == "mnist1d":
        n, seed = opts.get("num_samples", 5000), opts.get("seed", 42)
        assert type(n) is int and 100 <= n <= 1_000_000
        assert type(seed) is int and 0 <= seed < 2**32
    else:
        assert isinstance(opts["path"], str) and opts["path"].strip()
        for key in ("config", "split", "test_split", "label"):
            assert key not in opts or (isinstance(opts[key], str) and opts[key].strip())
        if "features" in opts:
            feats = opts["features"]
            assert (
                isinstance(feats, list)
                and feats
                and all(isinstance(f, str) for f in feats)
            )
            assert opts.get("label", "label") not in feats


def read_or_reject(path: Path, content: str | bytes) -> None:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    try:
        card = read_card(path)
    except UserError:
        event("rejected")
        return
    event("accepted")
    assert_valid_card(card)


@fuzz(300)
@given(
    st.dictionaries(
        st.one_of(
            st.sampled_from(FIELDS + sorted(set().union(*OPTIONS.values()))), text
        ),
        toml_values,
        max_size=8,
    )
)
def test_random_card_documents(tmp_path_factory, fields):
    read_or_reject(tmp_path_factory.mktemp("card") / "c.toml", document(fields))


small_ints = st.integers(-2, 14)
names = st.sampled_from(["a", "b", "label", "x", ""])
# values near the valid range of each key (boundaries included), besides random ones
PLAUSIBLE = {
    "name": st.sampled_from(["digits", "", " ", "a b"]),
    "description": st.sampled_from(["", "text"]),
    "num_classes": st.one_of(
        small_ints, st.sampled_from([MAX_CLASSES, MAX_CLASSES + 1])
    ),
    "test_fraction": st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0, 1, 0.0, 1.0])),
    "split_seed": st.one_of(small_ints, st.sampled_from([2**63 - 1, -(2**63)])),
    "standardize": st.booleans(),
    "class_map": st.dictionaries(small_ints.map(str), small_ints, max_size=4),
    "train": st.dictionaries(st.sampled_from(TRAIN_KEYS), toml_values, max_size=3),
    "source": st.sampled_from(SOURCES),
    "loader": st.sampled_from(["load_digits", "fetch_x", "make_blobs", "load_", ""]),
    "path": st.sampled_from(["t.parquet", "t.csv", "t.npz", "t.txt", "", "user/data"]),
    "config": st.sampled_from(["default", ""]),
    "split": st.sampled_from(["train", "test", ""]),
    "test_split": st.sampled_from(["train", "test", ""]),
    "label": names,
    "features": st.lists(names, max_size=3),
    "num_samples": st.sampled_from([99, 100, 5000, 1_000_001]),
    "seed": st.sampled_from([-1, 0, 42, 2**32]),
    "image_shape": st.lists(st.integers(-1, 9), max_size=4),
    "signal_shape": st.lists(st.integers(-1, 41), max_size=3),
}
TRAIN_PLAUSIBLE = {
    "model": st.sampled_from(["mlp", ""]),
    "hidden": st.lists(st.integers(-1, 300), max_size=3),
    "epochs": st.integers(-1, 10),
    "batch_size": st.integers(-1, 300),
    "optimizer": st.sampled_from(["adam", "sgd", "adamw", "lbfgs"]),
    "lr": st.floats(-0.1, 1.0),
    "weight_decay": st.floats(-0.1, 0.1),
    "momentum": st.floats(-0.5, 1.5),
    "val_fraction": st.floats(-0.5, 1.5),
    "warmup": st.floats(-0.5, 1.5),
    "nesterov": st.sampled_from([True, False, 0, 1]),
    "schedule": st.sampled_from(["constant", "step", "cosine", "onecycle", "linear"]),
    "milestones": st.lists(st.integers(-1, 12), max_size=3),
    "gamma": st.floats(-0.5, 1.5),
}


@fuzz(400)
@given(
    st.sampled_from(SOURCES),
    st.sampled_from(FIELDS + ["option", "train_key", "class_map_entry"]),
    st.booleans(),
    st.data(),
)
def test_one_random_field_in_a_valid_card(
    tmp_path_factory, source, field, plausible, data
):
    """A valid card of each source with one key (or one [train] or class_map entry)
    set to a value near its valid range, or to any TOML value at all."""
    fields = dict(BASE[source])
    if field == "option":
        key = data.draw(st.sampled_from(sorted(OPTIONS[source])))
        fields[key] = data.draw(PLAUSIBLE[key] if plausible else toml_values)
    elif field == "train_key":
        key = data.draw(st.sampled_from(TRAIN_KEYS))
        fields["train"] = {
            key: data.draw(TRAIN_PLAUSIBLE[key] if plausible else toml_values)
        }
    elif field == "class_map_entry":
        fields["num_classes"] = data.draw(st.integers(2, 12))
        value = data.draw(small_ints if plausible else toml_values)
        fields["class_map"] = {data.draw(small_ints.map(str)): value}
    else:
        fields[field] = data.draw(PLAUSIBLE[field] if plausible else toml_values)
    read_or_reject(tmp_path_factory.mktemp("card") / "c.toml", document(fields))


@fuzz(200)
@given(
    st.one_of(
        st.binary(max_size=300), text.map(lambda s: s.encode("utf-8", "surrogatepass"))
    )
)
def test_random_bytes_as_a_card(tmp_path_factory, content):
    read_or_reject(tmp_path_factory.mktemp("card") / "c.toml", content)


# --------------------------------------------------------------------------------------
# dataset files
# --------------------------------------------------------------------------------------


def assert_valid_dataset(ds, n_rows: int | None = None) -> None:
    """README: x float32 (N, D), finite, D >= 1; y int64 in 0..K-1; every class has a
    training sample; pool and test partition the rows."""
    assert ds.x.dtype == np.float32 and ds.x.ndim == 2 and ds.x.shape[1] >= 1
    assert ds.x_test.dtype == np.float32 and ds.x_test.shape[1:] == ds.x.shape[1:]
    assert np.isfinite(ds.x).all() and np.isfinite(ds.x_test).all()
    k = ds.num_classes
    assert k >= 2
    for x, y in ((ds.x, ds.y), (ds.x_test, ds.y_test)):
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert ((y >= 0) & (y < k)).all()
    assert set(np.unique(ds.y).tolist()) == set(range(k))
    if n_rows is not None:
        assert len(ds.y) + len(ds.y_test) == n_rows


def load_or_reject(path: Path, n_rows: int | None = None):
    try:
        ds = load_dataset(str(path))
    except UserError:
        event("rejected")
        return None
    event("accepted")
    assert_valid_dataset(ds, n_rows)
    return ds


MAGIC = {".parquet": b"PAR1", ".npz": b"PK\x03\x04", ".csv": b"label,"}


@fuzz(300)
@given(st.sampled_from(sorted(MAGIC)), st.binary(max_size=400), st.booleans())
def test_random_bytes_as_a_data_file(tmp_path_factory, suffix, body, magic):
    path = tmp_path_factory.mktemp("data") / f"d{suffix}"
    path.write_bytes(
        (MAGIC[suffix] if magic else b"")
        + body
        + (b"PAR1" if magic and suffix == ".parquet" else b"")
    )
    load_or_reject(path)


@fuzz(150)
@given(st.text(st.sampled_from("0123456789.,-eE \n\tabnNiIfl\"'#"), max_size=200))
def test_random_csv_text(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("data") / "d.csv"
    path.write_text("a,label\n" + body)
    load_or_reject(path)


# A column: (arrow type, pool of cell values). Small pools so that classes repeat.
COLUMN_KINDS = {
    "int": (pa.int64(), st.integers(0, 2)),
    "whole": (pa.float64(), st.sampled_from([0.0, 1.0, 2.0])),
    "float": (pa.float64(), st.floats(-1e6, 1e6)),
    "special": (pa.float64(), st.sampled_from([math.nan, math.inf, 1e39, -0.0, 1.0])),
    "bool": (pa.bool_(), st.booleans()),
    "str": (pa.string(), st.sampled_from(["a", "b", "a "])),
    "blank": (pa.string(), st.sampled_from(["a", "b", "", " "])),
    "dict": (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["x", "y", "z"])),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(0, 2), max_size=2)),
    "struct": (
        pa.struct([("c", pa.int64())]),
        st.builds(lambda c: {"c": c}, st.integers(0, 2)),
    ),
    "date": (pa.date32(), st.dates(dt.date(2000, 1, 1), dt.date(2000, 1, 3))),
    "null": (pa.null(), st.none()),
}
LABEL_KINDS = ["int", "str", "dict", "bool", "whole"]
FEATURE_KINDS = ["float", "int", "bool", "whole"]


@st.composite
def tables(draw):
    """(table, column kinds). In 4 of 5 draws each choice is a typical one (numeric
    features, a label column of a label-like kind, no nulls, 4 or more rows), so
    that valid tables are common; otherwise anything goes."""
    odd = st.integers(0, 4).map(lambda v: v == 4)  # hypothesis starts from 0
    n = draw(st.integers(0, 3) if draw(odd) else st.integers(4, 30))
    label = not draw(odd)
    others = st.one_of(st.sampled_from(["a", "b", "", "x y", "é"]), st.text(max_size=4))
    names = draw(st.lists(others, min_size=1 if label else 0, max_size=3, unique=True))
    names = [nm for nm in names if nm != "label"]
    columns, kinds = {}, {}
    for name in (["label"] if label else []) + names:
        typical = LABEL_KINDS if name == "label" else FEATURE_KINDS
        kind = draw(st.sampled_from(sorted(COLUMN_KINDS) if draw(odd) else typical))
        arrow_type, cells = COLUMN_KINDS[kind]
        values = draw(st.lists(cells, min_size=n, max_size=n))
        if kind == "null" or draw(odd):
            nulls = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
            values = [None if z == 0 else v for v, z in zip(values, nulls, strict=True)]
        if kind == "dict":
            columns[name] = pa.array(values, pa.string()).dictionary_encode()
        else:
            columns[name] = pa.array(values, arrow_type)
        kinds[name] = kind
    return pa.table(columns), kinds


def expected_to_load(table: pa.Table, kinds: dict[str, str]) -> bool:
    """The README's rules for a table: numeric features (booleans count), finite and
    within float32; a label column without empty cells, of whole numbers or strings;
    at least 2 classes, each with at least 2 samples."""
    if "label" not in kinds or len(kinds) < 2:
        return False
    for name, kind in kinds.items():
        cells = table.column(name).to_pylist()
        if name == "label":
            if kind in ("list", "struct", "date", "null"):
                return False
            if any(
                c is None
                or (isinstance(c, float) and (not math.isfinite(c) or c != int(c)))
                or (isinstance(c, str) and not c.strip())
                for c in cells
            ):
                return False
            counts = Counter(cells)
            if len(counts) < 2 or min(counts.values()) < 2:
                return False
        elif kind not in ("int", "whole", "float", "special", "bool") or any(
            c is None or (isinstance(c, float) and not abs(c) < 3.4e38) for c in cells
        ):
            return False
    return True


@fuzz(250)
@given(tables())
def test_random_tables_as_parquet(tmp_path_factory, table_and_kinds):
    table, kinds = table_and_kinds
    path = tmp_path_factory.mktemp("data") / "t.parquet"
    pq.write_table(table, path)
    ds = load_or_reject(path, table.num_rows)
    assert (ds is not None) == expected_to_load(table, kinds), kinds
    if ds is not None:
        # labels are encoded in sorted order: class sizes follow the sorted values
        counts = Counter(table.column("label").to_pylist())
        expected = [counts[v] for v in sorted(counts)]
        np.testing.assert_array_equal(
            np.bincount(np.concatenate([ds.y, ds.y_test])), expected
        )


@fuzz(150)
@given(tables())
def test_random_tables_as_csv(tmp_path_factory, table_and_kinds):
    table, _ = table_and_kinds
    path = tmp_path_factory.mktemp("data") / "t.csv"
    try:
        pacsv.write_csv(table, path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return  # lists and structs have no CSV form
    load_or_reject(path, table.num_rows)


DTYPES = ["f8", "f4", "f2", "i8", "u1", "?", "c16", "U3", "S2", "M8[s]"]


@st.composite
def npz_tables(draw):
    """(x, label): in 4 of 5 draws (n, d) and (n,) arrays of common dtypes, else any
    shape and any dtype."""
    odd = st.integers(0, 4).map(lambda v: v == 4)  # hypothesis starts from 0
    n = draw(st.integers(0, 20) if draw(odd) else st.integers(4, 20))
    any_shape = st.lists(st.integers(0, 6), max_size=3).map(tuple)
    if draw(odd):
        x_shape, y_shape = draw(any_shape), draw(any_shape)
    else:
        x_shape = (n, draw(st.integers(1, 3)))
        y_shape = draw(st.sampled_from([(n,), (n,), (n,), (n, 1), (n, 2)]))
    x_dtype = draw(st.sampled_from(DTYPES if draw(odd) else ["f8", "f4", "i8", "?"]))
    y_dtype = draw(st.sampled_from(DTYPES if draw(odd) else ["i8", "U3", "f8"]))
    seeds = st.integers(0, 2**32 - 1)
    return (
        _random_array(x_shape, x_dtype, draw(seeds)),
        _random_array(y_shape, y_dtype, draw(seeds)),
    )


def _random_array(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 3, size=shape)
    if dtype.startswith("f") and rng.random() < 0.3:  # some arrays get odd values
        specials = np.array([np.nan, np.inf, 0.5, 1e39])
        out = np.where(
            rng.random(shape) < 0.1, specials[rng.integers(0, 4, size=shape)], raw
        )
        with np.errstate(over="ignore"):
            return out.astype(dtype)
    return raw.astype(dtype)


@fuzz(250)
@given(
    npz_tables(),
    st.sampled_from(["x", "X", "features", "z"]),
    st.sampled_from(["label", "y", "labels", "t"]),
)
def test_random_npz_files(tmp_path_factory, arrays, xk, yk):
    path = tmp_path_factory.mktemp("data") / "d.npz"
    np.savez(path, **{xk: arrays[0], yk: arrays[1]})
    load_or_reject(path)
