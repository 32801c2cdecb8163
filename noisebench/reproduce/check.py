"""`noisebench reproduce --check`: is each report in a folder still what its arms' stored
runs give? The leaderboard's `--check` for the reports: a report goes stale when the
renderer or a rule changes, or when newer runs of an arm's configuration land in the
store (another preset that shares the arm, retrained), and then it says numbers that
its own command no longer writes.

Each report names the command that writes it; the check runs that command's judging
from the store alone (nothing trains, nothing is written) and compares the page, and
its figure by the digest of what the figure draws.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from noisebench.reproduce.core import Setting

CURRENT, STALE, MISSING, UNCHECKED = "current", "stale", "runs missing", "not checked"
FAILING = (STALE, MISSING)

# the command a report says writes it (report.command), options as it spells them
COMMAND = re.compile(
    r"^This page is what `noisebench reproduce (?P<name>[a-z][a-z0-9-]*)"
    r"(?P<options>(?: --[a-z-]+(?: [^\s`-][^\s`]*)?)*)` writes",
    re.MULTILINE,
)
VALUED = {"--dataset", "--seeds", "--first-seed", "--model", "--epochs"}


@dataclass(frozen=True)
class ReportCheck:
    path: Path
    state: str  # CURRENT, STALE, MISSING or UNCHECKED
    reason: str = ""


def parse_command(text: str) -> tuple[str, Setting] | None:
    """The preset and setting of the command a report says writes it, or None when it
    names none or the command cannot be read."""
    match = COMMAND.search(text)
    if match is None:
        return None
    words = match["options"].split()
    values: dict[str, str] = {}
    i = 0
    while i < len(words):
        if words[i] in VALUED and i + 1 < len(words):
            values[words[i]] = words[i + 1]
            i += 2
        elif words[i] == "--any-commit":
            i += 1
        else:
            return None
    try:
        setting = Setting(
            dataset=values.get("--dataset", "digits"),
            model=values.get("--model"),
            seeds=int(values.get("--seeds", 5)),
            epochs=int(values["--epochs"]) if "--epochs" in values else None,
            first_seed=int(values.get("--first-seed", 0)),
            device="cpu",  # judging from the store runs nothing
        )
    except ValueError:
        return None
    epochs = setting.epochs
    if (
        setting.seeds < 2
        or setting.first_seed < 0
        or (epochs is not None and epochs < 1)
    ):
        return None  # no command of noisebench's writes these
    return match["name"], setting


def check_report(path: Path, store: Path) -> ReportCheck:
    from noisebench.errors import UserError
    from noisebench.leaderboard.figures import drawing_key
    from noisebench.leaderboard.plots import saved_key
    from noisebench.reproduce import PRESETS, MissingRuns, get_preset, reproduce
    from noisebench.reproduce.report import figure_of, render, report_name

    text = path.read_text(encoding="utf-8")
    parsed = parse_command(text)
    if parsed is None:
        return ReportCheck(
            path, STALE, "it names no command that writes it (an older noisebench's)"
        )
    name, setting = parsed
    if name not in PRESETS:
        return ReportCheck(path, STALE, f"no preset is named '{name}'")
    preset = get_preset(name)
    if preset.probe is not None:
        return ReportCheck(
            path,
            UNCHECKED,
            "it measures the trained models, so only training redoes it",
        )
    try:
        result = reproduce(name, setting, store, stored_only=True)
    except MissingRuns as err:
        return ReportCheck(path, MISSING, str(err))
    except UserError as err:
        return ReportCheck(path, STALE, f"its command fails: {err}")
    base = report_name(result)
    if f"{base}.md" != path.name:
        return ReportCheck(path, STALE, f"its command writes {base}.md")
    drawing = figure_of(result)
    figure = path.with_name(f"{base}.png")
    expected = render(result, figure.name if drawing is not None else None)
    if text != expected:
        return ReportCheck(path, STALE, first_difference(text, expected))
    if drawing is not None and saved_key(figure) != drawing_key(drawing):
        return ReportCheck(path, STALE, f"{figure.name} draws other data")
    return ReportCheck(path, CURRENT)


def first_difference(old: str, new: str) -> str:
    """Where two texts first differ, shortly: the line, and both versions from a little
    before the first character that differs."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            at = next(
                (c for c, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            start = max(0, at - 20)
            return f"line {i} is now '{_short(b, start)}', was '{_short(a, start)}'"
    shorter = min(len(old_lines), len(new_lines)) + 1
    return f"line {shorter} on: {len(new_lines) - len(old_lines):+d} lines"


def _short(line: str, start: int, width: int = 60) -> str:
    part = ("…" if start else "") + line[start:]
    return part if len(part) <= width else part[: width - 1] + "…"


def check_reports(
    folder: Path, store: Path, *, preset: str | None = None
) -> list[ReportCheck]:
    """Every report (`*.md`) in `folder`, or only `preset`'s, checked against `store`."""
    paths = sorted(Path(folder).glob("*.md"))
    if preset is not None:
        paths = [p for p in paths if _preset_of(p) == preset]
    return [check_report(p, store) for p in paths]


def _preset_of(path: Path) -> str | None:
    parsed = parse_command(path.read_text(encoding="utf-8"))
    return None if parsed is None else parsed[0]
