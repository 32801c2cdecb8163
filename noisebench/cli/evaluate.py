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


@options.with_options(options.RunOptions)
def evaluate(
    run: options.RunOptions,
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
            help="One noise realization for all seeds (default: each its own).",
        ),
    ] = None,
    store: options.Store = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not write records to the store.")
    ] = False,
    as_json: options.Json = False,
) -> None:
    """Train METHOD under label noise on every seed and report clean test metrics."""
    from noisebench.experiment import prepare
    from noisebench.store import default_store, ensure_writable, write_records

    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    spec = run.run_spec(
        defaults=True,
        seeds=tuple(range(first_seed, first_seed + seeds)),
        noise_seeds=None if noise_seed is None else (noise_seed,) * seeds,
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
        print_summary(prepared.spec, prepared.dataset.name, records, shard)


def _train_with_progress(prepared, quiet: bool):
    from noisebench.experiment import run

    spec = prepared.spec
    label = f"{spec.method} on {prepared.dataset.name}, {spec.noise.kind} {spec.noise.rate:g}, {len(spec.seeds)} seeds"
    with options.progress("epochs", quiet=quiet) as progress:
        task = progress.add_task(label, total=spec.train.epochs)
        return run(
            prepared, on_epoch=lambda epoch, _: progress.update(task, completed=epoch)
        )


def _as_json(prepared, records, shard: Path | None) -> dict:
    from dataclasses import asdict

    spec = prepared.spec
    return {
        "spec": {
            "method": spec.method,
            "method_version": prepared.method.version,
            "params": spec.params,
            "dataset": prepared.dataset.name,
            "noise": asdict(spec.noise),
            "transition": spec.transition,
            "train": asdict(spec.train),
            "seeds": list(spec.seeds),
            "noise_seeds": list(spec.noise_seeds),
            "device": records[0]["device"],
        },
        **results_json(records),
        "shard": None if shard is None else str(shard),
    }


def results_json(records) -> dict:
    """Per-seed metrics and their mean, std and count over the `ok` seeds."""
    from noisebench.leaderboard import summarize

    keys = [m for m, _, _ in _summary_rows(records)]
    fields = (
        "seed",
        "noise_seed",
        "status",
        "error",
        "realized_rate",
        "best_epoch",
        *keys,
    )
    stats = summarize(records, keys)
    return {
        "runs": [{k: r[k] for k in fields} for r in records],
        "summary": {
            k: {"mean": _num(s.mean), "std": _num(s.std), "n": s.n}
            for k, s in stats.items()
        },
    }


def _summary_rows(records) -> tuple[tuple[str, str, int], ...]:
    """SUMMARY, plus the error of T̂ when the runs estimated T."""
    if records and records[0]["transition_source"] == "estimated":
        return (*SUMMARY, ("transition_error", "T estimation error ‖T̂−T‖₁/‖T‖₁", 1))
    return SUMMARY


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def print_summary(spec, dataset: str, records, shard: Path | None) -> None:
    from rich.table import Table

    from noisebench.leaderboard import summarize

    rows = _summary_rows(records)
    stats = summarize(records, [m for m, _, _ in rows])
    realized = sum(r["realized_rate"] for r in records) / len(records)
    params = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in spec.params.items()
    )
    table = Table(
        title=(
            f"{spec.method}{f' ({params})' if params else ''} on {dataset}: "
            f"{spec.noise.kind} noise {spec.noise.rate:g} (realized {realized:.3f}), "
            f"{'estimated T, ' if spec.transition == 'estimated' else ''}"
            f"{spec.train.epochs} epochs, {records[0]['device']}"
        )
    )
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for r in records:
        table.add_column(f"seed {r['seed']}", justify="right")
    for key, name, scale in rows:
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
