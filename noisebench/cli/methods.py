"""`noisebench methods`: what is registered, with its parameters, and what failed to load."""

from __future__ import annotations

from noisebench.cli import options


def methods(as_json: options.Json = False) -> None:
    """List the registered methods, their parameters and defaults."""
    from noisebench.registry import (
        METHODS,
        discover,
        load_errors,
        unloaded_local_files,
    )

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
                "origin": m.origin,
                "source": METHODS.origin(m.name),
                "source_sha": m.source_sha,
            }
            for m in entries
        ]
        notes = unloaded_local_files()
        print(options.dumps({"methods": rows, "load_errors": errors, "notes": notes}))
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
            m.name if m.origin == "builtin" else f"{m.name}\n({m.origin})",
            m.summary,
            params or "—",
            ", ".join(m.requires) or "—",
            str(m.version),
            m.paper or "—",
        )
    console = options.stdout_console()
    console.print(table)
    err = options.stderr_console()
    for source, error in errors.items():
        err.print(f"failed to load {source}: {error}", style="red", highlight=False)
    for note in unloaded_local_files():
        err.print(f"note: {note}", highlight=False)
