"""`noisebench evaluate`: train one configuration on every seed, record it, summarize it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from noisebench.cli import options
from noisebench.errors import UserError

SUMMARY = (
    ("test_acc", "test acc (last epoch)", 100),
    ("test_acc_at_best_val", "test acc (best noisy val)", 100),
    ("ece", "ECE", 100),
    ("nll", "NLL", 1),
    ("brier", "Brier", 1),
    ("mem_noisy", "memorized: noisy label", 100),
    ("mem_clean", "memorized: clean label", 100),
    ("flip_auroc", "flip detection AUROC", 1),
    ("wall_time_s", "time per run (s)", 1),
)


def evaluate(
    method: Annotated[
        str,
        typer.Option(
            "--method", help="A registered method (see `noisebench methods`)."
        ),
    ],
    noise: options.NoiseRate = 0.0,
    noise_type: options.NoiseType = "symmetric",
    noise_mode: options.NoiseMode = "exact",
    transition_file: options.TransitionFile = None,
    allow_unidentifiable: options.AllowUnidentifiable = False,
    dataset: options.Dataset = "digits",
    seeds: Annotated[
        int, typer.Option("--seeds", help="How many seeds (trained together).")
    ] = 3,
    first_seed: Annotated[
        int,
        typer.Option("--first-seed", help="Seeds are first_seed, first_seed+1, ..."),
    ] = 0,
    noise_seed: Annotated[
        int | None,
        typer.Option(
            "--noise-seed",
            help="One noise realization for all seeds (default: each seed its own).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Method parameter key=value; repeatable."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Default: from the dataset card.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate. Default: from the card.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Default: from the card.")
    ] = None,
    hidden: Annotated[
        str | None, typer.Option(help="Hidden layer widths, e.g. 256,256.")
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam | adamw | sgd.")] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Default: from the card.")
    ] = None,
    warmup: Annotated[
        float | None,
        typer.Option(help="Fraction of epochs trained with plain CE first."),
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Noisy validation share of the training pool.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    store: options.Store = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not write records to the store.")
    ] = False,
    as_json: options.Json = False,
) -> None:
    """Train METHOD under label noise on every seed and report clean test metrics."""
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, prepare, train_config_for
    from noisebench.registry import get_method
    from noisebench.store import default_store, ensure_writable, write_records

    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    params = get_method(method).parse(param or [])
    card = resolve_card(dataset)
    train = train_config_for(
        card,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        hidden=_parse_hidden(hidden),
        optimizer=optimizer,
        weight_decay=weight_decay,
        warmup=warmup,
        val_fraction=val_fraction,
    )
    seed_list = tuple(range(first_seed, first_seed + seeds))
    spec = RunSpec(
        method=method,
        params=params,
        dataset=dataset,
        noise=options.noise_spec(
            noise, noise_type, noise_mode, transition_file, allow_unidentifiable
        ),
        train=train,
        seeds=seed_list,
        noise_seeds=None if noise_seed is None else (noise_seed,) * seeds,
        device=device,
    )
    store = store or default_store()
    if not no_record:
        ensure_writable(store)
    prepared = prepare(spec)  # every input check happens here, before any training
    records = _train_with_progress(prepared, as_json)
    shard = None if no_record else write_records(records, store)
    if as_json:
        print(
            json.dumps(_as_json(prepared, records, shard), default=str, allow_nan=True)
        )
    else:
        _print_table(prepared, records, shard)


def _parse_hidden(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(
            f"--hidden expects comma-separated integers, got '{text}'"
        ) from None


def _train_with_progress(prepared, quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from noisebench.experiment import run

    spec = prepared.spec
    console = options.stderr_console()
    label = f"{spec.method} on {prepared.dataset.name}, {spec.noise.kind} {spec.noise.rate:g}, {len(spec.seeds)} seeds"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=spec.train.epochs)
        return run(
            prepared, on_epoch=lambda epoch, _: progress.update(task, completed=epoch)
        )


def _as_json(prepared, records, shard: Path | None) -> dict:
    from dataclasses import asdict

    from noisebench.leaderboard import summarize

    spec = prepared.spec
    keys = [m for m, _, _ in SUMMARY]
    stats = summarize(records, keys)
    return {
        "spec": {
            "method": spec.method,
            "method_version": prepared.method.version,
            "params": spec.params,
            "dataset": prepared.dataset.name,
            "noise": asdict(spec.noise),
            "train": asdict(spec.train),
            "seeds": list(spec.seeds),
            "noise_seeds": list(spec.noise_seeds),
            "device": records[0]["device"],
        },
        "runs": [
            {
                k: r[k]
                for k in (
                    "seed",
                    "noise_seed",
                    "status",
                    "error",
                    "realized_rate",
                    "best_epoch",
                    *keys,
                )
            }
            for r in records
        ],
        "summary": {
            k: {"mean": _num(s.mean), "std": _num(s.std), "n": s.n}
            for k, s in stats.items()
        },
        "shard": None if shard is None else str(shard),
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def _print_table(prepared, records, shard: Path | None) -> None:
    from rich.table import Table

    from noisebench.leaderboard import summarize

    spec = prepared.spec
    stats = summarize(records, [m for m, _, _ in SUMMARY])
    realized = sum(r["realized_rate"] for r in records) / len(records)
    params = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in spec.params.items()
    )
    table = Table(
        title=(
            f"{spec.method}{f' ({params})' if params else ''} on {prepared.dataset.name}: "
            f"{spec.noise.kind} noise {spec.noise.rate:g} (realized {realized:.3f}), "
            f"{spec.train.epochs} epochs, {records[0]['device']}"
        )
    )
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for r in records:
        table.add_column(f"seed {r['seed']}", justify="right")
    for key, name, scale in SUMMARY:
        s = stats[key]
        cell = "—" if s.n == 0 else f"{scale * s.mean:.{_digits(scale)}f}"
        if s.n > 1:
            cell += f" ± {scale * s.std:.{_digits(scale)}f}"
        per_seed = [_fmt(r[key], scale) for r in records]
        table.add_row(name, cell, *per_seed)
    console = options.stdout_console()
    console.print(table)
    bad = [r for r in records if r["status"] != "ok"]
    for r in bad:
        console.print(f"seed {r['seed']}: {r['status']}: {r['error']}")
    if shard is not None:
        console.print(f"{len(records)} records written to {shard}", highlight=False)


def _digits(scale: int) -> int:
    return 1 if scale == 100 else 3


def _fmt(value, scale: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{scale * value:.{_digits(scale)}f}"
