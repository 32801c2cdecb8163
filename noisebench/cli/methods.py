"""`noisebench methods`: what is registered, with its parameters, and what failed to
load; `noisebench methods check FILE` (or `--entry-point NAME`): one method, loaded on
its own, through the contract suite, check by check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from noisebench.cli import options

app = typer.Typer(
    help="List the registered methods, or check one before submitting it.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def methods(ctx: typer.Context, as_json: options.Json = False) -> None:
    """List the registered methods, their parameters and defaults."""
    if ctx.invoked_subcommand is not None:
        return
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
                "state": {
                    k: {"per_class": spec.classes, "selection": spec.selection}
                    for k, spec in m.state.items()
                },
                "paired": m.paired,
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
    # names and parameters never fold (they are typed back in); the prose does
    table.add_column("name", no_wrap=True)
    table.add_column("summary, paper", overflow="fold", ratio=1, min_width=16)
    table.add_column("params: default,\n  search space", no_wrap=True)
    table.add_column("needs", overflow="fold", min_width=10)
    for m in entries:
        params = "\n".join(
            f"{k}={m.defaults[k]!r}\n  {m.search_space[k].describe()}"
            for k in m.defaults
        )
        origin = "" if m.origin == "builtin" else f"\n({m.origin})"
        table.add_row(
            f"{m.name}{origin}\n  version {m.version}",
            m.summary + (f"\n{m.paper}" if m.paper else ""),
            params or "—",
            "\n".join(m.needs()) or "—",
        )
    console = options.stdout_console()
    console.print(table)
    err = options.stderr_console()
    for source, error in errors.items():
        err.print(f"failed to load {source}: {error}", style="red", highlight=False)
    for note in unloaded_local_files():
        err.print(f"note: {note}", highlight=False)


File = Annotated[
    Path | None,
    typer.Argument(
        metavar="FILE",
        help="A method file (methods/*.py style: it registers the method named after it).",
        show_default=False,
    ),
]
EntryPoint = Annotated[
    str | None,
    typer.Option(
        "--entry-point",
        help="Check an installed plugin's method: its entry point in the "
        "noisebench.methods group.",
        show_default=False,
    ),
]


@app.command("check")
def check(
    file: File = None, entry_point: EntryPoint = None, as_json: options.Json = False
) -> None:
    """Load one method on its own and run the contract suite on it, check by check,
    smoke fit included. Exit 0 when every check passes, 1 when one fails."""
    from noisebench.errors import UserError
    from noisebench.registry import (
        PluginLoadError,
        load_entry_point,
        load_method_file,
    )

    if (file is None) == (entry_point is None):
        raise UserError("give one method: a FILE or --entry-point NAME")
    source = str(file) if file is not None else f"entry point {entry_point}"
    try:
        method = (
            load_method_file(file)
            if file is not None
            else load_entry_point(entry_point)
        )
    except PluginLoadError as err:
        name = file.stem if file is not None else entry_point
        loads = {"name": "loads", "passed": False, "message": str(err), "seconds": 0.0}
        report = _report(name, source, None, [loads])
    else:
        loads = {
            "name": "loads",
            "passed": True,
            "message": "",
            "summary": f"registers '{method.name}' ({method.origin})",
            "seconds": 0.0,
        }
        results = _run_checks(method, quiet=as_json)
        report = _report(method.name, source, method, [loads, *results])
    if as_json:
        print(options.dumps(report))
    else:
        _print_report(report)
    if not report["passed"]:
        raise typer.Exit(1)


def _run_checks(method, *, quiet: bool) -> list[dict[str, Any]]:
    """The contract, one check at a time, behind a progress bar (on stderr, when it is a
    terminal): the smoke fit trains for a moment."""
    import torch

    from noisebench.testing import CONTRACT, run_checks

    results = []
    threads = torch.get_num_threads()
    # tiny tensors: more threads only add overhead (on a busy machine, 50 times more)
    torch.set_num_threads(1)
    try:
        with options.progress("checks", quiet=quiet) as progress:
            task = progress.add_task(f"checking {method.name}", total=len(CONTRACT))
            for check in CONTRACT:
                (r,) = run_checks(method, (check,))
                results.append(
                    {
                        "name": r.name,
                        "passed": r.passed,
                        "message": r.message,
                        "summary": r.summary,
                        "seconds": round(r.seconds, 3),
                    }
                )
                progress.advance(task)
    finally:
        torch.set_num_threads(threads)
    return results


def _report(name: str, source: str, method, checks: list[dict[str, Any]]) -> dict:
    names = [c["name"] for c in checks]
    if method is None:  # it did not load: nothing else could run
        from noisebench.testing import CONTRACT, check_name

        names += [check_name(c) for c in CONTRACT]
    ran = {c["name"] for c in checks}
    return {
        "method": name,
        "source": source,
        "origin": None if method is None else method.origin,
        "requires": None if method is None else list(method.requires),
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "not_run": [n for n in names if n not in ran],
        "failed": [c["name"] for c in checks if not c["passed"]],
    }


def _print_report(report: dict) -> None:
    console = options.stdout_console()

    def say(text: str, style: str | None = None, end: str = "\n") -> None:
        # one line per check whatever the terminal's width: CI logs get grepped
        console.print(text, style=style, end=end, highlight=False, soft_wrap=True)

    say(f"{report['method']} ({report['source']})")
    width = max(len(c["name"]) for c in report["checks"])
    for c in report["checks"]:
        mark, style = ("✓", "green") if c["passed"] else ("✗", "red")
        why = c.get("summary", "") if c["passed"] else c["message"]
        say(f"  {mark} ", style, end="")
        say(f"{c['name']:<{width}}  {why}")
    for name in report["not_run"]:
        say(f"  - {name:<{width}}  not run", "dim")
    total = len(report["checks"]) + len(report["not_run"])
    passed = sum(c["passed"] for c in report["checks"])
    if report["passed"]:
        say(f"{report['method']}: all {total} checks passed", "green")
    else:
        failed = ", ".join(report["failed"])
        say(
            f"{report['method']}: {passed} of {total} checks passed; failed: {failed}",
            "red",
        )
