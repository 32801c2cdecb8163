"""`noisebench leaderboard`: render `<store>/README.md` and its plots from the run records."""

from __future__ import annotations

import os
import sys
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
    from noisebench.errors import UserError
    from noisebench.store import clean_temporaries, default_store, temporary_path

    store = store or default_store()
    if not store.is_dir():
        # a mistyped --store must not conjure up an empty leaderboard (and its folder)
        raise UserError(f"no records in {store}: no such folder")
    readme = store / "README.md"
    text = lb.build(store, write_plots=not check)
    if check:
        current = (
            readme.read_text(encoding="utf-8", errors="replace")
            if readme.is_file()
            else None
        )
        if current != text:
            print(
                f"{readme} is stale: run `noisebench leaderboard --store {store}`",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        print(f"{readme} is up to date")
        return
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
