"""Image datasets (issue 10): PNGs in parquet, in the Hugging Face hub's layout, decoded
once into a uint8 cache in channel, height, width order and memory-mapped afterwards.

Nothing here reaches the hub. The fixtures are tiny parquet files written as the hub
writes them (an image column of {"bytes": PNG, "path": ...} structs, with the hub's
schema metadata or without), read through a card whose `path` is a local folder (the
same `datasets.load_dataset` call as a hub id) or given straight to --dataset. The
references are the arrays the fixtures were encoded from, indexed by hand, and numpy
statistics written out in the test.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import hub_table, png, random_images, write_folder
from PIL import Image
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.data import cache, decode, images, load_dataset, read_card, resolve_card
from noisebench.errors import UserError


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """noisebench's cache and `datasets`' own in tmp, and the hub out of reach."""
    import datasets

    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path / "nb_cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "nb_cache"


def chw(stack: np.ndarray) -> np.ndarray:
    """The expected rows: (N, H, W[, C]) -> (N, C*H*W), written out index by index."""
    n, h, w = stack.shape[:3]
    c = stack.shape[3] if stack.ndim == 4 else 1
    out = np.empty((n, c * h * w), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            for row in range(h):
                for col in range(w):
                    value = (
                        stack[i, row, col, ch]
                        if stack.ndim == 4
                        else stack[i, row, col]
                    )
                    out[i, ch * h * w + row * w + col] = value
    return out


def card_file(path: Path, folder: Path, **fields) -> Path:
    base = {
        "source": "huggingface",
        "path": str(folder),
        "pixels": True,
        "image_column": "img",
    }
    lines = [f"{k} = {toml_value(v)}" for k, v in {**base, **fields}.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def toml_value(value) -> str:
    if isinstance(value, dict):  # an inline table
        return (
            "{"
            + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(value)  # strings, numbers, booleans and lists read alike in TOML


def toml_card(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


N_TRAIN, N_TEST = 36, 12
LABELS = np.arange(N_TRAIN) % 3
TEST_LABELS = np.arange(N_TEST) % 3


@pytest.fixture
def rgb(tmp_path):
    """An RGB folder with a test split: 5x7 images (not square)."""
    train, test = (
        random_images(N_TRAIN, (5, 7, 3), 0),
        random_images(N_TEST, (5, 7, 3), 1),
    )
    folder = write_folder(
        tmp_path / "rgb", hub_table(train, LABELS), hub_table(test, TEST_LABELS)
    )
    return folder, train, test


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(tmp_path: Path, message: str, *args: str) -> None:
    """`noisebench evaluate` refuses the data: exit 2, one line, no traceback. (The
    data is refused before training: the card's own epochs cost nothing.)"""
    result = invoke(
        "evaluate",
        *("--method", "ce"),
        *args,
        *("--store", str(tmp_path / "store")),
    )
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------
# pixels, exactly
# --------------------------------------------------------------------------------------


def test_a_card_over_a_folder_loads_the_pixels_exactly(tmp_path, rgb):
    folder, train, test = rgb
    card = card_file(
        tmp_path / "tiny.toml",
        folder,
        test_split="test",
        image_shape=[3, 5, 7],
        mean=[0.5, 0.25, 0.75],
        std=[0.2, 0.3, 0.4],
        class_map={"0": 1},
    )
    ds = load_dataset(str(card))
    assert ds.x.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    np.testing.assert_array_equal(ds.x, chw(train))  # the whole train split, in order
    np.testing.assert_array_equal(ds.x_test, chw(test))
    np.testing.assert_array_equal(ds.y, LABELS)
    np.testing.assert_array_equal(ds.y_test, TEST_LABELS)
    assert ds.num_classes == 3 and ds.image_shape == (3, 5, 7)
    assert ds.mean == (0.5, 0.25, 0.75) and ds.std == (0.2, 0.3, 0.4)
    assert ds.class_map == {0: 1} and ds.card.standardize is False


def test_images_are_stored_channel_first(tmp_path):
    """A non-square image whose every value says where it sits: value(c, h, w) =
    80c + 12h + w. Stored rows must read back as [c][h][w], not [h][w][c]."""
    h, w = 5, 7
    value = np.array(
        [[[80 * c + 12 * r + q for c in range(3)] for q in range(w)] for r in range(h)],
        dtype=np.uint8,
    )  # (H, W, C), as PIL and the PNG hold it
    stack = np.stack([value, 255 - value] * 4)
    folder = write_folder(tmp_path / "order", hub_table(stack, np.arange(8) % 2))
    ds = load_dataset(str(folder))
    rows = np.concatenate([ds.x, ds.x_test])
    assert ds.image_shape == (3, 5, 7)
    for row in rows:
        image = row.reshape(3, h, w)
        flipped = image[0, 0, 0] == 255
        for c in range(3):
            for r in range(h):
                for q in range(w):
                    expected = 80 * c + 12 * r + q
                    assert image[c, r, q] == (255 - expected if flipped else expected)


def test_grey_images_have_one_channel(tmp_path):
    stack = random_images(20, (3, 6), 4)  # (H, W): mode L
    folder = write_folder(tmp_path / "grey", hub_table(stack, np.arange(20) % 2))
    ds = load_dataset(str(folder))
    assert ds.image_shape == (1, 3, 6)
    rows = np.concatenate([ds.x, ds.x_test])
    # every source image comes back exactly once, in row-major order
    assert sorted(r.tobytes() for r in rows) == sorted(s.tobytes() for s in stack)


def test_a_folder_and_a_single_file_by_path(tmp_path, rgb):
    """--dataset FOLDER reads its test split; --dataset FILE.parquet holds one out. The
    statistics come from the training pool alone, over every pixel (float64)."""
    folder, train, test = rgb
    ds = load_dataset(str(folder))
    np.testing.assert_array_equal(ds.x, chw(train))
    np.testing.assert_array_equal(ds.x_test, chw(test))
    pool = train.astype(np.float64) / 255  # (N, H, W, C)
    np.testing.assert_allclose(ds.mean, pool.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.std, pool.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    both = pool.reshape(-1, 3).tolist() + (test / 255).reshape(-1, 3).tolist()
    assert not np.allclose(ds.mean, np.mean(both, axis=0), atol=1e-6)  # not the test's

    single = tmp_path / "one.parquet"
    pq.write_table(hub_table(train, LABELS, metadata=False), single)
    one = load_dataset(str(single))
    assert one.card.pixels and one.image_shape == (3, 5, 7)
    n_test = math.floor(0.2 * N_TRAIN + 0.5)
    assert len(one.x_test) == n_test and len(one.x) == N_TRAIN - n_test
    source = {r.tobytes(): i for i, r in enumerate(chw(train))}
    pool_rows = [source[r.tobytes()] for r in one.x]
    held_rows = [source[r.tobytes()] for r in one.x_test]
    assert sorted(pool_rows + held_rows) == list(range(N_TRAIN))  # a partition
    np.testing.assert_array_equal(one.y, LABELS[pool_rows])
    assert (np.abs(np.bincount(one.y_test) - n_test / 3) < 1).all()  # stratified
    ref = train[pool_rows].astype(np.float64) / 255
    np.testing.assert_allclose(one.mean, ref.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(one.std, ref.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)


def test_plain_binary_images_and_hub_metadata_read_alike(tmp_path, rgb):
    _, train, _ = rgb
    loaded = []
    for i, (structs, metadata) in enumerate([(True, True), (False, False)]):
        folder = tmp_path / f"v{i}" / "same"  # one name: it seeds the held-out split
        write_folder(
            folder, hub_table(train, LABELS, structs=structs, metadata=metadata)
        )
        loaded.append(load_dataset(str(folder)))
    a, b = loaded
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.sha == b.sha


def test_sha_follows_the_content(tmp_path, rgb):
    folder, train, test = rgb
    first = load_dataset(str(folder)).sha
    other = tmp_path / "other"
    train[0, 0, 0, 0] ^= 1  # one pixel value of one image
    write_folder(other, hub_table(train, LABELS), hub_table(test, TEST_LABELS))
    assert load_dataset(str(other)).sha != first


# --------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------


def _forbid_decoding(monkeypatch):
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(decode, "decode_png", refuse)
    monkeypatch.setattr(datasets, "load_dataset", refuse)


def test_the_second_load_reads_the_memory_mapped_cache(
    tmp_path, rgb, monkeypatch, caches
):
    folder, _, _ = rgb
    card = card_file(
        tmp_path / "c.toml", folder, test_split="test", image_shape=[3, 5, 7]
    )
    first = load_dataset(str(card))
    (cached,) = (caches / "images").iterdir()
    assert sorted(p.name for p in cached.iterdir()) == [
        "meta.json",
        "x.npy",
        "x_test.npy",
        "y.npy",
        "y_test.npy",
    ]
    assert load_dataset(str(folder)).sha == first.sha  # the bare folder: the same data
    _forbid_decoding(monkeypatch)
    again = load_dataset(str(card))
    assert again.sha == first.sha
    np.testing.assert_array_equal(again.x, first.x)
    assert not again.x.flags.writeable  # a read-only map of the file
    assert isinstance(again.x.base, np.memmap) or isinstance(again.x, np.memmap)


def _damage_x(folder: Path, how: str) -> None:
    x = folder / "x.npy"
    data = bytearray(x.read_bytes())
    if how == "flip":  # a valid file of the right shape, one pixel changed
        data[-1] ^= 0xFF
        x.write_bytes(bytes(data))
    elif how == "truncate":
        x.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbage":
        x.write_bytes(b"not an array")
    elif how == "meta":
        (folder / "meta.json").write_text("{")
    else:
        x.unlink()


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage", "meta", "missing"])
def test_a_damaged_cache_is_a_miss(tmp_path, rgb, caches, monkeypatch, how):
    folder, train, _ = rgb
    first = load_dataset(str(folder))
    (cached,) = (caches / "images").iterdir()
    _damage_x(cached, how)
    calls = []
    real = decode.decode_png
    monkeypatch.setattr(decode, "decode_png", lambda *a: calls.append(1) or real(*a))
    again = load_dataset(str(folder))
    assert len(calls) == N_TRAIN + N_TEST  # decoded anew
    assert again.sha == first.sha
    np.testing.assert_array_equal(again.x, chw(train))
    assert cache.read_cache(cached) is not None  # and rewritten whole


def test_offline_without_a_cache_says_what_to_run(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError(
            "Couldn't reach 'uoft-cs/cifar10' on the Hub (LocalEntryNotFoundError)\n"
            "'[Errno -2] Name or service not known' thrown while requesting HEAD"
        )

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as err:
        load_dataset("cifar10")
    message = str(err.value)
    assert "\n" not in message
    assert "not cached here" in message
    assert message.endswith("when online, run: noisebench datasets download cifar10")
    assert_one_line_error(
        tmp_path, "noisebench datasets download cifar10", "--dataset", "cifar10"
    )
    # a card of the user's names its own file
    card = card_file(
        tmp_path / "mine.toml", Path("someone/data"), image_shape=[3, 2, 2]
    )
    with pytest.raises(UserError, match=f"download {card}$"):
        load_dataset(str(card))


def test_an_unreachable_hub_is_asked_offline_and_its_retries_stay_quiet(
    tmp_path, monkeypatch, capfd
):
    """No route to the hub: `datasets` runs in offline mode (the HF cache or a quick
    failure, not 30 s of retries), and huggingface_hub's retry warnings never reach
    stderr, which holds the one line."""
    import logging

    import huggingface_hub.constants as hub

    import datasets

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(images, "_reachable", lambda endpoint: False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    seen = []

    def load(*args, **kwargs):
        seen.append((hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE))
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s")
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", load)
    result = invoke("evaluate", "--dataset", "cifar10", "--method", "ce")
    assert result.exit_code == 2
    assert seen == [(True, True)]
    assert (hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE) == (False, False)
    err = capfd.readouterr().err + result.output
    assert "Retrying" not in err
    assert "when online, run: noisebench datasets download cifar10" in err
    # reachable: nothing changes
    monkeypatch.setattr(images, "_reachable", lambda endpoint: True)
    seen.clear()
    invoke("evaluate", "--dataset", "cifar10", "--method", "ce")
    assert seen == [(False, False)]


def test_download_caches_and_reports(tmp_path, rgb, monkeypatch, caches):
    folder, train, _ = rgb
    card = card_file(
        tmp_path / "c.toml",
        folder,
        test_split="test",
        image_shape=[3, 5, 7],
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
    )
    result = invoke("datasets", "download", str(card), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train"] == N_TRAIN and summary["test"] == N_TEST
    assert summary["image_shape"] == [3, 5, 7]
    assert Path(summary["cache"]).parent == caches / "images"
    ref = train.astype(np.float64) / 255
    np.testing.assert_allclose(summary["measured_mean"], ref.mean(axis=(0, 1, 2)))
    _forbid_decoding(monkeypatch)  # later runs need neither `datasets` nor PIL
    assert load_dataset(str(card)).sha == summary["sha"]


# --------------------------------------------------------------------------------------
# CIFAR-100's superclass map
# --------------------------------------------------------------------------------------

# 9 classes in 4 superclasses, deliberately not blocks of consecutive classes
COARSE = {0: 20, 1: 10, 2: 30, 3: 10, 4: 20, 5: 10, 6: 30, 7: 20, 8: 40}
# by hand: 10 holds 1, 3, 5; 20 holds 0, 4, 7; 30 holds 2, 6; 40 holds 8 alone
SUPERCLASS_MAP = {1: 3, 3: 5, 5: 1, 0: 4, 4: 7, 7: 0, 2: 6, 6: 2}


def _superclass_folder(tmp_path, coarse_of) -> Path:
    fine = np.arange(45) % 9
    coarse = np.array([coarse_of(i, f) for i, f in enumerate(fine)])
    stack = random_images(45, (4, 4, 3), 7)
    table = hub_table(stack, fine, label="fine_label", extra={"coarse_label": coarse})
    return write_folder(tmp_path / "c100", table)


def test_the_superclass_map_is_read_from_the_coarse_labels(tmp_path):
    folder = _superclass_folder(tmp_path, lambda i, f: COARSE[f])
    card = card_file(
        tmp_path / "c100.toml",
        folder,
        label="fine_label",
        superclass_column="coarse_label",
        class_map="superclass",
        image_shape=[3, 4, 4],
        num_classes=9,
    )
    ds = load_dataset(str(card))
    assert ds.class_map == dict(sorted(SUPERCLASS_MAP.items()))
    assert 8 not in ds.class_map  # alone in its superclass
    assert ds.card.class_map == "superclass"


def test_a_class_in_two_superclasses_is_refused(tmp_path):
    folder = _superclass_folder(tmp_path, lambda i, f: 99 if i == 40 else COARSE[f])
    card = card_file(
        tmp_path / "c100.toml",
        folder,
        label="fine_label",
        superclass_column="coarse_label",
        class_map="superclass",
        image_shape=[3, 4, 4],
    )
    # row 40 is class 4 (40 % 9), in superclass 20 elsewhere
    assert_one_line_error(
        tmp_path, "class 4 lies in 2 superclasses (20, 99)", "--dataset", str(card)
    )


# --------------------------------------------------------------------------------------
# the shipped cards
# --------------------------------------------------------------------------------------

CIFAR10_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # truck->automobile, bird->airplane, ...
MNIST_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


@pytest.mark.parametrize(
    "name,hub,shape,class_map,augment",
    [
        (
            "cifar10",
            "uoft-cs/cifar10",
            (3, 32, 32),
            CIFAR10_MAP,
            {"crop_padding": 4, "flip": True},
        ),
        (
            "cifar100",
            "uoft-cs/cifar100",
            (3, 32, 32),
            "superclass",
            {"crop_padding": 4, "flip": True},
        ),
        ("mnist", "ylecun/mnist", (1, 28, 28), MNIST_MAP, {}),
        ("fashion_mnist", "zalando-datasets/fashion_mnist", (1, 28, 28), None, {}),
    ],
)
def test_the_shipped_image_cards(name, hub, shape, class_map, augment):
    card = resolve_card(name)
    assert card.source == "huggingface" and card.options["path"] == hub
    assert card.pixels and not card.standardize
    assert card.image_shape == shape
    assert card.class_map == class_map
    assert card.augment == augment
    assert card.options["test_split"] == "test"
    assert len(card.mean) == len(card.std) == shape[0]
    assert len(card.class_names) == card.num_classes
    if name == "cifar10":
        names = card.class_names
        for src, dst in [("truck", "automobile"), ("bird", "airplane"), ("deer", "horse"), ("cat", "dog"), ("dog", "cat")]:  # fmt: skip
            assert class_map[names.index(src)] == names.index(dst)
    if name == "cifar100":
        assert card.options["label"] == "fine_label"
        assert card.options["superclass_column"] == "coarse_label"
    train = card.train
    if name.startswith("cifar"):
        assert train["model"] == "resnet32" and train["hidden"] == [16, 32, 64]
        assert (train["optimizer"], train["lr"], train["momentum"]) == ("sgd", 0.1, 0.9)
        assert train["nesterov"] is True and train["weight_decay"] == 1e-4
        assert (train["epochs"], train["batch_size"]) == (200, 128)
        assert train["schedule"] == "step" and train["gamma"] == 0.1
        assert train["milestones"] == [train["epochs"] // 2, train["epochs"] * 3 // 4]
    else:
        assert train["model"] == "cnn" and train["optimizer"] == "adam"
        assert train["lr"] == 1e-3 and train["epochs"] == 20
        assert "flip" not in card.augment  # a mirrored digit is not a digit


def test_a_fake_cifar100_flows_through_the_shipped_card(tmp_path, monkeypatch):
    """The cifar100 card itself, its hub id swapped for a local folder in its layout."""
    text = (Path(resolve_card("cifar100").origin)).read_text()
    fine = np.arange(200) % 100
    coarse = np.array([(7 * f) % 20 for f in fine])  # 5 classes each, scattered
    stack = random_images(200, (32, 32, 3), 9)
    folder = write_folder(
        tmp_path / "c100",
        hub_table(stack, fine, label="fine_label", extra={"coarse_label": coarse}),
        hub_table(
            stack[:100],
            fine[:100],
            label="fine_label",
            extra={"coarse_label": coarse[:100]},
        ),
    )
    card = toml_card(
        tmp_path / "cifar100.toml",
        text.replace('"uoft-cs/cifar100"', json.dumps(str(folder))),
    )
    ds = load_dataset(str(card))
    assert ds.x.shape == (200, 3072) and ds.num_classes == 100
    for f in range(100):  # the next class with the same (7f mod 20), cyclically
        group = [g for g in range(100) if (7 * g) % 20 == (7 * f) % 20]
        assert ds.class_map[f] == group[(group.index(f) + 1) % len(group)]


# --------------------------------------------------------------------------------------
# bad images, bad cards: one line each
# --------------------------------------------------------------------------------------


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _table_with(cells: list, labels=None) -> pa.Table:
    labels = np.arange(len(cells)) % 2 if labels is None else labels
    return pa.table({"image": pa.array(cells, pa.binary()), "label": labels})


GOOD = [png(a) for a in random_images(10, (4, 4, 3), 3)]
BAD_TABLES = {
    "jpeg": (
        _table_with(GOOD[:5] + [_jpeg(random_images(1, (4, 4, 3), 0)[0])] + GOOD[6:]),
        "image 5 is not a readable PNG",
    ),
    "noise": (_table_with(GOOD[:3] + [b"\x89PNG garbage"] + GOOD[4:]), "image 3 is not a readable PNG"),
    "size": (
        _table_with(GOOD[:7] + [png(random_images(1, (4, 5, 3), 0)[0])] + GOOD[8:]),
        "image 7 is 4x5 (height x width), image 0 is 4x4",
    ),
    "channels": (
        _table_with(GOOD[:2] + [png(random_images(1, (4, 4), 0)[0])] + GOOD[3:]),
        "image 2 has 1 channel(s), image 0 has 3",
    ),
    "rgba": (
        _table_with([png(random_images(1, (4, 4, 4), 0)[0])] + GOOD[1:]),
        "image 0 is RGBA; images must be 8-bit grey (L) or RGB",
    ),
    "null": (
        pa.table({"image": pa.array(GOOD[:9] + [None], pa.binary()), "label": np.arange(10) % 2}),
        "1 of 10 rows of column 'image' have no image bytes",
    ),
    "constant": (
        _table_with([png(np.zeros((4, 4), np.uint8))] * 10),
        "channel 0 has the same value in every training image (std 0)",
    ),
    "no label": (pa.table({"image": pa.array(GOOD, pa.binary())}), "no 'label' column"),
    "two image columns": (
        pa.table({"a": pa.array(GOOD, pa.binary()), "b": pa.array(GOOD, pa.binary()), "label": np.arange(10) % 2}),
        "several image columns (a, b)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_images_are_one_line_errors(tmp_path, case):
    table, message = BAD_TABLES[case]
    single = tmp_path / "bad.parquet"
    pq.write_table(table, single)
    assert_one_line_error(tmp_path, message, "--dataset", str(single))
    folder = write_folder(tmp_path / "bad", table)
    assert_one_line_error(tmp_path, message, "--dataset", str(folder))


def test_a_card_naming_a_missing_or_wrong_image_column(tmp_path, rgb):
    folder, _, _ = rgb
    card = card_file(
        tmp_path / "a.toml", folder, image_column="picture", image_shape=[3, 5, 7]
    )
    assert_one_line_error(tmp_path, "no image column 'picture'", "--dataset", str(card))
    stack = random_images(10, (5, 7, 3), 2)
    extra = {"width": np.full(10, 7)}
    numeric = write_folder(
        tmp_path / "num", hub_table(stack, np.arange(10) % 2, extra=extra)
    )
    card = card_file(tmp_path / "b.toml", numeric, image_column="width", image_shape=[3, 5, 7])  # fmt: skip
    assert_one_line_error(tmp_path, "column 'width' must hold PNG bytes", "--dataset", str(card))  # fmt: skip
    tabular = write_folder(
        tmp_path / "tab", pa.table({"a": np.arange(10.0), "label": np.arange(10) % 2})
    )
    assert_one_line_error(
        tmp_path, "no image column (PNG bytes", "--dataset", str(tabular)
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        tmp_path,
        "a dataset folder needs parquet files",
        "--dataset",
        str(tmp_path / "empty"),
    )


def test_the_card_shape_must_be_the_images_shape(tmp_path, rgb):
    folder, _, _ = rgb
    card = card_file(tmp_path / "a.toml", folder, image_shape=[3, 7, 5])
    assert_one_line_error(
        tmp_path,
        "image_shape [3, 7, 5], but the images are [3, 5, 7]",
        "--dataset",
        str(card),
    )


PIXEL_CARD = (
    "source = 'huggingface'\npath = 'u/d'\npixels = true\nimage_shape = [3, 4, 4]\n"
)
CARD_CASES = [
    ("source = 'huggingface'\npath = 'u/d'\npixels = true\n", "pixels = true needs image_shape"),
    (PIXEL_CARD + "standardize = true\n", "standardize must be false for pixels"),
    (PIXEL_CARD + "mean = [0.5]\nstd = [0.2]\n", "mean has 1 values for 3 channel(s)"),
    (PIXEL_CARD + "mean = [0.5, 0.5, 0.5]\n", "give mean and std together"),
    (PIXEL_CARD + "mean = [0.5, 1.5, 0.5]\nstd = [0.2, 0.2, 0.2]\n", "mean must be a list of 1 or 3 numbers in [0, 1]"),
    (PIXEL_CARD + "mean = [0.5, 0.5, 0.5]\nstd = [0.2, 0, 0.2]\n", "std must be a list of 1 or 3 numbers in (0, 1]"),
    (PIXEL_CARD + "pixels = 1\n", "is not valid TOML"),  # a duplicate key
    ("source = 'huggingface'\npath = 'u/d'\npixels = 'yes'\n", "pixels must be true or false"),
    (PIXEL_CARD.replace("[3, 4, 4]", "[2, 4, 4]"), "1 (grey) or 3 (RGB) channels"),
    (PIXEL_CARD + "[augment]\ncrop_pading = 4\n", "unknown augmentation 'crop_pading' (did you mean 'crop_padding'?)"),
    (PIXEL_CARD + "[augment]\ncrop_padding = -1\n", "augment.crop_padding must be an integer in [0, 4096], got -1"),
    (PIXEL_CARD + "[augment]\nflip = 'yes'\n", "augment.flip must be true or false"),
    ("source = 'huggingface'\npath = 'u/d'\n[augment]\nflip = true\n", "[augment] needs image_shape"),
    (PIXEL_CARD + "class_map = 'superclass'\n", 'class_map = "superclass" needs superclass_column'),
    (PIXEL_CARD + "superclass_column = 'c'\n", "superclass_column is read only for class_map"),
    (PIXEL_CARD + "class_map = 'super'\n", 'class_map must be a table of class = class, or "superclass"'),
    ("source = 'huggingface'\npath = 'u/d'\nclass_map = 'superclass'\nsuperclass_column = 'c'\n", "needs pixels = true"),
    ("source = 'huggingface'\npath = 'u/d'\nmean = [0.5]\n", "mean needs pixels = true"),
    ("source = 'huggingface'\npath = 'u/d'\nimage_column = 'img'\n", "image_column needs pixels = true"),
    ("source = 'sklearn'\nloader = 'load_digits'\npixels = true\nimage_shape = [1, 8, 8]\n", "pixels = true needs source huggingface or file"),
    ("source = 'file'\npath = 'x.csv'\npixels = true\nimage_shape = [1, 8, 8]\n", "needs a .parquet file of images"),
    (PIXEL_CARD + "features = ['a']\n", "features does not apply to pixels"),
    (PIXEL_CARD + "image_column = 'label'\n", "label and image_column name the same column 'label'"),
    (PIXEL_CARD + "num_classes = 3\nclass_names = ['a', 'b']\n", "2 class_names for num_classes = 3"),
    (PIXEL_CARD + "class_names = ['a', 'a']\n", "class_names must be a list of distinct"),
    (PIXEL_CARD + "pixel = true\n", "unknown key 'pixel' (did you mean 'pixels'?)"),
    (PIXEL_CARD + "image_colum = 'img'\n", "unknown key 'image_colum' (did you mean 'image_column'?)"),
]  # fmt: skip


@pytest.mark.parametrize(
    "text,message", CARD_CASES, ids=[c[1][:40] for c in CARD_CASES]
)
def test_bad_image_cards(tmp_path, text, message):
    card = toml_card(tmp_path / "card.toml", text)
    with pytest.raises(UserError) as err:
        read_card(card)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_class_names_must_match_the_data(tmp_path, rgb):
    folder, _, _ = rgb
    card = card_file(
        tmp_path / "a.toml", folder, image_shape=[3, 5, 7], class_names=["a", "b"]
    )
    assert_one_line_error(
        tmp_path, "2 class_names for 3 classes", "--dataset", str(card)
    )


def test_tabular_parquet_by_path_is_still_a_table(tmp_path):
    """A parquet without an image column takes the table route, as before."""
    table = pa.table({"a": np.arange(20.0), "label": np.arange(20) % 2})
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_dataset(str(tmp_path / "t.parquet"))
    assert ds.x.dtype == np.float32 and not ds.card.pixels and ds.mean is None


def test_the_test_split_must_have_the_training_images_shape(tmp_path):
    train, test = random_images(12, (4, 4, 3), 0), random_images(6, (4, 5, 3), 1)
    folder = write_folder(
        tmp_path / "f",
        hub_table(train, np.arange(12) % 2),
        hub_table(test, np.arange(6) % 2),
    )
    assert_one_line_error(
        tmp_path,
        "the test split's images are [3, 4, 5], the training split's [3, 4, 4]",
        "--dataset",
        str(folder),
    )


def test_the_listing_shows_the_image_cards():
    result = invoke("datasets", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["datasets"]}
    assert rows["cifar100"]["class_map"] == "superclass"
    assert rows["cifar10"]["class_map"] == {str(k): v for k, v in CIFAR10_MAP.items()}
    assert rows["mnist"]["image_shape"] == [1, 28, 28] and rows["mnist"]["pixels"]
    assert rows["digits"]["pixels"] is False
    table = invoke("datasets")
    assert table.exit_code == 0 and "superclass" in table.stdout
