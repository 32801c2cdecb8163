"""`noisebench leaderboard`: render `<store>/README.md` and its plots from the run
records; `noisebench leaderboard show`: the same tables in the terminal, filtered, or
exported as CSV or JSON."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from noisebench.cli import options

app = typer.Typer(
    help="Render the leaderboard markdown and plots, or show it in the terminal.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def leaderboard(
    ctx: typer.Context,
    store: options.Store = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the committed README is stale.")
    ] = False,
) -> None:
    """Render the leaderboard markdown (tables per dataset x noise type) and plots."""
    if ctx.invoked_subcommand is not None:
        return
    from noisebench import leaderboard as lb
    from noisebench.store import clean_temporaries, temporary_path

    store = _existing(store)
    readme = store / "README.md"
    if check:
        made = lb.page(store)
        current = (
            readme.read_text(encoding="utf-8", errors="replace")
            if readme.is_file()
            else None
        )
        fix = f"run `noisebench leaderboard --store {store}`"
        if current != made.text:
            print(f"{readme} is stale: {fix}", file=sys.stderr)
            raise typer.Exit(1)
        stale = lb.stale_figures(store, made)
        if stale:
            more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
            print(
                f"{store / stale[0]} is missing or drawn from other data{more}: {fix}",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        print(f"{readme} is up to date, and its {len(made.figures)} figures")
        return
    text = lb.build(store)
    clean_temporaries(store, final_name=readme.name)
    # unique per process, so two renders at once never write the same temporary
    tmp = temporary_path(readme)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, readme)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {readme}")


def _existing(store):
    from noisebench.errors import UserError
    from noisebench.store import check_uniform, default_store

    store = store or default_store()
    if not store.is_dir():
        # a mistyped --store must not conjure up an empty leaderboard (and its folder)
        raise UserError(f"no records in {store}: no such folder")
    check_uniform(store)
    return store


FORMATS = ("table", "csv", "json")
METRICS = {"last": "test_acc", "selected": "test_acc_at_best_val"}


@app.command("show")
def show(
    store: options.Store = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", help="Only this dataset (repeatable).", show_default=False
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", help="Only this model (repeatable).", show_default=False
        ),
    ] = None,
    noise_type: Annotated[
        list[str] | None,
        typer.Option(
            "--noise-type",
            help="Only this noise type (repeatable).",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="Only this method's rows (repeatable); ranks stay those of the full table.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="last (the last epoch), selected (the epoch chosen by noisy "
            "validation) or both.",
        ),
    ] = "both",
    output: Annotated[
        str, typer.Option("--format", help="table (the terminal), csv or json.")
    ] = "table",
) -> None:
    """Show the leaderboard's tables in the terminal, filtered; or export them."""
    from noisebench import leaderboard as lb
    from noisebench.errors import UserError, unknown
    from noisebench.leaderboard import export

    if output not in FORMATS:
        raise unknown("format", output, list(FORMATS))
    if metric not in (*METRICS, "both"):
        raise unknown("metric", metric, [*METRICS, "both"])
    store = _existing(store)
    rows, _ = lb.leaderboard_rows(store)
    boards = lb.boards(rows)
    filters = export.Filters(
        datasets=dataset or (),
        models=model or (),
        noise_types=noise_type or (),
        methods=method or (),
        metrics=tuple(METRICS.values()) if metric == "both" else (METRICS[metric],),
    )
    shown = export.shown_tables(boards, filters)
    if not shown:
        asked = ", ".join(
            f"{name} {' '.join(values)}"
            for name, values in (
                ("dataset", dataset),
                ("model", model),
                ("noise type", noise_type),
                ("method", method),
            )
            if values
        )
        raise UserError(
            f"no leaderboard rows in {store}" + (f" match {asked}" if asked else "")
        )
    if output == "csv":
        sys.stdout.write(export.to_csv(export.flat_rows(shown)))
    elif output == "json":
        print(options.dumps({"rows": export.flat_rows(shown)}))
    else:
        _print_tables(shown)


def _label(row) -> str:
    from noisebench.leaderboard.aggregate import UPPER_BOUND

    return row.line.label + (" (T known)" if row.block == UPPER_BOUND else "")


def _print_tables(shown) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from noisebench.leaderboard.markdown import (
        KIND_TITLES,
        METRIC_TITLES,
        NOT_RUN,
        board_title,
        describe_setup,
        render_entry,
    )

    console = Console()
    for table in shown:
        board = table.board
        title = (
            f"{board_title(board)} · "
            f"{KIND_TITLES[table.kind].split(' (')[0].lower()} · "
            f"{METRIC_TITLES[table.metric].split(' (')[0].lower()}"
        )
        view = Table(
            title=Text(title), caption=Text(describe_setup(board.train_config))
        )
        labels = [_label(row) for row in table.rows]
        # wrap a long label, never cut it short: two rows may differ only in the
        # tail of their params
        view.add_column("method", overflow="fold")
        for rate in table.rates:
            view.add_column(f"{rate:g}", justify="right")
        view.add_column("mean rank", justify="right")
        for row, label in zip(table.rows, labels, strict=True):
            cells = []
            for rate in table.rates:
                entry = row.entries.get(rate)
                text = NOT_RUN if entry is None else render_entry(entry)
                # the page's markdown bold becomes the terminal's bold
                bold = text.startswith("**")
                cells.append(Text(text.replace("**", ""), style="bold" if bold else ""))
            rank = "" if row.mean_rank is None else f"{row.mean_rank:.2f}"
            view.add_row(Text(label), *cells, rank)
        console.print(view)
