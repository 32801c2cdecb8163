"""`noisebench tune`: search a method's declared space on noisy validation, then run the
best params on fresh seeds. Any number of workers can share one study."""

from __future__ import annotations

from typing import Annotated

import typer

from noisebench.cli import options

Trials = Annotated[
    int, typer.Option("--trials", help="Finished trials per study (the budget).")
]
TuneSeeds = Annotated[
    int, typer.Option("--tune-seeds", help="Seeds per trial (1000, 1001, ...).")
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="SQLAlchemy URL shared by workers. Default: sqlite in the store.",
    ),
]
Heartbeat = Annotated[
    int, typer.Option("--heartbeat", help="Seconds between worker heartbeats.")
]
NoPrune = Annotated[
    bool, typer.Option("--no-prune", help="Do not stop poor trials early.")
]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", help="Stop starting trials after S seconds."),
]


@options.with_options(options.RunOptions, options.FinalSeedOptions)
def tune(
    run: options.RunOptions,
    seeding: options.FinalSeedOptions,
    trials: Trials = 20,
    tune_seeds: TuneSeeds = 2,
    storage: Storage = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Study name. Default: derived from the spec."),
    ] = None,
    timeout: Timeout = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Local worker processes on the study.")
    ] = 1,
    heartbeat: Heartbeat = 10,
    no_prune: NoPrune = False,
    as_json: options.Json = False,
) -> None:
    """Tune METHOD's search space on noisy validation; run the best params on fresh seeds."""
    from noisebench.errors import UserError
    from noisebench.tune import TuneSpec

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    base = run.run_spec(defaults=False)
    spec = TuneSpec(
        base=base,
        trials=trials,
        tune_seeds=tune_seeds,
        final_seeds=seeding.seeds,
        first_seed=seeding.first_seed,
        noise_seed=seeding.noise_seed,
        storage=storage,
        study=study,
        timeout=timeout,
        heartbeat=heartbeat,
        prune=not no_prune,
    )
    store = seeding.store_path()  # checked; created only once the spec is valid
    record = not seeding.no_record
    result = _with_progress(spec, store, record, workers, quiet=as_json)
    if as_json:
        from noisebench.cli.evaluate import results_json
        from noisebench.tune import summary_json

        records = str(store / "runs") if record else None
        print(
            options.dumps(
                {
                    **summary_json(result),
                    "final": results_json(result.final),
                    "records": records,
                }
            )
        )
        return
    _print(result, spec)
    where = f"in {store / 'runs'}" if record else "nowhere (--no-record)"
    options.stdout_console().print(
        f"records of the trials and the final runs: {where}; study in {result.storage}",
        highlight=False,
    )


def _with_progress(spec, store, record: bool, workers: int, *, quiet: bool):
    from noisebench.tune import tune as run_tune

    with options.progress("trials", quiet=quiet) as progress:
        task = progress.add_task(f"tuning {spec.base.method}", total=spec.trials)
        return run_tune(
            spec,
            store=store,
            record=record,
            workers=workers,
            on_trial=lambda _: progress.advance(task),
        )


def _print(result, spec) -> None:
    from dataclasses import replace

    from rich.table import Table

    from noisebench.cli.evaluate import print_summary
    from noisebench.tune import params_text

    console = options.stdout_console()
    if result.trials:
        table = Table(
            title=f"study {result.study}: top trials of {len(result.trials)} completed ({result.storage})"
        )
        for column in ("trial", "noisy val acc", "params"):
            table.add_column(column)
        for t in result.trials[:10]:
            mark = " (defaults)" if t.user_attrs.get("defaults") else ""
            table.add_row(
                str(t.number), f"{100 * t.value:.2f}", params_text(t.params) + mark
            )
        console.print(table)
    else:
        console.print(
            f"{spec.base.method} has no free parameters: no search, final runs only"
        )
    if result.final:
        note = " (already in the store)" if result.final_was_cached else ""
        console.print(
            f"final: best params {params_text(result.best_params)} on {len(result.final)} fresh seeds{note}"
        )
        final_spec = replace(spec.base, params=result.best_params)
        print_summary(final_spec, result.final[0]["dataset"], result.final)
