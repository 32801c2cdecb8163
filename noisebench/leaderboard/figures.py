"""What the leaderboard draws for a board: its records turned into the plain data that
`plots` renders. One function per figure; each returns a `Drawing` (the data, bound
to its `plots` function, drawn only when called, so `leaderboard --check` knows the
page's figures without rendering them), or None when the board has nothing to draw
(records older than schema 5 carry no bins, curves or counts).

Every figure reads complete cells only, as the tables do.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from noisebench.leaderboard.aggregate import (
    DEFAULT_TABLE,
    OK,
    TUNED,
    Board,
    Line,
    tables,
)
from noisebench.leaderboard.plots import (
    Curves,
    Precision,
    Reliability,
    Series,
    figure_label_precision,
    figure_memorization,
    figure_reliability,
    figure_small_multiples,
    figure_transitions,
)

REFERENCE = "ce"  # every panel shows cross-entropy as run, the baseline to read against
FOCUS_RATE = 0.4  # the rate of the one-rate figures, or the nearest the board has


def _variant_style(line: Line) -> str:
    if line.estimated_t:
        return "dotted"
    return "dashed" if line.params == TUNED else "solid"


def _lines_in_order(board: Board) -> list[Line]:
    """Lines sorted so that a method's variants sit together (as-run, tuned, T)."""
    return sorted(
        board.cells,
        key=lambda l: (l.method, l.origin, l.estimated_t, l.params == TUNED, l.params),
    )


def _series(
    board: Board, line: Line, value: Callable[[dict[str, Any]], Any], scale: float
) -> Series | None:
    row = board.cells[line]
    rates = [r for r in sorted(row) if row[r].state == OK]
    points = []
    for rate in rates:
        values = [value(r) for r in row[rate].by_status(OK)]
        values = [v for v in values if v is not None]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            points.append((rate, scale * statistics.fmean(values), scale * std))
    if not points:
        return None
    label = line.label + (" (T known)" if _knows_t(line) else "")
    x, mean, std = zip(*points, strict=True)
    return Series(label, _group(line), x, mean, std, _variant_style(line))


def _knows_t(line: Line) -> bool:
    from noisebench.leaderboard.aggregate import knows_true_t

    return knows_true_t(line)


def _group(line: Line) -> str:
    return (
        line.method
        if line.origin in ("", "builtin")
        else f"{line.method} [{line.origin}]"
    )


def metric_against_rate(
    board: Board, metric: str, *, title: str, ylabel: str, scale: float = 100.0
):
    """Small multiples: one panel per method (its variants together), cross-entropy as
    run in grey in every panel."""
    series, reference = [], []
    for line in _lines_in_order(board):
        s = _series(board, line, lambda r: r.get(metric), scale)
        if s is None:
            continue
        is_reference = (
            line.method == REFERENCE and line.params == "{}" and not line.estimated_t
        )
        (reference if is_reference else series).append(s)
    if not series and not reference:
        return None
    if not series:  # only the baseline: draw it as a series of its own
        series, reference = reference, []
    reference = [Series(s.label, "", s.x, s.mean, s.std) for s in reference]
    return partial(
        figure_small_multiples, series, title=title, ylabel=ylabel, reference=reference
    )


def focus_rate(board: Board) -> float | None:
    """The noisy rate the one-rate figures show: FOCUS_RATE, or the nearest above 0."""
    noisy = [r for r in board.rates if r > 0]
    if not noisy:
        return None
    return min(noisy, key=lambda r: (abs(r - FOCUS_RATE), r))


def _at_focus(board: Board, field: str) -> tuple[float | None, list[tuple[str, list]]]:
    """The focus rate, and per method as run whose cell there is complete, its label
    and its `ok` records that carry `field` (records before schema 5 do not)."""
    rate = focus_rate(board)
    found = []
    for line in [] if rate is None else _as_run_lines(board):
        cell = board.cells[line].get(rate)
        if cell is None or cell.state != OK:
            continue
        records = [r for r in cell.by_status(OK) if r.get(field)]
        if records:
            found.append(
                (line.label + (" (T known)" if _knows_t(line) else ""), records)
            )
    return rate, found


def reliability(board: Board, *, title: str):
    """Per method as run, at the focus rate: the test reliability diagram with every
    seed's bins added up."""
    rate, found = _at_focus(board, "reliability_count")
    if not found:
        return None
    diagrams = [
        Reliability(
            label,
            *(
                tuple(np.sum([r[f"reliability_{f}"] for r in records], axis=0).tolist())
                for f in ("count", "correct", "confidence")
            ),
        )
        for label, records in found
    ]
    return partial(figure_reliability, diagrams, title=f"{title} (noise rate {rate:g})")


def _as_run_lines(board: Board) -> list[Line]:
    (table,) = [t for t in tables(board, "test_acc") if t.kind == DEFAULT_TABLE]
    return [row.line for row in table.rows]


def transitions(board: Board, *, title: str, class_names=None):
    """The realized T per noise rate: the clean x noisy counts of every distinct noise
    draw at that rate (one per noise seed: methods share the draws), summed."""
    matrices = []
    for rate in board.rates:
        draws: dict[Any, list[int]] = {}
        for row in board.cells.values():
            cell = row.get(rate)
            for r in [] if cell is None else cell.records:
                if r.get("confusion"):
                    draws.setdefault(r["noise_seed"], r["confusion"])
        if not draws:
            continue
        total = np.sum(list(draws.values()), axis=0)
        k = math.isqrt(len(total))
        label = f"r = {rate:g}, {len(draws)} draws"
        matrices.append((label, total.reshape(k, k)))
    if not matrices:
        return None
    return partial(figure_transitions, matrices, title=title, class_names=class_names)


def memorization(board: Board, *, title: str):
    """Per method as run, at the focus rate: of the corrupted training samples, the
    fraction fit to the noisy label and to the clean label, epoch by epoch (mean over
    seeds)."""
    rate, found = _at_focus(board, "mem_noisy_curve")
    if not found:
        return None
    curves = [
        Curves(
            label,
            *(
                tuple(np.nanmean([r[name] for r in records], axis=0).tolist())
                for name in ("mem_noisy_curve", "mem_clean_curve")
            ),
        )
        for label, records in found
    ]
    return partial(
        figure_memorization,
        curves,
        title=f"{title} (noise rate {rate:g})",
        order="as-run table",
    )


def label_precision(board: Board, *, title: str):
    """Per noisy rate, for every line whose records carry a selection curve (Co-teaching,
    as run and tuned): the label precision per epoch, mean over the cell's `ok` seeds,
    beside the precision of using every sample."""
    panels = []
    for rate in [r for r in board.rates if r > 0]:
        curves, realized = [], []
        for line, row in board.cells.items():
            cell = row.get(rate)
            records = [] if cell is None else cell.by_status(OK)
            records = [r for r in records if r.get("selected_clean_curve")]
            if not records:
                continue
            curve = np.nanmean([r["selected_clean_curve"] for r in records], axis=0)
            curves.append(Precision(line.label, tuple(curve.tolist())))
            realized += [r["realized_rate"] for r in records]
        if curves:
            panels.append((f"r = {rate:g}", 1.0 - float(np.mean(realized)), curves))
    if not panels:
        return None
    return partial(figure_label_precision, panels, title=title)


Drawing = Callable[[], Any]  # () -> a matplotlib Figure


def drawing_key(drawing: Drawing) -> str | None:
    """A digest of everything a drawing depends on: its `plots` function, the data and
    options bound to it, and the plotting code itself (so a change to how figures look
    draws them all again). None for a drawing this cannot see into: always drawn."""
    import hashlib
    from pathlib import Path

    from noisebench.leaderboard import plots

    h = hashlib.sha256(Path(plots.__file__).read_bytes())
    try:
        _feed(h, (drawing.func.__qualname__, drawing.args, drawing.keywords))
    except (AttributeError, TypeError):
        return None
    return h.hexdigest()[:32]


def _feed(h, value: Any) -> None:
    """Hash `value` by its content: the same data always gives the same bytes."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"<{type(value).__qualname__}>".encode())
        for f in dataclasses.fields(value):
            _feed(h, (f.name, getattr(value, f.name)))
    elif isinstance(value, np.ndarray):
        h.update(f"<array {value.dtype.str} {value.shape}>".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"<{type(value).__name__} {len(value)}>".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        h.update(f"<dict {len(value)}>".encode())
        for k in sorted(value, key=repr):
            _feed(h, (k, value[k]))
    elif isinstance(value, np.generic):  # as Python's: numpy 2 changed their repr
        _feed(h, value.item())
    elif value is None or isinstance(value, (str, bool, int, float)):
        h.update(f"<{type(value).__name__} {value!r}>".encode())
    else:
        raise TypeError(f"cannot hash a {type(value).__name__} by its content")


def board_figures(board: Board, title: str) -> dict[str, Drawing]:
    """caption -> Drawing, in page order, for the figures this board has data for."""
    made = {
        "accuracy (selected by noisy validation) against noise rate": metric_against_rate(
            board,
            "test_acc_at_best_val",
            title=f"{title}: selected by noisy validation",
            ylabel="clean test accuracy (%)",
        ),
        "accuracy (last epoch) against noise rate": metric_against_rate(
            board,
            "test_acc",
            title=f"{title}: last epoch",
            ylabel="clean test accuracy (%)",
        ),
        "ECE against noise rate": metric_against_rate(
            board, "ece", title=f"{title}: expected calibration error", ylabel="ECE (%)"
        ),
        "reliability diagrams": reliability(board, title=f"{title}: reliability"),
        "realized transition matrices": transitions(
            board, title=f"{title}: realized T"
        ),
        "memorization curves": memorization(board, title=f"{title}: memorization"),
        "label precision of the selected samples": label_precision(
            board, title=f"{title}: label precision of the selected samples"
        ),
    }
    return {caption: fig for caption, fig in made.items() if fig is not None}


FILE_NAMES = {
    "accuracy (selected by noisy validation) against noise rate": "accuracy",
    "accuracy (last epoch) against noise rate": "accuracy-last",
    "ECE against noise rate": "ece",
    "reliability diagrams": "reliability",
    "realized transition matrices": "transitions",
    "memorization curves": "memorization",
    "label precision of the selected samples": "label-precision",
}
