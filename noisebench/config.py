"""Training configuration and the stated size limits, torch-free.

A `TrainConfig` comes from a dataset card's `[train]` table and the CLI's overrides.
Both are untrusted, so every field is type-checked (a card's `hidden = "256"` is an
error, not the layers 2, 5, 6) and range-checked before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from typing import Any

from noisebench.errors import UserError, did_you_mean

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "cosine", "onecycle")  # optim.lr_schedule's

# Stated limits: a request beyond them is refused with a message instead of growing
# memory until the OS kills the process. They are far above anything this field runs.
MAX_EPOCHS = 100_000
MAX_LAYERS = 64
MAX_WIDTH = 1 << 20  # units per hidden layer
MAX_BATCH = 1 << 24
MAX_SEEDS = 10_000  # members of one configuration
MAX_SEED = 2**32 - 1  # seeds (training and noise) lie in [0, MAX_SEED]

_INT, _FLOAT, _STR, _BOOL = "an integer", "a number", "a string", "true or false"
_INTS = "a list of integers"
_KINDS = {
    "model": _STR,
    "hidden": _INTS,
    "epochs": _INT,
    "batch_size": _INT,
    "optimizer": _STR,
    "lr": _FLOAT,
    "weight_decay": _FLOAT,
    "momentum": _FLOAT,
    "val_fraction": _FLOAT,
    "warmup": _FLOAT,
    "nesterov": _BOOL,
    "schedule": _STR,
    "milestones": _INTS,
    "gamma": _FLOAT,
}

# Fields added after records were first hashed. `TrainConfig.identity()` leaves each
# out while it is at its default, so that every configuration stored before it existed
# (which ran as that default) keeps its hash; a field joins the hash once it is set.
ADDED_FIELDS = ("nesterov", "schedule", "milestones", "gamma")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters. Dataset cards set defaults; the CLI can override them."""

    model: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    # the share of the (noisy) training pool held out for model selection
    val_fraction: float = 0.1
    # the fraction of epochs trained with plain CE before the method's loss
    warmup: float = 0.0
    nesterov: bool = False  # sgd with momentum only
    # the learning rate over the run (optim.lr_schedule): constant | step (x gamma at
    # each milestone epoch) | cosine (to 0, per batch) | onecycle (peak lr, per batch)
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()  # epochs, for schedule step
    gamma: float = 0.1  # for schedule step

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_kind(f.name, getattr(self, f.name))
            if (
                _KINDS[f.name] == _FLOAT
            ):  # lr = 1 and lr = 1.0 are one config (and hash)
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        # the first offenders only: a card's list of milestones can be long
        outside = "".join(
            [str(m) for m in self.milestones if not 1 <= m <= self.epochs][:1]
        )
        pairs = pairwise(self.milestones)
        unordered = "".join([f"{a} then {b}" for a, b in pairs if a >= b][:1])
        checks = [
            (
                1 <= self.epochs <= MAX_EPOCHS,
                f"epochs must lie in [1, {MAX_EPOCHS}], got {self.epochs}",
            ),
            (
                1 <= self.batch_size <= MAX_BATCH,
                f"batch size must lie in [1, {MAX_BATCH}], got {self.batch_size}",
            ),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (
                self.weight_decay >= 0,
                f"weight decay must be >= 0, got {self.weight_decay}",
            ),
            (
                0 <= self.momentum < 1,
                f"momentum must lie in [0, 1), got {self.momentum}",
            ),
            (
                0 < self.val_fraction < 1,
                f"val fraction must lie in (0, 1), got {self.val_fraction}",
            ),
            (0 <= self.warmup < 1, f"warmup must lie in [0, 1), got {self.warmup}"),
            (
                self.optimizer in OPTIMIZERS,
                f"unknown optimizer '{self.optimizer}'; choose from: {', '.join(OPTIMIZERS)}",
            ),
            (
                self.schedule in SCHEDULES,
                (
                    f"unknown schedule '{self.schedule}'"
                    f"{did_you_mean(self.schedule, SCHEDULES)}; "
                    f"choose from: {', '.join(SCHEDULES)}"
                ),
            ),
            (
                not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
                (
                    "nesterov needs optimizer sgd with momentum > 0, got optimizer "
                    f"{self.optimizer} with momentum {self.momentum:g}"
                ),
            ),
            (
                not self.milestones or self.schedule == "step",
                f"milestones go with schedule step, not {self.schedule}",
            ),
            (  # gamma means nothing to other schedules; a value there would only split
                # one configuration into two hashes
                self.gamma == TrainConfig.gamma or self.schedule == "step",
                f"gamma goes with schedule step, not {self.schedule}",
            ),
            (0 < self.gamma <= 1, f"gamma must lie in (0, 1], got {self.gamma}"),
            (
                not outside,
                f"milestones must be epochs in [1, {self.epochs}], got {outside}",
            ),
            (
                not unordered,
                f"milestones must be strictly increasing, got {unordered}",
            ),
            (
                1 <= len(self.hidden) <= MAX_LAYERS,
                f"give 1 to {MAX_LAYERS} hidden layer widths, got {len(self.hidden)}",
            ),
            (
                all(1 <= h <= MAX_WIDTH for h in self.hidden),
                f"hidden widths must lie in [1, {MAX_WIDTH}], got {list(self.hidden)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def identity(self) -> dict[str, Any]:
        """The fields that identify this config in records and hashes: all of them but
        the ADDED_FIELDS still at their defaults (so older configurations hash as before)."""
        values = asdict(self)
        for f in fields(self):
            if f.name in ADDED_FIELDS and values[f.name] == f.default:
                del values[f.name]
        return values

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str) -> TrainConfig:
        """A config from untrusted key/values (a card's [train] table with overrides);
        `where` names the source in messages. Lists become tuples; nothing else is cast."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise UserError(
                    f"{where}: unknown training setting '{key}'"
                    f"{did_you_mean(str(key), known)}; known: {', '.join(sorted(known))}"
                )
        values = dict(values)
        for key in ("hidden", "milestones"):  # TOML arrays arrive as lists
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None


def _check_kind(name: str, value: Any) -> None:
    kind = _KINDS[name]
    if kind == _INT:
        ok = _is_int(value)
    elif kind == _FLOAT:
        ok = _is_int(value) or (isinstance(value, float) and math.isfinite(value))
    elif kind == _STR:
        ok = isinstance(value, str)
    elif kind == _BOOL:
        ok = isinstance(value, bool)  # not 0 or 1: a card's `nesterov = 1` is a slip
    else:
        ok = isinstance(value, tuple) and all(_is_int(h) for h in value)
    if not ok:
        raise UserError(f"{name.replace('_', ' ')} must be {kind}, got {value!r}")


def _is_int(value: Any) -> bool:
    # bounded, so that a 400-digit integer is a wrong value, not an OverflowError
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
