"""`noisebench datasets`: the dataset cards that ship with noisebench."""

from __future__ import annotations

from noisebench.cli import options


def datasets(as_json: options.Json = False) -> None:
    """List the dataset cards (your own files work too: --dataset path/to/file.parquet)."""
    from noisebench.data import list_cards

    cards = list_cards()
    if as_json:
        rows = [
            {
                "name": c.name,
                "source": c.source,
                "num_classes": c.num_classes,
                "test_fraction": c.test_fraction,
                "class_map": c.class_map,
                "description": c.description,
                "train": c.train,
            }
            for c in cards
        ]
        print(options.dumps({"datasets": rows}))
        return
    from rich.table import Table

    table = Table(title=f"{len(cards)} dataset cards")
    for column in (
        "name",
        "source",
        "classes",
        "test split",
        "asymmetric map",
        "description",
    ):
        table.add_column(column, overflow="fold")
    for c in cards:
        cmap = ", ".join(f"{a}→{b}" for a, b in (c.class_map or {}).items()) or "—"
        table.add_row(
            c.name,
            c.source,
            str(c.num_classes or "?"),
            f"{c.test_fraction:g}",
            cmap,
            c.description,
        )
    options.stdout_console().print(table)
