"""`noisebench datasets`: the dataset cards that ship with noisebench, and
`noisebench datasets download NAME`, which fetches and caches one while online."""

from __future__ import annotations

from typing import Annotated

import typer

from noisebench.cli import options

app = typer.Typer(
    help="List the dataset cards, or download and cache one.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context, as_json: options.Json = False) -> None:
    """List the dataset cards (your own files work too: --dataset path/to/file.parquet,
    or a folder of parquet images)."""
    if ctx.invoked_subcommand is not None:
        return
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
                "image_shape": c.image_shape,
                "pixels": c.pixels,
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
        table.add_row(
            c.name,
            c.source,
            str(c.num_classes or "?"),
            "the source's" if "test_split" in c.options else f"{c.test_fraction:g}",
            _class_map_text(c.class_map),
            c.description,
        )
    options.stdout_console().print(table)


def _class_map_text(class_map: dict[int, int] | str | None) -> str:
    if isinstance(class_map, str):  # "superclass": resolved from the data
        return f"next class in its {class_map}"
    return ", ".join(f"{a}→{b}" for a, b in (class_map or {}).items()) or "—"


Name = Annotated[
    str,
    typer.Argument(help="A card name (cifar10), a card .toml, or a data file/folder."),
]
Force = Annotated[
    bool, typer.Option("--force", help="Read and decode again even when cached.")
]


@app.command("download")
def download(name: Name, force: Force = False, as_json: options.Json = False) -> None:
    """Fetch a dataset and cache it (images decoded once into uint8 arrays), so that
    later runs need neither the network nor PIL."""
    from noisebench.data import load_dataset, resolve_card
    from noisebench.errors import UserError

    card = resolve_card(name)
    where = None
    if card.pixels:
        from noisebench.data import cache_folder, cache_images, read_cache

        fresh = force or read_cache(cache_folder(card)) is None
        if fresh and not as_json:
            options.stderr_console().print(f"fetching and decoding {card.name} ...")
        pixels = cache_images(card, refresh=force, progress=not as_json)
        if pixels.where is None:
            from noisebench.data import cache_dir

            raise UserError(
                f"could not write the cache under {cache_dir()}; "
                "set NOISEBENCH_CACHE to a writable folder"
            )
        where = pixels.where
    ds = load_dataset(card)  # the other sources cache themselves as they load
    summary = {
        "name": ds.name,
        "train": len(ds.y),
        "test": len(ds.y_test),
        "num_classes": ds.num_classes,
        "image_shape": ds.image_shape,
        "sha": ds.sha,
        "cache": str(where) if where else None,
        "mean": ds.mean,
        "std": ds.std,
    }
    if card.pixels and card.mean is not None:
        # the card's statistics beside the ones measured on the training pool
        from noisebench.data import pixel_stats

        summary["measured_mean"], summary["measured_std"] = pixel_stats(
            ds.x, ds.image_shape[0]
        )
    if as_json:
        print(options.dumps(summary))
        return
    shape = "x".join(str(d) for d in ds.image_shape) if ds.image_shape else "rows"
    print(
        f"{ds.name}: {summary['train']} training and {summary['test']} test samples "
        f"({shape}), {ds.num_classes} classes, sha {ds.sha}"
    )
    if where:
        print(f"cached in {where}")
    if "measured_mean" in summary:
        for key in ("mean", "std"):
            card_values = ", ".join(f"{v:.4f}" for v in summary[key])
            measured = ", ".join(f"{v:.4f}" for v in summary[f"measured_{key}"])
            print(
                f"{key}: card {card_values}; measured on the training pool {measured}"
            )
