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
