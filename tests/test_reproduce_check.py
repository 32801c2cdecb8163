"""`noisebench reproduce --check`: a report is current exactly when its own command,
judging the stored runs alone, writes the same page and figure; and the committed
reports are current."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.reproduce.check import (
    CURRENT,
    MISSING,
    STALE,
    UNCHECKED,
    check_reports,
    parse_command,
)
from noisebench.reproduce.core import BEATS, MATCHES, NO_WORSE, Part, Setting, Verdict
from noisebench.reproduce.report import command, rule_text
from noisebench.store import read_records, write_records

REPO = Path(__file__).parent.parent
ARGS = ["--model", "mlp", "--seeds", "2", "--epochs", "2"]


def invoke(*args):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small preset's report, made as a user makes one (store and reports apart)."""
    root = tmp_path_factory.mktemp("made")
    store, reports = root / "store", root / "reports"
    result = invoke(
        "reproduce",
        "disturblabel-vs-ls",
        *ARGS,
        *("--store", str(store), "--reports", str(reports)),
    )
    assert result.exit_code == 0, result.stderr
    return store, reports


@pytest.fixture
def copy(made, tmp_path):
    store, reports = made
    shutil.copytree(store, tmp_path / "store")
    shutil.copytree(reports, tmp_path / "reports")
    return tmp_path / "store", tmp_path / "reports"


def check(store, reports, *extra):
    args = ["reproduce", "--check", "--store", str(store), "--reports", str(reports)]
    return invoke(*args, *extra)


@pytest.mark.parametrize(
    "setting",
    [
        Setting(),
        Setting(dataset="mnist1d", seeds=20, first_seed=100),
        Setting(dataset="cifar10", model="resnet32", seeds=3, epochs=7),
    ],
)
def test_a_reports_command_reads_back_as_its_setting(setting):
    line = f"This page is what `{command('wei-negative', setting)}` writes; more."
    name, parsed = parse_command(f"# title\n\n{line}\n")
    assert name == "wei-negative"
    assert parsed == replace(setting, device="cpu")


def test_a_command_quoted_elsewhere_or_mangled_is_not_read():
    assert parse_command("Run `noisebench reproduce ls --dataset digits`.") is None
    bad = "This page is what `noisebench reproduce ls --seeds five` writes"
    assert parse_command(bad) is None
    odd = "This page is what `noisebench reproduce ls --colour red` writes"
    assert parse_command(odd) is None
    for values in ("--seeds 0", "--seeds 5 --first-seed -3", "--seeds 5 --epochs 0"):
        line = f"This page is what `noisebench reproduce ls {values}` writes"
        assert parse_command(line) is None, values


def test_the_rule_explains_only_the_kinds_of_part_a_report_has():
    def verdict(*tests):
        parts = [
            Part("a", "b", "test_acc", test=t, margin=None if t == BEATS else 0.01)
            for t in tests
        ]
        return Verdict("inconclusive", [_result(p) for p in parts])

    only_beats = rule_text(verdict(BEATS, BEATS))
    assert "directional" in only_beats
    assert "equivalence" not in only_beats and "non-inferiority" not in only_beats
    mixed = rule_text(verdict(NO_WORSE, MATCHES))
    assert "directional" not in mixed
    assert mixed.index("non-inferiority") < mixed.index("equivalence")


def _result(part):
    from noisebench.reproduce.core import PartResult

    return PartResult(part, "inconclusive", 0.0, 1.0, 2, (0.0, 0.0), 0.0)


def files(root: Path) -> list[tuple[Path, int]]:
    """Every file and its mtime, but the store's read cache (a cache, not results)."""
    return sorted(
        (p, p.stat().st_mtime_ns) for p in root.rglob("*") if ".cache" not in p.parts
    )


def test_a_fresh_report_is_current_and_checking_writes_nothing(made):
    store, reports = made
    before = files(store.parent)
    result = check(store, reports)
    assert result.exit_code == 0, result.output
    assert "current  disturblabel-vs-ls-digits.md" in result.stdout
    assert "1 of 1 reports current, 0 failing" in result.stdout
    text = (reports / "disturblabel-vs-ls-digits.md").read_text()
    assert (
        "This page is what `noisebench reproduce disturblabel-vs-ls --dataset digits"
        " --seeds 2 --model mlp --epochs 2 --any-commit` writes" in text
    )
    assert files(store.parent) == before


