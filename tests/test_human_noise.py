"""Human label noise (CIFAR-N layout) and its synthetic twin (DESIGN.md §3).

The data is a small generated Hugging Face folder with its own test split, so the pool
is the whole training split in file order, as for the cifar10/cifar100 cards. Expected
values are counted by hand in Python loops from the generated labels, hashed with
hashlib, or are sampling tolerances derived from the sample size.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.data import load_dataset
from noisebench.errors import UserError
from noisebench.experiment import RunSpec, draw_noise, prepare, train_config_for
from noisebench.human import realized_transition
from noisebench.noise import NoiseSpec, confusion
from noisebench.records import config_identity
from noisebench.store import read_records

K = 4
SIZES = [600, 550, 450, 400]  # clean class sizes of the pool (N = 2000)
N = sum(SIZES)
# the (random) annotators' confusion the labels are drawn from; what they realize is
# counted from the labels themselves
WORSE = [
    [0.70, 0.20, 0.05, 0.05],
    [0.10, 0.60, 0.20, 0.10],
    [0.05, 0.15, 0.75, 0.05],
    [0.20, 0.05, 0.05, 0.70],
]
AGGRE = [[0.9 if i == j else 0.1 / 3 for j in range(K)] for i in range(K)]


def _draw(clean: np.ndarray, rows, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(K, p=rows[c]) for c in clean], dtype=np.int64)


def _counts(clean, noisy) -> list[list[int]]:
    """The confusion counts, one sample at a time."""
    counts = [[0] * K for _ in range(K)]
    for c, n in zip(clean.tolist(), noisy.tolist(), strict=True):
        counts[c][n] += 1
    return counts


def _hand_t(counts) -> np.ndarray:
    return np.array([[c / sum(row) for c in row] for row in counts])


def _sha(matrix: np.ndarray) -> str:
    """noisebench's matrix hash, written out: shape, dtype, then the raw bytes."""
    m = np.ascontiguousarray(matrix)
    return hashlib.sha256(f"{m.shape}{m.dtype}".encode() + m.tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny dataset (card + train/test parquet) and CIFAR-N style label files."""
    root = tmp_path_factory.mktemp("human")
    with pytest.MonkeyPatch.context() as mp:
        import datasets

        mp.setattr(datasets.config, "HF_DATASETS_CACHE", root / "hf_cache")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        rng = np.random.default_rng(0)
        clean = rng.permutation(np.repeat(np.arange(K), SIZES))
        test = rng.permutation(np.repeat(np.arange(K), 50))
        folder = root / "tiny"
        folder.mkdir()
        for split, labels in (("train", clean), ("test", test)):
            table = {f"f{d}": rng.normal(size=len(labels)) + labels for d in range(3)}
            table["label"] = labels
            pq.write_table(pa.table(table), folder / f"{split}-00000-of-00001.parquet")
        card = root / "tiny.toml"
        card.write_text(
            f"source = 'huggingface'\npath = '{folder}'\ntest_split = 'test'\n"
            "[train]\nhidden = [8]\nepochs = 1\nbatch_size = 256\n"
        )
        worse, aggre = _draw(clean, WORSE, 1), _draw(clean, AGGRE, 2)
        labels = {
            "clean_label": clean,
            "worse_label": worse,
            "aggre_label": aggre,
            "random_label1": _draw(clean, WORSE, 3),
        }
        pt = root / "CIFAR-tiny_human.pt"
        torch.save(labels, pt)  # numpy arrays, as CIFAR-N's own files hold
        yield {
            "root": root,
            "card": str(card),
            "clean": clean,
            "worse": worse,
            "aggre": aggre,
            "pt": str(pt),
            "ds": load_dataset(str(card)),
        }


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _human(world, key="worse_label", path=None, **kw) -> NoiseSpec:
    return NoiseSpec(kind="human", noise_file=path or world["pt"], noise_key=key, **kw)


# --------------------------------------------------------------------------------------
# labels, T and rate
# --------------------------------------------------------------------------------------


def test_the_pool_is_the_training_split_in_file_order(world):
    np.testing.assert_array_equal(world["ds"].y, world["clean"])


def test_labels_attach_by_index_and_t_is_their_confusion(world):
    ds, worse = world["ds"], world["worse"]
    spec, t, fixed = _human(world).realize(ds)
    np.testing.assert_array_equal(fixed, worse)
    assert fixed.dtype == np.int64
    counts = _counts(world["clean"], worse)
    np.testing.assert_array_equal(t, _hand_t(counts))  # c_ij / n_i, bit for bit
    flips = sum(int(c != n) for c, n in zip(world["clean"], worse, strict=True))
    assert spec.rate == pytest.approx(flips / N, abs=5e-7)
    assert spec.mode == "fixed" and spec.kind == "human"
    assert spec.labels_sha == _sha(worse.astype(np.int64))


def test_every_file_format_gives_the_same_labels(world):
    root, worse, clean = world["root"], world["worse"], world["clean"]
    np.save(root / "worse.npy", worse)
    np.savez(root / "labels.npz", clean_label=clean, worse_label=worse)
    pq.write_table(
        pa.table({"worse_label": worse, "clean_label": clean}), root / "labels.parquet"
    )
    torch.save({"worse_label": torch.as_tensor(worse)}, root / "tensors.pt")
    torch.save({"worse_label": worse.tolist()}, root / "lists.pt")
    for name, key in (
        ("worse.npy", None),
        ("labels.npz", "worse_label"),
        ("labels.parquet", "worse_label"),
        ("tensors.pt", "worse_label"),
        ("lists.pt", "worse_label"),
    ):
        _, _, fixed = _human(world, key, str(root / name)).realize(world["ds"])
        np.testing.assert_array_equal(fixed, worse, err_msg=name)


def test_a_file_written_under_numpy_1_loads(world):
    """CIFAR-N's files predate numpy 2: their pickles name numpy.core.multiarray."""
    with zipfile.ZipFile(world["pt"]) as src:
        members = {name: src.read(name) for name in src.namelist()}
    (pkl,) = [name for name in members if name.endswith("data.pkl")]
    old = members[pkl].replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert old != members[pkl]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name, data in members.items():
            out.writestr(name, old if name == pkl else data)
    path = world["root"] / "numpy1.pt"
    path.write_bytes(buf.getvalue())
    _, _, fixed = _human(world, path=str(path)).realize(world["ds"])
    np.testing.assert_array_equal(fixed, world["worse"])


def test_an_empty_class_keeps_an_identity_row():
    clean = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])
    noisy = np.array([0, 1, 1, 1, 0, 3, 3, 0, 3])
    t = realized_transition(clean, noisy, 4)
    expected = np.array(
        [
            [1 / 3, 2 / 3, 0, 0],
            [1 / 2, 1 / 2, 0, 0],
            [0, 0, 1, 0],  # no sample of class 2
            [1 / 4, 0, 0, 3 / 4],
        ]
    )
    np.testing.assert_array_equal(t, expected)


