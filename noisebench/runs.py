"""From a prepared configuration to its records in a store: the seeds already recorded
are read back, the others trained and written as one shard. The one path that
`evaluate`, `reproduce` (and any script) take, so a rerun after an interruption only
does the missing work wherever it comes from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisebench.experiment import Prepared


@dataclass(frozen=True)
class Outcome:
    records: list[dict[str, Any]]  # one per seed, in the spec's order
    shard: Path | None  # where the fresh records went; None when none were written
    reused: int  # how many seeds came from the store


def evaluate(
    prepared: Prepared,
    store: Path,
    *,
    rerun: bool = False,
    any_commit: bool = False,
    record: bool = True,
    train: Callable[[Prepared], list[dict[str, Any]]] | None = None,
) -> Outcome:
    """Records for every seed of `prepared`: from the store where this exact
    configuration was already run by this noisebench (by any commit of it with
    `any_commit`; never with `rerun`), trained with `train` (default
    `experiment.run`) otherwise, and written unless not `record`."""
    from noisebench.experiment import run
    from noisebench.records import stored_runs
    from noisebench.store import ensure_writable, write_records

    done = (
        stored_runs(prepared, store, any_commit=any_commit)
        if record and not rerun
        else {}
    )
    todo = [i for i, seed in enumerate(prepared.spec.seeds) if seed not in done]
    shard, fresh = None, []
    if todo:
        if record:
            ensure_writable(store)
        fresh = (train or run)(prepared.members(todo))
        shard = write_records(fresh, store) if record else None
    by_seed = done | {r["seed"]: r for r in fresh}
    records = [by_seed[seed] for seed in prepared.spec.seeds]
    return Outcome(records, shard, len(records) - len(fresh))