def test_an_edited_page_is_stale_with_the_line_that_differs(copy):
    store, reports = copy
    page = reports / "disturblabel-vs-ls-digits.md"
    lines = page.read_text().splitlines(keepends=True)
    assert lines[6].startswith("**Verdict here:")
    written = lines[6].rstrip("\n")
    lines[6] = lines[6].replace("with 2 seeds", "with 3 seeds")
    page.write_text("".join(lines))
    result = check(store, reports)
    assert result.exit_code == 1
    (line,) = [x for x in result.stdout.splitlines() if x.startswith(STALE)]
    # both versions, from 20 characters before the first that differs
    at = written.index("2 seeds") - 20
    edited = written.replace("with 2 seeds", "with 3 seeds")
    assert line.endswith(f"line 7 is now '…{written[at:]}', was '…{edited[at:]}'")


def test_newer_runs_of_an_arm_make_the_report_stale_until_it_is_rewritten(copy):
    """The failure found in the committed reports: another preset retrained an arm's
    configuration, and the newest runs are the ones a report judges."""
    store, reports = copy
    rows = [r for r in read_records(store).to_pylist() if r["params"] == '{"rate":0.1}']
    assert len(rows) == 2  # flip at 0.1, seeds 0 and 1
    later = timedelta(hours=1)
    newer = [
        r
        | {
            "run_id": r["run_id"] + "-again",
            "test_acc": r["test_acc"] / 2,
            "finished_at": r["finished_at"] + later,
        }
        for r in rows
    ]
    write_records(newer, store)
    result = check(store, reports, "--json")
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["reports"]
    assert entry["state"] == STALE and entry["reason"].startswith("line ")
    rewritten = invoke(
        "reproduce",
        "disturblabel-vs-ls",
        *ARGS,
        *("--store", str(store), "--reports", str(reports), "--any-commit"),
    )
    assert rewritten.exit_code == 0, rewritten.stderr
    assert check(store, reports).exit_code == 0


def test_a_report_whose_runs_are_gone_says_which_arm_lacks_them(copy):
    store, reports = copy
    keep = [r for r in read_records(store).to_pylist() if r["method"] != "ls"]
    shutil.rmtree(store / "runs")
    write_records(keep, store)
    (result,) = check_reports(reports, store)
    assert result.state == MISSING
    assert result.reason == "arm 'ls 0.1': the store lacks the runs of seeds 0, 1"
    assert check(store, reports).exit_code == 1


def test_a_figure_drawn_from_other_data_is_stale(copy):
    from noisebench.leaderboard.plots import save, saved_key

    store, reports = copy
    figure = reports / "disturblabel-vs-ls-digits.png"
    assert saved_key(figure)  # the digest of what it draws, in the PNG
    import matplotlib.pyplot as plt

    save(plt.figure(), figure, key="something else")
    (result,) = check_reports(reports, store)
    assert (result.state, result.reason) == (
        STALE,
        "disturblabel-vs-ls-digits.png draws other data",
    )


def test_a_page_naming_no_command_is_stale_and_a_preset_filter_applies(copy):
    store, reports = copy
    (reports / "old-digits.md").write_text("# old\n\nno command here\n")
    results = {r.path.name: r for r in check_reports(reports, store)}
    assert results["old-digits.md"].state == STALE
    assert "names no command" in results["old-digits.md"].reason
    only = check_reports(reports, store, preset="disturblabel-vs-ls")
    assert [r.path.name for r in only] == ["disturblabel-vs-ls-digits.md"]
    assert invoke("reproduce", "nonesuch", "--check").exit_code == 2
    # a folder, or a preset, without reports is an error, never a pass
    (store.parent / "empty").mkdir()
    for args in (["--reports", str(store.parent / "empty")], ["wei-negative"]):
        result = check(store, reports, *args)
        assert result.exit_code == 2
        assert result.stderr.strip().startswith("error: no reports")


def test_the_committed_reports_are_what_their_stored_runs_give():
    """Every committed report is current; only the one that measures the trained
    models (muller-projection) cannot be checked without training."""
    results = check_reports(REPO / "reports", REPO / "reports")
    assert len(results) >= 19
    states = {r.path.name: r.state for r in results}
    failing = {
        r.path.name: r.reason for r in results if r.state not in (CURRENT, UNCHECKED)
    }
    assert not failing
    assert {n for n, s in states.items() if s == UNCHECKED} == {
        "muller-projection-digits.md",
        "muller-projection-mnist1d.md",
    }
