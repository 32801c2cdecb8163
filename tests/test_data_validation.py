"""Bad dataset cards, data files and transition files (issue 9), end to end.

Every case runs `noisebench evaluate` and must exit 2 with one line on stderr that starts
with `error: ` and says what is wrong, and must write no record: invalid input is refused
before training, never recorded as `ok`, never a traceback. Each case differs from a
valid run in one thing only, so the message is the one for that thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from noisebench.cli import app

N = 60  # rows of the valid table: 3 classes of 20


def invoke(*args: str, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def shards(store: Path) -> list[Path]:
    runs = store / "runs"
    return sorted(runs.glob("*.parquet")) if runs.exists() else []


def _columns(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    label = np.array(["ant", "bee", "cat"])[np.arange(n) % 3]
    return {"a": rng.normal(size=n), "b": rng.normal(size=n), "label": label}


@pytest.fixture
def good(tmp_path) -> Path:
    """A valid 3-class table: each case below breaks one thing about it or its card."""
    path = tmp_path / "good.parquet"
    pq.write_table(pa.table(_columns()), path)
    return path


def assert_rejected(tmp_path: Path, message: str, *args: str) -> None:
    store = tmp_path / "store"
    result = invoke(
        "evaluate", "--method", "ce", "--epochs", "1", *args, "--store", str(store)
    )
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert shards(store) == []


def test_the_valid_table_and_card_run(tmp_path, good):
    """The baseline every case departs from is accepted and recorded."""
    card = tmp_path / "good.toml"
    card.write_text(f"source = 'file'\npath = {json.dumps(str(good))}\n")
    store = tmp_path / "store"
    result = invoke(
        "evaluate",
        *("--method", "ce", "--epochs", "1", "--seeds", "1"),
        *("--dataset", str(card), "--store", str(store)),
    )
    assert result.exit_code == 0, result.output
    assert len(shards(store)) == 1


# --------------------------------------------------------------------------------------
# dataset cards: every field's type and range, the source options, the tables
# --------------------------------------------------------------------------------------

# (keys to set, as TOML literals; None deletes the key), text appended, message
CARD_CASES = [
    ({"test_fraction": "0"}, "", "test_fraction must be a number strictly between 0"),
    ({"test_fraction": "1.0"}, "", "test_fraction must be a number strictly between"),
    ({"test_fraction": "1.5"}, "", "test_fraction must be a number strictly between"),
    ({"test_fraction": "-0.1"}, "", "test_fraction must be a number strictly between"),
    ({"test_fraction": "nan"}, "", "test_fraction must be a number strictly between"),
    ({"test_fraction": "'0.2'"}, "", "test_fraction must be a number"),
    ({"test_fraction": "true"}, "", "test_fraction must be a number"),
    ({"num_classes": "'three'"}, "", "num_classes must be an integer in [2, 10000]"),
    ({"num_classes": "1"}, "", "num_classes must be an integer in [2, 10000], got 1"),
    ({"num_classes": "true"}, "", "num_classes must be an integer"),
    ({"num_classes": "2.5"}, "", "num_classes must be an integer"),
    ({"num_classes": "100000"}, "", "num_classes must be an integer in [2, 10000]"),
    ({"split_seed": "'0'"}, "", "split_seed must be an integer >= 0, got '0'"),
    ({"split_seed": "-1"}, "", "split_seed must be an integer >= 0, got -1"),
    ({"split_seed": "1.5"}, "", "split_seed must be an integer >= 0"),
    ({"name": "''"}, "", "name must be a non-empty string"),
    ({"name": "'   '"}, "", "name must be a non-empty string"),
    ({"name": "3"}, "", "name must be a non-empty string, got 3"),
    ({"description": "3"}, "", "description must be a string"),
    ({"standardize": "'yes'"}, "", "standardize must be true or false"),
    ({"standardize": "1"}, "", "standardize must be true or false"),
    ({"source": "'ftp'"}, "", "source must be one of sklearn, huggingface, file"),
    ({"source": "'fil'"}, "", "(did you mean 'file'?)"),
    ({"source": None}, "", "'source' is required"),
    ({"test_fracton": "0.2"}, "", "unknown key 'test_fracton' (did you mean"),
    ({"loader": "'load_digits'"}, "", "unknown key 'loader'"),
    # source = "file"
    ({"path": None}, "", "'path' is required for a file card"),
    ({"path": "'data.txt'"}, "", "path must be a file path ending in .parquet"),
    ({"path": "3"}, "", "path must be a file path"),
    ({"path": "'missing.parquet'"}, "", "data file not found: missing.parquet"),
    # source = "sklearn"
    ({"source": "'sklearn'", "path": None}, "", "'loader' is required"),
    (
        {"source": "'sklearn'", "path": None, "loader": "'make_blobs'"},
        "",
        "loader must be the name of a scikit-learn load_*/fetch_* function",
    ),
    (
        {"source": "'sklearn'", "path": None, "loader": "'load_nothing'"},
        "",
        "sklearn.datasets has no loader 'load_nothing'",
    ),
    (
        {"source": "'sklearn'", "path": None, "loader": "'load_files'"},
        "",
        "sklearn.datasets.load_files(return_X_y=True) failed: TypeError",
    ),
    # source = "huggingface"
    ({"source": "'huggingface'", "path": None}, "", "'path' is required"),
    ({"source": "'huggingface'", "features": "'a'"}, "", "features must be a non-"),
    ({"source": "'huggingface'", "features": "[]"}, "", "features must be a non-"),
    ({"source": "'huggingface'", "features": "['a', 'a']"}, "", "distinct column"),
    (
        {"source": "'huggingface'", "features": "['a', 'label']"},
        "",
        "features must not include the label column 'label'",
    ),
    (
        {"source": "'huggingface'", "test_split": "'train'"},
        "",
        "test_split 'train' is the training split itself",
    ),
    ({"source": "'huggingface'", "label": "3"}, "", "label must be a non-empty"),
    ({"source": "'huggingface'", "config": "''"}, "", "config must be a non-empty"),
    # class_map
    ({"class_map": "3"}, "", "class_map must be a table of class = class"),
    ({}, "[class_map]\na = 1\n", "class_map entries must be class = class"),
    ({}, "[class_map]\n0 = '1'\n", "class_map entries must be class = class"),
    ({}, "[class_map]\n0 = 1.0\n", "class_map entries must be class = class"),
    ({}, "[class_map]\n-1 = 0\n", "class_map entry -1 = 0 names a negative class"),
    ({}, "[class_map]\n0 = -2\n", "class_map entry 0 = -2 names a negative class"),
    ({"num_classes": "3"}, "[class_map]\n0 = 5\n", "entry 0 = 5 lies outside 0..2"),
    # without num_classes the data's K decides, once it is loaded
    ({}, "[class_map]\n7 = 1\n", "entry 7 = 1 lies outside 0..2 (the data has 3"),
    # [train]
    ({"train": "3"}, "", "train must be a table of training settings"),
    ({}, "[train]\nhidden = '256'\n", "hidden must be a list of integers"),
    ({}, "[train]\nhidden = [256, 'a']\n", "hidden must be a list of integers"),
    ({}, "[train]\nepochs = '10'\n", "[train]: epochs must be an integer"),
    ({}, "[train]\nlr = inf\n", "[train]: lr must be a number, got inf"),
    ({}, "[train]\nepchs = 10\n", "unknown training setting 'epchs' (did you mean"),
    ({}, "[train]\nlr = 1" + "0" * 400 + "\n", "an integer does not fit in 64 bits"),
    # the split the card asks for
    ({"test_fraction": "0.001"}, "", "clean test split: a 0.001 split of 60 samples"),
    ({"test_fraction": "0.99"}, "", "would leave some class without a sample"),
]


def _card_text(good: Path, keys: dict[str, str | None], tail: str) -> str:
    fields = {"source": "'file'", "path": json.dumps(str(good))}
    fields.update(keys)
    lines = [f"{k} = {v}" for k, v in fields.items() if v is not None]
    return "\n".join(lines) + "\n" + tail


@pytest.mark.parametrize(
    "keys,tail,message", CARD_CASES, ids=[c[2][:40] for c in CARD_CASES]
)
def test_bad_card_fields(tmp_path, good, keys, tail, message):
    card = tmp_path / "card.toml"
    card.write_text(_card_text(good, keys, tail))
    assert_rejected(tmp_path, message, "--dataset", str(card))


@pytest.mark.parametrize(
    "content,message",
    [
        (b"source = 'file'\nname = '\xff\xfe'\n", "is not UTF-8 text"),
        (b"source = \n", "is not valid TOML"),
        (b"source = 'file'\nsource = 'file'\n", "is not valid TOML"),
        (b"split_seed = 1" + b"0" * 5000 + b"\n", "is not valid TOML"),
        (b"a = " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "is not valid TOML"),
        (b"", "'source' is required"),
    ],
    ids=["latin-1", "syntax", "duplicate", "5000 digits", "deep", "empty"],
)
def test_unreadable_cards(tmp_path, content, message):
    card = tmp_path / "card.toml"
    card.write_bytes(content)
    assert_rejected(tmp_path, message, "--dataset", str(card))


def test_datasets_listing_reads_cards_through_the_same_schema(monkeypatch, tmp_path):
    """`noisebench datasets` validates every card too, [train] included."""
    (tmp_path / "bad.toml").write_text(
        "source = 'sklearn'\nloader = 'load_digits'\n[train]\nhidden = '256'\n"
    )
    monkeypatch.setattr(
        "noisebench.data.cards.card_files", lambda: {"bad": tmp_path / "bad.toml"}
    )
    result = invoke("datasets")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: dataset card ")
    assert "[train]: hidden must be a list of integers" in result.stderr


# --------------------------------------------------------------------------------------
# labels and features of data files
# --------------------------------------------------------------------------------------


def _parquet(path: Path, **columns) -> Path:
    pq.write_table(pa.table({**_columns(), **columns}), path)
    return path


def _npz(path: Path, **arrays) -> Path:
    cols = _columns()
    base = {"x": np.stack([cols["a"], cols["b"]], axis=1), "label": np.arange(N) % 3}
    np.savez(path, **{**base, **arrays})
    return path


def _with(index: int, value, values) -> list:
    out = list(values)
    out[index] = value
    return out


LABELS = list(_columns()["label"])
INTS = [int(i) for i in np.arange(N) % 3]

DATA_CASES = [
    # empty or missing label cells
    ("none.parquet", {"label": _with(7, None, LABELS)}, "1 of 60 rows have an empty"),
    ("blank.parquet", {"label": _with(7, "", LABELS)}, "1 of 60 rows have an empty"),
    ("space.parquet", {"label": _with(7, "  ", LABELS)}, "1 of 60 rows have an empty"),
    (
        "nan.parquet",
        {"label": _with(3, float("nan"), [float(i) for i in INTS])},
        "1 of 60 rows have an empty label",
    ),
    ("null.parquet", {"label": pa.array([None] * N, pa.int64())}, "60 of 60 rows"),
    # a pandas categorical: pyarrow's to_numpy would fill the null with a category
    (
        "categorical.parquet",
        {"label": pa.array(_with(7, None, LABELS)).dictionary_encode()},
        "1 of 60 rows have an empty label",
    ),
    # not class labels
    ("reg.parquet", {"label": np.linspace(0, 1, N)}, "are not whole numbers"),
    ("half.parquet", {"label": [i + 0.5 for i in INTS]}, "regression target"),
    ("list.parquet", {"label": [[i, i] for i in INTS]}, "not lists or structs"),
    ("struct.parquet", {"label": [{"c": i} for i in INTS]}, "not lists or structs"),
    ("unique.parquet", {"label": np.arange(N)}, "60 of 60 classes have fewer than 2"),
    (
        "single.parquet",
        {"label": _with(0, "yak", LABELS)},
        "1 of 4 classes have fewer than 2 samples",
    ),
    ("one.parquet", {"label": ["ant"] * N}, "needs at least 2 classes, found 1"),
    # features
    ("text.parquet", {"b": ["x"] * N}, "feature columns must be numeric, not b"),
    ("big.parquet", {"b": _with(5, 1e39, [0.0] * N)}, "beyond float32"),
    ("inf.parquet", {"b": _with(5, float("inf"), [0.0] * N)}, "NaN or infinite"),
    ("label2d.npz", {"label": np.zeros((N, 2))}, "got an array of shape (60, 2)"),
    ("label0d.npz", {"label": np.array(3)}, "got an array of shape ()"),
    ("complexy.npz", {"label": np.arange(N) + 1j}, "not complex numbers"),
    ("nofeat.npz", {"x": np.zeros((N, 0))}, "the data has no feature columns"),
    ("norows.npz", {"x": np.zeros((0, 2)), "label": np.zeros(0)}, "has no rows"),
    (
        "complex.npz",
        {"x": np.ones((N, 2)) + 1j},
        "features must be numbers, got complex",
    ),
    (
        "strings.npz",
        {"x": np.full((N, 2), "1.5")},
        "features must be numbers, got strings",
    ),
    ("dates.npz", {"x": np.zeros((N, 2), "datetime64[s]")}, "got dates"),
    ("pickled.npz", {"x": np.array([[object()]] * N)}, "cannot read"),
    ("short.npz", {"label": np.arange(N - 1) % 3}, "60 feature rows but 59 labels"),
]


@pytest.mark.parametrize(
    "name,change,message", DATA_CASES, ids=[c[0] for c in DATA_CASES]
)
def test_bad_labels_and_features(tmp_path, name, change, message):
    path = tmp_path / name
    (_npz if path.suffix == ".npz" else _parquet)(path, **change)
    assert_rejected(tmp_path, message, "--dataset", str(path))


@pytest.mark.parametrize(
    "text,message",
    [
        ("a,b,label\n" + "".join(f"{i},1,{i % 3}\n" for i in range(N - 1)) + "9,1,\n",
         "1 of 60 rows have an empty label"),  # a null in an integer column
        ("a,b,label\n" + "".join(f"{i},1,c{i % 3}\n" for i in range(N - 1)) + "9,1,\n",
         "1 of 60 rows have an empty label"),  # an empty string
        ("a,a,label\n" + "".join(f"{i},1,{i % 3}\n" for i in range(N)),
         "duplicate column names a"),
        (b"\x80\n", "cannot read"),  # not UTF-8: pyarrow fails on the column name
    ],
    ids=["null", "empty string", "duplicate columns", "latin-1 header"],
)  # fmt: skip
def test_bad_csv_tables(tmp_path, text, message):
    if isinstance(text, bytes):
        (tmp_path / "t.csv").write_bytes(text)
    else:
        (tmp_path / "t.csv").write_text(text)
    assert_rejected(tmp_path, message, "--dataset", str(tmp_path / "t.csv"))


def test_a_column_of_labels_is_accepted_and_flattened(tmp_path):
    """(N, 1) labels are one label per row: the same dataset as the (N,) column."""
    from noisebench.data import load_dataset

    (tmp_path / "flat").mkdir()
    (tmp_path / "column").mkdir()
    flat = _npz(tmp_path / "flat" / "t.npz")  # one stem: the name seeds the split
    with np.load(flat) as arrays:
        x, y = arrays["x"], arrays["label"]
    np.savez(tmp_path / "column" / "t.npz", x=x, label=y[:, None])
    ds = load_dataset(str(tmp_path / "column" / "t.npz"))
    assert ds.num_classes == 3 and ds.y.shape == (48,) and ds.y_test.shape == (12,)
    # stratified: each class of 20 keeps 20 * 0.8 = 16 training samples
    np.testing.assert_array_equal(np.bincount(ds.y), [16, 16, 16])
    assert ds.sha == load_dataset(str(flat)).sha


# --------------------------------------------------------------------------------------
# a separate Hugging Face test split obeys the same rules
# --------------------------------------------------------------------------------------


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"label": _with(2, None, LABELS[:30])}, "(test split): 1 of 30 rows have an"),
        (
            {"b": _with(1, float("nan"), [0.0] * 30)},
            "(test split): features contain NaN",
        ),
    ],
    ids=["empty label", "NaN feature"],
)
def test_bad_test_split_through_datasets(tmp_path, hf_offline, change, message):
    folder = tmp_path / "hf"
    folder.mkdir()
    pq.write_table(pa.table(_columns()), folder / "train-00000-of-00001.parquet")
    test = {k: v[:30] for k, v in _columns().items()}
    pq.write_table(pa.table({**test, **change}), folder / "test-00000-of-00001.parquet")
    card = tmp_path / "hf.toml"
    card.write_text(
        f"source = 'huggingface'\npath = {json.dumps(str(folder))}\ntest_split = 'test'\n"
    )
    assert_rejected(tmp_path, message, "--dataset", str(card))


X30 = np.zeros((30, 2))
Y30 = np.arange(30) % 3


@pytest.mark.parametrize(
    "x_test,y_test,message",
    [
        (X30, Y30 + 0.5, "(test split): labels must be classes, but 30 are not whole"),
        (X30, np.stack([Y30, Y30], 1), "(test split): labels must be one value per"),
        (X30, np.array([[0, 1]] * 30, dtype=object), "(test split): labels must be"),
        (np.zeros((30, 3)), Y30, "the test split has 3 features, the training split 2"),
        (np.zeros((0, 2)), Y30[:0], "(test split): the data has no rows"),
        (X30 + 1j, Y30, "(test split): features must be numbers, got complex"),
        (X30, Y30 + 7, "test label 7 never occurs in training"),
        (X30, np.array([0, "a"] * 15, dtype=object), "labels mix strings and numbers"),
        (X30, np.array([2**70] * 30, dtype=object), "integers too large to encode"),
    ],
    ids=[
        "fractional",
        "2-D labels",
        "list labels",
        "width",
        "empty",
        "complex",
        "new",
        "mixed",
        "huge",
    ],
)
def test_bad_test_split_arrays(tmp_path, monkeypatch, x_test, y_test, message):
    """Splits with other columns than the training split come only from hub configs,
    so the loader is replaced by one returning such arrays."""
    cols = _columns()
    x, y = np.stack([cols["a"], cols["b"]], axis=1), np.arange(N) % 3
    monkeypatch.setattr(
        "noisebench.data.load._load_huggingface", lambda card: (x, y, (x_test, y_test))
    )
    card = tmp_path / "hf.toml"
    card.write_text("source = 'huggingface'\npath = 'user/data'\ntest_split = 'test'\n")
    assert_rejected(tmp_path, message, "--dataset", str(card))


# --------------------------------------------------------------------------------------
# transition files
# --------------------------------------------------------------------------------------

T3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])


def _save_npy(path: Path, array) -> None:
    np.save(path, array, allow_pickle=True)  # allowed here: the object case needs it


TRANSITION_CASES = [
    ("complex.npy", T3 + 0.1j, "must hold real numbers, not complex numbers"),
    ("strings.npy", T3.astype(str), "must hold real numbers, not strings"),
    ("bools.npy", np.eye(3, dtype=bool), "must hold real numbers, not booleans"),
    ("objects.npy", T3.astype(object), "holds pickled Python objects"),
    ("vector.npy", T3[0], "must hold a 3x3 matrix for this dataset, got shape (3,)"),
    ("cube.npy", T3[None], "must hold a 3x3 matrix for this dataset, got shape (1, 3"),
    ("nan.npy", np.where(np.eye(3) > 0, np.nan, 0.1), "finite, non-negative entries"),
    ("text.csv", "a,b,c\n1,2,3\n", "cannot read transition file"),
    ("ragged.csv", "0.8,0.1,0.1\n0.1,0.9\n0.1,0.1,0.8\n", "line 2 has 2 entries"),
    ("empty.csv", "", "the file holds no numbers"),
    ("blank.csv", "\n  \n# a comment\n", "the file holds no numbers"),
    ("nan.csv", "0.8,0.1,0.1\nnan,0.8,0.1\n0.1,0.1,0.8\n", "finite, non-negative"),
    ("inf.csv", "0.8,0.1,0.1\n0.1,inf,0.1\n0.1,0.1,0.8\n", "finite, non-negative"),
    ("latin1.csv", b"0.8,0.1,0.1\xff\n", "cannot read transition file"),
]


@pytest.mark.parametrize(
    "name,content,message", TRANSITION_CASES, ids=[c[0] for c in TRANSITION_CASES]
)
def test_bad_transition_files(tmp_path, good, name, content, message):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        _save_npy(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_rejected(
        tmp_path,
        message,
        *("--dataset", str(good), "--noise-type", "transition"),
        *("--transition-file", str(path)),
    )


@pytest.mark.parametrize(
    "name,write",
    [
        ("archive.npy", lambda p: p.write_bytes(_npz_bytes(p))),
        ("noise.npy", lambda p: p.write_bytes(bytes(range(256)) * 4)),
        ("truncated.npy", lambda p: p.write_bytes(_npy_bytes(p)[:-8])),
    ],
)
def test_transition_files_that_are_not_npy(tmp_path, good, name, write):
    path = tmp_path / name
    write(path)
    assert_rejected(
        tmp_path,
        "cannot read transition file",
        *("--dataset", str(good), "--noise-type", "transition"),
        *("--transition-file", str(path)),
    )


def _npz_bytes(path: Path) -> bytes:
    np.savez(path.with_suffix(".npz"), t=T3)
    return path.with_suffix(".npz").read_bytes()


def _npy_bytes(path: Path) -> bytes:
    np.save(path.with_name("whole.npy"), T3)
    return path.with_name("whole.npy").read_bytes()
