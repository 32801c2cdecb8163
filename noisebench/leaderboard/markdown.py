"""The leaderboard page: markdown, escaped, deterministic (DESIGN.md §6)."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisebench.leaderboard.aggregate import (
    DEFAULT_TABLE,
    DIVERGED,
    INCOMPLETE,
    LEADERBOARD_PHASES,
    TUNED,
    TUNED_TABLE,
    UPPER_BOUND,
    Board,
    Coverage,
    Entry,
    Grid,
    Table,
    boards,
    format_params,
    leaderboard_rows,
    model_name,
    tables,
)
from noisebench.leaderboard.cost import costs
from noisebench.leaderboard.stats import BEST, TEST, TIED

NOISE_NOTES = {
    "symmetric": "T = (1-r)I + r/(K-1)(J-I): a corrupted label moves to one of the *other* classes",
    "uniform": "T = (1-r)I + (r/K)J: a corrupted label is redrawn from all K classes (flip rate r(K-1)/K)",
    "pairflip": "T[i,i] = 1-r, T[i,i+1 mod K] = r",
    "asymmetric": "the dataset card's class map: T[i,i] = 1-r, T[i,m(i)] = r for mapped classes",
    "transition": "a user-supplied transition matrix",
    "instance": "instance-dependent (Xia et al. 2020): each sample flips with its own rate, drawn from N(r, 0.1²) truncated to [0, 1], to a class its features pick",
    "human": "human labels read from a file (CIFAR-N); r is the rate they realize",
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
            text += f", CE for the first {c['warmup']:.0%} of epochs"
        return text + f", {c['val_fraction']:g} noisy validation"
    except (ValueError, KeyError, TypeError, AttributeError):
        # a config from another version or a hand-made record: show it, do not fail
        return f"training config {train_config}"


def render_entry(entry: Entry, *, rank: bool = True) -> str:
    """One cell: accuracy in %, mean ± std (seeds), its mark and its rank; or why not."""
    cell = entry.cell
    asked = len(cell.expected)
    if cell.state == DIVERGED:
        return f"diverged {len(cell.by_status('diverged'))}/{asked}"
    if cell.state == INCOMPLETE:
        return f"— ({len(cell.by_status('ok'))}/{asked})"
    s = entry.stat
    text = f"{100 * s.mean:.1f}" + (
        "" if math.isnan(s.std) else f" ± {100 * s.std:.1f}"
    )
    standing = entry.standing
    if standing is not None and standing.mark == BEST:
        text = f"**{text}**"
    elif standing is not None and standing.mark == TIED:
        text = f"≈{text}"
    text += f" ({s.n})"
    if rank and standing is not None:
        text += f" #{standing.rank:g}"
    return text


def render_table(table: Table) -> list[str]:
    rates = table.rates
    header = "| method | " + " | ".join(f"{r:g}" for r in rates) + " | mean rank |"
    lines = [header, "|---|" + "---:|" * (len(rates) + 1)]
    upper_started = False
    for row in table.rows:
        if row.block == UPPER_BOUND and not upper_started:
            upper_started = True
            blank = " |" * len(rates)
            lines.append(f"| *upper bounds: T known, not ranked* |{blank} |")
        cells = [
            render_entry(row.entries[r]) if r in row.entries else NOT_RUN for r in rates
        ]
        rank = "" if row.mean_rank is None else f"{row.mean_rank:.2f}"
        lines.append(
            f"| {md_escape(row.line.label)} | " + " | ".join(cells) + f" | {rank} |"
        )
    return lines


CHOSEN_NOTE = (
    "Params chosen by tuning, per cell (3 significant digits; the records hold them"
    " exactly, to run a row again):"
)


def render_chosen(table: Table) -> list[str]:
    """What tuning chose in each cell of a tuned table, in the table's row order."""
    rows = [row for row in table.rows if row.line.params == TUNED]
    if not rows:
        return []
    rates = table.rates
    lines = [
        "| method | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for row in rows:
        cells = [
            _chosen(row.entries[r].cell) if r in row.entries else NOT_RUN for r in rates
        ]
        lines.append(f"| {md_escape(row.line.label)} | " + " | ".join(cells) + " |")
    return [CHOSEN_NOTE, "", *lines, ""]


def _chosen(cell) -> str:
    if cell.params is None:
        return "mixed"
    return md_escape(format_params(cell.params, digits=3)) or "defaults"


NOT_RUN = "·"  # a row with no runs at all at this rate

KIND_TITLES = {
    DEFAULT_TABLE: "As run (each method's defaults unless the row names its params)",
    TUNED_TABLE: "Tuned on noisy validation (one equal trial budget per method)",
}
METRIC_TITLES = {
    "test_acc": "Last epoch (`test_acc`)",
    "test_acc_at_best_val": "Selected by noisy validation (`test_acc_at_best_val`)",
}
HOW_TO_READ = [
    "Generated by `noisebench leaderboard` from the run records in `runs/`; do not edit by hand.",
    "",
    "How to read it:",
    (
        "- A cell is clean test accuracy in %: mean ± sample std over seeds (number of seeds),"
        " then its rank in the column (#1: the highest mean). Rows are sorted by mean rank,"
        " which is shown for the methods ranked in every column of their table."
    ),
    (
        f"- **Bold**: better than every other ranked method of its column ({TEST}). A claim"
        " that the best beats each other method is an intersection-union test, so it needs"
        " no correction for multiple comparisons. When no method is significantly best,"
        " ≈ marks the best and every method the seeds cannot tell apart from it."
    ),
    (
        "- · : not run. — (k/n): only k of the n seeds asked for finished; a partial mean"
        " is never shown."
        " diverged k/n: k of n seeds diverged, and none of the cell is averaged."
    ),
    (
        "- *Upper bounds*: loss correction handed the true transition matrix T, which no"
        " method learning from noisy labels alone has; shown apart and not ranked. Its"
        " `[estimated T]` rows estimate T from the noisy data and compete."
    ),
    (
        "- *As run* and *tuned* are separate tables. Tuning sees only the noisy validation"
        " split, with the same trial budget for every method; a method without params has"
        " nothing to tune and appears in the tuned table as run."
    ),
    (
        "- Column 0 is clean labels: no label is flipped, so it answers whether a method"
        " helps when labels are correct."
    ),
    (
        "- Model selection never looks at the test set: *last epoch* reports the final"
        " model; *selected by noisy validation* the epoch with the best accuracy on the"
        " noisy validation split."
    ),
]
METRICS_SHOWN = ("test_acc", "test_acc_at_best_val")


def board_title(board: Board) -> str:
    """Plain text; escape it for markdown. The model is named, so two setups of one
    dataset (digits with the MLP and with the CNN) never share a heading."""
    name = model_name(board.train_config)
    model = f" ({name})" if name is not None else ""
    noise = f"{board.noise_type} noise ({board.noise_mode} sampling)"
    return f"{board.dataset}{model}: {noise}"


def render_board(board: Board, plots: dict[str, str]) -> list[str]:
    title = md_escape(board_title(board))
    out = [f"## {title}", ""]
    data = f"data sha {board.dataset_sha[:8]}"
    if board.noise_detail:
        data += f", {board.noise_detail}"
    out += [md_escape(f"{describe_setup(board.train_config)}; {data}."), ""]
    note = NOISE_NOTES.get(board.noise_type, "unknown noise type")
    out += [f"Noise: {note}. Columns: noise rate r.", ""]
    donors = sorted(set(board.borrowed_zero.values()))
    if donors:
        kinds = md_escape(", ".join(donors))
        out += [
            (
                f"Column 0 holds the rate-0 runs recorded under {kinds} noise: with no"
                " label flipped, every noise type is the same experiment."
            ),
            "",
        ]
    by_kind: dict[str, list[Table]] = {}
    for metric in METRICS_SHOWN:
        for table in tables(board, metric):
            by_kind.setdefault(table.kind, []).append(table)
    for kind, kind_tables in by_kind.items():
        out += [f"### {KIND_TITLES[kind]}", ""]
        for table in kind_tables:
            out += [f"{METRIC_TITLES[table.metric]}:", ""]
            out += render_table(table) + [""]
        if kind == TUNED_TABLE:
            out += render_chosen(kind_tables[0])
    for name, path in plots.items():
        out += [f"![{md_escape(name)}]({path})", ""]
    if board.superseded:
        out += [
            (
                f"{board.superseded} tuned runs of older tunings of the same cells are"
                " not shown (a cell shows its newest tuning)."
            ),
            "",
        ]
    return out


def render_stale(stale: list[dict[str, Any]]) -> list[str]:
    """The runs set aside, listed apart with what made them: their method's code, and
    the noisebench release (marked when its engine revision is not this one's)."""
    from noisebench.records import engine_revision, same_engine
    from noisebench.registry import METHODS

    groups: dict[tuple, int] = {}
    for row in stale:
        if row["phase"] not in LEADERBOARD_PHASES:
            continue
        key = (
            row["method"],
            row.get("method_origin") or "",
            row["method_version"],
            (row.get("method_sha") or "none")[:8],
            row["noisebench_version"] or "unknown",
        )
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return []
    out = [
        "## Stale runs (not in the tables)",
        "",
        (
            "Runs made by another version or source of their method than the one"
            " registered now, or by a noisebench whose engine gives other results"
            " (another engine revision). Rerun them to show them."
        ),
        "",
        "| method | origin | recorded | registered now | noisebench | runs |",
        "|---|---|---|---|---|---:|",
    ]
    for (method, origin, version, sha, release), n in sorted(groups.items()):
        now = METHODS.get(method) if method in METHODS else None
        registered = f"v{now.version} {now.source_sha[:8]}" if now else "not registered"
        # a version string inside a cell opens no block: only odd ones need escaping
        made_by = release if _VERSION.fullmatch(release) else md_escape(release)
        if not same_engine(release):
            revision = engine_revision(release)
            made_by += f" (engine {'unknown' if revision is None else revision})"
        out.append(
            f"| {md_escape(method)} | {md_escape(origin or 'unknown')} "
            f"| v{version} {sha} | {registered} | {made_by} | {n} |"
        )
    return out + [""]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading with this rendered text (github-slugger): lower
    case, punctuation and symbols dropped, each space a hyphen."""
    kept = (
        c for c in heading.lower() if c in " -_" or unicodedata.category(c)[0] in "LMN"
    )
    return "".join(kept).replace(" ", "-")


_HEADING = re.compile(r"^#{1,6} (.*)$")
_VERSION = re.compile(r"[0-9A-Za-z.+-]+")
_ESCAPED = re.compile(r"\\(.)")  # md_escape's backslashes, which do not render


def heading_anchors(lines: list[str]) -> dict[int, str]:
    """Line index -> anchor of every heading in `lines`, a repeated one numbered as
    GitHub numbers it (`as-run`, `as-run-1`, ...)."""
    seen: dict[str, int] = {}
    anchors = {}
    for i, line in enumerate(lines):
        if (match := _HEADING.match(line)) is None:
            continue
        base = slug = github_anchor(_ESCAPED.sub(r"\1", match[1]))
        while slug in seen:
            seen[base] += 1
            slug = f"{base}-{seen[base]}"
        seen[slug] = 0
        anchors[i] = slug
    return anchors


CONTENTS_TITLE = "## Contents"
CONTENTS_NOTE = (
    "Cells finished of each board's grid: every method, and every class-conditional"
    " noise setting and rate, that the store holds anywhere, so a board lacking one is"
    " incomplete. The tuned grid holds every method with params, tuned yet or not."
    " Partial: some seeds still missing."
)


def render_contents(shown: list[Board], anchors: list[str]) -> list[str]:
    """A table of the boards, linked, with how much of each has run; a board the
    store lacks altogether is listed too, unlinked."""
    grid = Grid.of(shown)
    link = dict(zip((id(b) for b in shown), anchors, strict=True))
    covered = [(board, grid.coverage(board)) for board in grid.boards(shown)]
    lines = ["| board | as run | tuned |", "|---|---:|---:|"]
    for board, cov in covered:
        title = md_escape(board_title(board))
        name = f"[{title}](#{link[id(board)]})" if id(board) in link else title
        lines.append(
            f"| {name} | {_cover(cov[DEFAULT_TABLE])} | {_cover(cov[TUNED_TABLE])} |"
        )
    whole = {
        kind: sum((cov[kind] for _, cov in covered), Coverage(0, 0, 0))
        for kind in (DEFAULT_TABLE, TUNED_TABLE)
    }
    lines.append(
        f"| all | {_cover(whole[DEFAULT_TABLE])} | {_cover(whole[TUNED_TABLE])} |"
    )
    return [CONTENTS_TITLE, "", CONTENTS_NOTE, "", *lines, ""]


COMPUTE_NOTE = (
    "Compute: what it took to make these runs, the sum of their wall times (each run's"
    " share of the seeds trained with it), tuning trials included; a pruned trial"
    " writes no record, so its time (cut short after a few epochs) is not counted."
)


def render_compute(rows: list[dict[str, Any]]) -> list[str]:
    """What the shown runs cost, per setup and device, with the total."""
    found = costs(rows)
    if not found:
        return []
    lines = [
        "| setup | device | runs shown | tuning runs | hours |",
        "|---|---|---:|---:|---:|",
    ]
    for c in found:
        lines.append(
            f"| {md_escape(c.dataset)} ({md_escape(c.model)}) | {md_escape(c.device)}"
            f" | {c.runs:,} | {c.tuning_runs:,} | {c.hours:.2f} |"
        )
    runs, tuning = sum(c.runs for c in found), sum(c.tuning_runs for c in found)
    hours = sum(c.hours for c in found)
    lines.append(f"| all | | {runs:,} | {tuning:,} | {hours:.2f} |")
    return [COMPUTE_NOTE, "", *lines, ""]


def _cover(coverage: Coverage) -> str:
    if coverage.total == 0:
        return "nothing to tune"
    text = f"{coverage.finished}/{coverage.total}"
    return text + (f" ({coverage.partial} partial)" if coverage.partial else "")


def engine_line() -> str:
    """Which engine made the numbers shown: the reader's guard against comparing them
    with another revision's (the MTEB and lm-eval failure, where they silently mix)."""
    from noisebench import __version__
    from noisebench.records import ENGINE_REVISIONS

    revision = ENGINE_REVISIONS[__version__]
    releases = ", ".join(v for v, r in ENGINE_REVISIONS.items() if r == revision)
    return (
        f"- Every run in the tables was made by noisebench engine revision {revision}"
        f" (releases {releases}). Another revision gives other numbers for the same"
        " configuration: its runs are listed apart as stale, never mixed in."
    )


def render_markdown(
    rows: list[dict[str, Any]],
    *,
    stale: list[dict[str, Any]] = (),
    plots: dict[str, dict[str, str]] | None = None,
) -> str:
    """The leaderboard page. Deterministic: the same records always give the same text.
    `plots` maps a board's slug to its figures (caption -> relative path)."""
    out = ["# noisebench leaderboard", "", *HOW_TO_READ, engine_line(), ""]
    shown = boards(rows)
    if not shown:
        out += [
            "No runs yet. Run `noisebench evaluate --method ce --noise 0.4` to add one.",
            "",
        ]
    body, starts = [], []
    for board in shown:
        starts.append(len(body))
        body += render_board(board, (plots or {}).get(board.slug, {}))
    if shown:
        # The contents links each board's heading. Its only heading is its title, so
        # GitHub's anchors can be counted on the page with that line standing for it.
        anchors = heading_anchors([*out, CONTENTS_TITLE, *body])
        offset = len(out) + 1
        out += render_contents(shown, [anchors[offset + i] for i in starts])
        out += render_compute(rows)
    out += body
    out += render_stale(list(stale))
    n_runs = sum(1 for r in rows if r["phase"] in LEADERBOARD_PHASES)
    n_stale = sum(1 for r in stale if r["phase"] in LEADERBOARD_PHASES)
    out.append(
        f"{n_runs} runs shown"
        + (f"; {n_stale} stale runs listed apart." if n_stale else ".")
    )
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Page:
    """The leaderboard page of a store: its markdown, and the figures it links, each
    path (under the store) with the drawing that makes it."""

    text: str
    figures: dict[Path, Any]  # path -> figures.Drawing


def page(store: str | Path) -> Page:
    """What `<store>/README.md` and `<store>/plots/` should hold, drawing nothing."""
    from noisebench.leaderboard.figures import FILE_NAMES, board_figures

    rows, stale = leaderboard_rows(store)
    plots: dict[str, dict[str, str]] = {}
    figures: dict[Path, Any] = {}
    for board in boards(rows):
        drawings = board_figures(board, board_title(board))
        plots[board.slug] = {
            caption: f"plots/{board.slug}/{FILE_NAMES[caption]}.png"
            for caption in drawings
        }
        for caption, draw in drawings.items():
            figures[Path(plots[board.slug][caption])] = draw
    return Page(render_markdown(rows, stale=stale, plots=plots), figures)


def build(store: str | Path, *, write_plots: bool = True) -> str:
    """Render `<store>/README.md` text; with `write_plots`, also write the figures under
    `<store>/plots/` that are missing or show other data than they should (stale ones
    removed)."""
    from noisebench.leaderboard.figures import drawing_key
    from noisebench.leaderboard.plots import save
    from noisebench.store import clean_temporaries

    store = Path(store)
    made = page(store)
    if write_plots:
        for folder in sorted({store / path.parent for path in made.figures}):
            clean_temporaries(folder)
        for path in stale_figures(store, made):
            draw = made.figures[path]
            save(draw(), store / path, key=drawing_key(draw))
        _remove_unused_plots(store / "plots", set(made.figures))
    return made.text


def stale_figures(store: str | Path, made: Page) -> list[Path]:
    """The linked figures (paths under the store) that are missing, or were drawn from
    other data or plotting code than the page's (or from a drawing that cannot be
    keyed, which is drawn every time): what `build` redraws and `--check` rejects."""
    from noisebench.leaderboard.figures import drawing_key
    from noisebench.leaderboard.plots import saved_key

    stale = []
    for path, draw in made.figures.items():
        key = drawing_key(draw)
        if key is None or saved_key(Path(store) / path) != key:
            stale.append(path)
    return stale


def _remove_unused_plots(folder: Path, figures: set[Path]) -> None:
    """PNGs under `folder` that the page no longer links (a board gone, a figure
    renamed) would linger in the repository: remove them, and nothing else."""
    linked = {p.relative_to("plots") for p in figures}
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.png")):
        if path.relative_to(folder) not in linked:
            path.unlink(missing_ok=True)
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
