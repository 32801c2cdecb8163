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

from noisebench.leaderboard.stats import Standing, judge_column, mean_rank

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
    """(current, stale). A row is stale when a noisebench of another engine revision
    made it (`records.ENGINE_REVISIONS`: its numbers are not comparable with this
    engine's), or when its method is registered now and the code that made it is not
    the current code, as far as the record can tell: another version, the same origin
    with another source hash, or no source hash at all (schema <= 2, which cannot be
    tied to any code). The code of methods not registered now cannot be compared with
    anything, so only their engine is judged."""
    from noisebench.records import same_engine
    from noisebench.registry import METHODS, discover

    discover()
    current, stale = [], []
    for row in rows:
        if not same_engine(row["noisebench_version"]):
            stale.append(row)
            continue
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
    def state(self) -> str:
        """OK (every seed asked for finished), DIVERGED (some seed diverged: its
        mean would hide it) or INCOMPLETE (some seed never finished)."""
        if self.by_status("diverged"):
            return DIVERGED
        done = {r["seed"] for r in self.by_status("ok")}
        return OK if self.expected <= done else INCOMPLETE

    @property
    def complete(self) -> bool:
        return self.state == OK

    def stat(self, metric: str) -> Stat:
        return Stat.of([r[metric] for r in self.by_status("ok")])

    @property
    def params(self) -> str | None:
        """The params (canonical JSON) every record ran with: for a tuned cell, the
        ones tuning chose. None when they disagree, which one tuning never gives."""
        found = {r["params"] for r in self.records}
        return found.pop() if len(found) == 1 else None

    def by_noise_seed(self, metric: str) -> dict[Any, float]:
        """The `ok` values keyed for pairing across methods: by noise seed (the same
        noisy labels), or (noise seed, seed) if the cell has one noise seed twice."""
        ok = [r for r in self.by_status("ok") if not _missing(r[metric])]
        keys = [r["noise_seed"] for r in ok]
        if len(set(keys)) < len(keys):
            keys = [(r["noise_seed"], r["seed"]) for r in ok]
        return {k: r[metric] for k, r in zip(keys, ok, strict=True)}


OK, INCOMPLETE, DIVERGED = "ok", "incomplete", "diverged"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
    # line -> the noise type whose rate-0 runs its rate-0 cell holds, when not the
    # board's own (see share_rate_zero)
    borrowed_zero: dict[Line, str] = field(default_factory=dict)
    # tuned runs of an older tuning of the same cell, left out (see keep_newest_tuning)
    superseded: int = 0

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
        model = model_name(self.train_config)
        parts = [self.dataset, *([model] if model else []), self.noise_type]
        readable = "-".join([*parts, self.noise_mode]).lower()
        # no leading dot (hidden file), and short enough for any file system
        readable = re.sub(r"[^a-z0-9_.-]+", "_", readable).lstrip(".")[:80]
        return f"{readable}-{digest}"


def boards(rows: Iterable[dict[str, Any]]) -> list[Board]:
    """Group leaderboard rows into boards, sorted by dataset, noise type and setup."""
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
                # a distilled student is not its method trained on labels
                teacher_label(row.get("teacher")),
            ),
            {},
        )
        line.setdefault(row["noise_rate"], Cell()).records.append(row)
    for board in grouped.values():
        keep_newest_tuning(board)
    return share_rate_zero([grouped[k] for k in sorted(grouped)])


# Noise types whose rate 0 flips no label: at rate 0 they are all one experiment.
CLASS_CONDITIONAL = ("symmetric", "uniform", "pairflip", "asymmetric")


