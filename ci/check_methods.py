#!/usr/bin/env python3
"""What a method pull request is checked with, locally or on any CI service.

    python ci/check_methods.py [BASE] [--suite standard] [--store leaderboard]

BASE is the branch the pull request merges into (default: origin/main). Run from the
repository root of the pull request's checkout, with noisebench installed from it
(`pip install -e .`), it

1. finds the method files added or changed since BASE
   (`git diff --name-only --diff-filter=AM BASE...HEAD -- methods/`; committed changes
   only);
2. runs `noisebench methods check` on each: the contract suite and a smoke fit;
3. for the methods that passed, makes their rows of the board on the suite's setup
   (leaderboard/suites/standard.toml): each cell as run with the method's defaults,
   then tuned and run by the suite; a cell whose records are already in the store is
   skipped, and the shards are written to leaderboard/runs/;
4. runs `noisebench leaderboard --check`: leaderboard/README.md must be the rendering
   of the shards. A pull request that commits its shards and the regenerated board
   passes; one that does not gets the shards written here, and a stale board.

and prints a summary naming each method and what failed. Exit status: 0 when
everything passed, 1 when something failed, 2 when it could not run at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PASS, FAIL = "✓", "✗"


@dataclass
class MethodResult:
    file: str
    name: str = ""
    checks_passed: bool = False
    failed: list[str] = field(default_factory=list)  # "neutral: at the neutral ..."
    requires: list[str] = field(default_factory=list)
    suite: str = ""  # what the suite did, or why it failed
    suite_passed: bool | None = None  # None: not run

    @property
    def passed(self) -> bool:
        return self.checks_passed and self.suite_passed is not False


class CannotRun(Exception):
    """Bad usage or setup: the checks cannot start."""


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["failed"])[-1]
        raise CannotRun(f"git {' '.join(args)}: {reason}")
    return out.stdout


def noisebench(*args: str) -> subprocess.CompletedProcess:
    """The noisebench of this interpreter (the one the pull request installed)."""
    command = [sys.executable, "-m", "noisebench.cli", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True)


def changed_methods(base: str) -> list[str]:
    """methods/*.py added or changed between BASE and HEAD: the files discovery loads
    (not in a subfolder, not starting with '_'). A renamed file counts as added."""
    try:
        git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except CannotRun:
        raise CannotRun(
            f"unknown base ref '{base}' (fetch it first, e.g. `git fetch origin main`; "
            "in a shallow clone, fetch the full history)"
        ) from None
    diff = git(
        "diff", "--name-only", "--no-renames", "--diff-filter=AM",
        f"{base}...HEAD", "--", "methods/",
    )  # fmt: skip
    files = [Path(line) for line in diff.splitlines() if line.strip()]
    return [
        str(f)
        for f in files
        if f.parent == Path("methods")
        and f.suffix == ".py"
        and not f.name.startswith("_")
    ]


def check(file: str) -> MethodResult:
    """`noisebench methods check FILE`, its report echoed and summarized."""
    result = MethodResult(file=file, name=Path(file).stem)
    out = noisebench("methods", "check", file, "--json")
    if out.returncode not in (0, 1):  # bad input: not a method file at all
        error = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        result.failed.append(f"methods check: {error.removeprefix('error: ')}")
        print(f"  {FAIL} {result.failed[-1]}")
        return result
    report = json.loads(out.stdout)
    result.name = report["method"]
    result.requires = report["requires"] or []
    for c in report["checks"]:
        mark = PASS if c["passed"] else FAIL
        print(f"  {mark} {c['name']}" + ("" if c["passed"] else f": {c['message']}"))
        if not c["passed"]:
            result.failed.append(f"{c['name']}: {c['message']}")
    for name in report["not_run"]:
        print(f"  - {name}: not run")
    result.checks_passed = report["passed"]
    return result


def run_as_run(suite, store: Path) -> str:
    """The board's as-run row: each of the suite's cells with the method's defaults on
    the suite's final seeds, reusing what the store holds (made by any commit, as the
    board shows it). Each cell is printed as it finishes."""
    from noisebench.experiment import prepare
    from noisebench.runs import evaluate
    from noisebench.sweep import as_run_spec

    cells, ran = suite.cells(), 0
    for cell in cells:
        outcome = evaluate(prepare(as_run_spec(suite, cell)), store, any_commit=True)
        ok = [r["test_acc"] for r in outcome.records if r["status"] == "ok"]
        acc = f"{100 * sum(ok) / len(ok):.1f}" if ok else "—"
        estimated = " [estimated T]" if cell.transition == "estimated" else ""
        trained = outcome.reused < len(outcome.records)
        done = "ran" if trained else "already in the store"
        print(
            f"    as run, {cell.noise_type} {cell.rate:g}{estimated}: test acc {acc} "
            f"({len(ok)} seeds, {done})",
            flush=True,
        )
        ran += trained
    return f"as run: {len(cells)} cells, {ran} run now"


def run_suite(result: MethodResult, suite_name: str, store: Path) -> None:
    """The method's rows on the suite's setup: as run with its defaults, then tuned by
    the suite, restricted to it. Cells already in the store are skipped; each is
    printed as it finishes (the standard suite takes minutes)."""
    from noisebench.errors import UserError
    from noisebench.sweep import describe, load_suite, sweep

    shown = set()

    def show(cell) -> None:
        c = describe(cell)
        estimated = " [estimated T]" if c["transition"] == "estimated" else ""
        acc = "—" if not c["n"] else f"{100 * c['test_acc_mean']:.1f}"
        done = "ran" if c["ran"] else "already in the store"
        print(
            f"    {c['noise_type']} {c['rate']:g}{estimated}: test acc {acc} "
            f"({c['n']} seeds, {done})",
            flush=True,
        )
        shown.add(cell.cell)

    try:
        suite = load_suite(suite_name, store)
        name = result.name
        estimated = name in suite.estimated or "transition" in result.requires
        only = dataclasses.replace(
            suite, methods=(name,), estimated=(name,) if estimated else ()
        )
        as_run = run_as_run(only, store)
        cells = sweep(only, store=store, on_cell=show)
    except Exception as err:  # noqa: BLE001 - whatever broke, the summary names it
        text = (
            str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        )
        result.suite_passed, result.suite = False, " ".join(text.split())
        print(f"  {FAIL} suite {suite_name}: {result.suite}")
        return
    for cell in cells:
        if cell.cell not in shown:
            show(cell)
    ran = sum(cell.ran for cell in cells)
    result.suite_passed = True
    result.suite = f"{as_run}; suite {suite.name}: {len(cells)} cells, {ran} run now"
    print(f"  {PASS} {result.suite}")


def check_board(store: Path) -> tuple[bool, str]:
    out = noisebench("leaderboard", "--check", "--store", str(store))
    if out.returncode == 0:
        return True, f"{store / 'README.md'} and its figures are up to date"
    if out.returncode != 1:
        error = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[
            -1
        ]
        return False, error.removeprefix("error: ")
    new = [
        line[3:]
        for line in git(
            "status", "--porcelain", "--untracked-files=all", "--", str(store / "runs")
        ).splitlines()
        if line.startswith("??")
    ]
    hint = (
        f"; {len(new)} new shard(s) in {store / 'runs'} are not committed"
        if new
        else ""
    )
    what = (
        store / "README.md"
        if "README.md is stale" in out.stderr
        else f"a figure under {store / 'plots'}"
    )
    return False, (
        f"{what} is stale against the shards{hint}: run "
        f"`noisebench leaderboard`, then commit {store}/runs/, {store}/README.md and "
        f"{store}/plots/"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the methods a pull request adds or changes."
    )
    parser.add_argument(
        "base",
        nargs="?",
        default="origin/main",
        help="the ref the pull request merges into (default: origin/main)",
    )
    parser.add_argument(
        "--suite",
        default="standard",
        help="the leaderboard suite to run for the changed methods (default: standard)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=Path("leaderboard"),
        help="the run store whose board must be fresh (default: leaderboard)",
    )
    args = parser.parse_args(argv)
    try:
        os.chdir(git("rev-parse", "--show-toplevel").strip())
        files = changed_methods(args.base)
    except CannotRun as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    results = []
    for file in files:
        print(f"{file}: noisebench methods check", flush=True)
        results.append(check(file))
    passing = [r for r in results if r.checks_passed]
    if passing:
        from noisebench.registry import builtin_dir

        if builtin_dir("methods").resolve() != Path("methods").resolve():
            print(
                f"error: noisebench runs the methods of {builtin_dir('methods')}, not "
                "this checkout's: install it from here (`pip install -e .`)",
                file=sys.stderr,
            )
            return 2
    for r in passing:
        print(f"{r.file}: suite {args.suite}", flush=True)
        run_suite(r, args.suite, args.store)
    board_ok, board = check_board(args.store)

    print(f"\nsummary (against {args.base}):")
    if not files:
        print(f"  no method files added or changed since {args.base} (committed ones)")
    for r in results:
        if r.passed:
            print(f"  {PASS} {r.name} ({r.file}): contract passed; {r.suite}")
            continue
        print(f"  {FAIL} {r.name} ({r.file}):")
        for failure in r.failed:
            print(f"      failed {failure}")
        if r.suite_passed is False:
            print(f"      failed {r.suite}")
    print(f"  {PASS if board_ok else FAIL} leaderboard: {board}")
    ok = board_ok and all(r.passed for r in results)
    print("passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
