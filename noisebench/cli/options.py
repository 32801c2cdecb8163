"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
AllowUnidentifiable = Annotated[
    bool,
    typer.Option(
        "--allow-unidentifiable",
        help="Accept rates at which the noisy label is no longer the most likely one.",
    ),
]


def noise_spec(
    noise: float,
    noise_type: str,
    noise_mode: str,
    transition_file: Path | None,
    allow: bool,
):
    from noisebench.noise import NoiseSpec

    return NoiseSpec(
        kind=noise_type,
        rate=noise,
        mode=noise_mode,
        transition_file=None if transition_file is None else str(transition_file),
        allow_unidentifiable=allow,
    )


def stdout_console():
    from rich.console import Console

    return Console()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


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


def run_spec(
    *,
    method: str,
    param: list[str] | None,
    defaults: bool,
    dataset: str,
    noise: float,
    noise_type: str,
    noise_mode: str,
    transition_file: Path | None,
    allow_unidentifiable: bool,
    epochs: int | None,
    lr: float | None,
    batch_size: int | None,
    hidden: str | None,
    optimizer: str | None,
    weight_decay: float | None,
    warmup: float | None,
    val_fraction: float | None,
    device: str,
    seeds: tuple[int, ...] = (0,),
    noise_seeds: tuple[int, ...] | None = None,
):
    """The RunSpec of a command line; `defaults=False` keeps only the --param values."""
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, train_config_for
    from noisebench.registry import get_method

    params = get_method(method).parse(param or [], with_defaults=defaults)
    train = train_config_for(
        resolve_card(dataset),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        hidden=_parse_hidden(hidden),
        optimizer=optimizer,
        weight_decay=weight_decay,
        warmup=warmup,
        val_fraction=val_fraction,
    )
    return RunSpec(
        method=method,
        params=params,
        dataset=dataset,
        noise=noise_spec(
            noise, noise_type, noise_mode, transition_file, allow_unidentifiable
        ),
        train=train,
        seeds=seeds,
        noise_seeds=noise_seeds,
        device=device,
    )


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
