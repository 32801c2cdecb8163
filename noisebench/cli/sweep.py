"""`noisebench sweep`: the leaderboard protocol over a suite, resumable and distributable."""

from __future__ import annotations

from typing import Annotated

import typer

from noisebench.cli import options
from noisebench.cli.tune import Heartbeat, Storage


def sweep(
    suite: Annotated[
        str,
        typer.Option(
            "--suite",
            help="A suite name (leaderboard/suites/NAME.toml) or a .toml path.",
        ),
    ],
    storage: Storage = None,
    device: options.Device = "auto",
    heartbeat: Heartbeat = 10,
    store: options.Store = None,
    as_json: options.Json = False,
) -> None:
    """Tune and run every method x noise cell of a suite; skip cells already done."""
    from noisebench.store import check_store, default_store
    from noisebench.sweep import describe, load_suite
    from noisebench.sweep import sweep as run_sweep

    store = store or default_store()
    check_store(store)  # created once every cell is validated
    plan = load_suite(suite, store)
    with options.progress("cells", quiet=as_json) as progress:
        task = progress.add_task(f"sweep {plan.name}", total=len(plan.cells()))
        results = run_sweep(
            plan,
            store=store,
            storage=storage,
            device=device,
            heartbeat=heartbeat,
            on_cell=lambda _: progress.advance(task),
        )
    rows = [describe(r) for r in results]
    if as_json:
        print(options.dumps({"suite": plan.name, "cells": rows}))
        return
    from rich.table import Table

    table = Table(
        title=f"suite {plan.name}: {len(rows)} cells ({sum(r['ran'] for r in rows)} run now)"
    )
    for column in ("method", "noise", "best params", "test acc", "seeds", "this run"):
        table.add_column(column)
    for r in rows:
        acc = "—" if not r["n"] else f"{100 * r['test_acc_mean']:.1f}"
        if r["n"] > 1:
            acc += f" ± {100 * r['test_acc_std']:.1f}"
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r["best_params"].items()
        )
        estimated = " [estimated T]" if r["transition"] == "estimated" else ""
        table.add_row(
            r["method"] + estimated,
            f"{r['noise_type']} {r['rate']:g}",
            params or "—",
            acc,
            str(r["n"]),
            "ran" if r["ran"] else "skipped",
        )
    options.stdout_console().print(table)
    options.stdout_console().print(
        "next: `noisebench leaderboard` renders these into the leaderboard"
    )
