"""What the board cost: the compute behind the runs it shows, per setup and device.

Every record holds its share of its ensemble's wall time (`wall_time_s`, the time of
the seeds trained together divided by their number), so a sum over records is the
time the machine spent on them. Tuning trials are counted: they are part of what a
tuned row cost, though they never reach the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from noisebench.leaderboard.aggregate import LEADERBOARD_PHASES, model_name


@dataclass(frozen=True)
class Cost:
    dataset: str
    model: str
    device: str
    runs: int  # records shown on the board (evaluate and final runs)
    tuning_runs: int  # records of tuning trials
    seconds: float

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def costs(rows: Iterable[dict[str, Any]]) -> list[Cost]:
    """One Cost per dataset x model x device, sorted; records without a wall time (a
    diverged run records one too, so only foreign rows lack it) add nothing."""
    totals: dict[tuple[str, str, str], list[float]] = {}
    for row in rows:
        model = model_name(row["train_config"]) or row.get("model") or "?"
        key = (row["dataset"], model, _device(row))
        runs, tuning, seconds = totals.setdefault(key, [0, 0, 0.0])
        shown = row["phase"] in LEADERBOARD_PHASES
        totals[key] = [
            runs + shown,
            tuning + (row["phase"] == "tune"),
            seconds + (row.get("wall_time_s") or 0.0),
        ]
    return [
        Cost(*key, int(runs), int(tuning), seconds)
        for key, (runs, tuning, seconds) in sorted(totals.items())
    ]


def _device(row: dict[str, Any]) -> str:
    device, name = row.get("device") or "?", row.get("device_name")
    return f"{device} ({name})" if name and name != device else device
