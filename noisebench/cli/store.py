"""`noisebench store upgrade`: rewrite a run store's older shards in the current schema,
so that any Parquet reader (polars, duckdb, pandas) sees one schema across the store."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from noisebench.cli import options

app = typer.Typer(
    help="Maintain a run store: upgrade its shards to the current schema.",
    no_args_is_help=True,
)

DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Say which shards would be rewritten; write nothing."
    ),
]


@app.command("upgrade")
def upgrade(
    store: options.Store = None,
    dry_run: DryRun = False,
    as_json: options.Json = False,
) -> None:
    """Rewrite each shard of an older schema in place (atomically, same file name, same
    rows and values; the columns added since are null). Shards that readers skip are
    left as they are and named. Running it again rewrites nothing."""
    from noisebench.store import SCHEMA_VERSION, default_store, upgrade_store

    store = store or default_store()
    report = upgrade_store(store, dry_run=dry_run)
    if as_json:
        print(
            options.dumps(
                {
                    "store": str(store),
                    "schema_version": SCHEMA_VERSION,
                    "dry_run": dry_run,
                    "upgraded": [
                        {"path": str(path), "from_version": version}
                        for path, version in report.upgraded.items()
                    ],
                    "already_current": report.current,
                    "skipped": [
                        {"path": str(s.path), "reason": s.reason}
                        for s in report.skipped
                    ],
                }
            )
        )
        return
    # plain prints, not rich: a long path must stay on one line, never wrap
    verb = "would upgrade" if dry_run else "upgraded"
    for path, version in report.upgraded.items():
        line = f"{verb} {_show(path)} (schema {version} -> {SCHEMA_VERSION})"
        print(line, file=sys.stderr)
    for shard in report.skipped:
        print(f"skipped {_show(shard.path)}: {shard.reason}", file=sys.stderr)
    n = len(report.upgraded)
    print(
        f"{verb} {n} shard{'s' * (n != 1)} to schema {SCHEMA_VERSION}; "
        f"{report.current} already current; {len(report.skipped)} skipped"
        + (" (dry run: nothing written)" if dry_run else "")
    )


def _show(path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)  # one line, always
