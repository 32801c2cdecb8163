"""Aggregate run records and render the leaderboard (DESIGN.md §6).

Honest tables: duplicates dropped, stale method versions set aside, mean +- std over
seeds with the seed count, and a cell with missing or diverged seeds shown as such,
never as a partial average (the MTEB rule).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

LEADERBOARD_PHASES = ("evaluate", "final")  # tuning trials never reach the tables
TUNED = "tuned"  # the row of a method's `noisebench tune` final runs
NOISE_NOTES = {
    "symmetric": "T = (1-r)I + r/(K-1)(J-I): a corrupted label moves to one of the *other* classes",
    "uniform": "T = (1-r)I + (r/K)J: a corrupted label is redrawn from all K classes (flip rate r(K-1)/K)",
    "pairflip": "T[i,i] = 1-r, T[i,i+1 mod K] = r",
    "asymmetric": "the dataset card's class map: T[i,i] = 1-r, T[i,m(i)] = r for mapped classes",
    "transition": "a user-supplied transition matrix",
}
BUILTIN = "builtin"  # the origin of the repo's own methods/*.py
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


def plot_board(board: Board, path: Path) -> None:
    """Accuracy against noise rate, one line per method, for both selection rules."""
    import matplotlib

    from noisebench.store import temporary_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one colour per method; the line style tells its variants apart (set params,
    # tuned, estimated T), so a dozen rows stay readable
    methods = sorted({key.method for key in board.cells})
    colours = plt.get_cmap("tab10")

    def style(key: Line) -> dict[str, Any]:
        dashed, marker = ("--", "s") if key.params == TUNED else ("-", "o")
        if key.estimated_t:
            dashed, marker = ":", "^"
        return {
            "color": colours(methods.index(key.method) % 10),
            "linestyle": dashed,
            "marker": marker,
        }

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, metric, title in zip(
        axes,
        ("test_acc", "test_acc_at_best_val"),
        ("last epoch", "selected by noisy validation"),
        strict=True,
    ):
        for key in sorted(board.cells):
            line = board.cells[key]
            rates = [r for r in sorted(line) if line[r].complete]
            if not rates:
                continue
            stats = [line[r].stat(metric) for r in rates]
            ax.errorbar(
                rates,
                [100 * s.mean for s in stats],
                yerr=[0 if math.isnan(s.std) else 100 * s.std for s in stats],
                capsize=3,
                label=_plain(key.label),
                **style(key),
            )
        ax.set_title(title)
        ax.set_xlabel("noise rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clean test accuracy (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(_plain(f"{board.dataset}: {board.noise_type} noise"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)  # a kill mid-save must not leave half a PNG
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format="png", dpi=100, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def _plain(text: str) -> str:
    """User text for matplotlib: a pair of '$' would be parsed as (maybe invalid) math."""
    return text.replace("$", r"\$")


def leaderboard_rows(store: str | Path) -> tuple[list[dict[str, Any]], int]:
    """(current deduplicated rows, number of stale rows the tables would have shown)."""
    from noisebench.store import read_records

    rows = dedupe(read_records(store).to_pylist())
    current, stale = split_stale(rows)
    # tuning trials never reach the tables, stale or not: the footer does not count them
    return current, sum(1 for r in stale if r["phase"] in LEADERBOARD_PHASES)


def build(store: str | Path, *, write_plots: bool = True) -> str:
    """Render `<store>/README.md` text; with `write_plots`, also write `<store>/plots/*.png`."""
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


def summarize(
    records: Sequence[dict[str, Any]], metrics: Sequence[str]
) -> dict[str, Stat]:
    """Mean +- std over the `ok` records of one configuration."""
    ok = [r for r in records if r["status"] == "ok"]
    return {m: Stat.of([r[m] for r in ok]) for m in metrics}
