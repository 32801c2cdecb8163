"""Aggregation: run records into tables of cells (DESIGN.md §6).

Honest tables: duplicates dropped, stale method versions set aside, mean +- std over
seeds with the seed count, and a cell with missing or diverged seeds shown as such,
never as a partial average (the MTEB rule).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

LEADERBOARD_PHASES = ("evaluate", "final")  # tuning trials never reach the tables
TUNED = "tuned"  # the row of a method's `noisebench tune` final runs
BUILTIN = "builtin"  # the origin of the repo's own methods/*.py


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample std (ddof = 1); NaN for one value
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        values = [v for v in values if v is not None and not math.isnan(v)]
        if not values:
            return cls(math.nan, math.nan, 0)
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(statistics.fmean(values), std, len(values))


def dedupe(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the newest record per (config, seed, noise seed, phase)."""
    newest: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["config_hash"], row["seed"], row["noise_seed"], row["phase"])
        if key not in newest or row["finished_at"] > newest[key]["finished_at"]:
            newest[key] = row
    return list(newest.values())


def split_stale(rows: Iterable[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(current, stale). A row of a method registered now is stale when the code that
    made it is not the current code, as far as the record can tell: another version, the
    same origin with another source hash, or no source hash at all (schema <= 2, which
    cannot be tied to any code). Rows of methods not registered now are shown as they
    are: there is nothing to compare them with."""
    from noisebench.registry import METHODS, discover

    discover()
    current, stale = [], []
    for row in rows:
        if row["method"] not in METHODS:
            current.append(row)
            continue
        method = METHODS.get(row["method"])
        sha = row.get("method_sha")
        outdated = (
            row["method_version"] != method.version
            or sha is None
            or (row.get("method_origin") == method.origin and sha != method.source_sha)
        )
        (stale if outdated else current).append(row)
    return current, stale


@dataclass
class Cell:
    """All records of one (row, noise rate) cell of a table."""

    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expected(self) -> set[int]:
        return {s for r in self.records for s in r["run_seeds"]}

    def by_status(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == status]

    @property
    def complete(self) -> bool:
        done = {r["seed"] for r in self.records if r["status"] in ("ok", "diverged")}
        return self.expected <= done and not self.by_status("diverged")

    def stat(self, metric: str) -> Stat:
        return Stat.of([r[metric] for r in self.by_status("ok")])

    def render(self, metric: str, *, bold: bool = False) -> str:
        n_expected = len(self.expected)
        diverged = self.by_status("diverged")
        if diverged:
            return f"diverged ({len(diverged)}/{n_expected})"
        if not self.complete:
            return f"incomplete ({len(self.by_status('ok'))}/{n_expected})"
        s = self.stat(metric)
        spread = "" if math.isnan(s.std) else f" ± {100 * s.std:.1f}"
        text = f"{100 * s.mean:.1f}{spread}"
        return f"**{text}** ({s.n})" if bold else f"{text} ({s.n})"


@dataclass
class Board:
    """One table: a dataset x noise type x training setup; rows are method + params."""

    dataset: str
    dataset_sha: str
    noise_type: str
    noise_mode: str
    train_config: str
    # what else defines the noise: T's sha for a user matrix, the class map for
    # asymmetric noise (its T at each rate follows from it); "" for the others
    noise_detail: str
    cells: dict[Line, dict[float, Cell]] = field(default_factory=dict)

    @property
    def rates(self) -> list[float]:
        return sorted({rate for row in self.cells.values() for rate in row})

    @property
    def slug(self) -> str:
        """A file name for the board's plot: readable, and unique per board because it
        hashes everything that tells boards apart (the readable part is lossy)."""
        identity = json.dumps(  # a list, so no two boards' fields run together
            [
                self.dataset,
                self.dataset_sha,
                self.noise_type,
                self.noise_mode,
                self.train_config,
                self.noise_detail,
            ]
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
        readable = f"{self.dataset}-{self.noise_type}-{self.noise_mode}".lower()
        # no leading dot (hidden file), and short enough for any file system
        readable = re.sub(r"[^a-z0-9_.-]+", "_", readable).lstrip(".")[:80]
        return f"{readable}-{digest}"


def boards(rows: Iterable[dict[str, Any]]) -> list[Board]:
    """Group leaderboard rows into tables, sorted by dataset, noise type and setup."""
    grouped: dict[tuple, Board] = {}
    for row in rows:
        if row["phase"] not in LEADERBOARD_PHASES:
            continue
        # Rows agree on everything but method and noise rate, or they are not comparable.
        key = (
            row["dataset"],
            row["dataset_sha"],
            row["noise_type"],
            row["noise_mode"],
            row["train_config"],
            noise_detail(row),
        )
        board = grouped.setdefault(key, Board(*key))
        line = board.cells.setdefault(
            Line(
                row["method"],
                # a method run with an estimated T is not its oracle-T self
                row["transition_source"] == "estimated",
                # tuned runs pick params per cell, so they share one row per method
                TUNED if row["phase"] == "final" else row["params"],
                # one method name from two origins is two methods
                row.get("method_origin") or "",
            ),
            {},
        )
        line.setdefault(row["noise_rate"], Cell()).records.append(row)
    return [grouped[k] for k in sorted(grouped)]


def noise_detail(row: dict[str, Any]) -> str:
    """The part of a run's noise that its type and rate leave open (see Board)."""
    if row["noise_type"] == "transition":
        return f"T sha {(row['transition_sha'] or '')[:8]}"
    if row["noise_type"] == "asymmetric":
        if row["class_map"] is None:
            return "class map not recorded (schema 1)"
        pairs = json.loads(row["class_map"]).items()
        return "class map " + ", ".join(f"{a}→{b}" for a, b in pairs)
    return ""


class Line(NamedTuple):
    """A table row: a method, whether its T was estimated, its params (or TUNED), and its
    origin ("" for records older than schema 3, which did not say)."""

    method: str
    estimated_t: bool
    params: str
    origin: str = BUILTIN

    @property
    def label(self) -> str:
        """Plain text; escape it for markdown."""
        name = self.method
        if self.origin not in (BUILTIN, ""):
            name += f" [{self.origin}]"
        if self.estimated_t:
            name += " [estimated T]"
        if self.params == TUNED:
            return f"{name} (tuned)"
        params = json.loads(self.params)
        inner = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in params.items()
        )
        return f"{name} ({inner})" if inner else name


def leaderboard_rows(store: str | Path) -> tuple[list[dict[str, Any]], int]:
    """(current deduplicated rows, number of stale rows the tables would have shown)."""
    from noisebench.store import read_records

    rows = dedupe(read_records(store).to_pylist())
    current, stale = split_stale(rows)
    # tuning trials never reach the tables, stale or not: the footer does not count them
    return current, sum(1 for r in stale if r["phase"] in LEADERBOARD_PHASES)


def summarize(
    records: Sequence[dict[str, Any]], metrics: Sequence[str]
) -> dict[str, Stat]:
    """Mean +- std over the `ok` records of one configuration."""
    ok = [r for r in records if r["status"] == "ok"]
    return {m: Stat.of([r[m] for r in ok]) for m in metrics}
