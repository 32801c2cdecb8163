"""The engine revision is a promise (README, "Finished work is reused"): within one
revision of `ENGINE_REVISIONS`, an unchanged configuration gives the same results, so
the board may keep records made by other commits and releases. These pins make the
promise a check: a change to the noise draw or the split changes a digest, and a
change to training changes the accuracies. Either means the engine gives other
results: give the release a new revision and pin its values here, under it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from noisebench import __version__
from noisebench.data import resolve_card
from noisebench.experiment import RunSpec, prepare, run, train_config_for
from noisebench.noise import NoiseSpec
from noisebench.records import ENGINE_REVISIONS

# per revision: digests of the noisy labels and of the train/validation split of seeds
# 0 and 1 on digits, per noise setting; and two models' test accuracies per seed
PINS = {
    1: {
        "noise": {
            ("symmetric", 0.4): ("afb9917ab441d82c", "35627d3c8477e21a"),
            ("uniform", 0.4): ("34758050e8aee5ff", "2ffbfff8496f008a"),
            ("pairflip", 0.2): ("2a0ed27323cd67c2", "1cd1813a6c0be888"),
            ("asymmetric", 0.4): ("daaeb296d0077953", "e499e5f6f664ad7c"),
        },
        # per model: test accuracy per seed (last epoch, noisy-validation epoch)
        "mlp": (
            (0.8551532030105591, 0.8802228569984436),
            (0.8551532030105591, 0.8328690528869629),
        ),
        "cnn": (
            (0.6462395787239075, 0.7103064060211182),
            (0.6462395787239075, 0.7103064060211182),
        ),
    }
}
# the models' runs: a small MLP for 10 epochs, the board's CNN (narrow) for 3
TRAIN = {"mlp": {"epochs": 10, "hidden": (32,)}, "cnn": {"epochs": 3, "hidden": (16,)}}
# Floating point differs between CPUs (another SIMD width sums in another order): a
# prediction near a class boundary may flip. Seen: up to 5 of 359 test samples after
# 100 epochs; these 10 epochs of a small MLP leave less room to drift.
SAMPLES = 2


def spec(kind: str, rate: float, model: str = "mlp") -> RunSpec:
    return RunSpec(
        method="ce",
        params={},
        dataset="digits",
        noise=NoiseSpec(kind=kind, rate=rate),
        train=train_config_for(resolve_card("digits"), model=model, **TRAIN[model]),
        seeds=(0, 1),
        device="cpu",
    )


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def pins() -> dict:
    revision = ENGINE_REVISIONS[__version__]
    assert revision in PINS, f"pin engine revision {revision}'s results in {__file__}"
    return PINS[revision]


@pytest.mark.parametrize(
    "kind, rate",
    [("symmetric", 0.4), ("uniform", 0.4), ("pairflip", 0.2), ("asymmetric", 0.4)],
)
def test_the_noise_and_the_split_are_the_revisions(pins, kind, rate):
    prepared = prepare(spec(kind, rate))
    noisy, split = pins["noise"][(kind, rate)]
    assert digest(prepared.noisy) == noisy, "the noise draw changed: a new revision"
    assert digest(prepared.train_idx, prepared.val_idx) == split, (
        "the train/validation split changed: a new revision"
    )


@pytest.mark.parametrize("model", list(TRAIN))
def test_training_gives_the_revisions_accuracies(pins, model):
    prepared = prepare(spec("symmetric", 0.4, model))
    records = run(prepared)
    tolerance = SAMPLES / len(prepared.dataset.y_test)
    for metric, want in zip(("test_acc", "test_acc_at_best_val"), pins[model]):
        got = [r[metric] for r in records]
        assert got == pytest.approx(list(want), abs=tolerance), (
            f"{model}: {metric} moved beyond {SAMPLES} test samples: a new revision"
        )
