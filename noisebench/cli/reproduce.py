"""`noisebench reproduce NAME`: a paper's claim as an experiment, with a report and a
verdict; `noisebench reproduce --list`: the presets and their claims."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from noisebench.cli import options


def reproduce(
    name: Annotated[str | None, typer.Argument(help="A preset (see --list).")] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the presets and their claims.")
    ] = False,
    dataset: Annotated[
        str, typer.Option("--dataset", help="A dataset card.")
    ] = "digits",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A model (`noisebench models`). Default: the CNN on image datasets, "
            "else the card's model.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per arm.")] = 5,
    first_seed: Annotated[
        int,
        typer.Option(
            "--first-seed",
            help="Seeds are first-seed, first-seed + 1, ...: a replication on new "
            "seeds (its report is NAME-DATASET-seedsA-B.md).",
        ),
    ] = 0,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="Default: from the dataset card.", show_default=False
        ),
    ] = None,
    device: options.Device = "auto",
    store: Annotated[
        Path,
        typer.Option(
            "--store",
            help="Where the arms' run records go: their own store, beside the reports, "
            "so the leaderboard's tables stay the board's.",
        ),
    ] = Path("reports"),
    reports: Annotated[
        Path, typer.Option("--reports", help="Where the report goes.")
    ] = Path("reports"),
    any_commit: Annotated[
        bool,
        typer.Option(
            "--any-commit",
            help="Reuse arms recorded by any commit or release of this engine revision "
            "(to judge a claim again under a fixed rule without training).",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check that every report in --reports (or NAME's) is what its stored "
            "runs give, training nothing; exit 1 if one is not.",
        ),
    ] = False,
    as_json: options.Json = False,
) -> None:
    """Run a preset's arms through the engine and store, judge the claim, write the report."""
    from noisebench.errors import UserError
    from noisebench.reproduce import get_preset, list_presets
    from noisebench.reproduce import reproduce as run_preset
    from noisebench.reproduce.core import Setting
    from noisebench.reproduce.report import write

    if list_:
        rows = [get_preset(n) for n in list_presets()]
        if as_json:
            print(
                options.dumps(
                    {
                        "presets": [
                            {"name": p.name, "claim": p.claim, "paper": p.paper}
                            for p in rows
                        ]
                    }
                )
            )
        else:
            for p in rows:
                print(f"{p.name}: {p.claim}")
        return
    if check:
        check_reports(reports, store, name, as_json)
        return
    if name is None:
        raise UserError("name a preset, or --list them")
    if not 2 <= seeds <= 100:
        raise UserError(
            f"--seeds must lie in [2, 100] (a paired test needs 2), got {seeds}"
        )
    from noisebench.tune import TUNE_SEED_OFFSET  # not before --list: it loads optuna

    if not 0 <= first_seed <= TUNE_SEED_OFFSET - seeds:
        raise UserError(
            f"--first-seed must lie in [0, {TUNE_SEED_OFFSET - seeds}] so the seeds stay"
            f" below the tuning seeds ({TUNE_SEED_OFFSET}...), got {first_seed}"
        )
    setting = Setting(
        dataset=dataset,
        model=model,
        seeds=seeds,
        epochs=epochs,
        device=device,
        first_seed=first_seed,
    )
    with options.progress("arms", quiet=as_json) as progress:
        task = progress.add_task(name, total=None)

        def on_arm(i: int, total: int, arm) -> None:
            progress.update(
                task, total=total, completed=i, description=f"{name}: {arm.label}"
            )

        result = run_preset(name, setting, store, on_arm=on_arm, any_commit=any_commit)
    path = write(result, reports)
    if as_json:
        print(
            options.dumps(
                {
                    "preset": name,
                    "verdict": result.verdict.outcome,
                    "parts": [
                        {
                            "rule": r.part.rule(),
                            "outcome": r.outcome,
                            "difference": r.difference,
                            "interval_95": list(r.interval),
                            "detectable_80": r.detectable,
                            "p_value": r.p_value,
                            "pairs": r.pairs,
                        }
                        for r in result.verdict.parts
                    ],
                    "report": str(path),
                }
            )
        )
        return
    print(
        f"{name} on {dataset}: the claim {result.verdict.outcome} ({seeds} seeds); report: {path}"
    )


def check_reports(reports: Path, store: Path, name: str | None, as_json: bool) -> None:
    from noisebench.errors import UserError
    from noisebench.reproduce import get_preset
    from noisebench.reproduce.check import CURRENT, FAILING
    from noisebench.reproduce.check import check_reports as check_all

    if name is not None:
        get_preset(name)  # an unknown name is an error, not an empty check
    if not reports.is_dir():
        raise UserError(f"no reports folder at {reports}")
    results = check_all(reports, store, preset=name)
    if not results:  # checking nothing must not read as a pass
        of = f" of {name}" if name else ""
        raise UserError(f"no reports{of} in {reports}")
    failing = [r for r in results if r.state in FAILING]
    if as_json:
        print(
            options.dumps(
                {
                    "reports": [
                        {"report": r.path.name, "state": r.state, "reason": r.reason}
                        for r in results
                    ],
                    "failing": len(failing),
                }
            )
        )
    else:
        width = max((len(r.state) for r in results), default=0)
        for r in results:
            reason = f": {r.reason}" if r.reason else ""
            print(f"{r.state:<{width}}  {r.path.name}{reason}")
        current = sum(r.state == CURRENT for r in results)
        print(
            f"{current} of {len(results)} reports current, {len(failing)} failing"
            + (
                "; rewrite them with the command each names (`noisebench reproduce"
                " NAME ... --any-commit`)"
                if failing
                else ""
            )
        )
    if failing:
        raise typer.Exit(1)
