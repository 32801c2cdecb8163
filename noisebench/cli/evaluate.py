"""`noisebench evaluate`: train one configuration on every seed, record it, summarize it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from noisebench.cli import options

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


@options.with_options(options.RunOptions, options.SeedOptions)
def evaluate(
    run: options.RunOptions,
    seeding: options.SeedOptions,
    rerun: Annotated[
        bool,
        typer.Option(
            "--rerun", help="Train seeds whose records are already in the store again."
        ),
    ] = False,
    any_commit: Annotated[
        bool,
        typer.Option(
            "--any-commit",
            help="Reuse records of this configuration made by any commit or release of "
            "this engine revision, as the leaderboard shows them (to finish a board "
            "built over many commits).",
        ),
    ] = False,
    as_json: options.Json = False,
) -> None:
    """Train METHOD under label noise on every seed and report clean test metrics.

    Seeds whose records of this exact configuration are already in the store are
    reported from it, not trained again, so a rerun after an interruption only does
    the missing work.
    """
    from noisebench.experiment import prepare
    from noisebench.runs import evaluate as run_or_reuse

    store = seeding.store_path()  # checked; nothing is created before validation
    spec = run.run_spec(
        defaults=True, seeds=seeding.seed_range, noise_seeds=seeding.noise_seeds
    )
    prepared = prepare(spec)  # every input check happens here, before any training
    outcome = run_or_reuse(
        prepared,
        store,
        rerun=rerun,
        any_commit=any_commit,
        record=not seeding.no_record,
        train=lambda todo: _train_with_progress(todo, as_json),
    )
    records, shard, reused = outcome.records, outcome.shard, outcome.reused
    fresh = len(records) - reused
    if as_json:
        print(options.dumps(_as_json(prepared, records, shard) | {"reused": reused}))
    else:
        print_summary(prepared.spec, prepared.dataset.name, records)
        console = options.stdout_console()
        if shard is not None:
            console.print(f"{fresh} records written to {shard}", highlight=False)
        if reused:
            console.print(
                f"{reused} of {len(records)} seeds were already in {store} "
                "(reported from there; --rerun trains them again)",
                highlight=False,
            )


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
            "noise": spec.noise.as_dict(),
            "transition": spec.transition,
            "teacher": None if spec.teacher is None else asdict(spec.teacher),
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
    """SUMMARY, plus the error of T̂ when the runs estimated T, and the label precision
    of a method that selects its samples."""
    rows = SUMMARY
    if records and records[0]["transition_source"] == "estimated":
        rows = (*rows, ("transition_error", "T estimation error ‖T̂−T‖₁/‖T‖₁", 1))
    if records and records[0].get("label_precision") is not None:
        rows = (*rows, ("label_precision", "selected: clean labels (last epoch)", 100))
    return rows


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def print_summary(spec, dataset: str, records) -> None:
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
            f"{_taught_by(records[0])}"
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


def _digits(scale: int) -> int:
    return 1 if scale == 100 else 3


def _fmt(value, scale: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{scale * value:.{_digits(scale)}f}"


def _taught_by(record) -> str:
    from noisebench.leaderboard.aggregate import teacher_label

    label = teacher_label(record.get("teacher"))
    return f"teacher {label}, " if label else ""
