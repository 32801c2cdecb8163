"""What a sweep has done and what it has left (`noisebench sweep --suite NAME --status`).

Read from the two places a sweep keeps its work, and written to neither: the store's
final records say a cell is done, and the cell's Optuna study says how far its search
got. The estimate of what is left is the pace of the cells already done, per method
where one of its cells is done (methods differ several-fold: Co-teaching trains two
networks), so it is a measurement, not a model of the machine.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from noisebench.sweep import Cell, Suite, cell_spec, cell_study

DONE, FINAL, TUNING, NOT_STARTED = "done", "final runs", "tuning", "not started"


@dataclass(frozen=True)
class CellStatus:
    cell: Cell
    study: str
    state: str  # DONE, FINAL (search finished, final runs missing), TUNING, NOT_STARTED
    trials: int | None  # finished trials of its study; None: nothing to tune
    budget: int
    hours: float  # wall time of its runs so far, tuning and final (core-hours on a CPU)
    running: int = 0  # trials a worker holds now
    stale: int = 0  # of those, held by a worker that stopped beating (killed, lost)


@dataclass(frozen=True)
class SweepStatus:
    suite: Suite
    cells: tuple[CellStatus, ...]

    def count(self, state: str) -> int:
        return sum(c.state == state for c in self.cells)

    def hours_left(self) -> float | None:
        """What the unfinished cells should still take at the pace of the finished
        ones (their method's mean where it has a finished cell, else every finished
        cell's), less what each has spent; None when no cell is done to measure it."""
        done = [c for c in self.cells if c.state == DONE]
        if not done:
            return None
        per_method: dict[str, list[float]] = defaultdict(list)
        for c in done:
            per_method[c.cell.method].append(c.hours)
        overall = fmean(c.hours for c in done)
        return sum(
            max(fmean(per_method.get(c.cell.method, [overall])) - c.hours, 0.0)
            for c in self.cells
            if c.state != DONE
        )

    def unmeasured(self) -> list[str]:
        """Methods with work left and no done cell: `hours_left` takes them at the mean
        of every done cell, which runs low for a costlier method."""
        done = {c.cell.method for c in self.cells if c.state == DONE}
        left = (c.cell.method for c in self.cells if c.state != DONE)
        return [m for m in dict.fromkeys(left) if m not in done]


@dataclass(frozen=True)
class Trials:
    finished: int = 0  # completed or pruned
    running: int = 0
    stale: int = 0  # running, with no heartbeat for twice the heartbeat interval


def sweep_status(
    suite: Suite, *, store: Path, storage: str | None = None, heartbeat: int = 10
) -> SweepStatus:
    """`heartbeat`: the interval the sweep's workers beat at (`sweep --heartbeat`);
    a running trial silent for twice that is stale."""
    from noisebench.tune import default_storage, stored_finals

    specs = [
        cell_spec(suite, c, storage="", device="cpu", heartbeat=10)
        for c in suite.cells()
    ]
    names = [cell_study(spec) for spec in specs]
    records = _records_by_study(store, set(names))
    # done exactly when the sweep itself would take the cell's results from the store
    done = (
        stored_finals(store, names, tuple(range(suite.final_seeds))) if records else {}
    )
    trials = _study_trials(storage or default_storage(store), set(names), heartbeat)
    cells = []
    for cell, spec, name in zip(suite.cells(), specs, names):
        rows = records.get(name, [])
        free = _has_free_params(spec)
        counts = trials.get(name, Trials())
        finished = counts.finished
        if done.get(name):
            state = DONE
        elif free and finished < suite.trials:
            state = TUNING if name in trials or rows else NOT_STARTED
        else:  # the search is over, or there is none: only final runs are left
            state = FINAL if free or rows else NOT_STARTED
        hours = sum(r["wall_time_s"] or 0.0 for r in rows) / 3600
        cells.append(
            CellStatus(
                cell,
                name,
                state,
                finished if free else None,
                suite.trials,
                hours,
                counts.running,
                counts.stale,
            )
        )
    return SweepStatus(suite, tuple(cells))


def _has_free_params(spec) -> bool:
    from noisebench.registry import get_method

    space = get_method(spec.base.method).search_space
    return any(k not in spec.base.params for k in space)


def _records_by_study(store: Path, names: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The store's tuning and final records of these studies, duplicates dropped."""
    from noisebench.leaderboard import dedupe
    from noisebench.store import read_records

    if not (Path(store) / "runs").is_dir():
        return {}
    table = read_records(store)
    columns = [
        "run_id",
        "config_hash",
        "study",
        "phase",
        "seed",
        "noise_seed",
        "status",
        "wall_time_s",
    ]
    rows = table.select(columns).to_pylist()
    by_study: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dedupe(r for r in rows if r.get("study") in names):
        by_study[r["study"]].append(r)
    return by_study


def _study_trials(url: str, names: set[str], heartbeat: int) -> dict[str, Trials]:
    """Trials per study that exists in the storage, read without creating the
    database or its tables, or failing any stale trial (a running sweep does that)."""
    import optuna
    import sqlalchemy.exc
    from optuna.trial import TrialState

    from noisebench.errors import UserError
    from noisebench.tune import HeartbeatStorage, quiet_optuna, redact

    if (
        url.startswith("sqlite:///")
        and not Path(url.removeprefix("sqlite:///")).is_file()
    ):
        return {}
    quiet_optuna()
    try:
        storage = HeartbeatStorage(
            url,
            skip_table_creation=True,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
        )
        counts = {}
        for name in names & set(optuna.get_all_study_names(storage)):
            study_id = storage.get_study_id_from_name(name)
            states = [t.state for t in storage.get_all_trials(study_id, deepcopy=False)]
            counts[name] = Trials(
                finished=sum(
                    s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states
                ),
                running=states.count(TrialState.RUNNING),
                stale=len(storage._get_stale_trial_ids(study_id)),
            )
        return counts
    except (
        sqlalchemy.exc.SQLAlchemyError,
        optuna.exceptions.StorageInternalError,
        ImportError,
        ValueError,
        OSError,
    ) as err:
        cause = err.__cause__ or err  # optuna wraps the driver's error in its own
        reason = (
            str(cause).strip().splitlines()[0]
            if str(cause).strip()
            else type(cause).__name__
        )
        raise UserError(f"cannot read storage {redact(url)}: {reason}") from None


def status_json(status: SweepStatus) -> dict[str, Any]:
    left = status.hours_left()
    return {
        "suite": status.suite.name,
        "cells": [
            {
                "method": c.cell.method,
                "noise_type": c.cell.noise_type,
                "rate": c.cell.rate,
                "transition": c.cell.transition,
                "study": c.study,
                "state": c.state,
                "trials": c.trials,
                "budget": c.budget,
                "hours": c.hours,
                "running": c.running,
                "stale": c.stale,
            }
            for c in status.cells
        ],
        "done": status.count(DONE),
        "total": len(status.cells),
        "hours_spent": sum(c.hours for c in status.cells),
        "hours_left": left,
        "unmeasured": status.unmeasured(),
    }
