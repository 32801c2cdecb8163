"""Options shared by several commands, declared once.

Single options are `Annotated` aliases. Groups that several commands take whole (the
noise, or everything that defines a run) are dataclasses whose fields are those
aliases; `with_options` puts a group's fields into a command's signature, where typer
reads them, and hands the command one instance of the group.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

Json = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object on stdout and nothing else."),
]
Store = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="NOISEBENCH_STORE",
        help="Where run records go (default ./leaderboard).",
        show_default=False,
    ),
]
Dataset = Annotated[
    str,
    typer.Option(
        "--dataset",
        help="A dataset card name, a card .toml, a .parquet/.csv/.npz file, or a "
        "folder in the Hugging Face layout (data/train-*.parquet with an image column).",
    ),
]
NoiseRate = Annotated[
    float,
    typer.Option(
        "--noise", help="Nominal noise rate r in [0, 1] (instance noise: [0, 1))."
    ),
]
NoiseType = Annotated[
    str,
    typer.Option(
        "--noise-type",
        help="symmetric | uniform | pairflip | asymmetric | transition | instance "
        "(Xia et al. 2020) | human.",
    ),
]
NoiseMode = Annotated[
    str | None,
    typer.Option(
        "--noise-mode",
        help="exact (per-class counts, the default) | random (per label). Not for "
        "human noise, whose labels are fixed; instance noise is random (per sample).",
        show_default=False,
    ),
]
TransitionFile = Annotated[
    Path | None,
    typer.Option(
        "--transition-file", help="A KxK .npy/.csv matrix, for --noise-type transition."
    ),
]
NoiseFile = Annotated[
    Path | None,
    typer.Option(
        "--noise-file",
        help="Per-sample noisy labels for --noise-type human, by training-pool index: "
        "a CIFAR-10N/100N .pt dictionary, .npz, .npy or .parquet.",
    ),
]
NoiseKey = Annotated[
    str | None,
    typer.Option(
        "--noise-key",
        help="Which labels of --noise-file or --transition-from (e.g. worse_label).",
    ),
]
TransitionFrom = Annotated[
    Path | None,
    typer.Option(
        "--transition-from",
        help="For --noise-type transition: the T that a human-noise file realizes "
        "(its synthetic, class-conditional twin).",
    ),
]
TransitionSource = Annotated[
    str,
    typer.Option(
        "--transition",
        help="T for methods that use it: oracle (the true T) | estimated (from a CE "
        "model's anchor points, Patrini et al. 2017).",
    ),
]
Teacher = Annotated[
    str | None,
    typer.Option(
        "--teacher",
        help="Distill: first train a teacher ensemble with this method, then learn "
        "from its soft targets (see --temperature, --distill-alpha).",
        show_default=False,
    ),
]
TeacherParam = Annotated[
    list[str] | None,
    typer.Option(
        "--teacher-param", help="Teacher method parameter key=value; repeatable."
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        "--temperature",
        help="Distillation temperature T > 0 (default 1).",
        show_default=False,
    ),
]
DistillAlpha = Annotated[
    float | None,
    typer.Option(
        "--distill-alpha",
        help="Weight of the teacher's soft term in [0, 1]; 1 - alpha goes to the "
        "method's loss of the hard labels (default 1: soft targets only).",
        show_default=False,
    ),
]
AllowUnidentifiable = Annotated[
    bool,
    typer.Option(
        "--allow-unidentifiable",
        help="Accept rates at which the noisy label is no longer the most likely one.",
    ),
]


def stdout_console():
    """Rich output with markup off: user strings such as "[estimated T]" or a method
    named "[bold]x" are printed as they are, never read as styles."""
    from rich.console import Console

    return Console(markup=False)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, markup=False)


def dumps(obj: Any) -> str:
    """Strict JSON for --json: NaN and infinities become null (bare NaN is not JSON),
    datetimes and paths become strings."""
    import json
    import math

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), default=str, allow_nan=False)


def progress(unit: str, *, quiet: bool):
    """A transient progress bar on stderr ("<description> ━━━ 3/20 <unit> 0:00:04"),
    off with --json and when stderr is not a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = stderr_console()
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit, markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


