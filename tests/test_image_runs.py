"""Image runs end to end: `noisebench evaluate` on tiny datasets in the Hugging Face
hub's parquet layout, with the small CNN, a reduced-width ResNet and an MLP on pixels,
and the CLI's resolution of a card's recipe for another model or a shorter run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import hub_table, write_folder
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.data import resolve_card
from noisebench.experiment import scaled_milestones, train_config_for
from noisebench.models import build_model
from noisebench.store import read_records

K = 3


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path / "nb_cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8, 8, 3) RGB images whose class is where a bright square sits: learnable."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    images = rng.integers(0, 80, (n, 8, 8, 3), dtype=np.uint8)
    for c in range(K):
        images[labels == c, 2 * c : 2 * c + 3, 1:5, c] = 230
    return images, labels


@pytest.fixture
def card(tmp_path):
    train, test = squares(180, 0), squares(60, 1)
    folder = write_folder(
        tmp_path / "squares", hub_table(*train, column="img"), hub_table(*test)
    )
    path = tmp_path / "squares.toml"
    path.write_text(
        "\n".join(
            [
                'source = "huggingface"',
                f"path = {json.dumps(str(folder))}",
                'test_split = "test"',
                'image_column = "img"',
                "pixels = true",
                "image_shape = [3, 8, 8]",
                f"num_classes = {K}",
                "[augment]",
                "crop_padding = 1",
                "flip = true",
                "[class_map]",
                "0 = 1",
                "[train]",
                'model = "cnn"',
                "hidden = [16]",
                "epochs = 6",
                "batch_size = 32",
                "lr = 3e-3",
            ]
        )
        + "\n"
    )
    return path


def evaluate(card, store, *args: str):
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(card),
            "--method",
            "ls",
            "--seeds",
            "2",
            "--store",
            str(store),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return read_records(store).to_pylist()


@pytest.mark.parametrize(
    ("model", "hidden", "shape"),
    [
        ("cnn", "16", [3, 8, 8]),
        ("resnet32", "4,8,8", [3, 8, 8]),
        ("mlp", "32", [192]),
    ],
)
def test_evaluate_trains_image_models_on_hub_layout_pixels(
    tmp_path, card, model, hidden, shape
):
    rows = evaluate(
        card, tmp_path / "store", "--model", model, "--hidden", hidden, "--epochs", "2"
    )
    assert [(r["status"], r["model"], r["input_shape"]) for r in rows] == [
        ("ok", model, shape)
    ] * 2
    widths = tuple(int(w) for w in hidden.split(","))
    built = build_model(
        model, input_shape=shape, hidden=widths, num_classes=K, seeds=[0]
    )
    params = sum(p.numel() for p in built.parameters())
    if model == "mlp":  # its output layer is zero-padded to 16 columns: not parameters
        params = 192 * 32 + 32 + 32 * K + K
    assert [r["model_params"] for r in rows] == [params] * 2
    assert all(math.isfinite(r["test_acc"]) for r in rows)


def test_the_cnn_learns_the_squares_through_crop_and_flip(tmp_path, card):
    rows = evaluate(card, tmp_path / "store", "--epochs", "8")
    # chance is 1/3; the squares sit in fixed rows, so neither a 1-pixel shift nor a
    # mirror hides them
    assert min(r["test_acc"] for r in rows) > 0.8


def test_asymmetric_noise_follows_the_cards_class_map(tmp_path, card):
    rows = evaluate(
        card,
        tmp_path / "store",
        "--noise-type",
        "asymmetric",
        "--noise",
        "0.4",
        "--epochs",
        "1",
    )
    # only class 0 (a third of the pool) flips, to class 1, at rate 0.4
    assert [r["realized_rate"] for r in rows] == pytest.approx([0.4 / 3] * 2, abs=0.01)


def test_another_model_gets_its_own_widths_unless_given():
    digits = resolve_card("digits")
    assert train_config_for(digits, model="resnet32").hidden == (16, 32, 64)
    assert train_config_for(digits, model="resnet32", hidden=(4, 8, 8)).hidden == (
        4,
        8,
        8,
    )
    # a model without its own widths keeps the card's
    assert train_config_for(digits, model="cnn").hidden == (256, 256)


def test_a_shorter_run_moves_the_cards_milestones_with_it():
    cifar = resolve_card("cifar10")
    assert cifar.train["epochs"] == 200 and cifar.train["milestones"] == [100, 150]
    assert train_config_for(cifar, epochs=10).milestones == (5, 8)
    assert train_config_for(cifar, epochs=1).milestones == (1,)
    # given milestones are the user's, and the card's own run keeps the card's
    assert train_config_for(cifar, epochs=10, milestones=(3,)).milestones == (3,)
    assert train_config_for(cifar).milestones == (100, 150)
    assert scaled_milestones([30, 60, 80], 100, 50) == [15, 30, 40]
