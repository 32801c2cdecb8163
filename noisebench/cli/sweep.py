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
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Say what the sweep has done and has left, and run nothing.",
        ),
    ] = False,
    as_json: options.Json = False,
) -> None:
    """Tune and run every method x noise cell of a suite; skip cells already done."""
    from noisebench.errors import UserError
    from noisebench.store import check_store, default_store
    from noisebench.sweep import describe, load_suite
    from noisebench.sweep import sweep as run_sweep

    if heartbeat < 1:  # before --status too, which judges staleness by it
        raise UserError(f"--heartbeat must be >= 1 second, got {heartbeat}")
    store = store or default_store()
    if status:  # reads the store and the storage, writes neither
        show_status(load_suite(suite, store), store, storage, heartbeat, as_json)
        return
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


def show_status(
    plan, store, storage: str | None, heartbeat: int, as_json: bool
) -> None:
    from rich import box
    from rich.table import Table

    from noisebench.sweep_status import (
        DONE,
        FINAL,
        NOT_STARTED,
        TUNING,
        status_json,
        sweep_status,
    )

    report = sweep_status(plan, store=store, storage=storage, heartbeat=heartbeat)
    if as_json:
        print(options.dumps(status_json(report)))
        return
    settings = list(
        dict.fromkeys((c.cell.noise_type, c.cell.rate) for c in report.cells)
    )
    table = Table(box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("method", no_wrap=True)
    for kind, rate in settings:  # two short header lines: ten columns fit 80 characters
        table.add_column(f"{kind[:4]}\n{rate:g}", justify="right", no_wrap=True)
    rows: dict[str, dict[tuple[str, float], str]] = {}
    for c in report.cells:
        name = c.cell.method + (" (est. T)" if c.cell.transition == "estimated" else "")
        mark = {DONE: "done", FINAL: "fin", NOT_STARTED: "·"}.get(
            c.state, f"{c.trials}/{c.budget}"
        ) + ("!" if c.stale else "")
        rows.setdefault(name, {})[(c.cell.noise_type, c.cell.rate)] = mark
    for name, marks in rows.items():
        table.add_row(name, *(marks.get(s, "") for s in settings))
    console = options.stdout_console()
    console.print(
        f"suite {plan.name}: {report.count(DONE)}/{len(report.cells)} cells done"
    )
    console.print(table)
    left = report.hours_left()
    pace = (
        "no cell is done yet to measure the pace"
        if left is None
        else f"about {duration(left)} left at the pace of the done cells"
        " (one worker's time: divide by the workers)"
    )
    guessed = report.unmeasured()
    if left is not None and guessed:
        pace += (
            f". Having no cell done, {', '.join(guessed)} count at the mean of every"
            " done cell: a costlier method makes the estimate low"
        )
    running = sum(c.running - c.stale for c in report.cells)
    stale = sum(c.stale for c in report.cells)
    console.print(
        f"{report.count(DONE)} done, {report.count(FINAL)} at their final runs (fin), "
        f"{report.count(TUNING)} tuning (trials finished/budget), "
        f"{report.count(NOT_STARTED)} not started; {plural(running, 'trial')} running now. "
        f"{duration(sum(c.hours for c in report.cells))} of runs so far; {pace}."
    )
    if stale:
        console.print(
            f"!: {plural(stale, 'trial')} held by a worker that stopped (no heartbeat for "
            f"{2 * heartbeat} s); the next worker to reach the cell runs them again."
        )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.0f} min"