Method = Annotated[
    str,
    typer.Option("--method", help="A registered method (see `noisebench methods`)."),
]
Param = Annotated[
    list[str] | None,
    typer.Option("--param", help="Method parameter key=value; repeatable."),
]
Epochs = Annotated[
    int | None, typer.Option("--epochs", help="Default: from the dataset card.")
]
Lr = Annotated[
    float | None, typer.Option("--lr", help="Learning rate. Default: from the card.")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Default: from the card.")
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="mlp | cnn, resnet32, resnet34, preact_resnet18 (images; a ResNet's "
        "--hidden is its stage widths) | cnn1d (signals). Default: the card's.",
    ),
]
Hidden = Annotated[
    str | None, typer.Option("--hidden", help="Hidden layer widths, e.g. 256,256.")
]
Optimizer = Annotated[
    str | None, typer.Option("--optimizer", help="adam | adamw | sgd.")
]
WeightDecay = Annotated[
    float | None, typer.Option("--weight-decay", help="Default: from the card.")
]
Momentum = Annotated[
    float | None,
    typer.Option("--momentum", help="SGD momentum in [0, 1). Default: the card's."),
]
Nesterov = Annotated[
    bool | None,
    typer.Option(
        "--nesterov/--no-nesterov",
        help="Nesterov momentum (sgd, momentum > 0). Default: the card's.",
        show_default=False,
    ),
]
Schedule = Annotated[
    str | None,
    typer.Option(
        "--schedule",
        help="Learning rate over the run: constant | step (x gamma at each milestone "
        "epoch) | cosine (to 0, per batch) | onecycle (peak --lr, per batch). "
        "Default: the card's.",
    ),
]
Milestones = Annotated[
    str | None,
    typer.Option(
        "--milestones",
        help="Epochs at which --schedule step multiplies the rate by --gamma, e.g. "
        "50,75; '' for none.",
    ),
]
Gamma = Annotated[
    float | None,
    typer.Option("--gamma", help="Factor in (0, 1] for --schedule step."),
]
Warmup = Annotated[
    float | None,
    typer.Option("--warmup", help="Fraction of epochs trained with plain CE first."),
]
ValFraction = Annotated[
    float | None,
    typer.Option("--val-fraction", help="Noisy validation share of the training pool."),
]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")]


@dataclass(frozen=True, kw_only=True)
class NoiseOptions:
    """The data and the noise applied to it."""

    dataset: Dataset = "digits"
    noise: NoiseRate = 0.0
    noise_type: NoiseType = "symmetric"
    noise_mode: NoiseMode = None  # None: not given (exact; human noise has none)
    transition_file: TransitionFile = None
    noise_file: NoiseFile = None
    noise_key: NoiseKey = None
    transition_from: TransitionFrom = None
    allow_unidentifiable: AllowUnidentifiable = False

    def __post_init__(self) -> None:
        _check(0 <= self.noise <= 1, f"--noise must lie in [0, 1], got {self.noise:g}")
        if self.noise_type == "human":  # its labels and rate come from the file
            _check(
                self.noise_mode is None,
                "--noise-mode does not apply to --noise-type human: its labels are "
                "fixed by --noise-file, not drawn",
            )
            _check(
                self.noise == 0,
                "--noise does not apply to --noise-type human: its rate is the one "
                "the labels of --noise-file realize",
            )
        if self.noise_type == "instance":  # each label has its own row of T(x)
            _check(
                self.noise_mode != "exact",
                "--noise-mode exact does not apply to --noise-type instance: each label "
                "is drawn from its own row of T(x), so there are no per-class counts to "
                "make exact (its mode is random)",
            )
        self.noise_spec()  # the combinations of types and files, checked once there

    def noise_spec(self):
        from noisebench.noise import NoiseSpec

        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return NoiseSpec(
            kind=self.noise_type,
            rate=self.noise,
            mode=self.noise_mode or "exact",
            transition_file=text(self.transition_file),
            allow_unidentifiable=self.allow_unidentifiable,
            noise_file=text(self.noise_file),
            noise_key=self.noise_key,
            transition_from=text(self.transition_from),
        )


