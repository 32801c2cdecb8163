"""`noisebench leaderboard`: render `<store>/README.md` and its plots from the run records."""

from __future__ import annotations

from typing import Annotated

import typer

from noisebench.cli import options


def leaderboard(
    store: options.Store = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the committed README is stale.")
    ] = False,
) -> None:
    """Render the leaderboard markdown (tables per dataset x noise type) and plots."""
    from noisebench import leaderboard as lb
    from noisebench.store import default_store

    store = store or default_store()
    readme = store / "README.md"
    text = lb.build(store, write_plots=not check)
    if check:
        current = readme.read_text() if readme.is_file() else None
        if current != text:
            print(
                f"{readme} is stale: run `noisebench leaderboard --store {store}`",
                file=__import__("sys").stderr,
            )
            raise typer.Exit(1)
        print(f"{readme} is up to date")
        return
    store.mkdir(parents=True, exist_ok=True)
    tmp = readme.with_name(".README.md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)
    print(f"wrote {readme}")