def test_same_labels_for_every_noise_seed_but_their_own_splits(world):
    spec = RunSpec(
        method="ce",
        params={},
        dataset=world["card"],
        noise=_human(world),
        train=train_config_for(load_dataset(world["card"]).card),
        seeds=(0, 1, 2, 3),
    )
    prepared = prepare(spec)
    for row in prepared.noisy:
        np.testing.assert_array_equal(row, world["worse"])
    vals = [frozenset(v.tolist()) for v in prepared.val_idx]
    assert len(set(vals)) == 4  # four seeds, four splits
    worse = world["worse"]
    class_counts = np.bincount(worse, minlength=K)
    for train, val in zip(prepared.train_idx, prepared.val_idx, strict=True):
        assert len(val) == round(0.1 * N) and len(train) + len(val) == N
        assert not set(train.tolist()) & set(val.tolist())
        # stratified by the noisy label: each class within 1 of its share
        in_val = np.bincount(worse[val], minlength=K)
        assert (np.abs(in_val - 0.1 * class_counts) < 1).all(), in_val


def test_labels_enter_the_configuration_identity(world):
    """Two files with the same T but other labels are two configurations; other noise
    keeps the identity it always had (no labels_sha key)."""
    clean, worse = world["clean"], world["worse"]
    shuffled = worse.copy()
    rng = np.random.default_rng(9)
    for c in range(K):  # permuted within each clean class: the same confusion
        idx = np.flatnonzero(clean == c)
        shuffled[idx] = worse[rng.permutation(idx)]
    assert (shuffled != worse).any()
    other = world["root"] / "shuffled.pt"
    torch.save({"clean_label": clean, "worse_label": shuffled}, other)
    train = train_config_for(world["ds"].card)

    def identity(noise):
        spec = RunSpec("ce", {}, world["card"], noise, train, seeds=(0,))
        return config_identity(prepare(spec))

    a, b = identity(_human(world)), identity(_human(world, path=str(other)))
    assert a["transition_sha"] == b["transition_sha"]
    assert a["noise"]["labels_sha"] != b["noise"]["labels_sha"]
    assert {k: v for k, v in a.items() if k != "noise"} == {
        k: v for k, v in b.items() if k != "noise"
    }
    symmetric = identity(NoiseSpec("symmetric", 0.2))
    assert symmetric["noise"] == {"kind": "symmetric", "rate": 0.2, "mode": "exact"}