@dataclass(frozen=True, kw_only=True)
class RunOptions(NoiseOptions):
    """Everything that defines a run but its seeds: method, data, noise, training."""

    method: Method
    param: Param = None
    model: Model = None
    epochs: Epochs = None
    lr: Lr = None
    batch_size: BatchSize = None
    hidden: Hidden = None
    optimizer: Optimizer = None
    weight_decay: WeightDecay = None
    momentum: Momentum = None
    nesterov: Nesterov = None
    schedule: Schedule = None
    milestones: Milestones = None
    gamma: Gamma = None
    warmup: Warmup = None
    val_fraction: ValFraction = None
    transition: TransitionSource = "oracle"
    device: Device = "auto"
    teacher: Teacher = None
    teacher_param: TeacherParam = None
    temperature: Temperature = None
    distill_alpha: DistillAlpha = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.teacher is None:
            for flag, value in (
                ("--teacher-param", self.teacher_param),
                ("--temperature", self.temperature),
                ("--distill-alpha", self.distill_alpha),
            ):
                _check(value is None, f"{flag} applies only with --teacher")
        for flag, value, ok, rule in (
            ("--lr", self.lr, lambda v: v > 0, "> 0"),
            ("--weight-decay", self.weight_decay, lambda v: v >= 0, ">= 0"),
            ("--momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("--gamma", self.gamma, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("--warmup", self.warmup, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("--val-fraction", self.val_fraction, lambda v: 0 < v < 1, "in (0, 1)"),
        ):
            if value is not None:
                _check(
                    math.isfinite(value) and ok(value),
                    f"{flag} must be a finite number {rule}, got {value:g}",
                )
        from noisebench.config import MAX_BATCH, MAX_EPOCHS

        for flag, value, top in (
            ("--epochs", self.epochs, MAX_EPOCHS),
            ("--batch-size", self.batch_size, MAX_BATCH),
        ):
            _check(
                value is None or 1 <= value <= top,
                f"{flag} must lie in [1, {top}], got {value}",
            )
        keys = [p.partition("=")[0].strip() for p in self.param or []]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        _check(not twice, f"--param {', '.join(twice)} given more than once")
        _parse_hidden(self.hidden)
        _parse_milestones(self.milestones)
        if self.schedule is not None:
            from noisebench.config import SCHEDULES
            from noisebench.errors import unknown

            if self.schedule not in SCHEDULES:
                raise unknown("schedule", self.schedule, SCHEDULES)

    def run_spec(
        self,
        *,
        defaults: bool,
        seeds: tuple[int, ...] = (0,),
        noise_seeds: tuple[int, ...] | None = None,
    ):
        """The RunSpec; `defaults=False` keeps only the --param values."""
        from noisebench.data import resolve_card
        from noisebench.experiment import RunSpec, train_config_for
        from noisebench.registry import get_method

        params = get_method(self.method).parse(self.param or [], with_defaults=defaults)
        train = train_config_for(
            resolve_card(self.dataset),
            model=self.model,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            hidden=_parse_hidden(self.hidden),
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            nesterov=self.nesterov,
            schedule=self.schedule,
            milestones=_parse_milestones(self.milestones),
            gamma=self.gamma,
            warmup=self.warmup,
            val_fraction=self.val_fraction,
        )
        return RunSpec(
            method=self.method,
            params=params,
            dataset=self.dataset,
            noise=self.noise_spec(),
            train=train,
            seeds=seeds,
            noise_seeds=noise_seeds,
            device=self.device,
            transition=self.transition,
            teacher=self.teacher_spec(),
        )

    def teacher_spec(self):
        """The TeacherSpec of --teacher and its options, or None."""
        from noisebench.experiment import TeacherSpec
        from noisebench.registry import get_method

        if self.teacher is None:
            return None
        return TeacherSpec(
            method=self.teacher,
            params=get_method(self.teacher).parse(
                self.teacher_param or [], with_defaults=True
            ),
            temperature=1.0 if self.temperature is None else self.temperature,
            alpha=1.0 if self.distill_alpha is None else self.distill_alpha,
        )


Seeds = Annotated[
    int, typer.Option("--seeds", help="How many seeds (trained together).")
]
FinalSeeds = Annotated[
    int,
    typer.Option(
        "--seeds", "--final-seeds", help="How many fresh seeds run the best params."
    ),
]
FirstSeed = Annotated[
    int, typer.Option("--first-seed", help="Seeds are first_seed, first_seed+1, ...")
]
NoiseSeed = Annotated[
    int | None,
    typer.Option(
        "--noise-seed",
        help="One noise realization for all seeds (default: each its own).",
    ),
]
NoRecord = Annotated[
    bool, typer.Option("--no-record", help="Do not write records to the store.")
]


@dataclass(frozen=True, kw_only=True)
class SeedOptions:
    """Which seeds run, and where their records go."""

    seeds: Seeds = 3
    first_seed: FirstSeed = 0
    noise_seed: NoiseSeed = None
    store: Store = None
    no_record: NoRecord = False

    def __post_init__(self) -> None:
        from noisebench.config import MAX_SEED, MAX_SEEDS

        _check(
            1 <= self.seeds <= MAX_SEEDS,
            f"--seeds must lie in [1, {MAX_SEEDS}], got {self.seeds}",
        )
        last = self.first_seed + self.seeds - 1
        _check(
            0 <= self.first_seed and last <= MAX_SEED,
            f"seeds must lie in [0, {MAX_SEED}]; --first-seed {self.first_seed} with "
            f"--seeds {self.seeds} gives {self.first_seed}..{last}",
        )
        _check(
            self.noise_seed is None or 0 <= self.noise_seed <= MAX_SEED,
            f"--noise-seed must lie in [0, {MAX_SEED}], got {self.noise_seed}",
        )

    @property
    def seed_range(self) -> tuple[int, ...]:
        return tuple(range(self.first_seed, self.first_seed + self.seeds))

    @property
    def noise_seeds(self) -> tuple[int, ...] | None:
        return None if self.noise_seed is None else (self.noise_seed,) * self.seeds

    def store_path(self) -> Path:
        """The store, checked (nothing is created) unless records are off."""
        from noisebench.store import check_store, default_store

        store = self.store or default_store()
        if not self.no_record:
            check_store(store)
        return store


@dataclass(frozen=True, kw_only=True)
class FinalSeedOptions(SeedOptions):
    """`tune`'s seeds: the fresh seeds that run the best params."""

    seeds: FinalSeeds = 5


def _check(ok: bool, message: str) -> None:
    from noisebench.errors import UserError

    if not ok:
        raise UserError(message)


def with_options(*groups: type) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Give a command every option of `groups` (dataclasses above); the command's first
    parameters receive them, one instance per group, built (and so validated) before
    the command runs. Required options come first in --help, then the groups' other
    options, then the command's own."""

    def decorate(command: Callable[..., Any]) -> Callable[..., None]:
        members = []  # (group, its parameters)
        for group in groups:
            hints = typing.get_type_hints(group, include_extras=True)
            members.append(
                (
                    group,
                    [
                        inspect.Parameter(
                            f.name,
                            inspect.Parameter.KEYWORD_ONLY,
                            default=inspect.Parameter.empty
                            if f.default is dataclasses.MISSING
                            else f.default,
                            annotation=hints[f.name],
                        )
                        for f in dataclasses.fields(group)
                    ],
                )
            )
        shared = [p for _, params in members for p in params]
        shared.sort(key=lambda p: p.default is not inspect.Parameter.empty)
        own = list(inspect.signature(command, eval_str=True).parameters.values())
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[len(groups) :]
        ]

        def wrapper(**kwargs: Any) -> None:
            bundles = [
                group(**{p.name: kwargs.pop(p.name) for p in params})
                for group, params in members
            ]
            command(*bundles, **kwargs)

        wrapper.__name__, wrapper.__qualname__ = command.__name__, command.__qualname__
        wrapper.__doc__, wrapper.__module__ = command.__doc__, command.__module__
        wrapper.__signature__ = inspect.Signature([*shared, *own])
        wrapper.__annotations__ = {p.name: p.annotation for p in [*shared, *own]}
        return wrapper

    return decorate