def share_rate_zero(tables: list[Board]) -> list[Board]:
    """Give every class-conditional board of a setup the rate-0 runs of its siblings.

    At rate 0 no label is flipped, so symmetric, uniform, pair-flip and asymmetric
    noise are the same experiment (and realize the same labels): one set of runs
    answers "does it help when labels are correct?" in every table. A board keeps its
    own rate-0 cell when it has one; otherwise it borrows the cell of the first sibling
    that has it (symmetric first). A board left with nothing but a rate-0 column that
    its siblings now show is dropped.
    """
    setups: dict[tuple, list[Board]] = {}
    for board in tables:
        if board.noise_type in CLASS_CONDITIONAL:
            key = (board.dataset, board.dataset_sha, board.train_config)
            setups.setdefault(key, []).append(board)
    redundant: set[int] = set()
    for siblings in setups.values():
        if len(siblings) < 2:
            continue
        for board in siblings:
            borrow_rate_zero(board, siblings)
        for board in siblings:
            own = {r for line, row in board.cells.items() for r in row}
            if own == {0.0} and any(b.rates != [0.0] for b in siblings):
                redundant.add(id(board))
    return [b for b in tables if id(b) not in redundant]


def borrow_rate_zero(board: Board, siblings: Iterable[Board]) -> None:
    """Fill the board's missing rate-0 cells from its siblings, symmetric first."""
    for donor in sorted(siblings, key=lambda b: b.noise_type != "symmetric"):
        for line, row in donor.cells.items():
            if 0.0 in row and 0.0 not in board.cells.get(line, {}):
                board.cells.setdefault(line, {})[0.0] = row[0.0]
                board.borrowed_zero[line] = donor.noise_type


def keep_newest_tuning(board: Board) -> None:
    """A tuned cell shows the final runs of one tuning: the newest, when a cell was
    tuned more than once (another budget, another suite). Mixing them would average
    two protocols' picks; the older runs are counted in `board.superseded`."""
    for line, row in board.cells.items():
        if line.params != TUNED:
            continue
        for rate, cell in row.items():
            studies: dict[Any, list[dict[str, Any]]] = {}
            for r in cell.records:
                studies.setdefault(r.get("study"), []).append(r)
            if len(studies) < 2:
                continue
            newest = max(
                studies.values(), key=lambda rs: max(r["finished_at"] for r in rs)
            )
            board.superseded += len(cell.records) - len(newest)
            row[rate] = Cell(newest)


def teacher_label(teacher: str | None) -> str:
    """A distilled run's teacher as a row label states it: method, params and
    temperature (and alpha when the hard labels take part); "" without one."""
    if not teacher:
        return ""
    t = json.loads(teacher)
    params = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in t.get("params", {}).items()
    )
    text = (
        f"{t['method']}"
        + (f" ({params})" if params else "")
        + f", T={t['temperature']:g}"
    )
    return text + (f", alpha={t['alpha']:g}" if t.get("alpha", 1.0) != 1.0 else "")


