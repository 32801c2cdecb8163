"""The leaderboard as data: boards filtered the way `noisebench leaderboard show` asks,
and every shown cell as one flat row for CSV or JSON. Ranks and marks are computed on
the whole table before any method filter, so a filtered view never re-ranks."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from noisebench.leaderboard.aggregate import OK, Board, Row, Table, model_name, tables
from noisebench.leaderboard.markdown import METRICS_SHOWN, describe_setup


@dataclass(frozen=True)
class Filters:
    """Each field keeps what equals one of its values; an empty field keeps all."""

    datasets: Sequence[str] = ()
    models: Sequence[str] = ()
    noise_types: Sequence[str] = ()
    methods: Sequence[str] = ()
    metrics: Sequence[str] = METRICS_SHOWN

    def keeps_board(self, board: Board) -> bool:
        return (
            _matches(board.dataset, self.datasets)
            and _matches(model_of(board), self.models)
            and _matches(board.noise_type, self.noise_types)
        )

    def keeps_row(self, row: Row) -> bool:
        return _matches(row.line.method, self.methods)


def _matches(value: str, wanted: Sequence[str]) -> bool:
    return not wanted or value in wanted


def model_of(board: Board) -> str:
    return model_name(board.train_config) or "?"


def shown_tables(shown: Sequence[Board], filters: Filters) -> list[Table]:
    """Every table of the kept boards, for the kept metrics, with only the kept rows."""
    out = []
    for board in shown:
        if not filters.keeps_board(board):
            continue
        for metric in filters.metrics:
            for table in tables(board, metric):
                rows = [row for row in table.rows if filters.keeps_row(row)]
                if rows:
                    out.append(
                        Table(table.board, table.kind, metric, table.rates, rows)
                    )
    return out


FIELDS = (
    "dataset",
    "dataset_sha",
    "model",
    "setup",
    "noise_type",
    "noise_mode",
    "noise_detail",
    "table",
    "metric",
    "method",
    "label",
    "params",
    "cell_params",
    "origin",
    "estimated_t",
    "block",
    "noise_rate",
    "state",
    "mean",
    "std",
    "n",
    "seeds_asked",
    "diverged",
    "rank",
    "mark",
    "p_value",
    "mean_rank",
)


def flat_rows(shown: Sequence[Table]) -> list[dict[str, Any]]:
    """One dict per cell: the same facts as the page, for tools. A mean is given only
    for a complete cell, as on the page; NaN becomes None (JSON has no NaN)."""
    out = []
    for table in shown:
        board = table.board
        for row in table.rows:
            for rate in table.rates:
                entry = row.entries.get(rate)
                if entry is None:
                    continue
                cell, standing = entry.cell, entry.standing
                complete = cell.state == OK
                out.append(
                    {
                        "dataset": board.dataset,
                        "dataset_sha": board.dataset_sha,
                        "model": model_of(board),
                        "setup": describe_setup(board.train_config),
                        "noise_type": board.noise_type,
                        "noise_mode": board.noise_mode,
                        "noise_detail": board.noise_detail,
                        "table": table.kind,
                        "metric": table.metric,
                        "method": row.line.method,
                        "label": row.line.label,
                        "params": row.line.params,
                        # a tuned row's params are per cell: the ones tuning chose
                        "cell_params": cell.params,
                        "origin": row.line.origin,
                        "estimated_t": row.line.estimated_t,
                        "block": row.block,
                        "noise_rate": rate,
                        "state": cell.state,
                        "mean": _number(entry.stat.mean) if complete else None,
                        "std": _number(entry.stat.std) if complete else None,
                        "n": entry.stat.n,
                        "seeds_asked": len(cell.expected),
                        "diverged": len(cell.by_status("diverged")),
                        "rank": None if standing is None else standing.rank,
                        "mark": None if standing is None else standing.mark,
                        "p_value": None
                        if standing is None
                        else _number(standing.p_value),
                        "mean_rank": row.mean_rank,
                    }
                )
    return out


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
