"""`noisebench methods`: what is registered, with its parameters, and what failed to load."""

from __future__ import annotations

import json

from noisebench.cli import options


def methods(as_json: options.Json = False) -> None:
    """List the registered methods, their parameters and defaults."""
    from noisebench.registry import METHODS, discover, load_errors

    discover()
    entries = [METHODS.get(name) for name in METHODS.names()]
    errors = load_errors()
    if as_json:
        rows = [
            {
                "name": m.name,
                "summary": m.summary,
                "version": m.version,
                "params": {
                    k: {
                        "default": m.defaults[k],
                        "search_space": m.search_space[k].describe(),
                    }
                    for k in m.defaults
                },
                "neutral": m.neutral,
                "requires": list(m.requires),
                "paper": m.paper,
                "origin": METHODS.origin(m.name),
            }
            for m in entries
        ]
        print(json.dumps({"methods": rows, "load_errors": errors}))
        return
    from rich.table import Table

    table = Table(title=f"{len(entries)} methods")
    for column in (
        "name",
        "summary",
        "parameters (default, search space)",
        "needs",
        "v",
        "paper",
    ):
        table.add_column(column, overflow="fold")
    for m in entries:
        params = "\n".join(
            f"{k}={m.defaults[k]!r} in {m.search_space[k].describe()}"
            for k in m.defaults
        )
        table.add_row(
            m.name,
            m.summary,
            params or "—",
            ", ".join(m.requires) or "—",
            str(m.version),
            m.paper or "—",
        )
    console = options.stdout_console()
    console.print(table)
    for source, error in errors.items():
        options.stderr_console().print(
            f"[red]failed to load[/red] {source}: {error}", highlight=False
        )