# --------------------------------------------------------------------------------------
# the synthetic twin
# --------------------------------------------------------------------------------------


def _twin(world, mode="exact") -> NoiseSpec:
    return NoiseSpec(
        kind="transition",
        mode=mode,
        transition_from=world["pt"],
        noise_key="worse_label",
    )


def test_twin_uses_the_t_the_file_realizes(world):
    spec, t, fixed = _twin(world).realize(world["ds"])
    hand = _hand_t(_counts(world["clean"], world["worse"]))
    np.testing.assert_array_equal(t, hand)
    assert fixed is None
    assert spec.rate == pytest.approx(1 - np.trace(hand) / K, abs=5e-7)


def test_exact_twin_reproduces_the_files_confusion_counts(world):
    """exact mode gives class i exactly round(n_i T[i, j]) = c_ij samples of j: the
    counts of the file, with new per-sample labels each seed."""
    ds, worse = world["ds"], world["worse"]
    _, t, _ = _twin(world).realize(ds)
    counts = np.array(_counts(world["clean"], worse))
    draws = [draw_noise(ds, t, "exact", seed, 0.1)[0] for seed in range(3)]
    for noisy in draws:
        np.testing.assert_array_equal(confusion(ds.y, noisy, K), counts)
        assert (noisy != worse).mean() > 0.1  # not the file's labels, its T
    assert (draws[0] != draws[1]).any()


def test_random_twin_matches_t_within_sampling_error(world):
    ds = world["ds"]
    _, t, _ = _twin(world, "random").realize(ds)
    seeds = 20
    total = sum(
        confusion(ds.y, draw_noise(ds, t, "random", s, 0.1)[0], K) for s in range(seeds)
    )
    n = np.array(SIZES) * seeds
    expected = n[:, None] * t
    sigma = np.sqrt(n[:, None] * t * (1 - t))
    # 5 sigma per entry: a binomial count, 16 entries
    assert (np.abs(total - expected) <= 5 * sigma + 1e-9).all(), total - expected


# --------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------


def test_evaluate_with_human_noise_records_it(world, tmp_path):
    store = tmp_path / "store"
    result = invoke(
        *("evaluate", "--method", "forward", "--dataset", world["card"]),
        *("--noise-type", "human", "--noise-file", world["pt"]),
        *("--noise-key", "worse_label", "--seeds", "2", "--store", str(store)),
        "--json",
    )
    assert result.exit_code == 0, result.output
    clean, worse = world["clean"], world["worse"]
    counts = _counts(clean, worse)
    rate = sum(int(c != n) for c, n in zip(clean, worse, strict=True)) / N
    rows = read_records(store).to_pylist()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert row["noise_type"] == "human" and row["noise_mode"] == "fixed"
        assert row["noise_rate"] == pytest.approx(rate, abs=5e-7)
        assert row["realized_rate"] == pytest.approx(rate, abs=1e-12)
        assert row["transition_sha"] == _sha(_hand_t(counts))
        assert row["confusion_sha"] == _sha(np.array(counts, dtype=np.int64))
    assert len({r["config_hash"] for r in rows}) == 1
    spec = json.loads(result.stdout)["spec"]["noise"]
    assert spec["kind"] == "human" and spec["labels_sha"] == _sha(worse)