def _parse_milestones(text: str | None) -> tuple[int, ...] | None:
    """--milestones 50,75 as (50, 75); '' is none (to clear a card's). Whether they lie
    within the epochs is the config's check, once the card's epochs are known."""
    if text is None:
        return None
    if not text.strip():
        return ()
    from itertools import pairwise

    from noisebench.config import MAX_EPOCHS

    parts = [part.strip() for part in text.split(",")]
    _check(
        all(part.isascii() and part.isdigit() for part in parts),
        f"--milestones expects comma-separated epochs such as 50,75, got '{text}'",
    )
    epochs = tuple(int(part) for part in parts)
    _check(
        all(1 <= e <= MAX_EPOCHS for e in epochs),
        f"--milestones must lie in [1, {MAX_EPOCHS}], got {text}",
    )
    _check(
        all(a < b for a, b in pairwise(epochs)),
        f"--milestones must be strictly increasing, got {text}",
    )
    return epochs


def _parse_hidden(text: str | None) -> tuple[int, ...] | None:
    from noisebench.errors import UserError

    if text is None:
        return None
    from noisebench.config import MAX_LAYERS, MAX_WIDTH

    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise UserError(
            f"--hidden expects comma-separated positive integers such as 256,256, got '{text}'"
        )
    widths = tuple(int(part) for part in parts)
    _check(
        len(widths) <= MAX_LAYERS, f"--hidden takes at most {MAX_LAYERS} layer widths"
    )
    _check(
        all(1 <= w <= MAX_WIDTH for w in widths),
        f"--hidden widths must lie in [1, {MAX_WIDTH}], got {text}",
    )
    return widths
