"""Options shared by several commands, declared once.

Single options are `Annotated` aliases. Groups that several commands take whole (the
noise, or everything that defines a run) are dataclasses whose fields are those
aliases; `with_options` puts a group's fields into a command's signature, where typer
reads them, and hands the command one instance of the group.
"""

from __future__ import annotations

import dataclasses
import inspect
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
        help="A dataset card name, a card .toml, or a .parquet/.csv/.npz file.",
    ),
]
NoiseRate = Annotated[
    float, typer.Option("--noise", help="Nominal noise rate r in [0, 1].")
]
NoiseType = Annotated[
    str,
    typer.Option(
        "--noise-type", help="symmetric | uniform | pairflip | asymmetric | transition."
    ),
]
NoiseMode = Annotated[
    str,
    typer.Option(
        "--noise-mode",
        help="exact (per-class counts, the default) | random (per label).",
    ),
]
TransitionFile = Annotated[
    Path | None,
    typer.Option(
        "--transition-file", help="A KxK .npy/.csv matrix, for --noise-type transition."
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
AllowUnidentifiable = Annotated[
    bool,
    typer.Option(
        "--allow-unidentifiable",
        help="Accept rates at which the noisy label is no longer the most likely one.",
    ),
]


def stdout_console():
    from rich.console import Console

    return Console()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


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
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
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
Hidden = Annotated[
    str | None, typer.Option("--hidden", help="Hidden layer widths, e.g. 256,256.")
]
Optimizer = Annotated[
    str | None, typer.Option("--optimizer", help="adam | adamw | sgd.")
]
WeightDecay = Annotated[
    float | None, typer.Option("--weight-decay", help="Default: from the card.")
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
    noise_mode: NoiseMode = "exact"
    transition_file: TransitionFile = None
    allow_unidentifiable: AllowUnidentifiable = False

    def noise_spec(self):
        from noisebench.noise import NoiseSpec

        return NoiseSpec(
            kind=self.noise_type,
            rate=self.noise,
            mode=self.noise_mode,
            transition_file=None
            if self.transition_file is None
            else str(self.transition_file),
            allow_unidentifiable=self.allow_unidentifiable,
        )


@dataclass(frozen=True, kw_only=True)
class RunOptions(NoiseOptions):
    """Everything that defines a run but its seeds: method, data, noise, training."""

    method: Method
    param: Param = None
    epochs: Epochs = None
    lr: Lr = None
    batch_size: BatchSize = None
    hidden: Hidden = None
    optimizer: Optimizer = None
    weight_decay: WeightDecay = None
    warmup: Warmup = None
    val_fraction: ValFraction = None
    transition: TransitionSource = "oracle"
    device: Device = "auto"

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
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            hidden=_parse_hidden(self.hidden),
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
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
        )


def with_options(group: type) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Give a command every option of `group` (a dataclass above); the command's first
    parameter receives them as one instance. Required options come first in --help,
    then the group's other options, then the command's own."""

    def decorate(command: Callable[..., Any]) -> Callable[..., None]:
        hints = typing.get_type_hints(group, include_extras=True)
        shared = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty
                if f.default is dataclasses.MISSING
                else f.default,
                annotation=hints[f.name],
            )
            for f in dataclasses.fields(group)
        ]
        shared.sort(key=lambda p: p.default is not inspect.Parameter.empty)
        _bundle, *own = inspect.signature(command, eval_str=True).parameters.values()
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        def wrapper(**kwargs: Any) -> None:
            values = group(**{p.name: kwargs.pop(p.name) for p in shared})
            command(values, **kwargs)

        wrapper.__name__, wrapper.__qualname__ = command.__name__, command.__qualname__
        wrapper.__doc__, wrapper.__module__ = command.__doc__, command.__module__
        wrapper.__signature__ = inspect.Signature([*shared, *own])
        wrapper.__annotations__ = {p.name: p.annotation for p in [*shared, *own]}
        return wrapper

    return decorate


def _parse_hidden(text: str | None) -> tuple[int, ...] | None:
    from noisebench.errors import UserError

    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(
            f"--hidden expects comma-separated integers, got '{text}'"
        ) from None