def test_noise_show_human_and_twin(world):
    hand = _hand_t(_counts(world["clean"], world["worse"]))
    for args in (
        ("--noise-type", "human", "--noise-file", world["pt"]),
        ("--noise-type", "transition", "--transition-from", world["pt"]),
    ):
        result = invoke(
            *("noise", "show", "--dataset", world["card"], *args),
            *("--noise-key", "worse_label", "--json"),
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        np.testing.assert_allclose(out["nominal"], hand, rtol=0, atol=1e-15)
        # human: the labels themselves; the exact twin: the same counts
        np.testing.assert_allclose(out["realized"], hand, rtol=0, atol=1e-15)
    assert out["spec"]["transition_from"] == world["pt"]


def _save(world, name: str, obj) -> str:
    path = world["root"] / name
    if name.endswith(".npy"):
        np.save(path, obj, allow_pickle=True)
    elif name.endswith(".parquet"):
        pq.write_table(pa.table(obj), path)
    elif isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        torch.save(obj, path)
    return str(path)


def _bad_inputs(world) -> list[tuple[list[str], str]]:
    clean, worse = world["clean"], world["worse"]
    swapped = clean.copy()
    first = int(np.flatnonzero(clean != clean[0])[0])  # the first label unlike index 0
    swapped[[0, first]] = swapped[[first, 0]]
    unidentifiable = worse.copy()
    unidentifiable[np.flatnonzero(clean == 3)[:300]] = 0  # class 3: mostly "0"
    human = ["--noise-type", "human", "--noise-key", "worse_label", "--noise-file"]
    keyless = ["--noise-type", "human", "--noise-file"]  # a .npy holds one array
    return [
        ([*human, "nope.pt"], "noise file not found: nope.pt"),
        (
            [
                "--noise-type",
                "human",
                "--noise-file",
                world["pt"],
                "--noise-key",
                "worst",
            ],
            (
                "has no 'worst' (did you mean 'worse_label'?); it holds: aggre_label, "
                "clean_label, random_label1, worse_label"
            ),
        ),
        (
            ["--noise-type", "human", "--noise-file", world["pt"]],
            "name the noisy labels with --noise-key",
        ),
        (
            [*human, _save(world, "short.pt", {"worse_label": worse[:-1]})],
            f"holds {N - 1} labels; the training pool of tiny has {N}",
        ),
        (
            [
                *human,
                _save(world, "floats.pt", {"worse_label": torch.tensor(worse * 1.0)}),
            ],
            "must hold integer class labels, not torch.float64",
        ),
        (
            [*human, _save(world, "npfloats.pt", {"worse_label": worse + 0.5})],
            "must hold integer class labels, not floating-point numbers",
        ),
        (
            [
                *human,
                _save(
                    world, "range.pt", {"worse_label": np.where(worse == 2, 7, worse)}
                ),
            ],
            "lies outside 0..3 (dataset tiny has 4 classes)",
        ),
        (
            [
                *human,
                _save(world, "fraction.pt", {"worse_label": [Fraction(1, 2)] * N}),
            ],
            (
                "holds objects a weights-only load refuses (Unsupported global: GLOBAL "
                "fractions.Fraction"
            ),
        ),
        (
            [*human, _save(world, "garbage.pt", b"not a torch file")],
            "noise file garbage.pt is not a .pt file that torch.load can read",
        ),
        (
            [*human, _save(world, "bare.pt", torch.as_tensor(worse))],
            "holds a Tensor, not a dictionary",
        ),
        (
            [
                *human,
                _save(
                    world, "mismatch.pt", {"clean_label": swapped, "worse_label": worse}
                ),
            ],
            (
                "mismatch.pt['clean_label'] does not match this dataset's training labels "
                "(first mismatch at index 0)"
            ),
        ),
        (
            [*human, _save(world, "unid.pt", {"worse_label": unidentifiable})],
            (
                "the T realized by unid.pt['worse_label']: transition matrix row 3: the "
                "diagonal is not the largest entry"
            ),
        ),
        (
            [*keyless, _save(world, "objects.npy", np.array([1, "a"], dtype=object))],
            "pickled Python objects, which noisebench never loads",
        ),
        (
            [*human, _save(world, "float.parquet", {"worse_label": worse * 1.0})],
            "must hold integer class labels, not double",
        ),
        (
            [
                *human,
                _save(
                    world,
                    "nulls.parquet",
                    {"worse_label": pa.array([None] + worse[1:].tolist())},
                ),
            ],
            "1 labels are missing",
        ),
        (
            [*human, _save(world, "keyed.npy", worse)],
            "--noise-key does not apply to keyed.npy",
        ),
        (
            [*human, _save(world, "labels.csv", b"1,2\n")],
            "noise file must end in .pt, .pth, .npy, .npz, .parquet",
        ),
        (
            ["--noise-file", world["pt"], "--noise-key", "worse_label"],
            "--noise-file goes with --noise-type human, and only with it",
        ),
        (["--noise-type", "human"], "--noise-file goes with --noise-type human"),
        (
            [*human, world["pt"], "--noise-mode", "exact"],
            "--noise-mode does not apply to --noise-type human",
        ),
        ([*human, world["pt"], "--noise", "0.2"], "--noise does not apply"),
        (
            ["--transition-from", world["pt"], "--noise-key", "worse_label"],
            "--transition-from goes with --noise-type transition, and only with it",
        ),
        (
            ["--noise-type", "transition", "--transition-from", world["pt"]]
            + ["--transition-file", world["pt"]],
            "give --transition-file or --transition-from, not both",
        ),
        (["--noise-key", "worse_label"], "--noise-key names the labels in"),
        (
            ["--noise-type", "transition", "--transition-from", world["pt"]]
            + ["--noise-key", "worst_label"],
            "did you mean 'worse_label'?",
        ),
    ]


def test_bad_input_is_one_line_and_no_records(world, tmp_path):
    for args, message in _bad_inputs(world):
        store = tmp_path / "store"
        result = invoke(
            *("evaluate", "--method", "forward", "--dataset", world["card"]),
            *args,
            *("--store", str(store)),
        )
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert message in lines[0], (args, lines[0])
        assert not store.exists()


def test_a_pool_carved_out_of_one_split_is_refused(world, tmp_path):
    result = invoke(
        *("evaluate", "--method", "ce", "--dataset", "digits", "--noise-type"),
        *("human", "--noise-file", world["pt"], "--noise-key", "worse_label"),
        *("--store", str(tmp_path / "store")),
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "carves its clean test set out of one split" in lines[0]


def test_unidentifiable_human_t_runs_when_allowed(world):
    clean, worse = world["clean"], world["worse"].copy()
    worse[np.flatnonzero(clean == 3)[:300]] = 0
    path = _save(world, "unid-ok.pt", {"worse_label": worse})
    with pytest.raises(UserError, match="not identifiable"):
        _human(world, path=path).realize(world["ds"])
    _spec, t, _ = _human(world, path=path, allow_unidentifiable=True).realize(
        world["ds"]
    )
    assert t[3, 0] > t[3, 3]


def test_human_noise_has_no_sampling_mode(world):
    assert _human(world).mode == "fixed"
    with pytest.raises(UserError, match="--noise-mode random does not apply"):
        _human(world, mode="random")


def test_noise_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import noisebench.noise, noisebench.human\n"
        "from noisebench.noise import NoiseSpec\n"
        "assert NoiseSpec(kind='human', noise_file='x.pt').mode == 'fixed'\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr
