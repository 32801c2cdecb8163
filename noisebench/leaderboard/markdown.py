"""The leaderboard page: markdown, escaped, deterministic (DESIGN.md §6)."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from noisebench.leaderboard.aggregate import (
    LEADERBOARD_PHASES,
    Board,
    boards,
    leaderboard_rows,
)

NOISE_NOTES = {
    "symmetric": "T = (1-r)I + r/(K-1)(J-I): a corrupted label moves to one of the *other* classes",
    "uniform": "T = (1-r)I + (r/K)J: a corrupted label is redrawn from all K classes (flip rate r(K-1)/K)",
    "pairflip": "T[i,i] = 1-r, T[i,i+1 mod K] = r",
    "asymmetric": "the dataset card's class map: T[i,i] = 1-r, T[i,m(i)] = r for mapped classes",
    "transition": "a user-supplied transition matrix",
}
# What can mean something in GitHub-flavoured markdown or HTML: links and images
# ([ ] !), tags and autolinks (< >), entities (&), emphasis and strikethrough (* _ ~),
# code (`), table cells (|), headings (#), and the escape character itself.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~!#&])")
# A line that starts with one of these opens a list or underlines a heading.
_BLOCK_START = re.compile(r"^(?:([-+=])|([0-9]+)([.)]))")
# Unicode categories that break a line or reorder text: control (\r, \n, \t, ...),
# format (bidi overrides, zero-width), surrogate, line and paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def md_escape(text: str) -> str:
    """A user-supplied string (dataset and method names, params, setups) as markdown
    inline text that renders as itself, on one line, and can open nothing.

    The rule: (1) every control, format or line-separator character (categories Cc, Cf,
    Cs, Zl, Zp: \\r, \\n, tabs, bidi overrides, ...) becomes a space; (2) surrounding
    whitespace is dropped (four leading spaces would start a code block); (3) each of
    the characters \\ ` * _ [ ] < > | ~ ! # & gets a backslash, which CommonMark
    reads as "this character, literally" for any ASCII punctuation, so no link, image,
    tag, entity, emphasis, code span, cell border or heading can form; (4) a leading
    `-`, `+`, `=` or list number (`1.`, `1)`) is escaped too, so the text opens no
    block when it starts a line. Idempotence is not a goal: escape each string once,
    where it enters markdown.
    """
    text = "".join(
        " " if unicodedata.category(c) in _INVISIBLE else c for c in str(text)
    ).strip()
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _BLOCK_START.sub(
        lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text, count=1
    )


def describe_setup(train_config: str) -> str:
    """Plain text; escape it for markdown."""
    try:
        c = json.loads(train_config)
        hidden = "-".join(str(h) for h in c.get("hidden", []))
        text = f"{c['model']} {hidden}, {c['epochs']} epochs, {c['optimizer']} lr {c['lr']:g}, batch {c['batch_size']}"
        if c.get("optimizer") == "sgd":
            momentum = c.get("momentum", 0.9)
            text += f", {'Nesterov ' if c.get('nesterov') else ''}momentum {momentum:g}"
        if c.get("weight_decay"):
            text += f", wd {c['weight_decay']:g}"
        schedule = c.get("schedule", "constant")
        if schedule == "step":
            at = ",".join(str(m) for m in c.get("milestones", []))
            text += f", lr x{c.get('gamma', 0.1):g} at epochs {at}"
        elif schedule != "constant":
            text += f", {schedule} schedule"
        if c.get("warmup"):
            text += f", CE warm-up {c['warmup']:g}"
        return text + f", {c['val_fraction']:g} noisy validation"
    except (ValueError, KeyError, TypeError, AttributeError):
        # a config from another version or a hand-made record: show it, do not fail
        return f"training config {train_config}"


def render_table(board: Board, metric: str) -> list[str]:
    rates = board.rates
    best = {}
    for rate in rates:
        means = [
            line[rate].stat(metric).mean
            for line in board.cells.values()
            if rate in line and line[rate].complete
        ]
        best[rate] = max(means) if means else None
    lines = [
        "| method | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|" + "---:|" * len(rates),
    ]
    for key in sorted(board.cells):
        line = board.cells[key]
        cells = []
        for rate in rates:
            cell = line.get(rate)
            if cell is None:
                cells.append("")
                continue
            is_best = (
                cell.complete
                and best[rate] is not None
                and cell.stat(metric).mean == best[rate]
            )
            cells.append(cell.render(metric, bold=is_best))
        lines.append(f"| {md_escape(key.label)} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    rows: list[dict[str, Any]], *, stale: int = 0, plots: dict[str, str] | None = None
) -> str:
    """The leaderboard page. Deterministic: the same records always give the same text."""
    out = [
        "# noisebench leaderboard",
        "",
        "Generated by `noisebench leaderboard` from the run records in `runs/`; do not edit by hand.",
        "Cells: clean test accuracy in %, mean ± sample std over seeds (number of seeds).",
        "**Bold**: the best complete cell of its column. A cell with a diverged or missing seed",
        "says so instead of averaging the seeds that happened to finish.",
        "Model selection never looks at the test set: *last epoch* reports the final model;",
        "*selected by noisy validation* reports the epoch with the best accuracy on the noisy",
        "validation split.",
        "",
    ]
    tables = boards(rows)
    if not tables:
        out.append(
            "No runs yet. Run `noisebench evaluate --method ce --noise 0.4` to add one."
        )
    for board in tables:
        title = md_escape(
            f"{board.dataset}: {board.noise_type} noise ({board.noise_mode} sampling)"
        )
        out += [f"## {title}", ""]
        data = f"data sha {board.dataset_sha[:8]}"
        if board.noise_detail:
            data += f", {board.noise_detail}"
        setup = md_escape(f"{describe_setup(board.train_config)}; {data}.")
        out += [setup, ""]
        note = NOISE_NOTES.get(board.noise_type, "unknown noise type")
        out += [f"Noise: {note}. Columns: noise rate r.", ""]
        out += ["Last epoch (`test_acc`):", ""] + render_table(board, "test_acc") + [""]
        out += ["Selected by noisy validation (`test_acc_at_best_val`):", ""]
        out += render_table(board, "test_acc_at_best_val") + [""]
        if plots and board.slug in plots:
            out += [f"![{title}]({plots[board.slug]})", ""]
    n_runs = sum(1 for r in rows if r["phase"] in LEADERBOARD_PHASES)
    out.append(
        f"{n_runs} runs shown"
        + (
            f"; {stale} stale runs (older method versions or code) not shown."
            if stale
            else "."
        )
    )
    return "\n".join(out) + "\n"


def build(store: str | Path, *, write_plots: bool = True) -> str:
    """Render `<store>/README.md` text; with `write_plots`, also write `<store>/plots/*.png`."""
    from noisebench.leaderboard.plots import plot_board
    from noisebench.store import clean_temporaries

    store = Path(store)
    rows, stale = leaderboard_rows(store)
    if write_plots:
        clean_temporaries(store / "plots")
    plots = {}
    for board in boards(rows):
        relative = f"plots/{board.slug}.png"
        if write_plots:
            plot_board(board, store / relative)
        plots[board.slug] = relative
    return render_markdown(rows, stale=stale, plots=plots)
