"""Training recipes: Nesterov SGD and learning-rate schedules in the config and the CLI,
and the configuration hashes that stay as they were while these are at their defaults."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from noisebench import records
from noisebench.cli import app
from noisebench.cli.options import RunOptions
from noisebench.config import ADDED_FIELDS, TrainConfig
from noisebench.errors import UserError
from noisebench.experiment import prepare
from noisebench.stages import estimator_identity

# TrainConfig's fields before the recipes, and digests of them computed by the code of
# that time (commit 0e4228d): records written then hash these very values.
OLD_FIELDS = [
    "batch_size",
    "epochs",
    "hidden",
    "lr",
    "model",
    "momentum",
    "optimizer",
    "val_fraction",
    "warmup",
    "weight_decay",
]
OLD_DEFAULT_SHA = "db4bd489e4df8e25"  # records.sha(asdict(TrainConfig()))
OLD_SGD_SHA = "3e83ea1ae6b1e1dd"  # records.sha(asdict(TrainConfig(**SGD_CONFIG)))
SGD_CONFIG = {"optimizer": "sgd", "lr": 0.1, "hidden": (64,), "epochs": 5}


@pytest.fixture(scope="module")
def prepared():
    """A real prepared configuration (digits, one seed); tests swap its TrainConfig."""
    spec = RunOptions(method="ce", noise=0.2).run_spec(defaults=True, seeds=(0,))
    return prepare(spec)


def _with(prepared, train: TrainConfig):
    return replace(prepared, spec=replace(prepared.spec, train=train))


def test_default_identity_is_the_old_asdict():
    identity = TrainConfig().identity()
    assert sorted(identity) == OLD_FIELDS
    assert identity == {
        k: v for k, v in asdict(TrainConfig()).items() if k in OLD_FIELDS
    }
    assert records.sha(identity) == OLD_DEFAULT_SHA
    assert records.sha(TrainConfig(**SGD_CONFIG).identity()) == OLD_SGD_SHA


@pytest.mark.parametrize("config", [{}, SGD_CONFIG], ids=["default", "sgd"])
def test_hashed_train_config_is_unchanged(prepared, config):
    """What the configuration hash, the stored train_config and T-hat's cache key take of
    the TrainConfig is what they took before the recipes."""
    old = {(): OLD_DEFAULT_SHA}.get(tuple(config), OLD_SGD_SHA)
    current = _with(prepared, TrainConfig(**config))
    assert records.sha(records.config_identity(current)["train"]) == old
    assert records.sha(estimator_identity(current)["train"]) == old


def test_added_fields_are_exactly_the_new_ones():
    names = sorted(f.name for f in fields(TrainConfig) if f.name not in ADDED_FIELDS)
    assert names == OLD_FIELDS


@pytest.mark.parametrize(
    "change",
    [
        {"nesterov": True},
        {"schedule": "cosine"},
        {"schedule": "onecycle"},
        {"schedule": "step"},
        {"schedule": "step", "milestones": (2,)},
        {"schedule": "step", "milestones": (2,), "gamma": 0.5},
    ],
    ids=str,
)
def test_a_set_recipe_changes_the_hash(prepared, change):
    base = _with(prepared, TrainConfig(**SGD_CONFIG))
    current = _with(prepared, TrainConfig(**SGD_CONFIG, **change))
    assert set(change) <= set(current.spec.train.identity())
    assert records.config_hash(current) != records.config_hash(base)
    assert estimator_identity(current) != estimator_identity(base)


def test_card_lists_become_tuples():
    config = TrainConfig.from_mapping(
        {"schedule": "step", "milestones": [2, 4], "epochs": 5}, where="card"
    )
    assert config.milestones == (2, 4) and config.gamma == 0.1
    assert isinstance(TrainConfig(schedule="step", gamma=1).gamma, float)


BAD_CONFIGS = [
    ({"nesterov": 1}, "nesterov must be true or false, got 1"),
    ({"nesterov": "yes"}, "nesterov must be true or false"),
    ({"schedule": 3}, "schedule must be a string"),
    ({"schedule": "cosin"}, "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    (
        {"schedule": "step", "milestones": (True,)},
        "milestones must be a list of integers",
    ),
    ({"schedule": "step", "milestones": [3]}, "milestones must be a list of integers"),
    ({"schedule": "step", "milestones": (0,)}, "milestones must be epochs in [1, 100]"),
    ({"schedule": "step", "milestones": (5, 101)}, "got 101"),
    ({"schedule": "step", "milestones": (5, 5)}, "strictly increasing, got 5 then 5"),
    ({"milestones": (5,)}, "milestones go with schedule step, not constant"),
    ({"schedule": "cosine", "gamma": 0.5}, "gamma goes with schedule step, not cosine"),
    ({"schedule": "step", "gamma": 0}, "gamma must lie in (0, 1], got 0.0"),
    ({"schedule": "step", "gamma": 1.5}, "gamma must lie in (0, 1], got 1.5"),
    ({"schedule": "step", "gamma": float("nan")}, "gamma must be a number"),
    (
        {"nesterov": True},
        "nesterov needs optimizer sgd with momentum > 0, got optimizer adam",
    ),
    ({"nesterov": True, "optimizer": "sgd", "momentum": 0}, "with momentum 0"),
]


@pytest.mark.parametrize(("values", "message"), BAD_CONFIGS, ids=str)
def test_bad_recipe_is_one_line(values, message):
    with pytest.raises(UserError) as err:
        TrainConfig(**values)
    assert message in str(err.value) and "\n" not in str(err.value)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


BAD_INPUT = [
    (["--schedule", "cosin"], "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    (["--milestones", "a,b"], "--milestones expects comma-separated epochs"),
    (["--milestones", "5,,7"], "--milestones expects"),
    (["--milestones", "-5"], "--milestones expects"),
    (["--milestones", "0"], "--milestones must lie in [1, 100000], got 0"),
    (["--milestones", "7,5"], "--milestones must be strictly increasing, got 7,5"),
    (["--gamma", "0"], "--gamma must be a finite number in (0, 1], got 0"),
    (["--gamma", "1.5"], "--gamma must be a finite number in (0, 1]"),
    (["--gamma", "nan"], "--gamma must be a finite number in (0, 1]"),
    (["--momentum", "1"], "--momentum must be a finite number in [0, 1), got 1"),
    (["--momentum", "-0.1"], "--momentum must be a finite number in [0, 1)"),
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    (["--nesterov"], "nesterov needs optimizer sgd with momentum > 0"),
    (["--nesterov", "--optimizer", "sgd", "--momentum", "0"], "with momentum 0"),
    (["--milestones", "1"], "milestones go with schedule step, not constant"),
    (["--gamma", "0.5", "--schedule", "cosine"], "gamma goes with schedule step"),
    (
        ["--schedule", "step", "--milestones", "1,5"],
        "milestones must be epochs in [1, 2], got 5",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT]
)
def test_bad_recipe_flags_one_line_exit_2(tmp_path, args, message):
    store = tmp_path / "store"
    result = invoke(
        "evaluate", "--method", "ce", "--epochs", "2", *args, "--store", str(store)
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not store.exists()


def test_flags_reach_the_config():
    run = RunOptions(
        method="ce",
        optimizer="sgd",
        momentum=0.8,
        weight_decay=5e-4,
        nesterov=True,
        schedule="step",
        milestones="30, 60",
        gamma=0.2,
    )
    train = run.run_spec(defaults=True).train
    assert (train.optimizer, train.momentum, train.weight_decay) == ("sgd", 0.8, 5e-4)
    assert (train.nesterov, train.schedule) == (True, "step")
    assert (train.milestones, train.gamma) == ((30, 60), 0.2)
    # unset flags leave the card's values
    card = RunOptions(method="ce").run_spec(defaults=True).train
    assert card == TrainConfig(
        hidden=(256, 256), epochs=100, batch_size=128, optimizer="adam", lr=1e-3
    )
    # --no-nesterov is an explicit False, and '' clears the milestones
    off = RunOptions(method="ce", nesterov=False, milestones="")
    assert off.run_spec(defaults=True).train.nesterov is False


def test_recipe_is_recorded_and_hashed(tmp_path):
    """A run with a recipe records it in train_config and under its own hash; a run
    without one records the train_config of before (no new keys)."""
    common = ["--method", "ce", "--epochs", "2", "--hidden", "16", "--seeds", "1"]
    common += ["--store", str(tmp_path), "--optimizer", "sgd", "--lr", "0.05"]
    recipe = ["--nesterov", "--schedule", "step", "--milestones", "1", "--gamma", "0.5"]
    plain = invoke("evaluate", *common, "--json")
    assert plain.exit_code == 0, plain.stderr
    tuned = invoke("evaluate", *common, *recipe, "--json")
    assert tuned.exit_code == 0, tuned.stderr
    train = json.loads(tuned.stdout)["spec"]["train"]
    assert (train["nesterov"], train["schedule"]) == (True, "step")
    assert (train["milestones"], train["gamma"]) == ([1], 0.5)
    rows = [
        row
        for shard in sorted((tmp_path / "runs").glob("*.parquet"))
        for row in pq.read_table(shard).to_pylist()
    ]
    configs = {row["config_hash"]: json.loads(row["train_config"]) for row in rows}
    assert len(configs) == 2
    plain_config, tuned_config = sorted(configs.values(), key=len)
    assert sorted(plain_config) == OLD_FIELDS
    assert {k: tuned_config[k] for k in ADDED_FIELDS} == {
        "nesterov": True,
        "schedule": "step",
        "milestones": [1],
        "gamma": 0.5,
    }