def model_name(train_config: str) -> str | None:
    """The model family a setup trains; None where its config does not say (a
    foreign or hand-made record)."""
    try:
        model = json.loads(train_config)["model"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(model)


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
    """A table row: a method, whether its T was estimated, its params (or TUNED), its
    origin ("" for records older than schema 3, which did not say), and its teacher
    when it was distilled ("" otherwise)."""

    method: str
    estimated_t: bool
    params: str
    origin: str = BUILTIN
    teacher: str = ""

    @property
    def label(self) -> str:
        """Plain text; escape it for markdown."""
        name = self.method
        if self.origin not in (BUILTIN, ""):
            name += f" [{self.origin}]"
        if self.estimated_t:
            name += " [estimated T]"
        if self.teacher:
            name += f" [teacher {self.teacher}]"
        if self.params == TUNED:
            return f"{name} (tuned)"
        inner = format_params(self.params)
        return f"{name} ({inner})" if inner else name


def format_params(params: str, digits: int = 6) -> str:
    """Canonical params JSON as `k=v, ...`, floats to `digits` significant digits."""
    return ", ".join(
        f"{k}={v:.{digits}g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in json.loads(params).items()
    )


DEFAULT_TABLE, TUNED_TABLE = "default", "tuned"
RANKED, UPPER_BOUND = "ranked", "upper bound"


@dataclass(frozen=True)
class Entry:
    """One cell of a rendered table."""

    cell: Cell
    stat: Stat  # of the `ok` runs; shown only when the cell is complete
    standing: Standing | None  # complete cells of the ranked block only


@dataclass(frozen=True)
class Row:
    line: Line
    block: str  # RANKED, or UPPER_BOUND: a method handed the true T is not a competitor
    entries: dict[float, Entry]
    mean_rank: float | None  # None unless ranked in every column of its table


@dataclass(frozen=True)
class Table:
    """One metric of one board, for one kind of params: DEFAULT_TABLE (each method as
    it was run, its defaults unless the row says otherwise) or TUNED_TABLE (every
    method tuned on noisy validation; a method without params, having nothing to
    tune, is shown as it was run)."""

    board: Board
    kind: str
    metric: str
    rates: list[float]
    rows: list[Row]


def tables(board: Board, metric: str) -> list[Table]:
    """The board's default table and, when anything was tuned, its tuned table."""
    lines = sorted(board.cells)
    tuned = [line for line in lines if line.params == TUNED]
    as_run = [line for line in lines if line.params != TUNED]
    out = [_table(board, DEFAULT_TABLE, metric, as_run)]
    if tuned:
        # a method without params appears once: as run (its "tuned" runs, if any, are
        # the same configuration again)
        fixed = [line for line in as_run if not has_params(line)]
        shown = {_method(line) for line in fixed}
        tuned = [
            line
            for line in tuned
            if _method(line) not in shown or _has_search_space(line)
        ]
        out.append(_table(board, TUNED_TABLE, metric, tuned + fixed))
    return out


def _method(line: Line) -> tuple[str, bool, str, str]:
    return line.method, line.estimated_t, line.origin, line.teacher


def _table(board: Board, kind: str, metric: str, lines: list[Line]) -> Table:
    rates = board.rates
    block = {line: UPPER_BOUND if knows_true_t(line) else RANKED for line in lines}
    standings: dict[float, dict[Line, Standing]] = {}
    for rate in rates:
        samples = {}
        for line in lines:
            cell = board.cells[line].get(rate)
            if block[line] == RANKED and cell is not None and cell.complete:
                values = cell.by_noise_seed(metric)
                if values:
                    samples[line] = values
        standings[rate] = judge_column(samples)
    rows = []
    for line in lines:
        entries = {
            rate: Entry(cell, cell.stat(metric), standings[rate].get(line))
            for rate, cell in board.cells[line].items()
        }
        ranks = [
            standings[r][line].rank if line in standings[r] else None for r in rates
        ]
        rank = mean_rank(ranks) if block[line] == RANKED else None
        rows.append(Row(line, block[line], entries, rank))
    rows.sort(
        key=lambda row: (
            row.block != RANKED,
            row.mean_rank is None,
            row.mean_rank or 0.0,
            row.line.label,
        )
    )
    return Table(board, kind, metric, rates, rows)


@dataclass(frozen=True)
class Coverage:
    """How much of a board's expected grid (rows x noise rates) has run."""

    finished: int  # cells whose every seed asked for finished (ok or diverged)
    partial: int  # cells with some seeds still missing
    total: int

    def __add__(self, other: Coverage) -> Coverage:
        return Coverage(
            self.finished + other.finished,
            self.partial + other.partial,
            self.total + other.total,
        )


@dataclass(frozen=True)
class Grid:
    """What a complete store holds, read off the store itself: every as-run row and
    every method with params found on any board, on every setup (dataset x training
    setup), at every class-conditional noise setting and rate found on any setup. A
    board missing a method, a rate or a whole noise setting that another board has is
    therefore incomplete, and a partial store cannot pass for a complete one."""

    lines: frozenset[Line]  # as-run rows
    to_tune: frozenset[tuple[str, bool, str, str]]  # methods with params (_method)
    rates: dict[tuple[str, str], tuple[float, ...]]  # (noise type, mode) -> rates

    @classmethod
    def of(cls, shown: list[Board]) -> Grid:
        lines = {line for b in shown for line in b.cells if line.params != TUNED}
        to_tune = {_method(line) for line in lines if has_params(line)}
        to_tune |= {_method(line) for b in shown for line in _tuned_lines(b)}
        rates: dict[tuple[str, str], set[float]] = {}
        for b in filter(_conditional, shown):
            rates.setdefault((b.noise_type, b.noise_mode), set()).update(b.rates)
        return cls(
            frozenset(lines),
            frozenset(to_tune),
            {k: tuple(sorted(v)) for k, v in rates.items()},
        )

    def boards(self, shown: list[Board]) -> list[Board]:
        """`shown`, plus an empty board for each class-conditional noise setting a
        setup lacks, in the page's order."""
        have = {_key(b) for b in shown}
        setups = {_setup(b) for b in shown}
        missing = [
            Board(dataset, sha, kind, mode, config, "")
            for dataset, sha, config in setups
            for kind, mode in self.rates
            if (dataset, sha, kind, mode, config) not in have
        ]
        for board in missing:  # the rate-0 column it would show (share_rate_zero)
            borrow_rate_zero(
                board,
                (b for b in shown if _setup(b) == _setup(board) and _conditional(b)),
            )
        return sorted([*shown, *missing], key=lambda b: (_key(b), b.noise_detail))

    def coverage(self, board: Board) -> dict[str, Coverage]:
        setting = (board.noise_type, board.noise_mode)
        rates = set(self.rates.get(setting, ())) | set(board.rates)
        tuned = _tuned_lines(board)
        return {
            DEFAULT_TABLE: _count(board, self.lines, len(self.lines) * len(rates)),
            TUNED_TABLE: _count(board, tuned, len(self.to_tune) * len(rates)),
        }


def _key(board: Board) -> tuple[str, str, str, str, str]:
    return (
        board.dataset,
        board.dataset_sha,
        board.noise_type,
        board.noise_mode,
        board.train_config,
    )


def _setup(board: Board) -> tuple[str, str, str]:
    return board.dataset, board.dataset_sha, board.train_config


def _conditional(board: Board) -> bool:
    return board.noise_type in CLASS_CONDITIONAL


def _tuned_lines(board: Board) -> list[Line]:
    # a method without params is shown as run in the tuned table: nothing to tune
    return [
        line
        for line in board.cells
        if line.params == TUNED and _has_search_space(line) is not False
    ]


def _count(board: Board, lines: Iterable[Line], total: int) -> Coverage:
    states = [
        cell.state for line in lines for cell in board.cells.get(line, {}).values()
    ]
    return Coverage(
        finished=sum(s in (OK, DIVERGED) for s in states),
        partial=states.count(INCOMPLETE),
        total=total,
    )


def has_params(line: Line) -> bool:
    """Whether the line's method has anything to tune: its registered search space,
    or for a method not registered here, whether its runs set any params."""
    if line.params == TUNED:
        return True
    space = _has_search_space(line)
    return bool(json.loads(line.params)) if space is None else space


def _has_search_space(line: Line) -> bool | None:
    """Whether the registered method of this line has a search space; None when the
    method registered now is not the one that made the line's runs."""
    from noisebench.registry import METHODS, discover

    discover()
    if line.method in METHODS and line.origin in ("", METHODS.get(line.method).origin):
        return bool(METHODS.get(line.method).search_space)
    return None


def knows_true_t(line: Line) -> bool:
    """A registered method that reads T, run with the oracle T: an upper bound that no
    method learning from noisy labels alone can reach, so it is shown apart."""
    from noisebench.registry import METHODS, discover

    discover()
    if line.estimated_t or line.method not in METHODS:
        return False
    return "transition" in METHODS.get(line.method).requires


def leaderboard_rows(store: str | Path) -> tuple[list[dict[str, Any]], list[dict]]:
    """(current deduplicated rows, stale rows)."""
    from noisebench.store import read_records

    return split_stale(dedupe(read_records(store).to_pylist()))


def summarize(
    records: Sequence[dict[str, Any]], metrics: Sequence[str]
) -> dict[str, Stat]:
    """Mean +- std over the `ok` records of one configuration."""
    ok = [r for r in records if r["status"] == "ok"]
    return {m: Stat.of([r[m] for r in ok]) for m in metrics}
