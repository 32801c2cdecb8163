"""`noisebench models`: the model families `--model` can pick."""

from __future__ import annotations

from noisebench.cli import options


def models(as_json: options.Json = False) -> None:
    """List the registered models: what one sample must be for each, and what it is."""
    from noisebench.models import get_model, list_models

    entries = [get_model(name) for name in list_models()]
    if as_json:
        rows = [
            {"name": m.name, "takes": m.takes, "summary": m.summary} for m in entries
        ]
        print(options.dumps({"models": rows}))
        return
    from rich.table import Table

    table = Table(title=f"{len(entries)} models")
    for column in ("name", "takes", "summary"):
        table.add_column(column, overflow="fold")
    for m in entries:
        table.add_row(m.name, m.takes, m.summary)
    options.stdout_console().print(table)
